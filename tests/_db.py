"""What the tests read from a database, and the few things they do behind the engine's back.

Tests read records through the store's own read transactions (typed rows, never SQL). A test
that must look at or damage a file the way another program would — tamper with a row to see
``replay`` notice, make a write fail half-way, read while a killed process left the file — does
it through the functions at the bottom, the only SQL in the test suite.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from engine import Engine
from engine.store.base import EventRow, InvoiceRow, RevisionRow, Store
from engine.store.sqlite import SqliteStore


@contextmanager
def _store(db: Engine | Store | str | Path) -> Iterator[Store]:
    if isinstance(db, Engine):
        yield db.store
    elif isinstance(db, str | Path):
        store = SqliteStore(db, readonly=True)  # reading changes nothing in the file
        try:
            yield store
        finally:
            store.close()
    else:
        yield db


def events(db: Engine | Store | str | Path) -> list[EventRow]:
    """Every event row, by arrival."""
    with _store(db) as store, store.read() as tx:
        return list(tx.event_rows())


def live_events(db: Engine | Store | str | Path, provider: str | None = None) -> list[EventRow]:
    """The rows that count (``live = 1``), optionally of one provider, by arrival."""
    return [r for r in events(db) if r.in_fold and provider in (None, r.provider)]


def bodies(db: Engine | Store | str | Path) -> list[bytes]:
    """Every stored body, by arrival."""
    return [bytes(r.body) for r in events(db)]


def invoices(db: Engine | Store | str | Path) -> list[InvoiceRow]:
    """Every invoice row (those only seen through rejected events too), by provider and id."""
    with _store(db) as store, store.read() as tx:
        return list(tx.invoice_rows(unborn=True))


def doubled_live_events(db: Engine | Store | str | Path) -> list[str]:
    """Event ids with more than one live row (there must never be any)."""
    ids = [r.event_id or "" for r in live_events(db)]
    return sorted({i for i in ids if ids.count(i) > 1})


def revisions(db: Engine | Store | str | Path) -> list[RevisionRow]:
    """Every revision, in the order written."""
    with _store(db) as store, store.read() as tx:
        return list(tx.revision_rows())


# ------------------------------------------------------------------- behind the engine's back


class _Recorder:
    """A sqlite3 connection that records the SQL text of every statement."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self.sql: list[str] = []

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        self.sql.append(sql)
        return self._conn.execute(sql, *args)

    def executemany(self, sql: str, *args: Any) -> sqlite3.Cursor:
        self.sql.append(sql)
        return self._conn.executemany(sql, *args)

    def executescript(self, sql: str) -> sqlite3.Cursor:
        self.sql.append(sql)
        return self._conn.executescript(sql)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def record_sql(eng: Engine) -> list[str]:
    """From now on, the text of every SQL statement the engine's store runs (before binding)."""
    store = eng.store
    assert isinstance(store, SqliteStore)
    rec = _Recorder(store._conn)
    store._conn = store._tx._conn = rec  # type: ignore[assignment]
    return rec.sql


def set_state_behind_the_engine(path: str | Path, invoice_id: str, state: str) -> None:
    """Overwrite an invoice's stored state, as a careless script would."""
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("UPDATE invoices SET state = ? WHERE invoice_id = ?", (state, invoice_id))


def delete_invoice_behind_the_engine(path: str | Path, invoice_id: str) -> None:
    """Lose an invoice's row, as a careless script would."""
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("DELETE FROM invoices WHERE invoice_id = ?", (invoice_id,))


def tamper_canonical_behind_the_engine(path: str | Path, invoice_id: str, canonical: str) -> None:
    """Overwrite an invoice's stored canonical state."""
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(
            "UPDATE invoices SET canonical = ? WHERE invoice_id = ?", (canonical, invoice_id)
        )


def delete_events_behind_the_engine(path: str | Path, invoice_id: str) -> None:
    """Lose every event row of an invoice, keeping its invoice row."""
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("DELETE FROM events WHERE invoice_id = ?", (invoice_id,))


@contextmanager
def invoice_writes_fail(path: str | Path) -> Iterator[None]:
    """While inside, every write of an ``invoices`` row fails (a trigger raises 'boom')."""
    with closing(sqlite3.connect(path)) as conn:
        conn.execute(
            "CREATE TRIGGER boom BEFORE INSERT ON invoices BEGIN SELECT RAISE(ABORT, 'boom'); END"
        )
        conn.commit()
        try:
            yield
        finally:
            conn.execute("DROP TRIGGER boom")
            conn.commit()


def pragma(path: str | Path, name: str) -> object:
    """A PRAGMA's value, read by a plain connection (``user_version``, ``journal_mode``, …)."""
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute(f"PRAGMA {name}").fetchone()[0]


def set_user_version(path: str | Path, version: int) -> None:
    """Stamp a file with a schema version, as a newer invoice-engine would."""
    with closing(sqlite3.connect(path)) as conn:
        conn.execute(f"PRAGMA user_version = {int(version)}")


def count_rows_read_only(path: str | Path) -> int | None:
    """How many event rows a file holds, opened read-only (``None``: no schema there yet)."""
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])
    except sqlite3.OperationalError:  # not created yet, or the schema not yet in place
        return None


def integrity(path: str | Path) -> str:
    """SQLite's own ``PRAGMA integrity_check`` verdict (``"ok"``)."""
    return str(pragma(path, "integrity_check"))


def tables(path: str | Path) -> set[str]:
    """The names of the file's tables."""
    with closing(sqlite3.connect(path)) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def make_foreign_database(path: str | Path) -> None:
    """Another application's SQLite file, with a table called events of its own."""
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, what TEXT)")
        conn.execute("INSERT INTO events (what) VALUES ('a meeting')")


def make_version_1_database(path: str | Path) -> None:
    """A file as invoice-engine's schema version 1 wrote it: one applied stripe event."""
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.executescript(_VERSION_1)


_VERSION_1 = """
CREATE TABLE [events] ([seq] INTEGER PRIMARY KEY, [provider] TEXT NOT NULL, [event_id] TEXT,
  [live] INTEGER NOT NULL DEFAULT 0, [invoice_id] TEXT, [event_type] TEXT, [trigger] TEXT,
  [status] TEXT, [outcome] TEXT NOT NULL, [reason] TEXT, [from_state] TEXT, [to_state] TEXT,
  [retryable] INTEGER DEFAULT 0, [adopted] INTEGER DEFAULT 0, [occurred_at] TEXT,
  [fold_time] INTEGER, [fold_rank] INTEGER, [received_at] TEXT NOT NULL,
  [revisions] INTEGER NOT NULL DEFAULT 0, [headers] TEXT, [body] BLOB);
CREATE TABLE [invoices] ([provider] TEXT, [invoice_id] TEXT, [state] TEXT, [canonical] TEXT,
  [version] INTEGER NOT NULL, [created_at] TEXT, [updated_at] TEXT, [last_time] INTEGER,
  [last_rank] INTEGER, [last_event_id] TEXT, PRIMARY KEY ([provider], [invoice_id]));
CREATE TABLE [revisions] ([id] INTEGER PRIMARY KEY, [seq] INTEGER, [cause_seq] INTEGER,
  [revised_at] TEXT, [old_outcome] TEXT, [new_outcome] TEXT, [old_from] TEXT, [old_to] TEXT,
  [new_from] TEXT, [new_to] TEXT, [old_reason] TEXT, [new_reason] TEXT);
CREATE UNIQUE INDEX events_live_event ON events(provider, event_id) WHERE live = 1;
CREATE INDEX events_invoice_fold
  ON events(provider, invoice_id, fold_time, fold_rank, event_id) WHERE live = 1;
INSERT INTO events VALUES (1, 'stripe', 'evt_1', 1, 'in_1', 'invoice.created', NULL, 'draft',
  'applied', 'created', NULL, 'draft', 0, 0, '2023-11-14T22:13:20+00:00', 1700000000000000, 0,
  '2026-01-01T00:00:00+00:00', 0, NULL,
  CAST('{"id":"evt_1","type":"invoice.created","created":1700000000,'
       || '"data":{"object":{"id":"in_1","status":"draft"}}}' AS BLOB));
INSERT INTO invoices VALUES ('stripe', 'in_1', 'draft', 'draft', 1, '2026-01-01T00:00:00+00:00',
  '2026-01-01T00:00:00+00:00', 1700000000000000, 0, 'evt_1');
PRAGMA user_version = 1;
"""


def make_version_2_database(path: str | Path) -> None:
    """A file as invoice-engine wrote it at schema version 2: no ``events.verified``."""
    body = (
        b'{"id":"evt_1","type":"invoice.created","created":1700000000,'
        b'"data":{"object":{"id":"in_1","status":"draft"}}}'
    )
    with Engine(path) as eng:
        eng.apply("stripe", body)
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("ALTER TABLE events DROP COLUMN verified")
        conn.execute("PRAGMA user_version = 2")
        conn.commit()
