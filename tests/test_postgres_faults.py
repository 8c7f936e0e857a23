"""Faults while many processes write to one PostgreSQL database: nothing lost, nothing doubled.

- Workers SIGKILLed mid-run (between and inside transactions): running every stream again ends
  exactly as one clean sequential run.
- Workers' connections cut with ``pg_terminate_backend`` while they are inside a transaction,
  again and again: no worker fails (each transaction runs again from the start, or is found
  committed), and the run ends as a clean one with exactly one row per delivery.
- The server restarted during a run: on a throwaway cluster of the tests' own (never the
  machine's shared server), the workers ride it out and the run ends as a clean one.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import _db
import _postgres
import _workers
import pytest


@pytest.fixture
def pg(postgres_server: str) -> Iterator[_db.Databases]:
    with _db.postgres_databases(postgres_server) as databases:
        yield databases


def _kill_and_rerun(pg: _db.Databases, tmp_path: Path, writers: int, generated: int) -> None:
    streams = _workers.streams(writers, generated, seed=generated + 7)
    files = _workers.write(tmp_path, streams)
    url = pg()
    procs = [_workers.start(url, f, batch=15) for f in files]
    victims = procs[: writers // 2]
    for p in victims:  # each killed once it has committed a few batches, mid-way through more
        assert p.stdout is not None
        for _ in range(3):
            p.stdout.readline()
        os.kill(p.pid, signal.SIGKILL)
    for p in victims:
        p.communicate(timeout=60)
        assert p.returncode == -signal.SIGKILL
    assert _workers.finish(procs[writers // 2 :]) == []
    again = [_workers.start(url, f, batch=15) for f in files]  # everything, once more
    assert _workers.finish(again) == []
    _workers.check(_workers.snapshot(url), _workers.sequential(streams), rows=None)


def test_killed_workers_and_a_rerun_equal_one_clean_run(pg: _db.Databases, tmp_path: Path) -> None:
    _kill_and_rerun(pg, tmp_path, writers=4, generated=600)


@pytest.mark.slow
def test_killed_workers_and_a_rerun_equal_one_clean_run_long(
    pg: _db.Databases, tmp_path: Path
) -> None:
    _kill_and_rerun(pg, tmp_path, writers=8, generated=8_000)


def _cut_while_running(pg: _db.Databases, tmp_path: Path, writers: int, generated: int) -> int:
    streams = _workers.streams(writers, generated, seed=generated + 11)
    files = _workers.write(tmp_path, streams)
    url = pg()
    assert pg.server is not None
    server, name = pg.server, _db.schema_of(url)
    procs = [_workers.start(url, f, batch=10) for f in files]
    cut = 0
    stop = threading.Event()

    def cutter() -> None:
        nonlocal cut
        while not stop.is_set():  # one writer's transaction at a time, a few times a second
            cut += _db.cut_connections(server, name, most=1)
            time.sleep(0.1)

    thread = threading.Thread(target=cutter)
    thread.start()
    try:
        errors = _workers.finish(procs)
    finally:
        stop.set()
        thread.join()
    assert errors == []
    lines = sum(len(s) for s in streams)
    _workers.check(_workers.snapshot(url), _workers.sequential(streams), rows=lines)
    return cut


def test_connections_cut_mid_transaction_lose_and_double_nothing(
    pg: _db.Databases, tmp_path: Path
) -> None:
    assert _cut_while_running(pg, tmp_path, writers=4, generated=600) > 0


@pytest.mark.slow
def test_connections_cut_mid_transaction_lose_and_double_nothing_long(
    pg: _db.Databases, tmp_path: Path
) -> None:
    assert _cut_while_running(pg, tmp_path, writers=8, generated=8_000) > 10


def test_a_server_restart_during_a_run_loses_and_doubles_nothing(
    pg_cluster: _postgres.Cluster, tmp_path: Path
) -> None:
    writers = 4
    streams = _workers.streams(writers, 900, seed=5)
    files = _workers.write(tmp_path, streams)
    with _db.postgres_databases(pg_cluster.url) as databases:
        url = databases()
        procs = [_workers.start(url, f, batch=5) for f in files]
        for p in procs:  # every worker running, with transactions committed
            assert p.stdout is not None
            p.stdout.readline()
        pg_cluster.stop("fast")  # every session cut; new ones refused while it is down
        time.sleep(1)
        pg_cluster.start()
        assert _workers.finish(procs) == []
        lines = sum(len(s) for s in streams)
        _workers.check(_workers.snapshot(url), _workers.sequential(streams), rows=lines)
