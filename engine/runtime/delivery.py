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
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict

from ..chart.compiled import Chart
from ..chart.expr import MISSING, Locator
from ..errors import DeliveryError
from ._construct import construct
from ._redact import redact_headers

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_HEADER_BYTES",
    "Event",
    "Oversized",
    "UnmappedEvent",
    "body_bytes",
    "normalize_headers",
    "read_delivery",
    "redact_headers",
]

#: Bodies larger than this are ``invalid`` (real invoice webhooks are a few kilobytes; Stripe's
#: largest are well under 1 MiB). The raw bytes are still stored.
MAX_BODY_BYTES = 2 * 1024 * 1024
#: Occurrence times further than this in the future are ``invalid``: a clock that wrong would
#: pin the invoice's order forever.
MAX_CLOCK_SKEW = timedelta(days=1)
#: Headers larger than this in all (names and values) make a delivery ``invalid``.
MAX_HEADER_BYTES = 64 * 1024


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


def normalize_headers(headers: object) -> dict[str, str]:
    """Lower-cased header names (HTTP headers are case-insensitive); values as strings.

    Raises:
        DeliveryError: ``headers`` is not a mapping, or a name or value can't be made text.
    """
    if headers is None:
        return {}
    if not isinstance(headers, Mapping):
        raise DeliveryError(
            f"headers are a {type(headers).__name__}; expected a mapping of name to value"
        )
    out: dict[str, str] = {}
    size = 0
    try:
        for k, v in headers.items():
            name = k.decode("latin-1") if isinstance(k, bytes) else str(k)
            value = v if isinstance(v, str) else _header_text(v)
            size += len(name) + len(value)
            if size > MAX_HEADER_BYTES:
                raise DeliveryError(f"headers are over {MAX_HEADER_BYTES:,} bytes in all")
            out[name.lower()] = value
    except DeliveryError:
        raise
    except Exception as exc:  # a user's object whose __str__ fails: the delivery is unreadable
        raise DeliveryError(f"a header can't be read as text: {exc!r}") from None
    return out


def _header_text(value: object) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


def body_bytes(body: object) -> bytes:
    """The exact bytes of a body — the bytes that are stored and the bytes that are decided on.

    Bytes (``bytearray``, ``memoryview`` too) are kept as they are, text is encoded as UTF-8,
    and a mapping is serialized once, strictly: JSON types only (no ``Decimal``, ``datetime``,
    ``NaN`` or circular references), so that reading the stored bytes back gives exactly the
    payload that was decided on.

    Raises:
        DeliveryError: the body is of another type, or a mapping that isn't JSON.
    """
    if isinstance(body, bytes):
        return body
    if isinstance(body, bytearray | memoryview):
        return bytes(body)
    if isinstance(body, str):
        return str.encode(body, "utf-8", "surrogatepass")  # not a subclass's own encode
    if isinstance(body, Mapping):
        try:
            text = json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        except RecursionError:
            raise DeliveryError("the body mapping is nested too deeply to write as JSON") from None
        except (TypeError, ValueError) as exc:  # not a JSON type, NaN, circular, huge int
            raise DeliveryError(f"the body mapping can't be written as JSON: {exc}") from None
        return text.encode("utf-8", "surrogatepass")
    raise DeliveryError(
        f"the body is a {type(body).__name__}; expected bytes, str or a mapping (a JSON object)"
    )


def _parse_body(raw: bytes) -> dict[str, Any]:
    if len(raw) > MAX_BODY_BYTES:
        raise DeliveryError(f"body is {len(raw):,} bytes; the limit is {MAX_BODY_BYTES:,}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = raw[exc.start]
        raise DeliveryError(f"body is not UTF-8 (byte {exc.start}: {bad:#04x})") from None
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


def _broken(exc: Exception) -> str:
    """An exception raised by a caller's object, described without trusting the object."""
    try:
        return f"{type(exc).__name__}: {exc}"[:200]
    except Exception:
        return "an error that can't be described"


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
    if not text.isascii():
        try:  # JSON's \ud800 escapes give lone surrogates, which no database can store
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise DeliveryError(
                f"{what} at {loc} is {_short(value)}, not valid Unicode text", str(loc), value
            ) from None
    if "\x00" in text:  # no PostgreSQL text can hold it: one rule for every store
        raise DeliveryError(f"{what} at {loc} is {_short(value)}, with a NUL", str(loc), value)
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
        # in the try: a time near year 1 or 9999 with an offset overflows when made UTC
        when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
        when.timestamp()  # and must be a point the fold key can hold
    except (TypeError, ValueError, OverflowError, OSError):
        raise DeliveryError(
            f"occurrence time at {where} is {_short(value)}, expected {spec.format}", where, value
        ) from None
    if when > (now or datetime.now(UTC)) + MAX_CLOCK_SKEW:
        raise DeliveryError(f"occurrence time at {where} is in the future: {value!r}", where, value)
    return when


def _derived_key(chart: Chart, payload: dict[str, Any], headers: dict[str, str]) -> str:
    # A header's surrounding blanks are no part of its value (RFC 9110), and the event type
    # read from one is stripped too: so a blank added to an unsigned header is not a new key.
    parts = [
        None if (v := loc.read(payload, headers)) is MISSING else v.strip() if loc.header else v
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
    return _read(chart, body_bytes(body), normalize_headers(headers), now)


def _read(chart: Chart, raw: bytes, hdrs: dict[str, str], now: datetime | None) -> Event:
    """:func:`read_delivery` of a body already in bytes and headers already normalized (the
    engine's per-delivery path does each once)."""
    payload = _parse_body(raw)
    dm = chart.spec.delivery

    type_parts = [_text(loc, loc.read(payload, hdrs), "event type") for loc in dm.event_type]
    event_type = ".".join(type_parts)
    spec = chart.event(event_type)
    if spec is None:
        known = ", ".join(sorted(chart.spec.events)[:12])
        where = "+".join(str(loc) for loc in dm.event_type)
        raise UnmappedEvent(
            f"unknown event type {event_type!r} at {where}; known: {known}", where, event_type
        )

    id_at = spec.invoice_id or dm.invoice_id  # an event may keep its invoice elsewhere
    raw_id = id_at.read(payload, hdrs)
    if spec.invoice_optional and raw_id in (None, MISSING):
        invoice_id = None
    else:
        invoice_id = _text(id_at, raw_id, "invoice id")

    if dm.event_id is not None:
        event_id = _text(dm.event_id, dm.event_id.read(payload, hdrs), "event id")
    else:
        event_id = _derived_key(chart, payload, hdrs)

    status = status_state = None
    status_at = spec.status or dm.status
    if status_at is not None:
        raw_status = status_at.read(payload, hdrs)
        if raw_status is not MISSING and raw_status is not None:
            status = _text(status_at, raw_status, "status")
            status_state = chart.state_for_status(status, spec.region)
            if status_state is None:
                region = spec.region  # a region's statuses are its states, in chart order
                names = sorted(chart.statuses) if region is None else chart.tree.inside(region)
                raise DeliveryError(
                    f"unknown status {status!r} at {status_at}; statuses are: "
                    f"{', '.join(names[:15])}",
                    str(status_at),
                    status,
                )
    if spec.follow_status and status_state is None:
        raise DeliveryError(
            f"{event_type} needs a status snapshot, but {status_at} is missing", str(status_at)
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


@dataclass(frozen=True, slots=True)
class Oversized:
    """A body too large to hold, as a reader that would not hold it saw it: its first bytes,
    its size and its SHA-256 (the CLI passes this for a JSONL line over the limit). Not a
    tuple, so it is never mistaken for a ``(body, headers)`` pair."""

    head: bytes
    size: int
    sha256: str


class UnmappedEvent(DeliveryError):
    """A readable delivery of an event type the chart does not map (Stripe sends a webhook
    endpoint every event type it subscribes to): recorded as ``ignored``, not ``invalid``."""

    @property
    def event_type(self) -> str:
        return str(self.value)
