"""Reading one webhook delivery through a chart's delivery map into an :class:`Event`.

A delivery is a body (bytes, str or an already-parsed dict) and optional headers. Everything
that can be wrong with it — not UTF-8, not JSON, not an object, too large, too deep, a missing
invoice id, an unknown event type or status, a value of the wrong type — raises
:class:`~engine.errors.DeliveryError` whose message names the path (or header) and the value.
The engine turns that into an ``invalid`` outcome and keeps the raw bytes; nothing is lost.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict

from ..chart.compiled import Chart
from ..chart.expr import MISSING, Locator
from ..errors import DeliveryError
from ._construct import construct

__all__ = [
    "MAX_BODY_BYTES",
    "Event",
    "Received",
    "normalize_headers",
    "raw_bytes",
    "read_delivery",
    "receive",
    "redact_headers",
]

#: Bodies larger than this are ``invalid`` (real invoice webhooks are a few kilobytes; Stripe's
#: largest are well under 1 MiB). The raw bytes are still stored.
MAX_BODY_BYTES = 2 * 1024 * 1024
#: Occurrence times further than this in the future are ``invalid``: a clock that wrong would
#: pin the invoice's order forever.
MAX_CLOCK_SKEW = timedelta(days=1)
#: Header names whose values are secrets: stored and printed as ``[redacted]``.
_SECRET_WORDS = ("signature", "hmac", "secret", "token", "key", "authorization", "cookie")


class Event(BaseModel):
    """One delivery, read: which invoice, which event, what it asks for, and when."""

    model_config = ConfigDict(frozen=True)

    provider: str
    event_id: str
    #: True when the provider sends no event id and ``event_id`` was derived from the content.
    derived_id: bool = False
    invoice_id: str | None
    event_type: str
    #: The chart trigger the event fires (``None`` for create / follow_status / info events).
    trigger: str | None = None
    #: The raw status snapshot value, and the chart state it names.
    status: str | None = None
    status_state: str | None = None
    occurred_at: datetime | None = None
    payload: dict[str, Any]


def normalize_headers(headers: Mapping[str, Any] | None) -> dict[str, str]:
    """Lower-cased header names (HTTP headers are case-insensitive); values as strings."""
    if not headers:
        return {}
    return {str(k).lower(): v if isinstance(v, str) else str(v) for k, v in headers.items()}


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The headers with signature, key and token values replaced by ``[redacted]``."""
    return {
        k: "[redacted]" if any(w in k.lower() for w in _SECRET_WORDS) else v
        for k, v in headers.items()
    }


def raw_bytes(body: bytes | str | Mapping[str, Any]) -> bytes:
    """The bytes to store for a body, exactly as received when they were bytes or text."""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8", "surrogatepass")
    try:
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False, default=str).encode()
    except (ValueError, RecursionError):  # a circular or absurdly deep dict built in code
        return b"<a dict body that can't be written as JSON: circular or nested too deeply>"


def _parse_body(body: bytes | str | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(body, Mapping):
        return dict(body)
    size = len(body)
    if isinstance(body, str) and size * 4 > MAX_BODY_BYTES:  # characters may be multi-byte
        size = len(body.encode("utf-8", "surrogatepass"))
    if size > MAX_BODY_BYTES:
        raise DeliveryError(f"body is {size:,} bytes; the limit is {MAX_BODY_BYTES:,}")
    if isinstance(body, bytes):
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad = body[exc.start]
            raise DeliveryError(f"body is not UTF-8 (byte {exc.start}: {bad:#04x})") from None
    else:
        text = body
    if not text.strip():
        raise DeliveryError("body is empty")
    try:
        doc = json.loads(text)
    except RecursionError:
        raise DeliveryError("body is JSON nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, or an integer too long to convert
        raise DeliveryError(f"body is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        kind = "null" if doc is None else type(doc).__name__.replace("list", "array")
        raise DeliveryError(f"body is a JSON {kind}, expected an object", "$", doc)
    return doc


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _text(loc: Locator, value: Any, what: str) -> str:
    """A located value as text: strings and integers (ids) only."""
    if value is MISSING or value is None:
        raise DeliveryError(f"missing {what} at {loc}", str(loc), None)
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise DeliveryError(
            f"{what} at {loc} is {_short(value)}, expected a string or integer", str(loc), value
        )
    text = str(value).strip()
    if not text:
        raise DeliveryError(f"{what} at {loc} is empty", str(loc), value)
    if len(text) > 255:
        raise DeliveryError(f"{what} at {loc} is {len(text)} characters long", str(loc), value)
    return text


def _time(
    chart: Chart, payload: dict[str, Any], headers: dict[str, str], now: datetime | None
) -> datetime | None:
    spec = chart.spec.delivery.occurred_at
    if spec is None:
        return None
    value = spec.at.read(payload, headers)
    where = str(spec.at)
    if value is MISSING or value is None:
        raise DeliveryError(f"missing occurrence time at {where}", where, None)
    try:
        if spec.format in ("unix", "unix_ms"):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError
            seconds = value / 1000 if spec.format == "unix_ms" else value
            when = datetime.fromtimestamp(seconds, UTC)
        elif not isinstance(value, str):
            raise TypeError
        elif spec.format == "iso8601":
            when = datetime.fromisoformat(value)
        else:
            when = datetime.strptime(value, spec.format)
    except (TypeError, ValueError, OverflowError, OSError):
        raise DeliveryError(
            f"occurrence time at {where} is {_short(value)}, expected {spec.format}", where, value
        ) from None
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    if when > (now or datetime.now(UTC)) + MAX_CLOCK_SKEW:
        raise DeliveryError(f"occurrence time at {where} is in the future: {value!r}", where, value)
    return when


def _derived_key(chart: Chart, payload: dict[str, Any], headers: dict[str, str]) -> str:
    parts = [
        None if (v := loc.read(payload, headers)) is MISSING else v
        for loc in chart.spec.delivery.idempotency_key or ()
    ]
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return "key:" + hashlib.sha256(blob.encode()).hexdigest()[:32]


def read_delivery(
    chart: Chart,
    body: bytes | str | Mapping[str, Any],
    headers: Mapping[str, Any] | None = None,
    *,
    now: datetime | None = None,
) -> Event:
    """Read one delivery of ``chart``'s provider.

    ``now`` (default: the current time) is when it was received: an occurrence time more than
    a day after it is refused.

    Raises:
        DeliveryError: naming the path or header and the value that could not be read.
    """
    payload = _parse_body(body)
    hdrs = normalize_headers(headers)
    dm = chart.spec.delivery

    type_parts = [_text(loc, loc.read(payload, hdrs), "event type") for loc in dm.event_type]
    event_type = ".".join(type_parts)
    spec = chart.event(event_type)
    if spec is None:
        known = ", ".join(sorted(chart.spec.events)[:12])
        where = "+".join(str(loc) for loc in dm.event_type)
        raise DeliveryError(
            f"unknown event type {event_type!r} at {where}; known: {known}", where, event_type
        )

    raw_id = dm.invoice_id.read(payload, hdrs)
    if spec.invoice_optional and raw_id in (None, MISSING):
        invoice_id = None
    else:
        invoice_id = _text(dm.invoice_id, raw_id, "invoice id")

    if dm.event_id is not None:
        event_id = _text(dm.event_id, dm.event_id.read(payload, hdrs), "event id")
    else:
        event_id = _derived_key(chart, payload, hdrs)

    status = status_state = None
    if dm.status is not None:
        raw_status = dm.status.read(payload, hdrs)
        if raw_status is not MISSING and raw_status is not None:
            status = _text(dm.status, raw_status, "status")
            status_state = chart.state_for_status(status)
            if status_state is None:
                known = ", ".join(sorted(chart.statuses)[:15])
                raise DeliveryError(
                    f"unknown status {status!r} at {dm.status}; statuses are: {known}",
                    str(dm.status),
                    status,
                )
    if spec.follow_status and status_state is None:
        raise DeliveryError(
            f"{event_type} needs a status snapshot, but {dm.status} is missing", str(dm.status)
        )

    return construct(
        Event,
        provider=chart.name,
        event_id=event_id,
        derived_id=dm.event_id is None,
        invoice_id=invoice_id,
        event_type=event_type,
        trigger=spec.trigger,
        status=status,
        status_state=status_state,
        occurred_at=_time(chart, payload, hdrs, now),
        payload=payload,
    )


class Received(NamedTuple):
    """A delivery as the engine records it: its bytes, its stored headers, and what it says."""

    raw: bytes
    #: The headers as JSON, secrets redacted (``None`` when there were none).
    headers: str | None
    #: The event read from it, or why it could not be read.
    event: Event | DeliveryError
    received_at: datetime


def receive(
    chart: Chart,
    body: bytes | str | Mapping[str, Any],
    headers: Mapping[str, Any] | None,
    now: datetime,
) -> Received:
    """Read one delivery for recording; never raises for what is in it.

    The engine calls this before it takes the write lock: parsing is the costly part of a
    delivery, and no other writer needs to wait for it.
    """
    hdrs = normalize_headers(headers)
    stored_headers = json.dumps(redact_headers(hdrs)) if hdrs else None
    try:
        event: Event | DeliveryError = read_delivery(chart, body, hdrs, now=now)
    except DeliveryError as exc:
        event = exc
    return Received(raw_bytes(body), stored_headers, event, now)
