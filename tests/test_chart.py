"""engine.chart: broken charts are refused with the file, the place and the problem; YAML traps.

``tests/charts_broken/`` holds one chart per mistake. Each file's first line is
``# expect: LOCATION: PROBLEM``, the start of what the error must say after the file name, so a
new case is a new file and no new code.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

import engine
from engine.chart.load import load_yaml, parse_chart, read_chart_file
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


def _expected(path: Path) -> str:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# expect: "), f"{path.name}: first line must be '# expect: …'"
    return first.removeprefix("# expect: ")


@pytest.mark.parametrize("path", BROKEN, ids=lambda p: p.name)
def test_broken_chart_is_refused_with_file_location_and_problem(path: Path) -> None:
    with pytest.raises(engine.ChartError) as info:
        read_chart_file(path)
    err = info.value
    assert err.source == str(path)
    assert str(err).startswith(f"{path}: {_expected(path)}"), str(err)
    assert "Input should be a valid dictionary or instance of" not in str(err)


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


@pytest.mark.parametrize(("text", "value"), [("yes", True), ("no", False), ("true", True)])
def test_boolean_fields_keep_their_meaning(text: str, value: bool) -> None:
    yaml_text = MINIMAL.replace("STATE", "open").replace("final: true", f"final: {text}")
    spec = parse_chart(load_yaml(yaml_text))
    assert spec.states[2].final is value


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
    assert info.value.location.startswith("line 3")
    assert "line 2" in info.value.problem  # where the unclosed list began


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
    with pytest.raises(engine.ChartError, match=r"^<string>: provider: missing \(required\)"):
        parse_chart({})
    with pytest.raises(engine.ChartError, match=r"^mine: provider: missing"):
        parse_chart({}, "mine")


def test_several_problems_are_counted() -> None:
    with pytest.raises(engine.ChartError, match=r"more problems\)$"):
        parse_chart({"provider": "x"})


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
