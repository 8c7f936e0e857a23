"""The engine: webhook deliveries in, true invoice state and a lossless history out.

For every delivery: **read** it through the chart's delivery map (unreadable: ``invalid``);
**deduplicate** on (provider, event id); **decide** with the chart's machine from the invoice's
current state (:mod:`engine.runtime.decide`); **record** the event row and the invoice row in
the same transaction. Nothing a user sent is dropped: invalid deliveries and duplicates are rows
too.

**Order.** When a chart says where a delivery's occurrence time lives, every invoice's events
are folded in *fold order* — (occurrence time, lifecycle rank, event id) — whatever order they
arrived in. An event that arrives late (its key sorts before the invoice's last folded event)
re-folds that invoice's live events from the start: the final state and every recorded outcome
are then exactly those of a sorted arrival, and each outcome that changed is written to the
``revisions`` table. This costs O(that invoice's events). Charts without occurrence times fold
in arrival order; there a redelivery of an event that was rejected as ``retryable`` is decided
again (the earlier attempt is kept, marked as superseded) — that is how "retry later" works.

**Batches.** :meth:`Engine.apply_many` runs many deliveries per transaction (the write path is
:mod:`engine.runtime._batch`); the results are identical to applying one by one, because both go
through the same ``Batch``. Deliveries are read before the write transaction starts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from itertools import groupby
from operator import attrgetter
from pathlib import Path
from typing import Any, NamedTuple

from ..chart import Chart, load_chart
from ..errors import ChartError, EngineError, UnknownProvider
from ..models import Change, Drift, InvoiceState, Outcome, ReplayReport
from ..store import open_store
from ..store.base import WriteTx
from ..store.sqlite import Synchronous
from . import _views
from ._batch import Batch, invoices_of
from ._clock import utc_now
from ._gc import paused
from ._receive import Received, read_chunk, receive
from ._views import as_invoice_state, as_outcome, find_dead_letters, find_drift, invoice_states
from .decide import OnUnknown
from .delivery import Oversized
from .feed import to_change
from .replay import replay
from .versions import Versions

__all__ = ["Body", "Delivery", "Engine", "Prepared"]

Body = bytes | bytearray | memoryview | str | Mapping[str, Any] | Oversized
Delivery = Body | tuple[Body, Mapping[str, Any] | None]


class Prepared(NamedTuple):
    """A delivery read by :meth:`Engine.prepare`, waiting for :meth:`Engine.commit`."""

    provider: str
    received: Received


class Engine:
    """Applies webhook deliveries to invoices, recording everything in a store.

    Args:
        db: a SQLite file path (created, owner-only, WAL, in a folder that exists),
            ``":memory:"``, or a PostgreSQL URL (``postgresql://user@host:5432/dbname``; the
            ``postgres`` extra) that many processes and machines may write at once.
        chart_dir: a folder of your own charts, used beside the bundled ones.
        charts: charts to use by provider name, overriding files (e.g. built in code).
        on_unknown: an invoice first seen through a non-creating event: ``"adopt"`` its status
            snapshot (recorded as adopted), or ``"reject"`` the event (``retryable``). Recorded
            with every event, so a re-fold decides each event under the policy it came under.
        synchronous: SQLite's durability setting; ``"NORMAL"`` (default, WAL: durable across
            process crashes, may lose the last transactions on power loss) or ``"FULL"``.
        batch_size: deliveries per transaction in :meth:`apply_many` (at least 1).
        clock: the current time in UTC (default: the system clock); the engine reads time
            nowhere else.
        readonly: open an existing database for reading only: nothing is created, upgraded or
            written (the CLI's read commands use this).

    Raises:
        EngineError: a bad argument; :class:`~engine.StoreError` when ``db`` can't be opened
            (it names the file and why).
    """

    def __init__(
        self,
        db: str | Path = "invoices.db",
        *,
        chart_dir: str | Path | None = None,
        charts: Mapping[str, Chart] | None = None,
        on_unknown: OnUnknown = "adopt",
        synchronous: Synchronous = "NORMAL",
        batch_size: int = 2000,
        clock: Callable[[], datetime] = utc_now,
        readonly: bool = False,
    ) -> None:
        if on_unknown not in ("adopt", "reject"):
            raise EngineError(f"on_unknown={on_unknown!r}; choose 'adopt' or 'reject'")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise EngineError(f"batch_size={batch_size!r}; give a whole number of at least 1")
        if chart_dir is not None and not Path(chart_dir).is_dir():
            raise EngineError(f"chart_dir={str(chart_dir)!r} is not a folder")
        for name, chart in (charts or {}).items():
            if not isinstance(chart, Chart):
                raise EngineError(f"charts[{name!r}] is {chart!r}; give a Chart (load_chart)")
            _check_name(chart, name)
        now = clock()
        if not isinstance(now, datetime) or now.tzinfo is None:
            raise EngineError(f"clock() returned {now!r}; give a datetime with a time zone (UTC)")
        self.store = open_store(db, synchronous=synchronous, readonly=readonly)
        self.chart_dir = chart_dir
        self._charts: dict[str, Chart] = dict(charts or {})
        self._versions: dict[str, Versions] = {}
        self.on_unknown: OnUnknown = on_unknown
        self.batch_size = batch_size
        self.clock = clock

    def chart(self, provider: str) -> Chart:
        """The chart for ``provider``.

        Raises:
            UnknownProvider: no such chart; if the database holds that provider's events, the
                message says to pass ``chart_dir``.
            ChartError: the chart file is broken, or names another provider than its file.
        """
        chart = self._charts.get(provider)
        if chart is None:
            try:
                chart = load_chart(provider, self.chart_dir)
            except UnknownProvider as exc:
                with self.store.read() as tx:
                    known = provider in {p for p, _ in tx.chart_versions()}
                if known:
                    raise UnknownProvider(
                        provider,
                        exc.available,
                        hint=f"the database holds {provider!r} events, but its chart is not "
                        f"loaded: pass chart_dir (--chart-dir) with {provider}.yaml",
                    ) from None
                raise
            _check_name(chart, provider)
            self._charts[provider] = chart
        return chart

    def _versions_of(self, provider: str) -> Versions:
        chart = self.chart(provider)
        versions = self._versions.get(provider)
        if versions is None or versions.current is not chart:
            versions = self._versions[provider] = Versions(chart, self.clock())
        return versions

    def prepare(
        self,
        provider: str,
        body: Body,
        headers: Mapping[str, Any] | None = None,
        *,
        verified: bool | None = None,
    ) -> Prepared:
        """Read one delivery for :meth:`commit`, outside any transaction (the costly part).

        Args:
            verified: record that the delivery's signature was checked (``True``), or that it
                was accepted unsigned (``False``); ``None``: not checked here.

        Raises:
            UnknownProvider: no chart for ``provider``.
        """
        chart = self._versions_of(provider).current
        received = receive(chart, body, headers, self.clock())
        if verified is not None:
            received = received._replace(verified=int(verified))
        return Prepared(provider, received)

    def commit(self, prepared: Sequence[Prepared]) -> list[Outcome]:
        """Apply prepared deliveries, of any providers, in one durable transaction: what a
        receiver answering many requests at once does (group commit: one fsync for all).

        The outcomes are in the order given, and equal to applying them one by one.

        Raises:
            StoreError: the database can't be written (nothing of any of them is).
        """
        # runs of one provider's deliveries, in order: rows are numbered (seq) as they arrived
        runs = groupby(prepared, attrgetter("provider"))
        return self._commit([(p, [i.received for i in run]) for p, run in runs])

    def _commit(self, runs: list[tuple[str, list[Received]]]) -> list[Outcome]:
        versions = {p: self._versions_of(p) for p in dict.fromkeys(p for p, _ in runs)}

        def work(tx: WriteTx) -> list[Outcome]:  # may run again: see Store.transact
            # every invoice locked at once, in one order, before any is read
            tx.lock_invoices(k for p, received in runs for k in invoices_of(p, received))
            outcomes: list[Outcome] = []
            batches: dict[str, Batch] = {}
            for provider, received in runs:
                if provider not in batches:
                    batches[provider] = Batch(tx, versions[provider], self.on_unknown, self.clock)
                outcomes += batches[provider].run(received)
                batches[provider].flush()  # before another provider's batch numbers its rows
            return outcomes

        outcomes = self.store.transact(work)
        for v in versions.values():
            v.recorded = True  # committed: the chart version is in the store for good
        return outcomes

    def apply(self, provider: str, body: Body, headers: Mapping[str, Any] | None = None) -> Outcome:
        """Apply one delivery in its own durable transaction.

        Never raises for what the delivery holds: whatever ``body`` and ``headers`` are (the
        wrong types included), an unreadable delivery is recorded as ``invalid`` with a reason.

        Raises:
            UnknownProvider: no chart for ``provider``.
            StoreError: the database can't be written (nothing of the delivery is).
        """
        return self._commit([(provider, [self.prepare(provider, body, headers).received])])[0]

    def iter_apply(self, provider: str, deliveries: Iterable[Delivery]) -> Iterator[Outcome]:
        """Apply a stream, ``batch_size`` deliveries per transaction, yielding each outcome
        once its batch is committed. Memory stays flat however long the stream."""
        if isinstance(deliveries, str | bytes | bytearray | Mapping):
            raise EngineError(
                f"deliveries is a {type(deliveries).__name__}: give an iterable of bodies (or"
                " (body, headers) pairs); apply() takes one delivery"
            )
        chart = self._versions_of(provider).current  # an unknown provider fails here, once
        items, size, clock = iter(deliveries), self.batch_size, self.clock
        while True:
            with paused():  # a batch's objects are freed by reference counting: see _gc
                if not (chunk := read_chunk(chart, items, size, clock)):
                    return
                outcomes = self._commit([(provider, chunk)])
                del chunk  # one batch in memory at a time: not held while the next is read
            yield from outcomes
            del outcomes

    def apply_many(self, provider: str, deliveries: Iterable[Delivery]) -> list[Outcome]:
        """Apply many deliveries in batched transactions; the same outcomes as one by one.

        Each item is a body, or a ``(body, headers)`` pair. For very long streams prefer
        :meth:`iter_apply`: it holds one batch's outcomes at a time, and pauses Python's cyclic
        GC only while a batch is applied, not until the end (:mod:`engine.runtime._gc`)."""
        with paused():  # between batches too: not walking the outcomes kept so far
            return list(self.iter_apply(provider, deliveries))

    # ------------------------------------------------------------------ reading

    def state(self, provider: str, invoice_id: str | int) -> InvoiceState | None:
        """The invoice's current state, or ``None`` if it has never been born here.

        ``invoice_id`` is read as deliveries' ids are: as text, surrounding white space dropped.

        Raises:
            UnknownProvider: ``provider`` has no chart (a misspelt name is not "no invoice").
        """
        self.chart(provider)
        with self.store.read() as tx:
            row = tx.invoice(provider, str(invoice_id).strip())
        return None if row is None or row.state is None else as_invoice_state(row)

    def history(self, provider: str, invoice_id: str | int) -> list[Outcome]:
        """Every delivery about the invoice: the events in fold order (the order they count
        in), then the deliveries that did not count (duplicates, superseded retries).

        Raises:
            UnknownProvider: ``provider`` has no chart.
        """
        self.chart(provider)
        with self.store.read() as tx:
            rows = tx.history_rows(provider, str(invoice_id).strip())
        return [as_outcome(r) for r in rows]

    def outcomes(self, first: int, last: int | None = None) -> list[Outcome]:
        """The outcomes of deliveries ``first`` to ``last`` (their ``seq``) as they stand now:
        a late event may have revised an outcome since it was first returned (see
        ``Outcome.revisions``)."""
        with self.store.read() as tx:
            caused = tx.revisions_caused(first, last)
            return [as_outcome(r, caused.get(r.seq, 0)) for r in tx.event_rows(first, last)]

    def invoices(
        self,
        provider: str | None = None,
        *,
        state: str | None = None,
        canonical: str | None = None,
        limit: int | None = None,
    ) -> Iterator[InvoiceState]:
        """Every invoice with a known state, by provider and id; only ``provider``'s, in leaf
        ``state`` (a compound state: any leaf inside it) or ``canonical`` state, when given;
        at most ``limit``. The database does the filtering.

        Raises:
            UnknownProvider: ``provider`` has no chart.
            UnknownState: ``state`` (``canonical``) is in no chart: ``provider``'s, or with no
                provider any this engine can load. It lists those there are.
        """
        return iter(invoice_states(self, provider, state=state, canonical=canonical, limit=limit))

    def counts(self, provider: str | None = None) -> dict[str, int]:
        """How many deliveries ended in each outcome."""
        if provider is not None:
            self.chart(provider)
        with self.store.read() as tx:
            return tx.outcome_counts(provider)

    def changes(
        self, since: int = 0, *, provider: str | None = None, limit: int | None = 1000
    ) -> list[Change]:
        """The changes feed: entries after cursor ``since`` (only ``provider``'s), in the order
        they committed, at most ``limit``. See :class:`~engine.Change` and
        :class:`~engine.Subscriber`.

        Raises:
            UnknownProvider: ``provider`` has no chart.
            EngineError: ``limit`` is no whole number ≥ 1 (nor None: all); ``since`` none ≥ 0.
        """
        limit, since = _views._limit(limit), _views._since(since)
        if provider is not None:
            self.chart(provider)
        with self.store.read() as tx:
            return [to_change(r) for r in tx.feed.changes(since, provider, limit)]

    def replay(
        self, provider: str | None = None, *, repair: bool = False, rechart: bool = False
    ) -> ReplayReport:
        """Decide every invoice's events again from the events table; report what differs.

        Each event is decided under the chart version and policy it was recorded with. Events
        decided under an earlier version of a chart are listed in the report's ``notes``.

        Args:
            provider: only this provider's invoices.
            repair: correct the stored outcomes and invoice rows to what the replay finds,
                inside one write transaction, then check again; what could not be corrected is
                in ``unrepaired``.
            rechart: re-decide history under the *current* charts (each event keeps the
                ``on_unknown`` policy it was decided under; this engine's stands in for events
                recorded before policies were), recording each changed outcome as a revision
                (implies ``repair``); the report's ``revised`` counts them.
        """
        if (repair or rechart) and self.store.readonly:
            raise EngineError("this Engine was opened read-only: repair and rechart write")
        return replay(
            self.store, self._versions_of, self.on_unknown, self.clock, provider,
            repair=repair, rechart=rechart,
        )  # fmt: skip

    def ping(self) -> None:
        """Read from the database once: a health check.

        Raises:
            StoreError: the database does not answer.
        """
        with self.store.read() as tx:
            tx.invoice("", "")

    def close(self) -> None:
        """Close the database connection; the engine can't be used afterwards."""
        self.store.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def dead_letters(
        self, provider: str | None = None, *, limit: int | None = None
    ) -> list[Outcome]:
        """Deliveries waiting for a redelivery: events that count (not duplicates, not
        superseded attempts) ``rejected`` as ``retryable``, oldest (``seq``) first; at most
        ``limit``. Raises :class:`~engine.UnknownProvider` for a provider without a chart."""
        return find_dead_letters(self, provider, limit=limit)

    def drift(self, provider: str | None = None) -> list[Drift]:
        """Invoices (with a state) whose provider last reported a status the engine does not
        hold: the status snapshot of the last event in the invoice's fold that carries one,
        read as a state through the chart (``delivery.statuses``; a state's own name names
        itself), is not the state that event left the invoice in — unless the event's own step
        leads from that state to there (a snapshot from before the step: Stripe's
        ``invoice.deleted`` says ``draft``). Typically an event the chart forbids (``paid`` →
        ``void``); see :class:`~engine.Drift`. Raises :class:`~engine.UnknownProvider`."""
        return find_drift(self, provider)


def _check_name(chart: Chart, name: str) -> None:
    if chart.name != name:
        where = str(chart.path) if chart.path else f"charts[{name!r}]"
        raise ChartError(
            where,
            "provider",
            f"the chart says provider: {chart.name!r}, but it is loaded as {name!r}; "
            "rename one so they match",
        )
