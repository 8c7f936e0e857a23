"""``invoice-engine changes`` and ``invoice-engine consume``: every flag, their errors, and the
promises that take real processes: ``--follow`` prints what another process commits, a
consumer killed with SIGKILL and started again misses nothing, Ctrl-C stops between entries.

The feed itself (what it holds, subscribers in the library) is in ``test_feed.py``.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import _db
import pytest
from click.testing import CliRunner, Result

from engine import Engine
from engine.cli import main
from engine.cli._jsonl import read_jsonl

STREAMS = Path(__file__).resolve().parent.parent / "examples" / "streams"
CLI = Path(sys.executable).with_name("invoice-engine")
#: Generous: a loaded machine may take seconds to start a process; nothing here waits that
#: long when things work.
PATIENCE = 15.0


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def _apply(db: str, *providers: str) -> None:
    with Engine(db) as eng:
        for provider in providers:
            with (STREAMS / f"{provider}.jsonl").open("rb") as f:
                eng.apply_many(provider, read_jsonl(f))


def _stored_cursor(db: str, name: str) -> int | None:
    with Engine(db, readonly=True) as eng, eng.store.read() as tx:
        stored = tx.feed.subscriber(name)
    return None if stored is None else stored[0]


def _feed(db: str) -> list[str]:
    with Engine(db, readonly=True) as eng:
        return [str(c) for c in eng.changes(limit=None)]


@pytest.fixture(scope="module")
def stripe_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A database holding the stripe example stream: 14 entries."""
    db = str(tmp_path_factory.mktemp("feed") / "stripe.db")
    _apply(db, "stripe")
    return db


# ----------------------------------------------------------------------------------- changes


def test_changes_prints_each_entry_as_the_library_shows_it(stripe_db: str) -> None:
    res = run("changes", "--db", stripe_db)
    assert res.exit_code == 0, res.output
    assert res.stdout.splitlines() == _feed(stripe_db)
    assert len(_feed(stripe_db)) == 14


def test_changes_since_limit_and_provider(stripe_db: str, tmp_path: Path) -> None:
    feed = _feed(stripe_db)
    assert run("changes", "--since", "11", "--db", stripe_db).stdout.splitlines() == feed[11:]
    res = run("changes", "--since", "2", "--limit", "3", "--db", stripe_db)
    assert res.stdout.splitlines() == feed[2:5]
    assert run("changes", "stripe", "--db", stripe_db).stdout.splitlines() == feed
    chart = tmp_path / "stripe.yaml"  # a chart given by its path names its provider
    shutil.copyfile(Path(__file__).resolve().parent.parent / "statecharts" / "stripe.yaml", chart)
    assert run("changes", str(chart), "--db", stripe_db).stdout.splitlines() == feed
    assert run("changes", "pelcro", "--db", stripe_db).stdout == "no changes\n"
    assert run("changes", "--since", "14", "--db", stripe_db).stdout == "no changes after #14\n"


def test_changes_json_is_one_array_of_entries(stripe_db: str) -> None:
    res = run("changes", "--since", "12", "--json", "--db", stripe_db)
    assert res.exit_code == 0, res.output
    with Engine(stripe_db, readonly=True) as eng:
        assert json.loads(res.stdout) == [c.model_dump(mode="json") for c in eng.changes(12)]
    empty = run("changes", "--since", "14", "--json", "--db", stripe_db)
    assert json.loads(empty.stdout) == []


def test_changes_of_an_empty_database(tmp_path: Path) -> None:
    db = str(tmp_path / "empty.db")
    Engine(db).close()
    assert run("changes", "--db", db).stdout == "no changes\n"
    assert json.loads(run("changes", "--json", "--db", db).stdout) == []


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["--since", "-1"], 2, ["--since", "-1"]),
        (["--since", "x"], 2, ["--since"]),
        (["--limit", "0"], 2, ["--limit", "0"]),
        (["strpe"], 1, ["Unknown provider 'strpe'", "stripe"]),
        (["strpe", "--follow"], 1, ["Unknown provider 'strpe'"]),
    ],
)
def test_changes_refuses_bad_arguments(
    stripe_db: str, args: list[str], code: int, words: list[str]
) -> None:
    res = run("changes", *args, "--db", stripe_db)
    assert res.exit_code == code, res.output
    assert res.stdout == ""
    assert "Traceback" not in res.output
    for word in words:
        assert word in res.stderr, (word, res.stderr)


def test_changes_reads_without_writing(stripe_db: str, tmp_path: Path) -> None:
    db = tmp_path / "copy.db"
    shutil.copyfile(stripe_db, db)
    before = db.read_bytes()
    assert run("changes", "--db", str(db)).exit_code == 0
    assert run("changes", "--db", str(db), "--follow", "--limit", "2").exit_code == 0
    assert db.read_bytes() == before
    res = run("changes", "--db", str(tmp_path / "nope.db"))
    assert res.exit_code == 1
    assert "no database at" in res.stderr
    assert not (tmp_path / "nope.db").exists()


def test_follow_with_limit_stops_after_that_many(stripe_db: str) -> None:
    res = run("changes", "--follow", "--limit", "3", "--since", "5", "--json", "--db", stripe_db)
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert [json.loads(line)["cursor"] for line in lines] == [6, 7, 8]  # one object a line


def _reader(stream: Iterator[str]) -> queue.Queue[str]:
    """A queue of a process's output lines, filled by a thread (reads never block the test)."""
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in stream:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _stripe_file(folder: Path, name: str, *bodies: dict[str, object]) -> Path:
    path = folder / name
    path.write_text("".join(json.dumps(b) + "\n" for b in bodies))
    return path


def _stripe(n: int, kind: str, status: str, day: int) -> dict[str, object]:
    return {
        "id": f"evt_{n}", "type": f"invoice.{kind}", "created": 1_717_200_000 + day * 86_400,
        "data": {"object": {"id": "in_follow", "status": status}},
    }  # fmt: skip


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "text"])
def test_follow_prints_what_another_process_commits(
    make_db: _db.Databases, tmp_path: Path, as_json: bool
) -> None:
    db = make_db(shared=True)
    first = _stripe_file(tmp_path, "first.jsonl", _stripe(1, "created", "draft", 0))
    assert run("apply", "stripe", str(first), "--db", db).exit_code == 0
    args = [str(CLI), "changes", "stripe", "--follow", "--db", db, *(["--json"] if as_json else [])]
    with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        assert proc.stderr is not None
        try:
            lines = _reader(proc.stdout)
            assert "in_follow" in lines.get(timeout=PATIENCE)  # it is following now
            second = _stripe_file(tmp_path, "second.jsonl", _stripe(2, "finalized", "open", 1))
            applied = subprocess.run(
                [str(CLI), "apply", "stripe", str(second), "--db", db],
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert applied.returncode == 0, applied.stderr
            line = lines.get(timeout=PATIENCE)
            if as_json:
                entry = json.loads(line)
                assert (entry["cursor"], entry["invoice_id"]) == (2, "in_follow")
                assert (entry["from_state"], entry["to_state"], entry["kind"]) == (
                    "draft", "open", "applied"
                )  # fmt: skip
                assert entry["cause_event_id"] == "evt_2"
            else:
                assert line == "#2 stripe/in_follow: draft → open (applied by #2 evt_2)\n"
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(PATIENCE)
        assert code == 0, proc.stderr.read()
        assert proc.stderr.read() == ""


def test_follow_stops_quietly_on_ctrl_c(stripe_db: str) -> None:
    args = [str(CLI), "changes", "--follow", "--since", "13", "--db", stripe_db]
    with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        assert proc.stderr is not None
        assert proc.stdout.readline().startswith("#14 ")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(PATIENCE) == 0
        assert proc.stderr.read() == ""


# ----------------------------------------------------------------------------------- consume

RECORDER = """\
import os, time

def record(change):
    with open(os.environ["HANDLED"] + ".started", "a") as f:
        f.write(f"{change.cursor}\\n")
    time.sleep(float(os.environ.get("HANDLER_SLEEP", "0")))
    with open(os.environ["HANDLED"], "a") as f:
        f.write(f"{change.cursor}\\n")
"""


@pytest.fixture
def recorder(tmp_path: Path) -> Path:
    """A handler file whose ``record`` appends each entry's cursor to the file $HANDLED when
    it is done (to $HANDLED.started when it starts; in between it sleeps $HANDLER_SLEEP s)."""
    path = tmp_path / "recorder.py"
    path.write_text(RECORDER)
    return path


def _handled(path: Path) -> list[int]:
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def test_consume_once_handles_the_feed_and_stores_its_cursor(
    stripe_db: str, tmp_path: Path, recorder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = str(tmp_path / "copy.db")
    shutil.copyfile(stripe_db, db)
    out = tmp_path / "handled.txt"
    monkeypatch.setenv("HANDLED", str(out))
    res = run("consume", "mailer", f"{recorder}:record", "--once", "--db", db)
    assert res.exit_code == 0, res.output
    assert _handled(out) == list(range(1, 15))
    assert res.stderr == "mailer: handled 14 entries; at #14\n"
    assert _stored_cursor(db, "mailer") == 14
    again = run("consume", "mailer", f"{recorder}:record", "--once", "--db", db)
    assert again.stderr == "mailer: handled 0 entries; at #14\n"
    assert _handled(out) == list(range(1, 15))


def test_consume_from_and_provider(
    tmp_path: Path, recorder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = str(tmp_path / "two.db")
    _apply(db, "stripe", "pelcro")
    out = tmp_path / "handled.txt"
    monkeypatch.setenv("HANDLED", str(out))
    with Engine(db, readonly=True) as eng:
        pelcro = [c.cursor for c in eng.changes(provider="pelcro", limit=None)]
    res = run("consume", "p", f"{recorder}:record", "pelcro", "--once", "--db", db)
    assert res.exit_code == 0, res.output
    assert _handled(out) == pelcro
    out.unlink()
    res = run("consume", "late", f"{recorder}:record", "--from", "20", "--once", "--db", db)
    assert _handled(out) == list(range(21, 15 + len(pelcro)))
    res = run("consume", "late", f"{recorder}:record", "--from", "0", "--once", "--db", db)
    assert "handled 0 entries" in res.stderr  # its stored cursor wins over --from


def test_consume_takes_a_module_importable_from_the_current_folder(
    stripe_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = str(tmp_path / "copy.db")
    shutil.copyfile(stripe_db, db)
    (tmp_path / "feed_test_handlers.py").write_text(
        "SEEN = []\n\nclass Box:\n    @staticmethod\n    def keep(change):\n"
        "        SEEN.append(change.cursor)\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    try:
        res = run("consume", "m", "feed_test_handlers:Box.keep", "--once", "--db", db)
        assert res.exit_code == 0, res.output
        seen = sys.modules["feed_test_handlers"].SEEN
        assert seen == list(range(1, 15))
    finally:
        sys.modules.pop("feed_test_handlers", None)


def test_a_failing_handler_is_retried_and_warned_about(
    stripe_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = str(tmp_path / "copy.db")
    shutil.copyfile(stripe_db, db)
    handler = tmp_path / "flaky.py"
    handler.write_text(
        "failed = []\n\ndef handle(change):\n"
        "    if change.cursor == 2 and not failed:\n"
        "        failed.append(1)\n        raise ValueError('mail server down')\n"
    )
    res = run("consume", "flaky", f"{handler}:handle", "--once", "--db", db)
    assert res.exit_code == 0, res.output
    assert res.stderr.splitlines() == [
        "Warning: subscriber 'flaky': entry #2 failed; trying it again in 0.5 s "
        "(ValueError: mail server down)",
        "flaky: handled 14 entries; at #14",
    ]


@pytest.mark.parametrize(
    ("spec", "code", "words"),
    [
        ("no_colon", 2, ["names no function", "module:function", "file.py:function"]),
        ("nomodule_for_feed_tests:f", 2, ["no module 'nomodule_for_feed_tests'"]),
        ("{tmp}/missing.py:f", 2, ["no file", "missing.py"]),
        ("{tmp}/handlers.py:nothing", 2, ["has no 'nothing'"]),
        ("{tmp}/handlers.py:NUMBER", 2, ["is 3, not a function"]),
        ("{tmp}/broken.py:f", 1, ["running", "broken.py", "ZeroDivisionError"]),
        ("not a module:f", 2, ["is not a module name"]),
    ],
)
def test_consume_names_what_is_wrong_with_a_handler(
    tmp_path: Path, stripe_db: str, spec: str, code: int, words: list[str]
) -> None:
    (tmp_path / "handlers.py").write_text("NUMBER = 3\n")
    (tmp_path / "broken.py").write_text("1 / 0\n")
    res = run("consume", "x", spec.format(tmp=tmp_path), "--db", stripe_db)
    assert res.exit_code == code, res.output
    assert "Traceback" not in res.output
    for word in words:
        assert word in res.stderr, (word, res.stderr)
    assert _stored_cursor(stripe_db, "x") is None


def test_consume_needs_a_database_that_exists(tmp_path: Path, recorder: Path) -> None:
    res = run("consume", "x", f"{recorder}:record", "--db", str(tmp_path / "nope.db"))
    assert res.exit_code == 1
    assert "no database at" in res.stderr
    assert not (tmp_path / "nope.db").exists()
    res = run("consume", "x", f"{recorder}:record", "--db", ":memory:")
    assert res.exit_code == 2
    assert ":memory:" in res.stderr


def _consumer(
    db: str, name: str, recorder: Path, out: Path, *extra: str, sleep: float = 0.0
) -> subprocess.Popen[str]:
    """``invoice-engine consume NAME recorder.py:record`` running, recording into ``out``."""
    env = {**os.environ, "HANDLED": str(out), "HANDLER_SLEEP": str(sleep)}
    args = [str(CLI), "consume", name, f"{recorder}:record", "--db", db, *extra]
    return subprocess.Popen(
        args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + PATIENCE
    while not check():
        assert time.monotonic() < deadline, f"waited {PATIENCE} s for {what}"
        time.sleep(0.02)


def test_a_consumer_killed_mid_stream_resumes_after_its_stored_cursor(
    make_db: _db.Databases, tmp_path: Path, recorder: Path
) -> None:
    db = make_db(shared=True)
    _apply(db, "stripe", "pelcro", "upmind")
    everything = [int(line.split()[0][1:]) for line in _feed(db)]
    first, second = tmp_path / "first.txt", tmp_path / "second.txt"
    with _consumer(db, "killed", recorder, first, sleep=0.1) as proc:
        try:
            # the cursor is stored at least every second: past that, some of it is stored
            _until(lambda: len(_handled(first)) >= 15, "fifteen entries handled")
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(PATIENCE)
    before_kill = _handled(first)
    assert before_kill == everything[: len(before_kill)]
    assert len(before_kill) < len(everything), "the consumer was not killed mid-stream"
    stored = _stored_cursor(db, "killed")
    assert stored is not None
    assert {c for c in everything if c <= stored} <= set(before_kill)  # stored once handled
    with _consumer(db, "killed", recorder, second, "--once") as proc:
        assert proc.wait(60) == 0, proc.communicate()[1]
    assert _handled(second) == [c for c in everything if c > stored]
    # an idempotent consumer (a set of cursors) ends as one clean run does
    clean = tmp_path / "clean.txt"
    with _consumer(db, "clean", recorder, clean, "--once") as proc:
        assert proc.wait(60) == 0
    assert set(before_kill) | set(_handled(second)) == set(_handled(clean)) == set(everything)


def test_ctrl_c_stops_a_consumer_after_the_entry_it_is_handling(
    stripe_db: str, tmp_path: Path, recorder: Path
) -> None:
    db = str(tmp_path / "copy.db")
    shutil.copyfile(stripe_db, db)
    out = tmp_path / "handled.txt"
    started = tmp_path / "handled.txt.started"
    with _consumer(db, "stopped", recorder, out, sleep=1.0) as proc:
        assert proc.stderr is not None
        assert "following the feed after #0" in proc.stderr.readline()
        _until(lambda: len(_handled(started)) >= 2, "the second entry's handler to start")
        proc.send_signal(signal.SIGINT)  # while the handler sleeps on the second entry
        assert proc.wait(PATIENCE) == 0
        summary = proc.stderr.read()
    assert _handled(started) == _handled(out) == [1, 2]  # the second was finished, no third
    assert _stored_cursor(db, "stopped") == 2
    assert summary == "stopped: handled 2 entries; at #2\n"
