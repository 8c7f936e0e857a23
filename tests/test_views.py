"""The operator views, through every store: invoices by state, dead letters, drift.

``Engine.invoices`` filters in the database on a leaf, compound or canonical state, checked
against the charts first; ``Engine.dead_letters`` lists the live ``rejected`` + ``retryable``
events, oldest first, until a delivery makes them legal; ``Engine.drift`` lists invoices whose
last status snapshot, read as a state through the chart, is not where the engine has them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import _db
import pytest
from pydantic import ValidationError

import engine
from engine import Drift, Engine, EngineError, UnknownProvider, UnknownState, load_chart
from engine.cli._run import read_jsonl
from engine.runtime.engine import Delivery

STREAMS = Path(__file__).resolve().parent.parent / "examples" / "streams"
VOIDED_WHEN_PAID = "in_1PqA8sDemo0005"  # the stripe stream's rejected invoice.voided
DELETED = "in_1PqA8sDemo0004"  # invoice.deleted carries status draft, the state before it


def stream(provider: str) -> list[Delivery]:
    with (STREAMS / f"{provider}.jsonl").open("rb") as f:
        return list(read_jsonl(f))


def stripe(event_id: str, invoice: str, kind: str, at: int, status: str | None) -> Any:
    obj: dict[str, Any] = {"id": invoice}
    if status is not None:
        obj["status"] = status
    return {"id": event_id, "type": f"invoice.{kind}", "created": at, "data": {"object": obj}}


def chargeover(invoice: int, event: str, status: str, at: str) -> Any:
    snapshot = {"invoice_status_str": status, "mod_datetime": at}
    return {"context_str": "invoice", "context_id": invoice, "event": event,
            "data": {"invoice": snapshot}}  # fmt: skip


@pytest.fixture
def every(make_db: _db.Databases) -> Engine:
    """An engine holding every bundled provider's example stream."""
    eng = Engine(make_db())
    for provider in ("stripe", "pelcro", "modern_treasury", "chargeover", "moxie", "upmind"):
        eng.apply_many(provider, stream(provider))
    return eng


# ------------------------------------------------------------------------------- invoices


def test_invoices_filter_on_state_and_canonical(every: Engine) -> None:
    everything = list(every.invoices())
    assert everything == sorted(everything, key=lambda i: (i.provider, i.invoice_id))
    paid = list(every.invoices("stripe", state="paid"))
    assert paid == [i for i in everything if i.provider == "stripe" and i.state == "paid"]
    assert len(paid) == 3
    void = list(every.invoices(canonical="void"))
    assert void == [i for i in everything if i.canonical == "void"]
    assert {i.provider for i in void} > {"stripe", "chargeover"}  # across providers
    both = list(every.invoices("stripe", state="deleted", canonical="void"))
    assert [i.invoice_id for i in both] == [DELETED]
    assert list(every.invoices("stripe", state="deleted", canonical="paid")) == []


def test_a_compound_state_means_every_state_inside_it(every: Engine) -> None:
    closed = list(every.invoices("chargeover", state="closed"))
    assert closed
    assert {i.state for i in closed} == {"closed.paid", "closed.void"}
    assert closed == [i for i in every.invoices("chargeover") if i.state.startswith("closed.")]
    assert {i.state for i in every.invoices("chargeover", state="closed.void")} == {"closed.void"}


def test_without_a_provider_a_state_of_any_chart_is_taken(every: Engine) -> None:
    # stripe's leaf `paid` and chargeover's `closed.paid` are different names: each its own
    assert {i.provider for i in every.invoices(state="paid")} >= {"stripe", "moxie"}
    assert {i.provider for i in every.invoices(state="closed.paid")} == {"chargeover"}
    assert list(every.invoices(state="payment_pending")) == []  # a state, nobody is in it


def test_limit_takes_the_first_in_order(every: Engine) -> None:
    everything = list(every.invoices())
    assert list(every.invoices(limit=3)) == everything[:3]
    assert (
        list(every.invoices(canonical="paid", limit=2))
        == [i for i in everything if i.canonical == "paid"][:2]
    )
    for bad in (0, -1, True, 1.5):
        with pytest.raises(EngineError, match="limit="):
            every.invoices(limit=bad)  # type: ignore[arg-type]


def test_invoices_and_drift_are_in_code_point_order_on_every_store(
    make_db: _db.Databases,
) -> None:
    db = make_db(shared=True)
    with Engine(db) as eng:
        for n, invoice in enumerate(["a", "B", "_x"]):  # voided once paid: drift, each
            eng.apply_many("stripe", [
                stripe(f"c{n}", invoice, "created", 100, "draft"),
                stripe(f"p{n}", invoice, "paid", 200, "paid"),
                stripe(f"v{n}", invoice, "voided", 300, "void"),
            ])  # fmt: skip
    if db.startswith("postgresql:"):  # sorted as in a database made with a locale, not "C"
        assert _db.sort_by_locale(db, "invoices", ["provider", "invoice_id"]), "no ICU"
    # by code point, as Python sorts: "B" (66) < "_x" (95) < "a" (97), whatever the locale
    with Engine(db, readonly=True) as eng:
        assert [i.invoice_id for i in eng.invoices()] == ["B", "_x", "a"]
        assert [i.invoice_id for i in eng.invoices("stripe", limit=2)] == ["B", "_x"]
        assert [i.invoice_id for i in eng.invoices(state="paid", limit=1)] == ["B"]
        assert [d.invoice_id for d in eng.drift()] == ["B", "_x", "a"]


def test_postgres_view_queries_order_text_by_code_point() -> None:
    from engine.store._views_sql import POSTGRES_COLLATE, invoices_query, snapshots_query

    def order(sql: str) -> str:
        return sql.split("ORDER BY", 1)[1]

    kw: dict[str, Any] = {"unborn": False, "states": ["paid"], "canonical": None, "limit": 5}
    postgres, _ = invoices_query("%s", None, arrays=True, **kw)
    assert 'provider COLLATE "C", invoice_id COLLATE "C"' in order(postgres)
    explicit, _ = invoices_query("%s", None, arrays=True, collate=POSTGRES_COLLATE, **kw)
    assert explicit == postgres
    sqlite, _ = invoices_query("?", None, arrays=False, **kw)
    assert "COLLATE" not in sqlite
    drift, _ = snapshots_query("%s", "stripe", collate=POSTGRES_COLLATE)
    assert 'i.provider COLLATE "C", i.invoice_id COLLATE "C"' in order(drift)


def test_unknown_names_are_errors_that_list_the_choices(every: Engine) -> None:
    with pytest.raises(UnknownState) as exc:
        every.invoices("stripe", state="closed.paid")  # chargeover's, not stripe's
    assert exc.value.chart == "stripe"
    assert exc.value.states == ["draft", "open", "paid", "uncollectible", "void", "deleted"]
    assert "Unknown state 'closed.paid' in chart 'stripe'. States are: draft, open" in str(
        exc.value
    )
    with pytest.raises(UnknownState, match="Unknown canonical state 'refunded' in chart 'stripe'"):
        every.invoices("stripe", canonical="refunded")
    with pytest.raises(UnknownState) as exc:
        every.invoices(state="nonsense")
    assert exc.value.chart == ""
    assert "no chart has it" in str(exc.value)
    assert {"closed.paid", "closed", "paid", "voided"} <= set(exc.value.states)
    with pytest.raises(UnknownState, match="canonical state 'PAID': no chart has it"):
        every.invoices(canonical="PAID")
    with pytest.raises(UnknownProvider) as unknown:
        every.invoices("strpe")
    assert "stripe" in unknown.value.available


def test_invoices_only_seen_through_rejected_events_are_not_listed(
    make_db: _db.Databases,
) -> None:
    eng = Engine(make_db(), on_unknown="reject")
    eng.apply("stripe", stripe("e1", "in_1", "paid", 100, "paid"))  # never born
    eng.apply("stripe", stripe("e2", "in_2", "created", 100, "draft"))
    assert [i.invoice_id for i in eng.invoices()] == ["in_2"]
    assert [i.invoice_id for i in eng.invoices(state="draft")] == ["in_2"]


def test_a_chart_given_in_code_counts_without_a_provider(make_db: _db.Databases) -> None:
    spec = load_chart("stripe").spec
    renamed = engine.Chart(spec.model_copy(update={"provider": "mystripe"}))
    eng = Engine(make_db(), charts={"mystripe": renamed})
    eng.apply("mystripe", stripe("e1", "in_1", "created", 100, "draft"))
    assert [i.provider for i in eng.invoices(state="draft")] == ["mystripe"]


# --------------------------------------------------------------------------- dead letters


def test_dead_letters_wait_until_a_delivery_makes_them_legal(make_db: _db.Databases) -> None:
    eng = Engine(make_db(), on_unknown="reject")
    first = eng.apply("stripe", stripe("e2", "in_1", "finalized", 200, "open"))
    eng.apply("stripe", stripe("e9", "in_9", "paid", 150, "paid"))
    eng.apply("stripe", stripe("e2", "in_1", "finalized", 200, "open"))  # redelivered: duplicate
    assert first.status == "rejected"
    assert first.retryable
    letters = eng.dead_letters()
    assert [(o.seq, o.event_id, o.invoice_id) for o in letters] == [
        (1, "e2", "in_1"),
        (2, "e9", "in_9"),
    ]
    assert letters[0] == eng.history("stripe", "in_1")[0]
    assert all(o.status == "rejected" and o.retryable for o in letters)
    assert [o.event_id for o in eng.dead_letters(limit=1)] == ["e2"]
    assert eng.dead_letters("pelcro") == []
    # the event it needed arrives (earlier in time): the invoice is re-folded, e2 applies
    eng.apply("stripe", stripe("e1", "in_1", "created", 100, "draft"))
    assert [o.event_id for o in eng.dead_letters("stripe")] == ["e9"]
    with pytest.raises(UnknownProvider):
        eng.dead_letters("strpe")
    with pytest.raises(EngineError, match="limit=0"):
        eng.dead_letters(limit=0)


def test_a_rejection_for_good_is_not_a_dead_letter(every: Engine) -> None:
    # the stripe stream's invoice.voided on a paid invoice is rejected, not retryable
    rejected = [o for o in every.history("stripe", VOIDED_WHEN_PAID) if o.status == "rejected"]
    assert rejected
    assert not rejected[0].retryable
    assert every.dead_letters() == []


def test_an_untimed_retry_replaces_the_dead_letter(make_db: _db.Databases) -> None:
    eng = Engine(make_db(), on_unknown="reject")
    status = chargeover(7, "status", "closed-paid", "2024-05-02 09:00:00")
    assert eng.apply("chargeover", status).status == "rejected"
    assert [o.seq for o in eng.dead_letters()] == [1]
    assert eng.apply("chargeover", status).status == "rejected"  # decided again, still early
    assert [o.seq for o in eng.dead_letters()] == [2]  # the earlier attempt is superseded
    eng.apply("chargeover", chargeover(7, "insert", "open-unpaid", "2024-05-01 09:00:00"))
    assert eng.apply("chargeover", status).status == "applied"
    assert eng.dead_letters() == []


# ---------------------------------------------------------------------------------- drift


def test_drift_in_the_example_streams(every: Engine) -> None:
    found = {(d.provider, d.invoice_id): d for d in every.drift()}
    assert list(found) == sorted(found)
    stripe_drift = found[("stripe", VOIDED_WHEN_PAID)]
    assert (stripe_drift.state, stripe_drift.canonical) == ("paid", "paid")
    assert stripe_drift.snapshot == stripe_drift.snapshot_state == "void"
    assert (stripe_drift.outcome, stripe_drift.event_type) == ("rejected", "invoice.voided")
    last = every.history("stripe", VOIDED_WHEN_PAID)[-1]
    assert (stripe_drift.event_seq, stripe_drift.event_id) == (last.seq, last.event_id)
    assert stripe_drift.seen_at == last.received_at
    assert stripe_drift.occurred_at == last.occurred_at
    assert ("stripe", DELETED) not in found  # its snapshot (draft) is from before the delete
    # chargeover's vocabulary is not its state names: the chart's statuses translate it
    co = found[("chargeover", "10021")]
    assert (co.state, co.snapshot, co.snapshot_state) == (
        "closed.paid",
        "closed-void",
        "closed.void",
    )
    # a moxie partial payment delivered after the full one says PARTIAL: old news, no drift
    assert not any(p == "moxie" for p, _ in found)
    assert every.drift("stripe") == [stripe_drift]
    assert all(d.provider == "chargeover" for d in every.drift("chargeover"))


def test_no_drift_when_the_last_status_is_the_engines(make_db: _db.Databases) -> None:
    eng = Engine(make_db())
    eng.apply_many("stripe", [
        stripe("e1", "in_1", "created", 100, "draft"),
        stripe("e2", "in_1", "finalized", 200, "open"),
        stripe("e3", "in_1", "paid", 300, "paid"),
    ])  # fmt: skip
    assert eng.drift() == []
    eng.apply("stripe", stripe("e4", "in_1", "voided", 400, "void"))  # paid is final
    assert [d.invoice_id for d in eng.drift()] == ["in_1"]
    # a later event without a snapshot that the engine followed is the provider's newer word
    eng.apply("stripe", stripe("f1", "in_2", "created", 100, "draft"))
    eng.apply("stripe", stripe("f2", "in_2", "finalized", 200, None))
    assert eng.state("stripe", "in_2") is not None
    assert [d.invoice_id for d in eng.drift()] == ["in_1"]


def test_the_last_snapshot_is_the_last_in_fold_order_not_in_arrival(
    make_db: _db.Databases,
) -> None:
    eng = Engine(make_db())
    eng.apply("stripe", stripe("e1", "in_1", "created", 100, "draft"))
    eng.apply("stripe", stripe("e3", "in_1", "voided", 300, "void"))  # caught up: open → void
    eng.apply("stripe", stripe("e2", "in_1", "finalized", 200, "open"))  # late, and older
    state = eng.state("stripe", "in_1")
    assert state is not None
    assert state.state == "void"
    assert eng.drift() == []


def test_a_status_the_chart_no_longer_knows_drifts(make_db: _db.Databases) -> None:
    db = make_db(shared=True)
    with Engine(db) as eng:
        eng.apply("chargeover", chargeover(7, "insert", "open-unpaid", "2024-05-01 09:00:00"))
        assert eng.drift() == []
    spec = load_chart("chargeover").spec
    edited = spec.model_copy(update={"delivery": spec.delivery.model_copy(update={"statuses": {}})})
    with Engine(db, charts={"chargeover": engine.Chart(edited)}, readonly=True) as eng:
        (d,) = eng.drift()
    assert (d.snapshot, d.snapshot_state, d.state) == ("open-unpaid", None, "open.unpaid")
    assert "no state of the chart" in str(d)


def test_unborn_invoices_and_unknown_providers(make_db: _db.Databases) -> None:
    eng = Engine(make_db(), on_unknown="reject")
    eng.apply("stripe", stripe("e1", "in_1", "paid", 100, "paid"))  # rejected: never born
    assert eng.drift() == []  # a dead letter, not drift
    with pytest.raises(UnknownProvider):
        eng.drift("strpe")


def test_drift_is_a_frozen_record_that_prints_and_round_trips(every: Engine) -> None:
    (d,) = every.drift("stripe")
    assert str(d) == (
        f"stripe/{VOIDED_WHEN_PAID}: engine paid, provider 'void' at #{d.event_seq} "
        "invoice.voided (rejected)"
    )
    assert Drift.model_validate_json(d.model_dump_json()) == d
    with pytest.raises(ValidationError):
        d.state = "void"  # type: ignore[misc]
    assert "Drift" in engine.__all__


def test_views_read_without_writing(make_db: _db.Databases) -> None:
    db = make_db(shared=True)
    with Engine(db) as eng:
        eng.apply_many("stripe", stream("stripe"))
    before = (_db.events(db), _db.invoices(db), _db.revisions(db))
    with Engine(db, readonly=True) as eng:
        assert len(list(eng.invoices(canonical="paid"))) == 3
        assert eng.dead_letters() == []
        assert [d.invoice_id for d in eng.drift()] == [VOIDED_WHEN_PAID]
    assert (_db.events(db), _db.invoices(db), _db.revisions(db)) == before
