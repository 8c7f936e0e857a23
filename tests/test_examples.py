"""Every script in examples/ runs, and so does the README's library example (so neither lies)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = sorted(p for p in (ROOT / "examples").glob("*.py") if not p.name.startswith("test_"))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_example_runs(script: Path, tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip()


def _readme_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)


def test_readme_has_python_examples() -> None:
    assert len(_readme_blocks()) >= 2


@pytest.mark.parametrize("index", range(len(_readme_blocks())))
def test_readme_python_block_runs(index: int, tmp_path: Path) -> None:
    code = _readme_blocks()[index]
    res = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, f"README block {index} failed:\n{code}\n{res.stderr}"
    # A block that says what it prints (a "# prints:" comment) prints exactly that.
    _, says, shown = code.partition("# prints:\n")
    if says:
        expected = [line.removeprefix("# ") for line in shown.splitlines() if line.startswith("#")]
        assert res.stdout.splitlines() == expected


def _console_commands() -> list[tuple[str, list[str]]]:
    """Each ``$ invoice-engine …`` line of the README's console blocks, with the output shown
    under it (empty when the README shows none)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    found: list[tuple[str, list[str]]] = []
    for block in re.findall(r"^```console\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE):
        session: list[tuple[str, list[str]]] = []
        for line in block.splitlines():
            if line.startswith("$ "):
                session.append((line[2:].split("  #")[0].strip(), []))
            elif session:
                session[-1][1].append(line)
        found += session
    return found


def test_readme_console_sessions_print_what_they_show(tmp_path: Path) -> None:
    """The README's CLI session, run for real in order: each command exits 0 and prints
    exactly the output the README shows under it."""
    import shlex

    cli = Path(sys.executable).parent / "invoice-engine"
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    commands = _console_commands()
    assert any(cmd.startswith("invoice-engine apply") for cmd, _ in commands)
    for cmd, shown in commands:
        args = shlex.split(cmd)
        res = subprocess.run(
            [str(cli), *args[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=120
        )
        assert res.returncode == 0, (cmd, res.stderr)
        if shown:
            assert res.stdout.rstrip("\n").splitlines() == shown, cmd
