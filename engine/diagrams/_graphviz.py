"""Running Graphviz's ``dot`` program: what turns DOT text into SVG or PNG.

The text formats need nothing installed; drawing images does, so a missing ``dot`` is a
:class:`~engine.errors.DiagramError` that says how to install it.
"""

from __future__ import annotations

import shutil
import subprocess

from ..errors import DiagramError

__all__ = ["INSTALL_HINT", "run_dot"]

INSTALL_HINT = (
    "Graphviz's `dot` program is needed to draw SVG or PNG. Install it with "
    "`apt-get install graphviz` (Debian/Ubuntu), `brew install graphviz` (macOS), "
    "`choco install graphviz` (Windows), or from https://graphviz.org/download/; "
    "the text formats (mermaid, dot, scxml, xstate) need nothing."
)


def run_dot(dot_text: str, fmt: str) -> bytes:
    """Lay out ``dot_text`` with Graphviz and return the ``fmt`` (``svg``/``png``) output.

    Raises:
        DiagramError: ``dot`` is not installed (the message says how to install it), or it
            failed (the message has its error output).
    """
    exe = shutil.which("dot")
    if exe is None:
        raise DiagramError(INSTALL_HINT)
    proc = subprocess.run(  # a fixed program; our own text on stdin
        [exe, f"-T{fmt}"], input=dot_text.encode("utf-8"), capture_output=True, check=False
    )
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip()
        raise DiagramError(f"Graphviz dot failed (exit {proc.returncode}) drawing {fmt}: {err}")
    return proc.stdout
