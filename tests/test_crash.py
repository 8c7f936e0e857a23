"""Crash safety: ``invoice-engine apply`` killed with SIGKILL, then re-run, loses nothing.

The test starts ``invoice-engine apply`` on a Stripe stream (lifecycles with duplicates,
illegal and out-of-order deliveries, plus some malformed lines), kills it with SIGKILL at
random points — each time once a random number of rows is committed, plus a random few
milliseconds so the kill also lands inside transactions — re-running the *same* stream from the
top after each kill, and finally lets a re-run finish. The result must equal one uninterrupted
run. The default (CI) variant uses 10,000 deliveries and 3 kills; ``-m slow`` uses 50,000
deliveries and 6 kills.
"""

from __future__ import annotations

import os
import random
import signal
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


def _write_stream(path: Path, n: int, seed: int) -> None:
    """``n`` Stripe deliveries; every 997th line is a truncated (invalid) body."""
    with path.open("wb") as f:
        for i, body in enumerate(stripe_stream(n, max(50, n // 8), seed=seed)):
            f.write((body[: len(body) // 2] if i % 997 == 500 else body) + b"\n")


def _apply(stream: Path, db: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(CLI), "apply", "stripe", str(stream), "--db", str(db)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _rows(db: Path) -> int:
    return _db.count_rows_read_only(db) or 0


def _kill_at(stream: Path, db: Path, rows: int, extra: float) -> bool:
    """Run apply until ``rows`` rows are committed, then SIGKILL it (after ``extra`` seconds).

    Returns False when the run finished before reaching ``rows``.
    """
    proc = _apply(stream, db)
    while proc.poll() is None and _rows(db) < rows:
        time.sleep(0.005)
    if proc.poll() is not None:
        proc.communicate()
        return False
    time.sleep(extra)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    return True


def _run_to_end(stream: Path, db: Path) -> None:
    proc = _apply(stream, db)
    _, err = proc.communicate()
    assert b"Traceback" not in err, err.decode()
    assert proc.returncode == 0, err.decode()


def _snapshot(db: Path) -> dict[str, Any]:
    """What must be equal to an uninterrupted run, read straight from the file.

    - ``invoices``: every invoice's state, canonical state, version and fold position. Timestamps
      are left out (wall clock).
    - ``live``: every live event row (the one row per event id that counts in its invoice's
      fold) with its outcome, transition, reason and revision count, by event id. Rows for
      duplicate and invalid deliveries are *not* compared one for one: a killed run that
      committed a prefix makes the re-run record that prefix's lines again, as ``duplicate``
      (or ``invalid`` for the malformed lines) — which is exactly the redelivery contract.
    - ``revisions``: the audit trail of re-folded outcomes, as (event id, old, new) triples.
    """
    invoices = sorted(
        (i.invoice_id, i.state, i.canonical, i.version, *i.key) for i in _db.invoices(db)
    )
    events = _db.events(db)
    live = sorted(
        (r.event_id or "", r.invoice_id, r.event_type, r.outcome, r.from_state, r.to_state,
         r.reason, r.retryable, r.adopted, r.fold_order, r.lifecycle_rank, r.revisions)
        for r in events if r.in_fold
    )  # fmt: skip
    event_id = {r.seq: r.event_id or "" for r in events}
    revisions = sorted(  # a stable sort: by event id, then in the order written
        ((event_id[v.seq], v.old_outcome, v.new_outcome, v.old_to, v.new_to)
         for v in _db.revisions(db)),
        key=lambda t: t[0],
    )  # fmt: skip
    return {"invoices": invoices, "live": live, "revisions": revisions}


def _check_crashes(tmp_path: Path, n: int, kills: int, seed: int) -> None:
    rng = random.Random(seed)
    stream = tmp_path / "stream.jsonl"
    _write_stream(stream, n, seed)
    lines = stream.read_bytes().count(b"\n")
    ref, crashed = tmp_path / "ref.db", tmp_path / "crashed.db"
    _run_to_end(stream, ref)

    killed = 0
    while killed < kills:
        before = _rows(crashed)
        if _kill_at(stream, crashed, before + rng.randrange(1, n), rng.random() * 0.05):
            killed += 1
    start = _rows(crashed)
    _run_to_end(stream, crashed)

    info = f"seed={seed}"
    assert _snapshot(crashed) == _snapshot(ref), info
    assert _db.integrity(crashed) == "ok"
    assert _db.doubled_live_events(crashed) == [], info
    # Every line of the final run is accounted for, in order: as in the reference run, or
    # a duplicate of an event a killed run had committed.
    final = [(r.outcome, r.event_id) for r in _db.events(crashed) if r.seq > start]
    expected = [(r.outcome, r.event_id) for r in _db.events(ref)]
    assert len(final) == len(expected) == lines, info
    for (got, got_id), (want, want_id) in zip(final, expected, strict=True):
        assert got_id == want_id, info
        assert got == want or (got == "duplicate" and want != "invalid"), (info, got_id)
    with Engine(crashed) as eng:
        report = eng.replay()
    assert report.mismatches == [], report
    assert report.events == len(_snapshot(ref)["live"])


def test_kill_and_rerun_equals_one_run(tmp_path: Path) -> None:
    """CI variant: 10,000 deliveries, 3 kills."""
    _check_crashes(tmp_path, 10_000, 3, seed=int.from_bytes(os.urandom(2), "big"))


@pytest.mark.slow
def test_kill_and_rerun_equals_one_run_long(tmp_path: Path) -> None:
    """50,000 deliveries, 6 kills (``pytest -m slow``)."""
    _check_crashes(tmp_path, 50_000, 6, seed=int.from_bytes(os.urandom(2), "big"))
