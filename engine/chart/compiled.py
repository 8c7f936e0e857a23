"""A loaded chart: one shared ``transitions`` machine, and the lifecycle validator built on it.

``transitions`` decides. Each chart builds exactly one machine (never one per invoice:
``add_model`` costs kilobytes a model), a ``HierarchicalMachine`` with ``.`` as the separator
when the chart nests or has parallel regions (the default ``_`` would split
``payment_pending``), always with ``auto_transitions=False`` so there are no ``to_<state>``
back doors.

When the chart loads, :mod:`._machine` asks that machine every question there is: it sets a
scratch model to each configuration, fires each trigger (for a guarded one, once for each
outcome of its guards) and reads the configuration back. The validator answers from those
answers, so the hot path is a dictionary lookup; a guarded question evaluates the machine's own
conditions on the payload and looks up what the machine did for that outcome. No rule of how a
statechart resolves a trigger is written here; a hypothesis property over generated charts
drives a real model through the real machine and checks that both agree.

The machine's states come from the chart's :class:`~engine.chart.tree.StateTree` (names,
regions, initial children, canonical states, what ``*`` covers), built once here and shared as
:attr:`Chart.tree` with everything else that reads the chart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from transitions import Machine

from ..errors import ChartError, TransitionNotAllowed, UnknownState, UnknownTrigger
from ._graph import (
    Graph,
    candidate_steps,
    mixed_canonical,
    not_a_configuration,
    scope_by_scope,
)
from ._machine import (
    STAY,
    CandidateStep,
    Explorer,
    dot_machine,
    guard_of,
    machine_states,
)
from .configuration import Configuration
from .spec import ChartSpec, EventSpec
from .tree import StateTree

__all__ = ["CandidateStep", "Chart"]


class Chart:
    """One provider's lifecycle: the validator API over a shared ``transitions`` machine.

    An invoice is in a *configuration* (:class:`~engine.chart.Configuration`, a ``str``): one
    leaf outside parallel states (``open.unpaid``; nested leaves are named ``parent.child``),
    one leaf per region inside one (``finalized.payment.pending+finalized.overdue.no``).
    Every method that takes a state takes a configuration, or its text with the leaves in any
    order. Load charts with :func:`load_chart`.

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
            ``initial`` child, …), the machine fails on a question (a crash inside
            ``transitions`` is a broken chart), or the chart has lint errors, as the loader
            would have said.
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
        #: Every configuration an invoice can be in, in chart order (without parallel states:
        #: the leaves).
        self.states: list[Configuration] = list(tree.configurations)
        self.final_states = [c for c in self.states if tree.node(c.leaves[0]).final]
        self.initial_states = [tree.enter(s) for s in spec.initial]
        self.has_guards = any(t.guard is not None for t in spec.transitions)
        self.triggers: list[str] = list(dict.fromkeys(t.trigger for t in spec.transitions))
        self.machine = self._build_machine()
        answers = Explorer(self.machine, tree, self._source).answer_all(self.states, self.triggers)
        self._graph = Graph(tree, self.states, self.triggers, answers, self.initial_states)
        graph = self._graph
        self._answers, self._fast, self._allowed = graph.answers, graph.fast, graph.allowed
        self._final = frozenset(self.final_states) | graph.final_scopes
        self._canonical = graph.canonicals(tree, self.states)
        self._status_map: dict[str, str] = {leaf: leaf for leaf in tree.leaves} | dict(
            spec.delivery.statuses
        )
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

    # -------------------------------------------------------------------- the tree

    @property
    def tree(self) -> StateTree:
        """The state tree: every state (leaf or compound) with its parent, children, initial
        child, inherited canonical state and description; which leaf entering a state enters;
        what ``source: '*'`` covers. Read-only, and the same tree the machine was built on."""
        return self._tree

    # ---------------------------------------------------------------- validator

    def configuration(self, state: str) -> Configuration:
        """``state`` as one of the chart's configurations (its leaves put in chart order).

        Raises:
            UnknownState: ``state`` is no configuration of this chart (an unknown name, a
                compound state, a leaf of one region alone).
        """
        found = self._tree.configuration(state)
        if found is None:
            raise not_a_configuration(self.name, self._tree, state, self.states)
        return found

    def next_state(self, state: str, trigger: str, payload: Any = None) -> Configuration:
        """The configuration after ``trigger`` from ``state``; ``payload`` feeds guards.

        ``state`` is a configuration (``open.unpaid``; ``a.x+a.y`` in a parallel state), where
        invoices are. Another state's name (``open``, ``finalized``) is accepted as the
        chart uses it in ``source:``, meaning "in one of its configurations": the answer is
        given when the machine answers every configuration inside alike (a transition written
        on the compound always does), and otherwise ``TransitionNotAllowed`` says what each
        would do, so the caller can name the configuration. It never guesses one.

        Raises:
            TransitionNotAllowed: the trigger is not legal from ``state`` (or its guard is false,
                or ``state`` is compound and its configurations disagree).
            UnknownState: ``state`` is not a state of this chart.
            UnknownTrigger: ``trigger`` is not a trigger of this chart.
        """
        dest = self._fast.get((state, trigger))
        if dest is not None:
            return dest
        return self._decide(state, trigger, payload)

    def _decide(self, state: str, trigger: str, payload: Any) -> Configuration:
        answer = self._answers.get((state, trigger))
        if answer is None:
            config = self._tree.configuration(state)
            if config is not None and config != state:  # its leaves in another order
                return self.next_state(config, trigger, payload)
            if state not in self._allowed:
                raise UnknownState(self.name, state, self.states)
            if trigger not in self.machine.events:
                raise UnknownTrigger(self.name, trigger, self.triggers)
            final = state in self._final
            why = (
                "a final state"
                if final
                else scope_by_scope(self._tree, self._answers, state, trigger)
                if config is None
                else None
            )
            raise TransitionNotAllowed(state, trigger, self._allowed[state], why)
        key = tuple(guard_of(c)(payload) == c.target for c in answer.conditions)
        outcome = answer.outcomes[key]  # the machine was asked every combination on loading
        if outcome is STAY:
            return self._tree.configuration(state) or Configuration(state)
        if isinstance(outcome, Configuration):
            return outcome
        guards = "; ".join(
            f"{c.func} is {'true' if held else 'false'}"
            for c, held in zip(answer.conditions, key, strict=True)
        )
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
        compound ``state``, those its configurations all allow alike (see :meth:`next_state`).

        Raises:
            UnknownState: ``state`` is not a state of this chart.
        """
        found = self._allowed.get(state)
        if found is None:
            found = self._allowed.get(self.configuration(state), [])
        return list(found)

    def check(
        self, triggers: Iterable[str | tuple[str, Any]], start: str | None = None
    ) -> Configuration:
        """Fold a sequence of triggers (or ``(trigger, payload)`` pairs) from ``start``.

        Returns the configuration after the last one (``start``: by default the chart's first
        initial configuration; a compound one as in :meth:`next_state`). Raises as
        :meth:`next_state`, at the first illegal step.
        """
        state: str = self.initial_states[0] if start is None else start
        if state not in self._allowed:
            state = self.configuration(state)
        for item in triggers:
            trigger, payload = (item, None) if isinstance(item, str) else item
            state = self.next_state(state, trigger, payload)
        return state if isinstance(state, Configuration) else Configuration(state)

    def canonical(self, state: str) -> str:
        """The canonical lifecycle state (``draft``, ``open``, ``paid``, ``void``, …).

        Every configuration has one, so that invoices from every provider can be compared (in
        a parallel state, its table of rules decides); a compound state has the one its
        configurations share (``open`` for ChargeOver's ``open``).

        Raises:
            UnknownState: ``state`` is not a state of this chart, or a compound state whose
                configurations have different canonical states (``closed``: paid or void).
            ChartError: the chart was built with ``require_canonical=False`` and ``state``
                has no canonical state.
        """
        canonical = self._canonical.get(state)
        if canonical is not None:
            return canonical
        if state in self._tree and state not in self.states:  # they differ: not "unknown"
            raise mixed_canonical(self.name, state, self._tree, self._canonical, self.states)
        config = self._tree.configuration(state)
        if config is not None and config != state:
            return self.canonical(config)
        if config is not None:
            where = self._tree.node(config.leaves[0]).location
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
        """Triggers that may lead from configuration ``state`` to ``target`` (guards not yet
        checked)."""
        return list(self._graph.routes.get((state, target), ()))

    def steps(self, state: str, trigger: str) -> tuple[CandidateStep, ...]:
        """The ways ``trigger`` can go from ``state``, as the machine answered: one step for
        each combination of the guards' values on which it moves, with the guards that hold in
        it, those with more holding first. A payload's first step whose guards all hold is the
        machine's answer, unless the machine refuses that combination (then none of its own is
        listed; none holding at all means refused). Empty: the trigger is not legal from
        ``state`` (or either name is unknown). For reading a chart (paths, lint, the testing
        helpers); :meth:`next_state` is the way to ask. A compound ``state`` as there.
        """
        answer = self._answers.get((state, trigger))
        return () if answer is None else candidate_steps(state, answer)

    def state_for_status(self, status: object, region: str | None = None) -> str | None:
        """The state a provider status value names, or ``None``: a leaf, or (through the
        chart's ``delivery.statuses``) any state, such as a parallel one. With ``region``
        (``finalized.payment``), a state of that region named relative to it
        (``succeeded``)."""
        if not isinstance(status, str):
            return None
        if region is None:
            return self._status_map.get(status)
        full = f"{region}.{status}"
        return full if status and full in self._tree else None

    def reachable(self, state: str) -> frozenset[Configuration]:
        """Every configuration reachable from configuration ``state`` (itself included)."""
        return self._graph.reachable(self.configuration(state))

    def can_reach(self, state: str, target: str) -> bool:
        """Whether some configuration within state ``target`` (a configuration, or any state
        name: ``finalized``) is reachable from configuration ``state``."""
        return any(c.within(target) for c in self.reachable(state))

    def destinations(self, trigger: str) -> frozenset[Configuration]:
        """Every configuration ``trigger`` can lead to (for an internal transition: its
        sources)."""
        return self._graph.dests.get(trigger, frozenset())

    def could_become_legal(self, state: str, trigger: str) -> bool:
        """Whether ``trigger`` is legal in some configuration reachable from ``state``."""
        return any((s, trigger) in self._answers for s in self.reachable(state))

    @property
    def statuses(self) -> list[str]:
        """Every provider status value the chart understands (leaf names map to themselves)."""
        return list(self._status_map)

    def depth(self, state: str) -> int:
        """How many steps from birth ``state`` is at the least (for a state name that is no
        configuration, the nearest configuration inside it; unreachable: a large number)."""
        found = self._graph.depth.get(state)
        if found is not None:
            return found
        if state in self._tree:
            inside = self._tree.configurations_within(state)
            return min((self._graph.depth.get(c, 1_000) for c in inside), default=1_000)
        return 1_000

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
