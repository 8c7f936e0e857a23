"""The example streams as a pip-installed user meets them (issue 17, item 9).

``apply --help``'s example and ``demo --print-stream`` must work from a wheel installed
non-editable, run from a folder that has nothing to do with the checkout: the streams are
found as package data (``site-packages/engine/examples``), not at the repository's path.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from test_packaging import Installed, installed

ROOT = Path(__file__).resolve().parent.parent
STRIPE = ROOT / "examples" / "streams" / "stripe.jsonl"

__all__ = ["installed"]  # the wheel, built and installed once for this module too


def _cli(installed: Installed, *args: str) -> subprocess.CompletedProcess[bytes]:
    script = installed.bin / ("invoice-engine.exe" if os.name == "nt" else "invoice-engine")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "INVOICE_ENGINE"))}
    return subprocess.run(
        [str(script), *args], cwd=installed.elsewhere, env=env, capture_output=True, check=False
    )


def test_apply_helps_example_works_as_printed_from_a_wheel(installed: Installed) -> None:
    help_text = _cli(installed, "apply", "--help").stdout.decode()
    example = help_text.split("Example: ")[1].splitlines()[0].strip()
    assert example == "invoice-engine apply stripe --example"
    result = _cli(installed, *example.split()[1:], "--db", "ex.db", "--json")
    assert result.returncode == 0, result.stderr.decode()
    summary = json.loads(result.stdout.decode().splitlines()[-1])
    assert summary["deliveries"] == len(STRIPE.read_bytes().splitlines())
    assert summary["counts"]["applied"] > 0


def test_print_stream_prints_the_bundled_stream_from_a_wheel(installed: Installed) -> None:
    result = _cli(installed, "demo", "--print-stream", "stripe")
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == STRIPE.read_bytes()


def test_demo_finds_every_stream_in_a_wheel(installed: Installed) -> None:
    result = _cli(installed, "demo", "--json", "--db", "demo.db")
    assert result.returncode == 0, result.stderr.decode()
    providers = json.loads(result.stdout)["providers"]
    assert sorted(providers) == sorted(p.stem for p in STRIPE.parent.glob("*.jsonl"))
