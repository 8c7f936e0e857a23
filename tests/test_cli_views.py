"""The operator views on the command line: invoices, dead-letters, drift.

Each reads the database without writing to it, prints an aligned table (or one JSON document
with ``--json``), and says so in words when there is nothing: exit 0, except ``drift``, which
exits 1 when any invoice drifts so that a cron job or a monitor notices.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import _db
import pytest
from click.testing import CliRunner, Result
from test_cli_charts import ACME
from test_cli_errors import assert_error, snapshot

from engine import Engine
from engine.cli import main
from engine.cli._run import read_jsonl

ROOT = Path(__file__).resolve().parent.parent
STRIPE = ROOT / "examples" / "streams" / "stripe.jsonl"
DRIFTING = "in_1PqA8sDemo0005"  # paid, then an invoice.voided the chart refuses


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def run_json(*args: str, code: int = 0) -> Any:
    res = run(*args, "--json")
    assert res.exit_code == code, res.output
    return json.loads(res.stdout)


def table_rows(text: str) -> list[list[str]]:
    """The cells of an aligned table: split where the dashes under the headers end."""
    lines = text.rstrip("\n").splitlines()
    assert re.fullmatch(r"-+( +-+)*", lines[1]), lines[1]
    starts = [m.start() for m in re.finditer(r"-+", lines[1])]
    cuts = [*starts[1:], None]
    return [[line[a:b].strip() for a, b in zip(starts, cuts, strict=True)] for line in lines]


@pytest.fixture
def stripe_db(make_db: _db.Databases) -> str:
    """A database (SQLite file or PostgreSQL schema) holding the stripe example stream."""
    db = make_db(shared=True)
    with Engine(db) as eng, STRIPE.open("rb") as f:
        eng.apply_many("stripe", read_jsonl(f))
    return db


def rejected_db(db: str) -> str:
    """Two dead letters: stripe events about invoices not seen, under on_unknown=reject."""
    with Engine(db, on_unknown="reject") as eng:
        for eid, inv, at in (("evt_b", "in_b", 200), ("evt_a", "in_a", 100)):
            body = {"id": eid, "type": "invoice.paid", "created": at,
                    "data": {"object": {"id": inv, "status": "paid"}}}  # fmt: skip
            assert eng.apply("stripe", body).status == "rejected"
    return db


# ------------------------------------------------------------------------------- invoices


def test_invoices_table_and_json(stripe_db: str) -> None:
    res = run("invoices", "--db", stripe_db)
    assert res.exit_code == 0, res.output
    rows = table_rows(res.stdout)
    assert rows[0] == ["provider", "invoice", "state", "canonical", "version", "updated"]
    with Engine(stripe_db, readonly=True) as eng:
        stored = list(eng.invoices())
    assert [r[:5] for r in rows[2:]] == [
        [i.provider, i.invoice_id, i.state, i.canonical, str(i.version)] for i in stored
    ]
    assert run_json("invoices", "--db", stripe_db) == [i.model_dump(mode="json") for i in stored]


def test_invoices_filters(stripe_db: str) -> None:
    def ids(*args: str) -> list[str]:
        return [i["invoice_id"] for i in run_json("invoices", *args, "--db", stripe_db)]

    assert ids("stripe", "--state", "deleted") == ["in_1PqA8sDemo0004"]
    assert ids("--canonical", "void") == ["in_1PqA8sDemo0003", "in_1PqA8sDemo0004"]
    assert ids("stripe", "--state", "void", "--canonical", "void") == ["in_1PqA8sDemo0003"]
    assert ids("--canonical", "paid", "--limit", "2") == ["in_1PqA8sDemo0001", "in_1PqA8sDemo0002"]
    assert ids("--state", "closed.paid") == []  # chargeover's state: known, nobody in it
    res = run("invoices", "stripe", "--state", "open", "--db", stripe_db)
    assert (res.exit_code, res.stdout) == (0, "no invoices\n")


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["stripe", "--state", "closed"], 1, ["Unknown state 'closed' in chart 'stripe'", "draft"]),
        (["--state", "nope"], 1, ["Unknown state 'nope': no chart has it", "closed.paid"]),
        (["stripe", "--canonical", "Paid"], 1, ["Unknown canonical state 'Paid'", "paid"]),
        (["strpe"], 1, ["Unknown provider 'strpe'", "Available: chargeover"]),
        (["--limit", "0"], 2, ["--limit"]),
        (["--state", "\udcff"], 2, ["is not valid UTF-8"]),
    ],
)
def test_invoices_refuses_what_no_chart_has(
    args: list[str], code: int, words: list[str], stripe_db: str
) -> None:
    assert_error(run("invoices", *args, "--db", stripe_db), code, *words)


def test_invoices_of_a_users_chart(tmp_path: Path) -> None:
    charts = tmp_path / "charts"
    charts.mkdir()
    (charts / "acme.yaml").write_text(ACME.replace("CANONICAL", "void"), encoding="utf-8")
    db = str(tmp_path / "acme.db")
    with Engine(db, chart_dir=charts) as eng:
        eng.apply("acme", {"type": "created", "id": "e1", "invoice": "i1", "at": 1})
    by_dir = run_json("invoices", "--state", "draft", "--db", db, "--chart-dir", str(charts))
    assert [i["invoice_id"] for i in by_dir] == ["i1"]
    by_path = run_json("invoices", str(charts / "acme.yaml"), "--canonical", "draft", "--db", db)
    assert by_path == by_dir
    assert_error(run("invoices", "acme", "--db", db), 1, "--chart-dir")


# --------------------------------------------------------------------------- dead letters


def test_dead_letters_table_json_and_limit(make_db: _db.Databases) -> None:
    db = rejected_db(make_db(shared=True))
    res = run("dead-letters", "--db", db)
    assert res.exit_code == 0, res.output
    rows = table_rows(res.stdout)
    assert rows[0] == ["seq", "provider", "invoice", "event id", "type", "received", "reason"]
    assert [r[:5] for r in rows[2:]] == [
        ["#1", "stripe", "in_b", "evt_b", "invoice.paid"],
        ["#2", "stripe", "in_a", "evt_a", "invoice.paid"],
    ]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", r[5]) for r in rows[2:])
    assert all("does not create it" in r[6] for r in rows[2:])
    doc = run_json("dead-letters", "stripe", "--db", db)
    assert [(o["seq"], o["status"], o["retryable"]) for o in doc] == [
        (1, "rejected", True),
        (2, "rejected", True),
    ]
    assert [o["event_id"] for o in run_json("dead-letters", "--limit", "1", "--db", db)] == [
        "evt_b"
    ]
    res = run("dead-letters", "pelcro", "--db", db)
    assert (res.exit_code, res.stdout) == (0, "no dead letters\n")
    assert_error(run("dead-letters", "--limit", "-1", "--db", db), 2, "--limit")
    assert_error(run("dead-letters", "strpe", "--db", db), 1, "Unknown provider 'strpe'")


# ---------------------------------------------------------------------------------- drift


def test_drift_exits_1_and_lists_what_drifts(stripe_db: str) -> None:
    res = run("drift", "--db", stripe_db)
    assert res.exit_code == 1, res.output
    rows = table_rows(res.stdout)
    assert rows[0][:4] == ["provider", "invoice", "engine", "provider says"]
    assert rows[2] == [
        "stripe", DRIFTING, "paid", "void", "#21", "invoice.voided", "2024-06-01 02:01:40",
        "rejected",
    ]  # fmt: skip
    assert len(rows) == 3
    assert "Error: found drift on 1 invoice" in res.stderr
    assert f"invoice-engine history stripe {DRIFTING}" in res.stderr
    (doc,) = run_json("drift", "stripe", "--db", stripe_db, code=1)
    assert (doc["invoice_id"], doc["snapshot"], doc["state"]) == (DRIFTING, "void", "paid")
    assert doc["event_seq"] == 21


def test_no_drift_exits_0(stripe_db: str, make_db: _db.Databases) -> None:
    res = run("drift", "pelcro", "--db", stripe_db)
    assert (res.exit_code, res.stdout) == (0, "no drift\n")
    assert run_json("drift", "upmind", "--db", stripe_db) == []
    assert_error(run("drift", "strpe", "--db", stripe_db), 1, "Unknown provider 'strpe'")


def test_drift_speaks_the_providers_vocabulary(tmp_path: Path) -> None:
    db = str(tmp_path / "co.db")
    stream = ROOT / "examples" / "streams" / "chargeover.jsonl"
    assert run("apply", "chargeover", str(stream), "--db", db).exit_code == 0
    res = run("drift", "chargeover", "--db", db)
    assert res.exit_code == 1
    said = {r[1]: r[3] for r in table_rows(res.stdout)[2:]}
    assert said["10021"] == "closed-void (= closed.void)"


# ----------------------------------------------------------------- reads never write


VIEWS = [["invoices"], ["invoices", "stripe", "--state", "paid"], ["dead-letters"], ["drift"]]


@pytest.mark.parametrize("args", VIEWS, ids=lambda a: "-".join(a))
def test_a_view_leaves_the_database_file_as_it_was(args: list[str], tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    with Engine(db) as eng, STRIPE.open("rb") as f:
        eng.apply_many("stripe", read_jsonl(f))
    before = db.read_bytes()
    res = run(*args, "--db", str(db))
    assert res.exit_code == (1 if args == ["drift"] else 0), res.output
    assert db.read_bytes() == before
    wal = tmp_path / "s.db-wal"  # a reader in WAL mode may leave the companion files, empty
    assert not wal.exists() or wal.read_bytes() == b""


@pytest.mark.parametrize("args", VIEWS, ids=lambda a: "-".join(a))
def test_a_view_of_a_missing_database_creates_nothing(args: list[str], tmp_path: Path) -> None:
    assert_error(run(*args, "--db", str(tmp_path / "nope.db")), 1, "no database at", "nope.db")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args", VIEWS, ids=lambda a: "-".join(a))
def test_a_view_reads_an_older_database_as_it_is(args: list[str], tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    _db.make_version_1_database(path)
    before = snapshot(tmp_path)
    res = run(*args, "--db", str(path))
    assert res.exit_code == 0, res.output
    assert snapshot(tmp_path) == before  # not upgraded, no WAL switch, no new file


# ----------------------------------------------------------------------------- the README


def _readme_text_sessions() -> list[tuple[list[str], list[str]]]:
    """The ``$ invoice-engine`` commands of the README's ``text`` blocks, with what it shows
    under each (stdout, then an ``Error:`` line)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    found: list[tuple[list[str], list[str]]] = []
    for block in re.findall(r"^```text\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE):
        for line in block.splitlines():
            if line.startswith("$ invoice-engine "):
                found.append((line[2:].split()[1:], []))
            elif found:
                found[-1][1].append(line)
    return found


def test_the_readmes_operator_views_print_what_it_shows(tmp_path: Path) -> None:
    db = tmp_path / "invoices.db"
    assert run("apply", "stripe", str(STRIPE), "--db", str(db)).exit_code == 0
    sessions = _readme_text_sessions()
    assert {args[0] for args, _ in sessions} >= {"invoices", "drift"}
    for args, shown in sessions:
        res = run(*args, "--db", str(db))
        lines = res.stdout.rstrip("\n").splitlines()
        if res.exit_code:
            lines.append(res.stderr.rstrip("\n"))
        assert res.exit_code == (1 if args[0] == "drift" else 0), res.output
        if "updated" in shown[0]:  # the time `apply` ran: cut the column off
            cut = shown[0].index("updated")
            lines, shown = [x[:cut] for x in lines], [x[:cut] for x in shown]
        assert lines == shown, args
