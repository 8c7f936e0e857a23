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
from ..errors import TransitionNotAllowed
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


def _first_sight(chart: Chart, event: Event, on_unknown: OnUnknown) -> Decision:
    spec = chart.event(event.event_type)
    assert spec is not None  # read_delivery only returns mapped events
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
    assert spec is not None
    if event.invoice_id is None:
        return Decision("unchanged", None, None, reason=f"{event.event_type} is about no invoice")
    if state is None:
        return _first_sight(chart, event, on_unknown)

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
        assert target is not None  # read_delivery refuses follow_status without a status
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

    assert spec.trigger is not None
    trigger: str = spec.trigger
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
    (Equal ranks fall back to the event id, so the order never depends on arrival.)
    """
    key = (chart, event.event_type, event.status_state)
    rank = _RANKS.get(key)
    if rank is None:
        spec = chart.event(event.event_type)
        if spec is None or spec.create:
            rank = 0
        elif spec.trigger is not None:
            dests = chart.destinations(spec.trigger)
            rank = 1 + min((chart.depth(d) for d in dests), default=0)
        elif event.status_state is not None:
            rank = 1 + chart.depth(event.status_state)
        else:
            rank = 1
        _RANKS[key] = rank
    return rank


#: fold_rank's answers: a few per (chart, event type, status), computed once.
_RANKS: dict[tuple[Chart, str, str | None], int] = {}
