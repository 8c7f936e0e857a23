"""The wheel users install: it ships every module, py.typed, the charts, and works from anywhere.

An editable install hides packaging mistakes (a package missing from ``[tool.setuptools]``, a
chart not matched by package-data): the source tree is right there on ``sys.path``. So this
builds a real wheel from a copy of the checkout, installs it (non-editable) into a fresh venv,
and imports it from a directory that has nothing to do with the checkout.

The new venv borrows this interpreter's site-packages for the *dependencies* only, through a
``.pth`` path line (which does not run the editable install's import hook), so no network is
needed beyond the build backend pip fetches for an isolated build.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHARTS = sorted(p.stem for p in (ROOT / "statecharts").glob("*.yaml"))
_IGNORE = shutil.ignore_patterns(
    ".venv", ".git", "*.egg-info", "build", "dist", "__pycache__", ".*_cache", "*.db"
)


@dataclass(frozen=True)
class Installed:
    wheel: Path
    source: Path
    python: Path
    bin: Path
    elsewhere: Path


def _run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "INVOICE_ENGINE"))}
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"{args}\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    base = tmp_path_factory.mktemp("packaging")
    source = base / "src"
    shutil.copytree(ROOT, source, ignore=_IGNORE)  # never build inside the shared checkout
    dist = base / "dist"
    _run(sys.executable, "-m", "pip", "wheel", source, "--no-deps", "-q", "-w", dist, cwd=base)
    (wheel,) = dist.glob("invoice_engine-*.whl")

    venv = base / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=base)
    bindir = venv / ("Scripts" if os.name == "nt" else "bin")
    python = bindir / ("python.exe" if os.name == "nt" else "python")
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = Path(_run(python, "-c", code, cwd=base).stdout.strip())
    deps = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (site / "_invoice_engine_test_deps.pth").write_text("\n".join(deps) + "\n", encoding="utf-8")
    _run(
        sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps",
        "--no-index", wheel, cwd=base,
    )  # fmt: skip
    elsewhere = base / "elsewhere"
    elsewhere.mkdir()
    return Installed(wheel=wheel, source=source, python=python, bin=bindir, elsewhere=elsewhere)


def test_wheel_ships_every_module_py_typed_and_the_charts(installed: Installed) -> None:
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    assert "engine/py.typed" in names
    assert "engine/statecharts/statechart.schema.json" in names
    for chart in CHARTS:
        assert f"engine/statecharts/{chart}.yaml" in names
    modules = {
        p.relative_to(installed.source).as_posix()
        for p in (installed.source / "engine").rglob("*.py")
    }
    assert modules - names == set(), "modules missing from the wheel: check [tool.setuptools]"


def test_installed_package_lists_and_loads_every_bundled_chart(installed: Installed) -> None:
    script = (
        "import json, engine\n"
        "names = engine.available_charts()\n"
        "loaded = {n: len(engine.load_chart(n).states) for n in names}\n"
        "print(json.dumps({'file': engine.__file__, 'names': names, 'loaded': loaded}))\n"
    )
    out = json.loads(_run(installed.python, "-c", script, cwd=installed.elsewhere).stdout)
    assert Path(out["file"]).is_relative_to(installed.python.parent.parent), out["file"]
    assert out["names"] == CHARTS
    assert all(count > 0 for count in out["loaded"].values())


def test_installed_console_script_lints_the_bundled_charts(installed: Installed) -> None:
    script = installed.bin / ("invoice-engine.exe" if os.name == "nt" else "invoice-engine")
    result = _run(script, "lint", "--json", cwd=installed.elsewhere)
    report = json.loads(result.stdout)
    assert [c["chart"] for c in report["charts"]] == CHARTS
    assert report["errors"] == 0
    assert all(str(installed.python.parent.parent) in c["path"] for c in report["charts"])
