"""engine.lint: each rule caught on a small chart; exceptions honoured; bundled charts clean."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

import engine
from engine.chart import Chart
from engine.chart.lint import RULES, Finding, lint
from engine.chart.load import parse_chart, read_chart_file
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
    """Lint a chart that may have errors: the loader would refuse those, so load it leniently."""
    return lint(Chart(parse_chart(data, enforce_lint=False), enforce_lint=False))


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
    # One guard, asked once: when it holds the machine takes the first, so 'void' is never
    # reached either (the machine's own answers, not two guards assumed independent).
    assert _rules(findings) == [("unreachable", "void"), ("nondeterminism", "pay from open")]
    assert "same guard" in findings[1].message


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
    assert _rules(lint(Chart(spec, enforce_lint=False))) == [("unknown-trigger", "paid")]
    with pytest.raises(engine.ChartError, match=r"events\.paid\.trigger: .*'payy'"):
        Chart(spec)


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
    data = _data(GOOD)
    data["states"][3] = {"name": "void", "canonical": "cancelled", "final": True}
    why = {"why": "Our own word for it."}
    excepted = {**data, "lint_exceptions": [{"rule": "noncanonical", "target": "void", **why}]}
    assert _lint(excepted) == []
    assert lint(Chart(parse_chart(excepted))) == []  # a warning excused: it loads
    other = {**data, "lint_exceptions": [{"rule": "noncanonical", "target": "paid", **why}]}
    assert _rules(_lint(other)) == [("noncanonical", "void"), ("unused-exception", "paid")]


def test_unused_exception_with_an_unknown_rule_lists_the_rules() -> None:
    data = _data(GOOD, lint_exceptions=[{"rule": "unreachble", "target": "paid", "why": "x"}])
    (finding,) = _lint(data)
    assert (finding.rule, finding.severity) == ("unused-exception", "warning")
    assert "unreachble" in finding.message
    assert "unreachable, unreachable-configuration, dead-end" in finding.message


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


# ------------------------------------------------------------- the loader enforces errors


FINAL_EXIT = [*GOOD, {"trigger": "dispute", "source": "paid", "dest": "disputed"}]
DISPUTED = {"name": "disputed", "canonical": "open"}


def _final_exit(**extra: Any) -> dict[str, Any]:
    """The issue's chart: a transition out of the final state ``paid``."""
    data = _data(FINAL_EXIT, **extra)
    data["states"] = [*data["states"], DISPUTED]
    data["transitions"] = [*FINAL_EXIT, {"trigger": "settle", "source": "disputed", "dest": "void"}]
    return data


def test_a_chart_with_a_lint_error_does_not_load(tmp_path: Path) -> None:
    data = _final_exit()
    assert _rules(_lint(data)) == [("final-exit", "paid")]
    where = r"states\[2\]: final state 'paid' has transitions out .*\[final-exit\]"
    with pytest.raises(engine.ChartError, match=rf"^<string>: {where}"):
        parse_chart(data)
    with pytest.raises(engine.ChartError, match=where):
        Chart(ChartSpec.model_validate(data))
    path = tmp_path / "tiny.yaml"
    path.write_text(json.dumps(data), encoding="utf-8")
    for load in (lambda: engine.load_chart(path), lambda: read_chart_file(path)):
        with pytest.raises(engine.ChartError, match=where) as info:
            load()
        assert info.value.source == str(path)
        assert info.value.location == "states[2]"
    # Lint can still report it: from the spec, or from a chart loaded without enforcing.
    lenient = engine.load_chart(path, enforce_lint=False)
    assert lenient.next_state("paid", "dispute") == "disputed"  # what a loaded chart would run
    assert _rules(lint(lenient)) == _rules(lint(lenient.spec)) == [("final-exit", "paid")]
    assert _rules(lint(read_chart_file(path, enforce_lint=False))) == [("final-exit", "paid")]


def test_the_load_error_lists_every_lint_error() -> None:
    data = _final_exit()
    data["transitions"] = [
        *data["transitions"],
        {"trigger": "pay", "source": "open", "dest": "void"},
    ]
    with pytest.raises(engine.ChartError) as info:
        parse_chart(data)
    err = info.value
    assert err.location == "states[2]"
    assert "[final-exit]" in err.problem
    first, second = err.problems  # one problem per lint error, each at its own place
    assert (first.location, second.location) == ("states[2]", "transitions[1]")
    assert second.subject == "transition 'pay'"
    assert second.problem.startswith("'pay' from 'open' goes to 'paid', 'void'")
    assert second.problem.endswith("[nondeterminism]")
    assert str(second) in str(err)


def test_an_exception_cannot_excuse_an_error() -> None:
    exception = {"rule": "final-exit", "target": "paid", "why": "Disputes reopen paid invoices."}
    data = _final_exit(lint_exceptions=[exception])
    findings = _lint(data)
    assert _rules(findings) == [("final-exit", "paid"), ("excused-error", "paid")]
    warnings = "unreachable-configuration, no-final-path, several-regions, noncanonical"
    assert f"only warnings ({warnings}, unused-exception)" in findings[1].message
    assert RULES["excused-error"][0] == "error"
    with pytest.raises(engine.ChartError) as info:
        parse_chart(data)
    assert [(p.location, p.problem.rsplit(" ", 1)[-1]) for p in info.value.problems] == [
        ("states[2]", "[final-exit]"),
        ("lint_exceptions[0]", "[excused-error]"),
    ]
    # Even when the error itself is gone, naming an error rule is refused.
    clean = _data(GOOD, lint_exceptions=[{**exception, "target": "void"}])
    with pytest.raises(engine.ChartError, match=r"^<string>: lint_exceptions\[0\]: .*names an"):
        parse_chart(clean)


_ERROR_CHARTS: dict[str, dict[str, Any]] = {
    "unreachable": _data([t for t in GOOD if t["trigger"] != "pay"]),
    "dead-end": _data(
        [
            GOOD[0],
            {"trigger": "void", "source": "draft", "dest": "void"},
            {"trigger": "pay", "source": "draft", "dest": "paid"},
        ]
    ),
    "final-exit": _final_exit(),
    "nondeterminism": _data([*GOOD, {"trigger": "pay", "source": "open", "dest": "void"}]),
    "excused-error": _data(
        GOOD, lint_exceptions=[{"rule": "dead-end", "target": "open", "why": "x"}]
    ),
    "unsigned-identity": _data(
        GOOD,
        delivery={"event_type": "$.type", "event_id": "header:X-Id", "invoice_id": "$.invoice"},
        signature={"scheme": "hmac", "header": "X-Signature"},
    ),
}


@pytest.mark.parametrize("rule", [r for r, (severity, _) in RULES.items() if severity == "error"])
def test_every_error_rule_is_enforced_by_the_loader(rule: str) -> None:
    """A chart with only this error: lint finds it, and the loader refuses it naming the rule.
    (``unknown-trigger`` and ``missing-canonical`` the meaning check refuses first, in its own
    words; ``Chart`` built from a spec refuses them as lint errors.)"""
    if rule in ("unknown-trigger", "missing-canonical"):
        data = _data(GOOD, events={"created": {"create": True}, "paid": "payy"})
        if rule == "missing-canonical":
            data = _data(GOOD)
            data["states"][0] = {"name": "draft"}
        with pytest.raises(engine.ChartError):
            parse_chart(data)
        spec = ChartSpec.model_validate(data)
        assert [f.rule for f in lint(spec) if f.severity == "error"] == [rule]
        with pytest.raises(engine.ChartError, match=rf"\[{rule}\]$"):
            Chart(spec, require_canonical=False)
        return
    data = _ERROR_CHARTS[rule]
    assert [f.rule for f in _lint(data) if f.severity == "error"] == [rule]
    with pytest.raises(engine.ChartError, match=rf"\[{rule}\]$"):
        parse_chart(data)


def test_a_warning_does_not_stop_a_chart_loading() -> None:
    data = _data(GOOD)
    data["states"][3] = {"name": "void", "canonical": "cancelled", "final": True}
    assert _rules(lint(Chart(parse_chart(data)))) == [("noncanonical", "void")]


def test_guards_that_say_the_same_thing_are_the_same_guard() -> None:
    transitions = [
        GOOD[0],
        {"trigger": "pay", "source": "open", "dest": "paid", "guard": "$.due == 0"},
        {"trigger": "pay", "source": "open", "dest": "void", "guard": "due==0.0"},
    ]
    assert _rules(_lint(_data(transitions))) == [("nondeterminism", "pay from open")]


# ----------------------------------------------------------------- identity and signature

HMAC = {"scheme": "hmac", "header": "X-Signature"}
BEARER = {"scheme": "shared_secret", "form": "bearer"}
STANDARD = {"scheme": "standard_webhooks"}


@pytest.mark.parametrize(
    ("delivery", "signature", "found"),
    [
        ({"event_id": "header:X-Webhook-ID"}, HMAC, "delivery.event_id"),
        ({"event_id": "header:X-Signature"}, HMAC, "delivery.event_id"),
        ({"event_id": "header:X-Webhook-ID"}, {"scheme": "stripe"}, "delivery.event_id"),
        ({"event_id": "header:X-Webhook-ID"}, BEARER, "delivery.event_id"),
        ({"event_id": "header:Webhook-Id"}, STANDARD, None),  # signed; names ignore case
        ({"event_id": "header:webhook-signature"}, STANDARD, "delivery.event_id"),
        ({"event_id": "header:svix-id"}, {**STANDARD, "header_prefix": "svix-"}, None),
        (
            {"event_id": "header:webhook-id"},
            {**STANDARD, "header_prefix": "svix-"},
            "delivery.event_id",
        ),
        ({"event_id": "$.id"}, HMAC, None),
        ({"event_id": "header:X-Webhook-ID"}, None, None),  # no scheme claims nothing
        ({"idempotency_key": ["$.id", "header:X-Sent"]}, HMAC, "delivery.idempotency_key[1]"),
        ({"event_id": "$.id", "idempotency_key": ["header:X-Sent"]}, HMAC, None),  # unused
        # Moxie: the header is the event type too; a new value there is another event type
        (
            {
                "event_type": "header:X-Event-Type",
                "idempotency_key": ["$.id", "header:X-Event-Type"],
            },
            BEARER,
            None,
        ),
    ],
)
def test_an_identity_read_from_a_header_the_signature_does_not_cover_is_refused(
    delivery: dict[str, Any], signature: dict[str, Any] | None, found: str | None
) -> None:
    """A replay with a new value in such a header would pass as a new, verified event."""
    data = _data(GOOD, delivery={"event_type": "$.type", "invoice_id": "$.invoice", **delivery})
    if signature is not None:
        data["signature"] = signature
    if found is None:
        assert _lint(data) == []
        parse_chart(data)
        return
    assert _rules(_lint(data)) == [("unsigned-identity", found)]
    for load in (lambda: parse_chart(data), lambda: Chart(ChartSpec.model_validate(data))):
        with pytest.raises(engine.ChartError, match=r"\[unsigned-identity\]$") as info:
            load()
        assert info.value.location == found
        assert "anyone who saw one delivery could send it again with a new" in info.value.problem
        assert "which the signature does not cover (" in info.value.problem


def test_an_unsigned_identity_is_reported_with_the_chart_s_other_problems() -> None:
    data = _ERROR_CHARTS["unsigned-identity"] | {"titel": "a misspelled key"}
    with pytest.raises(engine.ChartError) as info:
        parse_chart(data)
    assert [p.location for p in info.value.problems] == ["titel", "delivery.event_id"]
