"""Reads and writes on a SQLite connection, inside a transaction :class:`SqliteStore` opened.

All of the SQLite store's SQL for the records is here; :mod:`engine.store.sqlite` holds the
connection and the transactions. One writer at a time (``BEGIN IMMEDIATE``) is what makes
:meth:`_Tx.lock_invoices` a no-op and ``MAX(seq) + 1`` a valid next number here.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence

from ._feed_sql import Feed
from ._statements import (
    EVENT_NAMES,
    FOLD,
    INSERT_REVISION,
    INVOICE_NAMES,
    RECORD_CHART,
    REVISE,
    REVISION_NAMES,
    SUPERSEDE,
    UPSERT_INVOICE,
    qmark,
    revise_args,
)
from ._views_sql import dead_letters_query, invoices_query, snapshots_query
from .base import (
    ChartRecord,
    EventRow,
    InvoiceRow,
    LiveEvent,
    RevisedOutcome,
    RevisionRow,
)
from .views import SnapshotRow

__all__ = ["SqliteTx"]


def _in(n: int) -> str:
    return ", ".join("?" * n)


def _chunks(values: Sequence[str], size: int = 500) -> Iterator[Sequence[str]]:
    """SQLite caps bound parameters per statement: IN lists go 500 at a time."""
    for i in range(0, len(values), size):
        yield values[i : i + size]


_EVENT_NAMES, _INVOICE_NAMES, _REVISION_NAMES = EVENT_NAMES, INVOICE_NAMES, REVISION_NAMES
_INSERT_EVENT = f"INSERT INTO events ({_EVENT_NAMES}) VALUES ({_in(len(EventRow._fields))})"
_UPSERT_INVOICE = qmark(UPSERT_INVOICE)
_INSERT_REVISION = qmark(INSERT_REVISION)
_FOLD_SQL = qmark(FOLD)
_SUPERSEDE, _REVISE, _RECORD_CHART = (qmark(x) for x in (SUPERSEDE, REVISE, RECORD_CHART))


class SqliteTx:
    """Reads and writes on the store's connection, inside a transaction the store opened."""

    __slots__ = ("_conn", "_next", "feed")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._next = 0  # the next number this transaction hands out (0: ask the table)
        self.feed = Feed(conn, "?")

    def begun(self) -> None:
        """A new transaction starts: forget the numbers and changes the last one held."""
        self._next = 0
        self.feed = Feed(self._conn, "?")

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
        self,
        provider: str | None = None,
        *,
        unborn: bool = False,
        states: Sequence[str] | None = None,
        canonical: str | None = None,
        limit: int | None = None,
    ) -> Iterator[InvoiceRow]:
        sql, args = invoices_query(
            "?", provider, unborn=unborn, states=states, canonical=canonical, limit=limit,
            arrays=False,
        )  # fmt: skip
        for row in self._conn.execute(sql, args):
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

    def chart_records(self) -> Iterator[ChartRecord]:
        sql = f"SELECT {', '.join(ChartRecord._fields)} FROM charts ORDER BY fingerprint"
        for row in self._conn.execute(sql):
            yield ChartRecord._make(row)

    def revision_rows(self) -> Iterator[RevisionRow]:
        for row in self._conn.execute(f"SELECT {_REVISION_NAMES} FROM revisions ORDER BY id"):
            yield RevisionRow._make(row)

    # ------------------------------------------------------------------ writes

    def lock_invoices(self, invoices: Iterable[tuple[str, str]]) -> None:
        """Nothing to do: the transaction holds the database's one write lock."""

    def lock_store(self) -> None:
        """Nothing to do: the transaction holds the database's one write lock."""

    def allocate_seqs(self, n: int) -> list[int]:
        # rows numbered earlier in this transaction may not be inserted yet: count on from them
        row = self._conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM events").fetchone()
        first = max(int(row[0]), self._next)
        self._next = first + n
        return list(range(first, first + n))

    def insert_events(self, rows: Sequence[EventRow]) -> None:
        self._conn.executemany(_INSERT_EVENT, rows)

    def upsert_invoices(self, rows: Sequence[InvoiceRow]) -> None:
        self._conn.executemany(_UPSERT_INVOICE, rows)

    def supersede(self, seq: int, by_seq: int) -> None:
        self._conn.execute(_SUPERSEDE, (f"; superseded by #{by_seq}", seq))

    def revise(self, outcome: RevisedOutcome, revision: RevisionRow | None) -> None:
        if revision is not None:
            self._conn.execute(_INSERT_REVISION, revision)
        self._conn.execute(_REVISE, revise_args(outcome))

    def record_chart(self, chart: ChartRecord) -> None:
        self._conn.execute(_RECORD_CHART, chart)

    def insert_revisions(self, rows: Sequence[RevisionRow]) -> None:
        self._conn.executemany(_INSERT_REVISION, rows)

    def delete_all(self) -> None:
        for table in ("events", "invoices", "revisions", "charts", "changes", "subscribers"):
            self._conn.execute(f"DELETE FROM {table}")
        self._next = 0

    def advance_seqs(self) -> None:
        """Nothing to do: numbers follow ``MAX(seq)``."""

    def begin_copy(self, lock_wait: float) -> None:
        """Nothing to do: the transaction holds the file's one write lock (waited for up to the
        busy timeout), and numbers follow ``MAX(seq)``, rolled back with the rows."""

    # ---------------------------------------------------------- operator views (reads)

    def dead_letter_rows(
        self, provider: str | None = None, *, limit: int | None = None
    ) -> Iterator[EventRow]:
        for row in self._conn.execute(*dead_letters_query("?", provider, limit)):
            yield EventRow._make(row)

    def snapshot_rows(self, provider: str | None = None) -> Iterator[SnapshotRow]:
        for row in self._conn.execute(*snapshots_query("?", provider, collate="")):
            yield SnapshotRow._make(row)
