"""The validator API and its agreement with a real ``transitions`` machine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from _dict_chart import guard_holds
from hypothesis import given
from hypothesis import strategies as st

import engine
from engine.chart import Chart
from engine.chart.expr import Guard


def test_stripe_validator_basics() -> None:
    chart = engine.load_chart("stripe")
    assert chart.next_state("open", "pay") == "paid"
    assert chart.next_state("uncollectible", "pay") == "paid"
    assert chart.next_state("uncollectible", "void") == "void"
    assert chart.check(["finalize", "pay"], start="draft") == "paid"
    assert chart.canonical("deleted") == "void"
    assert set(chart.allowed_triggers("uncollectible")) == {"pay", "void", "notify"}


def test_illegal_step_names_state_trigger_and_allowed() -> None:
    chart = engine.load_chart("stripe")
    with pytest.raises(engine.TransitionNotAllowed) as info:
        chart.next_state("paid", "void")
    err = info.value
    assert (err.state, err.trigger, err.allowed) == ("paid", "void", [])
    assert "'void'" in str(err)
    assert "'paid'" in str(err)
    with pytest.raises(engine.TransitionNotAllowed) as info:
        chart.check(["finalize", "finalize"])
    assert info.value.allowed == chart.allowed_triggers("open")
    assert "pay" in str(info.value)


def test_unknown_names_list_the_choices() -> None:
    chart = engine.load_chart("stripe")
    with pytest.raises(engine.UnknownState, match=r"payed.*draft, open"):
        chart.next_state("payed", "pay")
    with pytest.raises(engine.UnknownTrigger, match=r"paye.*finalize"):
        chart.next_state("open", "paye")
    with pytest.raises(engine.UnknownProvider, match=r"strpe.*stripe"):
        engine.load_chart("strpe")


def test_every_chart_loads_and_is_named_after_its_file(chart_file: Path) -> None:
    chart = engine.load_chart(chart_file)
    assert chart.name == chart_file.stem
    assert chart.name in engine.available_charts()
    assert chart.machine.auto_transitions is False
    for state in chart.states:
        assert chart.canonical(state)


def _real_machine_step(chart: Chart, state: str, trigger: str, payload: Any) -> str | None:
    """Ask the chart's own transitions machine, through a throwaway model."""

    class Model:
        state: str

    model = Model()
    machine = chart.machine
    machine.add_model(model, initial=state)
    try:
        moved = model.trigger(trigger, payload)  # type: ignore[attr-defined]
        return str(model.state) if moved else None
    except Exception:  # transitions' MachineError: not legal from here
        return None
    finally:
        machine.remove_model(model)


def test_compiled_table_agrees_with_the_machine(chart_file: Path) -> None:
    chart = engine.load_chart(chart_file)
    for state in chart.states:
        for trigger in chart.triggers:
            expected = _real_machine_step(chart, state, trigger, None)
            got = chart.next_state(state, trigger) if chart.may(state, trigger) else None
            assert got == expected, (state, trigger)


# ------------------------------------------------------------------ guards compare as JSON


def _flag_chart(tmp_path: Path, guard: str) -> Chart:
    """draft -> open, then ``go`` to ``paid`` when ``guard`` holds, else stay (internal)."""
    path = tmp_path / "flags.yaml"
    path.write_text(
        f"""\
provider: flags
initial: draft
states:
  - {{name: draft, canonical: draft}}
  - {{name: paid, canonical: paid, final: true}}
transitions:
  - {{trigger: go, source: draft, dest: paid, guard: '{guard}'}}
  - {{trigger: go, source: draft, internal: true}}
delivery: {{event_type: $.type, event_id: $.id, invoice_id: $.invoice}}
events: {{created: {{create: true}}, go: go}}
""",
        encoding="utf-8",
    )
    return engine.load_chart(path)


@pytest.mark.parametrize(
    ("guard", "flag", "holds"),
    [
        # The issue: Python says 1 == True, JSON does not.
        ("$.flag != true", 1, True),
        ("$.flag != true", True, False),
        ("$.flag == true", 1, False),
        ("$.flag == false", 0, False),
        ("$.flag != false", 0, True),
        ("$.flag == 1", True, False),
        ("$.flag == 0", False, False),
        ("$.flag != 0", False, True),
        # numbers compare numerically
        ("$.flag == 1", 1.0, True),
        ("$.flag == 1.0", 1, True),
        ("$.flag != 1", 1.0, False),
        ("$.flag >= 1", 1.0, True),
        # null equals only null
        ("$.flag == null", None, True),
        ("$.flag == null", 0, False),
        ("$.flag == null", False, False),
        ("$.flag == null", "", False),
        ("$.flag != null", None, False),
        ("$.flag != null", 0, True),
        # strings equal only strings
        ('$.flag == "1"', 1, False),
        ('$.flag != "1"', 1, True),
        ('$.flag == "true"', True, False),
        # ordering: two numbers (not booleans) or two strings, else false
        ("$.flag > 0", True, False),
        ("$.flag < 1", False, False),
        ("$.flag >= 0", None, False),
        ("$.flag < 5", "3", False),
        ('$.flag < "b"', 1, False),
        ('$.flag < "b"', "a", True),
        ('$.flag >= "b"', "a", False),
        ("$.flag > 0", 0.5, True),
        # arrays and objects equal no scalar
        ("$.flag == 1", [1], False),
        ("$.flag != 1", [1], True),
        ("$.flag > 0", {"a": 1}, False),
    ],
)
def test_guards_compare_as_json_does(tmp_path: Path, guard: str, flag: Any, holds: bool) -> None:
    chart = _flag_chart(tmp_path, guard)
    assert chart.next_state("draft", "go", {"flag": flag}) == ("paid" if holds else "draft")
    assert chart.next_state("draft", "go", {}) == "draft"  # missing: false, `!=` included
    assert guard_holds(guard, {"flag": flag}) is holds  # the independent reading agrees


_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-3, 3)
    | st.sampled_from([0.0, 1.0, -1.0, 0.5, 2.5])
    | st.sampled_from(["", "a", "b", "1", "true", "null"])
)


@given(
    literal=_json_scalars,
    op=st.sampled_from(["==", "!=", "<", "<=", ">", ">="]),
    value=_json_scalars | st.lists(_json_scalars, max_size=2),
)
def test_guards_agree_with_the_independent_reading(literal: Any, op: str, value: Any) -> None:
    text = f"$.v {op} {json.dumps(literal)}"
    try:
        guard = Guard.parse(text)
    except ValueError:
        assert op not in ("==", "!=")
        assert literal is None or isinstance(literal, bool)
        return
    assert guard({"v": value}) is guard_holds(text, {"v": value})
