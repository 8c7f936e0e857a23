"""engine.chart: broken charts are refused with every problem, each with the file, the line, the
place and the problem; YAML traps.

``tests/charts_broken/`` holds one chart per mistake (a few hold several). Each file's first
line is ``# expect: LINE:COLUMN: LOCATION: PROBLEM``, the start of what the first problem must
say after the file name, and each further problem has a ``# also: …`` line after it; the chart
must be refused with exactly those problems. A new case is a new file and no new code.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

import engine
from engine.chart._messages import parse_location
from engine.chart.load import bundled_chart_dir, load_yaml, parse_chart, read_chart_file
from engine.chart.spec import ChartSpec

HERE = Path(__file__).resolve().parent
BROKEN = sorted((HERE / "charts_broken").glob("*.yaml"))
SCHEMA_FILE = HERE.parent / "statecharts" / "statechart.schema.json"

MINIMAL = """\
provider: tiny
initial: draft
states:
  - {name: draft, canonical: draft}
  - {name: STATE, canonical: open}
  - {name: paid, canonical: paid, final: true}
transitions:
  - {trigger: finalize, source: draft, dest: STATE}
  - {trigger: pay, source: STATE, dest: paid}
delivery: {event_type: $.type, event_id: $.id, invoice_id: $.invoice}
events:
  created: {create: true}
"""


def _expected(path: Path) -> list[str]:
    """What each problem must say after the file name: ``# expect: …``, then ``# also: …``."""
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("# expect: "), f"{path.name}: first line must be '# expect: …'"
    more = [line.removeprefix("# also: ") for line in lines[1:] if line.startswith("# also: ")]
    return [lines[0].removeprefix("# expect: "), *more]


@pytest.mark.parametrize("path", BROKEN, ids=lambda p: p.name)
def test_broken_chart_is_refused_with_file_line_location_and_problem(path: Path) -> None:
    with pytest.raises(engine.ChartError) as info:
        read_chart_file(path)
    err = info.value
    assert err.source == str(path)
    expected = _expected(path)
    assert len(err.problems) == len(expected), str(err)
    for problem, want in zip(err.problems, expected, strict=True):
        # `file:12:5: location: …` with a line, `file: …` for the whole file (an empty one).
        said = f"{path}{':' if want[0].isdigit() else ': '}{want}"
        assert str(problem).startswith(said), str(err)
        assert problem.source == str(path)
        assert str(problem) in str(err)
    first = err.problems[0]
    assert (err.location, err.problem, err.line, err.column) == (
        first.location,
        first.problem,
        first.line,
        first.column,
    )
    assert "Input should be" not in str(err)


@pytest.mark.parametrize("path", BROKEN, ids=lambda p: p.name)
def test_the_line_of_a_problem_is_where_its_key_or_value_is_written(path: Path) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    with pytest.raises(engine.ChartError) as info:
        read_chart_file(path)
    for problem in info.value.problems:
        if problem.line is None or not problem.location or "missing" in problem.problem:
            continue  # the whole file, or a key that isn't there
        path_in_chart = parse_location(problem.location)
        assert path_in_chart, problem
        last, written = path_in_chart[-1], lines[problem.line - 1]
        if isinstance(last, str):  # its key is on that line (`dest: payed`), or its owner's
            # (`invoice.paid: payy` is the shorthand of events['invoice.paid'].trigger)
            keys = [f"{part}:" for part in path_in_chart if isinstance(part, str)]
            assert keys[-1] in written or keys[-2] in written, (problem, written)
        else:  # an item of a list: `- {…}`, or inside `[…]`
            assert written.lstrip().startswith("- ") or "[" in written, (problem, written)


def test_the_corpus_covers_the_known_mistakes() -> None:
    names = {p.stem for p in BROKEN}
    must = {
        "unknown_dest",
        "unknown_source",
        "unknown_initial",
        "event_unknown_trigger",
        "missing_canonical",
        "duplicate_key",
        "duplicate_state",
        "internal_with_dest",
        "guard_not_a_guard",
        "guard_with_call",
        "bad_path",
        "bad_header_name",
        "top_level_list",
        "not_yaml",
        "missing_delivery",
        "unknown_key",
        "status_unknown_state",
        "compound_final",
        "parallel",
        "parallel_cross_region",
        "parallel_region_race",
        "parallel_enter_region",
        "parallel_rules_not_total",
        "parallel_rules_unknown_region",
        "follow_status_unknown_region",
        "source_star_with_others",
        "guard_wildcard_path",
        "guard_nan",
        "guard_infinity",
        "guard_order_with_boolean",
        "guard_whole_body",
        "final_exit",
        "lint_exception_for_an_error",
        "time_format_unknown",
        "time_format_loses_the_hour",
        "time_unix_in_a_header",
        "locator_wildcard",
        "locator_whole_body",
        "event_type_empty",
        "events_empty",
        "event_type_never_read",
        "provider_not_file_name",
        "signature_unknown_scheme",
        "signature_unknown_key",
        "signature_missing_scheme",
        "identity_in_unsigned_header",
    }
    assert must <= names, must - names


def test_the_minimal_chart_loads() -> None:
    spec = parse_chart(load_yaml(MINIMAL.replace("STATE", "open")))
    assert [s.name for s in spec.states] == ["draft", "open", "paid"]


# --------------------------------------------------------------------------------- YAML traps


@pytest.mark.parametrize("name", ["on", "off", "yes", "no", "y", "n", "On", "NO", "Yes"])
def test_yaml_1_1_booleans_stay_state_names(name: str) -> None:
    chart = engine.Chart(parse_chart(load_yaml(MINIMAL.replace("STATE", name))))
    assert name in chart.states
    assert chart.check(["finalize"]) == name
    assert chart.next_state(name, "pay") == "paid"


@pytest.mark.parametrize("word", ["true", "false", "True", "FALSE"])
def test_real_booleans_as_state_names_are_refused_with_a_hint(word: str) -> None:
    with pytest.raises(engine.ChartError, match=r"states\[1\]\.name: .*boolean: quote it") as info:
        parse_chart(load_yaml(MINIMAL.replace("STATE", word)))
    assert f"'{word.lower()}'" in str(info.value)


@pytest.mark.parametrize("word", ["true", "True", "1", "null"])
def test_quoted_they_are_names(word: str) -> None:
    chart = engine.Chart(parse_chart(load_yaml(MINIMAL.replace("STATE", f"'{word}'"))))
    assert word in chart.states


@pytest.mark.parametrize(("word", "shown"), [("1", "1"), ("2.5", "2.5"), ("~", "null")])
def test_numbers_and_null_as_state_names_are_refused(word: str, shown: str) -> None:
    with pytest.raises(engine.ChartError, match=rf"states\[1\]\.name: .*got {shown}"):
        parse_chart(load_yaml(MINIMAL.replace("STATE", word)))


@pytest.mark.parametrize(("text", "value"), [("true", True), ("false", False), ("True", True)])
def test_boolean_fields_keep_their_meaning(text: str, value: bool) -> None:
    yaml_text = MINIMAL.replace("STATE", "open").replace("final: true", f"final: {text}")
    # Not final, paid is a dead end: a lint error, which this test is not about.
    spec = parse_chart(load_yaml(yaml_text), enforce_lint=False)
    assert spec.states[2].final is value


@pytest.mark.parametrize(
    ("text", "got", "meant"),
    [
        ("yes", "'yes'", "true"),
        ('"yes"', "'yes'", "true"),
        ('"off"', "'off'", "false"),
        ("no", "'no'", "false"),
        ("1", "1", "true"),
        ("0.0", "0.0", "false"),
        ('"true"', "'true'", "true"),
    ],
)
def test_booleans_are_yaml_true_and_false_only(text: str, got: str, meant: str) -> None:
    # Issue 17: "yes", "off", 1 and 0.0 were silently read as booleans, `yes please` refused.
    yaml_text = MINIMAL.replace("STATE", "open").replace("final: true", f"final: {text}")
    with pytest.raises(engine.ChartError) as info:
        parse_chart(load_yaml(yaml_text), enforce_lint=False)
    (problem,) = info.value.problems
    assert problem.location == "states[2].final"
    assert problem.problem == f"expected true or false, got {got} (did you mean {meant}?)"


def test_yaml_keys_stay_strings() -> None:
    data = load_yaml("on: 1\nno: 2\nyes: [off, y]\n")
    assert data == {"on": 1, "no": 2, "yes": ["off", "y"]}


def test_python_tags_are_refused_not_run() -> None:
    with pytest.raises(engine.ChartError, match=r"not valid YAML.*python/object/apply"):
        load_yaml("provider: !!python/object/apply:os.system ['echo hacked']\n", "evil.yaml")


def test_yaml_errors_name_the_line() -> None:
    with pytest.raises(engine.ChartError) as info:
        load_yaml("a: 1\nb: [1, 2\nc: 3\n", "x.yaml")
    assert info.value.source == "x.yaml"
    assert (info.value.line, info.value.column, info.value.location) == (3, 2, "")
    assert "line 2" in info.value.problem  # where the unclosed list began
    assert str(info.value).startswith("x.yaml:3:2: not valid YAML: ")


def test_a_key_that_is_a_list_is_a_chart_error_not_a_crash() -> None:
    with pytest.raises(engine.ChartError, match=r"^x\.yaml:1:3: a key can't be a list"):
        load_yaml("? [a]\n: 1\n", "x.yaml")


# ----------------------------------------------------------------------------- reading files


def test_a_missing_file_is_a_chart_error(tmp_path: Path) -> None:
    with pytest.raises(engine.ChartError, match="can't read the file"):
        read_chart_file(tmp_path / "nope.yaml")


def test_a_file_that_is_not_utf8_is_a_chart_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("provider: caf\xe9\n".encode("latin-1"))
    with pytest.raises(engine.ChartError, match=re.escape(f"{path}: not UTF-8 text")):
        read_chart_file(path)


def test_errors_from_data_name_the_source_given() -> None:
    with pytest.raises(engine.ChartError) as info:
        parse_chart({})
    assert str(info.value.problems[0]) == "<string>: provider: missing (required)"
    assert info.value.line is None  # data has no lines
    with pytest.raises(engine.ChartError) as info:
        parse_chart({}, "mine")
    assert str(info.value.problems[0]).startswith("mine: provider: missing")


def test_several_problems_are_each_listed() -> None:
    with pytest.raises(engine.ChartError) as info:
        parse_chart({"provider": "x"})
    missing = ["initial", "states", "transitions", "delivery", "events"]
    assert [p.location for p in info.value.problems] == missing
    assert str(info.value).splitlines() == [
        "<string>: 5 problems:",
        *(f"  <string>: {key}: missing (required)" for key in missing),
    ]


# ------------------------------------------------------------------------------------ schema


def _schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    return loaded


def test_checked_in_schema_is_the_generated_one() -> None:
    assert _schema() == ChartSpec.model_json_schema(), (
        "statecharts/statechart.schema.json is stale: "
        "run `invoice-engine schema -o statecharts/statechart.schema.json`"
    )


def test_schema_is_a_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(_schema())


def test_every_bundled_chart_validates_against_the_schema(chart_file: Path) -> None:
    validator = jsonschema.Draft202012Validator(_schema())
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(load_yaml(chart_file.read_text(encoding="utf-8")))
    ]
    assert errors == []


@pytest.mark.parametrize(
    "name", ["unknown_key", "missing_delivery", "top_level_list", "event_not_a_mapping"]
)
def test_the_schema_catches_structural_mistakes(name: str) -> None:
    data = load_yaml((HERE / "charts_broken" / f"{name}.yaml").read_text(encoding="utf-8"))
    assert not jsonschema.Draft202012Validator(_schema()).is_valid(data)


# ------------------------------------------------------------------- delivery map values


def _with_time(occurred_at: str) -> dict[str, Any]:
    data: dict[str, Any] = load_yaml(MINIMAL.replace("STATE", "open"))
    data["delivery"]["occurred_at"] = load_yaml(occurred_at)
    return data


@pytest.mark.parametrize(
    "fmt",
    [
        "unix",
        "unix_ms",
        "iso8601",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S.%f%z",
        "%d/%m/%Y",
        "%Y-%m-%d %I:%M %p",
        "%a, %d %b %Y %H:%M:%S GMT",
        "%Y-%m-%d %H",
    ],
)
def test_time_formats_that_read_back_what_they_write_load(fmt: str) -> None:
    spec = parse_chart(_with_time(f"{{at: $.at, format: '{fmt}'}}"))
    assert spec.delivery.occurred_at is not None
    assert spec.delivery.occurred_at.format == fmt


@pytest.mark.parametrize(
    ("fmt", "why"),
    [
        ("epoch", "is not a time format: use one of unix, unix_ms, iso8601, or a strptime"),
        ("UNIX", "is not a time format"),
        ("iso-8601", "is not a time format"),
        ("%%Y", "is not a time format"),
        ("", "is not a time format"),
        ("%s", "can't read back the times it writes ('s' is a bad directive"),
        ("%Q-%m-%d", "can't read back the times it writes"),
        (
            "%H:%M:%S",
            "reads 2024-11-23 13:45:56 back as 1900-01-01 13:45:56: it must keep the date",
        ),
        ("%Y-%m", "reads 2024-11-23 13:45:56 back as 2024-11-01 00:00:00"),
        ("%Y-%m-%d %I:%M", "reads 2024-11-23 13:45:56 back as 2024-11-23 01:45:00"),
        ("%Y-%m-%d %M", "reads 2024-11-23 13:45:56 back as 2024-11-23 00:45:00"),
    ],
)
def test_a_time_format_that_makes_every_delivery_invalid_is_refused(fmt: str, why: str) -> None:
    with pytest.raises(engine.ChartError) as info:
        parse_chart(_with_time(f"{{at: $.at, format: '{fmt}'}}"), "acme.yaml")
    assert info.value.location == "delivery.occurred_at.format"
    assert f"format {fmt!r} {why}" in info.value.problem


def test_a_number_format_can_not_read_a_header() -> None:
    for fmt in ("unix", "unix_ms"):
        with pytest.raises(engine.ChartError, match=rf"delivery\.occurred_at: format {fmt} reads"):
            parse_chart(_with_time(f"{{at: 'header:X-Sent-At', format: {fmt}}}"))
    spec = parse_chart(_with_time("{at: 'header:X-Sent-At', format: iso8601}"))  # text is fine
    assert spec.delivery.occurred_at is not None


@pytest.mark.parametrize("field", ["event_type", "event_id", "invoice_id", "status"])
@pytest.mark.parametrize(("locator", "why"), [("$.items[*].id", "reads a list"), ("$", "whole")])
def test_a_locator_that_is_never_one_value_is_refused(field: str, locator: str, why: str) -> None:
    data: dict[str, Any] = load_yaml(MINIMAL.replace("STATE", "open"))
    data["delivery"][field] = locator
    with pytest.raises(engine.ChartError, match=rf"^<string>: delivery\.{field}: .*{why}"):
        parse_chart(data)
    data["delivery"][field] = "$.items[0].id"  # one item is one value
    parse_chart(data)


def test_an_idempotency_key_may_hash_a_list_or_the_whole_body() -> None:
    data: dict[str, Any] = load_yaml(MINIMAL.replace("STATE", "open"))
    data["delivery"] = {"event_type": "$.type", "invoice_id": "$.invoice"}
    data["delivery"]["idempotency_key"] = ["$.items[*].id", "$"]
    assert parse_chart(data).delivery.idempotency_key is not None


# ------------------------------------------------------------ a chart file's name and provider


def test_a_chart_file_is_named_after_its_provider(tmp_path: Path) -> None:
    stripe = (bundled_chart_dir() / "stripe.yaml").read_text(encoding="utf-8")
    path = tmp_path / "zebrapay.yaml"
    path.write_text(stripe, encoding="utf-8")
    problem = "the file is zebrapay.yaml but it says provider: stripe"
    for load in (
        lambda: engine.load_chart(path),  # by path
        lambda: engine.load_chart(str(path)),
        lambda: engine.load_chart("zebrapay", tmp_path),  # by name, from a chart_dir
        lambda: read_chart_file(path),
    ):
        with pytest.raises(engine.ChartError) as info:
            load()
        assert (info.value.source, info.value.location) == (str(path), "provider")
        assert info.value.problem.startswith(problem)
        assert "rename the file to stripe.yaml or write provider: zebrapay" in info.value.problem
    renamed = tmp_path / "stripe.yaml"
    path.rename(renamed)
    assert engine.load_chart("stripe", tmp_path).path == renamed  # the same chart, well named
    yml = tmp_path / "stripe.yml"
    renamed.rename(yml)
    assert engine.load_chart(yml).name == "stripe"  # the suffix is not part of the name
