"""The SQLite store: an embedded file (WAL) or ``:memory:``, shaped with sqlite-utils.

This module holds all of the engine's SQLite SQL; the runtime reaches it only through the
:class:`~engine.store.base.Store` interface.

The tables are described in :mod:`engine.store._sqlite_schema`. Writers take the lock up front
(``BEGIN IMMEDIATE``) and wait up to ``busy_timeout`` for it, so concurrent processes serialize
instead of failing with "database is locked". Readers open a deferred transaction: in WAL mode
every read in it sees one snapshot of committed data.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from ..errors import StoreError
from ._sqlite_schema import SCHEMA_VERSION, Synchronous, create_private, create_schema, set_wal
from .base import (
    EventRow,
    FoldKey,
    InvoiceRow,
    LiveEvent,
    RevisedOutcome,
    RevisionRow,
)

__all__ = ["SCHEMA_VERSION", "SqliteStore", "Synchronous"]


def _in(n: int) -> str:
    return ", ".join("?" * n)


def _chunks(values: Sequence[str], size: int = 500) -> Iterator[Sequence[str]]:
    """SQLite caps bound parameters per statement: IN lists go 500 at a time."""
    for i in range(0, len(values), size):
        yield values[i : i + size]


_EVENT_NAMES = ", ".join(EventRow._fields)
_INSERT_EVENT = f"INSERT INTO events ({_EVENT_NAMES}) VALUES ({_in(len(EventRow._fields))})"
_INVOICE_NAMES = ", ".join(InvoiceRow._fields)
_UPSERT_INVOICE = f"""
INSERT INTO invoices ({_INVOICE_NAMES}) VALUES ({_in(len(InvoiceRow._fields))})
ON CONFLICT (provider, invoice_id) DO UPDATE SET
  state = excluded.state, canonical = excluded.canonical, version = excluded.version,
  updated_at = excluded.updated_at, last_time = excluded.last_time,
  last_rank = excluded.last_rank, last_event_id = excluded.last_event_id
"""
_REVISION_NAMES = ", ".join(RevisionRow._fields)
_INSERT_REVISION = (
    f"INSERT INTO revisions ({_REVISION_NAMES}) VALUES ({_in(len(RevisionRow._fields))})"
)
_FOLD_SQL = f"""
SELECT {_EVENT_NAMES} FROM events WHERE provider = ? AND invoice_id = ? AND live = 1
ORDER BY fold_time, fold_rank, event_id
"""


class _Tx:
    """Reads and writes on the store's connection, inside a transaction the store opened."""

    __slots__ = ("_conn",)

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    # ------------------------------------------------------------------- reads

    def invoice(self, provider: str, invoice_id: str) -> InvoiceRow | None:
        row = self._conn.execute(
            f"SELECT {_INVOICE_NAMES} FROM invoices WHERE provider = ? AND invoice_id = ?",
            (provider, invoice_id),
        ).fetchone()
        return None if row is None else InvoiceRow._make(row)

    def invoices_by_id(self, provider: str, invoice_ids: Sequence[str]) -> dict[str, InvoiceRow]:
        found: dict[str, InvoiceRow] = {}
        for part in _chunks(invoice_ids):
            for row in self._conn.execute(
                f"SELECT {_INVOICE_NAMES} FROM invoices WHERE provider = ?"
                f" AND invoice_id IN ({_in(len(part))})",
                (provider, *part),
            ):
                inv = InvoiceRow._make(row)
                found[inv.invoice_id] = inv
        return found

    def invoice_rows(
        self, provider: str | None = None, *, unborn: bool = False
    ) -> Iterator[InvoiceRow]:
        where, args = ("AND provider = ?", (provider,)) if provider is not None else ("", ())
        born = "1 = 1" if unborn else "state IS NOT NULL"
        sql = f"SELECT {_INVOICE_NAMES} FROM invoices WHERE {born} {where}"
        for row in self._conn.execute(sql + " ORDER BY provider, invoice_id", args):
            yield InvoiceRow._make(row)

    def live_event(self, provider: str, event_id: str) -> LiveEvent | None:
        row = self._conn.execute(
            "SELECT seq, outcome, retryable FROM events"
            " WHERE provider = ? AND event_id = ? AND live = 1",
            (provider, event_id),
        ).fetchone()
        return None if row is None else LiveEvent(row[0], row[1], bool(row[2]))

    def live_events(self, provider: str, event_ids: Sequence[str]) -> dict[str, LiveEvent]:
        found: dict[str, LiveEvent] = {}
        for part in _chunks(event_ids):
            for event_id, seq, outcome, retryable in self._conn.execute(
                "SELECT event_id, seq, outcome, retryable FROM events WHERE provider = ?"
                f" AND live = 1 AND event_id IN ({_in(len(part))})",
                (provider, *part),
            ):
                found[event_id] = LiveEvent(seq, outcome, bool(retryable))
        return found

    def fold_rows(self, provider: str, invoice_id: str) -> list[EventRow]:
        # read through the events_invoice_fold index: O(this invoice's events)
        return [
            EventRow._make(row) for row in self._conn.execute(_FOLD_SQL, (provider, invoice_id))
        ]

    def explain_fold(self) -> list[str]:
        rows = self._conn.execute(f"EXPLAIN QUERY PLAN {_FOLD_SQL}", ("?", "?")).fetchall()
        return [str(r[3]) for r in rows]

    def history_rows(self, provider: str, invoice_id: str) -> list[EventRow]:
        return [
            EventRow._make(row)
            for row in self._conn.execute(
                f"SELECT {_EVENT_NAMES} FROM events WHERE provider = ? AND invoice_id = ?"
                " ORDER BY live DESC, fold_time, fold_rank, event_id, seq",
                (provider, invoice_id),
            )
        ]

    def folded_invoices(self, provider: str | None = None) -> list[tuple[str, str]]:
        where, args = ("AND provider = ?", (provider,)) if provider is not None else ("", ())
        rows = self._conn.execute(
            "SELECT DISTINCT provider, invoice_id FROM events"
            f" WHERE live = 1 AND invoice_id IS NOT NULL {where}",
            args,
        ).fetchall()
        return [(p, i) for p, i in rows]

    def outcome_counts(self, provider: str | None = None) -> dict[str, int]:
        where, args = ("WHERE provider = ?", (provider,)) if provider is not None else ("", ())
        rows = self._conn.execute(
            f"SELECT outcome, COUNT(*) FROM events {where} GROUP BY outcome", args
        )
        return {outcome: n for outcome, n in rows}

    def event_rows(self) -> Iterator[EventRow]:
        for row in self._conn.execute(f"SELECT {_EVENT_NAMES} FROM events ORDER BY seq"):
            yield EventRow._make(row)

    def revision_rows(self) -> Iterator[RevisionRow]:
        for row in self._conn.execute(f"SELECT {_REVISION_NAMES} FROM revisions ORDER BY id"):
            yield RevisionRow._make(row)

    # ------------------------------------------------------------------ writes

    def next_seq(self) -> int:
        row = self._conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM events").fetchone()
        return int(row[0])

    def insert_events(self, rows: Sequence[EventRow]) -> None:
        self._conn.executemany(_INSERT_EVENT, rows)

    def upsert_invoices(self, rows: Sequence[InvoiceRow]) -> None:
        self._conn.executemany(_UPSERT_INVOICE, rows)

    def supersede(self, seq: int, by_seq: int) -> None:
        self._conn.execute(
            "UPDATE events SET live = 0, reason = reason || ? WHERE seq = ?",
            (f"; superseded by #{by_seq}", seq),
        )

    def revise(self, outcome: RevisedOutcome, revision: RevisionRow | None) -> None:
        if revision is not None:
            self._conn.execute(_INSERT_REVISION, revision)
        self._conn.execute(
            "UPDATE events SET outcome = ?, reason = ?, from_state = ?, to_state = ?,"
            " trigger = ?, retryable = ?, adopted = ?, revisions = ? WHERE seq = ?",
            (outcome.outcome, outcome.reason, outcome.from_state, outcome.to_state,
             outcome.trigger, outcome.retryable, outcome.adopted, outcome.revisions, outcome.seq),
        )  # fmt: skip

    def set_invoice_state(
        self, provider: str, invoice_id: str, state: str | None, canonical: str | None, key: FoldKey
    ) -> None:
        self._conn.execute(
            "UPDATE invoices SET state = ?, canonical = ?, last_time = ?, last_rank = ?,"
            " last_event_id = ?, version = version + 1 WHERE provider = ? AND invoice_id = ?",
            (state, canonical, *key, provider, invoice_id),
        )


class SqliteStore:
    """One SQLite database file (or ``:memory:``) with the schema in place.

    Args:
        path: the file; created owner-only (raw bodies carry personal data).
        synchronous: SQLite's durability setting for commits.
        busy_timeout: seconds a writer waits for another process's lock.
    """

    def __init__(
        self,
        path: str | Path = "invoices.db",
        *,
        synchronous: Synchronous = "NORMAL",
        busy_timeout: float = 60.0,
    ) -> None:
        self.path = str(path)
        memory = self.path == ":memory:"
        if synchronous not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise StoreError(f"synchronous={synchronous!r} is not one of OFF, NORMAL, FULL, EXTRA")
        if not memory:
            create_private(Path(self.path))
        try:
            conn = sqlite3.connect(
                self.path, isolation_level=None, timeout=busy_timeout, check_same_thread=False
            )
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            if not memory:
                set_wal(conn)
            conn.execute(f"PRAGMA synchronous = {synchronous}")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"can't open {self.path!r} as a SQLite database: {exc}") from None
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path!r} has schema version {version}; this invoice-engine knows up to "
                f"{SCHEMA_VERSION}. Upgrade invoice-engine."
            )
        self._conn = conn
        self._tx = _Tx(conn)
        self._lock = threading.RLock()
        if version < SCHEMA_VERSION:
            with self.write():
                create_schema(conn)

    @contextmanager
    def write(self) -> Iterator[_Tx]:
        """One write transaction, taken up front so concurrent writers wait instead of fail.

        ``BEGIN IMMEDIATE`` waits up to the busy timeout; if SQLite still reports the database
        busy (a checkpoint in another process), it is retried with a short back-off. Threads
        sharing one store take turns through a lock (one connection, one transaction).
        """
        with self._lock:
            yield from self._transaction("BEGIN IMMEDIATE")

    @contextmanager
    def read(self) -> Iterator[_Tx]:
        """A read transaction: in WAL mode, one snapshot of committed data for all its reads."""
        with self._lock:
            yield from self._transaction("BEGIN")

    def _transaction(self, begin: str) -> Iterator[_Tx]:
        for attempt in range(50):
            try:
                self._conn.execute(begin)
                break
            except sqlite3.OperationalError as exc:
                if ("locked" not in str(exc) and "busy" not in str(exc)) or attempt == 49:
                    raise StoreError(f"can't use {self.path!r}: {exc}") from None
                time.sleep(min(0.005 * 2**attempt, 0.5))
        try:
            yield self._tx
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        else:
            self._conn.execute("COMMIT")

    def explain_fold(self) -> list[str]:
        """SQLite's query plan for reading one invoice's fold (it must search an index)."""
        with self.read() as tx:
            return tx.explain_fold()

    def close(self) -> None:
        self._conn.close()
