"""One run reports every problem of a chart, each at its line (issue 17, item 1, second round).

No kind of mistake hides another: a duplicate key, the chart's shape (a misspelt key, a wrong
type), its names (an unknown dest, source or trigger), its file name and lint's errors (a final
state with a way out, a state nothing leads to) all come out of one run, in
``ChartError.problems``, ``invoice-engine show`` and ``invoice-engine lint --json``. Lint's own
findings on a chart that loads have lines too, and are printed as ``PATH:LINE:COL: …``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import engine
from engine.chart import Chart, ChartSpec, lint
from engine.chart.load import load_yaml, read_chart_file
from engine.cli import main

HERE = Path(__file__).resolve().parent
EVERY_KIND = HERE / "charts_broken" / "every_kind_at_once.yaml"

#: What each mistake of ``every_kind_at_once.yaml`` is reported as: line, column, rule, words.
EVERY_KIND_PROBLEMS = [
    (14, 11, "", "the file is every_kind_at_once.yaml but it says provider: acme"),
    (19, 5, "final-exit", "final state 'paid' has transitions out (reopen -> 'open')"),
    (21, 5, "unreachable", "no transition leads to 'limbo'"),
    (23, 46, "", "unknown state 'opn' (did you mean 'open'?)"),
    (24, 46, "", "duplicate key 'dest': it is already given at line 24, column 34"),
    (25, 36, "", "unknown state 'drfat' (did you mean 'draft'?)"),
    (29, 3, "", "missing (required); 'invoice_idd' (line 31) looks like a misspelling of it"),
    (31, 3, "", "unexpected key 'invoice_idd' (did you mean 'invoice_id'?)"),
    (33, 29, "", "expected true or false, got 'yes' (did you mean true?)"),
    (36, 29, "", "unknown trigger 'vod' (did you mean 'void'?)"),
]

MINIMAL = """\
provider: acme
initial: draft
states:
  - {name: draft, canonical: draft}
  - {name: open, canonical: open}
  - {name: paid, canonical: paid, final: true}
transitions:
  - {trigger: finalize, source: draft, dest: open}
  - {trigger: pay, source: open, dest: paid}
delivery: {event_type: $.type, event_id: $.id, invoice_id: $.data.id}
events:
  invoice.created: {create: true}
  invoice.paid: pay
"""


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def _refused(path: Path) -> engine.ChartError:
    with pytest.raises(engine.ChartError) as info:
        engine.load_chart(path)
    return info.value


def _write(tmp_path: Path, text: str, name: str = "acme.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------------- every kind at once


def test_every_kind_of_mistake_is_a_problem_of_one_run() -> None:
    err = _refused(EVERY_KIND)
    assert len(err.problems) == len(EVERY_KIND_PROBLEMS), str(err)
    for problem, (line, column, rule, words) in zip(err.problems, EVERY_KIND_PROBLEMS, strict=True):
        assert (problem.line, problem.column, problem.rule) == (line, column, rule), problem
        assert words in problem.problem, problem


def test_show_says_every_kind_of_mistake_at_its_line() -> None:
    result = run("show", str(EVERY_KIND))
    assert result.exit_code == 1
    assert result.stdout == ""
    first, *said = result.stderr.splitlines()
    assert first == f"Error: {EVERY_KIND}: {len(EVERY_KIND_PROBLEMS)} problems:"
    for text, (line, column, _, words) in zip(said, EVERY_KIND_PROBLEMS, strict=True):
        assert text.startswith(f"  {EVERY_KIND}:{line}:{column}: "), text
        assert words in text


def test_lint_json_has_a_finding_for_every_kind_of_mistake() -> None:
    result = run("lint", str(EVERY_KIND), "--json")
    assert result.exit_code == 1
    (chart,) = json.loads(result.stdout)["charts"]
    found = [(f["line"], f["column"], f["rule"], f["message"]) for f in chart["findings"]]
    assert len(found) == len(EVERY_KIND_PROBLEMS)
    for (line, column, rule, message), want in zip(found, EVERY_KIND_PROBLEMS, strict=True):
        assert (line, column, rule) == (want[0], want[1], want[2] or "invalid")
        assert want[3] in message
    text = run("lint", str(EVERY_KIND)).stdout.splitlines()
    assert text[1] == (
        f"{EVERY_KIND}:19:5: error: final state 'paid' has transitions out (reopen -> 'open'); "
        "nothing may leave a final state: drop them, or make the state not final [final-exit]"
    )


# ----------------------------------------------------------------------------- duplicate keys


def test_duplicate_keys_are_problems_and_reading_goes_on(tmp_path: Path) -> None:
    text = (
        MINIMAL.replace("initial: draft\n", "initial: draft\ninitial: open\n")
        .replace("canonical: open}", "canonical: open, canonical: paid}")
        .replace("source: open, dest: paid}", "source: open, dest: paid, dest: draft}")
        .replace("canonical: draft}", "canonical: draft, final: yes please}")
    )
    err = _refused(_write(tmp_path, text))
    assert [(p.line, p.location, p.problem.split(":")[0]) for p in err.problems] == [
        (3, "initial", "duplicate key 'initial'"),
        (5, "states[0].final", "expected true or false, got 'yes please'"),
        (6, "states[1].canonical", "duplicate key 'canonical'"),
        (10, "transitions[1].dest", "duplicate key 'dest'"),
    ]
    assert err.problems[0].problem == (
        "duplicate key 'initial': it is already given at line 2, column 1 (whose value "
        "counts): remove one"
    )


def test_the_first_of_duplicate_keys_counts(tmp_path: Path) -> None:
    text = MINIMAL.replace("source: open, dest: paid}", "source: open, dest: paid, dest: nope}")
    err = _refused(_write(tmp_path, text))
    (problem,) = err.problems  # `nope` is not read, so it is not also an unknown state
    assert (problem.line, problem.column) == (9, 46)


def test_merge_keys_are_read(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        "delivery: {event_type: $.type, event_id: $.id, invoice_id: $.data.id}",
        "base: &ids {event_id: $.id, invoice_id: $.data.id}\n"
        "delivery:\n  <<: *ids\n  event_type: $.type\n  invoice_id: $.invoice",
    )
    err = _refused(_write(tmp_path, text))  # `base` is no key of a chart; the merge is fine
    (problem,) = err.problems
    assert (problem.location, problem.line) == ("base", 10)
    data = load_yaml("a: &a {x: 1, y: 2}\nb: {<<: *a, y: 3}\nc: {<<: [{x: 9}, *a]}\n")
    assert data["b"] == {"x": 1, "y": 3}  # the keys written out win
    assert data["c"] == {"x": 9, "y": 2}  # an earlier merged mapping wins over a later one


def test_a_chart_with_merge_keys_loads(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        "  - {name: paid, canonical: paid, final: true}",
        "  - &done {name: paid, canonical: paid, final: true}\n  - {<<: *done, name: gone}",
    )
    chart = engine.load_chart(_write(tmp_path, text), enforce_lint=False)
    assert chart.is_final("gone")
    assert chart.canonical("gone") == "paid"


# ------------------------------------------------------------------ shape, names and lint


def test_a_wrong_shape_does_not_hide_unknown_names_or_the_file_name(tmp_path: Path) -> None:
    text = (
        MINIMAL.replace("canonical: paid, final: true}", "canonical: paid, final: yes please}")
        .replace("source: draft, dest: open}", "source: draft, dest: opn}")
        .replace("source: open, dest: paid}", "source: [open, drfat], dest: paid}")
        .replace("invoice.paid: pay", "invoice.paid: {trigger: vod}")
    )
    err = _refused(_write(tmp_path, text, "acme_billing.yaml"))
    assert [p.location for p in err.problems] == [
        "provider",
        "states[2].final",
        "transitions[0].dest",
        "transitions[1].source[1]",
        "events['invoice.paid'].trigger",
    ]


def test_lint_errors_come_with_unknown_names(tmp_path: Path) -> None:
    # `xyzzy` has no likely meaning: the transition is left out of lint, and with it the
    # findings it could make wrong (open unreachable, draft a dead end); final-exit stays.
    undo = "  - {trigger: undo, source: paid, dest: draft}\n"
    text = MINIMAL.replace("dest: open}", "dest: xyzzy}").replace(
        "transitions:\n", "transitions:\n" + undo
    )
    err = _refused(_write(tmp_path, text))
    assert [(p.location, p.rule) for p in err.problems] == [
        ("states[2]", "final-exit"),
        ("transitions[1].dest", ""),
    ]


def test_a_duplicate_state_is_reported_where_it_is_given_again(tmp_path: Path) -> None:
    text = MINIMAL.replace("transitions:", "  - {name: open, canonical: open}\ntransitions:")
    (problem,) = _refused(_write(tmp_path, text)).problems
    assert (problem.line, problem.location) == (7, "states[3].name")
    assert problem.problem == "state 'open' is defined twice (first at states[1], line 5)"


def test_a_misspelt_guard_operator_is_said_to_be_one(tmp_path: Path) -> None:
    text = MINIMAL.replace("dest: paid}", 'dest: paid, guard: "$.due >> 0"}')
    (problem,) = _refused(_write(tmp_path, text)).problems
    assert "'>>' is not an operator; OP is one of ==, !=, <=, >=, <, >" in problem.problem
    assert "double quotes" not in problem.problem


# ------------------------------------------------------------------- lint of a loaded chart


def test_lint_findings_of_a_loaded_chart_have_lines(tmp_path: Path) -> None:
    text = MINIMAL.replace("canonical: paid, final", "canonical: payed, final").replace(
        "transitions:", "  - {name: stuck, canonical: open}\ntransitions:"
    )
    text = text.replace("delivery:", "  - {trigger: block, source: open, dest: stuck}\ndelivery:")
    path = _write(tmp_path, text)
    chart = engine.load_chart(path, enforce_lint=False)
    found = {f.rule: f for f in lint(chart)}
    assert (found["noncanonical"].line, found["noncanonical"].column) == (6, 29)
    assert "did you mean 'paid'?" in found["noncanonical"].message
    assert (found["dead-end"].line, found["dead-end"].column) == (7, 5)
    built = Chart(ChartSpec.model_validate(load_yaml(text)), enforce_lint=False)
    assert all(f.line is None for f in lint(built))  # a chart built in code has no lines
    result = run("lint", str(path))
    assert result.exit_code == 1
    assert result.stdout.splitlines()[:2] == [
        f"{path}:6:29: warning: {found['noncanonical'].message} [noncanonical]",
        f"{path}:7:5: error: {found['dead-end'].message} [dead-end]",
    ]


# ------------------------------------------------------------------------------ the commands


def test_charts_json_lists_each_problem_and_the_command_to_lint_it(tmp_path: Path) -> None:
    path = _write(tmp_path, MINIMAL.replace("transitions:", "transitons:"))
    result = run("charts", "--chart-dir", str(tmp_path), "--json")
    assert result.exit_code == 0
    (row,) = [r for r in json.loads(result.stdout) if r["name"] == "acme"]
    assert row["hint"] == f"invoice-engine lint {path}"
    assert [(p["line"], p["column"], p["where"]) for p in row["problems"]] == [
        (1, 1, "transitions"),
        (7, 1, "transitons"),
    ]
    assert row["problems"][1]["message"].startswith("unexpected key 'transitons'")


def test_show_json_of_a_broken_chart_prints_its_problems(tmp_path: Path) -> None:
    path = _write(tmp_path, MINIMAL.replace("dest: paid}", "dest: payed}"))
    result = run("show", str(path), "--json")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {path}:9:")
    doc = json.loads(result.stdout)
    assert (doc["loads"], doc["path"]) == (False, str(path))
    (problem,) = doc["problems"]
    assert (problem["line"], problem["where"]) == (9, "transition 'pay' at transitions[1].dest")


def test_an_unknown_provider_says_which_one_was_meant() -> None:
    with pytest.raises(engine.UnknownProvider, match=r"'strpe' \(did you mean 'stripe'\?\)"):
        engine.load_chart("strpe")
    result = run("show", "strpe")
    assert "(did you mean 'stripe'?)" in result.stderr


def test_lint_of_a_folder_says_to_use_chart_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "bad1"
    folder.mkdir()
    monkeypatch.chdir(tmp_path)
    for target in (str(folder), "bad1"):
        result = run("lint", target)
        assert result.exit_code == 1
        assert result.stderr.strip() == (
            f"Error: {target!r} is a folder: lint its charts with --chart-dir {target}"
        )
    with pytest.raises(engine.ChartError, match="is a folder, not a chart file"):
        read_chart_file(folder)


def test_a_child_whose_name_cant_be_read_is_not_shown_by_a_stand_in(tmp_path: Path) -> None:
    path = tmp_path / "acme.yaml"
    path.write_text(
        "provider: acme\ninitial: draft\nstates:\n  - name: draft\n    canonical: draft\n"
        "    initial: due\n    states: [{name: fresh}, {nam: due}]\ntransitions: []\n"
        "delivery: {event_type: $.type, event_id: $.id, invoice_id: $.id}\n"
        "events: {x: {info: true}}\n",
        encoding="utf-8",
    )
    with pytest.raises(engine.ChartError) as info:
        engine.load_chart(path)
    text = str(info.value)
    assert "\\x00" not in text
    assert "\x00" not in text
    assert "unknown state 'due'" not in text  # its name is the one that can't be read
    assert "did you mean 'name'" in text
