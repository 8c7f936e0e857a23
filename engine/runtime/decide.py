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

from collections import deque
from dataclasses import dataclass
from typing import Literal

from ..chart.compiled import Chart
from ..chart.spec import EventSpec
from ..errors import ChartError, TransitionNotAllowed, UnknownState
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
    #: Steps the engine took along the chart without an event for them, to catch up with the
    #: status the provider reported (``"finalize: draft → open"``).
    inferred: tuple[str, ...] = ()

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
        status = event.status_state
        born = chart.tree.enter(status) if status is not None else chart.initial_states[0]
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
            _adopted(chart, spec, event, event.status_state),
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


def _adopted(chart: Chart, spec: EventSpec, event: Event, status: str) -> str:
    """The configuration an invoice first seen through ``event`` is adopted in: the one its
    status enters, then the event's own step where that stays within the status. A status
    can name less than a whole configuration (Lago's ``finalized``: which payment, overdue,
    dispute?); the event's own step is evidence for the rest (``invoice.payment_overdue``
    makes it overdue). A step that would leave the status is not taken: the provider's word
    on the state after the event wins."""
    born = chart.tree.enter(status)
    if spec.trigger is None:
        return born
    try:
        after = chart.next_state(born, spec.trigger, event.payload)
    except TransitionNotAllowed:
        return born
    return after if after.within(status) else born


def decide(chart: Chart, state: str | None, event: Event, on_unknown: OnUnknown) -> Decision:
    """The outcome of ``event`` on an invoice in ``state`` (``None``: not seen yet)."""
    spec = chart.event(event.event_type)
    if spec is None:
        raise _not_in_chart(chart, event, "no such event type in this chart")
    if event.invoice_id is None:
        return Decision("unchanged", None, None, reason=f"{event.event_type} is about no invoice")
    if state is None:
        return _first_sight(chart, spec, event, on_unknown)
    config = chart.tree.configuration(state)
    if config is None:  # history meets an edited chart
        raise UnknownState(chart.name, state, chart.states)
    state = config

    if spec.create:
        return Decision("unchanged", state, state, reason=f"invoice already exists in {state!r}")

    if spec.info:
        if spec.states is None or any(config.within(s) for s in spec.states):
            return Decision("unchanged", state, state, reason="informational")
        return Decision(
            "rejected",
            state,
            state,
            reason=f"{event.event_type} is not expected in {state!r} (only in "
            f"{', '.join(spec.states)})",
            retryable=any(c.within(s) for c in chart.reachable(state) for s in spec.states),
        )

    if spec.follow_status:
        target = event.status_state
        if target is None:  # read_delivery refuses this; a stored row meets an edited chart
            raise _not_in_chart(chart, event, f"status {event.status!r} names no state")
        if config.within(target):
            return Decision("unchanged", state, state, reason=f"already {target!r}")
        routes = []
        for route in chart.allowed_triggers(state):
            try:  # one evaluation of the route's guards, not a may() and then a next_state()
                after = chart.next_state(state, route, event.payload)
            except TransitionNotAllowed:
                continue
            if after.within(target):  # the fewest leaves changed: no side effects elsewhere
                routes.append((len(set(after.leaves) - set(config.leaves)), route, after))
        if routes:
            _, route, after = min(routes, key=lambda r: r[0])  # min keeps chart order on ties
            return Decision("applied", state, after, trigger=route)
        caught_up = _catch_up(chart, state, event, None)
        if caught_up is not None:
            return caught_up
        return Decision(
            "rejected",
            state,
            state,
            reason=f"no transition from {state!r} to {target!r} (status {event.status!r}); "
            f"allowed from {state!r}: {_allowed(chart, state)}",
            retryable=chart.can_reach(state, target),
        )

    trigger = spec.trigger
    if trigger is None:  # an EventSpec is exactly one of create, info, follow_status, trigger
        raise _not_in_chart(chart, event, "the event has no trigger")
    try:
        dest = chart.next_state(state, trigger, event.payload)
    except TransitionNotAllowed as exc:
        own_guard_refused = bool(chart.steps(state, trigger))
        if not own_guard_refused:  # a guard that refuses the event's own step is the answer
            caught_up = _catch_up(chart, state, event, trigger)
            if caught_up is not None:
                return caught_up
        if not own_guard_refused and state in chart.destinations(trigger):
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
    ahead = _catch_up(chart, dest, event, trigger, taken=state)
    if ahead is not None:  # legal, but the provider reports a state further along
        return ahead
    if dest == state:
        return Decision("unchanged", state, state, trigger, reason="legal; changes nothing")
    return Decision("applied", state, dest, trigger)


def _catch_up(
    chart: Chart, state: str, event: Event, trigger: str | None, *, taken: str | None = None
) -> Decision | None:
    """Catch up along the chart to the status the event reports, when the event alone does not
    get the invoice there (its own step is illegal here, or leads short of that status).

    A provider that says "this invoice is paid" about an invoice we hold as ``draft`` has sent
    (or will send, or lost) the events in between. If the chart can reach the reported state
    from ``state``, the engine takes the shortest chain of transitions there and records the
    steps it inferred; if it can't (``paid`` → ``void`` on Stripe), nothing is inferred. Guards
    along the chain are evaluated on this event's payload — the only evidence there is — so a
    chain never takes a step the delivery itself contradicts. ``taken``: the state the invoice
    was in before the event's own (legal) step led it to ``state``.
    """
    target = event.status_state
    if target is None or (config := chart.configuration(state)).within(target):
        return None
    if not chart.can_reach(config, target):
        return None
    path = _shortest_path(chart, state, target, event.payload)
    if path is None:
        return None
    own = taken is None and path[-1][0] == trigger  # the event's own step ends the chain
    inferred = tuple(f"{t}: {a} → {b}" for t, a, b in (path[:-1] if own else path))
    return Decision(
        "applied",
        state if taken is None else taken,
        path[-1][2],
        trigger or path[-1][0],
        reason=f"caught up with status {event.status!r} along the chart: " + "; ".join(inferred),
        inferred=inferred,
    )


def _shortest_path(
    chart: Chart, start: str, target: str, payload: object
) -> list[tuple[str, str, str]] | None:
    """The fewest legal steps (trigger, from, to) from ``start`` to ``target`` — guards read
    ``payload`` — in chart order."""
    came: dict[str, tuple[str, str, str] | None] = {start: None}
    queue = deque([start])
    while queue:
        here = queue.popleft()
        for t in chart.allowed_triggers(here):
            try:
                there = chart.next_state(here, t, payload)
            except TransitionNotAllowed:
                continue
            if there in came:
                continue
            came[there] = (t, here, there)
            if there.within(target):
                path = []
                step = came[there]
                while step is not None:
                    path.append(step)
                    step = came[step[1]]
                return path[::-1]
            queue.append(there)
    return None


def fold_rank(chart: Chart, event: Event) -> int:
    """Tie-break for events that occurred in the same instant: earlier in the lifecycle first.

    Creating events come first; then events by how far from birth the state they lead to is.
    (Equal ranks fall back to the event id, so the order never depends on arrival.) The
    chart computes each rank once: :meth:`Chart.lifecycle_rank`.
    """
    return chart.lifecycle_rank(event.event_type, event.status_state)
