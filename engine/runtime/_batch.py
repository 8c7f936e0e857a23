"""The write path: one transaction's worth of read deliveries, deduplicated, decided, recorded.

:class:`Batch` is what :meth:`Engine.apply` and :meth:`Engine.iter_apply` both run inside a
write transaction, so applying one by one and in batches give identical results. It keeps the
batch's invoice rows and the live events it has seen in memory, asks the store for what it does
not know (two IN-list queries per chunk instead of two lookups per delivery), and writes rows
with ``executemany`` when the batch ends — or before a re-fold, which reads them back.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from ..chart import Chart
from ..errors import DeliveryError
from ..models import Outcome, OutcomeStatus
from ..store.base import (
    NO_KEY,
    EventRow,
    FoldKey,
    InvoiceRow,
    LiveEvent,
    WriteTx,
)
from ..store.feed import PREVIOUS, ChangeRow
from ._clock import Clock, utc_text
from ._construct import builder, construct
from ._receive import Received
from ._refold import refold
from .decide import Decision, OnUnknown, fold_rank
from .delivery import Event, UnmappedEvent
from .fold import decide_safely, inferred_text
from .versions import Versions

__all__ = ["Batch", "invoices_of"]


def _verified(received: Received) -> bool | None:
    return None if received.verified is None else bool(received.verified)


def invoices_of(provider: str, received: Iterable[Received]) -> Iterator[tuple[str, str]]:
    """The (provider, invoice id) pairs deliveries are about: what a transaction locks. Lazy
    (a store that locks nothing never reads them; one that does orders them itself)."""
    for r in received:
        ev = r.event
        if isinstance(ev, Event) and ev.invoice_id is not None:
            yield provider, ev.invoice_id


_outcome = builder(Outcome)
#: A decision, the state after it, and that state's canonical state (``None``: unchanged).
Decided = tuple[Decision, str | None, str | None]
_new = tuple.__new__  # a NamedTuple from its fields in order, without its __new__


class _Invoice:
    """An invoice row held in memory for the length of a batch."""

    __slots__ = ("canonical", "first_seen_at", "key", "state", "version")

    def __init__(self, row: InvoiceRow | None) -> None:
        self.state = row.state if row else None
        self.canonical = row.canonical if row else None
        self.version = row.version if row else 0
        self.first_seen_at = row.first_seen_at if row else None
        self.key = row.key if row else NO_KEY


class Batch:
    """One write transaction's worth of deliveries for one provider.

    Args:
        tx: the open write transaction.
        versions: the provider's chart, and the versions of it that decided stored events.
        on_unknown: the policy for invoices first seen through a non-creating event.
        clock: the current time, for rows written (``updated_at``, ``revised_at``; the
            feed's ``recorded_at``, read once per :meth:`run`: a transaction's changes are
            recorded together).
    """

    def __init__(
        self, tx: WriteTx, versions: Versions, on_unknown: OnUnknown, clock: Clock
    ) -> None:
        self.tx = tx
        self.versions = versions
        self.chart: Chart = versions.current
        self.on_unknown: OnUnknown = on_unknown
        self.clock = clock
        self.provider = self.chart.name
        self.fingerprint = versions.fingerprint
        self.timed = self.chart.spec.delivery.occurred_at is not None
        self._seqs: Iterator[int] = iter(())
        self._charted = versions.recorded  # once per store; the Engine marks it after commit
        self.invoices: dict[str, _Invoice] = {}
        self.dirty: set[str] = set()
        self.rows: list[EventRow] = []
        self.live: dict[str, LiveEvent] = {}
        self.absent: set[str] = set()  # event ids known not to be live in the database
        self._now: str | None = None  # when this run's changes were recorded (read once)
        # what the chart decides, by what it reads of an event, when no guard reads its payload
        self._decisions = versions.decisions if not self.chart.has_guards else None

    # ------------------------------------------------------------------ memory

    def _invoice(self, invoice_id: str) -> _Invoice:
        inv = self.invoices.get(invoice_id)
        if inv is None:
            inv = self.invoices[invoice_id] = _Invoice(self.tx.invoice(self.provider, invoice_id))
        return inv

    def _prefetch(self, events: list[Event]) -> None:
        """Look up a chunk's event ids and invoices in a few queries, not two per delivery."""
        ids = list({ev.event_id for ev in events if ev.event_id not in self.live})
        invoice_ids = list(
            {ev.invoice_id for ev in events if ev.invoice_id is not None} - self.invoices.keys()
        )
        found = self.tx.live_events(self.provider, ids)
        self.absent.update(i for i in ids if i not in found)
        self.live.update(found)
        rows = self.tx.invoices_by_id(self.provider, invoice_ids)
        for iid in invoice_ids:
            self.invoices[iid] = _Invoice(rows.get(iid))

    def flush(self) -> None:
        """Write the rows held in memory (the transaction stays open)."""
        self._flush_events()
        if self.dirty:
            now = utc_text(self.clock())
            self.tx.upsert_invoices([self._invoice_row(iid, now) for iid in self.dirty])
            self.dirty.clear()

    def _flush_events(self) -> None:
        """Write the event rows held in memory: all a re-fold or a supersede reads or changes.
        The invoice rows wait for the batch's end, so an invoice a batch touches many times is
        written once."""
        if self.rows:
            self.tx.insert_events(self.rows)
            self.rows.clear()

    def _invoice_row(self, invoice_id: str, now: str) -> InvoiceRow:
        inv = self.invoices[invoice_id]
        if inv.first_seen_at is None:
            inv.first_seen_at = now
        state = inv.state
        return _new(InvoiceRow, (
            self.provider, invoice_id, state, inv.canonical if state else None, inv.version,
            inv.first_seen_at, now, *inv.key,
        ))  # fmt: skip

    # ------------------------------------------------------------------- apply

    def run(self, received: Sequence[Received]) -> list[Outcome]:
        """Apply read deliveries in order, after prefetching what they touch.

        Their invoices are locked first (a no-op for those the transaction already holds), and
        only then numbered and read: see :mod:`engine.store.base` on concurrent writers.
        """
        self.tx.lock_invoices(invoices_of(self.provider, received))
        if not self._charted:  # after the locks: a writer waiting here holds none of ours
            self.tx.record_chart(self.versions.record)
            self._charted = True
        self._seqs = iter(self.tx.allocate_seqs(len(received)))
        self._now = None
        if len(received) > 1:  # one delivery: its two point lookups are cheaper than IN lists
            self._prefetch([r.event for r in received if isinstance(r.event, Event)])
        return [self._apply(r) for r in received]

    def _apply(self, received: Received) -> Outcome:
        seq = next(self._seqs)
        ev = received.event
        if isinstance(ev, DeliveryError):
            return self._invalid(received, ev, seq)

        event_id = ev.event_id
        known = self.live.get(event_id)
        if known is None and event_id not in self.absent:
            known = self.tx.live_event(self.provider, event_id)
        if known is not None:
            if self.timed or not (known.outcome == "rejected" and known.retryable):
                reason = f"already recorded as #{known.seq} ({known.outcome})"
                return self._record(received, ev, seq, "duplicate", None, 0, reason,
                                    known.retryable, None)  # fmt: skip
            self._supersede(known.seq, seq)

        invoice_id = ev.invoice_id
        if invoice_id is None:
            d = decide_safely(self.chart, None, ev, self.on_unknown)
            return self._record(received, ev, seq, d.status, d, 1, None, False, None)

        inv = self.invoices.get(invoice_id) or self._invoice(invoice_id)
        occurred = ev.occurred_at
        if self.timed and occurred is not None:  # read_delivery sets it on timed charts
            micros = int(occurred.timestamp() * 1_000_000)
            key = _new(FoldKey, (micros, fold_rank(self.chart, ev), event_id))
        else:
            key = _new(FoldKey, (seq, 0, event_id))
        if inv.first_seen_at is not None and key < inv.key:  # it exists, and this is late
            return self._late(received, ev, invoice_id, inv, key, seq)
        d, after, canonical = self._decide(inv.state, ev)
        before = (inv.state, inv.canonical)
        if canonical is not None:  # the chart that decided the state says, always
            inv.canonical = canonical
        inv.state = after
        if before != (inv.state, inv.canonical):
            self._changed(ev, seq, before, inv, "applied")
        inv.key = key
        inv.version += 1
        if inv.first_seen_at is None:
            inv.first_seen_at = utc_text(received.received_at)
        self.dirty.add(invoice_id)
        return self._record(received, ev, seq, d.status, d, 1, None, False, key)

    def _decide(self, state: str | None, ev: Event) -> Decided:
        """:func:`decide_safely`, with the state after and its canonical state (``None``:
        unchanged); remembered per chart when no guard reads the payload, as then it reads
        only the state and these fields of the event."""
        memo = self._decisions
        if memo is not None:
            key = (state, ev.event_type, ev.status, ev.status_state, self.on_unknown)
            found = memo.get(key)
        else:
            found = None
        if found is None:
            d = decide_safely(self.chart, state, ev, self.on_unknown)
            to = d.to_state if d.status == "applied" else None
            canonical = None if to is None else self.chart.canonical(to)
            found = (d, d.state_after, canonical)
            if memo is not None:
                if len(memo) >= 4096:  # a chart has few states and event types: never
                    memo.clear()  # unbounded
                memo[key] = found
        return found

    def _invalid(self, received: Received, exc: DeliveryError, seq: int) -> Outcome:
        """An unreadable delivery (``invalid``), or one of a type the chart ignores."""
        at = received.received_at
        status: OutcomeStatus = "invalid"
        event_type = None
        if isinstance(exc, UnmappedEvent):
            status, event_type = "ignored", exc.event_type
        self.rows.append(
            EventRow(seq, self.provider, None, 0, None, event_type, None, None, status, str(exc),
                     None, None, 0, 0, None, None, None, utc_text(at), 0, received.headers,
                     received.raw, self.on_unknown, self.fingerprint, None, received.verified)
        )  # fmt: skip
        return construct(
            Outcome, status=status, provider=self.provider, event_id=None, invoice_id=None,
            event_type=event_type, trigger=None, from_state=None, to_state=None, reason=str(exc),
            retryable=False, adopted=False, occurred_at=None, received_at=at, seq=seq,
            revisions=0, inferred=(), caused_revisions=0, verified=_verified(received),
        )  # fmt: skip

    def _record(
        self,
        received: Received,
        ev: Event,
        seq: int,
        status: OutcomeStatus,
        d: Decision | None,
        live: int,
        reason: str | None,
        retryable: bool,
        key: FoldKey | None,
    ) -> Outcome:
        """Hold the event's row for the batch's insert, and return its outcome: ``d``'s, or
        (no decision) ``status`` with ``reason`` and ``retryable``. Positional: once per
        delivery."""
        if d is not None:
            reason, retryable = d.reason, d.retryable
            frm, to, adopted, inferred = d.from_state, d.to_state, d.adopted, d.inferred
            trigger = d.trigger or ev.trigger
        else:
            frm = to = None
            adopted, inferred, trigger = False, (), ev.trigger
        at, occurred = received.received_at, ev.occurred_at
        self.rows.append(
            _new(EventRow, (
                seq, self.provider, ev.event_id, live, ev.invoice_id, ev.event_type, trigger,
                ev.status, status, reason, frm, to, int(retryable), int(adopted),
                utc_text(occurred) if occurred else None,
                key.time if key else None, key.rank if key else None,
                utc_text(at), 0, received.headers, received.raw, self.on_unknown,
                self.fingerprint, inferred_text(inferred) if inferred else None,
                received.verified,
            ))
        )  # fmt: skip
        if live:
            self.live[ev.event_id] = _new(LiveEvent, (seq, status, retryable))
        verified = received.verified
        return _outcome({
            "status": status, "provider": self.provider, "event_id": ev.event_id,
            "invoice_id": ev.invoice_id, "event_type": ev.event_type, "trigger": trigger,
            "from_state": frm, "to_state": to, "reason": reason, "retryable": retryable,
            "adopted": adopted, "occurred_at": occurred, "received_at": at, "seq": seq,
            "revisions": 0, "inferred": inferred, "caused_revisions": 0,
            "verified": None if verified is None else bool(verified),
        })  # fmt: skip

    def _changed(
        self,
        ev: Event,
        seq: int,
        before: tuple[str | None, str | None],
        inv: _Invoice,
        kind: str,
        *,
        correction: bool = False,
    ) -> None:
        """An entry for the changes feed: the invoice's state (or canonical state) moved from
        ``before`` (the callers check that it did)."""
        if ev.invoice_id is not None:
            self.tx.feed.append([
                _new(ChangeRow, (0, self.provider, ev.invoice_id, *before, inv.state,
                                 inv.canonical, seq, ev.event_id,
                                 PREVIOUS if correction else None, kind, self._recorded_at()))
            ])  # fmt: skip

    def _recorded_at(self) -> str:
        """When this run's changes were recorded: the clock, read once for all of them."""
        if self._now is None:
            self._now = utc_text(self.clock())
        return self._now

    def _supersede(self, prior_seq: int, by_seq: int) -> None:
        """An untimed retry of a retryable rejection: the old attempt stops counting."""
        self._flush_events()
        self.tx.supersede(prior_seq, by_seq)
        self.live = {k: v for k, v in self.live.items() if v.seq != prior_seq}

    def _late(
        self,
        received: Received,
        ev: Event,
        invoice_id: str,
        inv: _Invoice,
        key: FoldKey,
        seq: int,
    ) -> Outcome:
        """A late arrival: record it, then re-fold the invoice in fold order."""
        placeholder = Decision("rejected", None, None, reason="late: being re-folded")
        self._record(received, ev, seq, "rejected", placeholder, 1, None, False, key)
        self._flush_events()
        done = refold(
            self.tx, self.versions, invoice_id, self.on_unknown, cause=seq,
            now=utc_text(self.clock()), live=self.live,
        )  # fmt: skip
        if done.outcome is None:  # the row was just written live: the fold always meets it
            raise RuntimeError(f"event #{seq} vanished from its invoice's fold")
        before = (inv.state, inv.canonical)
        inv.state, inv.key = done.state, done.key
        inv.canonical = done.canonical
        if before != (inv.state, inv.canonical):
            self._changed(ev, seq, before, inv, "late", correction=done.undid)
        inv.version += 1
        self.dirty.add(invoice_id)
        return done.outcome
