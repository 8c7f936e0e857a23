"""The validator API and its agreement with a real ``transitions`` machine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import engine
from engine.chart import Chart


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
