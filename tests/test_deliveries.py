"""Reading deliveries: every provider's real payload shape, and every way a delivery is bad."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import _db
import pytest

import engine
from engine import DeliveryError, load_chart, read_delivery
from engine.cli._run import read_jsonl

STREAMS = Path(__file__).resolve().parent.parent / "examples" / "streams"
Delivery = tuple[Any, Any]


def _deliveries(provider: str) -> list[Delivery]:
    with (STREAMS / f"{provider}.jsonl").open("rb") as f:
        return [d if isinstance(d, tuple) else (d, None) for d in read_jsonl(f)]


def _first(provider: str) -> tuple[dict[str, Any], dict[str, Any]]:
    body, headers = _deliveries(provider)[0]
    doc = json.loads(body) if isinstance(body, str | bytes) else body
    return doc, headers or {}


def test_stripe_event_fields() -> None:
    doc, _ = _first("stripe")
    ev = read_delivery(load_chart("stripe"), json.dumps(doc))
    assert ev.event_id == doc["id"]
    assert ev.invoice_id == doc["data"]["object"]["id"]
    assert ev.event_type == doc["type"]
    assert ev.status == doc["data"]["object"]["status"]
    assert ev.occurred_at == datetime.fromtimestamp(doc["created"], UTC)
    assert not ev.derived_id


def test_pelcro_integer_invoice_id_becomes_text() -> None:
    doc, _ = _first("pelcro")
    ev = read_delivery(load_chart("pelcro"), doc)
    assert isinstance(doc["data"]["object"]["id"], int)
    assert ev.invoice_id == str(doc["data"]["object"]["id"])
    assert ev.event_id == doc["id"]
    assert ev.occurred_at == datetime.fromtimestamp(doc["created"], UTC)


def test_modern_treasury_identity_is_derived_from_the_signed_body() -> None:
    """X-Webhook-ID is not signed (MT's HMAC covers the body only): a delivery sent again
    with another X-Webhook-ID, or none, is the same event."""
    doc, headers = _first("modern_treasury")
    chart = load_chart("modern_treasury")
    ev = read_delivery(chart, doc, headers)
    assert ev.derived_id
    assert ev.event_id.startswith("key:")
    assert ev.invoice_id == doc["data"]["id"]
    assert ev.event_type == doc["event"]
    assert ev.status == doc["data"]["status"]
    assert ev.occurred_at == datetime.fromisoformat(doc["data"]["updated_at"])
    for other in ({**headers, "X-Webhook-ID": "wh_forged"}, {}):
        assert read_delivery(chart, doc, other).event_id == ev.event_id
    later = {**doc, "data": {**doc["data"], "updated_at": "2023-03-31T00:00:00Z"}}
    assert read_delivery(chart, later, headers).event_id != ev.event_id


def test_a_blank_around_a_header_in_a_derived_key_is_not_a_new_key() -> None:
    """Moxie's key holds X-Event-Type, which is also its event type (read stripped)."""
    doc, headers = _first("moxie")
    chart = load_chart("moxie")
    padded = {**headers, "X-Event-Type": f"  {headers['X-Event-Type']} "}
    assert read_delivery(chart, doc, padded).event_id == read_delivery(chart, doc, headers).event_id


def test_moxie_event_type_from_header_and_derived_key() -> None:
    doc, headers = _first("moxie")
    chart = load_chart("moxie")
    ev = read_delivery(chart, doc, headers)
    assert ev.event_type == headers["X-Event-Type"]
    assert ev.invoice_id == doc["id"]
    assert ev.derived_id
    assert ev.event_id.startswith("key:")
    assert ev.occurred_at is None
    # header names are case-insensitive; the derived key is stable across redeliveries
    lower = {k.lower(): v for k, v in headers.items()}
    assert read_delivery(chart, json.dumps(doc), lower).event_id == ev.event_id


def test_chargeover_nested_status_and_derived_key() -> None:
    doc, headers = _first("chargeover")
    ev = read_delivery(load_chart("chargeover"), doc, headers)
    assert ev.invoice_id == str(doc["context_id"])
    assert ev.event_type == f"{doc['context_str']}.{doc['event']}"
    assert ev.status_state is not None
    assert "." in ev.status_state  # open.unpaid: the nested state named by the status string
    assert ev.derived_id


def test_upmind_event_fields() -> None:
    doc, _ = _first("upmind")
    ev = read_delivery(load_chart("upmind"), doc)
    assert ev.event_id == doc["webhook_event_id"]
    assert ev.invoice_id == doc["object_id"]
    assert ev.event_type == doc["hook_code"]
    assert ev.occurred_at == datetime.fromisoformat(doc["event_datetime"]).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    "provider", ["stripe", "pelcro", "modern_treasury", "chargeover", "moxie", "upmind", "lago"]
)
def test_every_stream_line_reads_except_the_one_malformed(provider: str) -> None:
    chart = load_chart(provider)
    bad = []
    for body, headers in _deliveries(provider):
        try:
            ev = read_delivery(chart, body, headers)
        except DeliveryError as exc:
            bad.append(str(exc))
            continue
        assert ev.provider == provider
        assert chart.event(ev.event_type) is not None
        if chart.spec.delivery.occurred_at is not None:
            assert ev.occurred_at is not None
    assert len(bad) == 1, bad
    assert "not JSON" in bad[0]


STRIPE = load_chart("stripe")


def _stripe(**obj: Any) -> dict[str, Any]:
    base = {"id": "in_1", "status": "open"}
    base.update(obj)
    return {"id": "evt_1", "type": "invoice.paid", "created": 1717200000, "data": {"object": base}}


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"{not json", ["not JSON"]),
        (b"\xff\xfe", ["not UTF-8", "0xff"]),
        ("", ["empty"]),
        ("[1, 2]", ["array", "expected an object"]),
        ("null", ["null"]),
        (_stripe(id=None), ["missing invoice id", "$.data.object.id"]),
        ({**_stripe(), "type": "invoice.exploded"}, ["unknown event type", "'invoice.exploded'"]),
        (_stripe(status="sideways"), ["unknown status", "'sideways'"]),
        (_stripe(id=["in_1"]), ["invoice id", "['in_1']", "expected a string or integer"]),
        (_stripe(id=True), ["invoice id", "True"]),
        ({**_stripe(), "created": "yesterday"}, ["occurrence time", "'yesterday'"]),
        ({**_stripe(), "created": 4_102_444_800}, ["in the future"]),
    ],
    ids=lambda v: str(v)[:30],
)
def test_invalid_reason_names_the_path_and_value(body: Any, words: list[str]) -> None:
    with pytest.raises(DeliveryError) as info:
        read_delivery(STRIPE, body)
    for word in words:
        assert word in str(info.value)


def test_delivery_error_carries_path_and_value() -> None:
    with pytest.raises(DeliveryError) as info:
        read_delivery(STRIPE, _stripe(status="sideways"))
    assert info.value.value == "sideways"
    assert info.value.path is not None
    assert "status" in info.value.path


def test_dict_bodies_that_cannot_be_written_as_json_are_invalid_not_raised(
    make_db: _db.Databases,
) -> None:
    eng = engine.Engine(make_db())
    circular: dict[str, object] = {}
    circular["self"] = circular
    deep: dict[str, object] = {}
    cur = deep
    for _ in range(3_000):
        nxt: dict[str, object] = {}
        cur["a"] = nxt
        cur = nxt
    for body in (circular, deep):
        out = eng.apply("stripe", body)
        assert out.status == "invalid"
        assert "unreadable" in str(out)
    stored = _db.bodies(eng)
    assert all(b.startswith(b"<the body mapping") for b in stored)


def test_body_size_limit_counts_bytes_for_text_bodies(make_db: _db.Databases) -> None:
    from engine.runtime.delivery import MAX_BODY_BYTES

    text = "é" * (MAX_BODY_BYTES // 2 + 1)  # fewer characters than the limit, more bytes
    out = engine.Engine(make_db()).apply("stripe", text)
    assert out.status == "invalid"
    assert f"{MAX_BODY_BYTES:,}" in (out.reason or "")


# ------------------------------------------- decided on the bytes that are stored (issue 11.1)


def _moxie(status: str, amount_due: object) -> dict[str, Any]:
    return {"id": "inv_9", "status": status, "amountDue": amount_due, "payments": [{"id": "p1"}]}


def test_a_mapping_is_decided_on_the_bytes_stored_so_replay_agrees(make_db: _db.Databases) -> None:
    from decimal import Decimal

    paid = {"X-Event-Type": "PaymentReceived"}
    eng = engine.Engine(make_db(), on_unknown="adopt")
    assert (
        eng.apply("moxie", _moxie("SENT", 5.0), {"X-Event-Type": "InvoiceSent"}).to_state == "sent"
    )
    # A Decimal is not a JSON type: the body can't be stored as the bytes it was decided on.
    out = eng.apply("moxie", _moxie("PAID", Decimal("0.00")), paid)
    assert out.status == "invalid"
    assert "Decimal" in (out.reason or "")
    # JSON types are: applied, and the stored bytes replay to the very same decision.
    assert eng.apply("moxie", _moxie("PAID", 0.0), paid).to_state == "paid"
    assert eng.replay().ok
    assert not eng.replay(repair=True).mismatches
    state = eng.state("moxie", "inv_9")
    assert state is not None
    assert state.state == "paid"


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ([1, 2], ["list", "bytes, str or a mapping"]),
        (5, ["int"]),
        (None, ["NoneType"]),
        ({"id": 10**5000}, ["can't be written as JSON"]),
        ({"amount": float("nan")}, ["can't be written as JSON"]),
        ({("a", "b"): 1}, ["can't be written as JSON"]),
    ],
    ids=["list", "int", "none", "huge-int", "nan", "tuple-key"],
)
def test_bodies_that_are_not_bytes_text_or_json_are_invalid(
    make_db: _db.Databases, body: Any, words: list[str]
) -> None:
    out = engine.Engine(make_db()).apply("stripe", body)
    assert out.status == "invalid"
    for word in words:
        assert word in (out.reason or "")


def test_bytearray_and_memoryview_are_bytes(make_db: _db.Databases) -> None:
    raw = json.dumps(_stripe()).encode()
    outs = [
        engine.Engine(make_db()).apply("stripe", b).status
        for b in (raw, bytearray(raw), memoryview(raw))
    ]
    assert outs == ["applied"] * 3


@pytest.mark.parametrize("headers", [[("a", "b")], "x-a: b", 5, {1: b"\xff", "k": object()}])
def test_headers_that_are_not_a_mapping_of_text_are_invalid_or_read(
    make_db: _db.Databases, headers: Any
) -> None:
    eng = engine.Engine(make_db())
    out = eng.apply("stripe", json.dumps(_stripe()), headers)
    if isinstance(headers, dict):  # names and values that can be made text are read
        assert out.status == "applied"
    else:
        assert out.status == "invalid"
        assert type(headers).__name__ in (out.reason or "")
    assert _db.bodies(eng) == [json.dumps(_stripe()).encode()]  # the body is kept either way


def test_an_oversize_body_keeps_the_limit_its_length_and_hash(make_db: _db.Databases) -> None:
    import hashlib

    from engine.runtime.delivery import MAX_BODY_BYTES

    body = b"x" * (MAX_BODY_BYTES * 3)
    eng = engine.Engine(make_db())
    out = eng.apply("stripe", body)
    assert out.status == "invalid"
    assert f"{len(body):,} bytes" in (out.reason or "")
    assert hashlib.sha256(body).hexdigest() in (out.reason or "")
    assert _db.bodies(eng) == [body[:MAX_BODY_BYTES]]


@pytest.mark.parametrize("field", ["id", "type", "invoice", "status"])
def test_json_escapes_for_lone_surrogates_are_invalid_not_raised(
    make_db: _db.Databases, field: str
) -> None:
    # "\ud800" in JSON text decodes to a lone surrogate, which no database can store as text.
    escaped = "x\\ud800"
    parts = {"id": '"evt_1"', "type": '"invoice.created"', "invoice": '"in_1"', "status": '"draft"'}
    parts[field] = f'"{escaped}"'
    body = (
        f'{{"id": {parts["id"]}, "type": {parts["type"]}, "created": 1700000000,'
        f' "data": {{"object": {{"id": {parts["invoice"]}, "status": {parts["status"]}}}}}}}'
    ).encode()
    eng = engine.Engine(make_db())
    out = eng.apply("stripe", body)
    assert out.status == "invalid"
    assert "Unicode" in (out.reason or "") or "unknown" in (out.reason or "")
    assert _db.bodies(eng) == [body]


def test_a_name_that_is_not_unicode_text_is_an_engine_error(make_db: _db.Databases) -> None:
    eng = engine.Engine(make_db())
    with pytest.raises(engine.StoreError, match="not valid Unicode"):
        eng.state("stripe", "in_\ud800")
