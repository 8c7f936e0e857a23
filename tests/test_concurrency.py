"""Concurrent writers: several processes applying overlapping streams to one database file.

Four (or more) processes start at once on a file that does not exist yet, each applying its own
stream; the streams overlap (every delivery is in at least one, many in two or three) and
interleave differently. The result must equal applying the same streams one after the other,
and no process may fail or print "database is locked": writers take the lock up front and
wait (bounded by the busy timeout, with a back-off retry), they never error.

What "equal" means here: Stripe folds every invoice by occurrence time, so the final state and
every live event's outcome depend only on *which* events arrived, not in what order. So we
compare the invoices' states and the live event rows (event id, outcome, transition), check
that each event has exactly one live row, and that every delivered line left a row. Versions,
revision counts and which copy of a redelivered event is the live one depend on arrival order
and are not compared.
"""

from __future__ import annotations

import multiprocessing
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import _db
import pytest

from engine import Engine

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from workload import stripe_stream

CLI = Path(sys.executable).with_name("invoice-engine")


def _streams(n: int, writers: int, seed: int) -> list[list[bytes]]:
    """``writers`` overlapping streams over ``n`` deliveries: line i goes to writer i % writers
    and, with probability 1/2 each, to the others too (so duplicates race between processes)."""
    rng = random.Random(seed)
    out: list[list[bytes]] = [[] for _ in range(writers)]
    for i, body in enumerate(stripe_stream(n, max(50, n // 8), seed=seed)):
        for w in range(writers):
            if w == i % writers or rng.random() < 0.5:
                out[w].append(body)
    for s in out[1:]:  # interleave differently: swap neighbours here and there
        for k in range(1, len(s), 7):
            s[k - 1], s[k] = s[k], s[k - 1]
    return out


def _snapshot(db: Path) -> dict[str, Any]:
    invoices = sorted((i.invoice_id, i.state, i.canonical) for i in _db.invoices(db))
    live = sorted(
        (r.event_id or "", r.invoice_id, r.outcome, r.from_state, r.to_state, r.reason)
        for r in _db.live_events(db)
    )
    doubled = _db.doubled_live_events(db)
    rows = len(_db.events(db))
    return {
        "invoices": invoices, "live": live, "doubled": doubled, "rows": rows,
        "ok": _db.integrity(db),
    }  # fmt: skip


def _sequential(tmp_path: Path, streams: list[list[bytes]]) -> dict[str, Any]:
    db = tmp_path / "sequential.db"
    with Engine(db) as eng:
        for s in streams:
            eng.apply_many("stripe", s)
    return _snapshot(db)


def _check(concurrent: dict[str, Any], sequential: dict[str, Any], lines: int) -> None:
    assert concurrent["ok"] == "ok"
    assert concurrent["doubled"] == []
    assert concurrent["rows"] == sequential["rows"] == lines
    assert concurrent["invoices"] == sequential["invoices"]
    assert concurrent["live"] == sequential["live"]


def _cli_writers(tmp_path: Path, n: int, writers: int) -> float:
    """Run the CLI writers at once; returns deliveries per second over the whole run."""
    streams = _streams(n, writers, seed=n)
    files = []
    for w, s in enumerate(streams):
        f = tmp_path / f"stream{w}.jsonl"
        f.write_bytes(b"\n".join(s) + b"\n")
        files.append(f)
    db = tmp_path / "shared.db"
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            [str(CLI), "apply", "stripe", str(f), "--db", str(db)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for f in files
    ]
    results = [p.communicate() for p in procs]
    elapsed = time.perf_counter() - started
    for p, (out, err) in zip(procs, results, strict=True):
        text = (out + err).decode()
        assert "locked" not in text, text
        assert "Traceback" not in text, text
        assert p.returncode == 0, text
    lines = sum(len(s) for s in streams)
    _check(_snapshot(db), _sequential(tmp_path, streams), lines)
    return lines / elapsed


def test_cli_writers_equal_a_sequential_run(tmp_path: Path) -> None:
    """4 ``invoice-engine apply`` processes, ~12,000 lines, batched transactions."""
    rate = _cli_writers(tmp_path, 5_000, 4)
    print(f"4 CLI writers: {rate:,.0f} deliveries/s")


@pytest.mark.slow
def test_cli_writers_equal_a_sequential_run_long(tmp_path: Path) -> None:
    """8 processes, ~225,000 lines (``pytest -m slow -s`` prints the throughput)."""
    rate = _cli_writers(tmp_path, 50_000, 8)
    print(f"8 CLI writers: {rate:,.0f} deliveries/s")


def _one_by_one(db: str, bodies: list[bytes], errors: Any) -> None:
    """A child process: one ``Engine.apply`` (one transaction) per delivery."""
    try:
        with Engine(db) as eng:
            for body in bodies:
                eng.apply("stripe", body)
    except Exception as exc:  # reported to the parent, which fails the test
        errors.put(f"{type(exc).__name__}: {exc}")


def test_single_delivery_transactions_from_many_processes(tmp_path: Path) -> None:
    """The worst contention: 4 processes, a commit per delivery, racing on the same events."""
    streams = _streams(1_200, 4, seed=3)
    db = tmp_path / "shared.db"
    ctx = multiprocessing.get_context("spawn")
    errors = ctx.Queue()
    procs = [ctx.Process(target=_one_by_one, args=(str(db), s, errors)) for s in streams]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    problems = [errors.get() for _ in range(errors.qsize())] if not errors.empty() else []
    assert problems == []
    assert [p.exitcode for p in procs] == [0] * len(procs)
    _check(_snapshot(db), _sequential(tmp_path, streams), sum(len(s) for s in streams))
