"""The engine's promises: outcomes, idempotency, order, batching, replay, nothing lost."""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import _db
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine import Engine
from engine.cli._run import read_jsonl
from engine.runtime.engine import Delivery

STREAMS = Path(__file__).resolve().parent.parent / "examples" / "streams"
PROVIDERS = ["stripe", "pelcro", "modern_treasury", "chargeover", "moxie", "upmind", "lago"]
TIMED = ["stripe", "pelcro", "modern_treasury", "upmind"]
UNTIMED = ["chargeover", "moxie", "lago"]


def stream(provider: str) -> list[Delivery]:
    with (STREAMS / f"{provider}.jsonl").open("rb") as f:
        return list(read_jsonl(f))


def states(eng: Engine, provider: str) -> dict[str, str]:
    return {i.invoice_id: i.state for i in eng.invoices(provider)}


def live_outcomes(eng: Engine, provider: str) -> dict[str, tuple[Any, ...]]:
    """Each event's outcome as it counts in the fold (the live row), by event id."""
    rows = _db.live_events(eng, provider)
    return {r.event_id or "": (r.outcome, r.from_state, r.to_state, r.trigger) for r in rows}


def run(provider: str, deliveries: list[Delivery], db: str | Path, **kw: Any) -> Engine:
    eng = Engine(db, **kw)
    for d in deliveries:
        body, headers = d if isinstance(d, tuple) else (d, None)
        eng.apply(provider, body, headers)
    return eng


@pytest.mark.parametrize("provider", PROVIDERS)
def test_every_outcome_kind(make_db: _db.Databases, provider: str) -> None:
    eng = run(provider, stream(provider), make_db())
    assert set(eng.counts(provider)) == {"applied", "unchanged", "duplicate", "rejected", "invalid"}
    assert sum(eng.counts(provider).values()) == len(stream(provider))  # nothing dropped


@pytest.mark.parametrize("provider", PROVIDERS)
@given(data=st.data())
def test_redelivery_changes_nothing(
    make_db: _db.Databases, provider: str, data: st.DataObject
) -> None:
    deliveries = stream(provider)
    eng = run(provider, deliveries, make_db())
    before_states, before = states(eng, provider), live_outcomes(eng, provider)
    again = data.draw(st.lists(st.sampled_from(deliveries), max_size=30))
    for d in again:
        body, headers = d if isinstance(d, tuple) else (d, None)
        out = eng.apply(provider, body, headers)
        allowed = {"duplicate", "invalid"} | ({"rejected"} if provider in UNTIMED else set())
        assert out.status in allowed, out
    assert states(eng, provider) == before_states
    after = live_outcomes(eng, provider)
    assert {k: v[0] for k, v in after.items()} == {k: v[0] for k, v in before.items()}


@pytest.mark.parametrize("provider", TIMED)
@given(seed=st.randoms(use_true_random=False))
def test_timed_providers_are_arrival_order_independent(
    make_db: _db.Databases, provider: str, seed: random.Random
) -> None:
    deliveries = stream(provider)
    reference = run(provider, deliveries, make_db())
    shuffled = list(deliveries)
    seed.shuffle(shuffled)
    eng = run(provider, shuffled, make_db())
    assert states(eng, provider) == states(reference, provider)
    assert live_outcomes(eng, provider) == live_outcomes(reference, provider)
    assert eng.replay(provider).ok


@pytest.mark.parametrize("provider", TIMED)
def test_reversed_order_equals_stream_order(make_db: _db.Databases, provider: str) -> None:
    deliveries = stream(provider)
    backwards = run(provider, deliveries[::-1], make_db())
    forwards = run(provider, deliveries, make_db())
    assert states(backwards, provider) == states(forwards, provider)
    assert live_outcomes(backwards, provider) == live_outcomes(forwards, provider)


def _stripe(event_id: str, kind: str, created: int, status: str) -> dict[str, Any]:
    return {
        "id": event_id,
        "type": kind,
        "created": created,
        "data": {"object": {"id": "in_x", "status": status, "amount_remaining": 0}},
    }


def test_late_event_refolds_and_records_revisions(make_db: _db.Databases) -> None:
    eng = Engine(make_db())
    eng.apply("stripe", _stripe("evt_1", "invoice.created", 1_700_000_000, "draft"))
    # no status snapshot to catch up with: the payment waits for the finalization
    paid_body = _stripe("evt_3", "invoice.paid", 1_700_000_200, "paid")
    del paid_body["data"]["object"]["status"]
    paid = eng.apply("stripe", paid_body)
    assert paid.status == "rejected"
    assert paid.retryable  # a draft can't be paid yet; a later finalize could make it legal
    late = eng.apply("stripe", _stripe("evt_2", "invoice.finalized", 1_700_000_100, "open"))
    assert late.status == "applied"
    assert (late.from_state, late.to_state) == ("draft", "open")
    state = eng.state("stripe", "in_x")
    assert state is not None
    assert state.state == "paid"
    revised = [o for o in eng.history("stripe", "in_x") if o.revisions]
    assert [(o.event_id, o.status) for o in revised] == [("evt_3", "applied")]
    rows = [(r.old_outcome, r.new_outcome) for r in _db.revisions(eng)]
    assert rows == [("rejected", "applied")]


def _co(status: str, event: str = "status", mod: str = "2024-05-01 10:00:00") -> dict[str, Any]:
    return {
        "context_str": "invoice",
        "context_id": 7,
        "event": event,
        "data": {"invoice": {"invoice_status_str": status, "mod_datetime": mod}},
    }


def test_untimed_retry_of_retryable_rejection(make_db: _db.Databases) -> None:
    eng = Engine(make_db(), on_unknown="reject")
    first = eng.apply("chargeover", _co("closed-paid"))
    assert first.status == "rejected"
    assert first.retryable
    assert eng.apply("chargeover", _co("open-unpaid", "insert")).status == "applied"
    retry = eng.apply("chargeover", _co("closed-paid"))
    assert retry.status == "applied"
    assert (retry.from_state, retry.to_state) == ("open.unpaid", "closed.paid")
    superseded = next(r for r in _db.events(eng) if r.seq == first.seq)
    assert superseded.in_fold == 0
    assert "superseded" in (superseded.reason or "")
    assert eng.apply("chargeover", _co("closed-paid")).status == "duplicate"
    assert eng.replay().ok


def test_untimed_keep_arrival_order(make_db: _db.Databases) -> None:
    eng = Engine(make_db())
    eng.apply("chargeover", _co("open-unpaid", "insert", "2024-05-01 09:00:00"))
    eng.apply("chargeover", _co("closed-paid", mod="2024-05-03 00:00:00"))
    # an earlier-dated overdue status arriving last is not re-folded: paid is final
    late = eng.apply("chargeover", _co("open-overdue", mod="2024-05-02 00:00:00"))
    assert late.status == "rejected"
    history = eng.history("chargeover", "7")
    seqs = [o.seq or 0 for o in history]
    assert seqs == sorted(seqs)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_apply_many_equals_one_by_one(make_db: _db.Databases, provider: str) -> None:
    deliveries = stream(provider) * 2
    one = Engine(make_db())
    singles = []
    for d in deliveries:
        body, headers = d if isinstance(d, tuple) else (d, None)
        singles.append(one.apply(provider, body, headers))
    many = Engine(make_db(), batch_size=3)
    outs = many.apply_many(provider, deliveries)
    fields = ("status", "from_state", "to_state", "event_id", "reason", "seq", "revisions")
    assert [[getattr(o, f) for f in fields] for o in outs] == [
        [getattr(o, f) for f in fields] for o in singles
    ]
    assert states(many, provider) == states(one, provider)
    cols = ("seq", "provider", "event_id", "in_fold", "invoice_id", "outcome", "reason",
            "from_state", "to_state", "body")  # fmt: skip
    assert [[getattr(r, c) for c in cols] for r in _db.events(many)] == [
        [getattr(r, c) for c in cols] for r in _db.events(one)
    ]


def test_one_commit_of_every_provider_equals_one_by_one(make_db: _db.Databases) -> None:
    # What a receiver's group commit does: deliveries of several providers, interleaved, in
    # one transaction. Outcomes come back in the order given, equal to applying one by one.
    mixed = [(p, d) for p in PROVIDERS for d in stream(p) * 2]
    random.Random(7).shuffle(mixed)
    one = Engine(make_db())
    singles = []
    for provider, d in mixed:
        body, headers = d if isinstance(d, tuple) else (d, None)
        singles.append(one.apply(provider, body, headers))
    group = Engine(make_db())
    prepared = []
    for n, (provider, d) in enumerate(mixed):
        body, headers = d if isinstance(d, tuple) else (d, None)
        prepared.append(group.prepare(provider, body, headers, verified=n % 3 == 0 or None))
    outs = group.commit(prepared)
    fields = ("provider", "status", "from_state", "to_state", "event_id", "reason", "revisions")
    assert [[getattr(o, f) for f in fields] for o in outs] == [
        [getattr(o, f) for f in fields] for o in singles
    ]
    for provider in PROVIDERS:
        assert states(group, provider) == states(one, provider)
        assert live_outcomes(group, provider) == live_outcomes(one, provider)
    seqs = [r.seq for r in _db.events(group)]
    assert seqs == list(range(1, len(mixed) + 1))
    verified = {o.seq: o.verified for o in outs}
    assert [r.verified for r in _db.events(group)] == [
        None if verified[r.seq] is None else int(verified[r.seq] or 0) for r in _db.events(group)
    ]
    assert {o.verified for o in outs} == {True, None}


def test_prepare_records_whether_the_signature_was_checked(make_db: _db.Databases) -> None:
    eng = Engine(make_db())
    bodies = [_stripe(f"evt_{n}", "invoice.created", 1_700_000_000, "draft") for n in range(3)]
    for n, verified in enumerate((True, False, None)):
        bodies[n]["data"]["object"]["id"] = f"in_{n}"
        eng.commit([eng.prepare("stripe", bodies[n], verified=verified)])
    assert [r.verified for r in _db.events(eng)] == [1, 0, None]
    assert [eng.history("stripe", f"in_{n}")[0].verified for n in range(3)] == [True, False, None]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_replay_reproduces_and_detects_tampering(make_db: _db.Databases, provider: str) -> None:
    db = make_db(shared=True)
    eng = run(provider, stream(provider), db)
    assert eng.replay(provider).ok
    invoice = next(iter(eng.invoices(provider)))
    bogus = next(s for s in eng.chart(provider).states if s != invoice.state)
    _db.set_state_behind_the_engine(db, invoice.invoice_id, bogus)
    report = eng.replay(provider)
    assert not report.ok
    assert [(m.invoice_id, m.what, m.stored) for m in report.mismatches] == [
        (invoice.invoice_id, "state", bogus)
    ]
    assert eng.replay(provider, repair=True).repaired
    assert eng.replay(provider).ok
    repaired = eng.state(provider, invoice.invoice_id)
    assert repaired is not None
    assert repaired.state == invoice.state


@pytest.mark.parametrize("provider", PROVIDERS)
@given(body=st.one_of(st.binary(max_size=200), st.text(max_size=200)))
def test_bad_input_never_raises_and_is_stored_raw(
    make_db: _db.Databases, provider: str, body: bytes | str
) -> None:
    eng = Engine(make_db())
    out = eng.apply(provider, body, {"X-Event-Type": "PaymentReceived", "X-Webhook-ID": "w"})
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    stored = next(r for r in _db.events(eng) if r.seq == out.seq)
    assert stored.body == raw
    assert out.status in {"invalid", "rejected", "applied", "unchanged"}


def test_on_unknown_adopt_vs_reject(make_db: _db.Databases) -> None:
    body = _stripe("evt_9", "invoice.paid", 1_700_000_000, "paid")
    adopt = Engine(make_db(), on_unknown="adopt").apply("stripe", body)
    assert (adopt.status, adopt.adopted, adopt.to_state) == ("applied", True, "paid")
    eng = Engine(make_db(), on_unknown="reject")
    reject = eng.apply("stripe", body)
    assert (reject.status, reject.retryable, reject.adopted) == ("rejected", True, False)
    assert eng.state("stripe", "in_x") is None


def test_on_unknown_must_be_a_known_policy() -> None:
    with pytest.raises(Exception, match="'adopt' or 'reject'"):
        Engine(":memory:", on_unknown="maybe")  # type: ignore[arg-type]


# Any Python value a caller might hand over as a body or as headers (issue 11.1).
_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(), st.binary(),
    st.decimals(), st.datetimes(), st.just(object()), st.complex_numbers(),
)  # fmt: skip
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(st.one_of(st.text(), st.integers(), st.none()), inner, max_size=4),
        st.builds(bytearray, st.binary()),
        st.frozensets(st.integers(), max_size=3),
    ),
    max_leaves=12,
)


@pytest.mark.parametrize("provider", ["stripe", "moxie"])
@given(body=_VALUES, headers=_VALUES)
def test_apply_never_raises_for_any_python_value(
    make_db: _db.Databases, provider: str, body: Any, headers: Any
) -> None:
    eng = Engine(make_db())
    out = eng.apply(provider, body, headers)
    assert out.status in {"applied", "unchanged", "rejected", "invalid", "duplicate", "ignored"}
    assert out.status != "invalid" or out.reason
    assert [o.status for o in eng.apply_many(provider, [(body, headers), body])]
    assert len(_db.events(eng)) == 3  # every delivery is a row, whatever it was
    assert eng.replay().ok


def test_a_reported_status_the_chart_can_reach_is_caught_up_with(make_db: _db.Databases) -> None:
    # issue 11.6: first seen through invoice.paid (adopted paid), then a late invoice.created.
    eng = Engine(make_db())
    assert eng.apply("stripe", _stripe("evt_2", "invoice.paid", 1_700_000_200, "paid")).adopted
    late = eng.apply("stripe", _stripe("evt_1", "invoice.created", 1_700_000_000, "draft"))
    assert late.status == "applied"
    state = eng.state("stripe", "in_x")
    assert state is not None
    assert state.state == "paid"  # not dragged back to draft behind what Stripe said
    paid = next(o for o in eng.history("stripe", "in_x") if o.event_id == "evt_2")
    assert (paid.status, paid.from_state, paid.to_state) == ("applied", "draft", "paid")
    assert paid.inferred == ("finalize: draft → open",)
    assert "inferred" in str(paid)
    assert paid.revisions == 1
    assert eng.replay().ok


def test_a_reported_status_the_chart_cannot_reach_stays_rejected(make_db: _db.Databases) -> None:
    eng = Engine(make_db())
    eng.apply("stripe", _stripe("evt_1", "invoice.created", 1_700_000_000, "draft"))
    eng.apply("stripe", _stripe("evt_2", "invoice.paid", 1_700_000_100, "paid"))
    voided = eng.apply("stripe", _stripe("evt_3", "invoice.voided", 1_700_000_200, "void"))
    assert voided.status == "rejected"  # paid -> void: Stripe's chart has no way there
    assert voided.inferred == ()


def test_a_late_event_says_how_many_earlier_outcomes_it_revised(make_db: _db.Databases) -> None:
    # A late invoice.deleted (before the finalization) re-folds a paid invoice to deleted: the
    # caller must be told that two recorded outcomes no longer count.
    eng = Engine(make_db())
    eng.apply("stripe", _stripe("evt_1", "invoice.created", 1_700_000_000, "draft"))
    eng.apply("stripe", _stripe("evt_2", "invoice.finalized", 1_700_000_010, "open"))
    eng.apply("stripe", _stripe("evt_3", "invoice.paid", 1_700_000_030, "paid"))
    late = eng.apply("stripe", _stripe("evt_4", "invoice.deleted", 1_700_000_005, "deleted"))
    assert late.status == "applied"
    assert late.caused_revisions == 2
    assert "revised 2 earlier outcomes" in str(late)
    assert [o.caused_revisions for o in eng.outcomes(late.seq or 0)] == [2]


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"clock": lambda: "now"}, "clock()"),
        ({"charts": {"stripe": "x"}}, "give a Chart"),
    ],
)
def test_engine_arguments_of_the_wrong_kind_are_refused(kwargs: Any, words: str) -> None:
    from engine import EngineError

    with pytest.raises(EngineError, match=re.escape(words)):
        Engine(":memory:", **kwargs)


@pytest.mark.parametrize("deliveries", ["abc", b"abc", {"a": 1}])
def test_apply_many_wants_an_iterable_of_deliveries(deliveries: Any) -> None:
    from engine import EngineError

    with pytest.raises(EngineError, match="iterable of bodies"):
        Engine(":memory:").apply_many("stripe", deliveries)


def test_a_readonly_engine_refuses_to_repair(make_db: _db.Databases) -> None:
    from engine import EngineError

    db = make_db(shared=True)
    Engine(db).close()
    with Engine(db, readonly=True) as eng, pytest.raises(EngineError, match="read"):
        eng.replay(repair=True)


def test_an_event_type_the_chart_does_not_map_is_ignored_not_invalid(
    make_db: _db.Databases,
) -> None:
    eng = Engine(make_db())
    body = {"id": "evt_9", "type": "customer.created", "created": 1_700_000_000,
            "data": {"object": {"id": "cus_1"}}}  # fmt: skip
    out = eng.apply("stripe", body)
    assert (out.status, out.event_type) == ("ignored", "customer.created")
    assert "unknown event type" in (out.reason or "")
    assert eng.counts() == {"ignored": 1}


def test_ids_are_looked_up_as_deliveries_read_them(make_db: _db.Databases) -> None:
    eng = Engine(make_db())
    eng.apply("stripe", _stripe("evt_1", "invoice.created", 1_700_000_000, "draft"))
    assert eng.state("stripe", " in_x\n") == eng.state("stripe", "in_x")
    assert eng.history("stripe", " in_x") == eng.history("stripe", "in_x")


def test_invoice_state_says_first_seen_and_keeps_the_old_name() -> None:
    eng = Engine(":memory:")
    eng.apply("stripe", _stripe("evt_1", "invoice.created", 1_700_000_000, "draft"))
    state = eng.state("stripe", "in_x")
    assert state is not None
    assert "first_seen_at" in state.model_dump()
    assert "created_at" not in state.model_dump()
    assert state.created_at == state.first_seen_at


def test_an_invoice_state_dumped_under_its_old_field_name_still_loads() -> None:
    from engine import InvoiceState

    old = {"provider": "stripe", "invoice_id": "i", "state": "draft", "canonical": "draft",
           "version": 1, "created_at": "2024-01-01T00:00:00Z",
           "updated_at": "2024-01-01T00:00:00Z"}  # fmt: skip
    assert InvoiceState(**old).first_seen_at.year == 2024
