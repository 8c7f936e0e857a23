"""Many processes, one PostgreSQL database: any interleaving ends as a sequential run.

4 and 8 worker processes start at once on an empty schema, each applying its own stream (every
example stream and a generated Stripe one: overlapping, duplicated between processes, shuffled,
several providers mixed in each transaction — see ``_workers``). No worker may fail — no
deadlock, serialization failure or lost race may reach the user — and the database must end as
the same streams applied one after the other by one process: every invoice's state and fold
position, every event's standing outcome, one live row per event id, a row per delivery,
revisions that account for every rewritten outcome, and a replay that agrees.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import _db
import _workers
import pytest


@pytest.fixture
def pg(postgres_server: str) -> Iterator[_db.Databases]:
    with _db.postgres_databases(postgres_server) as databases:
        yield databases


def _run(pg: _db.Databases, tmp_path: Path, writers: int, generated: int, batch: int) -> None:
    streams = _workers.streams(writers, generated, seed=writers * 1000 + generated)
    files = _workers.write(tmp_path, streams)
    url = pg()
    procs = [_workers.start(url, f, batch) for f in files]
    assert _workers.finish(procs) == []
    lines = sum(len(s) for s in streams)
    _workers.check(_workers.snapshot(url), _workers.sequential(streams), rows=lines)


@pytest.mark.parametrize(("writers", "batch"), [(4, 1), (4, 20), (8, 10)])
def test_writers_equal_a_sequential_run(
    pg: _db.Databases, tmp_path: Path, writers: int, batch: int
) -> None:
    _run(pg, tmp_path, writers, generated=600, batch=batch)


@pytest.mark.slow
@pytest.mark.parametrize(("writers", "batch"), [(4, 50), (8, 1), (8, 200)])
def test_writers_equal_a_sequential_run_long(
    pg: _db.Databases, tmp_path: Path, writers: int, batch: int
) -> None:
    _run(pg, tmp_path, writers, generated=8_000, batch=batch)
