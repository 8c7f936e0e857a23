"""The record names the chart and the policy that decided each event (runtime/versions.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import _db
import pytest
import yaml

from engine import Engine, load_chart
from engine.runtime.versions import fingerprint


def _stripe(eid: str, etype: str, created: int, status: str, iid: str = "in_1") -> bytes:
    obj = {"id": iid, "status": status}
    return json.dumps(
        {"id": eid, "type": etype, "created": created, "data": {"object": obj}}
    ).encode()


PAID_FIRST = _stripe("evt_2", "invoice.paid", 1_700_000_200, "paid")
LATE_CREATED = _stripe("evt_1", "invoice.created", 1_700_000_000, "draft")


def test_policy_and_chart_are_recorded_with_every_event(make_db: _db.Databases) -> None:
    db = make_db(shared=True)
    with Engine(db, on_unknown="reject") as eng:
        eng.apply("stripe", PAID_FIRST)
        eng.apply("stripe", b"not json")
    rows = _db.events(db)
    assert {(r.policy, r.chart) for r in rows} == {("reject", fingerprint(load_chart("stripe")))}


def test_replay_judges_each_event_under_the_policy_it_was_decided_with(
    make_db: _db.Databases,
) -> None:
    # Written with reject; replayed and re-folded by an engine started with adopt.
    db = make_db(shared=True)
    with Engine(db, on_unknown="reject") as eng:
        assert eng.apply("stripe", PAID_FIRST).status == "rejected"
    with Engine(db, on_unknown="adopt") as other:
        report = other.replay(repair=True)
        assert report.mismatches == []
        assert other.state("stripe", "in_1") is None  # not adopted behind the writer's back
        # a late event re-folds the invoice: the first event keeps its own policy
        late = other.apply("stripe", _stripe("evt_0", "invoice.updated", 1_699_999_000, "draft"))
        assert late.status in ("rejected", "applied")
        first = next(r for r in _db.events(db) if r.event_id == "evt_2")
        assert first.policy == "reject"


def _edited_stripe(tmp_path: Path, drop_event: str) -> Path:
    spec: dict[str, Any] = yaml.safe_load(load_chart("stripe").spec.model_dump_json())
    del spec["events"][drop_event]
    folder = tmp_path / "charts"
    folder.mkdir()
    (folder / "stripe.yaml").write_text(json.dumps(spec), encoding="utf-8")
    return folder


def test_an_edited_chart_never_crashes_a_late_event_and_replay_says_so(
    make_db: _db.Databases, tmp_path: Path
) -> None:
    db = make_db(shared=True)
    with Engine(db) as eng:
        eng.apply("stripe", _stripe("evt_5", "invoice.finalized", 1_700_000_100, "open"))
        eng.apply("stripe", PAID_FIRST)
    # The edit removes an event type that is in the history; a late event re-folds it.
    charts = _edited_stripe(tmp_path, "invoice.finalized")
    with Engine(db, chart_dir=charts) as edited:
        out = edited.apply("stripe", LATE_CREATED)  # used to die on an AssertionError
        assert out.status == "applied"
        state = edited.state("stripe", "in_1")
        assert state is not None
        assert state.state == "paid"  # the old events replay under the chart that decided them
        report = edited.replay()
        assert report.ok
        assert any("earlier chart" in n for n in report.notes)
        # Re-deciding history under the new chart is explicit, and recorded as revisions.
        redone = edited.replay(rechart=True)
        assert redone.repaired
        assert redone.ok
        assert not edited.replay().notes
    finalized = next(r for r in _db.events(db) if r.event_id == "evt_5")
    assert finalized.outcome == "rejected"
    assert "no such event type" in (finalized.reason or "")
    # revised twice: by the late invoice.created (adopted -> applied from draft), then by rechart
    assert finalized.revisions == 2
    revised = [(v.old_outcome, v.new_outcome) for v in _db.revisions(db) if v.seq == finalized.seq]
    assert revised[-1] == ("applied", "rejected")


def test_a_chart_must_be_loaded_under_its_own_provider_name(tmp_path: Path) -> None:
    from engine import ChartError

    folder = tmp_path / "charts"
    folder.mkdir()
    text = (Path(load_chart("stripe").path or "")).read_text(encoding="utf-8")
    (folder / "zebrapay.yaml").write_text(text, encoding="utf-8")  # says provider: stripe
    with Engine(":memory:", chart_dir=folder) as eng, pytest.raises(ChartError) as info:
        eng.apply("zebrapay", PAID_FIRST)
    assert "stripe" in str(info.value)
    assert "zebrapay" in str(info.value)
    with pytest.raises(ChartError, match="'moxie'"):
        Engine(":memory:", charts={"moxie": load_chart("stripe")})
