"""``invoice-engine copy``: a whole history from one database to another, proved by a replay.

The target is each store in turn (``make_db``): SQLite to PostgreSQL and back again must give
back every row as it was.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import _db
from click.testing import CliRunner

from engine import Engine
from engine.cli import main

ROOT = Path(__file__).resolve().parent.parent


def _source(tmp_path: Path) -> str:
    """A SQLite history of two providers, late events and revisions included."""
    db = str(tmp_path / "source.db")
    r = CliRunner()
    for provider in ("stripe", "chargeover", "upmind"):
        assert r.invoke(main, ["apply", provider, "--example", "--db", db]).exit_code == 0
    return db


def _everything(db: str) -> tuple[list[Any], ...]:
    with Engine(db, readonly=True) as eng, eng.store.read() as tx:
        return (
            [tuple(r) for r in tx.event_rows()],
            [tuple(r) for r in tx.invoice_rows(unborn=True)],
            [tuple(r) for r in tx.revision_rows()],
            [tuple(r) for r in tx.chart_records()],
        )


def test_a_history_goes_across_and_back_as_it_was(make_db: _db.Databases, tmp_path: Path) -> None:
    source = _source(tmp_path)
    target = make_db(shared=True)
    res = CliRunner().invoke(main, ["copy", source, target])
    assert res.exit_code == 0, res.output
    assert "no mismatch" in res.output
    back = str(tmp_path / "back.db")
    res = CliRunner().invoke(main, ["copy", target, back, "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["ok"] is True
    assert doc["replay"]["ok"] is True
    original = _everything(source)
    assert original[2], "the history has revisions to copy"
    assert _everything(target) == original
    assert _everything(back) == original
    # the copy keeps numbering after the highest seq copied
    last = max(row[0] for row in original[0])
    with Engine(target) as eng:
        body = {"id": "evt_new", "type": "invoice.created", "created": 1_700_000_000,
                "data": {"object": {"id": "in_new", "status": "draft"}}}  # fmt: skip
        out = eng.apply("stripe", body)
    assert out.status == "applied"
    assert (out.seq or 0) > last


def test_a_target_that_holds_records_is_refused_unless_replaced(
    make_db: _db.Databases, tmp_path: Path
) -> None:
    source = _source(tmp_path)
    target = make_db(shared=True)
    r = CliRunner()
    assert r.invoke(main, ["copy", source, target]).exit_code == 0
    again = r.invoke(main, ["copy", source, target])
    assert again.exit_code == 1
    assert "is not empty" in again.output
    assert "--replace" in again.output
    assert "Traceback" not in again.output
    assert _everything(target) == _everything(source)  # left as it was
    replaced = r.invoke(main, ["copy", source, target, "--replace"])
    assert replaced.exit_code == 0, replaced.output
    assert _everything(target) == _everything(source)  # not doubled


def test_a_missing_source_or_a_copy_onto_itself_is_an_error(tmp_path: Path) -> None:
    r = CliRunner()
    res = r.invoke(main, ["copy", str(tmp_path / "nope.db"), str(tmp_path / "t.db")])
    assert res.exit_code == 1
    assert "no database at" in res.output
    assert not (tmp_path / "t.db").exists()
    source = _source(tmp_path)
    res = r.invoke(main, ["copy", source, source])
    assert res.exit_code == 1
    assert "the source itself" in res.output


def test_copy_is_documented() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "invoice-engine copy" in readme
    res = CliRunner().invoke(main, ["copy", "--help"])
    assert res.exit_code == 0
    assert "Example: invoice-engine copy" in res.output
    assert "--replace" in res.output
