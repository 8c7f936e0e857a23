"""A chart's delivery map, compiled: the common delivery read in one pass, or not at all.

:func:`engine.runtime.delivery._read` reads any delivery and, for a bad one, says exactly
what is wrong (the path, the value, the choices). Most deliveries are good, and for them
that generality was most of the engine's per-delivery cost (profiled: a locator walk, a
type check and a message-ready branch per field). :func:`reader` compiles a chart's map once
into a function that reads a delivery with plain lookups and returns ``None`` for anything
that is not plainly good — a missing field, a value of another type, an unknown event type
or status, text to clean up, a time to check closely — so that ``_read`` reads it again and
explains it. Where both read a delivery, they read the same :class:`Event`: the tests read
every delivery of the bundled streams and the hostile corpus both ways.

Bodies are parsed with msgspec when it is installed (``pip install 'invoice-engine[fast]'``),
else with the standard library; msgspec reads JSON into the same Python values, and anything
it refuses goes to the standard library's parser, which decides. (orjson was measured too: it
reads an integer beyond 64 bits as a float, which would change a payload.)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from weakref import WeakKeyDictionary, ref

from ..chart.compiled import Chart
from ..chart.expr import Locator
from ..errors import DeliveryError
from ._construct import builder
from .delivery import MAX_BODY_BYTES, MAX_CLOCK_SKEW, Event, _time

__all__ = ["Reader", "parse_json", "reader"]

try:  # an optional extra: everything works, more slowly, without it
    from msgspec import DecodeError as _DecodeError
    from msgspec.json import Decoder as _Decoder

    _decode: Callable[[bytes], Any] | None = _Decoder().decode
except ImportError:  # the tests run without it too (tests/test_reader.py)
    _decode = None
    _DecodeError = ValueError  # type: ignore[assignment,misc]

#: A body with this many ``{`` and ``[`` may be nested deeper than the standard library's
#: parser goes (it refuses a body near Python's recursion limit, msgspec only past 1,000
#: levels): such bodies are parsed by the standard library alone, so both agree.
_MAX_OPENINGS = 256

Getter = Callable[[dict[str, Any], Mapping[str, str]], Any]
Reader = Callable[[bytes, dict[str, str], datetime], Event | None]


def parse_json(raw: bytes) -> Any:
    """``raw`` parsed as JSON, or ``None`` when the standard library would say something else
    about it (the caller then asks it, for the message)."""
    if len(raw) > MAX_BODY_BYTES:  # _read refuses it
        return None
    if _decode is not None and raw.count(b"{") + raw.count(b"[") < _MAX_OPENINGS:
        try:
            return _decode(raw)
        except _DecodeError:  # 1e400, a lone surrogate escape, NaN: the standard library's say
            pass
    try:
        return json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):
        return None


def _getter(loc: Locator) -> Getter | None:
    """A function reading ``loc`` that raises ``KeyError``/``TypeError`` where
    :meth:`Locator.read` finds nothing; ``None`` for paths it does not handle (list indexes
    and wildcards, which ``read_path`` treats differently from indexing)."""
    if loc.header is not None:
        name = loc.header
        return lambda p, h: h[name]
    steps = tuple(s for s in loc.steps if type(s) is str and s != "*")
    if not steps or len(steps) != len(loc.steps):
        return None
    if len(steps) == 1:
        (a,) = steps
        return lambda p, h: p[a]
    if len(steps) == 2:
        a, b = steps
        return lambda p, h: p[a][b]
    if len(steps) == 3:
        a, b, c = steps
        return lambda p, h: p[a][b][c]

    def deep(p: dict[str, Any], h: Mapping[str, str]) -> Any:
        cur: Any = p
        for key in steps:
            cur = cur[key]
        return cur

    return deep


def _text(value: Any) -> str | None:
    """A field as ``_read`` keeps it, when it needs no cleaning nor a message: ASCII text
    without surrounding blanks or NUL, 1 to 255 long, or an integer (not a bool)."""
    if type(value) is str:
        if value.isascii() and 0 < len(value) <= 255 and "\x00" not in value:
            text = value.strip()
            return text if text is value else None
        return None
    if type(value) is int:
        text = str(value)
        return text if len(text) <= 255 else None
    return None


_readers: WeakKeyDictionary[Chart, Reader | None] = WeakKeyDictionary()


def reader(chart: Chart) -> Reader | None:
    """The chart's compiled reader, made on first use; ``None`` when its map has what only
    ``_read`` reads (several event-type parts, a derived event id, list paths)."""
    try:
        return _readers[chart]
    except KeyError:
        made = _readers[chart] = _compile(chart)
        return made


def _compile(chart: Chart) -> Reader | None:
    dm = chart.spec.delivery
    if len(dm.event_type) != 1 or dm.event_id is None:
        return None
    get_type, get_id = _getter(dm.event_type[0]), _getter(dm.event_id)
    if get_type is None or get_id is None:
        return None
    occurred = dm.occurred_at
    get_time = None if occurred is None else _getter(occurred.at)
    unix = occurred is not None and occurred.format == "unix"
    # per event type: its spec, where its invoice id and status live, its region
    events: dict[str, tuple[Any, Getter, Getter | None, str | None]] = {}
    for name, spec in chart.spec.events.items():
        get_invoice = _getter(spec.invoice_id or dm.invoice_id)
        status_at = spec.status or dm.status
        get_status = None if status_at is None else _getter(status_at)
        if get_invoice is None or (status_at is not None and get_status is None):
            continue  # this event type is read by _read
        events[name] = (spec, get_invoice, get_status, spec.region)
    states: dict[tuple[str, str | None], str] = {}
    provider = chart.name
    # the reader is kept in a cache keyed weakly by its chart: it must not hold the chart
    weak_chart = ref(chart)
    del chart
    make = builder(Event)

    def read(raw: bytes, hdrs: dict[str, str], now: datetime) -> Event | None:
        payload = parse_json(raw)
        if type(payload) is not dict:
            return None
        try:
            event_type = _text(get_type(payload, hdrs))
            found = events.get(event_type)  # type: ignore[arg-type]
            if found is None:
                return None
            spec, get_invoice, get_status, region = found
            invoice_id = _text(get_invoice(payload, hdrs))
            event_id = _text(get_id(payload, hdrs))
            if invoice_id is None or event_id is None:
                return None
            status = status_state = None
            if get_status is not None:
                try:
                    value = get_status(payload, hdrs)
                except (KeyError, TypeError):  # no status snapshot: fine, unless it is needed
                    value = None
                if value is not None and (status := _text(value)) is None:
                    return None
            if status is not None:
                status_state = states.get((status, region))
                if status_state is None:  # remembered once known: the chart's few statuses
                    if (chart := weak_chart()) is None:  # let go of: no more to read with
                        return None
                    status_state = chart.state_for_status(status, region)
                    if status_state is None:
                        return None
                    states[status, region] = status_state
            elif spec.follow_status:
                return None
            when = None
            if occurred is not None:
                if unix and get_time is not None:
                    seconds = get_time(payload, hdrs)
                    if type(seconds) is not int:
                        return None
                    when = datetime.fromtimestamp(seconds, UTC)
                    if when > now + MAX_CLOCK_SKEW:
                        return None
                else:
                    if (chart := weak_chart()) is None:
                        return None
                    when = _time(chart, payload, hdrs, now)
        except (KeyError, TypeError, ValueError, OverflowError, OSError, DeliveryError):
            return None  # not found where the map says, or not plainly good: _read says

        return make({
            "provider": provider, "event_id": event_id, "derived_id": False,
            "invoice_id": invoice_id, "event_type": event_type, "trigger": spec.trigger,
            "status": status, "status_state": status_state, "occurred_at": when,
            "payload": payload,
        })  # fmt: skip

    return read
