"""The chart commands (charts, show, lint, schema, check): every flag, exit codes, parsed --json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import engine
from engine.chart.spec import ChartSpec
from engine.cli import main

HERE = Path(__file__).resolve().parent
SCHEMA_FILE = HERE.parent / "statecharts" / "statechart.schema.json"
MY_COMMANDS = ["charts", "show", "lint", "schema", "check"]

ACME = """\
provider: acme
title: Acme invoices
initial: draft
states:
  - {name: draft, canonical: draft, description: Being written.}
  - {name: open, canonical: open}
  - {name: paid, canonical: paid, final: true}
  - {name: void, canonical: CANONICAL, final: true}
transitions:
  - {trigger: finalize, source: draft, dest: open}
  - {trigger: pay, source: open, dest: paid, guard: "$.due == 0"}
  - {trigger: void, source: [draft, open], dest: void}
  - {trigger: remind, source: open, internal: true}
delivery:
  event_type: $.type
  event_id: $.id
  invoice_id: $.invoice
  status: $.status
  statuses: {PAID: paid}
  occurred_at: {at: $.at, format: unix}
events:
  created: {create: true}
  paid: pay
  updated: {follow_status: true}
  viewed: {info: true, states: [open], invoice_optional: true}
"""


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def run_json(*args: str) -> Any:
    result = run(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def chart_dir(tmp_path: Path) -> Path:
    """A user chart folder holding one good chart, ``acme``."""
    (tmp_path / "acme.yaml").write_text(ACME.replace("CANONICAL", "void"), encoding="utf-8")
    return tmp_path


def _error_lines(result: Result) -> list[str]:
    assert "Traceback" not in result.output
    return result.stderr.splitlines()


@pytest.mark.parametrize("command", MY_COMMANDS)
def test_help_is_the_docstring_and_ends_with_an_example(command: str) -> None:
    result = run(command, "--help")
    assert result.exit_code == 0
    paragraphs = result.stdout.split("Options:")[0].strip().splitlines()
    assert paragraphs[-1].strip().startswith("Example: invoice-engine " + command)


# ------------------------------------------------------------------------------------ charts


def test_charts_lists_every_bundled_chart() -> None:
    result = run("charts")
    assert result.exit_code == 0
    for name in engine.available_charts():
        assert name in result.stdout
    rows = run_json("charts")
    assert [r["name"] for r in rows] == engine.available_charts()
    stripe = next(r for r in rows if r["name"] == "stripe")
    assert stripe["states"] == len(engine.load_chart("stripe").states)


def test_charts_with_chart_dir_adds_the_users_charts(chart_dir: Path) -> None:
    rows = run_json("charts", "--chart-dir", str(chart_dir))
    acme = next(r for r in rows if r["name"] == "acme")
    assert (acme["title"], acme["states"], acme["events"]) == ("Acme invoices", 4, 4)


def test_charts_lists_a_broken_chart_instead_of_failing(chart_dir: Path) -> None:
    (chart_dir / "broken.yaml").write_text("provider: broken\n", encoding="utf-8")
    result = run("charts", "--chart-dir", str(chart_dir))
    assert result.exit_code == 0
    assert "BROKEN: " in result.stdout
    assert "acme" in result.stdout
    rows = run_json("charts", "--chart-dir", str(chart_dir))
    broken = next(r for r in rows if r["name"] == "broken")
    assert "initial: missing" in broken["error"]


def test_chart_dir_must_exist(tmp_path: Path) -> None:
    result = run("charts", "--chart-dir", str(tmp_path / "nope"))
    assert result.exit_code == 2


# -------------------------------------------------------------------------------------- show


def test_show_prints_states_transitions_events_and_delivery() -> None:
    result = run("show", "stripe")
    assert result.exit_code == 0
    out = result.stdout
    for heading in ("state", "canonical", "trigger", "source", "dest", "event", "delivery:"):
        assert heading in out
    assert "mark_uncollectible" in out
    assert "invoice.updated" in out
    assert "follow the status snapshot" in out
    assert "(internal)" in out
    assert "$.data.object.id" in out


def test_show_json_matches_the_chart(chart_name: str) -> None:
    chart = engine.load_chart(chart_name)
    info = run_json("show", chart_name)
    assert info["provider"] == chart_name
    assert [s["name"] for s in info["states"]] == list(chart.tree.leaves)
    configurations = info["configurations"]
    assert [c["name"] for c in configurations] == chart.states
    assert [c["name"] for c in configurations if c["final"]] == chart.final_states
    assert [c["name"] for c in configurations if c["initial"]] == sorted(
        chart.initial_states, key=chart.states.index
    )
    assert all(c["canonical"] == chart.canonical(c["name"]) for c in configurations)
    initial_leaves = {leaf for c in chart.initial_states for leaf in c.leaves}
    assert {s["name"] for s in info["states"] if s["initial"]} == initial_leaves
    assert len(info["transitions"]) == len(chart.spec.transitions)
    assert [e["event"] for e in info["events"]] == list(chart.spec.events)


def test_show_a_user_chart_by_chart_dir_and_by_path(chart_dir: Path) -> None:
    by_name = run_json("show", "acme", "--chart-dir", str(chart_dir))
    by_path = run_json("show", str(chart_dir / "acme.yaml"))
    assert by_name == by_path
    assert by_name["delivery"]["statuses"] == {"PAID": "paid"}
    pay = next(t for t in by_name["transitions"] if t["trigger"] == "pay")
    assert pay["guard"] == "$.due == 0"
    viewed = next(e for e in by_name["events"] if e["event"] == "viewed")
    assert viewed["meaning"] == "info (legal in open); invoice id optional"
    text = run("show", "acme", "--chart-dir", str(chart_dir)).stdout
    assert "'PAID' -> paid" in text
    assert "Being written." in text
    assert "default" in text


def test_misspelled_provider_lists_the_available_ones() -> None:
    for command in (["show", "strpe"], ["check", "strpe", "pay"], ["lint", "strpe"]):
        result = run(*command)
        assert result.exit_code == 1
        (line,) = _error_lines(result)
        assert line.startswith(
            "Error: Unknown provider 'strpe' (did you mean 'stripe'?). Available: "
        )
        assert "stripe" in line
        assert result.stdout == ""


def test_a_broken_chart_file_is_an_error_not_a_traceback() -> None:
    result = run("show", str(HERE / "charts_broken" / "unknown_dest.yaml"))
    assert result.exit_code == 1
    (line,) = _error_lines(result)
    assert "transitions[1].dest: unknown state 'payed'" in line


# -------------------------------------------------------------------------------------- lint


def test_lint_every_chart_by_default() -> None:
    result = run("lint")
    assert result.exit_code == 0, result.output
    for name in engine.available_charts():
        assert f"{name}: ok" in result.stdout
    assert "0 errors, 0 warnings" in result.stdout
    report = run_json("lint")
    assert [c["chart"] for c in report["charts"]] == engine.available_charts()
    assert (report["errors"], report["warnings"]) == (0, 0)


def test_lint_errors_exit_1(tmp_path: Path) -> None:
    path = tmp_path / "acme.yaml"
    path.write_text(
        ACME.replace("CANONICAL", "void").replace(
            "source: draft, dest: open", "source: draft, dest: draft"
        ),
        encoding="utf-8",
    )
    result = run("lint", str(path), "stripe")
    assert result.exit_code == 1
    # PATH:LINE:COL: severity: message [rule], the line of the state `open` (line 1 is
    # `provider: acme`): an editor or terminal makes it a link.
    assert f"{path}:6:5: error: no transition leads to 'open'" in result.stdout
    assert "stripe: ok" in result.stdout
    assert "2 charts: " in result.stdout
    as_json = run("lint", str(path), "--json")
    assert as_json.exit_code == 1
    report = json.loads(as_json.stdout)
    rules = {f["rule"] for f in report["charts"][0]["findings"]}
    assert "unreachable" in rules
    assert report["errors"] >= 1


def test_lint_warnings_pass_unless_strict(tmp_path: Path) -> None:
    path = tmp_path / "acme.yaml"
    path.write_text(ACME.replace("CANONICAL", "cancelled"), encoding="utf-8")
    result = run("lint", str(path))
    assert result.exit_code == 0
    assert f"{path}:8:29: warning: canonical state 'cancelled' is not one of" in result.stdout
    assert "1 chart: 0 errors, 1 warning" in result.stdout
    assert run("lint", str(path), "--strict").exit_code == 1
    assert run("lint", "stripe", "--strict").exit_code == 0


def test_lint_reports_a_chart_that_does_not_load_and_goes_on() -> None:
    broken = HERE / "charts_broken" / "unknown_key.yaml"
    result = run("lint", str(broken), "stripe")
    assert result.exit_code == 1
    expected = f"{broken}:12:34: error: transition 'pay' at transitions[1].destination"
    assert f"{expected}: unexpected key" in result.stdout
    assert "[invalid]" in result.stdout
    assert "stripe: ok" in result.stdout
    report = json.loads(run("lint", str(broken), "--json").stdout)
    (finding,) = report["charts"][0]["findings"]
    assert (finding["rule"], finding["severity"]) == ("invalid", "error")


def test_lint_with_chart_dir_includes_the_users_charts(chart_dir: Path) -> None:
    report = run_json("lint", "--chart-dir", str(chart_dir))
    assert "acme" in [c["chart"] for c in report["charts"]]
    only = run_json("lint", "acme", "--chart-dir", str(chart_dir))
    assert [c["chart"] for c in only["charts"]] == ["acme"]


# ------------------------------------------------------------------------------------ schema


def test_schema_prints_the_generated_schema_which_is_checked_in() -> None:
    result = run("schema")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == ChartSpec.model_json_schema()
    assert result.stdout == SCHEMA_FILE.read_text(encoding="utf-8")


@pytest.mark.parametrize("flag", ["--output", "-o"])
def test_schema_output_writes_a_file(tmp_path: Path, flag: str) -> None:
    out = tmp_path / "schema.json"
    result = run("schema", flag, str(out))
    assert result.exit_code == 0
    assert result.stdout == ""
    assert out.read_text(encoding="utf-8") == SCHEMA_FILE.read_text(encoding="utf-8")


# ------------------------------------------------------------------------------------- check


def test_check_legal_prints_the_end_state() -> None:
    result = run("check", "stripe", "finalize", "pay")
    assert (result.exit_code, result.stdout) == (0, "paid\n")
    assert run("check", "stripe", "pay", "--from", "open").stdout == "paid\n"
    info = run_json("check", "stripe", "finalize", "mark_uncollectible")
    assert info["legal"] is True
    assert (info["from"], info["state"], info["canonical"]) == (
        "draft",
        "uncollectible",
        "uncollectible",
    )
    assert info["final"] is False
    assert [step["to"] for step in info["path"]] == ["open", "uncollectible"]


def test_check_illegal_exits_1_with_the_reason_and_a_hint() -> None:
    result = run("check", "stripe", "pay")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert _error_lines(result) == [
        "Error: Can't 'pay' when in 'draft'; allowed from 'draft': finalize, delete, notify",
        "Hint: Try --from open",
    ]


def test_check_illegal_later_step_and_final_state_hint() -> None:
    result = run("check", "stripe", "finalize", "pay", "void")
    assert result.exit_code == 1
    error, hint = _error_lines(result)
    assert error.startswith("Error: step 3 of 3: Can't 'void' when in 'paid' (a final state)")
    assert hint == "Hint: 'paid' is final: nothing leaves it"


def test_check_hint_lists_allowed_triggers_when_no_start_works() -> None:
    result = run("check", "stripe", "finalize", "delete")
    assert result.exit_code == 1
    assert (
        _error_lines(result)[-1]
        == "Hint: From 'open' you can: pay, void, mark_uncollectible, notify"
    )


def test_check_illegal_json() -> None:
    result = run("check", "stripe", "finalize", "finalize", "--json")
    assert result.exit_code == 1
    info = json.loads(result.stdout)
    assert info["legal"] is False
    assert (info["state"], info["step"], info["trigger"]) == ("open", 2, "finalize")
    assert info["allowed"] == engine.load_chart("stripe").allowed_triggers("open")
    assert "Can't 'finalize' when in 'open'" in info["reason"]
    assert info["hint"] == "From 'open' you can: pay, void, mark_uncollectible, notify"
    again = json.loads(run("check", "stripe", "finalize", "--from", "open", "--json").stdout)
    assert (again["from"], again["hint"]) == ("open", "Try --from draft")
    assert info["path"] == [{"from": "draft", "trigger": "finalize", "to": "open"}]


def test_check_guards_read_the_payload(chart_dir: Path) -> None:
    args = ["check", "acme", "finalize", "pay", "--chart-dir", str(chart_dir)]
    refused = run(*args)
    assert refused.exit_code == 1
    assert "$.due == 0 is false" in refused.stderr
    assert "--payload" in _error_lines(refused)[-1]
    assert run(*args, "--payload", '{"due": 0}').stdout == "paid\n"
    assert run(*args, "--payload", '{"due": 3}').exit_code == 1


def test_check_bad_payload_is_a_usage_error() -> None:
    result = run("check", "stripe", "finalize", "--payload", "{due: 0}")
    assert result.exit_code == 2
    assert "not JSON" in result.stderr


def test_check_unknown_trigger_or_state_lists_the_choices() -> None:
    result = run("check", "stripe", "paye")
    assert result.exit_code == 1
    assert "Unknown trigger 'paye'" in result.stderr
    assert "finalize" in result.stderr
    result = run("check", "stripe", "pay", "--from", "payed")
    assert result.exit_code == 1
    assert "Unknown state 'payed'" in result.stderr


def test_check_needs_a_trigger() -> None:
    assert run("check", "stripe").exit_code == 2
