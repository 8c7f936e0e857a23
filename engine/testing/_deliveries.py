"""Realistic webhook deliveries for a chart: the delivery map, read backwards.

A chart's ``delivery`` section says where a provider puts each field of a webhook (the event
type, event id, invoice id, occurrence time, status snapshot, the fields of a derived key) and
its ``events`` say what each event type means. This module writes those fields instead of
reading them, so a generated body has the provider's own shape (Stripe's
``$.data.object.id``, Moxie's ``X-Event-Type`` header, ChargeOver's ``context_str`` +
``event``) and the engine reads it back into exactly the invoice, event type and state it was
generated for; a chart with parallel states gets each region's status where a
region-following event reads it (Lago's ``$.invoice.payment_status``). Each invoice gets a
legal lifecycle (born by a creating event, or adopted from its first snapshot when the chart
has none), told through the event types the chart maps to each step (:mod:`._moves`), with
informational events and second signals mixed in, as providers send them.
"""

from __future__ import annotations

import json
import string
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from ..chart import Chart
from ..chart.expr import MISSING
from ..errors import TransitionNotAllowed
from ._moves import Move, births, illegal_moves, moves_from, within
from ._paths import Step, put_path
from ._shape import Shape, payload_values

__all__ = ["Delivery", "deliveries", "expected_states"]


@dataclass(frozen=True)
class Delivery:
    """One generated webhook delivery and what it stands for.

    Attributes:
        body: the JSON body, in the provider's shape (``raw`` gives the bytes).
        headers: the HTTP headers the delivery map reads (event type or id for some providers).
        invoice_id: the invoice it is about, as the engine will report it (text).
        event_type: the provider's event type.
        event_id: the provider's event id; ``None`` when the provider sends none and the engine
            derives a key from the content.
        trigger: the chart trigger the event names (``None`` for creating, status-following and
            informational events), as the engine's reader reports it.
        source: the invoice's state before this event in its lifecycle (``None`` for its first).
        dest: the invoice's configuration after it (for a rejected event, before it).
        occurred_at: when it happened, as the engine will read it (``None``: the chart has no
            occurrence time).
        seq: its place in its invoice's lifecycle, from 0.
        legal: ``False`` for an event the chart refuses at that point of the lifecycle (with
            ``deliveries(..., illegal=True)``); the engine must reject it and change nothing.
        duplicate: an earlier delivery in the list has the same event id (or derived key).
        snapshot: the state the delivery's status snapshot names, as the engine reads it
            (``finalized.payment.succeeded`` for Lago's ``payment_status: succeeded``), or
            ``None`` when it carries none. ``dest`` is within it (a parallel state's
            configuration is within the parallel state, each active region's state and each
            active leaf), except for a rejected event, whose snapshot is out of reach.
    """

    body: dict[str, Any]
    headers: dict[str, str]
    invoice_id: str
    event_type: str
    event_id: str | None
    trigger: str | None
    source: str | None
    dest: str
    occurred_at: datetime | None
    seq: int
    legal: bool = True
    duplicate: bool = False
    snapshot: str | None = None

    @property
    def raw(self) -> bytes:
        """The body as the provider would send it: compact JSON, UTF-8."""
        return json.dumps(self.body, separators=(",", ":"), ensure_ascii=False).encode()

    def __repr__(self) -> str:
        dup = " (duplicate)" if self.duplicate else ""
        after = repr(self.dest) if self.legal else "rejected"
        move = f"{self.source!r} -> {after}" if self.source else f"born {self.dest!r}"
        return f"Delivery({self.invoice_id} #{self.seq} {self.event_type}: {move}{dup})"


def expected_states(deliveries: Sequence[Delivery]) -> dict[str, str]:
    """Where each invoice must end up: the state after the last event of its lifecycle.

    That is the true state whatever order the deliveries arrive in, as long as the engine can
    put them back in order (charts with an occurrence time); duplicates change nothing.
    """
    last: dict[str, Delivery] = {}
    for d in deliveries:
        if d.invoice_id not in last or d.seq > last[d.invoice_id].seq:
            last[d.invoice_id] = d
    return {inv: d.dest for inv, d in last.items()}


# ----------------------------------------------------------------------------- writing
# Where each field goes is :class:`._shape.Shape`'s; these fill what the chart leaves open.

_TIMEY = ("date", "time", "_at", "created", "updated")
_ALNUM = string.ascii_letters + string.digits


# --------------------------------------------------------------------------- lifecycles


@dataclass
class _Invoice:
    index: int
    raw_id: Any
    when: datetime
    made: list[Delivery]
    seen: set[str]


@st.composite
def _delivery(
    draw: st.DrawFn, shape: Shape, inv: _Invoice, move: Move, source: str | None, salt: int
) -> tuple[Delivery, str] | None:
    chart, dm = shape.chart, shape.dm
    body: dict[str, Any] = {}
    headers: dict[str, str] = {}
    n = len(inv.made)
    parts = move.event_type.split(".", len(dm.event_type) - 1)
    if len(parts) != len(dm.event_type):
        parts = [move.event_type] + [""] * (len(dm.event_type) - 1)
    for loc, part in zip(dm.event_type, parts, strict=True):
        shape.write(body, headers, loc, part)
    shape.write(body, headers, shape.invoice_at(move.event_type), inv.raw_id)
    event_id = None
    if dm.event_id is not None:
        unique = uuid.UUID(int=(salt << 64) | (inv.index << 32) | n)
        event_id = str(unique) if dm.event_id.header else f"evt_{salt:08x}{inv.index:03d}{n:04d}"
        shape.write(body, headers, dm.event_id, event_id)
    occurred = None
    if dm.occurred_at is not None:
        value, occurred = shape.time_value(inv.when)
        shape.write(body, headers, dm.occurred_at.at, value)
    snapshot = None
    status_at = shape.status_at(move.event_type)
    if move.snapshots and status_at is not None:
        status, snapshot = draw(st.sampled_from(move.snapshots))
        shape.write(body, headers, status_at, status)
    for loc, value in shape.region_statuses(move.event_type, move.step.dest):
        shape.write(body, headers, loc, value)
    for guard, value in draw(payload_values(chart, move.step)):
        put_path(body, guard.steps, value)
    for loc in dm.idempotency_key or ():
        if shape.read(body, headers, loc) is MISSING:
            name = next((s for s in reversed(loc.steps) if isinstance(s, str)), "")
            timey = any(w in str(name).lower() for w in _TIMEY)
            free = inv.when.strftime("%Y-%m-%d %H:%M:%S") if timey else f"{salt:x}-{inv.index}-{n}"
            shape.write(body, headers, loc, free)
    spec = chart.spec.events[move.event_type]
    step = move.step
    if spec.trigger is not None and step.trigger:
        # The body is what guards read: check the chart takes (or refuses) the step with it.
        if step.legal and chart.steps(step.source, step.trigger):
            if _next(chart, step.source, step.trigger, body) != step.dest:
                return None
        elif not step.legal and _next(chart, step.source, step.trigger, body) is not None:
            return None
    if spec.follow_status and step.legal and step.trigger and snapshot is not None:
        # The engine takes a route to the state the snapshot names: it must be this step's.
        routes = {_next(chart, step.source, t, body) for t in chart.allowed_triggers(step.source)}
        if {r for r in routes if r is not None and within(r, snapshot)} != {step.dest}:
            return None
    made = Delivery(
        body=body,
        headers=headers,
        invoice_id=str(inv.raw_id).strip(),
        event_type=move.event_type,
        event_id=event_id,
        trigger=spec.trigger,
        source=source,
        dest=move.step.dest,
        occurred_at=occurred,
        seq=n,
        legal=step.legal,
        snapshot=snapshot,
    )
    return made, shape.identity(body, headers)


def _next(chart: Chart, state: str, trigger: str, payload: Any) -> str | None:
    try:
        return chart.next_state(state, trigger, payload)
    except TransitionNotAllowed:
        return None


@st.composite
def _lifecycle(
    draw: st.DrawFn, shape: Shape, inv: _Invoice, max_events: int, illegal: bool, salt: int
) -> list[Delivery]:
    chart = shape.chart
    # Without a creating event the first snapshot is adopted: a lifecycle from any initial
    # configuration, as the provider first reports it.
    adopted = shape.dm.status is not None and not shape.creates
    state: str = draw(st.sampled_from(chart.initial_states)) if adopted else chart.initial_states[0]
    source: str | None = None
    last: Step | None = None
    if shape.creates:
        born = draw(st.sampled_from(births(shape)))
        state = born.step.dest
        made = draw(_delivery(shape, inv, born, None, salt))
        assert made is not None
        inv.made.append(made[0])
        inv.seen.add(made[1])
        source = state
    # Without a creating event, an invoice exists only once some event has been sent about it.
    low, high = (0, max_events) if shape.creates else (1, max(max_events, 1))
    for _ in range(draw(st.integers(low, high))):
        # Shrinks towards legal events: only a 3 asks for an illegal one.
        wrong = illegal and source is not None and draw(st.integers(0, 3)) == 3
        if wrong:
            moves = illegal_moves(shape, state)
        else:
            moves = moves_from(shape, state, last, born=source is not None)
        if not moves:
            if wrong:
                continue
            break
        move = draw(st.sampled_from(moves))
        inv.when += shape.tick * draw(
            st.integers(1, max(1, 172_800 // int(shape.tick.total_seconds())))
        )
        made = draw(_delivery(shape, inv, move, source, salt))
        if made is None or made[1] in inv.seen:
            continue  # no body tells this step, or it would pass for an earlier event's duplicate
        inv.made.append(made[0])
        inv.seen.add(made[1])
        if move.step.legal:
            source = state = move.step.dest
            last = move.step if move.step.trigger else None
    return inv.made


_DEFAULT_IDS: st.SearchStrategy[str | int] = st.one_of(
    st.integers(1, 9_999_999),
    st.uuids().map(str),
    st.text(_ALNUM, min_size=14, max_size=14).map("in_".__add__),
)


def deliveries(
    chart: Chart,
    *,
    min_invoices: int = 1,
    max_invoices: int = 3,
    max_events: int = 6,
    duplicates: bool = False,
    shuffle: bool = False,
    illegal: bool = False,
    invoice_ids: st.SearchStrategy[str | int] | None = None,
) -> st.SearchStrategy[list[Delivery]]:
    """A strategy of webhook deliveries for a few invoices of ``chart``'s provider.

    Each invoice lives a legal lifecycle: born through a creating event (in any initial state
    the status snapshot can name), or, for a provider with no creating event, first seen
    through an event whose status snapshot the engine adopts (run it with
    ``on_unknown="adopt"``). Then up to ``max_events`` events, each told by an event type the
    chart maps to it: a trigger, a status update, an informational event, or the second
    signal of the step just taken. Occurrence times rise along each lifecycle; status
    snapshots, guard fields (amounts) and the fields of a derived idempotency key are filled
    in so that the engine reads each delivery back as intended.

    Args:
        chart: the provider's chart.
        min_invoices: the fewest invoices.
        max_invoices: the most invoices.
        max_events: the most events per invoice after its first.
        duplicates: also redeliver some deliveries (byte-identical copies), later in the list.
        shuffle: deliver in any order (by default invoices interleave, but each invoice's
            events arrive in the order they happened).
        illegal: also send events the chart refuses at that point (a late ``invoice.voided``
            for a paid invoice, a status the invoice can't reach from where it is), labelled
            ``legal=False``. For a chart without occurrence times they are never duplicated,
            as the engine decides again a redelivery of an event it rejected as retryable.
        invoice_ids: a strategy for invoice ids (default: a mix of integers, UUIDs and
            Stripe-style ``in_…`` strings).

    Each :class:`Delivery` carries its body and headers and what it stands for;
    :func:`expected_states` gives each invoice's true final state.
    """
    if not 0 <= min_invoices <= max_invoices:
        raise ValueError(
            f"need 0 <= min_invoices <= max_invoices, got {min_invoices=!r}, {max_invoices=!r}"
        )
    if max_events < 0:
        raise ValueError(f"max_events must be >= 0, got {max_events!r}")
    shape = Shape(chart)
    ids = _DEFAULT_IDS if invoice_ids is None else invoice_ids

    @st.composite
    def strategy(draw: st.DrawFn) -> list[Delivery]:
        count = draw(st.integers(min_invoices, max_invoices))
        raw_ids = draw(
            st.lists(ids, min_size=count, max_size=count, unique_by=lambda v: str(v).strip())
        )
        salt = draw(st.integers(0, 0xFFFF_FFFF))
        lives = []
        for index, raw in enumerate(raw_ids):
            start = datetime(2023, 1, 1, tzinfo=UTC) + timedelta(
                seconds=draw(st.integers(0, 300 * 86_400))
            )
            inv = _Invoice(index, raw, start, [], set())
            lives.append(draw(_lifecycle(shape, inv, max_events, illegal, salt)))
        if shuffle:
            order = draw(st.permutations([d for life in lives for d in life]))
        else:
            owners = draw(st.permutations([i for i, life in enumerate(lives) for _ in life]))
            queues = [iter(life) for life in lives]
            order = [next(queues[i]) for i in owners]
        if duplicates and order:
            timed = chart.spec.delivery.occurred_at is not None
            copyable = [d for d in order if d.legal or timed]
            picks = st.lists(st.integers(0, max(len(copyable) - 1, 0)), max_size=len(copyable))
            for pick in draw(picks) if copyable else []:
                original = copyable[pick]
                low = 0 if shuffle else order.index(original) + 1
                order.insert(draw(st.integers(low, len(order))), original)
        seen: set[str] = set()
        out = []
        for d in order:
            key = shape.identity(d.body, d.headers)
            out.append(replace(d, duplicate=key in seen))
            seen.add(key)
        return out

    return strategy()
