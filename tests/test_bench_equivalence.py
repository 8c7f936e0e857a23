"""The benchmark's batch path gives exactly what one-by-one ``apply`` gives.

The benchmark reports ``apply_many`` throughput; this checks, on the same kind of generated
stream (duplicates, illegal and shuffled deliveries included), that batching changes nothing:
the same outcome for every delivery, the same final invoice states, the same event rows and
the same revisions.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import _db
import pytest

from engine import Engine, Outcome
from engine.runtime._construct import construct

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from workload import Mix, stripe_stream


def _comparable(o: Outcome) -> dict[str, Any]:
    return o.model_dump(exclude={"received_at"})


def _tables(eng: Engine) -> tuple[list[Any], list[Any], list[Any]]:
    # everything but the processing times (received_at, first_seen_at, updated_at, revised_at)
    events = [r._replace(received_at="", headers=r.headers) for r in _db.events(eng)]
    invoices = [r._replace(first_seen_at="", updated_at="") for r in _db.invoices(eng)]
    revisions = [r._replace(revised_at="") for r in _db.revisions(eng)]
    return events, invoices, revisions


@pytest.mark.parametrize("batch_size", [1, 7, 2000])
def test_apply_many_equals_one_by_one(tmp_path: Path, batch_size: int) -> None:
    bodies = list(stripe_stream(3000, 300, mix=Mix(0.05, 0.05, 0.05), window=40, seed=11))
    with Engine(tmp_path / "one.db") as one:
        singles = [one.apply("stripe", b) for b in bodies]
        one_tables = _tables(one)
    with Engine(tmp_path / "many.db", batch_size=batch_size) as many:
        batched = many.apply_many("stripe", bodies)
        many_tables = _tables(many)

    assert [_comparable(o) for o in batched] == [_comparable(o) for o in singles]
    assert many_tables == one_tables
    statuses = {o.status for o in singles}
    # The stream exercises every path the benchmark claims it does.
    assert {"applied", "unchanged", "duplicate", "rejected"} <= statuses
    assert one_tables[2], "no late arrival was re-folded with a changed outcome"


def _outcome_values() -> dict[str, Any]:
    when = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    return {
        "revisions": 0, "seq": 7, "status": "applied", "provider": "stripe", "event_id": "evt_1",
        "invoice_id": "in_1", "event_type": "invoice.paid", "trigger": "pay",
        "from_state": "open", "to_state": "paid", "reason": None, "retryable": False,
        "adopted": False, "occurred_at": when, "received_at": when,
    }  # fmt: skip


def test_construct_is_model_construct() -> None:
    values = _outcome_values()  # deliberately not in field order
    fast, slow = construct(Outcome, **values), Outcome.model_construct(**values)
    assert fast == slow
    assert repr(fast) == repr(slow)
    assert fast.model_dump_json() == slow.model_dump_json()
    assert fast.model_fields_set == slow.model_fields_set
    assert hash(fast) == hash(slow)


def test_construct_falls_back_when_fields_are_missing_or_wrong() -> None:
    values = _outcome_values()
    del values["revisions"], values["reason"]
    partial = construct(Outcome, **values)
    assert partial.revisions == 0
    assert partial.model_fields_set == Outcome.model_construct(**values).model_fields_set
    values["typo"] = 1
    values["revisions"] = 3
    assert construct(Outcome, **values) == Outcome.model_construct(**values)


def test_lazy_public_names_are_the_real_ones() -> None:
    import engine
    import engine.diagrams
    import engine.runtime.engine

    assert engine.Engine is engine.runtime.engine.Engine
    assert engine.diagrams is sys.modules["engine.diagrams"]
    assert {"Engine", "diagrams"} <= set(dir(engine))
    namespace: dict[str, Any] = {}
    exec_star = __import__("engine", fromlist=["*"])
    namespace.update({name: getattr(exec_star, name) for name in engine.__all__})
    assert namespace["Engine"] is engine.runtime.engine.Engine
    with pytest.raises(AttributeError, match="no attribute 'Engin'"):
        _ = engine.Engin  # type: ignore[attr-defined]


def test_cli_start_up_leaves_heavy_modules_unimported() -> None:
    # The benchmark times `invoice-engine check`; these imports are what made it slow.
    heavy = ["sqlite_utils", "engine.runtime.engine", "transitions.extensions"]
    code = f"import sys, engine.cli; print(','.join(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_lazy_names_resolve_in_a_fresh_interpreter() -> None:
    # Nothing imported beforehand: the lazy path itself must work (it once recursed forever).
    code = "import engine; print(engine.diagrams.__name__, engine.Engine.__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["engine.diagrams", "Engine"]
