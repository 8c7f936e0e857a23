"""The CLI's promises about failure: never a traceback, read commands never write.

Every failure is ``Error: …`` on stderr with exit code 1 (2 for usage errors); the commands
that only read (state, history, replay, diagram --invoice) open the database read-only, so any
file they are pointed at is left byte-for-byte as it was, and a missing one is not created.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import _db
import pytest
from click.testing import CliRunner, Result
from hypothesis import given
from hypothesis import strategies as st
from test_cli_charts import ACME

from engine import Engine
from engine.cli import main

STREAMS = Path(__file__).resolve().parent.parent / "examples" / "streams"
STRIPE = STREAMS / "stripe.jsonl"
PAID = "in_1PqA8sDemo0002"  # an invoice the stripe example stream pays
SIDECARS = ("-wal", "-shm", "-journal")


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner(env=env).invoke(main, list(args))


def assert_error(result: Result, code: int, *words: str) -> None:
    """A failure reported the promised way: one ``Error:`` on stderr, the exit code, no
    traceback, and the words that name what was wrong."""
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    assert "Error: " in result.stderr, result.stderr
    assert "unexpected" not in result.stderr, result.stderr  # a bug caught by the last resort
    for word in words:
        assert word in result.stderr, (word, result.stderr)


@pytest.fixture(scope="module")
def good_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database holding the stripe example stream (closed: no WAL files beside it)."""
    path = tmp_path_factory.mktemp("good") / "good.db"
    res = run("apply", "stripe", str(STRIPE), "--db", str(path))
    assert res.exit_code == 0, res.output
    return path


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every file and folder under ``folder``, with its bytes (``None`` for a folder)."""
    return {
        str(p.relative_to(folder)): None if p.is_dir() else p.read_bytes()
        for p in sorted(folder.rglob("*"))
    }


# ------------------------------------------------------------------- A: never a traceback


@pytest.fixture
def places(tmp_path: Path, good_db: Path) -> dict[str, str]:
    """Paths that bad input names: a file where a folder should be, another app's database."""
    (tmp_path / "afile").write_text("not a folder")
    _db.make_foreign_database(tmp_path / "other.db")
    db = tmp_path / "good.db"
    shutil.copyfile(good_db, db)
    return {"tmp": str(tmp_path), "db": str(db), "other": str(tmp_path / "other.db")}


# (arguments, exit code, words the error must say); {tmp}, {db} and {other} are filled in.
BAD_INPUT: list[tuple[list[str], int, list[str]]] = [
    (["schema", "-o", "{tmp}/missing/x.json"], 1, ["can't write", "missing/x.json"]),
    (["schema", "-o", "{tmp}"], 2, ["is a directory"]),
    (["diagram", "stripe", "-o", "{tmp}/missing/x.mmd"], 1, ["can't write", "missing/x.mmd"]),
    (["diagram", "strpe"], 1, ["Unknown provider 'strpe'"]),
    (["diagram", "stripe", "--invoice", "nope", "--db", "{db}"], 1, ["'nope'"]),
    (["diagram", "stripe", "--invoice", PAID, "--db", "{tmp}/x.db"], 1, ["no database at"]),
    (["apply", "stripe", str(STRIPE), "--db", "{tmp}/afile/x.db"], 1, ["afile", "is a file"]),
    (["apply", "stripe", str(STRIPE), "--db", ""], 1, ["no database named"]),
    (["apply", "stripe", str(STRIPE), "--db", "{tmp}/typo/x.db"], 1, ["typo", "does not exist"]),
    (["apply", "stripe", str(STRIPE), "--db", "mysql://u@h/db"], 1, ["'mysql' URLs"]),
    (["apply", "stripe", str(STRIPE), "--db", "{other}"], 1, ["'other.db' is not an invoice"]),
    (["apply", "stripe", str(STRIPE), "--db", "{tmp}"], 1, ["is a folder"]),
    (["apply", "stripe", "{tmp}/nope.jsonl", "--db", "{db}"], 2, ["nope.jsonl"]),
    (["apply", "stripe", "{tmp}", "--db", "{db}"], 2, ["FILE"]),
    (["apply", "strpe", str(STRIPE), "--db", "{db}"], 1, ["Unknown provider 'strpe'"]),
    (["apply", "stripe", str(STRIPE), "--on-unknown", "maybe"], 2, ["maybe"]),
    (["state", "stripe", "\udcff", "--db", "{db}"], 2, ["'\\udcff' is not valid UTF-8"]),
    (["history", "stripe", "in\udcfe", "--db", "{db}"], 2, ["is not valid UTF-8"]),
    (["state", "stripe", "in_nope", "--db", "{db}"], 1, ["no invoice 'in_nope'"]),
    (["state", "stripe", PAID, "--db", "{other}"], 1, ["'other.db' is not an invoice"]),
    (["history", "stripe", "in_nope", "--db", "{db}"], 1, ["'in_nope'"]),
    (["replay", "--db", "{tmp}/afile/x.db"], 1, ["no database at"]),
    (["replay", "--db", "{other}"], 1, ["'other.db' is not an invoice"]),
    (["replay", "--db", "{db}", "--on-unknown", "reject"], 2, ["--rechart"]),
    (["demo", "--db", "{tmp}/afile/x.db"], 1, ["is a file"]),
    (["demo", "--db", "{other}"], 1, ["'other.db' is not an invoice"]),
    (["show", "{tmp}/afile"], 1, ["afile"]),
    (["check", "stripe", "fly"], 1, ["Unknown trigger 'fly'"]),
    (["check", "stripe", "pay", "--payload", "{{"], 2, ["not JSON"]),
    (["lint", "nope"], 1, ["Unknown provider 'nope'"]),
    (["charts", "--chart-dir", "{tmp}/missing"], 2, ["missing"]),
    (["nonsense"], 2, ["No such command 'nonsense'"]),
]


@pytest.mark.parametrize(
    ("args", "code", "words"), BAD_INPUT, ids=[" ".join(a[:2]) for a, _, _ in BAD_INPUT]
)
def test_bad_input_is_one_error_line(
    args: list[str], code: int, words: list[str], places: dict[str, str]
) -> None:
    assert_error(run(*[a.format(**places) for a in args]), code, *words)


def test_an_os_error_anywhere_is_an_error_naming_the_file(
    monkeypatch: pytest.MonkeyPatch, places: dict[str, str]
) -> None:
    # What a read-only database file (chmod 444) does to apply when not run as root.
    def denied(*_: object, **__: object) -> None:
        raise PermissionError(13, "Permission denied", places["db"])

    monkeypatch.setattr(Engine, "iter_apply", denied)
    res = run("apply", "stripe", str(STRIPE), "--db", places["db"])
    assert_error(res, 1, "Permission denied", places["db"])


@pytest.mark.skipif(
    sys.platform == "win32" or os.geteuid() == 0, reason="root writes to a read-only file"
)
def test_apply_to_a_read_only_database_file(places: dict[str, str]) -> None:
    os.chmod(places["db"], 0o444)
    before = Path(places["db"]).read_bytes()
    assert_error(run("apply", "stripe", str(STRIPE), "--db", places["db"]), 1, "good.db")
    assert Path(places["db"]).read_bytes() == before


def test_a_bug_is_still_one_line_and_debug_shows_it(
    monkeypatch: pytest.MonkeyPatch, places: dict[str, str]
) -> None:
    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("oops")

    monkeypatch.setattr(Engine, "state", broken)
    res = run("state", "stripe", PAID, "--db", places["db"])
    assert res.exit_code == 1
    assert "Error: unexpected RuntimeError: oops" in res.stderr
    assert "INVOICE_ENGINE_DEBUG=1" in res.stderr
    debug = run("state", "stripe", PAID, "--db", places["db"], env={"INVOICE_ENGINE_DEBUG": "1"})
    assert isinstance(debug.exception, RuntimeError)


# ------------------------------------------------------------------ B: reads never write

Read = Callable[..., list[str]]  # (db, provider="stripe", invoice=PAID) -> arguments
READS: list[Read] = [
    lambda db, p="stripe", i=PAID: ["state", p, i, "--db", db],
    lambda db, p="stripe", i=PAID: ["history", p, i, "--db", db],
    lambda db, p="stripe", i=PAID: ["replay", "--db", db],
    lambda db, p="stripe", i=PAID: ["replay", p, "--db", db],
    lambda db, p="stripe", i=PAID: ["diagram", p, "--invoice", i, "--db", db],
    lambda db, p="stripe", i=PAID: ["changes", p, "--db", db],
]
READ_IDS = ["state", "history", "replay", "replay-stripe", "diagram-invoice", "changes"]


@pytest.mark.parametrize("command", READS, ids=READ_IDS)
def test_a_read_leaves_an_older_database_as_it_was(command: Read, tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    _db.make_version_1_database(path)
    before = snapshot(tmp_path)
    res = run(*command(str(path)))
    assert res.exit_code in (0, 1), res.output
    assert snapshot(tmp_path) == before  # not upgraded, no WAL switch, no new file


@pytest.mark.parametrize("command", READS, ids=READ_IDS)
def test_a_read_leaves_a_database_file_as_it_was(
    command: Read, tmp_path: Path, good_db: Path
) -> None:
    path = tmp_path / "good.db"
    shutil.copyfile(good_db, path)
    before = path.read_bytes()
    res = run(*command(str(path)))
    assert res.exit_code == 0, res.output
    assert path.read_bytes() == before


@pytest.mark.parametrize("command", READS, ids=READ_IDS)
def test_a_read_of_a_missing_database_creates_nothing(command: Read, tmp_path: Path) -> None:
    assert_error(run(*command(str(tmp_path / "nope.db"))), 1, "no database at", "nope.db")
    assert list(tmp_path.iterdir()) == []


FILE_STATES = [
    "missing",
    "empty",
    "random bytes",
    "another app's database",
    "version 1",
    "good",
    "folder",
    "under a file",
    "unnamed",
]
_NOISE = st.one_of(
    st.binary(max_size=2048),
    st.binary(min_size=84, max_size=4096).map(lambda b: b"SQLite format 3\x00" + b),
)


def _make(kind: str, folder: Path, noise: bytes, good: Path) -> str:
    path = folder / "x.db"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "random bytes":
        path.write_bytes(noise)
    elif kind == "another app's database":
        _db.make_foreign_database(path)
    elif kind == "version 1":
        _db.make_version_1_database(path)
    elif kind == "good":
        shutil.copyfile(good, path)
    elif kind == "folder":
        path.mkdir()
    elif kind == "under a file":
        (folder / "afile").write_bytes(noise)
        return str(folder / "afile" / "x.db")
    elif kind == "unnamed":
        return ""
    return str(path)


@given(
    kind=st.sampled_from(FILE_STATES),
    command=st.sampled_from(READS),
    provider=st.sampled_from(["stripe", "strpe"]),
    invoice=st.sampled_from([PAID, "in_1"]) | st.text(max_size=12),
    noise=_NOISE,
)
def test_any_file_state_read_is_an_answer_or_one_error_and_unchanged(
    kind: str, command: Read, provider: str, invoice: str, noise: bytes
) -> None:
    good = _good_for_hypothesis()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        db = _make(kind, folder, noise, good)
        args = command(db, provider, invoice)
        before = snapshot(folder)
        res = run(*args)
        after = snapshot(folder)
    assert "Traceback" not in res.output
    if res.exit_code != 0:
        assert res.exit_code in (1, 2), (res.exit_code, res.output, res.exception)
        assert res.stderr.startswith(("Error: ", "Usage: ")), res.stderr
        assert "unexpected" not in res.stderr, res.stderr
    # byte-for-byte unchanged; only the WAL files SQLite makes beside a WAL database may appear
    # (see test_a_read_creates_no_file_beside_a_database)
    new = set(after) - set(before)
    assert all(n.endswith(SIDECARS) for n in new), new
    assert {k: v for k, v in after.items() if k not in new} == before


_GOOD: list[Path] = []


def _good_for_hypothesis() -> Path:
    """A good database for the hypothesis test (fixtures don't mix with @given)."""
    if not _GOOD:
        folder = Path(tempfile.mkdtemp(prefix="cli-good-"))
        res = run("apply", "stripe", str(STRIPE), "--db", str(folder / "good.db"))
        assert res.exit_code == 0, res.output
        _GOOD.append(folder / "good.db")
    return _GOOD[0]


# ------------------------------------------------- D: a provider without a chart is an error


@pytest.mark.parametrize(
    "args",
    [
        ["state", "strpe", PAID],
        ["history", "strpe", PAID],
        ["replay", "strpe"],
        ["diagram", "strpe", "--invoice", PAID],
    ],
    ids=lambda a: a[0],
)
def test_a_misspelt_provider_is_unknown_not_absent(args: list[str], places: dict[str, str]) -> None:
    assert_error(run(*args, "--db", places["db"]), 1, "Unknown provider 'strpe'", "stripe")


@pytest.fixture
def acme_db(tmp_path: Path) -> tuple[str, str]:
    """A database holding a user chart's (acme's) events, and that chart's folder."""
    charts = tmp_path / "charts"
    charts.mkdir()
    (charts / "acme.yaml").write_text(ACME.replace("CANONICAL", "void"), encoding="utf-8")
    stream = tmp_path / "acme.jsonl"
    stream.write_text(
        '{"type": "created", "id": "e1", "invoice": "i1", "status": "draft", "at": 1700000000}\n'
        '{"type": "updated", "id": "e2", "invoice": "i1", "status": "open", "at": 1700000100}\n'
    )
    db = str(tmp_path / "acme.db")
    res = run("apply", "acme", str(stream), "--db", db, "--chart-dir", str(charts))
    assert res.exit_code == 0, res.output
    return db, str(charts)


@pytest.mark.parametrize(
    "args", [["replay"], ["replay", "acme"], ["state", "acme", "i1"], ["history", "acme", "i1"]]
)
def test_a_user_charts_rows_without_chart_dir_say_to_pass_it(
    args: list[str], acme_db: tuple[str, str]
) -> None:
    db, charts = acme_db
    before = Path(db).read_bytes()
    assert_error(run(*args, "--db", db), 1, "Unknown provider 'acme'", "--chart-dir")
    res = run(*args, "--db", db, "--chart-dir", charts)
    assert res.exit_code == 0, res.output
    assert Path(db).read_bytes() == before


def test_diagram_invoice_of_a_chart_given_as_a_path(acme_db: tuple[str, str]) -> None:
    db, charts = acme_db
    res = run("diagram", str(Path(charts) / "acme.yaml"), "--invoice", "i1", "--db", db)
    assert res.exit_code == 0, res.output
    assert "current" in res.stdout


# ----------------------------------------------------------------------------- every command


@pytest.mark.parametrize("command", sorted(main.commands))
def test_every_commands_help_ends_with_an_example(command: str) -> None:
    res = run(command, "--help")
    assert res.exit_code == 0
    paragraphs = res.stdout.split("Options:")[0].strip().splitlines()
    assert paragraphs[-1].strip().startswith("Example: invoice-engine " + command)


def test_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    """``invoice-engine apply … --json | head -1``: no traceback when head stops reading."""
    src = tmp_path / "many.jsonl"
    with src.open("w") as f:
        for i in range(2_500):  # more output than a pipe holds
            obj = {"id": f"in_{i}", "status": "draft"}
            body = {"id": f"evt_{i}", "type": "invoice.created", "created": 1_700_000_000 + i}
            f.write(json.dumps({**body, "data": {"object": obj}}) + "\n")
    cli = Path(sys.executable).with_name("invoice-engine")
    args = [str(cli), "apply", "stripe", str(src), "--db", str(tmp_path / "p.db"), "--json"]
    with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        assert proc.stderr is not None
        assert proc.stdout.readline().startswith(b'{"kind":"outcome"')
        proc.stdout.close()
        err = proc.stderr.read()
    assert b"Traceback" not in err, err.decode(errors="replace")
    assert proc.returncode == 1


def test_output_never_overwrites_a_database(tmp_path: Path, good_db: Path) -> None:
    path = tmp_path / "rr.db"
    shutil.copyfile(good_db, path)
    before = path.read_bytes()
    res = run(
        "diagram", "stripe", "--invoice", PAID, "--db", str(path), "-o", str(path), "-f", "svg"
    )
    assert res.exit_code == 1
    assert "is a SQLite database" in res.stderr
    assert path.read_bytes() == before


# The psycopg warnings a lost connection makes, logged as the CLI's commands run.
_LIBRARY_WARNINGS = """
import logging, sys
from engine import Engine
from engine.cli import main

real = Engine.replay

def replay(self, *args, **kw):
    logging.getLogger("psycopg.pool").warning(
        "discarding closed connection: %s", "<psycopg.Connection [BAD] at 0x1>")
    logging.getLogger("psycopg").warning(
        "error ignored terminating %s: %s", "<psycopg.Pipeline [BAD] at 0x2>", "gone")
    return real(self, *args, **kw)

Engine.replay = replay
if sys.argv[1] == "configured":
    logging.basicConfig(level="WARNING", format="logged %(name)s: %(message)s")
main(["replay", "--db", sys.argv[2]])
"""


@pytest.mark.parametrize(
    ("how", "debug", "shown"),
    [("plain", "", False), ("plain", "1", True), ("configured", "", True)],
    ids=["quiet", "debug", "logging-configured"],
)
def test_library_warnings_of_a_lost_connection_stay_off_stderr(
    how: str, debug: str, shown: bool, good_db: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "INVOICE_ENGINE_DEBUG"}
    if debug:
        env["INVOICE_ENGINE_DEBUG"] = debug
    proc = subprocess.run(
        [sys.executable, "-c", _LIBRARY_WARNINGS, how, str(good_db)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "no mismatch" in proc.stdout
    for said in ("discarding closed connection", "error ignored terminating"):
        assert (said in proc.stderr) is shown, proc.stderr
    if how == "configured":  # the user's logging shows them, as it would `serve`'s
        assert "logged psycopg.pool: discarding closed connection" in proc.stderr
    if not shown:
        assert proc.stderr == ""
