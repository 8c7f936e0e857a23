"""The engine: webhook deliveries in, true invoice state and a lossless history out.

For every delivery: **read** it through the chart's delivery map (unreadable: ``invalid``);
**deduplicate** on (provider, event id); **decide** with the chart's machine from the invoice's
current state (:mod:`engine.decide`); **record** the event row and the invoice row in the same
transaction. Nothing a user sent is dropped: invalid deliveries and duplicates are rows too.

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

from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..chart import Chart, load_chart
from ..errors import EngineError
from ..models import InvoiceState, Mismatch, Outcome, ReplayReport
from ..store import open_store
from ..store.base import EventRow, InvoiceRow
from ..store.sqlite import Synchronous
from ._batch import Batch, Clock, refold
from .decide import OnUnknown
from .delivery import receive
from .fold import fold

__all__ = ["Body", "Delivery", "Engine"]

Body = bytes | str | Mapping[str, Any]
Delivery = Body | tuple[Body, Mapping[str, Any] | None]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _invoice_state(row: InvoiceRow) -> InvoiceState:
    return InvoiceState(
        provider=row.provider, invoice_id=row.invoice_id, state=row.state,
        canonical=row.canonical, version=row.version, created_at=row.created_at,
        updated_at=row.updated_at,
    )  # fmt: skip


def _outcome(row: EventRow) -> Outcome:
    return Outcome(
        status=row.outcome, provider=row.provider, event_id=row.event_id,
        invoice_id=row.invoice_id, event_type=row.event_type, trigger=row.trigger,
        reason=row.reason, from_state=row.from_state, to_state=row.to_state,
        retryable=bool(row.retryable), adopted=bool(row.adopted), occurred_at=row.occurred_at,
        received_at=row.received_at, seq=row.seq, revisions=row.revisions,
    )  # fmt: skip


class Engine:
    """Applies webhook deliveries to invoices, recording everything in a store.

    Args:
        db: a SQLite file path (created, owner-only, WAL) or ``":memory:"``.
        chart_dir: a folder of your own charts, used beside the bundled ones.
        charts: charts to use by provider name, overriding files (e.g. built in code).
        on_unknown: an invoice first seen through a non-creating event: ``"adopt"`` its status
            snapshot (recorded as adopted), or ``"reject"`` the event (``retryable``).
        synchronous: SQLite's durability setting; ``"NORMAL"`` (default, WAL: durable across
            process crashes, may lose the last transactions on power loss) or ``"FULL"``.
        batch_size: deliveries per transaction in :meth:`apply_many`.
        clock: the current time in UTC (default: the system clock); the engine reads time
            nowhere else.
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
        clock: Clock = _utc_now,
    ) -> None:
        if on_unknown not in ("adopt", "reject"):
            raise EngineError(f"on_unknown={on_unknown!r}; choose 'adopt' or 'reject'")
        self.store = open_store(db, synchronous=synchronous)
        self.chart_dir = chart_dir
        self._charts: dict[str, Chart] = dict(charts or {})
        self.on_unknown: OnUnknown = on_unknown
        self.batch_size = max(1, batch_size)
        self.clock = clock

    def chart(self, provider: str) -> Chart:
        """The chart for ``provider`` (raises :class:`~engine.UnknownProvider`)."""
        chart = self._charts.get(provider)
        if chart is None:
            chart = self._charts[provider] = load_chart(provider, self.chart_dir)
        return chart

    def apply(self, provider: str, body: Body, headers: Mapping[str, Any] | None = None) -> Outcome:
        """Apply one delivery in its own durable transaction.

        Never raises for what the delivery holds: whatever ``body`` and ``headers`` are (the
        wrong types included), an unreadable delivery is recorded as ``invalid`` with a reason.

        Raises:
            UnknownProvider: no chart for ``provider``.
        """
        chart = self.chart(provider)
        received = receive(chart, body, headers, self.clock())
        with self.store.write() as tx:
            batch = Batch(tx, chart, self.on_unknown, self.clock)
            out = batch.run([received])[0]
            batch.flush()
        return out

    def iter_apply(self, provider: str, deliveries: Iterable[Delivery]) -> Iterator[Outcome]:
        """Apply a stream, ``batch_size`` deliveries per transaction, yielding each outcome
        once its batch is committed. Memory stays flat however long the stream."""
        chart = self.chart(provider)
        items = iter(deliveries)
        while True:
            chunk = []
            for item in items:
                body, headers = item if isinstance(item, tuple) and len(item) == 2 else (item, None)
                chunk.append(receive(chart, body, headers, self.clock()))
                if len(chunk) >= self.batch_size:
                    break
            if not chunk:
                return
            with self.store.write() as tx:
                batch = Batch(tx, chart, self.on_unknown, self.clock)
                outs = batch.run(chunk)
                batch.flush()
            yield from outs

    def apply_many(self, provider: str, deliveries: Iterable[Delivery]) -> list[Outcome]:
        """Apply many deliveries in batched transactions; the same outcomes as one by one.

        Each item is a body, or a ``(body, headers)`` pair. For very long streams prefer
        :meth:`iter_apply`, which does not hold every outcome in memory.
        """
        return list(self.iter_apply(provider, deliveries))

    # ------------------------------------------------------------------ reading

    def state(self, provider: str, invoice_id: str | int) -> InvoiceState | None:
        """The invoice's current state, or ``None`` if it has never been born here."""
        with self.store.read() as tx:
            row = tx.invoice(provider, str(invoice_id))
        return None if row is None or row.state is None else _invoice_state(row)

    def history(self, provider: str, invoice_id: str | int) -> list[Outcome]:
        """Every delivery about the invoice: the events in fold order (the order they count
        in), then the deliveries that did not count (duplicates, superseded retries)."""
        with self.store.read() as tx:
            rows = tx.history_rows(provider, str(invoice_id))
        return [_outcome(r) for r in rows]

    def invoices(self, provider: str | None = None) -> Iterator[InvoiceState]:
        """Every invoice with a known state, optionally of one provider."""
        with self.store.read() as tx:
            rows = list(tx.invoice_rows(provider))
        return (_invoice_state(r) for r in rows)

    def counts(self, provider: str | None = None) -> dict[str, int]:
        """How many deliveries ended in each outcome."""
        with self.store.read() as tx:
            return tx.outcome_counts(provider)

    def replay(self, provider: str | None = None, *, repair: bool = False) -> ReplayReport:
        """Rebuild every invoice's state from the events table and report any mismatch.

        With ``repair=True`` the stored rows are corrected to what the replay found.
        """
        mismatches: list[Mismatch] = []
        events = 0
        with self.store.read() as tx:
            pairs = tx.folded_invoices(provider)
            for prov, iid in pairs:
                chart = self.chart(prov)
                state: str | None = None
                for step in fold(chart, tx.fold_rows(prov, iid), self.on_unknown):
                    events += 1
                    row, d = step.row, step.decision
                    if d.status != row.outcome or d.to_state != row.to_state:
                        mismatches.append(
                            Mismatch(provider=prov, invoice_id=iid,
                                     what=f"event #{row.seq} outcome",
                                     stored=f"{row.outcome} → {row.to_state}",
                                     replayed=f"{d.status} → {d.to_state}")
                        )  # fmt: skip
                    state = d.state_after
                stored = tx.invoice(prov, iid)
                if (stored.state if stored else None) != state:
                    mismatches.append(
                        Mismatch(provider=prov, invoice_id=iid, what="state",
                                 stored=stored.state if stored else None, replayed=state)
                    )  # fmt: skip
        if repair and mismatches:
            with self.store.write() as wtx:
                now = self.clock().isoformat()
                for prov, iid in {(m.provider, m.invoice_id) for m in mismatches}:
                    chart = self.chart(prov)
                    done = refold(wtx, chart, iid, self.on_unknown, cause=None, now=now)
                    canonical = chart.canonical(done.state) if done.state else None
                    wtx.set_invoice_state(prov, iid, done.state, canonical, done.key)
        return ReplayReport(
            invoices=len(pairs), events=events, mismatches=mismatches, repaired=repair
        )

    def close(self) -> None:
        """Close the database connection."""
        self.store.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
