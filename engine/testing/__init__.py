"""Property-test billing code against a chart, with hypothesis.

Install the extra first: ``pip install 'invoice-engine[testing]'``. Importing :mod:`engine`
never imports hypothesis; only ``import engine.testing`` does.

Four tools, in hypothesis' own style (the chart first, options keyword-only, strategies and
plain functions, nothing to subclass):

- :func:`event_sequences` — a strategy of trigger sequences from a state; legal only, or with
  illegal steps mixed in at a chosen rate, each step labelled legal or not.
- :func:`deliveries` — a strategy of realistic webhook deliveries (body and headers, in the
  provider's payload shape as the chart's delivery map describes it) for a few invoices, with
  optional duplicates and shuffled arrival; :func:`expected_states` says where each invoice
  must end up.
- :func:`shortest_paths` and :func:`covering_paths` — deterministic paths for example-based
  tests: the shortest way to every state, and a few paths that take every transition.
- :func:`check_against_chart` — a model-based test: it drives your system and the chart side
  by side with hypothesis' stateful testing, and fails with a shrunk, minimal sequence of
  triggers at the first divergence, including your system accepting a step the chart forbids.

A state here is a configuration (:class:`engine.chart.configuration.Configuration`): one leaf
(``open.unpaid``), or in a parallel state one leaf per region (``fin.pay.done+fin.od.no``).
Steps and paths go from configuration to configuration, deliveries write each status snapshot
as the chart reads it (a region-following event's relative to its region, ``paid``'s
``pay_status: done``), and the model-based check compares configurations, whatever order your
system lists the leaves in.

Example::

    from engine import load_chart
    from engine.testing import Adapter, check_against_chart

    def test_my_billing_follows_stripe():
        def fresh():
            invoice = MyInvoice()
            return Adapter(send=lambda trigger, payload: getattr(invoice, trigger)(),
                           state=lambda: invoice.status)
        check_against_chart(load_chart("stripe"), fresh)
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

try:
    from hypothesis import settings as Settings
    from hypothesis import strategies as st
    from hypothesis.stateful import (
        RuleBasedStateMachine,
        precondition,
        rule,
        run_state_machine_as_test,
    )
except ImportError as exc:
    raise ImportError(
        "engine.testing needs hypothesis; install it with: pip install 'invoice-engine[testing]'"
    ) from exc

from ..chart import Chart
from ..chart.configuration import SEPARATOR, Configuration
from ..errors import TransitionNotAllowed, UnknownTrigger
from ._deliveries import Delivery, deliveries, expected_states
from ._paths import (
    Path,
    Step,
    covering_paths,
    illegal_steps,
    legal_steps,
    shortest_paths,
)

__all__ = [
    "Adapter",
    "Delivery",
    "Path",
    "Step",
    "SystemAdapter",
    "chart_state_machine",
    "check_against_chart",
    "covering_paths",
    "deliveries",
    "event_sequences",
    "expected_states",
    "shortest_paths",
]


# --------------------------------------------------------------------------- sequences


def _start(chart: Chart, start: str | None) -> Configuration:
    if start is None:
        return chart.initial_states[0]
    return chart.configuration(start)  # raises UnknownState, naming the valid states


def event_sequences(
    chart: Chart,
    *,
    start: str | None = None,
    min_size: int = 0,
    max_size: int = 12,
    legal_only: bool = True,
    illegal_rate: float = 0.25,
) -> st.SearchStrategy[list[Step]]:
    """A strategy of trigger sequences from ``start``, each step labelled with its outcome.

    Each :class:`Step` says the state it is taken from, the trigger, a payload (for guarded
    transitions: one the guard accepts, or for an illegal step one it refuses), the state
    after it, and whether the chart allows it. A rejected step leaves the state as it was, so
    the steps after it are labelled from the same state.

    Args:
        chart: the chart whose triggers to use.
        start: the state the sequences begin in; the chart's first initial state by default.
        min_size: the fewest steps. A legal-only sequence stops early in a state that nothing
            leaves (a final state), so it can be shorter.
        max_size: the most steps.
        legal_only: only steps the chart allows (the default). With ``False``, illegal steps
            (a trigger not legal in the state, or a guard that fails) are mixed in.
        illegal_rate: with ``legal_only=False``, about how often a step is illegal (0 to 1).

    Example::

        @given(event_sequences(chart, legal_only=False))
        def test_mine(steps):
            system = MySystem()
            for step in steps:
                assert system.send(step.trigger, step.payload) == step.legal
                assert system.state == step.dest
    """
    if not 0 <= min_size <= max_size:
        raise ValueError(f"need 0 <= min_size <= max_size, got {min_size=!r}, {max_size=!r}")
    if not 0.0 <= illegal_rate <= 1.0:
        raise ValueError(f"illegal_rate must be between 0 and 1, got {illegal_rate!r}")
    first = _start(chart, start)
    rate = 0 if legal_only else round(illegal_rate * 100)
    legal: dict[str, list[Step]] = {s: legal_steps(chart, s) for s in chart.states}
    illegal: dict[str, list[Step]] = {s: illegal_steps(chart, s) for s in chart.states}

    @st.composite
    def sequences(draw: st.DrawFn) -> list[Step]:
        size = draw(st.integers(min_size, max_size))
        state: str = first
        out: list[Step] = []
        for _ in range(size):
            # Shrinks towards legal steps: small numbers mean "legal".
            wants_illegal = rate > 0 and draw(st.integers(0, 99)) >= 100 - rate
            options = illegal[state] if wants_illegal else legal[state]
            if not options and not legal_only:
                options = legal[state] or illegal[state]
            if not options:
                break
            step = draw(st.sampled_from(options))
            out.append(step)
            state = step.dest
        return out

    return sequences()


# --------------------------------------------------------------------------- model-based


class SystemAdapter(Protocol):
    """How :func:`check_against_chart` talks to your system (any object with these two).

    ``send`` asks your system to take a trigger; it refuses by returning ``False`` or by
    raising (one of the ``rejects`` exceptions). ``state`` names your system's current state,
    in the chart's words: a configuration (``open.unpaid``; in a parallel state its active
    leaves, as ``a.x+a.y`` in any order or as a collection of leaf names), or its canonical
    lifecycle state, with ``compare="canonical"``.
    """

    def send(self, trigger: str, payload: Any) -> object: ...

    def state(self) -> str | Collection[str]: ...


@dataclass(frozen=True)
class Adapter:
    """A :class:`SystemAdapter` made of two callables, for when a lambda is enough."""

    send: Callable[[str, Any], object]
    state: Callable[[], str | Collection[str]]


def _payloads(chart: Chart, trigger: str) -> list[Any]:
    """The payloads worth sending with a guarded trigger: for every state, one that passes each
    of its guards and one that fails them all (the chart decides, at run time, what is legal)."""
    seen: dict[str, Any] = {}
    for state in chart.states:
        for step in [*legal_steps(chart, state), *illegal_steps(chart, state)]:
            if step.trigger == trigger and step.payload is not None:
                seen.setdefault(repr(step.payload), step.payload)
    return list(seen.values())


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_") if part) or "Chart"


def chart_state_machine(
    chart: Chart,
    system: Callable[[], SystemAdapter],
    *,
    start: str | None = None,
    triggers: Iterable[str] | None = None,
    compare: Literal["state", "canonical"] = "state",
    rejects: type[BaseException] | tuple[type[BaseException], ...] = Exception,
) -> type[RuleBasedStateMachine]:
    """A hypothesis ``RuleBasedStateMachine`` that drives ``system`` and ``chart`` together.

    Built for you, with rules that print a failure as a readable program
    (``state.send(trigger='finalize')``, ``state.send(trigger='pay')``, …). Each step sends the
    trigger to a fresh system (made by calling ``system()`` at the start of every example) and
    to the chart, and fails at once if they disagree: the system accepted what the chart
    forbids, refused what it allows, or is in another state afterwards. Use the returned
    class's ``TestCase`` for unittest/pytest collection, or call :func:`check_against_chart`.

    Args:
        chart: the chart your system should follow.
        system: makes a fresh :class:`SystemAdapter` (or :class:`Adapter`) for each example.
        start: the state a fresh system is in; the chart's first initial state by default.
        triggers: only send these (default: every trigger of the chart).
        compare: ``"state"`` compares configurations (a parallel state's leaves in any
            order); ``"canonical"`` compares your system's state with the chart
            configuration's canonical lifecycle state (``open``, ``paid``, …).
        rejects: exceptions from ``send`` that mean "refused"; others fail the test as errors.

    Raises:
        UnknownState: ``start`` is not a state of ``chart``.
        UnknownTrigger: a name in ``triggers`` is not a trigger of ``chart``.
    """
    first = _start(chart, start)
    names = chart.triggers if triggers is None else list(triggers)
    for name in names:
        if name not in chart.triggers:
            raise UnknownTrigger(chart.name, name, chart.triggers)
    cls_name = f"{_camel(chart.name)}Check"

    def __init__(self: Any) -> None:
        RuleBasedStateMachine.__init__(self)
        self.chart_state = first
        self.system = system()
        self.check_state("at the start")

    def check_state(self: Any, when: str) -> None:
        got: object = self.system.state()
        if compare == "canonical":
            expected: str = chart.canonical(self.chart_state)
        else:
            got, expected = _configuration(chart, got), self.chart_state
        if got != expected:
            raise AssertionError(
                f"{when}, your system is in {got!r}, but the chart says {expected!r}"
            )

    def step(self: Any, trigger: str, payload: Any) -> None:
        before = self.chart_state
        try:
            after, forbidden = chart.next_state(before, trigger, payload), None
        except TransitionNotAllowed as exc:
            after, forbidden = before, exc
        refusal: BaseException | None = None
        try:
            accepted = self.system.send(trigger, payload) is not False
        except rejects as exc:
            accepted, refusal = False, exc
        sent = trigger if payload is None else f"{trigger} {payload!r}"
        if accepted and forbidden is not None:
            raise AssertionError(
                f"your system accepted {sent!r} in {before!r}, but the chart forbids it: "
                f"{forbidden}"
            )
        if not accepted and forbidden is None:
            how = f"raised {refusal!r}" if refusal is not None else "returned False"
            raise AssertionError(
                f"your system refused {sent!r} in {before!r} ({how}), but the chart allows "
                f"it: {before!r} -> {after!r}"
            )
        self.chart_state = after
        self.check_state(f"after {sent!r} from {before!r}")

    body: dict[str, Any] = {"__init__": __init__, "check_state": check_state, "step": step}
    allowed: dict[str, set[str]] = {s: set(chart.allowed_triggers(s)) for s in chart.states}
    for i, trigger in enumerate(names):
        payloads = _payloads(chart, trigger)
        # Two rules per trigger: one always eligible, one only where the trigger is legal, so
        # legal steps are about twice as likely as illegal ones and random runs reach deep
        # states (a paid invoice) before they stick in a final one. All rules share one name,
        # ``send``: hypothesis' swarm testing switches rules on and off *by name* per example,
        # and a run with ``pay`` switched off could never find a bug that needs a paid invoice.
        body[f"_rule_{i:04d}"] = _make_rule(trigger, cls_name, payloads)
        body[f"_rule_{i:04d}_legal"] = precondition(_legal_in(allowed, trigger))(
            _make_rule(trigger, cls_name, payloads)
        )
    machine = type(cls_name, (RuleBasedStateMachine,), body)
    machine.__doc__ = f"{chart.name}: the chart and your system, step by step."
    return machine


def _configuration(chart: Chart, state: object) -> object:
    """A system's state as a configuration of ``chart`` where it names one (its leaves in
    any order, as text or a collection), else as it is (to be reported as it is)."""
    if not isinstance(state, str) and isinstance(state, Collection):
        state = SEPARATOR.join(str(leaf) for leaf in state)
    if isinstance(state, str):
        return chart.tree.configuration(state) or state
    return state


def _legal_in(allowed: dict[str, set[str]], trigger: str) -> Callable[[Any], bool]:
    def legal_here(machine: Any) -> bool:
        return trigger in allowed[machine.chart_state]

    return legal_here


def _make_rule(trigger: str, owner: str, payloads: Sequence[Any]) -> Any:
    """A rule that prints as ``state.send(trigger='pay')`` (``with_payload=`` when guarded)."""

    # Hypothesis prints arguments in name order: ``with_payload`` sorts after ``trigger``.
    def send(self: Any, trigger: str, with_payload: Any = None) -> None:
        self.step(trigger, with_payload)

    send.__qualname__ = f"{owner}.send"
    send.__doc__ = f"Send {trigger!r} to the system and to the chart."
    if payloads:
        return rule(trigger=st.just(trigger), with_payload=st.sampled_from(payloads))(send)
    return rule(trigger=st.just(trigger))(send)


def check_against_chart(
    chart: Chart,
    system: Callable[[], SystemAdapter],
    *,
    start: str | None = None,
    triggers: Iterable[str] | None = None,
    compare: Literal["state", "canonical"] = "state",
    rejects: type[BaseException] | tuple[type[BaseException], ...] = Exception,
    settings: Settings | None = None,
) -> None:
    """Run a model-based test of ``system`` against ``chart``; fail at the first divergence.

    Hypothesis sends random trigger sequences (legal and illegal) to a fresh system for each
    example and to the chart; when they disagree it shrinks the sequence and reports the
    shortest one it can find, as a program of ``state.<trigger>()`` calls, with a message
    naming the step, the states and what the chart allows. See :func:`chart_state_machine`
    for the arguments; ``settings`` are hypothesis settings (default: the active profile).

    Raises:
        AssertionError: the system diverged from the chart (after shrinking).
    """
    machine = chart_state_machine(
        chart, system, start=start, triggers=triggers, compare=compare, rejects=rejects
    )
    run_state_machine_as_test(machine, settings=settings)
