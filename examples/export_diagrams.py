"""Export every bundled chart in every diagram format into one folder.

    python examples/export_diagrams.py [FOLDER]      # default: ./diagrams

Writes ``PROVIDER.mmd`` (Mermaid), ``.dot``, ``.svg``, ``.png`` (through Graphviz's ``dot``),
``.scxml`` and ``.xstate.json`` for each chart. Without Graphviz installed the text formats
are still written and the script says how to get the images.
"""

from __future__ import annotations

import sys
from pathlib import Path

import engine
from engine import diagrams

SUFFIXES = {
    "mermaid": ".mmd",
    "dot": ".dot",
    "svg": ".svg",
    "png": ".png",
    "scxml": ".scxml",
    "xstate": ".xstate.json",
}


def main(folder: Path) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    missing_graphviz = None
    for name in engine.available_charts():
        chart = engine.load_chart(name)
        written = []
        for fmt, suffix in SUFFIXES.items():
            try:
                data = diagrams.export(chart, fmt)
            except engine.DiagramError as exc:  # only svg/png can fail: no Graphviz
                missing_graphviz = str(exc)
                continue
            path = folder / f"{name}{suffix}"
            if isinstance(data, bytes):
                path.write_bytes(data)
            else:
                path.write_text(data, encoding="utf-8")
            written.append(path.name)
        print(f"{name:<16} {' '.join(written)}")
    if missing_graphviz:
        print(f"\nNo SVG/PNG: {missing_graphviz}")
    print(f"\nWrote to {folder.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("diagrams")))
