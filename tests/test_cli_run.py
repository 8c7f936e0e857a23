"""The engine commands through click's CliRunner: apply, state, history, replay, demo."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import _db
import pytest
from _cli import apply_json
from click.testing import CliRunner

from engine.cli import main

STREAMS = Path(__file__).resolve().parent.parent / "examples" / "streams"
STRIPE = STREAMS / "stripe.jsonl"


@pytest.fixture
def db(make_db: _db.Databases) -> str:
    """A new database of each store in turn: a SQLite file, a PostgreSQL URL."""
    return make_db(shared=True)


def test_apply_file_summary(db: str) -> None:
    res = CliRunner().invoke(main, ["apply", "stripe", str(STRIPE), "--db", db])
    assert res.exit_code == 0, res.output
    assert "applied" in res.output
    assert "duplicate" in res.output
    assert "Rejected or invalid:" in res.output
    assert "invalid" in res.output


def test_apply_json_from_stdin(db: str) -> None:
    text = STRIPE.read_text(encoding="utf-8")
    res = CliRunner().invoke(main, ["apply", "stripe", "-", "--db", db, "--json"], input=text)
    assert res.exit_code == 0, res.output
    doc = apply_json(res.stdout)
    assert len(doc.decided) == len(text.splitlines())
    assert sum(doc.summary["counts"].values()) == doc.summary["deliveries"] == len(doc.decided)
    assert [o["line"] for o in doc.decided] == list(range(1, len(doc.decided) + 1))


def test_bad_line_reported_with_number_and_stored(db: str, tmp_path: Path) -> None:
    good = STRIPE.read_text(encoding="utf-8").splitlines()[0]
    src = tmp_path / "in.jsonl"
    src.write_bytes(good.encode() + b"\n\n{oops not json\n")
    res = CliRunner().invoke(main, ["apply", "stripe", str(src), "--db", db])
    assert res.exit_code == 0, res.output
    assert "line 3: invalid" in res.output
    rows = _db.events(db)
    assert [r.outcome for r in rows] == ["applied", "invalid"]
    assert rows[1].body == b"{oops not json"


def test_on_unknown_reject(db: str, tmp_path: Path) -> None:
    body = {
        "id": "evt_1",
        "type": "invoice.paid",
        "created": 1_700_000_000,
        "data": {"object": {"id": "in_1", "status": "paid"}},
    }
    src = tmp_path / "one.jsonl"
    src.write_text(json.dumps(body) + "\n")
    args = ["apply", "stripe", str(src), "--db", db, "--json", "--on-unknown", "reject"]
    res = CliRunner().invoke(main, args)
    assert apply_json(res.stdout).decided[0]["status"] == "rejected"


def test_state_history_replay(db: str) -> None:
    r = CliRunner()
    assert r.invoke(main, ["apply", "stripe", str(STRIPE), "--db", db]).exit_code == 0
    res = r.invoke(main, ["state", "stripe", "in_1PqA8sDemo0002", "--db", db, "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["state"] == "paid"
    res = r.invoke(main, ["history", "stripe", "in_1PqA8sDemo0002", "--db", db])
    assert res.exit_code == 0, res.output
    assert "invoice.paid" in res.output
    assert "revised" in res.output  # the late payment_failed re-folded the paid event
    res = r.invoke(main, ["history", "stripe", "in_1PqA8sDemo0002", "--db", db, "--json"])
    assert all("status" in o for o in json.loads(res.stdout))
    res = r.invoke(main, ["replay", "--db", db, "--json"])
    assert res.exit_code == 0
    assert json.loads(res.stdout)["ok"] is True


def test_replay_exit_code_on_mismatch_and_repair(db: str) -> None:
    r = CliRunner()
    r.invoke(main, ["apply", "stripe", str(STRIPE), "--db", db])
    _db.set_state_behind_the_engine(db, "in_1PqA8sDemo0001", "draft")
    res = r.invoke(main, ["replay", "stripe", "--db", db])
    assert res.exit_code == 1
    assert "in_1PqA8sDemo0001" in res.output
    assert r.invoke(main, ["replay", "--db", db, "--repair"]).exit_code == 0
    assert r.invoke(main, ["replay", "--db", db]).exit_code == 0


def test_errors_are_one_line(db: str) -> None:
    r = CliRunner()
    res = r.invoke(main, ["state", "stripe", "in_nope", "--db", db])
    assert res.exit_code == 1
    assert "Error: no database" in res.output
    res = r.invoke(main, ["apply", "strpe", str(STRIPE), "--db", db])
    assert res.exit_code == 1
    assert "Unknown provider 'strpe'" in res.output
    assert "Traceback" not in res.output
    r.invoke(main, ["apply", "stripe", str(STRIPE), "--db", db])
    res = r.invoke(main, ["state", "stripe", "in_nope", "--db", db])
    assert res.exit_code == 1
    assert "in_nope" in res.output


def test_db_from_environment(db: str) -> None:
    res = CliRunner(env={"INVOICE_ENGINE_DB": db}).invoke(main, ["apply", "moxie", str(STRIPE)])
    assert res.exit_code == 0
    assert _db.events(db)


def test_demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    r = CliRunner()
    res = r.invoke(main, ["demo"])
    assert res.exit_code == 0, res.output
    bundled = ("stripe", "pelcro", "modern_treasury", "chargeover", "moxie", "upmind", "lago")
    for provider in bundled:
        assert f"{provider}:" in res.output
    assert (tmp_path / "invoice-engine-demo.db").exists()
    again = r.invoke(main, ["demo", "--json"])  # the default file is replaced: same result
    doc = json.loads(again.stdout)
    assert doc["providers"]["stripe"]["counts"].get("duplicate") == 1
    kept = r.invoke(main, ["demo", "--db", "invoice-engine-demo.db", "--json"])
    counts = json.loads(kept.stdout)["providers"]["stripe"]["counts"]
    assert set(counts) <= {"duplicate", "invalid"}  # --db keeps the file: all seen before


def _hint(output: str) -> list[str]:
    """The command demo's last line says to try, as a shell would split it."""
    words = shlex.split(output.strip().splitlines()[-1].split("Try: ", 1)[1])
    assert words[0] == "invoice-engine"
    return words[1:]


def test_demo_fills_the_database_of_the_environment(
    db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    res = CliRunner(env={"INVOICE_ENGINE_DB": db}).invoke(main, ["demo"])
    assert res.exit_code == 0, res.output
    assert not (tmp_path / "invoice-engine-demo.db").exists()
    assert _db.events(db)
    assert "INVOICE_ENGINE_DB" in CliRunner().invoke(main, ["demo", "--help"]).output
    # the hint pastes as it is, a PostgreSQL URL's ? and & included
    hint = _hint(res.output)
    assert hint[-2:] == ["--db", db]
    shown = CliRunner().invoke(main, hint)
    assert shown.exit_code == 0, shown.output
    assert "invoice.paid" in shown.output


def test_demo_quotes_a_database_name_for_the_shell(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    name = "demo & co?; $(x) 'it'.db"
    res = CliRunner().invoke(main, ["demo", "--db", name])
    assert res.exit_code == 0, res.output
    assert _hint(res.output)[-2:] == ["--db", name]
    assert CliRunner().invoke(main, _hint(res.output)).exit_code == 0


@pytest.mark.parametrize("command", ["apply", "state", "history", "replay", "demo"])
def test_help_ends_with_example(command: str) -> None:
    res = CliRunner().invoke(main, [command, "--help"])
    assert res.exit_code == 0
    assert "Example: invoice-engine " + command in res.output


def test_a_line_longer_than_any_body_is_not_held_whole(tmp_path: Path) -> None:
    import hashlib

    from engine.cli._run import MAX_LINE_BYTES, bounded_lines
    from engine.runtime.delivery import MAX_BODY_BYTES, Oversized

    huge = b"x" * (MAX_LINE_BYTES * 3)
    src = tmp_path / "in.jsonl"
    src.write_bytes(STRIPE.read_bytes().splitlines()[0] + b"\n" + huge + b"\n{}\n")
    with src.open("rb") as f:
        lines = list(bounded_lines(f))
    assert [type(x) for x in lines] == [bytes, Oversized, bytes]
    big = lines[1]
    assert isinstance(big, Oversized)
    assert big.size == len(huge) + 1
    assert big.sha256 == hashlib.sha256(huge + b"\n").hexdigest()
    assert len(big.head) == MAX_BODY_BYTES
    db = str(tmp_path / "t.db")
    res = CliRunner().invoke(main, ["apply", "stripe", str(src), "--db", db])
    assert res.exit_code == 0, res.output
    rows = _db.events(db)
    assert [r.outcome for r in rows] == ["applied", "invalid", "invalid"]
    assert big.sha256 in (rows[1].reason or "")
    assert len(rows[1].body) == MAX_BODY_BYTES


def test_headers_over_the_limit_are_invalid() -> None:
    from engine import Engine

    out = Engine(":memory:").apply(
        "stripe", STRIPE.read_bytes().splitlines()[0], {"x": "y" * 70_000}
    )
    assert out.status == "invalid"
    assert "headers are over" in (out.reason or "")
