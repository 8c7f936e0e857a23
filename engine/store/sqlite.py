"""The SQLite store: an embedded file (WAL) or ``:memory:``, shaped with sqlite-utils.

This module holds all of the engine's SQLite SQL; the runtime reaches it only through the
:class:`~engine.store.base.Store` interface.

Three tables, readable as they are in Datasette or ``sqlite-utils``:

- ``invoices``: one row per (provider, invoice id): state, canonical state, version, timestamps,
  and the fold key of the last event folded into it (to tell a late arrival in O(1)).
- ``events``: every delivery ever received, whatever its outcome, with the raw body bytes and
  the (redacted) headers. ``live = 1`` marks the row that stands for an event in the invoice's
  fold; duplicates, invalid deliveries and superseded attempts have ``live = 0``. A partial
  unique index on (provider, event_id) where live = 1 makes double-applying impossible even
  for several processes on one file.
- ``revisions``: the audit trail of outcomes changed when a late event re-folded an invoice.

Writers take the lock up front (``BEGIN IMMEDIATE``) and wait up to ``busy_timeout`` for it,
so concurrent processes serialize instead of failing with "database is locked". The schema
version is ``PRAGMA user_version``; a file from a newer version is refused, not misread.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from ..errors import StoreError
from .base import (
    EventRow,
    FoldKey,
    InvoiceRow,
    LiveEvent,
    RevisedOutcome,
    RevisionRow,
)

__all__ = ["SCHEMA_VERSION", "SqliteStore", "Synchronous"]

SCHEMA_VERSION = 1
Synchronous = Literal["OFF", "NORMAL", "FULL", "EXTRA"]

_EVENT_COLUMNS = {
    "seq": int,
    "provider": str,
    "event_id": str,
    "live": int,
    "invoice_id": str,
    "event_type": str,
    "trigger": str,
    "status": str,
    "outcome": str,
    "reason": str,
    "from_state": str,
    "to_state": str,
    "retryable": int,
    "adopted": int,
    "occurred_at": str,
    "fold_time": int,
    "fold_rank": int,
    "received_at": str,
    "revisions": int,
    "headers": str,
    "body": bytes,
}

_INVOICE_COLUMNS = {
    "provider": str,
    "invoice_id": str,
    "state": str,
    "canonical": str,
    "version": int,
    "created_at": str,
    "updated_at": str,
    "last_time": int,
    "last_rank": int,
    "last_event_id": str,
}

_REVISION_COLUMNS = {
    "id": int,
    "seq": int,  # the event whose outcome changed
    "cause_seq": int,  # the late event whose arrival changed it
    "revised_at": str,
    "old_outcome": str,
    "new_outcome": str,
    "old_from": str,
    "old_to": str,
    "new_from": str,
    "new_to": str,
    "old_reason": str,
    "new_reason": str,
}


def _create_private(path: Path) -> None:
    """Create the database file readable by its owner only: raw bodies carry personal data."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)


def _set_wal(conn: sqlite3.Connection) -> None:
    """Switch to WAL. Two processes opening one new file can both try at once, and SQLite
    reports "locked" for the loser without calling the busy handler: retry with back-off."""
    for attempt in range(50):
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == 49:
                raise
            time.sleep(min(0.005 * 2**attempt, 0.5))


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
            _create_private(Path(self.path))
        try:
            conn = sqlite3.connect(
                self.path, isolation_level=None, timeout=busy_timeout, check_same_thread=False
            )
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            if not memory:
                _set_wal(conn)
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
        # Imported here, not at the top: sqlite-utils (and pluggy, dateutil) cost the CLI
        # ~40-80 ms of start-up, and commands that only read charts never open a store.
        import sqlite_utils

        self._db = sqlite_utils.Database(conn)
        if version < SCHEMA_VERSION:
            with self.write():
                self._create_schema()

    def _create_schema(self) -> None:
        """Create the tables and indexes in one IMMEDIATE transaction.

        sqlite-utils writes the CREATE TABLE statements (``create_table_sql``); they are run
        here rather than through ``Table.create``, which commits on its own, so that two
        processes opening one new file at once take turns instead of racing.
        """
        if self._conn.execute("PRAGMA user_version").fetchone()[0] >= SCHEMA_VERSION:
            return  # another process created it while we waited for the lock
        db = self._db
        tables = [
            db.create_table_sql(
                "events",
                _EVENT_COLUMNS,
                pk="seq",
                not_null={"provider", "live", "outcome", "received_at", "revisions"},
                defaults={"live": 0, "revisions": 0, "retryable": 0, "adopted": 0},
                if_not_exists=True,
            ),
            db.create_table_sql(
                "invoices",
                _INVOICE_COLUMNS,
                pk=("provider", "invoice_id"),
                not_null={"version"},  # state is NULL while only rejected events are known
                if_not_exists=True,
            ),
            db.create_table_sql("revisions", _REVISION_COLUMNS, pk="id", if_not_exists=True),
        ]
        # sqlite-utils' create_index has no WHERE clause: the partial indexes are plain SQL.
        indexes = [
            "CREATE UNIQUE INDEX IF NOT EXISTS events_live_event"
            " ON events(provider, event_id) WHERE live = 1",
            "CREATE INDEX IF NOT EXISTS events_invoice_fold"
            " ON events(provider, invoice_id, fold_time, fold_rank, event_id) WHERE live = 1",
            "CREATE INDEX IF NOT EXISTS events_invoice_seq ON events(provider, invoice_id, seq)",
            "CREATE INDEX IF NOT EXISTS events_event_id ON events(provider, event_id)",
            "CREATE INDEX IF NOT EXISTS revisions_seq ON revisions(seq)",
        ]
        for sql in tables + indexes:
            self._conn.execute(sql)
        self._conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

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
