"""replay: what it reads (one committed snapshot) and what repair promises (issue 11.4, 11.5)."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import _db
import pytest

from engine import Engine
from engine.cli._run import read_jsonl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from workload import stripe_stream

STREAMS = Path(__file__).resolve().parent.parent / "examples" / "streams"


def _stream(provider: str) -> list[object]:
    with (STREAMS / f"{provider}.jsonl").open("rb") as f:
        return list(read_jsonl(f))


def test_repair_recreates_a_lost_invoice_row(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    with Engine(db) as eng:
        eng.apply_many("stripe", _stream("stripe"))  # type: ignore[arg-type]
        victim = next(iter(eng.invoices("stripe")))
        _db.delete_invoice_behind_the_engine(db, victim.invoice_id)
        found = eng.replay()
        assert not found.ok
        assert [m.what for m in found.mismatches] == ["state"]
        repaired = eng.replay(repair=True)
        assert repaired.repaired
        assert repaired.unrepaired == []
        assert repaired.ok
        assert eng.replay().ok  # clean afterwards, not just "repaired"
        again = eng.state("stripe", victim.invoice_id)
        assert again is not None
        assert again.state == victim.state


def test_counts_seen_by_another_thread_are_committed_batch_boundaries(tmp_path: Path) -> None:
    bodies = list(stripe_stream(6_000, 600))
    eng = Engine(tmp_path / "t.db", batch_size=1000)
    seen: list[int] = []
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            seen.append(sum(eng.counts().values()))

    reader = threading.Thread(target=poll)
    reader.start()
    try:
        eng.apply_many("stripe", bodies)
    finally:
        done.set()
        reader.join()
    assert seen
    assert {n % 1000 for n in seen} == {0}, sorted(set(seen))


@pytest.mark.parametrize("provider", ["stripe", "chargeover"])
def test_replay_during_writes_finds_no_phantom_mismatch(tmp_path: Path, provider: str) -> None:
    db = tmp_path / "t.db"
    deliveries = _stream(provider) * 20
    writer = Engine(db, batch_size=3)
    reader = Engine(db)
    stop = threading.Event()
    reports = []

    def replay_loop() -> None:
        while not stop.is_set():
            reports.append(reader.replay())

    thread = threading.Thread(target=replay_loop)
    thread.start()
    try:
        for d in deliveries:
            body, headers = d if isinstance(d, tuple) else (d, None)
            writer.apply(provider, body, headers)
    finally:
        stop.set()
        thread.join()
    assert reports
    assert [r for r in reports if not r.ok] == []


def test_replay_names_chart_dir_for_a_provider_whose_chart_is_not_loaded(tmp_path: Path) -> None:
    from engine import UnknownProvider

    folder = tmp_path / "charts"
    folder.mkdir()
    text = (STREAMS.parent.parent / "statecharts" / "stripe.yaml").read_text(encoding="utf-8")
    (folder / "zebrapay.yaml").write_text(text.replace("provider: stripe", "provider: zebrapay"))
    db = tmp_path / "t.db"
    with Engine(db, chart_dir=folder) as eng:
        eng.apply_many("zebrapay", _stream("stripe"))  # type: ignore[arg-type]
    with Engine(db) as without, pytest.raises(UnknownProvider, match="chart_dir"):
        without.replay()
    with Engine(db, chart_dir=folder) as with_dir:
        assert with_dir.replay().ok


def test_a_naive_clock_is_refused() -> None:
    from datetime import datetime

    from engine import EngineError

    with pytest.raises(EngineError, match="naive"):
        Engine(":memory:", clock=datetime.now)
