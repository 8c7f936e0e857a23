"""replay: what it reads (one committed snapshot) and what repair promises (issue 11.4, 11.5)."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

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


def test_repair_recreates_a_lost_invoice_row(make_db: _db.Databases) -> None:
    db = make_db(shared=True)
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


def test_counts_seen_by_another_thread_are_committed_batch_boundaries(
    make_db: _db.Databases,
) -> None:
    bodies = list(stripe_stream(6_000, 600))
    eng = Engine(make_db(), batch_size=1000)
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
def test_replay_during_writes_finds_no_phantom_mismatch(
    make_db: _db.Databases, provider: str
) -> None:
    db = make_db(shared=True)
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


def test_replay_names_chart_dir_for_a_provider_whose_chart_is_not_loaded(
    make_db: _db.Databases, tmp_path: Path
) -> None:
    from engine import UnknownProvider

    folder = tmp_path / "charts"
    folder.mkdir()
    text = (STREAMS.parent.parent / "statecharts" / "stripe.yaml").read_text(encoding="utf-8")
    (folder / "zebrapay.yaml").write_text(text.replace("provider: stripe", "provider: zebrapay"))
    db = make_db(shared=True)
    with Engine(db, chart_dir=folder) as eng:
        eng.apply_many("zebrapay", _stream("stripe"))  # type: ignore[arg-type]
    with Engine(db) as without, pytest.raises(UnknownProvider, match="chart_dir"):
        without.replay()
    with Engine(db, chart_dir=folder) as with_dir:
        assert with_dir.replay().ok


def test_a_naive_clock_is_refused() -> None:
    from datetime import datetime

    from engine import EngineError

    with pytest.raises(EngineError, match="time zone"):
        Engine(":memory:", clock=datetime.now)


def test_replay_judges_the_whole_record_and_repair_mends_it(make_db: _db.Databases) -> None:
    db = make_db(shared=True)
    with Engine(db) as eng:
        eng.apply_many("stripe", _stream("stripe"))  # type: ignore[arg-type]
        first, second = [i.invoice_id for i in eng.invoices("stripe")][:2]
        _db.tamper_canonical_behind_the_engine(db, first, "refunded")
        _db.delete_events_behind_the_engine(db, second)  # its invoice row says it exists
        found = eng.replay()
        assert {(m.invoice_id, m.what) for m in found.mismatches} == {
            (first, "canonical state or fold position"),
            (second, "state"),
            (second, "changes feed's last entry"),  # it told of a state the events don't show
        }
        repaired = eng.replay(repair=True)
        assert repaired.ok
        assert eng.replay().ok
        assert eng.state("stripe", second) is None


def test_a_concurrent_write_between_two_reads_of_a_replay_is_not_a_mismatch(
    make_db: _db.Databases, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Deterministic: a second engine commits a new event for the invoice right after the replay
    # read its events and before it reads the invoice row. One snapshot sees neither.
    db = make_db(shared=True)
    created = {"id": "evt_1", "type": "invoice.created", "created": 1_700_000_000,
               "data": {"object": {"id": "in_1", "status": "draft"}}}  # fmt: skip
    finalized = {"id": "evt_2", "type": "invoice.finalized", "created": 1_700_000_100,
                 "data": {"object": {"id": "in_1", "status": "open"}}}  # fmt: skip
    with Engine(db) as eng:
        eng.apply("stripe", created)
    writer, reader = Engine(db), Engine(db)
    with reader.store.read() as tx:
        tx_class = type(tx)  # the store's transaction class, whichever store it is
    real = tx_class.fold_rows
    done: list[bool] = []

    def fold_rows_then_write(self: Any, provider: str, invoice_id: str) -> list[Any]:
        rows = real(self, provider, invoice_id)
        if not done:
            done.append(True)
            assert writer.apply("stripe", finalized).status == "applied"
        return rows

    monkeypatch.setattr(tx_class, "fold_rows", fold_rows_then_write)
    assert done == []
    assert reader.replay().ok
    assert done == [True]
    monkeypatch.undo()
    assert reader.replay().ok


def test_rechart_records_the_chart_it_decides_under(make_db: _db.Databases, tmp_path: Path) -> None:
    import yaml

    from engine import load_chart

    db = make_db(shared=True)
    stripe = load_chart("stripe")
    with Engine(db) as eng:
        eng.apply_many("stripe", _stream("stripe"))  # type: ignore[arg-type]
    spec = yaml.safe_load(stripe.spec.model_dump_json())
    spec["title"] = "edited once"
    charts = tmp_path / "charts"
    charts.mkdir()
    (charts / "stripe.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    with Engine(db, chart_dir=charts) as edited:
        report = edited.replay(rechart=True)
        assert report.ok
        assert report.revised == 0  # a title changes no outcome
    fingerprints = {r.chart for r in _db.events(db) if r.in_fold and r.invoice_id}
    assert len(fingerprints) == 1
    spec["title"] = "edited twice"
    (charts / "stripe.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    with Engine(db, chart_dir=charts) as again:
        report = again.replay()
        assert report.ok
        assert [n for n in report.notes if "can't read" in n] == []  # the rechart's chart is kept


def test_rechart_keeps_each_events_policy(make_db: _db.Databases) -> None:
    # Recorded under reject: a paid-first invoice is not adopted; a rechart by an engine started
    # with adopt must not adopt it behind the writer's back (nor the reverse).
    db = make_db(shared=True)
    paid = {"id": "evt_2", "type": "invoice.paid", "created": 1_700_000_300,
            "data": {"object": {"id": "in_1", "status": "paid"}}}  # fmt: skip
    with Engine(db, on_unknown="reject") as eng:
        assert eng.apply("stripe", paid).status == "rejected"
    with Engine(db, on_unknown="adopt") as other:
        report = other.replay(rechart=True)
        assert report.ok
        assert report.revised == 0
        assert other.state("stripe", "in_1") is None
