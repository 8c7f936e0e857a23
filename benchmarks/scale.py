"""Worker processes on one database: deliveries/s with 1, 2, 4 and 8 writers, per store.

A backfill split the way a team would split it: one generated Stripe stream (``WINDOW``
invoices in flight at a time, as over a long period), cut into as many contiguous parts as there
are worker processes, each worker applying its part with
``apply_many`` (``BATCH`` deliveries per transaction) into the same database — a SQLite file,
or a PostgreSQL schema. Workers open their engine and read their part first; the clock runs from
the moment they all start writing until the last one is done.

Each figure is the median of ``REPEATS`` runs (a fresh database each), the runs of every worker
count taking turns, so a slow minute of the machine does not fall on one count alone.

Beside them, the storage limit of each store: its driver's own ``executemany`` of the very rows
the one-worker run wrote, into an empty copy of the table (same columns, indexes and statement),
``BATCH`` rows per transaction too: psycopg for PostgreSQL, sqlite3 for SQLite.
"""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import statistics
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from workload import stripe_stream

from engine import Engine
from engine.store import open_store

__all__ = ["bench_workers", "postgres_url"]

BATCH = 50
#: Invoices in flight at once: a year's stream, cut in parts, gives each part its own invoices
#: (but for those alive across a cut).
WINDOW = 50
WORKERS = (1, 2, 4, 8)
REPEATS = 3
Row = dict[str, Any]


def postgres_url() -> str | None:
    """The server to measure on: ``INVOICE_ENGINE_BENCH_POSTGRES`` (or the tests' variable)."""
    return os.environ.get("INVOICE_ENGINE_BENCH_POSTGRES") or os.environ.get(
        "INVOICE_ENGINE_TEST_POSTGRES"
    )


def _part(n: int, n_inv: int, workers: int, k: int) -> list[bytes]:
    bodies = list(stripe_stream(n, n_inv, seed=21, window=WINDOW))
    size = -(-n // workers)
    return bodies[k * size : (k + 1) * size]


def _worker(db: str, n: int, n_inv: int, workers: int, k: int, start: Any, out: Any) -> None:
    bodies = _part(n, n_inv, workers, k)
    with Engine(db, batch_size=BATCH) as eng:
        eng.chart("stripe")
        start.wait()
        cpu = time.process_time()
        for _ in eng.iter_apply("stripe", bodies):
            pass
        out.put((k, time.process_time() - cpu))


def _run(db: str, n: int, n_inv: int, workers: int) -> tuple[float, float]:
    """(wall seconds, worker CPU seconds) for ``workers`` processes applying the stream."""
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(workers + 1)
    out = ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(db, n, n_inv, workers, k, start, out))
        for k in range(workers)
    ]
    for p in procs:
        p.start()
    start.wait()
    t0 = time.perf_counter()
    cpu = sum(out.get(timeout=900)[1] for _ in procs)
    wall = time.perf_counter() - t0
    for p in procs:
        p.join()
        if p.exitcode != 0:
            raise RuntimeError(f"a worker failed (exit {p.exitcode})")
    return wall, cpu


@contextmanager
def _schemas(server: str) -> Iterator[Any]:
    """New schemas on ``server`` for one benchmark (dropped afterwards)."""
    import psycopg

    made: list[str] = []
    with psycopg.connect(server, autocommit=True) as conn:

        def make() -> str:
            name = f"ie_bench_{uuid.uuid4().hex[:12]}"
            conn.execute(f"CREATE SCHEMA {name}")
            made.append(name)
            sep = "&" if "?" in server else "?"
            return f"{server}{sep}options=-csearch_path%3D{name}"

        try:
            yield make
        finally:
            for name in made:
                conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


def _raw_postgres(url: str, rows: list[tuple[Any, ...]]) -> float:
    """psycopg's executemany of ``rows`` into a fresh events table, BATCH per transaction."""
    import psycopg

    from engine.store._postgres_tx import _INSERT_EVENT

    open_store(url).close()  # the same table and indexes
    with psycopg.connect(url) as conn:
        t0 = time.perf_counter()
        for i in range(0, len(rows), BATCH):
            with conn.cursor() as cur:
                cur.executemany(_INSERT_EVENT, rows[i : i + BATCH])
            conn.commit()
        return time.perf_counter() - t0


def _raw_sqlite(path: str, rows: list[tuple[Any, ...]]) -> float:
    """sqlite3's executemany of ``rows`` into a fresh events table, BATCH per transaction."""
    from engine.store._sqlite_tx import _INSERT_EVENT

    open_store(path).close()  # the same table and indexes, WAL
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous = NORMAL")
    t0 = time.perf_counter()
    for i in range(0, len(rows), BATCH):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(_INSERT_EVENT, rows[i : i + BATCH])
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - t0
    conn.close()
    return elapsed


def _rows(db: str) -> list[tuple[Any, ...]]:
    store = open_store(db, readonly=True)
    try:
        with store.read() as tx:
            return [tuple(r) for r in tx.event_rows()]
    finally:
        store.close()


def _measure(store: str, new_db: Any, n: int, n_inv: int, repeats: int) -> Row:
    runs: dict[int, list[tuple[float, float]]] = {w: [] for w in WORKERS}
    raws: list[float] = []
    for _ in range(repeats):
        for workers in WORKERS:
            db = new_db()
            wall, used = _run(db, n, n_inv, workers)
            runs[workers].append((n / wall, used / wall))
            if workers == 1:
                rows = _rows(db)
                raw_db = new_db()
                raws.append(len(rows) / (_raw_postgres(raw_db, rows) if store == "PostgreSQL"
                                         else _raw_sqlite(raw_db, rows)))  # fmt: skip
    rates = {w: statistics.median(r for r, _ in runs[w]) for w in WORKERS}
    cpu = {w: statistics.median(c for _, c in runs[w]) for w in WORKERS}
    raw = statistics.median(raws)
    driver = "psycopg" if store == "PostgreSQL" else "sqlite3"
    peers = {f"{w} workers": rates[w] for w in WORKERS[1:]}
    peers[f"raw {driver} executemany, same rows"] = raw
    ratios = {
        f"{w} workers / 1" + (" (target >= 1.5)" if w == 4 and store == "PostgreSQL" else ""): (
            rates[w] / rates[1]
        )
        for w in WORKERS[1:]
    }
    target = " (target >= 0.3)" if store == "PostgreSQL" else ""
    ratios[f"1 worker / raw executemany{target}"] = rates[1] / raw
    return {
        "name": f"{store}: workers applying one stream ({n:,} deliveries, batches of {BATCH}, "
        f"median of {repeats})",
        "value": rates[1],
        "unit": "deliveries/s",
        "peers": peers,
        "ratios": ratios,
        "worker_cpu_per_wall_second": cpu,
    }


def bench_workers(quick: bool, folder: str) -> list[Row]:
    """deliveries/s with 1, 2, 4 and 8 worker processes, on SQLite and on PostgreSQL."""
    n, n_inv = (2_000, 250) if quick else (40_000, 5_000)
    repeats = 1 if quick else REPEATS
    numbers = iter(range(1, 1_000))
    rows = [
        _measure(
            "SQLite", lambda: os.path.join(folder, f"workers{next(numbers)}.db"), n, n_inv, repeats
        )
    ]
    server = postgres_url()
    if server is None:
        print("[workers: no PostgreSQL (set INVOICE_ENGINE_BENCH_POSTGRES); SQLite only]")
        return rows
    with _schemas(server) as new_schema:
        rows.append(_measure("PostgreSQL", new_schema, n, n_inv, repeats))
    return rows
