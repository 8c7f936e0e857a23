"""A delivery as the engine records it: :func:`receive` reads one for recording, whatever it is.

The engine calls :func:`receive` for every delivery, before it takes the write lock: parsing
is the costly part, and no other writer needs to wait for it. A plainly good delivery is read
by the chart's compiled reader (:mod:`engine.runtime._reader`); anything else by
:func:`engine.runtime.delivery.read_delivery`'s own path, which says what is wrong with it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import NamedTuple

from ..chart.compiled import Chart
from ..errors import DeliveryError
from ._reader import Reader, reader
from ._redact import redact_headers
from .delivery import (
    MAX_BODY_BYTES,
    Event,
    Oversized,
    _broken,
    _read,
    body_bytes,
    normalize_headers,
)

__all__ = ["Received", "read_chunk", "receive"]


class Received(NamedTuple):
    """A delivery as the engine records it: its bytes, its stored headers, and what it says."""

    #: The body's bytes; for a body over the size limit, only the first ``MAX_BODY_BYTES``.
    raw: bytes
    #: The headers as JSON, credentials redacted, signatures kept (``None``: there were none).
    headers: str | None
    #: The event read from it, or why it could not be read.
    event: Event | DeliveryError
    received_at: datetime
    #: 1: its signature was verified; 0: accepted unsigned; ``None``: not checked.
    verified: int | None = None


def receive(chart: Chart, body: object, headers: object, now: datetime) -> Received:
    """Read one delivery for recording; never raises, whatever ``body`` and ``headers`` are.

    The event is read from exactly the bytes that are stored, so a replay of the stored row
    decides the same.
    """
    return _receive(chart, reader(chart), body, headers, now)


def _receive(
    chart: Chart, fast: Reader | None, body: object, headers: object, now: datetime
) -> Received:
    """:func:`receive`, with the chart's compiled reader already looked up."""
    if fast is not None and headers is None and type(body) is bytes:  # the common case
        read = fast(body, _NO_HEADERS, now)
        if read is not None:
            return _new(Received, (body, None, read, now, None))
        fast = None  # it read these bytes (and no headers): _read says what it did not
    problem: DeliveryError | None = None
    if isinstance(body, Oversized):
        problem = _too_large(body.size, body.sha256)
        body = body.head[:MAX_BODY_BYTES]
    try:
        raw = body_bytes(body)
    except DeliveryError as exc:  # nothing to keep but what was wrong with it
        raw, problem = f"<{exc}>".encode("utf-8", "replace"), _detached(exc)
    except Exception as exc:  # a caller's object that breaks when asked for its bytes
        problem = DeliveryError(f"the body can't be read: {_broken(exc)}")
        raw = f"<{problem}>".encode("utf-8", "replace")
    hdrs: dict[str, str] = {}
    try:
        hdrs = normalize_headers(headers)
    except DeliveryError as exc:
        problem = problem or _detached(exc)
    except Exception as exc:
        problem = problem or DeliveryError(f"the headers can't be read: {_broken(exc)}")
    stored_headers = json.dumps(redact_headers(hdrs, chart)) if hdrs else None
    event: Event | DeliveryError | None = problem
    if event is None and fast is not None:
        event = fast(raw, hdrs, now)
    if event is None:
        try:
            event = _read(chart, raw, hdrs, now)
        except DeliveryError as exc:
            event = _detached(exc)
    if len(raw) > MAX_BODY_BYTES:  # keep the limit's worth; the reason has its size and hash
        event = _too_large(len(raw), hashlib.sha256(raw).hexdigest())
        raw = raw[:MAX_BODY_BYTES]
    return Received(raw, stored_headers, event, now)


def _detached(exc: DeliveryError) -> DeliveryError:
    """The error as it is kept, without the traceback and the exception it was raised in
    (``from None`` only hides that one): they hold the frames that caught it, this one
    included, whose ``event`` is the error again: a reference cycle holding the body until
    the cyclic collector runs, which a batch pauses (:mod:`engine.runtime._gc`)."""
    exc.__traceback__ = exc.__context__ = exc.__cause__ = None
    return exc


_NO_HEADERS: dict[str, str] = {}
_new = tuple.__new__  # Received(...) without its __new__: the fields in order


def read_chunk(
    chart: Chart, items: Iterator[object], size: int, clock: Callable[[], datetime]
) -> list[Received]:
    """The next (up to) ``size`` deliveries of ``items`` (bodies, or ``(body, headers)``
    pairs), each read as it is taken, at the time ``clock`` says."""
    chunk = []
    fast = reader(chart)
    for item in items:
        body, headers = item if isinstance(item, tuple) and len(item) == 2 else (item, None)
        chunk.append(_receive(chart, fast, body, headers, clock()))
        if len(chunk) >= size:
            break
    return chunk


def _too_large(size: int, digest: str) -> DeliveryError:
    return DeliveryError(
        f"body is {size:,} bytes (sha256 {digest}); the limit is {MAX_BODY_BYTES:,},"
        " and only that much of it is stored"
    )
