"""The SQLite store: an embedded file (WAL) or ``:memory:``.

This module holds all of the engine's SQLite SQL; the runtime reaches it only through the
:class:`~engine.store.base.Store` interface.

The tables are described in :mod:`engine.store._sqlite_schema`. Writers take the lock up front
(``BEGIN IMMEDIATE``) and wait up to ``busy_timeout`` for it, so concurrent processes serialize
instead of failing with "database is locked". Readers open a deferred transaction: in WAL mode
every read in it sees one snapshot of committed data.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from ..errors import StoreError
from ._sqlite_schema import (
    OUR_TABLES,
    SCHEMA_VERSION,
    Synchronous,
    check_path,
    create_private,
    create_schema,
    set_wal,
    view_as_current,
)
from .base import (
    ChartRecord,
    EventRow,
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
  updated_at = excluded.updated_at, last_fold_order = excluded.last_fold_order,
  last_lifecycle_rank = excluded.last_lifecycle_rank, last_event_id = excluded.last_event_id
"""
_REVISION_NAMES = ", ".join(RevisionRow._fields)
_INSERT_REVISION = (
    f"INSERT INTO revisions ({_REVISION_NAMES}) VALUES ({_in(len(RevisionRow._fields))})"
)
_FOLD_SQL = f"""
SELECT {_EVENT_NAMES} FROM events WHERE provider = ? AND invoice_id = ? AND in_fold = 1
ORDER BY fold_order, lifecycle_rank, event_id
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
            " WHERE provider = ? AND event_id = ? AND in_fold = 1",
            (provider, event_id),
        ).fetchone()
        return None if row is None else LiveEvent(row[0], row[1], bool(row[2]))

    def live_events(self, provider: str, event_ids: Sequence[str]) -> dict[str, LiveEvent]:
        found: dict[str, LiveEvent] = {}
        for part in _chunks(event_ids):
            for event_id, seq, outcome, retryable in self._conn.execute(
                "SELECT event_id, seq, outcome, retryable FROM events WHERE provider = ?"
                f" AND in_fold = 1 AND event_id IN ({_in(len(part))})",
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
                " ORDER BY in_fold DESC, fold_order, lifecycle_rank, event_id, seq",
                (provider, invoice_id),
            )
        ]

    def folded_invoices(self, provider: str | None = None) -> list[tuple[str, str]]:
        where, args = ("AND provider = ?", (provider,)) if provider is not None else ("", ())
        rows = self._conn.execute(
            "SELECT DISTINCT provider, invoice_id FROM events"
            f" WHERE in_fold = 1 AND invoice_id IS NOT NULL {where}",
            args,
        ).fetchall()
        return [(p, i) for p, i in rows]

    def outcome_counts(self, provider: str | None = None) -> dict[str, int]:
        where, args = ("WHERE provider = ?", (provider,)) if provider is not None else ("", ())
        rows = self._conn.execute(
            f"SELECT outcome, COUNT(*) FROM events {where} GROUP BY outcome", args
        )
        return {outcome: n for outcome, n in rows}

    def event_rows(self, first: int = 1, last: int | None = None) -> Iterator[EventRow]:
        bound = (first, last if last is not None else 2**63 - 1)
        sql = f"SELECT {_EVENT_NAMES} FROM events WHERE seq BETWEEN ? AND ? ORDER BY seq"
        for row in self._conn.execute(sql, bound):
            yield EventRow._make(row)

    def chart_record(self, fingerprint: str) -> ChartRecord | None:
        row = self._conn.execute(
            f"SELECT {', '.join(ChartRecord._fields)} FROM charts WHERE fingerprint = ?",
            (fingerprint,),
        ).fetchone()
        return None if row is None else ChartRecord._make(row)

    def revisions_caused(self, first: int, last: int | None = None) -> dict[int, int]:
        bound = (first, last if last is not None else 2**63 - 1)
        rows = self._conn.execute(
            "SELECT cause_seq, COUNT(*) FROM revisions WHERE cause_seq BETWEEN ? AND ?"
            " GROUP BY cause_seq",
            bound,
        )
        return {seq: n for seq, n in rows}

    def chart_versions(self, provider: str | None = None) -> dict[tuple[str, str | None], int]:
        where, args = ("AND provider = ?", (provider,)) if provider is not None else ("", ())
        rows = self._conn.execute(
            "SELECT provider, chart, COUNT(*) FROM events"
            f" WHERE in_fold = 1 AND invoice_id IS NOT NULL {where} GROUP BY provider, chart",
            args,
        )
        return {(p, c): n for p, c, n in rows}

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
            "UPDATE events SET in_fold = 0, reason = reason || ? WHERE seq = ?",
            (f"; superseded by #{by_seq}", seq),
        )

    def revise(self, outcome: RevisedOutcome, revision: RevisionRow | None) -> None:
        if revision is not None:
            self._conn.execute(_INSERT_REVISION, revision)
        self._conn.execute(
            "UPDATE events SET outcome = ?, reason = ?, from_state = ?, to_state = ?,"
            " trigger = ?, retryable = ?, adopted = ?, revisions = ?, policy = ?, chart = ?,"
            " inferred = ? WHERE seq = ?",
            (outcome.outcome, outcome.reason, outcome.from_state, outcome.to_state,
             outcome.trigger, outcome.retryable, outcome.adopted, outcome.revisions,
             outcome.policy, outcome.chart, outcome.inferred, outcome.seq),
        )  # fmt: skip

    def record_chart(self, chart: ChartRecord) -> None:
        self._conn.execute(
            f"INSERT INTO charts ({', '.join(ChartRecord._fields)}) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (fingerprint) DO NOTHING",
            chart,
        )


class SqliteStore:
    """One SQLite database file (or ``:memory:``) with the schema in place.

    Args:
        path: the file, created owner-only (raw bodies carry personal data) in a folder that
            must exist; or ``":memory:"``.
        synchronous: SQLite's durability setting for commits.
        busy_timeout: seconds a writer waits for another process's lock.
        readonly: open an existing database without writing anything to it: no schema created
            or upgraded, no switch to WAL; a write raises :class:`~engine.StoreError`.

    Raises:
        StoreError: the path can't hold a database, or the file is not an invoice-engine
            database (it is then left exactly as it was), or is from a newer version.
    """

    def __init__(
        self,
        path: str | Path = "invoices.db",
        *,
        synchronous: Synchronous = "NORMAL",
        busy_timeout: float = 60.0,
        readonly: bool = False,
    ) -> None:
        self.path = str(path)
        self.readonly = readonly
        if synchronous not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise StoreError(f"synchronous={synchronous!r} is not one of OFF, NORMAL, FULL, EXTRA")
        memory = self.path == ":memory:"
        if not memory:
            check_path(self.path, readonly)
        try:
            if readonly and not memory:
                uri = Path(self.path).resolve().as_uri() + "?mode=ro"
                conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=busy_timeout,
                                       check_same_thread=False)  # fmt: skip
            else:
                if not memory:
                    create_private(Path(self.path))
                conn = sqlite3.connect(
                    self.path, isolation_level=None, timeout=busy_timeout, check_same_thread=False
                )
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            version = self._check_ours(conn)
            if not readonly:
                if not memory:
                    set_wal(conn)
                conn.execute(f"PRAGMA synchronous = {synchronous}")
        except (sqlite3.DatabaseError, OSError) as exc:
            raise StoreError(f"can't open {self.path!r} as a SQLite database: {exc}") from None
        self._conn = conn
        self._closed = False
        self._lock = threading.RLock()
        self._tx = _Tx(conn)
        if version < SCHEMA_VERSION:
            if readonly:  # read an older file as it is, through views under today's names
                with self.read():
                    view_as_current(conn, version)
            else:
                with self.write():
                    create_schema(conn)

    def _check_ours(self, conn: sqlite3.Connection) -> int:
        """The file's schema version, once it is known to be ours (nothing is written)."""
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        tables = {
            r[0]
            for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if not r[0].startswith("sqlite_")
        }
        name = os.path.basename(self.path)
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path!r} has schema version {version}; this invoice-engine knows up to "
                f"{SCHEMA_VERSION}. Upgrade invoice-engine."
            )
        if (version == 0 and tables) or (version > 0 and not tables >= OUR_TABLES):
            shown = ", ".join(sorted(tables)[:8]) or "none"
            raise StoreError(
                f"{name!r} is not an invoice-engine database (its tables: {shown}); "
                "name a new file or one invoice-engine created"
            )
        if version == 0 and self.readonly:
            raise StoreError(f"{name!r} is not an invoice-engine database yet (it is empty)")
        return version

    @contextmanager
    def write(self) -> Iterator[_Tx]:
        """One write transaction, taken up front so concurrent writers wait instead of fail.

        ``BEGIN IMMEDIATE`` waits up to the busy timeout; if SQLite still reports the database
        busy (a checkpoint in another process), it is retried with a short back-off. Threads
        sharing one store take turns through a lock (one connection, one transaction).

        Raises:
            StoreError: the store is read-only, or SQLite failed (the transaction is rolled
                back: nothing of it is written).
        """
        if self.readonly:
            raise StoreError(f"{self.path!r} was opened read-only")
        self._check_open()
        with self._lock:
            yield from self._transaction("BEGIN IMMEDIATE")

    @contextmanager
    def read(self) -> Iterator[_Tx]:
        """A read transaction: in WAL mode, one snapshot of committed data for all its reads.

        Inside another transaction of the same thread, it reads in that one.
        """
        self._check_open()
        with self._lock:
            if self._conn.in_transaction:
                yield self._tx
            else:
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
        except BaseException as exc:
            if self._conn.in_transaction:  # SQLite may have rolled back already
                self._conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"{self.path!r}: {exc}") from exc
            if isinstance(exc, UnicodeEncodeError):  # a lone surrogate in a name asked for
                raise StoreError(f"{exc.object[:60]!r} is not valid Unicode text") from None
            raise
        try:
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise StoreError(f"can't commit to {self.path!r}: {exc}") from exc

    def explain_fold(self) -> list[str]:
        """SQLite's query plan for reading one invoice's fold (it must search an index)."""
        with self.read() as tx:
            return tx.explain_fold()

    def close(self) -> None:
        """Close the connection (after any transaction another thread has open)."""
        with self._lock:
            self._closed = True
            self._conn.close()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"{self.path!r} is closed; open a new Engine to use it")
