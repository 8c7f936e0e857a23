"""Reads and writes on a psycopg connection, inside a transaction :class:`PostgresStore` opened.

All of the PostgreSQL store's SQL for the records is here; :mod:`engine.store.postgres` holds
the pool, the transactions and their retries. What makes many writers safe, beside the unique
index on live event ids (:mod:`engine.store._postgres_schema`):

- :meth:`PostgresTx.lock_invoices` row-locks one row per invoice in ``invoice_locks`` (inserting
  it the first time), in ascending key order, in one statement, before the runtime reads the
  invoice; a write transaction runs at READ COMMITTED, so every statement after the lock sees
  what the previous holder committed. Row locks are kept on the rows themselves, so a batch of
  any size holds one per invoice (advisory locks would fill the server's shared lock table,
  sized by ``max_locks_per_transaction``, and fail other sessions with "out of shared memory").
  Each writer first takes a transaction-scoped advisory lock on the whole store, *shared*;
  :meth:`PostgresTx.lock_store` takes it exclusively (a copy replacing everything, a re-chart).
- :meth:`PostgresTx.insert_events` inserts a batch's rows pipelined (psycopg's
  ``executemany``: one round trip, values dumped by its C code, where an ``unnest`` over one
  array per column spent more time building the arrays in Python) with
  ``ON CONFLICT DO NOTHING``, and counts what it inserted: a live
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

from ._feed_sql import NUMBER_AT_COMMIT, Feed
from ._postgres_schema import feed_channel, lock_key
from ._statements import (
    CHART_NAMES,
    EVENT_NAMES,
    FOLD,
    INSERT_REVISION,
    INVOICE_NAMES,
    RECORD_CHART,
    REVISE,
    REVISION_NAMES,
    SUPERSEDE,
    UPSERT_INVOICE,
    marks,
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

__all__ = ["LiveConflict", "PostgresTx"]

_EVENT_NAMES, _INVOICE_NAMES = EVENT_NAMES, INVOICE_NAMES
_REVISION_NAMES, _CHART_NAMES = REVISION_NAMES, CHART_NAMES


_INSERT_EVENT = (
    f"INSERT INTO events ({_EVENT_NAMES}) VALUES ({marks(len(EventRow._fields))})"
    " ON CONFLICT DO NOTHING"
)
_UPSERT_INVOICE = UPSERT_INVOICE
# One row per invoice ever locked, keyed by its lock key: inserted if absent, else row-locked
# by the ON CONFLICT (an update "WHERE false" locks the row and writes nothing), in ascending
# key order, in one statement. Row locks live on the rows, not in the server's shared lock
# table: a transaction may hold any number of them.
_LOCK_TAIL = (
    " unnest(%b::bigint[]) AS t(k) ORDER BY k"
    " ON CONFLICT (key) DO UPDATE SET key = excluded.key WHERE false"
)
_LOCK_ROWS = "INSERT INTO invoice_locks (key) SELECT k FROM" + _LOCK_TAIL
# The first time, the whole store's lock (shared) in the same statement: the sort reads all of
# its input, the lock's row included, before the first row is inserted.
_LOCK_SHARED_AND_ROWS = (
    "WITH store AS MATERIALIZED (SELECT pg_advisory_xact_lock_shared(%s))"
    " INSERT INTO invoice_locks (key) SELECT k FROM store," + _LOCK_TAIL
)
_LOCK_SHARED = "SELECT pg_advisory_xact_lock_shared(%s)"
_INSERT_REVISION, _FOLD_SQL = INSERT_REVISION, FOLD
_LAST = 2**63 - 1
_names = itertools.count()


class LiveConflict(Exception):
    """Another writer committed a live row for an event id this transaction also decided."""


class PostgresTx:
    """One transaction's reads and writes (see the module docstring)."""

    def __init__(self, conn: Any, schema: str, *, legacy: bool = False) -> None:
        self._conn = conn
        self._schema = schema
        self._whole_key = lock_key(schema, "store")
        self.feed = Feed(conn, "%s", self._lock_feed, self.hold_store, legacy=legacy,
                         provisional=lambda: int(self.current_xid(assign=True) or 0))  # fmt: skip
        self._held: set[int] = set()
        self._shared = False
        self._whole = False
        #: The transaction's id, once known: if the answer to COMMIT is lost, the server still
        #: knows whether it committed.
        self.xid: str | None = None
        #: It numbered the 1,000th (10,000th, …) event: the tables have grown tenfold.
        self.grown = False
        #: It wrote to the changes feed: the channel to notify once it has committed.
        self.notify: str | None = None

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
        self,
        provider: str | None = None,
        *,
        unborn: bool = False,
        states: Sequence[str] | None = None,
        canonical: str | None = None,
        limit: int | None = None,
    ) -> Iterator[InvoiceRow]:
        sql, args = invoices_query(
            "%s", provider, unborn=unborn, states=states, canonical=canonical, limit=limit,
            arrays=True,
        )  # fmt: skip
        for row in self._stream(sql, args):
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
            self.hold_store()  # no invoice, but writing: not beside lock_store
            return
        if self._shared:
            self._conn.execute(_LOCK_ROWS, (sorted(keys),))
        else:  # the whole store, shared, first: a writer holding it alone (lock_store) excludes us
            self._conn.execute(_LOCK_SHARED_AND_ROWS, (self._whole_key, sorted(keys)))
            self._shared = True
        self._held |= keys

    def hold_store(self) -> None:
        """The whole store, shared, if not held yet: what every writer holds while it writes,
        so that :meth:`lock_store` waits for it (and it for lock_store)."""
        if not (self._shared or self._whole):
            self._conn.execute(_LOCK_SHARED, (self._whole_key,))
            self._shared = True

    def _lock_feed(self) -> None:
        """The feed's lock (as ``NUMBER_AT_COMMIT`` takes it), held to the commit: for a
        transaction with too many entries to number them provisionally."""
        self._conn.execute(NUMBER_AT_COMMIT.split(";")[0])
        self.notify = feed_channel(self._schema)

    def current_xid(self, *, assign: bool) -> str | None:
        """This transaction's id (``assign``: giving it one if it has none yet)."""
        if self.xid is None:
            ask = "pg_current_xact_id()" if assign else "pg_current_xact_id_if_assigned()"
            self.xid = self._one(f"SELECT {ask}::text", ())[0]
        return self.xid

    @property
    def commit_sql(self) -> str:
        """What commits this transaction: with the feed's entries numbered, if it wrote any
        (see ``NUMBER_AT_COMMIT``)."""
        if self.feed.deferred:
            self.notify = feed_channel(self._schema)
            return NUMBER_AT_COMMIT
        return "COMMIT"

    def lock_store(self) -> None:
        if self._whole:
            return
        if self._shared or self._held:
            raise RuntimeError("lock_store() must come before any other lock of the transaction")
        self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._whole_key,))
        self._whole = True

    def allocate_seqs(self, n: int) -> list[int]:
        if n <= 0:
            return []
        rows = self._conn.execute(
            "SELECT nextval('events_seq'), pg_current_xact_id()::text FROM generate_series(1, %s)",
            (n,),
        ).fetchall()
        seqs = sorted(r[0] for r in rows)
        self.xid = rows[0][1]
        self.grown = self.grown or len(str(seqs[-1])) > len(str(seqs[0] - 1)) >= 3
        return seqs

    def insert_events(self, rows: Sequence[EventRow]) -> None:
        if not rows:
            return
        inserted = self._many(_INSERT_EVENT, rows)
        if inserted != len(rows):
            raise LiveConflict(f"{len(rows) - inserted} live row(s) already written by another")

    def upsert_invoices(self, rows: Sequence[InvoiceRow]) -> None:
        self._many(_UPSERT_INVOICE, rows)

    def supersede(self, seq: int, by_seq: int) -> None:
        self._conn.execute(SUPERSEDE, (f"; superseded by #{by_seq}", seq))

    def revise(self, outcome: RevisedOutcome, revision: RevisionRow | None) -> None:
        if revision is not None:
            self._conn.execute(_INSERT_REVISION, revision)
        self._conn.execute(REVISE, revise_args(outcome))

    def record_chart(self, chart: ChartRecord) -> None:
        self._conn.execute(RECORD_CHART, chart)

    def insert_revisions(self, rows: Sequence[RevisionRow]) -> None:
        self._many(_INSERT_REVISION, rows)

    def delete_all(self) -> None:
        self._conn.execute(
            "TRUNCATE events, invoices, revisions, charts, changes, subscribers RESTART IDENTITY"
        )

    def advance_seqs(self) -> None:
        # never lower: setval is not undone by a rollback, and a failed --replace from a smaller
        # store must not leave numbers below rows that stay (a gap costs nothing)
        self._conn.execute(
            "SELECT setval('events_seq', GREATEST(COALESCE(MAX(seq), 0),"
            " (SELECT last_value FROM events_seq)) + 1, false) FROM events"
        )

    def begin_copy(self, lock_wait: float) -> None:
        # a lock waited for longer fails the statement (55P03) instead of waiting for ever: a
        # session of the same process reading the tables TRUNCATE empties would never let go
        wait = f"{max(1, round(lock_wait * 1000))}ms"
        self._conn.execute("SELECT set_config('lock_timeout', %s, true)", (wait,))
        self.lock_store()
        self.grown = True  # the store runs ANALYZE after the commit: the tables are new

    # ---------------------------------------------------------- operator views (reads)

    def dead_letter_rows(
        self, provider: str | None = None, *, limit: int | None = None
    ) -> Iterator[EventRow]:
        for row in self._stream(*dead_letters_query("%s", provider, limit)):
            yield EventRow._make(row)

    def snapshot_rows(self, provider: str | None = None) -> Iterator[SnapshotRow]:
        for row in self._stream(*snapshots_query("%s", provider, collate=' COLLATE "C"')):
            yield SnapshotRow._make(row)
