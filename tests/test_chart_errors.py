"""A chart author's mistakes, all of them at once: file, line, column, the state or transition
by name, the value found, and the key or name probably meant (issue 17, item 1).

The one-mistake-per-file corpus is ``tests/charts_broken`` (run by ``test_chart.py``); here are
the issue's own examples, end to end: through :func:`engine.load_chart`, ``invoice-engine show``
and what ``lint`` reports for a chart that doesn't load.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from click.testing import CliRunner

import engine
from engine.chart import Chart
from engine.chart.lint import invalid
from engine.chart.load import load_yaml, parse_chart
from engine.chart.spec import ChartSpec
from engine.cli import main
from engine.errors import ChartProblem

# Line numbers below are this text's: line 1 is `provider: acme`.
ACME = """\
provider: acme
initial: draft
states:
  - {name: draft, canonical: draft}
  - {name: open, canonical: open}
  - {name: paid, canonical: paid, final: true}
  - name: deleted
    canonical: void
    final: FINAL
TRANSITIONS:
  - {trigger: finalize, source: draft, dest: open}
  - {trigger: pay, source: open, dest: DEST}
  - {trigger: delete, source: draft, dest: deleted}
delivery: {event_type: $.type, event_id: $.id, invoice_id: $.data.id}
events:
  invoice.created: {create: true}
  invoice.finalized: finalize
  invoice.paid: TRIGGER
  invoice.deleted: delete
"""


def _write(tmp_path: Path, **values: str) -> Path:
    text = ACME
    for key, value in {"FINAL": "true", "TRANSITIONS": "transitions", **values}.items():
        text = text.replace(key, value)
    text = text.replace("DEST", values.get("DEST", "paid"))
    text = text.replace("TRIGGER", values.get("TRIGGER", "pay"))
    path = tmp_path / "acme.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _refused(path: Path) -> engine.ChartError:
    with pytest.raises(engine.ChartError) as info:
        engine.load_chart(path)
    return info.value


def test_the_chart_loads_when_nothing_is_wrong(tmp_path: Path) -> None:
    assert engine.load_chart(_write(tmp_path)).is_final("deleted")


def test_a_value_error_names_the_line_the_state_and_the_value(tmp_path: Path) -> None:
    err = _refused(_write(tmp_path, FINAL="yes please"))
    (problem,) = err.problems
    assert (problem.line, problem.column) == (9, 12)  # `final: yes please`, at the value
    assert problem.location == "states[3].final"
    assert problem.subject == "state 'deleted'"
    assert problem.problem == "expected true or false, got 'yes please'"
    assert str(err) == (
        f"{tmp_path / 'acme.yaml'}:9:12: state 'deleted' at states[3].final: "
        "expected true or false, got 'yes please'"
    )
    assert "Input should be" not in str(err)
    # The first problem's attributes, as before there were several.
    assert (err.source, err.location, err.problem, err.line, err.column) == (
        str(tmp_path / "acme.yaml"),
        "states[3].final",
        problem.problem,
        9,
        12,
    )


def test_a_misspelled_key_is_both_problems_each_with_its_line(tmp_path: Path) -> None:
    err = _refused(_write(tmp_path, TRANSITIONS="transitons"))
    missing, unexpected = err.problems
    assert (missing.location, missing.line) == ("transitions", 1)  # the mapping it belongs in
    assert missing.problem == (
        "missing (required); 'transitons' (line 10) looks like a misspelling of it"
    )
    assert (unexpected.location, unexpected.line, unexpected.column) == ("transitons", 10, 1)
    assert unexpected.problem.startswith(
        "unexpected key 'transitons' (did you mean 'transitions'?); keys here are: provider,"
    )
    source = str(tmp_path / "acme.yaml")
    assert str(err).splitlines() == [
        f"{source}: 2 problems:",
        f"  {source}:1:1: transitions: {missing.problem}",
        f"  {source}:10:1: transitons: {unexpected.problem}",
    ]


def test_every_problem_of_the_shape_is_reported_in_file_order(tmp_path: Path) -> None:
    err = _refused(_write(tmp_path, TRANSITIONS="transitons", FINAL="yes please"))
    assert [(p.line, p.location) for p in err.problems] == [
        (1, "transitions"),
        (9, "states[3].final"),
        (10, "transitons"),
    ]


def test_unknown_names_are_all_reported_with_the_name_meant(tmp_path: Path) -> None:
    err = _refused(_write(tmp_path, DEST="payed", TRIGGER="payy"))
    dest, trigger = err.problems
    assert (dest.line, dest.column, dest.subject) == (12, 40, "transition 'pay'")  # at payed
    assert dest.location == "transitions[1].dest"
    assert dest.problem.startswith("unknown state 'payed' (did you mean 'paid'?); states are:")
    assert (trigger.line, trigger.location) == (18, "events['invoice.paid'].trigger")
    assert trigger.problem.startswith("unknown trigger 'payy' (did you mean 'pay'?)")
    assert str(trigger) in str(err)


def test_a_nested_state_given_by_its_own_name_is_meant_by_its_full_name() -> None:
    text = ACME.replace("FINAL", "true").replace("TRANSITIONS", "transitions")
    data = load_yaml(text.replace("DEST", "paid").replace("TRIGGER", "pay"))
    data["states"][2] = {"name": "closed", "canonical": "paid", "states": [{"name": "paid"}]}
    data["states"][2]["states"][0]["final"] = True
    with pytest.raises(engine.ChartError) as info:
        parse_chart(data)
    assert "unknown state 'paid' (did you mean 'closed.paid'?)" in info.value.problem


def test_lint_errors_have_lines_too(tmp_path: Path) -> None:
    # `paid` is final, and a transition leaves it.
    path = _write(tmp_path)
    text = path.read_text(encoding="utf-8")
    path.write_text(
        text.replace(
            "  - {trigger: delete,",
            "  - {trigger: dispute, source: paid, dest: open}\n  - {trigger: delete,",
        ),
        encoding="utf-8",
    )
    err = _refused(path)
    (problem,) = err.problems
    assert (problem.line, problem.location) == (6, "states[2]")
    assert problem.problem.endswith("[final-exit]")


def test_data_has_no_lines_but_names_and_every_problem() -> None:
    data = load_yaml(ACME.replace("FINAL", "maybe").replace("TRANSITIONS", "transitons"))
    with pytest.raises(engine.ChartError) as info:
        parse_chart(data, "mine")
    assert [(p.line, p.where) for p in info.value.problems] == [
        (None, "state 'deleted' at states[3].final"),
        (None, "transitions"),
        (None, "transitons"),
    ]
    assert str(info.value.problems[0]) == (
        "mine: state 'deleted' at states[3].final: expected true or false, got 'maybe'"
    )


def test_a_chart_built_in_code_names_the_transitions_of_its_lint_errors() -> None:
    text = ACME.replace("FINAL", "true").replace("TRANSITIONS", "transitions")
    data = load_yaml(text.replace("DEST", "paid").replace("TRIGGER", "pay"))
    data["transitions"].append({"trigger": "pay", "source": "open", "dest": "deleted"})
    with pytest.raises(engine.ChartError) as info:
        Chart(ChartSpec.model_validate(data))
    (problem,) = info.value.problems
    assert (problem.location, problem.subject) == ("transitions[1]", "transition 'pay'")
    assert problem.problem.endswith("[nondeterminism]")


def test_a_chart_error_survives_pickling(tmp_path: Path) -> None:
    err = _refused(_write(tmp_path, DEST="payed", TRIGGER="payy"))
    back = pickle.loads(pickle.dumps(err))
    assert isinstance(back, engine.ChartError)
    assert back.problems == err.problems
    assert str(back) == str(err)


def test_a_chart_error_is_still_made_from_one_problem() -> None:
    err = engine.ChartError("x.yaml", "states[1]", "wrong")
    assert err.problems == [ChartProblem(source="x.yaml", location="states[1]", problem="wrong")]
    assert str(err) == "x.yaml: states[1]: wrong"
    assert isinstance(err, engine.EngineError)


# ------------------------------------------------------------------------------------- CLI


def test_show_prints_every_problem_with_its_line(tmp_path: Path) -> None:
    path = _write(tmp_path, TRANSITIONS="transitons", FINAL="yes please")
    result = CliRunner().invoke(main, ["show", str(path)])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert result.stderr.splitlines() == [
        f"Error: {path}: 3 problems:",
        f"  {path}:1:1: transitions: missing (required); 'transitons' (line 10) looks like a "
        "misspelling of it",
        f"  {path}:9:12: state 'deleted' at states[3].final: expected true or false, got "
        "'yes please'",
        f"  {path}:10:1: transitons: unexpected key 'transitons' (did you mean 'transitions'?); "
        "keys here are: provider, title, sources, initial, states, transitions, delivery, "
        "signature, events, lint_exceptions",
    ]


def test_lint_has_a_finding_for_every_problem_with_its_line(tmp_path: Path) -> None:
    err = _refused(_write(tmp_path, TRANSITIONS="transitons", FINAL="yes please"))
    findings = invalid(err)
    assert [(f.rule, f.severity, f.line, f.column, f.target) for f in findings] == [
        ("invalid", "error", 1, 1, "transitions"),
        ("invalid", "error", 9, 12, "state 'deleted' at states[3].final"),
        ("invalid", "error", 10, 1, "transitons"),
    ]
    assert findings[2].message.startswith("unexpected key 'transitons' (did you mean")
    assert findings[1].model_dump()["line"] == 9  # what `lint --json` prints for a finding
    assert str(findings[1]) == (
        "error: line 9, col 12: state 'deleted' at states[3].final: expected true or false, "
        "got 'yes please' [invalid]"
    )


def test_a_lone_surrogate_escape_in_a_chart_is_a_chart_error(tmp_path: Path) -> None:
    import engine

    path = tmp_path / "sur.yaml"
    path.write_text('provider: sur\ntitle: "x\\ud800"\n', encoding="utf-8")
    with pytest.raises(engine.ChartError, match="not valid Unicode text"):
        engine.load_chart(path)
