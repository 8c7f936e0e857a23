"""The PostgreSQL store itself: its schema, what it refuses, its messages, its retries.

The engine's behavioural tests run against PostgreSQL through the ``make_db`` fixture; this file
holds what only PostgreSQL has: a schema made safely by several workers at once, advisory locks
and the whole-store lock, transient failures run again, passwords never shown.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import _db
import pytest
from click.testing import CliRunner

from engine import Engine, StoreError
from engine.cli import main
from engine.runtime import _batch
from engine.store import open_store
from engine.store._postgres_schema import (
    CHART_COLUMNS,
    EVENT_COLUMNS,
    INVOICE_COLUMNS,
    REVISION_COLUMNS,
    SCHEMA_VERSION,
)
from engine.store._url import redact
from engine.store.base import ChartRecord, EventRow, InvoiceRow, RevisionRow

ROOT = Path(__file__).resolve().parent.parent


def _stripe(event_id: str, invoice_id: str, created: int = 1_700_000_000) -> dict[str, Any]:
    return {
        "id": event_id,
        "type": "invoice.created",
        "created": created,
        "data": {"object": {"id": invoice_id, "status": "draft"}},
    }


@pytest.fixture
def pg(postgres_server: str) -> Iterator[_db.Databases]:
    """New PostgreSQL databases (schemas), dropped when the test ends."""
    with _db.postgres_databases(postgres_server) as databases:
        yield databases


# ----------------------------------------------------------------------------------- schema


def test_the_tables_are_the_row_fields_and_sqlites_columns() -> None:
    from engine.store import _sqlite_schema as lite

    assert tuple(EVENT_COLUMNS) == EventRow._fields == tuple(lite._EVENT_COLUMNS)
    assert tuple(INVOICE_COLUMNS) == InvoiceRow._fields == tuple(lite._INVOICE_COLUMNS)
    assert tuple(REVISION_COLUMNS) == ("id", *RevisionRow._fields) == tuple(lite._REVISION_COLUMNS)
    assert tuple(CHART_COLUMNS) == ChartRecord._fields == tuple(lite._CHART_COLUMNS)


def test_the_schema_is_made_with_its_version(pg: _db.Databases) -> None:
    url = pg()
    Engine(url).close()
    assert _db.schema_version(url) == SCHEMA_VERSION
    assert _db.tables(url) == {
        "invoice_engine_meta", "events", "invoices", "revisions", "charts", "invoice_locks",
        "changes", "subscribers",
    }  # fmt: skip
    # ties in fold order are broken by event id by code point, as in Python and SQLite
    assert _db.collation(url, "events", "event_id") == "C"
    assert _db.collation(url, "invoices", "last_event_id") == "C"
    assert _db.collation(url, "invoices", "invoice_id") == "C"  # listed in its key's order


def test_a_version_1_store_is_read_as_it_is_and_upgraded_by_a_writer(pg: _db.Databases) -> None:
    url = pg()
    with Engine(url) as eng:
        eng.apply("stripe", _stripe("evt_1", "in_1"))
        eng.apply("stripe", _stripe("evt_2", "in_2"))
    _db.make_postgres_version_1(url)
    with Engine(url, readonly=True) as reader:  # writes nothing; the feed as it will begin
        assert reader.replay().ok
        assert [(c.invoice_id, c.to_state, c.kind) for c in reader.changes()] == [
            ("in_1", "draft", "migrated"), ("in_2", "draft", "migrated")
        ]  # fmt: skip
    assert "changes" not in _db.tables(url)
    assert _db.schema_version(url) == 1
    procs = [  # two writers of the new release upgrade it at once: once
        subprocess.Popen([sys.executable, "-c", _OPEN_AND_APPLY, url, str(n)], cwd=ROOT)
        for n in (3, 4)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    assert _db.schema_version(url) == SCHEMA_VERSION
    assert _db.collation(url, "events", "event_id") == "C"
    rows = _db.feed_rows(url)
    assert rows[:2] == [(1, "in_1", "draft", "migrated"), (2, "in_2", "draft", "migrated")]
    assert sorted(r[1:] for r in rows[2:]) == [("in_3", "draft", "applied"),
                                             ("in_4", "draft", "applied")]  # fmt: skip
    with Engine(url) as eng:
        assert eng.replay().ok


_OPEN_AND_APPLY = """
import sys
from engine import Engine
url, n = sys.argv[1], sys.argv[2]
with Engine(url) as eng:
    body = {"id": f"evt_{n}", "type": "invoice.created", "created": 1_700_000_000,
            "data": {"object": {"id": f"in_{n}", "status": "draft"}}}
    assert eng.apply("stripe", body).status == "applied"
"""


def test_workers_starting_at_once_on_an_empty_schema_make_it_once(pg: _db.Databases) -> None:
    url = pg()
    procs = [
        subprocess.Popen([sys.executable, "-c", _OPEN_AND_APPLY, url, str(n)], cwd=ROOT)
        for n in range(6)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0] * 6
    assert len(_db.events(url)) == 6
    assert _db.schema_version(url) == SCHEMA_VERSION


def test_a_newer_schema_is_refused(pg: _db.Databases) -> None:
    url = pg()
    Engine(url).close()
    _db.set_schema_version(url, SCHEMA_VERSION + 1)
    with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION + 1}.*Upgrade"):
        Engine(url)


@pytest.mark.parametrize("readonly", [False, True])
def test_tables_that_are_not_ours_are_refused_and_left_alone(
    pg: _db.Databases, readonly: bool
) -> None:
    url = pg()
    _db.make_foreign_database(url)
    with pytest.raises(StoreError, match=r"\(events\) that are not invoice-engine's"):
        Engine(url, readonly=readonly)
    assert _db.tables(url) == {"events"}


def test_reading_an_empty_schema_writes_nothing(pg: _db.Databases) -> None:
    url = pg()
    with pytest.raises(StoreError, match=r"^no database at .* has no invoice-engine tables"):
        Engine(url, readonly=True)
    assert _db.tables(url) == set()
    res = CliRunner().invoke(main, ["state", "stripe", "in_1", "--db", url])
    assert res.exit_code == 1
    assert "run `invoice-engine apply` first" in res.output
    assert _db.tables(url) == set()


def test_a_schema_that_does_not_exist_is_named(postgres_server: str) -> None:
    url = _db.schema_url(postgres_server, "no_such_schema_here")
    with pytest.raises(StoreError, match=r"no schema to use.*no_such_schema_here"):
        Engine(url)


# --------------------------------------------------------------------------------- messages


def test_passwords_are_never_shown(postgres_server: str) -> None:
    base = postgres_server.split("?")[0].rsplit("/", 1)[0]
    host = base.split("@", 1)[-1]
    url = f"postgresql://postgres:hunter2secret@{host}/no_such_database_here"
    with pytest.raises(StoreError) as info:
        Engine(url)
    assert "hunter2secret" not in str(info.value)
    assert "postgres:***@" in str(info.value)
    for args in (["state", "stripe", "in_1"], ["apply", "stripe", "--example"], ["replay"]):
        res = CliRunner().invoke(main, [*args, "--db", url])
        assert res.exit_code == 1, res.output
        assert "hunter2secret" not in res.output
        assert "Traceback" not in res.output
    query = f"postgresql://{host}/db?user=postgres&password=hunter2secret"
    assert "hunter2secret" not in redact(query)


def test_without_psycopg_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg now fails
    with pytest.raises(StoreError, match=r"pip install 'invoice-engine\[postgres\]'"):
        Engine("postgresql://someone:pw@127.0.0.1:1/db")


# ---------------------------------------------------------------------------------- retries


def test_a_serialization_failure_runs_the_transaction_again(pg: _db.Databases) -> None:
    store = open_store(pg())
    runs: list[int] = []

    def work(tx: Any) -> str:
        runs.append(1)
        tx.record_chart(ChartRecord("f1", "stripe", "{}", "2024-01-01T00:00:00Z"))
        if len(runs) < 3:
            raise _db.serialization_failure()
        return "done"

    try:
        assert store.transact(work) == "done"
        assert len(runs) == 3
        with store.read() as tx:
            assert [c.fingerprint for c in tx.chart_records()] == ["f1"]
    finally:
        store.close()


def test_a_deadlock_between_two_writers_is_run_again(pg: _db.Databases) -> None:
    # Two transactions take two invoices' locks in opposite orders, one call each: PostgreSQL
    # finds the cycle (after deadlock_timeout), fails one with 40P01, and it runs again.
    url = pg()
    stores = [open_store(url), open_store(url)]
    both = threading.Barrier(2, timeout=30)
    runs = [0, 0]
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        first, second = ("stripe", "in_a"), ("stripe", "in_b")
        if n:
            first, second = second, first

        def work(tx: Any) -> None:
            runs[n] += 1
            tx.lock_invoices([first])
            if runs[n] == 1:
                both.wait()
            tx.lock_invoices([second])

        try:
            stores[n].transact(work)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    for s in stores:
        s.close()
    assert errors == []
    assert sorted(runs) == [1, 2]


def test_a_writer_stalled_in_its_transaction_lets_go_of_its_invoices(pg: _db.Databases) -> None:
    # A writer frozen mid-transaction (here for 3 s, with the session's idle limit set to 1 s in
    # the URL): the server ends its session, the other writer goes on, and the stalled one runs
    # its transaction again from the start when it wakes.
    url = pg().replace("options=-c", "options=-cidle_in_transaction_session_timeout%3D1s%20-c")
    Engine(url).close()
    from engine.store.postgres import PostgresStore

    stalled = PostgresStore(url, timeout=2)  # retries within 2 s of the first failure: not of
    runs: list[int] = []  # the start, which the 3 s pause would have used up

    def work(tx: Any) -> None:
        runs.append(1)
        tx.lock_invoices([("stripe", "in_1")])
        if len(runs) == 1:
            time.sleep(3)
        tx.lock_invoices([("stripe", "in_2")])

    holder = _started(lambda: stalled.transact(work))
    time.sleep(0.5)
    with Engine(url) as other:
        assert other.apply("stripe", _stripe("evt_1", "in_1")).status == "applied"
    holder.join(timeout=30)
    stalled.close()
    assert len(runs) == 2


def test_sessions_get_an_idle_limit_and_keepalives_unless_the_url_says(pg: _db.Databases) -> None:
    url = pg()
    store = open_store(url)
    try:
        with store.read() as tx:  # reads are not limited: a caller may page through slowly
            assert _db.setting(tx, "idle_in_transaction_session_timeout") == "0"
            assert _db.setting(tx, "tcp_keepalives_idle") == "30"
        with store.write() as wtx:
            assert _db.setting(wtx, "idle_in_transaction_session_timeout") == "5min"
    finally:
        store.close()
    own = url.replace(
        "options=-c",
        "options=-cidle_in_transaction_session_timeout%3D0%20-ctcp_keepalives_idle%3D7%20-c",
    )
    store = open_store(own + "&keepalives=0")
    try:
        with store.write() as wtx:  # 0 said on purpose stays 0
            assert _db.setting(wtx, "idle_in_transaction_session_timeout") == "0"
            assert _db.setting(wtx, "tcp_keepalives_idle") == "7"
    finally:
        store.close()


def test_a_connection_cut_mid_transaction_is_run_again(
    pg: _db.Databases, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = pg()
    real = _batch.Batch.flush
    cut: list[int] = []

    def flush_after_a_cut(self: _batch.Batch) -> None:
        if not cut:  # the first time only: pg_terminate_backend our own connection
            assert pg.server is not None
            cut.append(_db.cut_connections(pg.server, _db.schema_of(url)))
        real(self)

    with Engine(url) as eng:
        monkeypatch.setattr(_batch.Batch, "flush", flush_after_a_cut)
        out = eng.apply("stripe", _stripe("evt_1", "in_1"))
        monkeypatch.undo()
        assert cut == [1]
        assert out.status == "applied"
        assert [(r.event_id, r.outcome) for r in _db.events(eng)] == [("evt_1", "applied")]
        assert eng.apply("stripe", _stripe("evt_1", "in_1")).status == "duplicate"
        assert eng.replay().ok


@pytest.mark.parametrize("batch", [1, 20])
def test_one_event_id_raced_by_writers_of_different_invoices_is_applied_once(
    pg: _db.Databases, batch: int
) -> None:
    # Same event ids, different invoice ids: no invoice lock orders them, only the unique index.
    # Batched (20 to a transaction), a batch whose rows another writer's batch kept out (the
    # pipelined insert's row count) runs again.
    url = pg()
    Engine(url).close()
    writers, events = 4, 60
    start = threading.Barrier(writers, timeout=60)
    outcomes: list[list[str]] = [[] for _ in range(writers)]

    def writer(w: int) -> None:
        with Engine(url, batch_size=batch) as eng:
            bodies = [_stripe(f"evt_{k}", f"in_{w}_{k}") for k in range(events)]
            for part in (bodies[i : i + batch] for i in range(0, events, batch)):
                start.wait()
                outcomes[w] += [o.status for o in eng.apply_many("stripe", part)]

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for k in range(events):
        assert sorted(outcomes[w][k] for w in range(writers)) == ["applied"] + ["duplicate"] * 3
    assert _db.doubled_live_events(url) == []
    assert len(_db.live_events(url)) == events


@contextmanager
def _holding(url: str, take: Any) -> Iterator[None]:
    """A write transaction that runs ``take(tx)`` and stays open until the block ends."""
    store = open_store(url)
    taken, release = threading.Event(), threading.Event()

    def work(tx: Any) -> None:
        take(tx)
        taken.set()
        assert release.wait(timeout=60)

    holder = threading.Thread(target=store.transact, args=(work,))
    holder.start()
    assert taken.wait(timeout=30)
    try:
        yield
    finally:
        release.set()
        holder.join(timeout=60)
        store.close()


def _started(action: Any) -> threading.Thread:
    thread = threading.Thread(target=action, daemon=True)
    thread.start()
    return thread


def _waits(thread: threading.Thread, seconds: float = 2) -> bool:
    """Whether ``thread`` is still running after ``seconds`` (blocked on a lock)."""
    thread.join(timeout=seconds)
    return thread.is_alive()


def test_a_batch_over_many_invoices_locks_only_them(pg: _db.Databases) -> None:
    # 3,000 invoices in one transaction: far more than max_locks_per_transaction (64), whose
    # advisory locks would take the whole store or fill the server's lock table. Row locks:
    # a writer of another invoice goes on; a writer of one of them waits for the batch.
    url = pg()
    Engine(url).close()
    held = [("stripe", f"in_{n}") for n in range(3_000)]
    with Engine(url) as other:
        with _holding(url, lambda tx: tx.lock_invoices(held)):
            free = _started(lambda: other.apply("stripe", _stripe("evt_x", "in_free")))
            assert not _waits(free, 20)
            held_one = _started(lambda: other.apply("stripe", _stripe("evt_y", "in_2999")))
            assert _waits(held_one)
        assert not _waits(held_one, 30)
    assert {r.event_id for r in _db.live_events(url)} == {"evt_x", "evt_y"}


def test_a_big_batch_and_single_writers_agree(pg: _db.Databases) -> None:
    url = pg()
    bodies = [_stripe(f"evt_{n}", f"in_{n}") for n in range(300)]
    singles = [_stripe(f"evt_s{n}", f"in_{n % 50}", 1_700_000_100) for n in range(100)]
    with Engine(url, batch_size=300) as big, Engine(url) as small:
        done = threading.Thread(target=lambda: [small.apply("stripe", b) for b in singles])
        done.start()
        assert {o.status for o in big.apply_many("stripe", bodies)} == {"applied"}
        done.join(timeout=60)
        assert sum(big.counts().values()) == 400
        assert big.replay().ok


def test_a_writer_paused_before_its_commit_holds_up_no_other(
    pg: _db.Databases, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Its feed entries are written, its COMMIT not yet sent: the feed's numbering happens in the
    # COMMIT's own message, so no lock of the feed's is held while a process is paused.
    from engine.store._postgres_tx import PostgresTx

    url = pg()
    Engine(url).close()
    real = PostgresTx.commit_sql
    paused, resume = threading.Event(), threading.Event()

    def pausing(self: PostgresTx) -> str:
        if threading.current_thread().name == "paused":
            paused.set()
            assert resume.wait(timeout=60)
        return str(real.fget(self))  # type: ignore[attr-defined]

    monkeypatch.setattr(PostgresTx, "commit_sql", property(pausing))
    with Engine(url) as one, Engine(url) as other:
        for eng in (one, other):  # the chart's version recorded: not a row both would write
            eng.apply("stripe", _stripe(f"evt_{id(eng)}", f"in_{id(eng)}"))
        held = threading.Thread(
            target=lambda: one.apply("stripe", _stripe("evt_1", "in_1")), name="paused"
        )
        held.start()
        assert paused.wait(timeout=30)
        writer = _started(lambda: other.apply("stripe", _stripe("evt_2", "in_2")))
        assert not _waits(writer, 20)
        resume.set()
        held.join(timeout=30)
        cursors = [(c.cursor, c.invoice_id) for c in other.changes(since=2)]
    assert cursors == [(3, "in_2"), (4, "in_1")]  # in the order they committed


def test_a_follower_whose_connection_is_cut_listens_again(pg: _db.Databases) -> None:
    from engine.runtime.feed import follow

    url = pg()
    got: list[int] = []
    stop = threading.Event()
    with Engine(url) as writer, Engine(url, readonly=True) as reader:
        writer.apply("stripe", _stripe("evt_1", "in_1"))
        follower = _started(lambda: got.extend(c.cursor for c in follow(reader, stop=stop)))
        deadline = time.monotonic() + 30
        while got != [1] and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # waiting on its notifications now
        assert pg.server is not None
        assert _db.cut_connections(pg.server, _db.schema_of(url), in_transaction=False) >= 1
        writer.apply("stripe", _stripe("evt_2", "in_2"))
        while got != [1, 2] and time.monotonic() < deadline:
            time.sleep(0.05)
        stop.set()
        follower.join(timeout=30)
    assert got == [1, 2]
    assert not follower.is_alive()


def test_the_whole_store_lock_excludes_every_writer(pg: _db.Databases) -> None:
    url = pg()
    Engine(url).close()
    with Engine(url) as other:
        with _holding(url, lambda tx: tx.lock_store()):
            writer = _started(lambda: other.apply("stripe", _stripe("evt_1", "in_1")))
            assert _waits(writer)
        assert not _waits(writer, 30)
    with Engine(url) as other:  # a delivery of no invoice, a subscriber's cursor: writers too
        with _holding(url, lambda tx: tx.lock_store()):
            unreadable = _started(lambda: other.apply("stripe", b"not json"))
            cursor = _started(
                lambda: other.store.transact(lambda tx: tx.feed.save_subscriber("s", 1, "now"))
            )
            assert _waits(unreadable)
            assert _waits(cursor, 0.1)
        assert not _waits(unreadable, 30)
        assert not _waits(cursor, 30)
    store = open_store(url)
    try:
        with _holding(url, lambda tx: tx.lock_invoices([("stripe", "in_1")])):
            alone = _started(lambda: store.transact(lambda tx: tx.lock_store()))
            assert _waits(alone)
        assert not _waits(alone, 30)
    finally:
        store.close()
    assert [r.event_id for r in _db.live_events(url)] == ["evt_1"]
    assert len(_db.events(url)) == 2  # and the unreadable one


def test_a_readonly_store_writes_nothing(pg: _db.Databases) -> None:
    url = pg()
    with Engine(url) as eng:
        eng.apply("stripe", _stripe("evt_1", "in_1"))
    before = [tuple(r) for r in _db.events(url)]
    with Engine(url, readonly=True) as reader:
        assert reader.replay().ok
        with pytest.raises(StoreError, match="read-only"):
            reader.apply("stripe", _stripe("evt_2", "in_2"))
    assert [tuple(r) for r in _db.events(url)] == before


def test_the_cli_takes_a_url_everywhere(pg: _db.Databases, tmp_path: Path) -> None:
    url = pg()
    r = CliRunner()
    assert r.invoke(main, ["apply", "stripe", "--example", "--db", url]).exit_code == 0
    res = r.invoke(main, ["state", "stripe", "in_1PqA8sDemo0002", "--json"],
                   env={"INVOICE_ENGINE_DB": url})  # fmt: skip
    assert json.loads(res.stdout)["state"] == "paid"
    res = r.invoke(main, ["demo", "--db", url, "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["db"] == url


@pytest.mark.parametrize("lands", [True, False])
def test_a_commit_whose_answer_was_lost_is_asked_of_the_server(
    pg: _db.Databases, lands: bool
) -> None:
    # The answer to COMMIT lost while the commit is still under way: a row of it is not
    # visible yet, so only the server can say. The store waits while it is in progress.
    url = pg()
    assert pg.server is not None
    with Engine(url) as eng, _db.open_transaction(pg.server) as (xid, finish):
        timer = threading.Timer(0.3, finish, args=(lands,))
        timer.start()
        try:
            assert eng.store._committed(xid) is lands  # type: ignore[attr-defined]
        finally:
            timer.join()


def test_a_forked_child_cannot_use_its_parents_connections(pg: _db.Databases) -> None:
    import os

    url = pg()
    with Engine(url) as eng:
        eng.apply("stripe", _stripe("evt_1", "in_1"))
        pid = os.fork()
        if pid == 0:  # the child: refused, and leaving must not end the parent's sessions
            code = 3
            try:
                eng.apply("stripe", _stripe("evt_2", "in_2"))
            except StoreError as exc:
                code = 0 if "forked" in str(exc) else 4
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert eng.apply("stripe", _stripe("evt_3", "in_3")).status == "applied"
        assert [r.event_id for r in _db.events(eng)] == ["evt_1", "evt_3"]
