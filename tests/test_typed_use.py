"""The API as a typed user meets it: their own script, outside the checkout, under mypy --strict.

The README's test set-up is ``pip install -e '.[dev]'``. setuptools' default editable install
for this layout is an import-hook finder, which type checkers can't run: a user's script
outside the repository then fails ``mypy --strict`` with ``import-not-found``, although it
imports fine. ``pyproject.toml`` asks for a plain path in a ``.pth`` file instead; this installs
a copy of the checkout exactly that way (``pip install -e``, into a fresh venv) and type-checks
a script that uses the public API with the installed mypy, from a directory of its own.

``assert_type`` lines make mypy prove the public types too: ``diagrams.export`` of a text
format is ``str`` and of an image format ``bytes``; ``Chart.steps`` gives public
``CandidateStep`` tuples; ``next_state`` is a ``Configuration`` (a ``str``).

The new venv borrows this interpreter's site-packages for the dependencies only (a path line
in a ``.pth`` file, as ``test_packaging`` does), so pip fetches nothing but the build backend.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_IGNORE = shutil.ignore_patterns(
    ".venv",
    ".git",
    "*.egg-info",
    "build",
    "dist",
    "__pycache__",
    ".*_cache",
    "*.db",
    "node_modules",
)

USER_SCRIPT = '''\
"""A user's own typed script: the public API only."""

from typing import assert_type

import engine
from engine import Chart, Configuration, Engine, Outcome, ReplayReport, diagrams, load_chart
from engine.chart import CandidateStep
from engine.testing import shortest_paths

chart: Chart = load_chart("chargeover")
assert_type(chart.next_state("open.unpaid", "pay"), Configuration)
assert_type(chart.next_state("open", "pay"), Configuration)
state: str = chart.next_state("open", "pay")  # a configuration is its text
assert_type(Configuration.of(["a.x", "a.y"]).leaves, tuple[str, ...])
assert_type(chart.is_final("closed"), bool)
assert_type(chart.steps("open.unpaid", "pay"), tuple[CandidateStep, ...])
for dest, conditions in chart.steps("open.unpaid", "pay"):
    assert_type(dest, Configuration | None)
spec = chart.event("invoice.insert")
create: bool = spec.create if spec is not None else False

assert_type(diagrams.to_mermaid(chart, direction="BT"), str)
assert_type(diagrams.export(chart, "mermaid"), str)
assert_type(diagrams.export(chart, "xstate"), str)
assert_type(diagrams.export(chart, "svg"), bytes)
assert_type(diagrams.export(chart, "png"), bytes)
fmt: str = diagrams.format_for("chart.svg")
assert_type(diagrams.export(chart, fmt), str | bytes)

with Engine(":memory:") as eng:
    outcome: Outcome = eng.apply("stripe", {"id": "evt_1", "type": "invoice.created"})
    status: str = outcome.status
    report: ReplayReport = eng.replay()
    ok: bool = report.ok
    print(diagrams.to_mermaid(chart, highlight=eng.history("stripe", "in_1")))

paths = shortest_paths(chart)
print(engine.__version__, len(paths), status, create, ok)
'''


def _run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "MYPY"))}
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"{result.args}\n{result.stdout}\n{result.stderr}"
    return result.stdout


@dataclass(frozen=True)
class Editable:
    python: Path
    site: Path


@pytest.fixture(scope="module")
def editable(tmp_path_factory: pytest.TempPathFactory) -> Editable:
    """A fresh venv with a copy of the checkout installed by ``pip install -e``."""
    base = tmp_path_factory.mktemp("editable")
    source = base / "src"
    shutil.copytree(ROOT, source, ignore=_IGNORE)  # an editable install writes into its source
    venv = base / "venv"
    _ok(_run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=base))
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = Path(_ok(_run(python, "-c", code, cwd=base)).strip())
    deps = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (site / "_invoice_engine_test_deps.pth").write_text("\n".join(deps) + "\n", encoding="utf-8")
    pip = (sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps")
    _ok(_run(*pip, "-e", source, cwd=base))
    return Editable(python, site)


def test_the_editable_install_is_a_path_a_type_checker_can_follow(editable: Editable) -> None:
    files = {p.name: p for p in editable.site.glob("__editable__*")}
    assert not any("finder" in name for name in files), f"an import-hook finder: {list(files)}"
    (pth,) = (p for name, p in files.items() if name.endswith(".pth"))
    lines = pth.read_text(encoding="utf-8").split()
    assert not any(line.startswith("import") for line in lines), f"{pth.name} runs code: {lines}"
    (folder,) = map(Path, lines)
    assert (folder / "engine" / "py.typed").is_file()  # where mypy finds the typed package


def test_a_users_typed_script_outside_the_repo_passes_mypy_strict(
    editable: Editable, tmp_path: Path
) -> None:
    mine = tmp_path / "my_project"
    mine.mkdir()
    script = mine / "billing.py"
    script.write_text(textwrap.dedent(USER_SCRIPT), encoding="utf-8")
    result = _run(
        sys.executable, "-m", "mypy", "--strict", "--no-incremental",
        "--python-executable", editable.python, script.name,
        cwd=mine,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success" in result.stdout
    # and it runs: the script is real code, not only types
    out = _ok(_run(editable.python, script.name, cwd=mine))
    assert out.strip().endswith("True")
