"""Folding one invoice: its live events, in fold order, through the engine's rules. Pure.

When an event arrives late (its fold key sorts before the invoice's last folded event), the
engine records it and re-folds the invoice from the start: every live event is decided again in
(occurrence time, lifecycle rank, event id) order. :func:`fold` is that walk, over stored rows,
touching no database: the engine writes what changed (and ``revisions``), ``replay`` compares
what it finds with what is stored. Both read stored rows the same way (:func:`stored_event`),
so the two can only differ when the data was changed behind the engine's back.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

from ..chart import Chart
from ..errors import ChartError, UnknownState
from ..store.base import EventRow
from ._construct import construct
from .decide import Decision, OnUnknown, decide
from .delivery import Event
from .versions import VersionResolver

__all__ = ["Folded", "decide_safely", "fold", "inferred_text", "stored_event"]


class Folded(NamedTuple):
    """One step of a fold: the stored row, the event it stands for, the new decision, and the
    chart version and policy that made it."""

    row: EventRow
    event: Event
    decision: Decision
    chart: Chart
    policy: OnUnknown

    @property
    def changed(self) -> bool:
        """Whether the decision differs from the outcome stored in the row."""
        d, r = self.decision, self.row
        new = (d.status, d.reason, d.from_state, d.to_state, d.trigger, d.retryable, d.adopted,
               inferred_text(d.inferred))  # fmt: skip
        old = (r.outcome, r.reason, r.from_state, r.to_state, r.trigger, r.retryable, r.adopted,
               r.inferred)  # fmt: skip
        return new != old  # stored flags are 0/1, which compare equal to False/True


def inferred_text(steps: tuple[str, ...]) -> str | None:
    """Inferred steps as stored (a JSON list), or ``None`` when there are none."""
    return json.dumps(list(steps), ensure_ascii=False) if steps else None


def stored_event(chart: Chart, row: EventRow) -> Event:
    """The event a stored live row stands for, as the rules need it (payload only for guards)."""
    spec = chart.event(row.event_type or "")
    payload: dict[str, Any] = {}
    if chart.has_guards and row.body is not None:
        try:
            payload = json.loads(row.body)
        except ValueError:
            payload = {}
    return construct(
        Event, provider=chart.name, event_id=row.event_id, derived_id=False,
        invoice_id=row.invoice_id, event_type=row.event_type,
        trigger=spec.trigger if spec else None, status=row.status_snapshot,
        status_state=chart.state_for_status(row.status_snapshot, spec.region if spec else None),
        occurred_at=None,
        payload=payload,
    )  # fmt: skip


def decide_safely(chart: Chart, state: str | None, event: Event, policy: OnUnknown) -> Decision:
    """:func:`decide`, with history this chart can't read — a state or an event type that a
    chart edit removed — made a ``rejected`` decision that says so, instead of an error."""
    try:
        return decide(chart, state, event, policy)
    except (UnknownState, ChartError) as exc:
        return Decision("rejected", state, state, reason=f"{exc} (was the chart edited?)")


def fold(
    rows: Iterable[EventRow], version: VersionResolver, on_unknown: OnUnknown
) -> Iterator[Folded]:
    """Decide each of an invoice's live events in turn, from no state, in the rows' order.

    Each event is decided with the chart (``version`` of its recorded fingerprint) and the
    ``on_unknown`` policy it was recorded with; ``on_unknown`` stands in for rows written before
    the policy was recorded. A state the chart version does not know (history that spans a
    chart edit) makes the event ``rejected`` with that reason: a fold never raises.
    """
    state: str | None = None
    for row in rows:
        chart = version(row.chart)
        policy: OnUnknown = on_unknown
        if row.policy in ("adopt", "reject"):
            policy = "adopt" if row.policy == "adopt" else "reject"
        event = stored_event(chart, row)
        decision = decide_safely(chart, state, event, policy)
        yield Folded(row, event, decision, chart, policy)
        state = decision.state_after
