"""What the engine commands report: final outcomes, --strict, streaming --json, replay's exit.

``apply`` and ``demo`` count outcomes as they stand after the run (a later line can revise an
earlier one's); ``apply --json`` prints JSON lines as batches commit, so memory stays flat;
``replay`` exits 0 only when the stored state agrees with the events.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tracemalloc
from pathlib import Path

import _db
import pytest
from _cli import apply_json
from click.testing import CliRunner, Result
from test_cli_charts import ACME

from engine import Engine
from engine.cli import main
from engine.models import Mismatch, ReplayReport

STREAMS = Path(__file__).resolve().parent.parent / "examples" / "streams"
PELCRO = STREAMS / "pelcro.jsonl"  # later lines revise two earlier outcomes
STRIPE = STREAMS / "stripe.jsonl"


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def _table_counts(text: str) -> dict[str, int]:
    """The outcome → deliveries table ``apply`` prints."""
    found = re.findall(r"^(applied|unchanged|duplicate|rejected|invalid)\s+(\d+)$", text, re.M)
    return {status: int(n) for status, n in found}


def _stored_counts(db: Path | str, provider: str) -> dict[str, int]:
    with Engine(db, readonly=True) as eng:
        return {k: v for k, v in eng.counts(provider).items() if v}


# ---------------------------------------------------------------- F: final, not first decided


def test_apply_summary_counts_outcomes_as_they_stand_after_the_run(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    res = run("apply", "pelcro", str(PELCRO), "--db", str(db))
    assert res.exit_code == 0, res.output
    assert _table_counts(res.stdout) == _stored_counts(db, "pelcro")
    assert _table_counts(res.stdout)["applied"] == 9  # 11 as first decided
    assert "2 outcomes were revised by later deliveries" in res.stdout
    listed = re.findall(r"^  line (\d+): (\w+)", res.stdout, re.M)
    final = {r.seq: r.outcome for r in _db.events(db)}
    assert listed
    assert all(final[int(line)] == status for line, status in listed)  # one file, no blanks


def test_apply_json_ends_with_each_lines_final_outcome(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    src = tmp_path / "gaps.jsonl"  # blank lines: line numbers and seqs part ways
    src.write_text("\n\n" + PELCRO.read_text().replace("\n", "\n\n", 3))
    res = run("apply", "pelcro", str(src), "--db", str(db), "--json")
    assert res.exit_code == 0, res.output
    doc = apply_json(res.stdout)
    stored = _db.events(db)
    final = doc.final()
    assert [final[line]["status"] for line in sorted(final)] == [r.outcome for r in stored]
    assert [final[line]["seq"] for line in sorted(final)] == [r.seq for r in stored]
    lines = [i for i, t in enumerate(src.read_text().splitlines(), 1) if t.strip()]
    assert sorted(final) == lines
    assert len(doc.revised) == doc.summary["revised"] == 2
    assert all(r["revisions"] >= 1 for r in doc.revised)
    assert doc.summary["counts"] == _stored_counts(db, "pelcro")
    assert doc.summary["deliveries"] == len(stored)


def test_demo_counts_are_final(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    res = run("demo", "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    for provider, result in doc["providers"].items():
        assert result["counts"] == _stored_counts(doc["db"], provider), provider
    assert doc["providers"]["pelcro"]["revised"] == 2
    text = run("demo").stdout
    assert "pelcro: 17 deliveries — 9 applied, 5 unchanged" in text
    assert "2 outcomes were revised by later deliveries" in text


# --------------------------------------------------------------------------- E: --strict


def test_strict_exits_1_when_any_delivery_ends_rejected_or_invalid(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n{}\n")
    db = str(tmp_path / "s.db")
    assert run("apply", "stripe", str(bad), "--db", db).exit_code == 0  # the default: report
    res = run("apply", "stripe", str(bad), "--db", db, "--strict")
    assert res.exit_code == 1
    assert "Error: --strict: 2 deliveries ended rejected or invalid" in res.stderr
    assert _table_counts(res.stdout) == {"invalid": 2}  # the summary is still printed
    assert len(_db.events(db)) == 4  # every line applied before the verdict
    as_json = run("apply", "stripe", str(bad), "--db", db, "--strict", "--json")
    assert as_json.exit_code == 1
    assert apply_json(as_json.stdout).summary["rejected_or_invalid"] == 2


def test_strict_passes_a_clean_stream(tmp_path: Path) -> None:
    clean = tmp_path / "clean.jsonl"
    clean.write_text(STRIPE.read_text().splitlines()[0] + "\n")
    res = run("apply", "stripe", str(clean), "--db", str(tmp_path / "c.db"), "--strict")
    assert res.exit_code == 0, res.output


def test_strict_and_json_lines_are_documented() -> None:
    text = run("apply", "--help").stdout
    assert "--strict" in text
    assert "Exit 1 if any delivery ends rejected or invalid" in text
    assert '{"kind": "summary"' in text


# --------------------------------------------------------------- G: --json memory stays flat


def _peak_bytes(tmp_path: Path, lines: int) -> int:
    src = tmp_path / f"{lines}.jsonl"
    with src.open("w") as f:
        for i in range(lines):
            obj = {"id": f"in_{i}", "status": "draft"}
            body = {"id": f"evt_{i}", "type": "invoice.created", "created": 1_700_000_000 + i}
            f.write(json.dumps({**body, "data": {"object": obj}}) + "\n")
    args = ["apply", "stripe", str(src), "--db", str(tmp_path / f"{lines}.db"), "--json"]
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        tracemalloc.start()
        try:
            main.main(args, standalone_mode=False)
        finally:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
    return peak


def test_apply_json_memory_does_not_grow_with_the_stream(tmp_path: Path) -> None:
    _peak_bytes(tmp_path, 10)  # charts loaded, caches warm
    small = _peak_bytes(tmp_path, 4_000)  # two batches of 2,000
    large = _peak_bytes(tmp_path, 8_000)  # twice as many lines
    assert large < small + 1_500_000, (small, large)  # holding every outcome: ~+6 MB


# ---------------------------------------------------------------------------- H: replay


@pytest.fixture
def stripe_db(tmp_path: Path) -> str:
    db = str(tmp_path / "r.db")
    assert run("apply", "stripe", str(STRIPE), "--db", db).exit_code == 0
    return db


def test_replay_repair_of_a_lost_invoice_row(stripe_db: str) -> None:
    _db.delete_invoice_behind_the_engine(stripe_db, "in_1PqA8sDemo0001")
    res = run("replay", "--db", stripe_db)
    assert res.exit_code == 1
    assert "in_1PqA8sDemo0001" in res.stdout
    assert "Error: replay found 1 mismatch" in res.stderr
    fixed = run("replay", "--db", stripe_db, "--repair", "--json")
    assert fixed.exit_code == 0, fixed.output
    assert json.loads(fixed.stdout)["ok"] is True
    assert run("replay", "--db", stripe_db).exit_code == 0


def test_replay_repair_that_leaves_mismatches_exits_1_and_lists_them(
    stripe_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    stuck = Mismatch(provider="stripe", invoice_id="in_x", what="state", stored="a", replayed="b")

    def partial(*_: object, **__: object) -> ReplayReport:
        return ReplayReport(
            invoices=1, events=1, mismatches=[stuck], repaired=True, unrepaired=[stuck]
        )

    monkeypatch.setattr(Engine, "replay", partial)
    res = run("replay", "--db", stripe_db, "--repair")
    assert res.exit_code == 1
    assert "could not repair 1" in res.stdout
    assert "stripe/in_x: state" in res.stdout
    assert "Error: replay could not repair 1 mismatch" in res.stderr
    as_json = run("replay", "--db", stripe_db, "--repair", "--json")
    assert as_json.exit_code == 1
    assert json.loads(as_json.stdout)["unrepaired"][0]["invoice_id"] == "in_x"


def test_replay_rechart_redecides_history_under_an_edited_chart(tmp_path: Path) -> None:
    charts = tmp_path / "charts"
    charts.mkdir()
    chart = charts / "acme.yaml"
    chart.write_text(ACME.replace("CANONICAL", "void"), encoding="utf-8")
    src = tmp_path / "acme.jsonl"
    src.write_text(
        '{"type": "created", "id": "e1", "invoice": "i1", "status": "draft", "at": 1700000000}\n'
        '{"type": "paid", "id": "e2", "invoice": "i1", "at": 1700000100}\n'
    )
    db = str(tmp_path / "a.db")
    common = ["--db", db, "--chart-dir", str(charts)]
    assert run("apply", "acme", str(src), *common).exit_code == 0
    # the edit: pay is now legal from draft
    chart.write_text(
        chart.read_text().replace(
            'source: open, dest: paid, guard: "$.due == 0"', "source: [draft, open], dest: paid"
        )
    )
    before = Path(db).read_bytes()
    noted = run("replay", *common)
    assert noted.exit_code == 0, noted.output
    assert "note: acme: 2 events were decided under an earlier chart" in noted.stdout
    assert Path(db).read_bytes() == before  # a replay without --repair/--rechart only reads
    res = run("replay", "--rechart", *common)
    assert res.exit_code == 0, res.output
    feed = run("changes", "--json", *common)  # the state it moved to, said as a rechart
    assert [(c["to_state"], c["kind"]) for c in json.loads(feed.stdout)][-1:] == [
        ("paid", "rechart")
    ]
    state = run("state", "acme", "i1", *common)
    assert "paid" in state.stdout
    again = run("replay", *common)
    assert again.exit_code == 0
    assert "note:" not in again.stdout


def test_replay_help_explains_rechart() -> None:
    text = run("replay", "--help").stdout
    assert "--rechart" in text
    assert "Re-decide all of history under the charts as they" in text
