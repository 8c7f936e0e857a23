"""Reads and writes on a psycopg connection, inside a transaction :class:`PostgresStore` opened.

All of the PostgreSQL store's SQL for the records is here; :mod:`engine.store.postgres` holds
the pool, the transactions and their retries. What makes many writers safe, beside the unique
index on live event ids (:mod:`engine.store._postgres_schema`):

- :meth:`PostgresTx.lock_invoices` takes a transaction-scoped advisory lock per invoice, in
  ascending key order, before the runtime reads the invoice; a write transaction runs at READ
  COMMITTED, so every statement after the lock sees what the previous holder committed. Each
  transaction first takes a *shared* lock on the whole store; one that would need more invoice
  locks than ``max_locks_per_transaction`` (PostgreSQL's lock table is sized by it) takes that
  whole-store lock exclusively instead, and waits for every other writer.
- :meth:`PostgresTx.insert_events` inserts a batch's rows in one statement (``unnest`` over
  an array per column) with ``ON CONFLICT DO NOTHING``, and counts what it inserted: a live
  row that another writer's (committed) row for the same event id kept out means this
  transaction decided on a stale view, so it raises :class:`LiveConflict` and the
  store runs the whole transaction again — now seeing that row, it records a duplicate.
- numbers come from the ``events_seq`` sequence, asked for after the locks are held.

A store fresh from creation has no planner statistics (see ``PostgresStore._analyze``).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from ._postgres_schema import EVENT_COLUMNS, INVOICE_COLUMNS, lock_key
from .base import (
    ChartRecord,
    EventRow,
    InvoiceRow,
    LiveEvent,
    RevisedOutcome,
    RevisionRow,
)

__all__ = ["LiveConflict", "PostgresTx"]

_EVENT_NAMES = ", ".join(EventRow._fields)
_INVOICE_NAMES = ", ".join(InvoiceRow._fields)
_REVISION_NAMES = ", ".join(RevisionRow._fields)
_CHART_NAMES = ", ".join(ChartRecord._fields)


def _params(n: int) -> str:
    return ", ".join(["%s"] * n)


def _arrays(columns: dict[str, str], names: tuple[str, ...]) -> str:
    """``unnest`` over one typed array parameter per column: many rows in one statement
    (arrays sent in binary: no quoting to do for each value)."""
    kinds = (columns[n].split()[0].lower() for n in names)
    return "SELECT * FROM unnest(" + ", ".join(f"%b::{k}[]" for k in kinds) + ")"


def _columns(rows: Sequence[Sequence[object]]) -> list[list[object]]:
    return [list(column) for column in zip(*rows, strict=True)]


_INSERT_EVENT = (
    f"INSERT INTO events ({_EVENT_NAMES}) VALUES ({_params(len(EventRow._fields))})"
    " ON CONFLICT DO NOTHING"
)
_INSERT_EVENTS = (
    f"INSERT INTO events ({_EVENT_NAMES}) {_arrays(EVENT_COLUMNS, EventRow._fields)}"
    " ON CONFLICT DO NOTHING"
)
_ON_INVOICE = """
ON CONFLICT (provider, invoice_id) DO UPDATE SET
  state = excluded.state, canonical = excluded.canonical, version = excluded.version,
  updated_at = excluded.updated_at, last_fold_order = excluded.last_fold_order,
  last_lifecycle_rank = excluded.last_lifecycle_rank, last_event_id = excluded.last_event_id
"""
_UPSERT_INVOICE = (
    f"INSERT INTO invoices ({_INVOICE_NAMES}) VALUES ({_params(len(InvoiceRow._fields))})"
    + _ON_INVOICE
)
_UPSERT_INVOICES = (
    f"INSERT INTO invoices ({_INVOICE_NAMES}) {_arrays(INVOICE_COLUMNS, InvoiceRow._fields)}"
    + _ON_INVOICE
)
# Volatile functions in the select list are evaluated after ORDER BY: in the order given.
_LOCK = (
    "SELECT CASE WHEN i = 1 AND %s THEN pg_advisory_xact_lock_shared(k)"
    " ELSE pg_advisory_xact_lock(k) END"
    " FROM unnest(%b::bigint[]) WITH ORDINALITY AS t(k, i) ORDER BY i"
)
_INSERT_REVISION = (
    f"INSERT INTO revisions ({_REVISION_NAMES}) VALUES ({_params(len(RevisionRow._fields))})"
)
_FOLD_SQL = f"""
SELECT {_EVENT_NAMES} FROM events WHERE provider = %s AND invoice_id = %s AND in_fold = 1
ORDER BY fold_order, lifecycle_rank, event_id
"""
_LAST = 2**63 - 1
_names = itertools.count()


class LiveConflict(Exception):
    """Another writer committed a live row for an event id this transaction also decided."""


class PostgresTx:
    """One transaction's reads and writes (see the module docstring)."""

    def __init__(self, conn: Any, schema: str, lock_limit: int) -> None:
        self._conn = conn
        self._schema = schema
        self._limit = lock_limit
        self._whole_key = lock_key(schema, "store")
        self._held: set[int] = set()
        self._whole = False
        #: A row this transaction inserted: if the connection is lost while committing, its
        #: presence says whether the commit happened.
        self.first_seq: int | None = None
        #: It numbered the 1,000th (10,000th, …) event: the tables have grown tenfold.
        self.grown = False

    def _one(self, sql: str, args: Sequence[object]) -> Any:
        return self._conn.execute(sql, args).fetchone()

    def _many(self, sql: str, rows: Sequence[Sequence[object]]) -> int:
        """Run ``sql`` for each of ``rows`` (pipelined when more than one); rows affected."""
        if len(rows) == 1:
            return int(self._conn.execute(sql, rows[0]).rowcount)
        if not rows:
            return 0
        with self._conn.cursor() as cur:
            cur.executemany(sql, rows)
            return int(cur.rowcount)

    def _stream(self, sql: str, args: Sequence[object] = ()) -> Iterator[Any]:
        """Rows of a query that may be long, fetched in pages through a server-side cursor."""
        with self._conn.cursor(name=f"ie_{next(_names)}") as cur:
            cur.itersize = 1000
            cur.execute(sql, args)
            yield from cur

    # ------------------------------------------------------------------- reads

    def invoice(self, provider: str, invoice_id: str) -> InvoiceRow | None:
        row = self._one(
            f"SELECT {_INVOICE_NAMES} FROM invoices WHERE provider = %s AND invoice_id = %s",
            (provider, invoice_id),
        )
        return None if row is None else InvoiceRow._make(row)

    def invoices_by_id(self, provider: str, invoice_ids: Sequence[str]) -> dict[str, InvoiceRow]:
        if not invoice_ids:
            return {}
        rows = self._conn.execute(
            f"SELECT {_INVOICE_NAMES} FROM invoices"
            " WHERE provider = %s AND invoice_id = ANY(%s::text[])",
            (provider, list(invoice_ids)),
        )
        return {r[1]: InvoiceRow._make(r) for r in rows}

    def invoice_rows(
        self, provider: str | None = None, *, unborn: bool = False
    ) -> Iterator[InvoiceRow]:
        where, args = ("AND provider = %s", (provider,)) if provider is not None else ("", ())
        born = "TRUE" if unborn else "state IS NOT NULL"
        sql = f"SELECT {_INVOICE_NAMES} FROM invoices WHERE {born} {where}"
        for row in self._stream(sql + " ORDER BY provider, invoice_id", args):
            yield InvoiceRow._make(row)

    def live_event(self, provider: str, event_id: str) -> LiveEvent | None:
        row = self._one(
            "SELECT seq, outcome, retryable FROM events"
            " WHERE provider = %s AND event_id = %s AND in_fold = 1",
            (provider, event_id),
        )
        return None if row is None else LiveEvent(row[0], row[1], bool(row[2]))

    def live_events(self, provider: str, event_ids: Sequence[str]) -> dict[str, LiveEvent]:
        if not event_ids:
            return {}
        rows = self._conn.execute(
            "SELECT event_id, seq, outcome, retryable FROM events WHERE provider = %s"
            " AND in_fold = 1 AND event_id = ANY(%s::text[])",
            (provider, list(event_ids)),
        )
        return {e: LiveEvent(seq, outcome, bool(r)) for e, seq, outcome, r in rows}

    def fold_rows(self, provider: str, invoice_id: str) -> list[EventRow]:
        rows = self._conn.execute(_FOLD_SQL, (provider, invoice_id))
        return [EventRow._make(row) for row in rows]

    def history_rows(self, provider: str, invoice_id: str) -> list[EventRow]:
        rows = self._conn.execute(
            f"SELECT {_EVENT_NAMES} FROM events WHERE provider = %s AND invoice_id = %s"
            " ORDER BY in_fold DESC, fold_order, lifecycle_rank, event_id, seq",
            (provider, invoice_id),
        )
        return [EventRow._make(row) for row in rows]

    def folded_invoices(self, provider: str | None = None) -> list[tuple[str, str]]:
        where, args = ("AND provider = %s", (provider,)) if provider is not None else ("", ())
        rows = self._conn.execute(
            "SELECT DISTINCT provider, invoice_id FROM events"
            f" WHERE in_fold = 1 AND invoice_id IS NOT NULL {where}",
            args,
        )
        return [(p, i) for p, i in rows]

    def outcome_counts(self, provider: str | None = None) -> dict[str, int]:
        where, args = ("WHERE provider = %s", (provider,)) if provider is not None else ("", ())
        rows = self._conn.execute(
            f"SELECT outcome, COUNT(*) FROM events {where} GROUP BY outcome", args
        )
        return {outcome: n for outcome, n in rows}

    def event_rows(self, first: int = 1, last: int | None = None) -> Iterator[EventRow]:
        sql = f"SELECT {_EVENT_NAMES} FROM events WHERE seq BETWEEN %s AND %s ORDER BY seq"
        for row in self._stream(sql, (first, last if last is not None else _LAST)):
            yield EventRow._make(row)

    def chart_record(self, fingerprint: str) -> ChartRecord | None:
        row = self._one(f"SELECT {_CHART_NAMES} FROM charts WHERE fingerprint = %s", (fingerprint,))
        return None if row is None else ChartRecord._make(row)

    def chart_records(self) -> Iterator[ChartRecord]:
        for row in self._stream(f"SELECT {_CHART_NAMES} FROM charts ORDER BY fingerprint"):
            yield ChartRecord._make(row)

    def revisions_caused(self, first: int, last: int | None = None) -> dict[int, int]:
        rows = self._conn.execute(
            "SELECT cause_seq, COUNT(*) FROM revisions WHERE cause_seq BETWEEN %s AND %s"
            " GROUP BY cause_seq",
            (first, last if last is not None else _LAST),
        )
        return {seq: n for seq, n in rows}

    def chart_versions(self, provider: str | None = None) -> dict[tuple[str, str | None], int]:
        where, args = ("AND provider = %s", (provider,)) if provider is not None else ("", ())
        rows = self._conn.execute(
            "SELECT provider, chart, COUNT(*) FROM events"
            f" WHERE in_fold = 1 AND invoice_id IS NOT NULL {where} GROUP BY provider, chart",
            args,
        )
        return {(p, c): n for p, c, n in rows}

    def revision_rows(self) -> Iterator[RevisionRow]:
        for row in self._stream(f"SELECT {_REVISION_NAMES} FROM revisions ORDER BY id"):
            yield RevisionRow._make(row)

    # ------------------------------------------------------------------ writes

    def lock_invoices(self, invoices: Iterable[tuple[str, str]]) -> None:
        if self._whole:
            return
        keys = {lock_key(self._schema, "invoice", p, i) for p, i in invoices} - self._held
        if not keys:
            return
        if len(self._held) + len(keys) >= self._limit:
            # more locks than the lock table is sized for: the whole store, exclusively
            self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._whole_key,))
            self._whole = True
            return
        # The whole store, shared, before any invoice; then the invoices in ascending order:
        # one order for every writer, in one statement.
        first = not self._held
        ordered = [self._whole_key, *sorted(keys)] if first else sorted(keys)
        self._conn.execute(_LOCK, (first, ordered))
        self._held |= keys

    def allocate_seqs(self, n: int) -> list[int]:
        if n <= 0:
            return []
        rows = self._conn.execute(
            "SELECT nextval('events_seq') FROM generate_series(1, %s)", (n,)
        ).fetchall()
        seqs = sorted(r[0] for r in rows)
        self.grown = self.grown or len(str(seqs[-1])) > len(str(seqs[0] - 1)) >= 3
        return seqs

    def insert_events(self, rows: Sequence[EventRow]) -> None:
        if not rows:
            return
        if len(rows) == 1:
            inserted = self._conn.execute(_INSERT_EVENT, rows[0]).rowcount
        else:
            inserted = self._conn.execute(_INSERT_EVENTS, _columns(rows)).rowcount
        if inserted != len(rows):
            raise LiveConflict(f"{len(rows) - inserted} live row(s) already written by another")
        if self.first_seq is None:
            self.first_seq = rows[0].seq

    def upsert_invoices(self, rows: Sequence[InvoiceRow]) -> None:
        if len(rows) == 1:
            self._conn.execute(_UPSERT_INVOICE, rows[0])
        elif rows:
            self._conn.execute(_UPSERT_INVOICES, _columns(rows))

    def supersede(self, seq: int, by_seq: int) -> None:
        self._conn.execute(
            "UPDATE events SET in_fold = 0, reason = reason || %s WHERE seq = %s",
            (f"; superseded by #{by_seq}", seq),
        )

    def revise(self, outcome: RevisedOutcome, revision: RevisionRow | None) -> None:
        if revision is not None:
            self._conn.execute(_INSERT_REVISION, revision)
        self._conn.execute(
            "UPDATE events SET outcome = %s, reason = %s, from_state = %s, to_state = %s,"
            " trigger = %s, retryable = %s, adopted = %s, revisions = %s, policy = %s,"
            " chart = %s, inferred = %s WHERE seq = %s",
            (outcome.outcome, outcome.reason, outcome.from_state, outcome.to_state,
             outcome.trigger, outcome.retryable, outcome.adopted, outcome.revisions,
             outcome.policy, outcome.chart, outcome.inferred, outcome.seq),
        )  # fmt: skip

    def record_chart(self, chart: ChartRecord) -> None:
        self._conn.execute(
            f"INSERT INTO charts ({_CHART_NAMES}) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (fingerprint) DO NOTHING",
            chart,
        )

    def insert_revisions(self, rows: Sequence[RevisionRow]) -> None:
        self._many(_INSERT_REVISION, rows)

    def delete_all(self) -> None:
        self._conn.execute("TRUNCATE events, invoices, revisions, charts RESTART IDENTITY")

    def advance_seqs(self) -> None:
        self._conn.execute(
            "SELECT setval('events_seq', COALESCE(MAX(seq), 0) + 1, false) FROM events"
        )
