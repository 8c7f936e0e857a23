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
as ``Machine.trigger(name, payload)`` would call them (:mod:`._machine` builds the machine and
reads it). A test drives a real model through the real machine and checks that both agree.

The machine's states come from the chart's :class:`~engine.chart.tree.StateTree` (leaf names,
initial children, canonical inheritance, what ``*`` covers), built once here and shared as
:attr:`Chart.tree` with everything else that reads the chart.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from transitions import Machine

from ..errors import ChartError, TransitionNotAllowed, UnknownState, UnknownTrigger
from ._machine import (
    CandidateStep,
    compile_steps,
    dot_machine,
    leaf_by_leaf,
    machine_states,
    mixed_canonical,
    shared_steps,
)
from .spec import ChartSpec, EventSpec, StateSpec
from .tree import StateTree

__all__ = ["CandidateStep", "Chart"]


def _transitions_states(states: Sequence[StateSpec]) -> list[dict[str, Any]]:
    """A chart's states in ``transitions``' nested-dict form (``benchmarks/run.py`` uses it)."""
    tree = StateTree(states, require_canonical=False)
    return machine_states(tree, tree.roots)


class Chart:
    """One provider's lifecycle: the validator API over a shared ``transitions`` machine.

    Invoices are always in a *leaf* state; nested leaves are named ``parent.child``
    (``open.unpaid``). Load charts with :func:`load_chart`.

    The chart's state tree (:attr:`tree`) is the one place the nesting rules are applied:
    lint, the diagrams, the testing helpers and the CLI read it from here.

    Args:
        spec: the chart, as parsed (normally by :func:`load_chart`, which checks its meaning).
        path: the file it came from, if any.
        require_canonical: refuse a leaf without a canonical state (the loader refuses it
            too). Lint passes ``False`` to build the machine of a :class:`ChartSpec` made in
            code and report such leaves as findings; :meth:`canonical` then raises
            :class:`ChartError` for them. (With ``enforce_lint`` such a leaf is still
            refused, as a ``missing-canonical`` error.)
        enforce_lint: refuse a chart with an error-level lint finding that its
            ``lint_exceptions`` don't cover (they only cover warnings), as the loader does.
            ``False`` builds it anyway, so that :func:`~engine.chart.lint` can report them.

    Raises:
        ChartError: the states don't form a valid tree (duplicate names, an unknown
            ``initial`` child, …), or the chart has lint errors, as the loader would have said.
    """

    def __init__(
        self,
        spec: ChartSpec,
        path: Path | None = None,
        *,
        require_canonical: bool = True,
        enforce_lint: bool = True,
    ) -> None:
        self.spec = spec
        self.name = spec.provider
        self.path = path
        self._source = str(path) if path is not None else f"<chart {spec.provider!r}>"
        self._tree = StateTree(spec.states, self._source, require_canonical=require_canonical)
        tree = self._tree
        self.states: list[str] = list(tree.leaves)  # leaves, in chart order
        self._canonical: dict[str, str] = {
            name: node.canonical
            for name, node in tree.nodes.items()
            if node.leaf and node.canonical is not None
        }
        self.final_states = list(tree.final_leaves)
        self._final = frozenset(self.final_states)
        self.initial_states = [tree.enter(s) for s in spec.initial]
        self.has_guards = any(t.guard is not None for t in spec.transitions)
        self.triggers: list[str] = list(dict.fromkeys(t.trigger for t in spec.transitions))
        self.machine = self._build_machine()
        self._table = compile_steps(self.machine, tree)
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
        self._share_compound_steps()
        self._ranks: dict[tuple[str, str | None], int] = {}
        # A location's line and column (``transitions[3]``), for lint: set by the loader.
        self._positions: Callable[[str], tuple[int, int] | None] | None = None
        if enforce_lint:
            from .lint import enforce  # lint reads compiled charts: imported on use

            enforce(self, self._source)

    # ------------------------------------------------------------------ building

    def _build_machine(self) -> Machine:
        tree = self._tree
        transitions = [
            {
                "trigger": t.trigger,
                "source": list(tree.expand_sources(t.source)),
                "dest": t.dest,
                "conditions": [t.guard] if t.guard is not None else [],
            }
            for t in self.spec.transitions
        ]
        cls = dot_machine() if tree.compound else Machine
        return cls(
            model=None,
            states=machine_states(tree, tree.roots),
            transitions=transitions,
            initial=self.spec.initial[0],
            auto_transitions=False,
            send_event=False,
        )

    def _share_compound_steps(self) -> None:
        """Let a compound state stand for "in one of its leaves, whichever", as the chart's own
        ``source:`` does: it gets the steps its leaves share (see :mod:`._machine`), as dict
        entries, so ``next_state`` stays one lookup; it is final if they all are, and has
        their canonical state if they share one."""
        self._shared = shared_steps(self._table, self._tree, self.triggers)
        for compound in self._tree.compound:
            leaves = self._tree.leaves_under(compound)
            self._allowed[compound] = [t for t in self.triggers if (compound, t) in self._shared]
            for t in self._allowed[compound]:
                first = self._shared[(compound, t)][0]
                if not first.conditions:
                    self._fast[(compound, t)] = first.dest or compound
            if all(leaf in self._final for leaf in leaves):
                self._final |= {compound}
            shared = {self._canonical.get(leaf) for leaf in leaves}
            if len(shared) == 1 and (canonical := next(iter(shared))) is not None:
                self._canonical[compound] = canonical

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

    # -------------------------------------------------------------------- the tree

    @property
    def tree(self) -> StateTree:
        """The state tree: every state (leaf or compound) with its parent, children, initial
        child, inherited canonical state and description; which leaf entering a state enters;
        what ``source: '*'`` covers. Read-only, and the same tree the machine was built on."""
        return self._tree

    # ---------------------------------------------------------------- validator

    def next_state(self, state: str, trigger: str, payload: Any = None) -> str:
        """The state after ``trigger`` from ``state``; ``payload`` feeds guards.

        ``state`` is a leaf (``open.unpaid``), where invoices are. A compound state's name
        (``open``) is accepted as the chart uses it in ``source:``, meaning "in one of its
        leaves": the answer is given when every leaf inside gives the same one (a transition
        written on the compound always does, and an internal one stays in the compound), and
        otherwise ``TransitionNotAllowed`` says what each leaf would do, so the caller can name
        the leaf. It never guesses a leaf.

        Raises:
            TransitionNotAllowed: the trigger is not legal from ``state`` (or its guard is false,
                or ``state`` is compound and its leaves disagree).
            UnknownState: ``state`` is not a state of this chart.
            UnknownTrigger: ``trigger`` is not a trigger of this chart.
        """
        dest = self._fast.get((state, trigger))
        if dest is not None:
            return dest
        return self._decide(state, trigger, payload)

    def _decide(self, state: str, trigger: str, payload: Any) -> str:
        steps = self._table.get((state, trigger)) or self._shared.get((state, trigger))
        if steps is None:
            if state not in self._allowed:
                raise UnknownState(self.name, state, self.states)
            if trigger not in self.machine.events:
                raise UnknownTrigger(self.name, trigger, self.triggers)
            final = state in self._final
            why = (
                "a final state" if final else leaf_by_leaf(self._table, self._tree, state, trigger)
            )
            raise TransitionNotAllowed(state, trigger, self._allowed[state], why)
        for dest, conds in steps:
            if all(c.func(payload) == c.target for c in conds):  # type: ignore[operator]
                return dest if dest is not None else state
        guards = "; ".join(f"{c.func} is false" for _, cs in steps for c in cs)
        raise TransitionNotAllowed(state, trigger, self._allowed[state], guards)

    def may(self, state: str, trigger: str, payload: Any = None) -> bool:
        """Whether ``trigger`` is legal from ``state`` for this payload (never raises); a
        compound ``state`` as in :meth:`next_state`."""
        if (state, trigger) in self._fast:
            return True
        try:
            self._decide(state, trigger, payload)
        except (TransitionNotAllowed, UnknownState, UnknownTrigger):
            return False
        return True

    def allowed_triggers(self, state: str) -> list[str]:
        """The triggers legal from ``state`` (guarded ones included), in chart order; for a
        compound ``state``, those its leaves all allow alike (see :meth:`next_state`).

        Raises:
            UnknownState: ``state`` is not a state of this chart.
        """
        if state not in self._allowed:
            raise UnknownState(self.name, state, self.states)
        return list(self._allowed[state])

    def check(self, triggers: Iterable[str | tuple[str, Any]], start: str | None = None) -> str:
        """Fold a sequence of triggers (or ``(trigger, payload)`` pairs) from ``start``.

        Returns the state after the last one (``start``: by default the chart's first initial
        state; a compound one as in :meth:`next_state`). Raises as :meth:`next_state`, at the
        first illegal step.
        """
        state = self.initial_states[0] if start is None else start
        if state not in self._allowed:
            raise UnknownState(self.name, state, self.states)
        for item in triggers:
            trigger, payload = (item, None) if isinstance(item, str) else item
            state = self.next_state(state, trigger, payload)
        return state

    def canonical(self, state: str) -> str:
        """The canonical lifecycle state (``draft``, ``open``, ``paid``, ``void``, …).

        Every leaf has one, so that invoices from every provider can be compared; a compound
        state has the one its leaves share (``open`` for ChargeOver's ``open``).

        Raises:
            UnknownState: ``state`` is not a state of this chart, or a compound state whose
                leaves have different canonical states (``closed``: paid or void).
            ChartError: the chart was built with ``require_canonical=False`` and ``state``
                has no canonical state.
        """
        canonical = self._canonical.get(state)
        if canonical is not None:
            return canonical
        if state in self._tree.compound:  # its leaves differ: say so, not "unknown"
            raise mixed_canonical(self.name, state, self._tree, self._canonical, self.states)
        if state in self._allowed:
            where = self._tree.node(state).location
            raise ChartError(self._source, where, f"state {state!r} has no canonical state")
        raise UnknownState(self.name, state, self.states)

    def is_final(self, state: str) -> bool:
        """Whether ``state`` is final: an invoice there stays there, as no transition leaves it.

        True for the leaves the chart marks ``final: true`` and for a compound state whose
        leaves all are (ChargeOver's ``closed``); ``False`` for any other name, unknown ones
        included, so it can be asked of anything without a ``try``.
        """
        return state in self._final

    def transitions_between(self, state: str, target: str) -> list[str]:
        """Triggers that may lead from ``state`` to ``target`` (guards not yet checked)."""
        return list(self._routes.get((state, target), ()))

    def steps(self, state: str, trigger: str) -> tuple[CandidateStep, ...]:
        """The steps the machine would try for ``trigger`` from ``state``, in its order.

        The first whose conditions all hold is taken (the deepest state's transitions before
        its parents', then chart order); none holding means the trigger is refused. Empty: the
        trigger is not legal from ``state`` at all (or either name is unknown). For reading a
        chart (paths, lint, the testing helpers); :meth:`next_state` is the quick way to ask.
        A compound ``state`` as in :meth:`next_state`.
        """
        key = (state, trigger)
        return self._table.get(key) or self._shared.get(key, ())

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
        """What the chart's ``events:`` map says a provider's ``event_type`` means.

        The engine reads a delivery's event type, then asks this what to do: create the
        invoice, fire a trigger, follow the status snapshot, or only record it (``info``).

        Returns:
            The event's entry, or ``None`` when the chart does not map ``event_type`` (the
            engine records such a delivery as ``ignored``, naming the event types it knows).
        """
        return self.spec.events.get(event_type)

    def lifecycle_rank(self, event_type: str, status_state: str | None) -> int:
        """How early in the lifecycle an event acts: the tie-break for simultaneous events.

        Creating (and unmapped) events rank 0; a trigger ranks one more than the fewest steps
        from birth to any state it leads to; a status-following event one more than the steps
        to the state its snapshot names; anything else 1. Remembered per chart: an engine asks
        for every event it folds, and there are only a few (event type, status) pairs.
        """
        key = (event_type, status_state)
        rank = self._ranks.get(key)
        if rank is None:
            spec = self.spec.events.get(event_type)
            if spec is None or spec.create:
                rank = 0
            elif spec.trigger is not None:
                dests = self.destinations(spec.trigger)
                rank = 1 + min((self.depth(d) for d in dests), default=0)
            elif status_state is not None:
                rank = 1 + self.depth(status_state)
            else:
                rank = 1
            self._ranks[key] = rank
        return rank

    def __repr__(self) -> str:
        return f"<Chart {self.name!r}: {len(self.states)} states, {len(self.triggers)} triggers>"
