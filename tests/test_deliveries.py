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


def test_modern_treasury_event_id_from_header() -> None:
    doc, headers = _first("modern_treasury")
    ev = read_delivery(load_chart("modern_treasury"), doc, headers)
    assert ev.event_id == headers["X-Webhook-ID"]
    assert ev.invoice_id == doc["data"]["id"]
    assert ev.event_type == doc["event"]
    assert ev.status == doc["data"]["status"]
    assert ev.occurred_at == datetime.fromisoformat(doc["data"]["updated_at"])
    # without the header the delivery has no event id: invalid, naming the header
    with pytest.raises(DeliveryError, match=r"(?i)x-webhook-id"):
        read_delivery(load_chart("modern_treasury"), doc, {})


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
    "provider", ["stripe", "pelcro", "modern_treasury", "chargeover", "moxie", "upmind"]
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


def test_dict_bodies_that_cannot_be_written_as_json_are_invalid_not_raised() -> None:
    eng = engine.Engine(":memory:")
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
    assert all(b.startswith(b"<a dict body") for b in stored)


def test_body_size_limit_counts_bytes_for_text_bodies() -> None:
    from engine.runtime.delivery import MAX_BODY_BYTES

    text = "é" * (MAX_BODY_BYTES // 2 + 1)  # fewer characters than the limit, more bytes
    out = engine.Engine(":memory:").apply("stripe", text)
    assert out.status == "invalid"
    assert f"{MAX_BODY_BYTES:,}" in (out.reason or "")
