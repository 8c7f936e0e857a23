"""A chart's ``transitions`` machine, built here from the chart's spec, with nothing of
``engine.chart``'s compiling: the reference the compiled chart is held to (``test_agreement``).

It shares with the engine only the ``transitions`` library and the parsed :class:`ChartSpec`:
the states are put in ``transitions``' nested-dict form here, ``source: '*'`` is expanded here,
and guards are evaluated on the real payload by ``_dict_chart``'s own reading of them. A model is
set to a configuration, the trigger fired, and the active leaves read back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from itertools import product
from typing import Any

from _dict_chart import guard_holds
from transitions import Machine, MachineError
from transitions.extensions.nesting import HierarchicalMachine, NestedState

from engine.chart.spec import ChartSpec, StateSpec


class _DotState(NestedState):
    separator = "."


class _DotMachine(HierarchicalMachine):
    state_cls = _DotState


class Illegal(Exception):
    """The machine has no transition for the trigger from the configuration
    (``transitions`` raised ``MachineError: Can't trigger event …``)."""


def _state(spec: StateSpec) -> dict[str, Any]:
    out: dict[str, Any] = {"name": spec.name, "final": spec.final}
    if spec.states and spec.parallel:
        out["parallel"] = [_state(s) for s in spec.states]
    elif spec.states:
        out["children"] = [_state(s) for s in spec.states]
        out["initial"] = spec.initial or spec.states[0].name
    return out


def _leaves(states: Iterable[StateSpec], parent: str = "") -> Iterable[tuple[str, bool]]:
    for s in states:
        full = f"{parent}.{s.name}" if parent else s.name
        if s.states:
            yield from _leaves(s.states, full)
        else:
            yield full, s.final


class Forced:
    """A payload that says what each guard holds, by its text, instead of being read: to fire
    the machine once per outcome of its guards, as the compiled chart does."""

    def __init__(self, outcomes: dict[str, bool]) -> None:
        self.outcomes = outcomes


def _condition(text: str) -> Callable[..., bool]:
    def holds(payload: Any = None, *_: Any, **__: Any) -> bool:
        if isinstance(payload, Forced):
            return payload.outcomes[text]
        return guard_holds(text, payload)

    holds.__name__ = f"guard {text}"
    return holds


def _flatten(state: Any) -> Iterable[str]:
    if isinstance(state, str):
        yield state
    else:
        for s in state:
            yield from _flatten(s)


class _Model:
    state: Any


class Reference:
    """A fresh ``HierarchicalMachine`` (``.`` separator) for ``spec``, and one model on it."""

    def __init__(self, spec: ChartSpec) -> None:
        self.spec = spec
        leaves = list(_leaves(spec.states))
        self.order = {leaf: i for i, (leaf, _) in enumerate(leaves)}
        non_final = [leaf for leaf, final in leaves if not final]
        transitions = [
            {
                "trigger": t.trigger,
                "source": non_final if t.source == ["*"] else list(t.source),
                "dest": t.dest,  # None: internal
                "conditions": [] if t.guard is None else [_condition(t.guard.text)],
            }
            for t in spec.transitions
        ]
        self.machine: Machine = _DotMachine(
            model=None,
            states=[_state(s) for s in spec.states],
            transitions=transitions,
            initial=spec.initial[0],
            auto_transitions=False,
            send_event=False,
        )
        self.model = _Model()
        self.machine.add_model(self.model)
        #: The configuration the machine enters first (``initial[0]``, entered).
        self.initial = "+".join(self.leaves())
        self.guards = {
            trigger: list(
                dict.fromkeys(
                    g.text
                    for t in spec.transitions
                    if t.trigger == trigger and (g := t.guard) is not None
                )
            )
            for trigger in dict.fromkeys(t.trigger for t in spec.transitions)
        }

    def outcomes(self, config: str, trigger: str) -> Iterable[tuple[Forced, str | None]]:
        """What the machine does for ``trigger`` from ``config`` for every outcome of the
        guards it could meet there (those of the trigger's transitions from an active leaf or
        a state enclosing one), lazily (as :meth:`fire`, which raises :class:`Illegal`)."""
        active = config.split("+")
        texts = list(
            dict.fromkeys(
                t.guard.text
                for t in self.spec.transitions
                if t.trigger == trigger
                and t.guard is not None
                and (
                    t.source == ["*"]
                    or any(a == s or a.startswith(s + ".") for a in active for s in t.source)
                )
            )
        )
        for values in product((True, False), repeat=len(texts)):
            forced = Forced(dict(zip(texts, values, strict=True)))
            yield forced, self.fire(config, trigger, forced)

    def set(self, config: str) -> None:
        """Put the model in ``config`` (``a.x+a.y``: its leaves)."""
        leaves = config.split("+")
        # transitions' nested machines take a list of states for a parallel state's regions
        # (its stub says one state)
        state: Any = leaves if len(leaves) > 1 else leaves[0]
        self.machine.set_state(state, model=self.model)

    def leaves(self) -> list[str]:
        """The model's active states, in chart order."""
        return sorted(_flatten(self.model.state), key=lambda s: self.order.get(s, -1))

    def fire(self, config: str, trigger: str, payload: Any) -> str | None:
        """The configuration after ``trigger`` (its leaves in chart order joined by ``+``), or
        ``None`` when the machine refused it (``trigger()`` returned ``False``: every guard
        false).

        Raises:
            Illegal: no transition for ``trigger`` from ``config``.
            Exception: anything else ``transitions`` raises, as it is.
        """
        self.set(config)
        try:
            moved = self.model.trigger(trigger, payload)  # type: ignore[attr-defined]
        except MachineError as exc:
            if "Can't trigger event" in str(exc.value):
                raise Illegal(str(exc.value)) from exc
            raise
        return "+".join(self.leaves()) if moved else None

    def next_state(self, config: str, trigger: str, payload: Any = None) -> str | None:
        """Like :meth:`fire`, with ``None`` for an illegal trigger too."""
        try:
            return self.fire(config, trigger, payload)
        except Illegal:
            return None
