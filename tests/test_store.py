"""The SQLite store: schema version, WAL, private file, atomic rows, two processes on one file."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import _db
import pytest

from engine import Engine, StoreError
from engine.store.sqlite import SCHEMA_VERSION, SqliteStore

ROOT = Path(__file__).resolve().parent.parent
BODY = {
    "id": "evt_1",
    "type": "invoice.created",
    "created": 1_700_000_000,
    "data": {"object": {"id": "in_1", "status": "draft"}},
}


def test_schema_version_recorded(tmp_path: Path) -> None:
    SqliteStore(tmp_path / "a.db").close()
    assert _db.pragma(tmp_path / "a.db", "user_version") == SCHEMA_VERSION


def test_newer_schema_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    _db.set_user_version(path, SCHEMA_VERSION + 1)
    with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION + 1}"):
        SqliteStore(path)


def test_not_a_database_refused(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match=r"junk\.db"):
        SqliteStore(path)


def test_wal_and_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    store = SqliteStore(path)
    assert _db.pragma(path, "journal_mode") == "wal"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    store.close()


def test_both_rows_or_neither(make_db: _db.Databases) -> None:
    db = make_db(shared=True)
    eng = Engine(db)
    # make the invoice upsert fail inside the transaction, after the event row is inserted
    with (
        _db.invoice_writes_fail(db),
        pytest.raises(StoreError, match="boom"),
    ):
        eng.apply("stripe", BODY)
    assert _db.events(eng) == []
    assert _db.invoices(eng) == []
    assert eng.apply("stripe", BODY).status == "applied"
    assert len(_db.events(eng)) == 1


_WORKER = """
import sys
from engine import Engine
from engine.cli._run import read_jsonl
db, provider, order = sys.argv[1], sys.argv[2], sys.argv[3]
with open(f"examples/streams/{provider}.jsonl", "rb") as f:
    items = list(read_jsonl(f))
items = items * 3
if order == "reversed":
    items.reverse()
eng = Engine(db, batch_size=4)
for i, d in enumerate(items):
    body, headers = d if isinstance(d, tuple) else (d, None)
    if i % 2:
        eng.apply(provider, body, headers)
    else:
        eng.apply_many(provider, [(body, headers)])
eng.close()
"""


def _snapshot(db: str, provider: str) -> tuple[Any, ...]:
    eng = Engine(db)
    states = {i.invoice_id: i.state for i in eng.invoices(provider)}
    live = sorted(
        (r.event_id or "", r.outcome, r.from_state, r.to_state)
        for r in _db.live_events(eng, provider)
    )
    total = len(_db.events(eng))
    ok = eng.replay().ok
    eng.close()
    return states, live, total, ok


@pytest.mark.parametrize("provider", ["stripe", "upmind"])
def test_two_processes_equal_a_sequential_run(make_db: _db.Databases, provider: str) -> None:
    shared = make_db(shared=True)
    procs = [
        subprocess.Popen([sys.executable, "-c", _WORKER, shared, provider, order], cwd=ROOT)
        for order in ("forward", "reversed")
    ]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    alone = make_db(shared=True)
    for order in ("forward", "reversed"):
        subprocess.run(
            [sys.executable, "-c", _WORKER, alone, provider, order], cwd=ROOT, check=True
        )
    states, live, total, ok = _snapshot(shared, provider)
    assert ok
    assert (states, live, total) == _snapshot(alone, provider)[:3]
    text = (ROOT / "examples" / "streams" / f"{provider}.jsonl").read_text(encoding="utf-8")
    lines = sum(1 for line in text.splitlines() if line.strip())
    assert total == 2 * 3 * lines  # every delivery of both processes is a row: none lost


def test_schema_columns_are_the_row_fields() -> None:
    # rows go to executemany as they are: their fields must be the table's columns, in order
    from engine.store import _sqlite_schema as schema
    from engine.store.base import EventRow, InvoiceRow, RevisionRow

    assert tuple(schema._EVENT_COLUMNS) == EventRow._fields
    assert tuple(schema._INVOICE_COLUMNS) == InvoiceRow._fields
    assert tuple(schema._REVISION_COLUMNS) == ("id", *RevisionRow._fields)


# ------------------------------------------------- what a name may be, and files not ours (11.8)


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("", "no database named"),
        ("mysql://user@host/db", "no store for 'mysql' URLs"),
        ("{tmp}", "is a folder"),
        ("{tmp}/missing/x.db", "does not exist"),
        ("{tmp}/afile/x.db", "is a file"),
    ],
    ids=["empty", "url", "folder", "missing-folder", "file-as-folder"],
)
def test_names_that_cant_be_a_database_are_refused(tmp_path: Path, name: str, words: str) -> None:
    (tmp_path / "afile").write_text("x")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    with pytest.raises(StoreError, match=words):
        Engine(name.format(tmp=tmp_path))
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing created


def _foreign(path: Path) -> None:
    """Another application's SQLite file, with its own events table."""
    _db.make_foreign_database(path)


@pytest.mark.parametrize("readonly", [False, True])
def test_another_applications_database_is_refused_and_left_unchanged(
    tmp_path: Path, readonly: bool
) -> None:
    path = tmp_path / "other.db"
    _foreign(path)
    before = path.read_bytes()
    with pytest.raises(StoreError, match=r"'other\.db' is not an invoice-engine database"):
        SqliteStore(path, readonly=readonly)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.db"]


def test_a_version_1_file_is_read_as_it_is_and_upgraded_by_a_writer(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    _db.make_version_1_database(path)
    before = path.read_bytes()
    with Engine(path, readonly=True) as reader:
        assert [o.status for o in reader.history("stripe", "in_1")] == ["applied"]
        assert reader.replay().ok
    assert path.read_bytes() == before
    with Engine(path) as writer:
        assert writer.apply("stripe", BODY).status == "duplicate"
        assert writer.replay().ok
    assert _db.pragma(path, "user_version") == SCHEMA_VERSION
    assert [r.policy for r in _db.events(path)] == [None, "adopt"]


def test_a_version_2_file_is_read_as_it_is_and_upgraded_by_a_writer(tmp_path: Path) -> None:
    path = tmp_path / "v2.db"
    _db.make_version_2_database(path)
    before = path.read_bytes()
    with Engine(path, readonly=True) as reader:
        [created] = reader.history("stripe", "in_1")
        assert (created.status, created.verified) == ("applied", None)
        assert reader.replay().ok
    assert path.read_bytes() == before
    with Engine(path) as writer:
        assert writer.apply("stripe", BODY).status == "duplicate"
        assert writer.replay().ok
    assert _db.pragma(path, "user_version") == SCHEMA_VERSION
    assert [r.verified for r in _db.events(path)] == [None, None]


def test_readonly_refuses_writes(make_db: _db.Databases) -> None:
    db = make_db(shared=True)
    Engine(db).close()
    with Engine(db, readonly=True) as eng, pytest.raises(StoreError, match="read"):
        eng.apply("stripe", BODY)


def test_every_column_is_documented_in_the_readme() -> None:
    from engine.store import _sqlite_schema as schema

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## The database", 1)[1].split("\n## ", 1)[0]
    columns = {
        *schema._EVENT_COLUMNS, *schema._INVOICE_COLUMNS, *schema._REVISION_COLUMNS,
        *schema._CHART_COLUMNS,
    }  # fmt: skip
    assert [c for c in sorted(columns) if f"`{c}`" not in section] == []


def test_times_are_stored_in_one_format(make_db: _db.Databases) -> None:
    db = make_db(shared=True)
    with Engine(db) as eng:
        eng.apply("stripe", BODY)
    row = _db.events(db)[0]
    invoice = _db.invoices(db)[0]
    for text in (row.received_at, row.occurred_at, invoice.first_seen_at, invoice.updated_at):
        assert text is not None
        assert text.endswith("Z"), text


@pytest.mark.parametrize("name", ["file:x.db", "file:x.db?mode=memory"])
def test_sqlite_uri_names_are_refused(
    tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StoreError, match="URI"):
        Engine(name)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("db", [None, 3, b"x.db"])
def test_a_database_name_is_a_path(db: Any) -> None:
    with pytest.raises(StoreError, match="give a file path"):
        Engine(db)


def test_a_closed_engine_says_so(make_db: _db.Databases) -> None:
    eng = Engine(make_db())
    eng.close()
    with pytest.raises(StoreError, match="closed"):
        eng.apply("stripe", BODY)
    with pytest.raises(StoreError, match="closed"):
        eng.state("stripe", "in_1")


def test_stored_times_have_one_precision_so_they_sort_as_text(make_db: _db.Databases) -> None:
    body = dict(BODY, created=1_700_000_001.5)
    db = make_db(shared=True)
    with Engine(db) as eng:
        eng.apply("stripe", body)
        eng.apply("stripe", dict(BODY, id="evt_2", created=1_700_000_001))
    times = [r.occurred_at or "" for r in _db.events(db)]
    assert [len(t) for t in times] == [len("2023-11-14T22:13:21.500000Z")] * 2
    assert sorted(times) == sorted(times, key=lambda t: t.replace("Z", ""))
