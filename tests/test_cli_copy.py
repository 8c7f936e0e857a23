"""``invoice-engine copy``: a whole history from one database to another, proved by a replay.

The target is each store in turn (``make_db``): SQLite to PostgreSQL and back again must give
back every row as it was.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import _db
import pytest
from click.testing import CliRunner

import engine.store.copy as copy_module
from engine import Engine, StoreError
from engine.cli import main
from engine.store import open_store
from engine.store._postgres_tx import PostgresTx
from engine.store.base import ChartRecord
from engine.store.copy import copy_records
from engine.store.postgres import PostgresStore

ROOT = Path(__file__).resolve().parent.parent


def _source(tmp_path: Path) -> str:
    """A SQLite history of two providers, late events and revisions included."""
    db = str(tmp_path / "source.db")
    r = CliRunner()
    for provider in ("stripe", "chargeover", "upmind"):
        assert r.invoke(main, ["apply", provider, "--example", "--db", db]).exit_code == 0
    return db


def _everything(db: str) -> tuple[list[Any], ...]:
    with Engine(db, readonly=True) as eng, eng.store.read() as tx:
        return (
            [tuple(r) for r in tx.event_rows()],
            [tuple(r) for r in tx.invoice_rows(unborn=True)],
            [tuple(r) for r in tx.revision_rows()],
            [tuple(r) for r in tx.chart_records()],
        )


def test_a_history_goes_across_and_back_as_it_was(make_db: _db.Databases, tmp_path: Path) -> None:
    source = _source(tmp_path)
    target = make_db(shared=True)
    res = CliRunner().invoke(main, ["copy", source, target])
    assert res.exit_code == 0, res.output
    assert "no mismatch" in res.output
    back = str(tmp_path / "back.db")
    res = CliRunner().invoke(main, ["copy", target, back, "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["ok"] is True
    assert doc["replay"]["ok"] is True
    original = _everything(source)
    assert original[2], "the history has revisions to copy"
    assert _everything(target) == original
    assert _everything(back) == original
    # the copy keeps numbering after the highest seq copied
    last = max(row[0] for row in original[0])
    with Engine(target) as eng:
        body = {"id": "evt_new", "type": "invoice.created", "created": 1_700_000_000,
                "data": {"object": {"id": "in_new", "status": "draft"}}}  # fmt: skip
        out = eng.apply("stripe", body)
    assert out.status == "applied"
    assert (out.seq or 0) > last


def test_a_target_that_holds_records_is_refused_unless_replaced(
    make_db: _db.Databases, tmp_path: Path
) -> None:
    source = _source(tmp_path)
    target = make_db(shared=True)
    r = CliRunner()
    assert r.invoke(main, ["copy", source, target]).exit_code == 0
    again = r.invoke(main, ["copy", source, target])
    assert again.exit_code == 1
    assert "is not empty" in again.output
    assert "--replace" in again.output
    assert "Traceback" not in again.output
    assert _everything(target) == _everything(source)  # left as it was
    replaced = r.invoke(main, ["copy", source, target, "--replace"])
    assert replaced.exit_code == 0, replaced.output
    assert _everything(target) == _everything(source)  # not doubled


def test_a_missing_source_or_a_copy_onto_itself_is_an_error(tmp_path: Path) -> None:
    r = CliRunner()
    res = r.invoke(main, ["copy", str(tmp_path / "nope.db"), str(tmp_path / "t.db")])
    assert res.exit_code == 1
    assert "no database at" in res.output
    assert not (tmp_path / "t.db").exists()
    source = _source(tmp_path)
    res = r.invoke(main, ["copy", source, source])
    assert res.exit_code == 1
    assert "the source itself" in res.output


def test_copy_is_documented() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "invoice-engine copy" in readme
    res = CliRunner().invoke(main, ["copy", "--help"])
    assert res.exit_code == 0
    assert "Example: invoice-engine copy" in res.output
    assert "--replace" in res.output


# ------------------------------------------------------------------- the reviewed defects


@pytest.fixture
def pg(postgres_server: str) -> Iterator[_db.Databases]:
    """New PostgreSQL databases (schemas), dropped when the test ends."""
    with _db.postgres_databases(postgres_server) as databases:
        yield databases


def _stripe(event_id: str, invoice_id: str) -> dict[str, Any]:
    return {"id": event_id, "type": "invoice.created", "created": 1_700_000_000,
            "data": {"object": {"id": invoice_id, "status": "draft"}}}  # fmt: skip


def _apply(db: str, event_id: str) -> int:
    """Apply one new stripe event to ``db`` (another writer than the copy); its seq."""
    with Engine(db) as eng:
        out = eng.apply("stripe", _stripe(event_id, f"in_{event_id}"))
    assert out.status == "applied", out
    return out.seq or 0


def _event_ids(db: str) -> set[str | None]:
    return {row.event_id for row in _db.events(db)}


def _around_the_copy(
    monkeypatch: pytest.MonkeyPatch,
    before: Callable[[], object] = lambda: None,
    during: Callable[[], object] = lambda: None,
) -> None:
    """Make the ``copy`` command run ``before`` as the copy begins and ``during`` once it has
    written its first events."""
    real = copy_module.copy_records

    def copy_records(source: Any, target: Any, **kw: Any) -> Any:
        before()
        step = kw.get("progress")

        def progress(n: int) -> None:
            during()
            if step is not None:
                step(n)

        return real(source, target, **{**kw, "progress": progress})

    monkeypatch.setattr(copy_module, "copy_records", copy_records)


def test_the_same_file_by_another_path_is_the_source_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = _source(tmp_path)
    held = _everything(source)
    link = tmp_path / "link.db"
    link.symlink_to(source)
    monkeypatch.chdir(tmp_path)
    for other in ("source.db", "./source.db", str(link)):
        for extra in ([], ["--replace"]):
            res = CliRunner().invoke(main, ["copy", source, other, *extra])
            assert res.exit_code == 1, res.output
            assert "the source itself" in res.output
            assert source in res.output
            assert other in res.output
            assert _everything(source) == held


def _respelled(url: str) -> list[str]:
    """``url`` spelled other ways that reach the same schema: another scheme, a parameter
    more, the host by name instead of address."""
    other = [url.replace("postgresql://", "postgres://", 1), url + "&connect_timeout=17"]
    if "@127.0.0.1:5432/" in url:
        other.append(url.replace("@127.0.0.1:5432/", "@localhost/"))
    return other


def test_the_same_schema_by_another_url_is_the_source_itself(
    pg: _db.Databases, tmp_path: Path
) -> None:
    target = pg()
    assert CliRunner().invoke(main, ["copy", _source(tmp_path), target]).exit_code == 0
    held = _everything(target)
    for other in _respelled(target):
        for extra in ([], ["--replace"]):  # --replace once hung here, blocking every writer
            res = CliRunner().invoke(main, ["copy", target, other, *extra])
            assert res.exit_code == 1, res.output
            assert "the source itself" in res.output
            assert _everything(target) == held
    # another schema of the same database is another store
    assert CliRunner().invoke(main, ["copy", target, pg()]).exit_code == 0


def test_a_copy_kept_waiting_for_a_lock_gives_up_instead_of_hanging(
    pg: _db.Databases, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = pg()
    assert CliRunner().invoke(main, ["copy", _source(tmp_path), target]).exit_code == 0
    held = _everything(target)
    # a spelling of the same schema that identity() would not see through: the copy then
    # reads the very tables --replace must empty, from another session of this process
    monkeypatch.setattr(PostgresStore, "identity", lambda self: ("elsewhere", id(self)))
    failed: list[BaseException] = []

    def run() -> None:
        src = open_store(target, readonly=True)
        with closing(src), closing(PostgresStore(target, timeout=1)) as dst:
            try:
                copy_records(src, dst, replace=True, lock_wait=0.2)
            except BaseException as exc:
                failed.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(30)
    assert not worker.is_alive(), "the copy hangs"
    assert len(failed) == 1, failed
    assert isinstance(failed[0], StoreError), failed
    assert "lock" in str(failed[0])
    assert "nothing" in str(failed[0])
    assert _everything(target) == held


def test_a_writer_in_progress_is_waited_for_before_the_target_is_found_empty(
    pg: _db.Databases, tmp_path: Path
) -> None:
    source, target = _source(tmp_path), pg()
    said: list[str] = []

    def run() -> None:
        with closing(open_store(source, readonly=True)) as src, closing(open_store(target)) as dst:
            try:
                copy_records(src, dst)
                said.append("copied")
            except StoreError as exc:
                said.append(str(exc))

    chart = ChartRecord("fp-writer", "stripe", "{}", "2026-01-01T00:00:00+00:00")
    with closing(open_store(target)) as writer:
        with writer.write() as wtx:
            wtx.lock_invoices([("stripe", "in_writer")])
            wtx.record_chart(chart)
            worker = threading.Thread(target=run, daemon=True)
            worker.start()
            worker.join(1.5)
            assert worker.is_alive(), "the copy went ahead while a writer was writing"
        worker.join(30)
    assert len(said) == 1, said
    assert "is not empty" in said[0]
    assert _everything(target)[3] == [tuple(chart)]  # the writer's, not merged with a copy


def test_a_live_source_copies_the_snapshot_it_read(
    make_db: _db.Databases, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = _source(tmp_path)
    target = make_db(shared=True)
    # writers go on writing to the source: as the copy begins, and while it copies
    _around_the_copy(
        monkeypatch,
        before=lambda: _apply(source, "evt_before"),
        during=lambda: _apply(source, "evt_during"),
    )
    res = CliRunner().invoke(main, ["copy", source, target])
    assert res.exit_code == 0, res.output
    assert "not in the copy" in res.output
    assert "no mismatch" in res.output
    copied = _event_ids(target)
    assert "evt_before" in copied
    assert copied == _event_ids(source) - {"evt_during"}


def test_a_copy_into_postgres_refreshes_the_planner_statistics(
    pg: _db.Databases, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    analyzed: list[str] = []
    real = PostgresStore._analyze

    def analyze(self: PostgresStore, db: Any) -> None:
        analyzed.append(self.name)
        real(self, db)

    monkeypatch.setattr(PostgresStore, "_analyze", analyze)
    target = pg()
    res = CliRunner().invoke(main, ["copy", _source(tmp_path), target])
    assert res.exit_code == 0, res.output
    assert analyzed, "no ANALYZE after the copy"


def test_ctrl_c_during_a_copy_says_nothing_was_written(
    make_db: _db.Databases, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = _source(tmp_path)
    target = make_db(shared=True)

    def interrupt() -> None:
        raise KeyboardInterrupt

    _around_the_copy(monkeypatch, during=interrupt)
    res = CliRunner().invoke(main, ["copy", source, target])
    assert res.exit_code == 130, res.output
    assert "interrupted" in res.output
    assert f"nothing was written to {target}" in res.output
    assert "Aborted!" not in res.output
    assert _everything(target) == ([], [], [], [])


def test_a_copy_failing_after_numbering_leaves_the_target_working(
    pg: _db.Databases, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = pg()
    assert CliRunner().invoke(main, ["copy", _source(tmp_path), target]).exit_code == 0
    held = _everything(target)
    empty = str(tmp_path / "empty.db")
    Engine(empty).close()
    real = PostgresTx.advance_seqs

    def then_fail(self: PostgresTx) -> None:
        real(self)  # numbering set outside the transaction, if the store lets it
        raise RuntimeError("cut off after numbering")

    monkeypatch.setattr(PostgresTx, "advance_seqs", then_fail)
    src, dst = open_store(empty, readonly=True), open_store(target)
    with closing(src), closing(dst), pytest.raises(RuntimeError, match="cut off"):
        copy_records(src, dst, replace=True)
    monkeypatch.undo()
    assert _everything(target) == held
    assert _apply(target, "evt_after") > max(row[0] for row in held[0])


# --------------------------------------------------------- the copy's check, ^C, the summary


def test_a_writer_right_after_the_copy_does_not_fail_it(
    make_db: _db.Databases, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = _source(tmp_path)
    target = make_db(shared=True)
    real = copy_module.copy_records

    def then_a_writer(src: Any, dst: Any, **kw: Any) -> Any:
        done = real(src, dst, **kw)
        _apply(target, "evt_after_the_copy")  # committed before the command checks the copy
        return done

    monkeypatch.setattr(copy_module, "copy_records", then_a_writer)
    res = CliRunner().invoke(main, ["copy", source, target, "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["ok"] is True
    assert doc["target_counts"] == doc["copied"]  # the copy as it committed, not the target now
    assert doc["target_digest"] == doc["copied_digest"]
    assert "evt_after_the_copy" in _event_ids(target)


def test_a_target_that_would_not_hold_what_was_read_writes_nothing(
    make_db: _db.Databases, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = _source(tmp_path)
    target = make_db(shared=True)
    real = copy_module.tally

    def another(tx: Any) -> copy_module.Tally:
        return real(tx)._replace(digest="0" * 32)

    monkeypatch.setattr(copy_module, "tally", another)
    src, dst = open_store(source, readonly=True), open_store(target)
    with closing(src), closing(dst), pytest.raises(StoreError, match="nothing was written"):
        copy_records(src, dst)
    assert _everything(target) == ([], [], [], [])


@pytest.mark.parametrize("nth", [1, 2])
def test_ctrl_c_as_the_copy_starts_is_handled_like_ctrl_c_during_it(
    nth: int, make_db: _db.Databases, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = _source(tmp_path)
    target = make_db(shared=True)
    import engine.store as store_module

    real = store_module.open_store
    opened: list[str] = []

    def interrupted(db: str, **kw: Any) -> Any:  # ^C while opening the source, or the target
        opened.append(db)
        if len(opened) == nth:
            raise KeyboardInterrupt
        return real(db, **kw)

    monkeypatch.setattr(store_module, "open_store", interrupted)
    res = CliRunner().invoke(main, ["copy", source, target])
    assert res.exit_code == 130, res.output
    assert "copy interrupted" in res.output
    assert "none of the records" in res.output
    assert "Aborted!" not in res.output
    assert "Traceback" not in res.output
    monkeypatch.undo()
    with pytest.raises(StoreError, match="no database at"):  # never even made
        _everything(target)


def test_ctrl_c_after_the_copy_committed_says_it_holds_the_copy(
    make_db: _db.Databases, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = _source(tmp_path)
    target = make_db(shared=True)

    def interrupt(self: Engine, *args: Any, **kw: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(Engine, "replay", interrupt)
    res = CliRunner().invoke(main, ["copy", source, target])
    assert res.exit_code == 130, res.output
    assert "holds the whole copy" in res.output
    assert "invoice-engine replay --db" in res.output
    assert "Aborted!" not in res.output
    assert _everything(target) == _everything(source)


def test_ctrl_c_and_what_it_leaves_are_in_the_help() -> None:
    res = CliRunner().invoke(main, ["copy", "--help"])
    assert res.exit_code == 0
    said = " ".join(res.output.split())
    assert "none of the records; a new TARGET may keep its empty tables" in said


def test_the_summary_counts_subscriber_cursors_when_there_are_some(
    make_db: _db.Databases, tmp_path: Path
) -> None:
    source = _source(tmp_path)
    res = CliRunner().invoke(main, ["copy", source, make_db(shared=True)])
    assert res.exit_code == 0, res.output
    assert "subscriber" not in res.output  # none: not said
    assert " chart versions and " in res.output
    with closing(open_store(source)) as store, store.write() as tx:
        for name in ("billing", "ledger"):
            tx.feed.save_subscriber(name, 1, "2026-01-01T00:00:00+00:00")
    res = CliRunner().invoke(main, ["copy", source, make_db(shared=True)])
    assert res.exit_code == 0, res.output
    assert "changes-feed entries and 2 subscriber cursors from" in res.output
