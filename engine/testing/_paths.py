"""The graph side of :mod:`engine.testing`: steps, guard-satisfying payloads, and paths.

Everything here is deterministic and needs no hypothesis: the legal steps out of a state (one
per candidate transition, each with a payload that makes its guard hold, found by trying a few
values per comparison and asking the chart), shortest paths to every state, and a set of paths
that together take every transition (as XState's ``getShortestPaths`` / ``getSimplePaths`` do
for example-based tests). The strategies in :mod:`engine.testing` build on the same steps.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..chart import Chart
from ..chart.expr import Guard
from ..chart.expr import Step as PathStep
from ..errors import TransitionNotAllowed

__all__ = ["Path", "Step", "covering_paths", "illegal_steps", "legal_steps", "shortest_paths"]


@dataclass(frozen=True)
class Step:
    """One trigger sent from one state, labelled with what the chart says it does.

    Attributes:
        trigger: the chart trigger.
        payload: what guards read (``None`` when no guard is involved).
        source: the configuration the step is taken from.
        dest: the configuration after it; ``source`` for an internal or a rejected step.
        legal: whether the chart allows it; a test expects an illegal step to be rejected.
    """

    trigger: str
    payload: Any
    source: str
    dest: str
    legal: bool = True

    @property
    def pair(self) -> tuple[str, Any]:
        """``(trigger, payload)``, the form :meth:`engine.Chart.check` folds."""
        return (self.trigger, self.payload)

    def __repr__(self) -> str:
        payload = "" if self.payload is None else f" {self.payload!r}"
        after = repr(self.dest) if self.legal else "rejected"
        return f"Step({self.source!r} --{self.trigger}{payload}--> {after})"


@dataclass(frozen=True)
class Path:
    """A legal walk through a chart from ``start``; ``str(path)`` reads like the diagram."""

    start: str
    steps: tuple[Step, ...]

    @property
    def end(self) -> str:
        return self.steps[-1].dest if self.steps else self.start

    @property
    def triggers(self) -> list[str]:
        return [s.trigger for s in self.steps]

    @property
    def pairs(self) -> list[tuple[str, Any]]:
        """The steps as ``(trigger, payload)``: ``chart.check(path.pairs, start=path.start)``."""
        return [s.pair for s in self.steps]

    def __str__(self) -> str:
        return self.start + "".join(f" -{s.trigger}-> {s.dest}" for s in self.steps)


# ------------------------------------------------------------------------- guard values


def _shift(literal: Any, up: bool) -> Any:
    """A value just above (or below) ``literal`` of the same JSON type, or ``None``."""
    if isinstance(literal, bool) or literal is None:
        return None
    if isinstance(literal, int | float):
        return literal + 1 if up else literal - 1
    if isinstance(literal, str):
        return literal + "~" if up else (literal[:-1] if literal else None)
    return None


def guard_values(guard: Guard, *, holds: bool) -> list[Any]:
    """Values that make ``guard`` true (``holds=True``) or false, nearest the literal first."""
    lit, op = guard.literal, guard.op
    same: list[Any]
    other: list[Any]
    if isinstance(lit, bool):
        same, other = [lit], [not lit]
    elif lit is None:
        same, other = [None], ["other", 1]
    else:
        same, other = [lit], [v for v in (_shift(lit, True), _shift(lit, False)) if v is not None]
    above, below = _shift(lit, True), _shift(lit, False)
    table: dict[str, tuple[list[Any], list[Any]]] = {
        "==": (same, other),
        "!=": (other, same),
        ">": ([above], [lit, below]),
        ">=": ([lit, above], [below]),
        "<": ([below], [lit, above]),
        "<=": ([lit, below], [above]),
    }
    good, bad = table[op]
    return [v for v in (good if holds else bad) if v is not None or lit is None]


def put_path(doc: dict[str, Any], steps: tuple[PathStep, ...], value: Any) -> bool:
    """Write ``value`` at ``steps`` in ``doc``, creating objects and lists on the way.

    Returns ``False`` when a scalar already sits where the path needs an object or a list.
    ``[-1]`` and ``[*]`` write into (the first item of) a list, made one item long if empty.
    """
    cur: Any = doc
    for i, step in enumerate(steps):
        key: str | int
        if isinstance(step, int) or step == "*":
            if type(cur) is not list:
                return False
            key = 0 if step == "*" else int(step)
            while len(cur) < (key + 1 if key >= 0 else -key):
                cur.append(None)
        else:
            if type(cur) is not dict:
                return False
            key = step
        if i == len(steps) - 1:
            cur[key] = value
            return True
        after = steps[i + 1]
        if (cur.get(key) if isinstance(cur, dict) else cur[key]) is None:
            cur[key] = [] if isinstance(after, int) or after == "*" else {}
        cur = cur[key]
    return False


def _guards(chart: Chart, state: str, trigger: str) -> list[tuple[str, list[Guard]]]:
    out = []
    for dest, conds in chart.steps(state, trigger):
        guards = [c.func for c in conds if isinstance(c.func, Guard)]
        out.append((state if dest is None else dest, guards))
    return out


def _payload_for(guards: Sequence[Guard], choice: Sequence[Any]) -> dict[str, Any]:
    payload: dict[str, Any] = {}
    for g, v in zip(guards, choice, strict=True):
        put_path(payload, g.steps, v)
    return payload


def _outcome(chart: Chart, state: str, trigger: str, payload: Any) -> str | None:
    try:
        return chart.next_state(state, trigger, payload)
    except TransitionNotAllowed:
        return None


def legal_steps(chart: Chart, state: str) -> list[Step]:
    """Every legal step out of ``state``: one per transition that can fire, in chart order.

    A guarded transition comes with a payload its guard accepts and that no earlier candidate
    of the same trigger would take instead; one that no payload can reach is left out.
    """
    out: list[Step] = []
    for trigger in chart.allowed_triggers(state):
        for dest, guards in _guards(chart, state, trigger):
            if not guards:
                if _outcome(chart, state, trigger, None) == dest:
                    out.append(Step(trigger, None, state, dest))
                continue
            options = [guard_values(g, holds=True) for g in guards]
            for choice in itertools.product(*options):
                payload = _payload_for(guards, choice)
                if _outcome(chart, state, trigger, payload) == dest:
                    out.append(Step(trigger, payload, state, dest))
                    break
    return out


def illegal_steps(chart: Chart, state: str) -> list[Step]:
    """Steps the chart refuses from ``state``: triggers not legal there, in chart order, and
    guarded triggers with a payload that every one of their guards rejects."""
    allowed = set(chart.allowed_triggers(state))
    out = [Step(t, None, state, state, legal=False) for t in chart.triggers if t not in allowed]
    for trigger in chart.allowed_triggers(state):
        candidates = _guards(chart, state, trigger)
        if not all(guards for _, guards in candidates):
            continue  # an unguarded candidate always fires
        every = [g for _, guards in candidates for g in guards]
        options = [guard_values(g, holds=False) for g in every]
        found = None
        for choice in itertools.islice(itertools.product(*options), 64):
            payload = _payload_for(every, choice)
            if _outcome(chart, state, trigger, payload) is None:
                found = payload
                break
        out.append(Step(trigger, found, state, state, legal=False))
    return out


# ------------------------------------------------------------------------------- paths


def _starts(chart: Chart, start: str | Iterable[str] | None) -> list[str]:
    if start is None:
        return list(chart.initial_states)
    names = [start] if isinstance(start, str) else list(start)
    return [chart.configuration(name) for name in names]  # UnknownState names the valid ones


def _bfs(chart: Chart, starts: list[str]) -> tuple[dict[str, Path], list[str]]:
    best: dict[str, Path] = {s: Path(s, ()) for s in starts}
    order = list(dict.fromkeys(starts))
    queue = deque(order)
    while queue:
        state = queue.popleft()
        for step in legal_steps(chart, state):
            if step.dest not in best:
                prev = best[state]
                best[step.dest] = Path(prev.start, (*prev.steps, step))
                order.append(step.dest)
                queue.append(step.dest)
    return best, order


def shortest_paths(chart: Chart, *, start: str | Iterable[str] | None = None) -> dict[str, Path]:
    """The shortest legal path to every reachable state, keyed by state, in discovery order.

    Args:
        chart: the chart to walk.
        start: the state (or states) paths begin in; by default every initial state, so each
            path starts in the initial state nearest its end.

    Deterministic: ties go to the earlier initial state, then to triggers in chart order.
    """
    best, order = _bfs(chart, _starts(chart, start))
    return {s: best[s] for s in order}


def _edge(step: Step) -> tuple[str, str, str]:
    return (step.source, step.trigger, step.dest)


def covering_paths(chart: Chart, *, start: str | Iterable[str] | None = None) -> list[Path]:
    """Legal paths that together take every transition reachable from ``start`` at least once.

    Each path is the shortest way to an edge not yet taken, then keeps going along edges not
    yet taken while there are any; so there are few paths, each short. Guarded transitions
    count once per destination. Deterministic, like :func:`shortest_paths`.
    """
    best, order = _bfs(chart, _starts(chart, start))
    edges = [step for state in order for step in legal_steps(chart, state)]
    taken: set[tuple[str, str, str]] = set()
    paths: list[Path] = []
    for edge in edges:
        if _edge(edge) in taken:
            continue
        prefix = best[edge.source]
        steps = [*prefix.steps, edge]
        taken.update(_edge(s) for s in steps)
        while True:
            fresh = [s for s in legal_steps(chart, steps[-1].dest) if _edge(s) not in taken]
            if not fresh:
                break
            steps.append(fresh[0])
            taken.add(_edge(fresh[0]))
        paths.append(Path(prefix.start, tuple(steps)))
    return paths
