"""engine.lint: each rule caught on a small chart; exceptions honoured; bundled charts clean."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

import engine
from engine.chart import Chart
from engine.chart.lint import RULES, Finding, lint
from engine.chart.load import parse_chart
from engine.chart.spec import ChartSpec


def _data(transitions: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """A small flat chart: draft -> open -> paid|void, unless the test says otherwise."""
    data: dict[str, Any] = {
        "provider": "tiny",
        "initial": "draft",
        "states": [
            {"name": "draft", "canonical": "draft"},
            {"name": "open", "canonical": "open"},
            {"name": "paid", "canonical": "paid", "final": True},
            {"name": "void", "canonical": "void", "final": True},
        ],
        "transitions": transitions,
        "delivery": {"event_type": "$.type", "event_id": "$.id", "invoice_id": "$.invoice"},
        "events": {"created": {"create": True}},
    }
    data.update(extra)
    return data


GOOD: list[dict[str, Any]] = [
    {"trigger": "finalize", "source": "draft", "dest": "open"},
    {"trigger": "pay", "source": "open", "dest": "paid"},
    {"trigger": "void", "source": ["draft", "open"], "dest": "void"},
]


def _lint(data: dict[str, Any]) -> list[Finding]:
    return lint(Chart(parse_chart(data)))


def _rules(findings: list[Finding]) -> list[tuple[str, str]]:
    return [(f.rule, f.target) for f in findings]


def test_a_good_chart_is_clean() -> None:
    assert _lint(_data(GOOD)) == []


def test_unreachable_state() -> None:
    findings = _lint(_data([t for t in GOOD if t["trigger"] != "pay"]))
    assert ("unreachable", "paid") in _rules(findings)
    (f,) = [f for f in findings if f.rule == "unreachable"]
    assert f.severity == "error"
    assert "'draft'" in f.message


def test_dead_end_is_reported_once() -> None:
    # open has only an internal transition: legal there, but it never leaves.
    transitions = [
        GOOD[0],
        {"trigger": "void", "source": "draft", "dest": "void"},
        {"trigger": "remind", "source": "open", "internal": True},
        {"trigger": "pay", "source": "draft", "dest": "paid"},
    ]
    findings = _lint(_data(transitions))
    assert _rules(findings) == [("dead-end", "open")]
    assert "remind" in findings[0].message
    assert "final: true" in findings[0].message


def test_final_state_with_a_way_out() -> None:
    findings = _lint(_data([*GOOD, {"trigger": "refund", "source": "paid", "dest": "open"}]))
    assert _rules(findings) == [("final-exit", "paid")]
    assert "refund" in findings[0].message
    assert "'open'" in findings[0].message


def test_final_state_left_through_its_parent_is_caught() -> None:
    data = _data(
        [
            {"trigger": "finalize", "source": "draft", "dest": "open"},
            {"trigger": "settle", "source": "open", "dest": "closed.paid"},
            {"trigger": "reopen", "source": "closed", "dest": "open"},
        ],
        states=[
            {"name": "draft", "canonical": "draft"},
            {"name": "open", "canonical": "open"},
            {"name": "closed", "canonical": "paid", "states": [{"name": "paid", "final": True}]},
        ],
    )
    assert _rules(_lint(data)) == [("final-exit", "closed.paid")]


def test_no_path_to_a_final_state() -> None:
    # open <-> late loop forever; neither is a dead end, neither can finish.
    data = _data(
        [
            {"trigger": "finalize", "source": "draft", "dest": "open"},
            {"trigger": "void", "source": "draft", "dest": "void"},
            {"trigger": "pay", "source": "draft", "dest": "paid"},
            {"trigger": "lapse", "source": "open", "dest": "late"},
            {"trigger": "cure", "source": "late", "dest": "open"},
        ],
        states=[*_data([])["states"], {"name": "late", "canonical": "open"}],
    )
    findings = _lint(data)
    assert _rules(findings) == [("no-final-path", "open"), ("no-final-path", "late")]
    assert all(f.severity == "warning" for f in findings)


def test_a_chart_without_final_states_gets_one_finding() -> None:
    data = _data(
        [
            {"trigger": "finalize", "source": "draft", "dest": "open"},
            {"trigger": "reopen", "source": "open", "dest": "draft"},
        ],
        states=[{"name": "draft", "canonical": "draft"}, {"name": "open", "canonical": "open"}],
    )
    assert _rules(_lint(data)) == [("no-final-path", "tiny")]


def test_unguarded_nondeterminism() -> None:
    findings = _lint(_data([*GOOD, {"trigger": "pay", "source": "open", "dest": "void"}]))
    assert _rules(findings) == [("nondeterminism", "pay from open")]
    assert "'paid'" in findings[0].message
    assert "'void'" in findings[0].message


def test_star_source_competes_with_a_named_one() -> None:
    findings = _lint(_data([*GOOD, {"trigger": "pay", "source": "*", "dest": "void"}]))
    assert ("nondeterminism", "pay from open") in _rules(findings)


def test_guards_that_tell_targets_apart_are_fine() -> None:
    transitions = [
        GOOD[0],
        GOOD[2],
        {"trigger": "pay", "source": "open", "dest": "paid", "guard": "$.due == 0"},
        {"trigger": "pay", "source": "open", "internal": True},
    ]
    assert _lint(_data(transitions)) == []


def test_an_unguarded_transition_before_a_guarded_one_shadows_it() -> None:
    transitions = [
        GOOD[0],
        GOOD[2],
        {"trigger": "pay", "source": "open", "dest": "paid"},
        {"trigger": "pay", "source": "open", "dest": "void", "guard": "$.due > 0"},
    ]
    assert _rules(_lint(_data(transitions))) == [("nondeterminism", "pay from open")]


def test_identical_guards_are_nondeterministic() -> None:
    transitions = [
        GOOD[0],
        {"trigger": "pay", "source": "open", "dest": "paid", "guard": "$.due == 0"},
        {"trigger": "pay", "source": "open", "dest": "void", "guard": "$.due == 0"},
    ]
    findings = _lint(_data(transitions))
    assert _rules(findings) == [("nondeterminism", "pay from open")]
    assert "same guard" in findings[0].message


def test_a_child_overriding_its_parent_is_not_nondeterminism() -> None:
    data = _data(
        [
            {"trigger": "finalize", "source": "draft", "dest": "open"},
            {"trigger": "pay", "source": "open", "dest": "paid"},
            {"trigger": "pay", "source": "open.disputed", "dest": "void"},
            {"trigger": "dispute", "source": "open.due", "dest": "open.disputed"},
        ],
        states=[
            {"name": "draft", "canonical": "draft"},
            {
                "name": "open",
                "canonical": "open",
                "states": [{"name": "due"}, {"name": "disputed"}],
            },
            {"name": "paid", "canonical": "paid", "final": True},
            {"name": "void", "canonical": "void", "final": True},
        ],
    )
    assert _lint(data) == []


def test_unknown_trigger_and_missing_canonical_in_a_chart_built_in_code() -> None:
    data = _data(GOOD, events={"created": {"create": True}, "paid": "payy"})
    data["states"] = [*data["states"][:3], {"name": "void", "final": True}]
    spec = ChartSpec.model_validate(data)  # skips the loader's meaning checks
    findings = lint(spec)
    assert _rules(findings) == [("missing-canonical", "void"), ("unknown-trigger", "paid")]
    assert "'payy'" in findings[1].message
    assert "finalize, pay, void" in findings[1].message
    with pytest.raises(engine.ChartError, match="no canonical"):
        parse_chart(data)  # the loader refuses the same chart


def test_unknown_trigger_on_a_loaded_chart_object() -> None:
    spec = ChartSpec.model_validate(_data(GOOD, events={"paid": "payy"}))
    assert _rules(lint(Chart(spec))) == [("unknown-trigger", "paid")]


def test_noncanonical_name_is_a_warning() -> None:
    data = _data(GOOD)
    data["states"][3] = {"name": "void", "canonical": "cancelled", "final": True}
    findings = _lint(data)
    assert _rules(findings) == [("noncanonical", "void")]
    assert findings[0].severity == "warning"
    assert "'cancelled'" in findings[0].message
    assert "refunded" in findings[0].message


def test_a_spec_too_broken_to_build_is_a_chart_error() -> None:
    spec = ChartSpec.model_validate(_data([{"trigger": "pay", "source": "open", "dest": "payed"}]))
    with pytest.raises(engine.ChartError, match="payed"):
        lint(spec)


def test_exceptions_suppress_exactly_their_finding() -> None:
    transitions = [t for t in GOOD if t["trigger"] != "pay"]
    why = {"why": "Kept for old invoices."}
    excepted = _data(
        transitions, lint_exceptions=[{"rule": "unreachable", "target": "paid", **why}]
    )
    assert _lint(excepted) == []
    other_target = _data(
        transitions, lint_exceptions=[{"rule": "unreachable", "target": "void", **why}]
    )
    assert _rules(_lint(other_target)) == [
        ("unreachable", "paid"),
        ("unused-exception", "void"),
    ]


def test_unused_exception_with_an_unknown_rule_lists_the_rules() -> None:
    data = _data(GOOD, lint_exceptions=[{"rule": "unreachble", "target": "paid", "why": "x"}])
    (finding,) = _lint(data)
    assert (finding.rule, finding.severity) == ("unused-exception", "warning")
    assert "unreachble" in finding.message
    assert "unreachable, dead-end" in finding.message


def test_exception_without_a_reason_is_refused() -> None:
    with pytest.raises(engine.ChartError, match=r"lint_exceptions\[0\]\.why"):
        parse_chart(_data(GOOD, lint_exceptions=[{"rule": "unreachable", "target": "paid"}]))


def test_finding_prints_and_is_frozen() -> None:
    f = Finding(rule="dead-end", severity="error", target="open", message="stuck")
    assert str(f) == "error: open: stuck [dead-end]"
    with pytest.raises(ValidationError):
        f.rule = "x"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        Finding.model_validate(
            {"rule": "dead-end", "severity": "fatal", "target": "open", "message": "stuck"}
        )


def test_every_rule_has_a_severity_and_a_description() -> None:
    for severity, description in RULES.values():
        assert severity in ("error", "warning")
        assert description


def test_every_bundled_chart_lints_clean(chart_file: Path) -> None:
    findings = lint(engine.load_chart(chart_file))
    assert findings == [], "\n".join(map(str, findings))
