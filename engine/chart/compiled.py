"""A loaded chart: one shared ``transitions`` machine, and the lifecycle validator built on it.

``transitions`` defines the semantics. Each chart builds exactly one machine (never one per
invoice: ``add_model`` costs kilobytes a model), a ``HierarchicalMachine`` with ``.`` as the
separator when the chart nests (the default ``_`` would split ``payment_pending``), always with
``auto_transitions=False`` so there are no ``to_<state>`` back doors.

Asking the machine a question by moving a model into a state and firing a trigger is slow and
not thread-safe, so the validator reads the machine's own event tables once, when the chart
loads: for every (state, trigger) the ordered list of ``transitions.Transition`` objects that
could fire, resolved the way the machine resolves them (a child's transitions before its
parent's; a compound dest enters its initial child). Unguarded steps become one dict entry;
guarded ones keep the machine's ``Condition`` objects, which are called with the payload just
as ``Machine.trigger(name, payload)`` would call them. A test drives a real model through the
real machine and checks that both always agree.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from transitions import Machine
from transitions.core import Condition

from ..errors import TransitionNotAllowed, UnknownState, UnknownTrigger
from .spec import ChartSpec, EventSpec, StateSpec

__all__ = ["Chart"]

_Step = tuple[str | None, tuple[Condition, ...]]  # (dest leaf or None for internal, conditions)


@cache
def _dot_machine() -> type[Machine]:
    """transitions' nested machine with ``.`` as the separator.

    Built on first use: importing ``transitions.extensions`` pulls in asyncio (~30 ms), which
    flat charts, and a CLI command that only reads one, never need.
    """
    from transitions.extensions.nesting import HierarchicalMachine, NestedState

    class _DotState(NestedState):
        separator = "."

    class _DotMachine(HierarchicalMachine):
        state_cls = _DotState

    return _DotMachine


def _transitions_states(states: list[StateSpec]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for s in states:
        d: dict[str, Any] = {"name": s.name, "final": s.final}
        if s.states:
            d["children"] = _transitions_states(s.states)
            d["initial"] = s.initial or s.states[0].name
        out.append(d)
    return out


class Chart:
    """One provider's lifecycle: the validator API over a shared ``transitions`` machine.

    Invoices are always in a *leaf* state; nested leaves are named ``parent.child``
    (``open.unpaid``). Load charts with :func:`load_chart`.
    """

    def __init__(self, spec: ChartSpec, path: Path | None = None) -> None:
        self.spec = spec
        self.name = spec.provider
        self.path = path
        self._by_name: dict[str, StateSpec] = {}
        self._parent: dict[str, str | None] = {}
        self._canonical: dict[str, str] = {}
        self.states: list[str] = []  # leaves, in chart order
        self._index(spec.states, None, None)
        self.compound_states = [n for n, s in self._by_name.items() if s.states]
        self.final_states = [s for s in self.states if self._by_name[s].final]
        self._final = frozenset(self.final_states)
        self.initial_states = [self._enter(s) for s in spec.initial]
        self.has_guards = any(t.guard is not None for t in spec.transitions)
        self.triggers: list[str] = list(dict.fromkeys(t.trigger for t in spec.transitions))
        self.machine = self._build_machine()
        self._table = self._compile()
        self._fast: dict[tuple[str, str], str] = {
            key: (dest if dest is not None else key[0])
            for key, steps in self._table.items()
            for dest, conds in steps[:1]
            if not conds
        }
        self._allowed: dict[str, list[str]] = {s: [] for s in self.states}
        for s, t in self._table:
            self._allowed[s].append(t)
        self._routes: dict[tuple[str, str], list[str]] = {}
        for (s, t), steps in self._table.items():
            for dest, _ in steps:
                target = dest if dest is not None else s
                triggers = self._routes.setdefault((s, target), [])
                if t not in triggers:
                    triggers.append(t)
        self._status_map = {leaf: leaf for leaf in self.states} | dict(spec.delivery.statuses)
        self._depth = self._depths()
        self._dests: dict[str, frozenset[str]] = {t: frozenset() for t in self.triggers}
        for (s, t), steps in self._table.items():
            self._dests[t] |= {d if d is not None else s for d, _ in steps}
        self._reach = {s: self._reachable_from(s) for s in self.states}

    # ------------------------------------------------------------------ building

    def _index(self, states: list[StateSpec], parent: str | None, canonical: str | None) -> None:
        for s in states:
            full = f"{parent}.{s.name}" if parent else s.name
            self._by_name[full] = s
            self._parent[full] = parent
            c = s.canonical or canonical
            if s.states:
                self._index(s.states, full, c)
            else:
                self.states.append(full)
                assert c is not None  # checked when the chart was parsed
                self._canonical[full] = c

    def _enter(self, name: str) -> str:
        """The leaf an invoice is in after entering ``name`` (a compound state's initial child)."""
        spec = self._by_name[name]
        while spec.states:
            child = spec.initial or spec.states[0].name
            name, spec = f"{name}.{child}", self._by_name[f"{name}.{child}"]
        return name

    def _build_machine(self) -> Machine:
        nested = any(s.states for s in self.spec.states)
        non_final = [s for s in self.states if s not in self._final]
        transitions = [
            {
                "trigger": t.trigger,
                "source": non_final if t.source == ["*"] else list(t.source),
                "dest": t.dest,
                "conditions": [t.guard] if t.guard is not None else [],
            }
            for t in self.spec.transitions
        ]
        cls = _dot_machine() if nested else Machine
        return cls(
            model=None,
            states=_transitions_states(self.spec.states),
            transitions=transitions,
            initial=self.spec.initial[0],
            auto_transitions=False,
            send_event=False,
        )

    def _compile(self) -> dict[tuple[str, str], tuple[_Step, ...]]:
        table: dict[tuple[str, str], tuple[_Step, ...]] = {}
        for trigger, event in self.machine.events.items():
            for leaf in self.states:
                steps: list[_Step] = []
                scope: str | None = leaf
                while scope is not None:  # the deepest scope first, as the machine does
                    for tr in event.transitions.get(scope, []):
                        dest = None if tr.dest is None else self._enter(tr.dest)
                        steps.append((dest, tuple(tr.conditions)))
                    scope = self._parent[scope]
                if steps:
                    table[(leaf, trigger)] = tuple(steps)
        return table

    def _depths(self) -> dict[str, int]:
        depth = {s: 0 for s in self.initial_states}
        queue = deque(self.initial_states)
        while queue:
            s = queue.popleft()
            for t in self._allowed[s]:
                for dest, _ in self._table[(s, t)]:
                    if dest is not None and dest not in depth:
                        depth[dest] = depth[s] + 1
                        queue.append(dest)
        return depth

    def _reachable_from(self, start: str) -> frozenset[str]:
        seen = {start}
        stack = [start]
        while stack:
            s = stack.pop()
            for t in self._allowed[s]:
                for dest, _ in self._table[(s, t)]:
                    if dest is not None and dest not in seen:
                        seen.add(dest)
                        stack.append(dest)
        return frozenset(seen)

    # ---------------------------------------------------------------- validator

    def next_state(self, state: str, trigger: str, payload: Any = None) -> str:
        """The state after ``trigger`` from ``state``; ``payload`` feeds guards.

        Raises:
            TransitionNotAllowed: the trigger is not legal from ``state`` (or its guard is false).
            UnknownState: ``state`` is not a state of this chart.
            UnknownTrigger: ``trigger`` is not a trigger of this chart.
        """
        dest = self._fast.get((state, trigger))
        if dest is not None:
            return dest
        return self._decide(state, trigger, payload)

    def _decide(self, state: str, trigger: str, payload: Any) -> str:
        steps = self._table.get((state, trigger))
        if steps is None:
            if state not in self._allowed:
                raise UnknownState(self.name, state, self.states)
            if trigger not in self.machine.events:
                raise UnknownTrigger(self.name, trigger, self.triggers)
            why = "a final state" if state in self._final else None
            raise TransitionNotAllowed(state, trigger, self._allowed[state], why)
        for dest, conds in steps:
            if all(c.func(payload) == c.target for c in conds):  # type: ignore[operator]
                return dest if dest is not None else state
        guards = "; ".join(f"{c.func} is false" for _, cs in steps for c in cs)
        raise TransitionNotAllowed(state, trigger, self._allowed[state], guards)

    def may(self, state: str, trigger: str, payload: Any = None) -> bool:
        """Whether ``trigger`` is legal from ``state`` for this payload (never raises)."""
        if (state, trigger) in self._fast:
            return True
        try:
            self._decide(state, trigger, payload)
        except (TransitionNotAllowed, UnknownState, UnknownTrigger):
            return False
        return True

    def allowed_triggers(self, state: str) -> list[str]:
        """The triggers legal from ``state`` (guarded ones included), in chart order."""
        if state not in self._allowed:
            raise UnknownState(self.name, state, self.states)
        return list(self._allowed[state])

    def check(self, triggers: Iterable[str | tuple[str, Any]], start: str | None = None) -> str:
        """Fold a sequence of triggers (or ``(trigger, payload)`` pairs) from ``start``.

        Returns the final state. Raises :class:`TransitionNotAllowed` at the first illegal step.
        """
        state = self.initial_states[0] if start is None else start
        if state not in self._allowed:
            raise UnknownState(self.name, state, self.states)
        for item in triggers:
            trigger, payload = (item, None) if isinstance(item, str) else item
            state = self.next_state(state, trigger, payload)
        return state

    def canonical(self, state: str) -> str:
        """The canonical lifecycle state (``draft``, ``open``, ``paid``, ``void``, …)."""
        try:
            return self._canonical[state]
        except KeyError:
            raise UnknownState(self.name, state, self.states) from None

    def is_final(self, state: str) -> bool:
        return state in self._final

    def transitions_between(self, state: str, target: str) -> list[str]:
        """Triggers that may lead from ``state`` to ``target`` (guards not yet checked)."""
        return list(self._routes.get((state, target), ()))

    def steps(self, state: str, trigger: str) -> Sequence[_Step]:
        """The machine's candidate steps for (state, trigger): (dest or None, conditions)."""
        return self._table.get((state, trigger), ())

    def state_for_status(self, status: object) -> str | None:
        """The leaf state a provider status value names, or ``None``."""
        return self._status_map.get(status) if isinstance(status, str) else None

    def reachable(self, state: str) -> frozenset[str]:
        """Every state reachable from ``state`` (itself included)."""
        return self._reach[state]

    def destinations(self, trigger: str) -> frozenset[str]:
        """Every state ``trigger`` can lead to (for an internal transition: its sources)."""
        return self._dests.get(trigger, frozenset())

    def could_become_legal(self, state: str, trigger: str) -> bool:
        """Whether ``trigger`` is legal in some state reachable from ``state``."""
        return any((s, trigger) in self._table for s in self._reach[state])

    @property
    def statuses(self) -> list[str]:
        """Every provider status value the chart understands (state names map to themselves)."""
        return list(self._status_map)

    def depth(self, state: str) -> int:
        """How many steps from birth ``state`` is at the least (unreachable: a large number)."""
        return self._depth.get(state, 1_000)

    def event(self, event_type: str) -> EventSpec | None:
        return self.spec.events.get(event_type)

    def __repr__(self) -> str:
        return f"<Chart {self.name!r}: {len(self.states)} states, {len(self.triggers)} triggers>"
