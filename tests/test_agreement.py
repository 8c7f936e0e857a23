"""The compiled chart answers exactly as a real model driven through a real machine.

``engine.chart`` asks its ``transitions`` machine every question once, when a chart loads, and
answers from what it learned (:mod:`engine.chart._machine`). Here a machine built independently
from the same chart file (:mod:`_reference`: its own nested-dict states, its own ``*``, guards
read by ``_dict_chart``'s own evaluator) is fired with the real payload, and the two must agree:

- on charts drawn by hypothesis (:mod:`_generated_charts`: flat, nested and parallel states,
  guards that hold and guards that don't, ``*`` sources, internal transitions), for every
  configuration and trigger with drawn payloads;
- on every bundled chart, for every configuration, trigger and a payload that makes each of the
  trigger's guards hold and fail.

``trigger()`` returning ``True`` means the engine must give the same active leaves; ``False``,
or ``MachineError: Can't trigger event``, means it must raise ``TransitionNotAllowed``. Anything
else ``transitions`` raises is a crash, and fails the test: it is never read as "illegal". The
engine's other answers must agree too: ``may``, ``allowed_triggers`` (every trigger with a
transition here, whatever the guards say), ``steps`` (the machine's move among them), the
configuration named with its leaves in another order, and a compound or region name, which
answers only as every configuration inside does. A chart the loader accepts must compile.

Charts are drawn with up to ``MAX_GUARDS`` guards on one trigger, the most a chart may have
one question meet (every combination is asked of the machine when the chart loads).
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import pytest
from _generated_charts import chart_data, payloads
from _reference import Illegal, Reference
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import ChartError, TransitionNotAllowed, load_chart
from engine.chart import Chart, ChartSpec, StateTree, load_yaml
from engine.chart._machine import MAX_GUARDS, guard_of
from engine.chart.load import parse_chart
from engine.testing._paths import guard_values, put_path

# 200 charts a run (more under HYPOTHESIS_PROFILE=thorough): each is compiled, every question
# asked of both machines, in about 0.15 s.
GENERATED = settings(
    max_examples=max(200, settings().max_examples),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


_LEFT = re.compile(
    r"failed on '(?P<trigger>[^']+)' from '(?P<config>[^']+)': it left the model in .+, "
    r"which is no configuration of the chart"
)


def _compile(data: dict[str, Any]) -> tuple[Chart, Reference]:
    """The chart and its reference machine. A chart the loader accepts must compile: where it
    doesn't because its machine leaves a model in no configuration, the failure says whether
    the reference machine does the same (a gap in the loader's checks) or not (a bug)."""
    spec = parse_chart(data, "<generated>", enforce_lint=False)
    ref = Reference(spec)
    try:
        return Chart(spec, enforce_lint=False), ref
    except ChartError as exc:
        found = _LEFT.search(str(exc))
        if found is None:
            raise
        configs = StateTree(spec.states, require_canonical=False).configurations
        trigger, config = found["trigger"], found["config"]
        left = any(after not in (None, *configs) for _, after in ref.outcomes(config, trigger))
        why = "so does the reference machine" if left else "the reference machine doesn't"
        raise AssertionError(
            f"the loader accepted a chart whose machine leaves a model in no configuration "
            f"({trigger!r} from {config!r}); {why}"
        ) from exc


def _engine(chart: Chart, state: str, trigger: str, payload: Any) -> str | None:
    try:
        return chart.next_state(state, trigger, payload)
    except TransitionNotAllowed:
        return None


def agree(chart: Chart, ref: Reference, config: str, trigger: str, payload: Any) -> None:
    """One question, asked of the compiled chart and of the reference machine."""
    where = f"{trigger!r} from {config!r} with {payload!r}"
    try:
        expected = ref.fire(config, trigger, payload)
        legal = True
    except Illegal:
        expected, legal = None, False
    got = _engine(chart, config, trigger, payload)
    assert got == expected, f"{where}: engine {got!r}, machine {expected!r}"
    if got is not None:
        assert got == chart.configuration(got), f"{where}: {got!r} is not in chart order"
    assert chart.may(config, trigger, payload) is (expected is not None), where
    assert (trigger in chart.allowed_triggers(config)) is legal, where
    leaves = config.split("+")
    if len(leaves) > 1:  # the leaves in another order name the same configuration
        shuffled = "+".join(random.Random(config).sample(leaves, len(leaves)))
        assert _engine(chart, shuffled, trigger, payload) == expected, f"{where} ({shuffled})"
    steps = chart.steps(config, trigger)
    if expected is not None:
        dest = None if expected == config else expected
        assert dest in [s.dest for s in steps], f"{where}: {expected!r} not in {steps}"
    assert bool(steps) is legal, where


def agree_within(chart: Chart, ref: Reference, name: str, trigger: str, payload: Any) -> None:
    """A state name that is no configuration (``open``, ``fin.pay``): where the engine answers
    from it, every configuration inside does the same in the machine."""
    got = _engine(chart, name, trigger, payload)
    if got is None:
        return
    for config in chart.tree.configurations_within(name):
        expected = ref.next_state(config, trigger, payload)
        stays = got == name
        assert expected == (config if stays else got), (name, config, trigger, payload, got)


def agree_on_the_graph(chart: Chart, ref: Reference) -> None:
    """Where each trigger can lead from each configuration, for any outcome of its guards, as
    the machine says: the chart's destinations, routes and reachable configurations."""
    dests: dict[str, set[str]] = {t: set() for t in chart.triggers}
    moves: dict[str, set[str]] = {}
    for config in chart.states:
        moves[config] = set()
        for trigger in chart.triggers:
            try:
                found = {after for _, after in ref.outcomes(config, trigger) if after is not None}
            except Illegal:
                found = set()
            dests[trigger] |= found
            moves[config] |= found
            for there in found:
                assert trigger in chart.transitions_between(config, there), (config, there)
    assert {t: set(chart.destinations(t)) for t in chart.triggers} == dests
    for config in chart.states:
        seen: set[str] = {config}
        todo: list[str] = [config]
        while todo:
            for there in moves[todo.pop()] - seen:
                seen.add(there)
                todo.append(there)
        assert set(chart.reachable(config)) == seen, config


# ------------------------------------------------------------------------ generated charts


def _payloads(data: dict[str, Any]) -> st.SearchStrategy[list[Any]]:
    return st.lists(payloads(data), min_size=1, max_size=3)


def _agree_everywhere(chart: Chart, ref: Reference, drawn: list[Any]) -> None:
    """Every configuration x trigger, with the drawn payloads and some that make the
    trigger's guards hold and fail for certain."""
    for trigger in chart.triggers:
        every = [*drawn, *_guard_payloads(chart, trigger, alone=2)[1:]]
        for config in chart.states:
            for payload in every:
                agree(chart, ref, config, trigger, payload)


@GENERATED
@given(data=chart_data(), more=st.data(), seed=st.randoms())
def test_generated_charts_agree_with_the_machine(
    data: dict[str, Any], more: st.DataObject, seed: random.Random
) -> None:
    chart, ref = _compile(data)
    drawn = more.draw(_payloads(data), label="payloads")
    _agree_everywhere(chart, ref, drawn)
    if len(chart.states) <= 16:
        agree_on_the_graph(chart, ref)
    scopes = [n for n in chart.tree.names if chart.tree.configuration(n) is None]
    for name in seed.sample(scopes, min(len(scopes), 4)):
        for trigger in chart.triggers:
            agree_within(chart, ref, name, trigger, drawn[0])


@settings(GENERATED, max_examples=max(100, settings().max_examples))
@given(data=chart_data(parallel=False), more=st.data())
def test_generated_charts_without_parallel_states_agree(
    data: dict[str, Any], more: st.DataObject
) -> None:
    chart, ref = _compile(data)
    _agree_everywhere(chart, ref, more.draw(_payloads(data), label="payloads"))
    agree_on_the_graph(chart, ref)


# -------------------------------------------------------------------------- bundled charts


def _guard_payloads(chart: Chart, trigger: str, *, alone: int = 1_000) -> list[Any]:
    """``None``; for each of the first ``alone`` guards of ``trigger``, a payload where it
    holds and one where it doesn't (the others missing, so false); and one where every guard
    holds, and one where every guard fails."""
    guards = list(
        dict.fromkeys(
            t.guard for t in chart.spec.transitions if t.trigger == trigger and t.guard is not None
        )
    )
    out: list[Any] = [None]
    for holds in (True, False):
        every: dict[str, Any] = {}
        for i, g in enumerate(guards):
            for value in guard_values(g, holds=holds)[:1]:
                put_path(every, g.steps, value)
                if i < alone:
                    one: dict[str, Any] = {}
                    put_path(one, g.steps, value)
                    out.append(one)
        out.append(every)
    return out


def test_bundled_charts_agree_with_the_machine(chart_file: Path) -> None:
    chart = load_chart(chart_file)
    ref = Reference(chart.spec)
    for trigger in chart.triggers:
        for payload in _guard_payloads(chart, trigger):
            for config in chart.states:
                agree(chart, ref, config, trigger, payload)
            for name in chart.tree.names:
                if chart.tree.configuration(name) is None:
                    agree_within(chart, ref, name, trigger, payload)


PARALLEL = (Path(__file__).parent / "charts_parallel" / "par.yaml").read_text(encoding="utf-8")


def test_the_reference_sees_a_parallel_chart_as_the_engine_does(tmp_path: Path) -> None:
    path = tmp_path / "par.yaml"
    path.write_text(PARALLEL, encoding="utf-8")
    chart = load_chart(path)
    ref = Reference(chart.spec)
    start = "fin.pay.pending+fin.od.no"
    assert ref.fire("draft", "finalize", None) == start == chart.next_state("draft", "finalize")
    assert ref.fire(start, "overdue", {"late": True}) == "fin.pay.pending+fin.od.yes"
    assert ref.fire(start, "overdue", {"late": 1}) is None  # the guard: refused
    assert ref.fire(start, "note", None) == start  # internal
    with pytest.raises(Illegal):
        ref.fire("void", "pay", None)
    for trigger in chart.triggers:
        for payload in _guard_payloads(chart, trigger):
            for config in chart.states:
                agree(chart, ref, config, trigger, payload)


# ------------------------------------------------------------------ what the machine can't do


def _chart(tmp_path: Path, states: str, transitions: str, initial: str = "a") -> Path:
    path = tmp_path / "quirk.yaml"
    path.write_text(
        f"""\
provider: quirk
initial: {initial}
states: {states}
transitions: {transitions}
delivery: {{event_type: $.type, event_id: $.id, invoice_id: $.inv}}
events: {{created: {{create: true}}}}
""",
        encoding="utf-8",
    )
    return path


_REGIONS = """
  - {name: a, canonical: draft}
  - name: p
    parallel: true
    canonical: open
    states:
      - {name: r1, states: [{name: x}, {name: x2}]}
      - {name: r2, states: [{name: y}, {name: z}]}
"""


@pytest.mark.parametrize(
    ("transitions", "config", "trigger"),
    [
        # Into a region from outside its parallel state: the machine enters that region alone.
        ("[{trigger: go, source: a, dest: p.r2.z}]", "a", "go"),
        # Leaving from one region while the other moves too: the machine fires the regions one
        # after the other, and the second one puts the model back into its region alone.
        (
            "[{trigger: t, source: p.r1, dest: a}, {trigger: t, source: p.r2, dest: p.r2}]",
            "p.r1.x+p.r2.y",
            "t",
        ),
    ],
    ids=["into-a-region", "leave-and-move"],
)
def test_what_the_machine_gets_wrong_the_loader_refuses(
    tmp_path: Path, transitions: str, config: str, trigger: str
) -> None:
    """Two things ``transitions`` does that leave a model in no configuration: the loader
    refuses such charts, saying why, before the machine is ever asked."""
    path = _chart(tmp_path, _REGIONS, transitions)
    with pytest.raises(ChartError, match="transitions\\[") as info:
        load_chart(path, enforce_lint=False)
    assert "no configuration" not in str(info.value)  # the meaning check, not the machine
    ref = Reference(ChartSpec.model_validate(load_yaml(path.read_text(encoding="utf-8"))))
    after = ref.fire(config, trigger, None)
    assert after is not None
    assert after not in StateTree(ref.spec.states, require_canonical=False).configurations


_NESTED = (
    "[{name: s0, canonical: draft, states: [{name: a}, {name: b}]}, {name: x, canonical: paid}]"
)


def _many_guards_chart(tmp_path: Path, count: int) -> Chart:
    guarded = ", ".join(
        f"{{trigger: t, source: s0, dest: x, guard: '$.g == {i}'}}" for i in range(count)
    )
    transitions = f"[{{trigger: t, source: s0.b, dest: s0.a}}, {guarded}]"
    path = _chart(tmp_path, _NESTED, transitions, initial="s0")
    return load_chart(path, enforce_lint=False)


def test_a_question_that_could_meet_too_many_guards_is_refused(tmp_path: Path) -> None:
    """Every combination of a question's guards is asked of the machine when the chart loads:
    more than ``MAX_GUARDS`` of them are refused, saying which question meets them."""
    with pytest.raises(ChartError, match=f"'t' from 's0.a' could meet {MAX_GUARDS + 1} guards"):
        _many_guards_chart(tmp_path, MAX_GUARDS + 1)


def test_a_compound_state_with_many_guards_answers_only_where_all_agree(tmp_path: Path) -> None:
    """``s0.b`` has a way of its own besides the guarded ones it shares with ``s0.a``: ``s0``
    can't answer for both, and the graph knows every guarded edge."""
    chart = _many_guards_chart(tmp_path, MAX_GUARDS)
    assert chart.next_state("s0.b", "t", {"g": 0}) == "s0.a"
    assert chart.next_state("s0.a", "t", {"g": 0}) == "x"
    with pytest.raises(TransitionNotAllowed):
        chart.next_state("s0.a", "t", {"g": MAX_GUARDS})
    with pytest.raises(TransitionNotAllowed):
        chart.next_state("s0", "t", {"g": 0})
    assert chart.reachable("s0.a") == {"s0.a", "x"}
    assert chart.destinations("t") == {"s0.a", "x"}
    assert {s.dest for s in chart.steps("s0.a", "t")} == {"x"}  # one step per combination


def test_steps_say_every_way_a_trigger_is_taken(tmp_path: Path) -> None:
    """``steps`` promises that the first step whose guards all hold is the one taken. (It
    used to keep one set of guards per destination: ``b`` was listed with ``$.g == 0`` only,
    and a payload with ``g: 1`` matched no step, though the machine took it to ``b``.)"""
    path = _chart(
        tmp_path,
        "[{name: a, canonical: draft}, {name: b, canonical: paid}]",
        "[{trigger: t, source: a, dest: b, guard: '$.g == 0'},"
        " {trigger: t, source: a, dest: b, guard: '$.g == 1'}]",
    )
    chart = load_chart(path, enforce_lint=False)
    assert chart.next_state("a", "t", {"g": 1}) == "b"
    steps = chart.steps("a", "t")
    taken = [s.dest for s in steps if all(guard_of(c)({"g": 1}) for c in s.conditions)]
    assert taken[:1] == ["b"]
