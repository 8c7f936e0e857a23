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
        store = SqliteStore(db)
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
    return [r for r in events(db) if r.live and provider in (None, r.provider)]


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
