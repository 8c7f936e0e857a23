"""What one event does to one invoice: the engine's rules, as a pure function.

:func:`decide` takes the invoice's current state (``None`` when the invoice has not been seen),
an event that has been read, and the caller's policy for first sightings, and says what happens:
``applied`` (the state changes, or the invoice is born), ``unchanged`` (legal, nothing changes)
or ``rejected`` (illegal from here; the reason names the state, the trigger and what *is*
allowed, and ``retryable`` says whether a later delivery could still make it legal). It touches
no database, so the engine, ``replay`` and the property tests all fold events through the same
rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..chart.compiled import Chart
from ..chart.spec import EventSpec
from ..errors import ChartError, TransitionNotAllowed
from .delivery import Event

__all__ = ["Decision", "OnUnknown", "decide", "fold_rank"]

OnUnknown = Literal["adopt", "reject"]
DecisionStatus = Literal["applied", "unchanged", "rejected"]


@dataclass(frozen=True, slots=True)
class Decision:
    status: DecisionStatus
    from_state: str | None
    to_state: str | None
    trigger: str | None = None
    reason: str | None = None
    retryable: bool = False
    adopted: bool = False

    @property
    def state_after(self) -> str | None:
        return self.to_state if self.status == "applied" else self.from_state


def _allowed(chart: Chart, state: str) -> str:
    allowed = chart.allowed_triggers(state)
    return ", ".join(allowed) if allowed else "nothing (a final state)"


def _not_in_chart(chart: Chart, event: Event, what: str) -> ChartError:
    """A stored event the chart can no longer decide (it was edited since the event came)."""
    where = str(chart.path) if chart.path else chart.name
    return ChartError(where, f"events[{event.event_type!r}]", what)


def _first_sight(chart: Chart, spec: EventSpec, event: Event, on_unknown: OnUnknown) -> Decision:
    if spec.create:
        born = event.status_state or chart.initial_states[0]
        if born not in chart.initial_states:
            return Decision(
                "rejected",
                None,
                None,
                reason=f"an invoice can't be born in {born!r}; initial states: "
                + ", ".join(chart.initial_states),
            )
        return Decision("applied", None, born, reason="created")
    if on_unknown == "adopt" and event.status_state is not None:
        return Decision(
            "applied",
            None,
            event.status_state,
            trigger=spec.trigger,
            adopted=True,
            reason=f"first seen through {event.event_type}; adopted its status {event.status!r}",
        )
    why = "no status snapshot to adopt" if on_unknown == "adopt" else "policy is reject"
    return Decision(
        "rejected",
        None,
        None,
        trigger=spec.trigger,
        retryable=True,
        reason=f"invoice not seen before and {event.event_type} does not create it ({why})",
    )


def decide(chart: Chart, state: str | None, event: Event, on_unknown: OnUnknown) -> Decision:
    """The outcome of ``event`` on an invoice in ``state`` (``None``: not seen yet)."""
    spec = chart.event(event.event_type)
    if spec is None:
        raise _not_in_chart(chart, event, "no such event type in this chart")
    if event.invoice_id is None:
        return Decision("unchanged", None, None, reason=f"{event.event_type} is about no invoice")
    if state is None:
        return _first_sight(chart, spec, event, on_unknown)

    if spec.create:
        return Decision("unchanged", state, state, reason=f"invoice already exists in {state!r}")

    if spec.info:
        if spec.states is None or state in spec.states:
            return Decision("unchanged", state, state, reason="informational")
        return Decision(
            "rejected",
            state,
            state,
            reason=f"{event.event_type} is not expected in {state!r} (only in "
            f"{', '.join(spec.states)})",
            retryable=any(s in spec.states for s in chart.reachable(state)),
        )

    if spec.follow_status:
        target = event.status_state
        if target is None:  # read_delivery refuses this; a stored row meets an edited chart
            raise _not_in_chart(chart, event, f"status {event.status!r} names no state")
        if target == state:
            return Decision("unchanged", state, state, reason=f"already {state!r}")
        for route in chart.transitions_between(state, target):
            try:  # one evaluation of the route's guards, not a may() and then a next_state()
                if chart.next_state(state, route, event.payload) == target:
                    return Decision("applied", state, target, trigger=route)
            except TransitionNotAllowed:
                continue
        return Decision(
            "rejected",
            state,
            state,
            reason=f"no transition from {state!r} to {target!r} (status {event.status!r}); "
            f"allowed from {state!r}: {_allowed(chart, state)}",
            retryable=target in chart.reachable(state),
        )

    trigger = spec.trigger
    if trigger is None:  # an EventSpec is exactly one of create, info, follow_status, trigger
        raise _not_in_chart(chart, event, "the event has no trigger")
    try:
        dest = chart.next_state(state, trigger, event.payload)
    except TransitionNotAllowed as exc:
        if not chart.steps(state, trigger) and state in chart.destinations(trigger):
            return Decision(
                "unchanged",
                state,
                state,
                trigger,
                reason=f"already {state!r}: {trigger} took effect",
            )
        return Decision(
            "rejected",
            state,
            state,
            trigger,
            reason=str(exc),
            retryable=chart.could_become_legal(state, trigger),
        )
    if dest == state:
        return Decision("unchanged", state, state, trigger, reason="legal; changes nothing")
    return Decision("applied", state, dest, trigger)


def fold_rank(chart: Chart, event: Event) -> int:
    """Tie-break for events that occurred in the same instant: earlier in the lifecycle first.

    Creating events come first; then events by how far from birth the state they lead to is.
    (Equal ranks fall back to the event id, so the order never depends on arrival.) The
    chart computes each rank once: :meth:`Chart.lifecycle_rank`.
    """
    return chart.lifecycle_rank(event.event_type, event.status_state)
