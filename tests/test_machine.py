"""The validator API. (Its agreement with a real ``transitions`` machine: ``test_agreement``.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from _dict_chart import guard_holds
from hypothesis import given
from hypothesis import strategies as st

import engine
from engine.chart import CandidateStep, Chart
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


# ------------------------------------------------------- compound states as a validator's state


def test_a_compound_state_answers_where_its_leaves_agree() -> None:
    """ChargeOver writes ``pay`` and ``void`` on ``open``: asking from ``open`` works."""
    chart = engine.load_chart("chargeover")
    assert chart.next_state("open", "pay") == "closed.paid"
    assert chart.next_state("open", "void") == "closed.void"
    assert chart.may("open", "pay")
    assert chart.allowed_triggers("open") == ["pay", "void"]
    assert chart.check(["pay"], start="open") == "closed.paid"
    assert chart.is_final("closed")
    assert not chart.is_final("open")
    assert chart.canonical("open") == "open"
    assert chart.steps("open", "pay") == chart.steps("open.overdue", "pay")
    assert ("open", "pay") in chart._fast  # one dict lookup, like a leaf
    assert chart.states == ["open.unpaid", "open.overdue", "closed.paid", "closed.void"]


def test_a_compound_state_never_guesses_a_leaf() -> None:
    """Where the leaves disagree the error says what each would do, so the caller names one."""
    chart = engine.load_chart("chargeover")
    with pytest.raises(engine.TransitionNotAllowed) as info:
        chart.next_state("open", "become_overdue")
    err = info.value
    assert (err.state, err.trigger, err.allowed) == ("open", "become_overdue", ["pay", "void"])
    assert "'open' is a compound state" in str(err)
    assert "open.unpaid → open.overdue" in str(err)
    assert "open.overdue: not allowed" in str(err)
    assert not chart.may("open", "become_overdue")
    with pytest.raises(engine.TransitionNotAllowed, match=r"'closed'.*a final state"):
        chart.next_state("closed", "pay")
    with pytest.raises(engine.UnknownState, match=r"'closed' is a compound state.*closed\.paid"):
        chart.canonical("closed")
    with pytest.raises(engine.UnknownState, match=r"'opn'.*open\.unpaid"):
        chart.next_state("opn", "pay")


def test_compound_answers_are_exactly_what_every_leaf_inside_says(chart_file: Path) -> None:
    chart = engine.load_chart(chart_file)
    for compound in chart.tree.compound:
        leaves = chart.tree.leaves_under(compound)
        for trigger in chart.triggers:
            by_leaf = {
                leaf: chart.next_state(leaf, trigger) if chart.may(leaf, trigger) else None
                for leaf in leaves
            }
            if chart.may(compound, trigger):
                got = chart.next_state(compound, trigger)
                stays = got == compound
                assert all(by_leaf[x] == (x if stays else got) for x in leaves), trigger
                assert trigger in chart.allowed_triggers(compound)
            else:
                assert trigger not in chart.allowed_triggers(compound)
                answers = {None if a == x else a for x, a in by_leaf.items()}
                assert None in answers or len(answers) > 1, (compound, trigger, by_leaf)


def test_guarded_and_internal_steps_on_a_compound_state(tmp_path: Path) -> None:
    path = tmp_path / "nested.yaml"
    path.write_text(
        """\
provider: nested
initial: open
states:
  - name: open
    canonical: open
    initial: unpaid
    states: [{name: unpaid}, {name: late}]
  - {name: paid, canonical: paid, final: true}
transitions:
  - {trigger: pay, source: open, dest: paid, guard: '$.due == 0'}
  - {trigger: remind, source: open, internal: true}
  - {trigger: lapse, source: open.unpaid, dest: open.late}
delivery: {event_type: $.type, event_id: $.id, invoice_id: $.invoice}
events: {created: {create: true}, pay: pay, remind: remind, lapse: lapse}
""",
        encoding="utf-8",
    )
    chart = engine.load_chart(path)
    assert chart.next_state("open", "pay", {"due": 0}) == "paid"
    with pytest.raises(engine.TransitionNotAllowed, match=r"is false"):
        chart.next_state("open", "pay", {"due": 5})
    assert chart.next_state("open", "remind") == "open"  # internal: stays where it is
    assert chart.next_state("open.late", "remind") == "open.late"


def test_steps_are_public_named_tuples() -> None:
    chart = engine.load_chart("stripe")
    (step,) = chart.steps("draft", "finalize")
    assert isinstance(step, CandidateStep)
    assert (step.dest, step.conditions) == ("open", ())
    dest, conditions = step  # still a tuple: callers unpack it
    assert (dest, conditions) == ("open", ())
    assert chart.steps("paid", "void") == ()
    (internal,) = chart.steps("open", "notify")
    assert internal.dest is None
