"""A new user's first contact with the CLI (issue 17): one way to name a chart, --json
everywhere, Ctrl-C, a BOM, grammar, output a webhook can't forge, and hostile chart folders."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import unicodedata
from pathlib import Path

import _db
import pytest
from _cli import apply_json
from click.testing import CliRunner, Result
from test_cli_charts import ACME

from engine import ChartError, load_chart
from engine.chart import bundled_chart_dir
from engine.cli import main
from engine.cli._text import clip, plural, visible

ROOT = Path(__file__).resolve().parent.parent
CLI = Path(sys.executable).with_name("invoice-engine")


def run(*args: str, input: str | bytes | None = None) -> Result:
    return CliRunner().invoke(main, list(args), input=input)


def ok(*args: str, input: str | bytes | None = None) -> Result:
    result = run(*args, input=input)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result


def assert_error(result: Result, code: int, *words: str) -> None:
    """Exit ``code``, nothing on stdout, one ``Error: …`` on stderr naming ``words``."""
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert "This is a bug" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: "), result.stderr
    for word in words:
        assert word in result.stderr, (word, result.stderr)


def stripe_event(n: int, invoice: str, kind: str = "created", status: str = "draft") -> str:
    body = {
        "id": f"evt_{n}",
        "type": f"invoice.{kind}",
        "created": 1_700_000_000 + n,
        "data": {"object": {"id": invoice, "status": status}},
    }
    return json.dumps(body)


@pytest.fixture
def acme(tmp_path: Path) -> tuple[Path, Path, str]:
    """A user's chart folder holding acme.yaml, the chart's path, and a database of its events."""
    charts = tmp_path / "charts"
    charts.mkdir()
    chart = charts / "acme.yaml"
    chart.write_text(ACME.replace("CANONICAL", "void"), encoding="utf-8")
    stream = tmp_path / "acme.jsonl"
    stream.write_text(
        '{"type": "created", "id": "e1", "invoice": "i1", "status": "draft", "at": 1700000000}\n'
        '{"type": "updated", "id": "e2", "invoice": "i1", "status": "open", "at": 1700000100}\n'
    )
    db = str(tmp_path / "acme.db")
    ok("apply", str(chart), str(stream), "--db", db)  # a path, where a name also goes
    return charts, chart, db


# ------------------------------------------------------------------- item 2: naming a chart


def test_every_command_takes_a_chart_by_path(acme: tuple[Path, Path, str]) -> None:
    charts, chart, db = acme
    path = str(chart)
    by_path = json.loads(ok("state", path, "i1", "--db", db, "--json").stdout)
    by_name = json.loads(
        ok("state", "acme", "i1", "--db", db, "--chart-dir", str(charts), "--json").stdout
    )
    assert by_path == by_name
    assert (by_path["provider"], by_path["state"]) == ("acme", "open")
    assert len(json.loads(ok("history", path, "i1", "--db", db, "--json").stdout)) == 2
    assert "current" in ok("diagram", path, "--invoice", "i1", "--db", db).stdout
    assert json.loads(ok("replay", path, "--db", db, "--json").stdout)["ok"] is True
    assert json.loads(ok("show", path, "--json").stdout)["provider"] == "acme"
    assert ok("check", path, "finalize").stdout == "open\n"
    assert ok("lint", path).stdout.startswith("acme: ok")
    assert run("apply", path, "-", "--db", db, "--strict", input="").exit_code == 0


@pytest.mark.parametrize(
    "args",
    [
        ["state", "acme", "i1"],
        ["history", "acme", "i1"],
        ["diagram", "acme", "--invoice", "i1"],
        ["replay"],
        ["replay", "acme"],
    ],
    ids=lambda a: " ".join(a),
)
def test_a_name_only_chart_dir_holds_says_to_pass_it_in_every_command(
    args: list[str], acme: tuple[Path, Path, str]
) -> None:
    charts, _, db = acme
    assert_error(run(*args, "--db", db), 1, "Unknown provider 'acme'", "--chart-dir")
    ok(*args, "--db", db, "--chart-dir", str(charts))


def test_a_chart_replacing_a_bundled_one_warns_once_and_charts_shows_its_file(
    tmp_path: Path,
) -> None:
    mine = tmp_path / "stripe.yaml"
    mine.write_bytes((bundled_chart_dir() / "stripe.yaml").read_bytes())
    listed = ok("charts", "--chart-dir", str(tmp_path))
    warnings = [line for line in listed.stderr.splitlines() if line.startswith("Warning:")]
    assert warnings == [
        f"Warning: {mine} replaces the bundled chart 'stripe' "
        "(`invoice-engine charts` shows which file each name uses)"
    ]
    row = next(line for line in listed.stdout.splitlines() if line.startswith("stripe "))
    assert f"{mine} (replaces the bundled chart)" in row
    assert "(bundled)" in next(ln for ln in listed.stdout.splitlines() if ln.startswith("moxie"))
    rows = {
        r["name"]: r
        for r in json.loads(ok("charts", "--chart-dir", str(tmp_path), "--json").stdout)
    }
    assert (rows["stripe"]["path"], rows["stripe"]["replaces_bundled"]) == (
        str(mine.resolve()),
        True,
    )
    assert (rows["moxie"]["bundled"], rows["moxie"]["replaces_bundled"]) == (True, False)
    shown = ok("show", "stripe", "--chart-dir", str(tmp_path))
    assert shown.stderr.count("Warning:") == 1
    assert ok("charts").stderr == ""  # nothing replaced, nothing said


# -------------------------------------------------------------------- item 3: --json and words


def test_diagram_json_is_the_drawing_in_an_object() -> None:
    plain = ok("diagram", "stripe").stdout
    doc = json.loads(ok("diagram", "stripe", "--json").stdout)
    assert doc == {"format": "mermaid", "provider": "stripe", "invoice": None, "text": plain}
    scxml = json.loads(ok("diagram", "stripe", "-f", "scxml", "--json").stdout)
    assert scxml["format"] == "scxml"
    assert scxml["text"] == ok("diagram", "stripe", "-f", "scxml").stdout


def test_diagram_json_with_output_names_the_file(tmp_path: Path) -> None:
    out = tmp_path / "s.mmd"
    doc = json.loads(ok("diagram", "stripe", "-o", str(out), "--json").stdout)
    assert doc == {"format": "mermaid", "provider": "stripe", "invoice": None, "output": str(out)}
    assert out.read_text(encoding="utf-8") == ok("diagram", "stripe").stdout


def test_schema_json_is_the_schema() -> None:
    assert json.loads(ok("schema", "--json").stdout) == json.loads(ok("schema").stdout)


@pytest.mark.parametrize(
    "args",
    [
        ["state", "stripe", "in_x"],
        ["history", "stripe", "in_x"],
        ["replay"],
        ["diagram", "stripe", "--invoice", "in_x"],
        ["show", "strpe"],
        ["check", "strpe", "pay"],
        ["diagram", "strpe"],
        ["apply", "strpe", "-"],
        ["charts", "--chart-dir", "BROKEN"],
        ["lint", "strpe"],
    ],
    ids=lambda a: " ".join(a),
)
def test_an_error_under_json_is_one_error_line_and_nothing_on_stdout(
    args: list[str], tmp_path: Path
) -> None:
    db = str(tmp_path / "missing.db")
    if "BROKEN" in args:  # a chart that can't even be listed: a file that is not a folder
        (tmp_path / "f").write_text("")
        args = [a.replace("BROKEN", str(tmp_path / "f")) for a in args]
        result = run(*args, "--json")
        assert (result.exit_code, result.stdout) == (2, "")  # a usage error: click's own
        return
    with_db = ["--db", db] if args[0] in {"state", "history", "replay", "diagram", "apply"} else []
    result = run(*args, *with_db, "--json", input="")
    assert_error(result, 1)


def test_an_illegal_check_under_json_prints_the_answer_and_an_error_line() -> None:
    result = run("check", "stripe", "finalize", "finalize", "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["legal"] is False
    assert result.stderr.startswith("Error: step 2 of 2: ")


@pytest.mark.parametrize("command", ["apply", "state", "history", "replay", "diagram"])
def test_db_help_names_its_environment_variable(command: str) -> None:
    assert "INVOICE_ENGINE_DB" in ok(command, "--help").stdout


def test_a_byte_order_mark_is_not_a_bad_first_line(tmp_path: Path) -> None:
    src = tmp_path / "bom.jsonl"
    src.write_bytes(b"\xef\xbb\xbf" + stripe_event(1, "in_1").encode() + b"\n")
    doc = apply_json(
        ok("apply", "stripe", str(src), "--db", str(tmp_path / "b.db"), "--json").stdout
    )
    assert doc.summary["counts"] == {"applied": 1}
    assert _db.bodies(tmp_path / "b.db") == [stripe_event(1, "in_1").encode()]


def test_counts_are_in_words(tmp_path: Path) -> None:
    assert (plural(1, "invoice"), plural(2, "invoice")) == ("1 invoice", "2 invoices")
    assert (plural(1, "delivery"), plural(3, "delivery")) == ("1 delivery", "3 deliveries")
    assert plural(2, "mismatch") == "2 mismatches"
    db = str(tmp_path / "w.db")
    src = tmp_path / "one.jsonl"
    src.write_text(
        stripe_event(1, "in_1") + "\n" + stripe_event(2, "in_1", "finalized") + "\n{no\n"
    )
    strict = run("apply", "stripe", str(src), "--db", db, "--strict")
    assert strict.exit_code == 1
    assert "--strict: 1 delivery ended rejected or invalid" in strict.stderr
    assert ok("replay", "--db", db).stdout == "replayed 2 events over 1 invoice: no mismatch\n"
    broken = tmp_path / "charts"
    broken.mkdir()
    (broken / "acme.yaml").write_text(ACME.replace("transitions:", "transitons:"))
    listed = ok("charts", "--chart-dir", str(broken)).stdout
    assert f"(and 1 more problem: invoice-engine lint {broken / 'acme.yaml'})" in listed
    linted = run("lint", str(broken / "acme.yaml"))
    assert linted.stdout.splitlines()[-1] == "1 chart: 2 errors, 0 warnings"


def test_demo_clips_reasons_at_a_word_boundary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert clip("an event for an invoice that does not exist yet", 30) == (
        "an event for an invoice that…"
    )
    assert clip("x" * 50, 10) == "x" * 9 + "…"  # one long word: cut it, there is no boundary
    monkeypatch.chdir(tmp_path)
    full = json.loads(ok("demo", "--json").stdout)["providers"]
    reasons = [p["reason"] for r in full.values() for p in r["problems"][:3]]
    shown = [
        line.split(": ", 1)[1]
        for line in ok("demo").stdout.splitlines()
        if line.startswith("  line ")
    ]
    assert len(shown) == len(reasons)
    assert any(s.endswith("…") for s in shown), "no reason long enough to clip"
    for text, reason in zip(shown, reasons, strict=True):
        if text.endswith("…"):
            head = text[:-1]
            assert reason.startswith(head)
            assert not reason[len(head)].isalnum(), (head, reason)  # the cut is between words


# -------------------------------------------------------------------- item 3: Ctrl-C in apply


def test_ctrl_c_during_apply_says_what_is_committed_and_a_rerun_continues(
    tmp_path: Path,
) -> None:
    db = tmp_path / "int.db"
    lines = [stripe_event(i, f"in_{i}") + "\n" for i in range(2_500)]
    out = (tmp_path / "out.txt").open("wb")
    args = [str(CLI), "apply", "stripe", "-", "--db", str(db)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("INVOICE_ENGINE")}
    with subprocess.Popen(
        args, stdin=subprocess.PIPE, stdout=out, stderr=subprocess.PIPE, env=env
    ) as proc:
        assert proc.stdin is not None
        assert proc.stderr is not None
        proc.stdin.write("".join(lines).encode())  # a first batch (2,000) and 500 more …
        proc.stdin.flush()  # … then the stream stalls, as a slow producer's would
        deadline = time.monotonic() + 60
        while (_db.count_rows_read_only(db) or 0) < 2_000:
            assert time.monotonic() < deadline, "the first batch never committed"
            time.sleep(0.05)
        time.sleep(0.5)  # committed; let the loop finish counting it and wait for more input
        proc.send_signal(signal.SIGINT)
        err = proc.stderr.read().decode()
        proc.stdin.close()
    out.close()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert err.strip() == (
        "Interrupted: lines 1 to 2,000 of '<stdin>' are committed (2,000 deliveries); run the "
        "same command again to continue: those come back as duplicates, the rest are applied."
    )
    src = tmp_path / "all.jsonl"
    src.write_text("".join(lines))
    again = apply_json(ok("apply", "stripe", str(src), "--db", str(db), "--json").stdout)
    assert again.summary["counts"] == {"duplicate": 2_000, "applied": 500}
    assert _db.doubled_live_events(db) == []


# --------------------------------------------------------------- item 4: output can't be forged

HOSTILE_ID = "in_1\nstripe/in_9: paid (paid), v9\r\x1b[2J\x9b2J\x07\u2028\u202e"
FORGED = "stripe/in_9: paid"


def _unforgeable(text: str) -> None:
    """No control character but the newlines between lines, and no forged line."""
    for line in text.splitlines():
        assert not line.lstrip().startswith(FORGED), line
        hidden = [c for c in line if unicodedata.category(c) in {"Cc", "Cf", "Zl", "Zp"}]
        assert hidden == [], (hidden, line)
    assert "\r" not in text


def test_hostile_ids_types_and_reasons_are_escaped_in_every_human_output(tmp_path: Path) -> None:
    db = str(tmp_path / "h.db")
    src = tmp_path / "h.jsonl"
    src.write_text(
        "\n".join(
            [
                stripe_event(1, HOSTILE_ID),
                stripe_event(2, HOSTILE_ID, kind="finalized\x1b]0;owned\x07", status="open"),
                stripe_event(3, HOSTILE_ID, kind="voided", status="void"),
                stripe_event(4, HOSTILE_ID, kind="paid", status="paid"),  # rejected: listed
                stripe_event(5, HOSTILE_ID, kind="voided", status="void\n\x9b"),  # invalid
            ]
        )
        + "\n"
    )
    applied = ok("apply", "stripe", str(src), "--db", db)
    state = ok("state", "stripe", HOSTILE_ID, "--db", db)
    history = ok("history", "stripe", HOSTILE_ID, "--db", db)
    replay = ok("replay", "--db", db)
    for result in (applied, state, history, replay):
        _unforgeable(result.stdout)
        _unforgeable(result.stderr)
    escaped = "in_1\\nstripe/in_9: paid (paid), v9\\r\\x1b[2J\\x9b2J\\x07\\u2028\\u202e"
    assert state.stdout.startswith(f"stripe/{escaped}: void (void), v")
    assert f"line 4: rejected {escaped} invoice.paid — " in applied.stdout
    assert "line 5: invalid" in applied.stdout
    assert "invoice.paid" in history.stdout
    # JSON stays exact
    exact = json.loads(ok("state", "stripe", HOSTILE_ID, "--db", db, "--json").stdout)
    assert exact["invoice_id"] == HOSTILE_ID
    outcomes = json.loads(ok("history", "stripe", HOSTILE_ID, "--db", db, "--json").stdout)
    assert {o["invoice_id"] for o in outcomes} == {HOSTILE_ID}
    lines = apply_json(ok("apply", "stripe", str(src), "--db", db, "--json").stdout)
    assert {o["invoice_id"] for o in lines.decided} == {HOSTILE_ID, None}
    missing = run("state", "stripe", HOSTILE_ID + "x", "--db", db)
    assert missing.exit_code == 1
    _unforgeable(missing.stderr)


def test_visible_escapes_what_does_not_print_and_keeps_the_rest() -> None:
    assert visible("in_1\n\r\t\x1b\x9b\x07\u2028\u2029\u202e\U000e0001") == (
        "in_1\\n\\r\\t\\x1b\\x9b\\x07\\u2028\\u2029\\u202e\\U000e0001"
    )
    assert visible("Zürich — 請求書 €5 ∅ → draft") == "Zürich — 請求書 €5 ∅ → draft"
    # a real newline and a written backslash-n never print the same
    assert visible("i\n1") != visible("i\\n1")
    assert visible("i\\n1") == "i\\\\n1"


# ------------------------------------------------------------------ hostile chart folders (a)


@pytest.fixture
def hostile_charts(tmp_path: Path) -> Path:
    folder = tmp_path / "hostile"
    folder.mkdir()
    (folder / "deep.yaml").write_text("provider: deep\nstates: " + "[" * 5_000 + "]" * 5_000)
    nested = "{name: leaf, canonical: draft}"
    for i in range(400):
        nested = f"{{name: n{i}, canonical: draft, states: [{nested}]}}"
    (folder / "tall.yaml").write_text(f"provider: tall\ninitial: n399\nstates:\n  - {nested}\n")
    (folder / "loop.yaml").symlink_to("loop.yaml")
    (folder / "dangling.yaml").symlink_to("nowhere.yaml")
    (folder / "acme.yaml").write_text(ACME.replace("CANONICAL", "void"))
    return folder


WHY = {
    "deep": "nested too deeply",
    "tall": "nested too deeply",
    "loop": "symlink loop",
    "dangling": "symlink to 'nowhere.yaml', which does not exist",
}


def test_charts_lists_charts_that_cannot_load_with_their_error(hostile_charts: Path) -> None:
    rows = {
        r["name"]: r
        for r in json.loads(ok("charts", "--chart-dir", str(hostile_charts), "--json").stdout)
    }
    assert rows["acme"]["states"] == 4
    for name, why in WHY.items():
        assert why in rows[name]["error"], rows[name]
        assert f"{name}.yaml" in rows[name]["path"]
    text = ok("charts", "--chart-dir", str(hostile_charts)).stdout
    assert "This is a bug" not in text


@pytest.mark.parametrize("name", sorted(WHY))
def test_a_chart_that_cannot_load_is_a_chart_error_naming_its_file(
    name: str, hostile_charts: Path, tmp_path: Path
) -> None:
    with pytest.raises(ChartError, match=WHY[name]) as caught:
        load_chart(name, hostile_charts)
    assert caught.value.source.endswith(f"{name}.yaml")
    with pytest.raises(ChartError, match=WHY[name]):
        load_chart(hostile_charts / f"{name}.yaml")
    linted = run("lint", name, "--chart-dir", str(hostile_charts))
    assert linted.exit_code == 1
    assert f"{name}.yaml: error:" in linted.stdout  # PATH[:LINE:COL]: error: …
    assert "[invalid]" in linted.stdout
    db = str(tmp_path / "x.db")
    assert_error(
        run("apply", name, "-", "--db", db, "--chart-dir", str(hostile_charts), input=""),
        1,
        f"{name}.yaml",
        WHY[name],
    )


# ------------------------------------------------------------------------ check --payload (b)


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ("[]", "is an array; a payload is a JSON object"),
        ("NaN", "NaN is not JSON"),
        ('{"due": NaN}', "NaN is not JSON"),
        ('{"due": -Infinity}', "-Infinity is not JSON"),
        ('{"due": 1e999}', "too large"),
        ("null", "is null"),
        ('"x"', "is a string"),
        ("3", "is a number"),
    ],
    ids=lambda v: v[:12],
)
def test_check_payload_must_be_a_json_object(payload: str, why: str) -> None:
    result = run("check", "stripe", "finalize", "--payload", payload)
    assert result.exit_code == 2, result.stderr
    assert why in result.stderr
    assert "unexpected" not in result.stderr
    named = payload if len(payload) <= 40 else payload[:39] + "…"
    assert repr(named) in result.stderr  # the message names the value


# ------------------------------------------------------------------ an envelope's exact body (c)


@pytest.mark.parametrize(
    "body",
    [
        '{"id":"evt_1","type":"invoice.created","created":1700000000,'
        '"data":{"object":{"id":"in_1","status":"draft","amount":0.10,"tax":1E+2}}}',
        '{ "id" : "evt_2", "type": "invoice.created", "created": 1700000000,\t'
        '"data": {"object": {"id": "in_2", "status": "draft", "huge": 1e400, "é": "\\u00e9"}} }',
    ],
    ids=["numbers", "huge"],
)
def test_an_envelopes_body_is_stored_as_the_text_it_was_written_as(
    body: str, tmp_path: Path
) -> None:
    db = str(tmp_path / "e.db")
    headers = '{"X-Note": "\\"body\\": {\\"fake\\": 1}", "Content-Type": "application/json"}'
    src = tmp_path / "e.jsonl"
    src.write_text(f'{{"headers": {headers}, "body":  {body} }}\n', encoding="utf-8")
    result = ok("apply", "stripe", str(src), "--db", db, "--json")
    assert apply_json(result.stdout).summary["deliveries"] == 1
    assert _db.bodies(db) == [body.encode("utf-8")]


def test_a_body_before_its_headers_and_a_repeated_body_key(tmp_path: Path) -> None:
    first, last = stripe_event(1, "in_1"), stripe_event(2, "in_2").replace(" ", "  ")
    src = tmp_path / "e.jsonl"
    src.write_text(f'{{"body": {first}, "headers": {{}}, "body": {last}}}\n')
    ok("apply", "stripe", str(src), "--db", str(tmp_path / "e.db"))
    assert _db.bodies(tmp_path / "e.db") == [last.encode()]  # the last one, as JSON reads it


# ---------------------------------------------------------- item 9: the bundled example streams


def test_apply_example_applies_the_bundled_stream(tmp_path: Path) -> None:
    db = str(tmp_path / "x.db")
    by_name = apply_json(ok("apply", "stripe", "--example", "--db", db, "--json").stdout)
    stream = ok("demo", "--print-stream", "stripe").stdout_bytes
    assert stream == (ROOT / "examples" / "streams" / "stripe.jsonl").read_bytes()
    by_file = apply_json(
        ok("apply", "stripe", "-", "--db", str(tmp_path / "y.db"), "--json", input=stream).stdout
    )
    assert by_name.summary == by_file.summary
    assert "Example: invoice-engine apply stripe --example" in ok("apply", "--help").stdout


@pytest.mark.parametrize(
    ("args", "why"),
    [
        (["apply", "stripe"], "give FILE"),
        (["apply", "stripe", "-", "--example"], "not both"),
        (["demo", "--print-stream", "nope"], "'nope' is not one of the bundled streams"),
    ],
)
def test_example_streams_misused_are_usage_errors(args: list[str], why: str) -> None:
    result = run(*args, input="")
    assert result.exit_code == 2
    assert why in result.stderr


def test_apply_example_of_a_chart_without_one_lists_those_there_are(
    acme: tuple[Path, Path, str],
) -> None:
    charts, _, db = acme
    result = run("apply", "acme", "--example", "--db", db, "--chart-dir", str(charts))
    assert result.exit_code == 2
    assert "no bundled example stream for 'acme'; there are: chargeover" in result.stderr
