"""A chart's ``transitions`` machine, and every answer it gives, asked once.

``transitions`` decides. :meth:`Explorer.answer_all` sets a scratch model to each configuration
of the chart, fires each trigger, and reads the configuration back: the machine's own
resolution (which transition of which state fires, in which region, what a compound or parallel
destination enters, what an internal transition leaves alone) is the only one there is. A
question whose answer depends on guards is asked once for every outcome of the guards it could
meet (the machine is fired with an :class:`~engine.chart.expr.Assumed` payload that says what
each guard holds), so the compiled chart answers a real payload by evaluating those guards, the
machine's own conditions, and looking up what the machine did for that outcome.

Nothing here re-implements how a statechart resolves a trigger; what it reads of the machine's
tables is only *which* guards a question could meet (those of the trigger's transitions whose
source is active or encloses an active leaf): a superset, checked by the machine itself, which
reports a guard it asks that was not foreseen (:class:`~engine.chart.expr.GuardNotForeseen`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from itertools import product
from typing import Any, Final, NamedTuple

from transitions import Machine, MachineError
from transitions.core import Condition

from ..errors import ChartError
from .configuration import Configuration
from .expr import Assumed, Guard
from .tree import StateTree

__all__ = [
    "MAX_FIRINGS",
    "MAX_GUARDS",
    "STAY",
    "Answer",
    "CandidateStep",
    "Explorer",
    "Outcome",
    "dot_machine",
    "guard_of",
    "machine_states",
    "quiet",
]

#: The most guards one (configuration, trigger) question may meet: the machine is asked for
#: every combination of their outcomes when the chart loads (2**n firings).
MAX_GUARDS = 8
#: The most times loading a chart may fire its machine (about half a millisecond each).
MAX_FIRINGS = 20_000


class _Stay:
    """An internal transition's answer: legal, and the configuration stays as it is."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "STAY"


STAY: Final = _Stay()
#: What the machine did: moved to a configuration, stayed (internal), or refused (``None``:
#: every guard that could let the trigger fire was false).
Outcome = Configuration | _Stay | None


class Answer(NamedTuple):
    """The machine's answers to one (configuration, trigger) question.

    Attributes:
        conditions: the machine's ``Condition`` objects of the guards the question could meet,
            in chart order (``c.func`` is the chart's :class:`~engine.chart.expr.Guard`).
        outcomes: for each tuple of those guards' values, what the machine did.
    """

    conditions: tuple[Condition, ...]
    outcomes: dict[tuple[bool, ...], Outcome]


class CandidateStep(NamedTuple):
    """One way a trigger can go from a state, summarizing the machine's answers: see
    :meth:`Chart.steps <engine.chart.Chart.steps>`. A tuple too, so ``for dest, conditions
    in chart.steps(s, t)`` works. (Not :class:`engine.testing.Step`, one step of a generated
    test path.)

    Attributes:
        dest: the configuration the step leads to, or ``None`` for an internal transition
            (legal, the invoice stays where it is).
        conditions: the guards that must hold, as the ``transitions`` machine's own
            ``Condition`` objects: ``c.func(payload) == c.target`` is the test, and ``c.func``
            is the chart's guard (its ``str()`` is the expression as written). Empty: always.
    """

    dest: Configuration | None
    conditions: tuple[Condition, ...]


@cache
def dot_machine() -> type[Machine]:
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


def machine_states(tree: StateTree, names: Iterable[str]) -> list[dict[str, Any]]:
    """The states of ``names`` and their subtrees, in ``transitions``' nested-dict form (a
    parallel state's regions under ``parallel``)."""
    out: list[dict[str, Any]] = []
    for name in names:
        node = tree.node(name)
        d: dict[str, Any] = {"name": node.spec.name, "final": node.final}
        if node.parallel:
            d["parallel"] = machine_states(tree, node.children)
        elif node.initial_child is not None:
            d["children"] = machine_states(tree, node.children)
            d["initial"] = tree.node(node.initial_child).spec.name
        out.append(d)
    return out


def guard_of(condition: Condition) -> Guard:
    """The chart's guard a machine condition calls (every condition of a chart's machine is
    one)."""
    func = condition.func
    assert isinstance(func, Guard), func
    return func


@contextmanager
def quiet() -> Iterator[None]:
    """``transitions`` logs every state it enters and leaves at INFO: asking it a chart's
    questions would flood a server's log (and slow the asking) with lines about no invoice."""
    log = logging.getLogger("transitions")
    before = log.level
    if log.getEffectiveLevel() < logging.WARNING:
        log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        log.setLevel(before)


class _Scratch:
    """The one model the machine is fired on to learn its answers (never an invoice)."""

    state: Any


class Explorer:
    """Asks a chart's machine every question, when the chart loads.

    Args:
        machine: the chart's machine (built with ``model=None``); a scratch model is added.
        tree: the chart's state tree, whose configurations are the questions' starting points.
        source: names the chart in errors.
    """

    def __init__(self, machine: Machine, tree: StateTree, source: str) -> None:
        self._machine = machine
        self._tree = tree
        self._source = source
        self._model = _Scratch()
        machine.add_model(self._model)
        self._ancestors = {c: _scopes(tree, c.leaves) for c in tree.configurations}

    def answer(
        self, config: Configuration, trigger: str, conditions: tuple[Condition, ...]
    ) -> Answer | None:
        """What the machine does for ``trigger`` in ``config``, for every outcome of the
        guards it could meet (``conditions``); ``None`` when the trigger is not legal there."""
        guards = [guard_of(c) for c in conditions]
        outcomes: dict[tuple[bool, ...], Outcome] = {}
        for values in product((True, False), repeat=len(conditions)):
            got = self.fire(config, trigger, dict(zip(guards, values, strict=True)))
            if got is _ILLEGAL:
                return None
            outcomes[values] = got  # type: ignore[assignment]
        return Answer(conditions, outcomes)

    def answer_all(
        self, configs: Sequence[Configuration], triggers: Sequence[str]
    ) -> dict[tuple[str, str], Answer]:
        """:meth:`answer` for every (configuration, trigger), the illegal ones left out.

        Raises:
            ChartError: a question could meet more than :data:`MAX_GUARDS` guards, or the
                questions need more than :data:`MAX_FIRINGS` firings in all.
        """
        questions = [(c, t, self._conditions(c, t)) for c in configs for t in triggers]
        for config, trigger, conditions in questions:
            if len(conditions) > MAX_GUARDS:
                raise ChartError(
                    self._source,
                    "transitions",
                    f"{trigger!r} from {config!r} could meet {len(conditions)} guards; at most "
                    f"{MAX_GUARDS} are supported (every combination is asked of the machine "
                    "when the chart loads)",
                )
        firings = sum(2 ** len(conditions) for _, _, conditions in questions)
        if firings > MAX_FIRINGS:
            raise ChartError(
                self._source,
                "states",
                f"loading the chart would fire its machine {firings:,} times ({len(configs):,} "
                f"configurations x {len(triggers)} triggers, and each combination of guards); "
                f"at most {MAX_FIRINGS:,} (about half a millisecond each) are supported: make "
                "fewer states independent, or split the chart",
            )
        answers: dict[tuple[str, str], Answer] = {}
        with quiet():
            for config, trigger, conditions in questions:
                found = self.answer(config, trigger, conditions)
                if found is not None:
                    answers[(config, trigger)] = found
        return answers

    def _conditions(self, config: Configuration, trigger: str) -> tuple[Condition, ...]:
        """The machine's conditions on ``trigger``'s transitions from an active state or one
        enclosing an active leaf (one per distinct guard, in chart order)."""
        event = self._machine.events[trigger]
        found: dict[Guard, Condition] = {}
        for source in self._ancestors[config]:
            for tr in event.transitions.get(source, ()):
                for c in tr.conditions:
                    if isinstance(c.func, Guard):
                        found.setdefault(c.func, c)
        order = {g: i for i, g in enumerate(self._guard_order(event))}
        return tuple(sorted(found.values(), key=lambda c: order[guard_of(c)]))

    @staticmethod
    def _guard_order(event: Any) -> list[Guard]:
        seen: dict[Guard, None] = {}
        for transitions in event.transitions.values():
            for tr in transitions:
                for c in tr.conditions:
                    if isinstance(c.func, Guard):
                        seen.setdefault(c.func, None)
        return list(seen)

    def fire(self, config: Configuration, trigger: str, guards: dict[Guard, bool]) -> object:
        """Set the scratch model to ``config``, fire ``trigger`` with the guards holding as
        given, and read the configuration back: a :class:`Configuration`, :data:`STAY`,
        ``None`` (refused by its guards) or ``_ILLEGAL`` (no transition for it here)."""
        machine, model = self._machine, self._model
        leaves = config.leaves
        state: Any = list(leaves) if len(leaves) > 1 else leaves[0]  # a list: one per region
        machine.set_state(state, model=model)
        try:
            fired = model.trigger(trigger, Assumed(guards))  # type: ignore[attr-defined]
        except MachineError as exc:
            if "Can't trigger event" in str(exc.value):
                return _ILLEGAL
            raise self._crash(config, trigger, str(exc.value)) from exc
        except Exception as exc:  # a crash inside transitions is a broken chart, not "illegal"
            raise self._crash(config, trigger, f"{type(exc).__name__}: {exc}") from exc
        if not fired:
            return None
        after = self._read(model.state)
        if after is None:
            raise self._crash(
                config,
                trigger,
                f"it left the model in {model.state!r}, which is no configuration of the chart",
            )
        return STAY if after == config else after

    def _read(self, state: object) -> Configuration | None:
        leaves = list(_flatten(state))
        return self._tree.configuration("+".join(leaves)) if leaves else None

    def _crash(self, config: str, trigger: str, why: str) -> ChartError:
        return ChartError(
            self._source,
            "",
            f"the transitions machine failed on {trigger!r} from {config!r}: {why}",
        )


#: ``fire``'s answer when the trigger has no transition from the configuration.
_ILLEGAL: Final = object()


def _flatten(state: object) -> Iterable[str]:
    if isinstance(state, str):
        yield state
    elif isinstance(state, list | tuple):
        for s in state:
            yield from _flatten(s)


def _scopes(tree: StateTree, leaves: Sequence[str]) -> tuple[str, ...]:
    """Every active leaf and every state enclosing one, each once."""
    out: dict[str, None] = {}
    for leaf in leaves:
        scope: str | None = leaf
        while scope is not None:
            out[scope] = None
            scope = tree.parent(scope)
    return tuple(out)
