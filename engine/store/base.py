"""The store interface: everything the runtime asks of persistence, in typed records.

The runtime never writes SQL and never holds a connection: it opens a transaction on a
:class:`Store` — :meth:`Store.read` for a consistent snapshot of committed data,
:meth:`Store.write` for one atomic write — and talks to it in the records below. Rows are
``NamedTuple``\\ s: read by name, and handed to the database driver as they are (a row *is* the
tuple of its columns, in column order), so the per-delivery path builds no second copy.

``events.status`` is the provider's status snapshot; ``events.outcome`` is the engine's verdict.
The *fold key* of a live event — ``(fold_order, lifecycle_rank, event_id)`` — is the order it counts
in: occurrence time in microseconds since the epoch and the lifecycle rank for charts with
event times, the arrival sequence number for charts without.

**Concurrent writers.** A store may let several writers (processes, machines) work at once, so
the runtime keeps to three rules that make any interleaving equal a sequential run: it takes
:meth:`WriteTx.lock_invoices` for every invoice a transaction will touch *before* reading them;
it numbers rows only after that (:meth:`WriteTx.allocate_seqs`), so on each invoice the numbers
follow the order its writers took turns; and it runs a write through :meth:`Store.transact`,
which may run it again from the start after a transient failure — so it computes everything from
what it reads inside the transaction.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import NamedTuple, Protocol, TypeVar

from .feed import FeedReads, FeedWrites
from .views import SnapshotRow

__all__ = [
    "NO_KEY",
    "ChartRecord",
    "EventRow",
    "FoldKey",
    "InvoiceRow",
    "LiveEvent",
    "ReadTx",
    "RevisedOutcome",
    "RevisionRow",
    "Store",
    "WriteTx",
]

T = TypeVar("T")


class FoldKey(NamedTuple):
    """Where an event sorts in its invoice's fold."""

    time: int
    rank: int
    event_id: str


#: The key before every event: an invoice nothing has been folded into yet.
NO_KEY = FoldKey(-1, -1, "")


class LiveEvent(NamedTuple):
    """The row that stands for an event id in its invoice's fold, as dedup needs it."""

    seq: int
    outcome: str
    retryable: bool


class EventRow(NamedTuple):
    """One row of ``events``: one delivery, whatever its outcome, with its raw bytes."""

    seq: int
    provider: str
    event_id: str | None
    #: 1 for the row that counts for its event id; 0 for duplicates, invalid, superseded rows.
    in_fold: int
    invoice_id: str | None
    event_type: str | None
    trigger: str | None
    #: The provider's status snapshot carried by the delivery (not the engine's outcome).
    status_snapshot: str | None
    #: The engine's verdict: applied, unchanged, duplicate, rejected or invalid.
    outcome: str
    reason: str | None
    from_state: str | None
    to_state: str | None
    retryable: int
    adopted: int
    occurred_at: str | None
    #: Occurrence time in µs since the epoch (arrival number for charts without event times).
    fold_order: int | None
    #: Breaks ties in ``fold_order``: earlier in the lifecycle first.
    lifecycle_rank: int | None
    received_at: str
    revisions: int
    headers: str | None
    body: bytes
    #: The ``on_unknown`` policy it was decided under (``None``: written before it was recorded).
    policy: str | None
    #: The fingerprint of the chart it was decided with (``None``: written before it was recorded).
    chart: str | None
    #: JSON list of the steps inferred to catch up with the status snapshot, or ``None``.
    inferred: str | None
    #: 1: the delivery's signature was verified; 0: accepted unsigned (the provider was opened
    #: without a secret); ``None``: not checked (applied through the library or the CLI).
    verified: int | None

    @property
    def key(self) -> FoldKey:
        """The event's fold key (live rows about an invoice always have one)."""
        return FoldKey(self.fold_order or 0, self.lifecycle_rank or 0, self.event_id or "")


class InvoiceRow(NamedTuple):
    """One row of ``invoices``. ``state`` is ``None`` while only rejected events are known."""

    provider: str
    invoice_id: str
    state: str | None
    canonical: str | None
    #: Bumped every time an event is folded into the invoice.
    version: int
    #: When this engine first recorded the invoice (processing time, not the provider's date).
    first_seen_at: str
    updated_at: str
    #: The fold key of the last event folded in, to tell a late arrival in O(1).
    last_fold_order: int
    last_lifecycle_rank: int
    last_event_id: str

    @property
    def key(self) -> FoldKey:
        return FoldKey(self.last_fold_order, self.last_lifecycle_rank, self.last_event_id)


class RevisedOutcome(NamedTuple):
    """An event's outcome as a re-fold decided it anew."""

    seq: int
    outcome: str
    reason: str | None
    from_state: str | None
    to_state: str | None
    trigger: str | None
    retryable: int
    adopted: int
    revisions: int
    policy: str | None
    chart: str | None
    inferred: str | None


class ChartRecord(NamedTuple):
    """One version of a chart that decided events: its spec as JSON, by fingerprint."""

    fingerprint: str
    provider: str
    spec: str
    recorded_at: str


class RevisionRow(NamedTuple):
    """One row of ``revisions``: an outcome a late event's re-fold changed, before and after."""

    seq: int
    cause_seq: int | None
    revised_at: str
    old_outcome: str
    new_outcome: str
    old_from: str | None
    old_to: str | None
    new_from: str | None
    new_to: str | None
    old_reason: str | None
    new_reason: str | None


class ReadTx(Protocol):
    """Reads inside one transaction: every answer comes from the same committed snapshot."""

    @property
    def feed(self) -> FeedReads:
        """The changes feed (:mod:`engine.store.feed`)."""
        ...

    def invoice(self, provider: str, invoice_id: str) -> InvoiceRow | None:
        """The invoice's row, or ``None``."""
        ...

    def invoices_by_id(self, provider: str, invoice_ids: Sequence[str]) -> dict[str, InvoiceRow]:
        """The rows of those invoices that exist, by invoice id."""
        ...

    def invoice_rows(
        self,
        provider: str | None = None,
        *,
        unborn: bool = False,
        states: Sequence[str] | None = None,
        canonical: str | None = None,
        limit: int | None = None,
    ) -> Iterator[InvoiceRow]:
        """Every invoice with a known state (of one provider), by provider and id; with
        ``unborn``, also those only seen through rejected events (``state`` is ``None``); only
        those in one of ``states`` and in ``canonical``, when given; at most ``limit``."""
        ...

    def live_event(self, provider: str, event_id: str) -> LiveEvent | None:
        """The live row of an event id, or ``None``."""
        ...

    def live_events(self, provider: str, event_ids: Sequence[str]) -> dict[str, LiveEvent]:
        """The live rows of those event ids that have one, by event id."""
        ...

    def fold_rows(self, provider: str, invoice_id: str) -> list[EventRow]:
        """The invoice's live events in fold order."""
        ...

    def history_rows(self, provider: str, invoice_id: str) -> list[EventRow]:
        """Every row about the invoice: live ones in fold order, then the others by arrival."""
        ...

    def folded_invoices(self, provider: str | None = None) -> list[tuple[str, str]]:
        """Every (provider, invoice id) that has live events."""
        ...

    def outcome_counts(self, provider: str | None = None) -> dict[str, int]:
        """How many rows ended in each outcome."""
        ...

    def event_rows(self, first: int = 1, last: int | None = None) -> Iterator[EventRow]:
        """Every event row (numbered ``first`` to ``last``), by arrival."""
        ...

    def revision_rows(self) -> Iterator[RevisionRow]:
        """Every revision, in the order they were written."""
        ...

    def chart_record(self, fingerprint: str) -> ChartRecord | None:
        """The chart version recorded under ``fingerprint``."""
        ...

    def revisions_caused(self, first: int, last: int | None = None) -> dict[int, int]:
        """How many revisions each event numbered ``first`` to ``last`` caused, by its seq."""
        ...

    def chart_versions(self, provider: str | None = None) -> dict[tuple[str, str | None], int]:
        """How many live events each (provider, chart fingerprint) decided."""
        ...

    def chart_records(self) -> Iterator[ChartRecord]:
        """Every recorded chart version, by fingerprint."""
        ...

    def dead_letter_rows(
        self, provider: str | None = None, *, limit: int | None = None
    ) -> Iterator[EventRow]:
        """Live events (of one provider) ``rejected`` as ``retryable`` — waiting for a delivery
        that could make them legal — by ``seq``; at most ``limit``."""
        ...

    def snapshot_rows(self, provider: str | None = None) -> Iterator[SnapshotRow]:
        """Every invoice with a known state (of one provider) that a live event carrying a
        status snapshot is about, beside the last such event in its fold; by provider and id."""
        ...


class WriteTx(ReadTx, Protocol):
    """One atomic write: everything done through it commits together or not at all."""

    @property
    def feed(self) -> FeedWrites:
        """The changes feed: entries appended are written as the transaction commits."""
        ...

    def lock_invoices(self, invoices: Iterable[tuple[str, str]]) -> None:
        """Hold these (provider, invoice id) until the transaction ends: another writer that
        asks for one of them waits. Take them before reading the invoices, all in one call:
        a store takes one call's locks in one order, so writers that each lock once never
        deadlock (locking again later can: the database then fails one, and
        :meth:`Store.transact` runs it again)."""
        ...

    def lock_store(self) -> None:
        """Hold the whole store until the transaction ends, alone: every other writer waits,
        and this waits for those already writing (a copy replacing the store, a re-chart of
        every invoice). Take it first, before reading anything."""
        ...

    def allocate_seqs(self, n: int) -> list[int]:
        """``n`` arrival numbers for rows about to be inserted, increasing, each above every
        number handed out before them. Ask after :meth:`lock_invoices`."""
        ...

    def insert_events(self, rows: Sequence[EventRow]) -> None:
        """Insert rows. A second live row for an event id is never written: the transaction
        fails and :meth:`Store.transact` runs it again, when it sees the first."""
        ...

    def upsert_invoices(self, rows: Sequence[InvoiceRow]) -> None:
        """Insert or update; an existing row keeps its ``first_seen_at``."""
        ...

    def supersede(self, seq: int, by_seq: int) -> None:
        """Retire live row ``seq``: a retry (``by_seq``) of the same event now stands for it."""
        ...

    def revise(self, outcome: RevisedOutcome, revision: RevisionRow | None) -> None:
        """Rewrite an event's outcome after a re-fold, recording the revision when given."""
        ...

    def record_chart(self, chart: ChartRecord) -> None:
        """Keep a chart version (once: a fingerprint already recorded is left as it is)."""
        ...

    def insert_revisions(self, rows: Sequence[RevisionRow]) -> None:
        """Append revisions as they are (a copy of another store's)."""
        ...

    def delete_all(self) -> None:
        """Remove every row of every table (a copy replacing what a store held)."""
        ...

    def advance_seqs(self) -> None:
        """Make numbers allocated from now on follow the highest ``seq`` stored, after rows were
        inserted with numbers of their own (a copy); never lowered (a gap costs nothing)."""
        ...

    def begin_copy(self, lock_wait: float) -> None:
        """Make this a copy's transaction, which writes a whole store; call it first. It takes
        the whole store (:meth:`lock_store`), waits at most ``lock_wait`` seconds for that or any
        other lock (then fails, writing nothing, instead of hanging), and has the query
        planner's statistics refreshed once it commits."""
        ...


class Store(Protocol):
    """A database the engine records into."""

    #: Opened for reading only: :meth:`write` raises.
    readonly: bool

    @property
    def name(self) -> str:
        """The database, for messages: its path, or its URL without the password."""
        ...

    def identity(self) -> tuple[object, ...]:
        """Which database this is, as the database itself tells (a file's device and inode, a
        server's cluster, database and schema): equal for two stores over the same tables,
        however their names are spelled."""
        ...

    def read(self) -> AbstractContextManager[ReadTx]:
        """A read-only transaction over a consistent snapshot of committed data."""
        ...

    def write(self) -> AbstractContextManager[WriteTx]:
        """A write transaction; it commits when the block ends and rolls back on an error.
        It is tried once: the runtime writes through :meth:`transact`."""
        ...

    def wait_for_changes(
        self, after: int, *, timeout: float, stop: threading.Event | None = None
    ) -> None:
        """Return once the changes feed holds an entry after cursor ``after`` — or when
        ``timeout`` seconds have passed, or ``stop`` is set (so callers check again)."""
        ...

    def transact(self, work: Callable[[WriteTx], T]) -> T:
        """Run ``work`` in a write transaction and commit, returning what it returned.

        A transient failure — a serialization failure or deadlock the database reports, a
        connection lost before the commit — rolls the transaction back and runs ``work`` again
        from the start, a bounded number of times; so ``work`` must compute everything from
        what it reads through the transaction. Nothing is ever written twice.

        Raises:
            StoreError: the store is read-only, or the write failed (nothing of it is written).
        """
        ...

    def close(self) -> None: ...
