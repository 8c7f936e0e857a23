"""Which events an invoice in a given state can receive, and what their status snapshots
may say: the lifecycles :mod:`._deliveries` tells are walks through these moves.

A snapshot names a state, and the invoice's configuration must be *within* it (a parallel
state's configuration is within the parallel state, within each active region's state and
within each active leaf): a step's snapshot names a state its destination is within, a
status-following event's one that the step leads into (and that no other route from here
would), an illegal event's one out of reach, so that the engine can't catch up with it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial

from ..chart import Chart
from ..chart.configuration import Configuration
from ._paths import Step, illegal_steps, legal_steps
from ._shape import Shape

__all__ = ["Move", "births", "illegal_moves", "moves_from", "within"]


@dataclass(frozen=True)
class Move:
    """One event an invoice in some state can receive: its type, the step it tells, and the
    status snapshots it may carry (value, state named), the provider's view after the event
    (empty: the event carries none)."""

    event_type: str
    step: Step
    snapshots: tuple[tuple[str, str], ...] = ()


def within(config: str, state: str) -> bool:
    return Configuration(config).within(state)


def _move(shape: Shape, event_type: str, step: Step, wanted: Callable[[str], bool]) -> list[Move]:
    """``event_type`` telling ``step``, if it can carry a snapshot ``wanted`` accepts."""
    found = shape.snapshots(event_type, wanted)
    if found is None:
        return [Move(event_type, step)]
    return [Move(event_type, step, tuple(found))] if found else []


def _naming(config: str, *, exactly: bool = False) -> Callable[[str], bool]:
    """Whether a state is one a snapshot of ``config`` may name: one it is within (or, with
    ``exactly``, for a snapshot the engine adopts as the state, its very name)."""
    if exactly:
        return config.__eq__
    return lambda s: within(config, s)


def moves_from(shape: Shape, state: str, last: Step | None, *, born: bool) -> list[Move]:
    """The events an invoice in ``state`` can legally receive. ``born``: it exists already
    (else its first event's snapshot is adopted, and must name its configuration exactly)."""
    chart = shape.chart
    moves: list[Move] = []
    here = _naming(state, exactly=not born)
    for step in legal_steps(chart, state):
        there = _naming(step.dest, exactly=not born)
        for t in shape.by_trigger.get(step.trigger, ()):
            moves += _move(shape, t, step, there)
        if step.dest != state:  # a status that names where the step leads, not where it was

            def ahead(s: str, there: Callable[[str], bool] = there) -> bool:
                return there(s) and not within(state, s)

            for t in shape.follows:
                moves += _move(shape, t, step, ahead)
    stay = Step("", None, state, state)
    for t in shape.follows:  # an update that changes no status
        moves += _move(shape, t, stay, here)
    for t, states in shape.infos:
        if states is None or any(within(state, s) for s in states):
            moves += _move(shape, t, stay, here)
    if last is not None and last.dest == state and not chart.steps(state, last.trigger):
        # The second signal of the step just taken (Stripe's invoice.paid after
        # invoice.payment_succeeded): legal, and it changes nothing.
        echo = replace(last, source=state)
        for t in shape.by_trigger.get(last.trigger, ()):
            moves += _move(shape, t, echo, here)
    return moves


def illegal_moves(shape: Shape, state: str) -> list[Move]:
    """Events the chart refuses for an invoice in ``state`` (and that the engine rejects)."""
    chart = shape.chart
    moves: list[Move] = []
    reachable = chart.reachable(state)

    def out_of_reach(s: str) -> bool:
        return not chart.can_reach(state, s)

    for step in illegal_steps(chart, state):
        if not chart.steps(state, step.trigger) and state in chart.destinations(step.trigger):
            continue  # the trigger's effect already holds: `unchanged`, not rejected
        # A snapshot the chart can reach from here would be caught up with (applied); the
        # engine rejects the event only when the status it reports is out of reach.
        claims = sorted(chart.destinations(step.trigger) - reachable)
        claimed = _naming(state)
        if claims:

            def claimed(s: str, claim: str = claims[0]) -> bool:
                return within(claim, s) and out_of_reach(s)

        for t in shape.by_trigger.get(step.trigger, ()):
            moves += _move(shape, t, step, claimed)
    nowhere = Step("", None, state, state, legal=False)
    for t in shape.follows:  # one move for each state out of reach
        for found in shape.snapshots(t, out_of_reach) or ():
            moves.append(Move(t, nowhere, (found,)))
    for t, states in shape.infos:
        if states is not None and not any(within(state, s) for s in states):
            moves += _move(shape, t, nowhere, _naming(state))
    return moves


def _enters(chart: Chart, config: str, state: str) -> bool:
    return chart.tree.enter(state) == config


def births(shape: Shape) -> list[Move]:
    """The creating events, each in every initial configuration its snapshot can name (a
    state entered as that configuration: ``finalized`` for Lago's); without a snapshot, an
    invoice is born in the chart's first initial configuration."""
    chart = shape.chart
    moves: list[Move] = []
    first = chart.initial_states[0]
    for t in shape.creates:
        configs = chart.initial_states if shape.status_at(t) is not None else [first]
        for config in configs:
            step = Step("", None, config, config)
            moves += _move(shape, t, step, partial(_enters, chart, config))
    return moves or [Move(t, Step("", None, first, first)) for t in shape.creates]
