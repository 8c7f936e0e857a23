"""The receiver as an ASGI application: ``POST /webhooks/{provider}``, ``/healthz``, ``/metrics``.

Per delivery, in this order, and nothing is stored before the signature passes:

1. the provider must be served (a chart, and a secret or an explicit opening): else 404/403;
2. a ``Content-Type`` that is given must say JSON (415); ``Content-Length`` over the limit is
   refused before a byte of the body is read, a streamed body as soon as it passes it (413);
3. the signature is checked on the raw bytes (401, counted and logged, nothing stored);
4. the delivery is read (parsed) on the event loop, then handed to the single writer, which
   commits it in a group with whatever else is waiting; the answer goes out after the commit.

The webhook route is served straight from the ASGI messages (the hot path: no request or
response objects, no middleware); everything else is an ordinary Starlette app.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from ..errors import SignatureError, StoreError
from ..models import Outcome
from ..runtime.delivery import MAX_BODY_BYTES
from ..runtime.engine import Engine
from ..runtime.verify import verify_signature
from ._in_clear import redact_in_body
from ._metrics import Metrics
from ._writer import Writer

__all__ = ["Door", "Receiver", "status_code"]

log = logging.getLogger("engine.server")

_PREFIX = "/webhooks/"
#: How long ``/healthz`` waits for the writer to read from the database.
HEALTH_TIMEOUT = 5.0
#: Seconds a provider is asked to wait before retrying after a storage failure.
RETRY_AFTER = b"5"


def status_code(outcome: Outcome, *, arrival_ordered: bool = False) -> int:
    """The HTTP status that makes a provider do the right thing with a recorded delivery.

    2xx stops its retries: the delivery counted, changed nothing, was seen before, is of a type
    the chart ignores, or is illegal for good. On a chart without event times a retryable
    rejection answers 409: the provider redelivers later and the redelivery is decided again
    (with event times, the event already waits in the invoice's history, and the delivery
    that completes it re-folds it: 200). An unreadable delivery answers 422, so the provider
    retries until the chart is fixed (each attempt is recorded).
    """
    if outcome.status == "invalid":
        return 422
    if outcome.status == "rejected" and outcome.retryable and arrival_ordered:
        return 409
    return 200


@dataclass(frozen=True)
class Door:
    """How one provider's deliveries get in.

    Attributes:
        secrets: the provider's secrets, or ``None`` if it is opened unsigned.
        arrival_ordered: its chart has no event times (a retryable rejection is worth a
            redelivery: it is decided again; elsewhere a re-fold settles it).
        in_body: secrets the provider sends in clear that may be inside the body too
            (ChargeOver's ``security_token``): replaced by ``[redacted]`` before it is stored.
    """

    provider: str
    secrets: tuple[str, ...] | None
    arrival_ordered: bool = False
    in_body: tuple[bytes, ...] = ()


class _Refusal(Exception):
    """A request answered without recording anything; ``detail`` is for the log only."""

    def __init__(
        self,
        code: int,
        error: str,
        reason: str,
        headers: tuple[tuple[bytes, bytes], ...] = (),
        detail: str = "",
    ) -> None:
        self.code, self.error, self.reason, self.headers = code, error, reason, headers
        self.detail = detail or reason


#: What a refused sender is told about its signature: the reason and the header it is about,
#: never how many secrets there are or what was expected (the full message goes to the log).
_SIGNATURE_ANSWERS = {
    "missing_header": "the {header} header is missing",
    "malformed_header": "the {header} header can't be read",
    "no_match": "no signature matched",
    "timestamp_outside_tolerance": "the signed timestamp is outside the tolerance",
}


class Receiver:
    """The state behind the app: the engine, its writer, the doors, the metrics.

    Args:
        open_engine: opens the engine (again, when the app is started after a shutdown).
        doors: the providers served, and how.
        known: every provider with a chart (the others are 404, these 403 when not served).
        answer_within: seconds a request waits for its commit before it is answered 503 (the
            commit may still land: the provider's retry is then a ``duplicate``); below the
            providers' own time-outs (Modern Treasury waits 5 s).
        max_bytes: the most body bytes held at once, read or waiting to be written; a request
            that would pass it is answered 503 before more of it is read.
        read_within: seconds a client may take to send a body (408 after that).
    """

    def __init__(
        self,
        open_engine: Callable[[], Engine],
        doors: Mapping[str, Door],
        known: frozenset[str],
        *,
        engine: Engine | None = None,
        answer_within: float = 4.0,
        max_bytes: int = 256 * 2**20,
        read_within: float = 30.0,
    ) -> None:
        self.open_engine = open_engine
        self.doors = dict(doors)
        self.known = known
        self.answer_within = answer_within
        self.max_bytes = max_bytes
        self.read_within = read_within
        self.held_bytes = 0
        self.counts = Metrics()
        self.engine = engine if engine is not None else open_engine()
        self.writer = Writer(self.engine, on_group=self.counts.group)

    def start(self) -> None:
        """Open the database again if an earlier shutdown closed it (an app started twice)."""
        if self.writer.stopped:
            self.engine = self.open_engine()
            self.writer = Writer(self.engine, on_group=self.counts.group)

    def close(self) -> None:
        """Commit what is queued and close the database."""
        self.writer.close()

    # ------------------------------------------------------------------ webhooks

    async def webhook(self, scope: Scope, receive: Receive, send: Send, provider: str) -> None:
        started = time.perf_counter()
        held = [0]  # body bytes this request holds, given back however it ends
        try:
            door, outcome = await self._deliver(scope, receive, provider, held)
        except _Refusal as no:
            if no.error != "disconnected":  # else: nobody to answer
                await _send_json(send, no.code, {"error": no.error, "reason": no.reason},
                                 no.headers)  # fmt: skip
            self._refused(provider, started, no)
            return
        except Exception:
            log.exception("the receiver failed on a %s delivery (nothing of it recorded)",
                          _quoted(provider))  # fmt: skip
            failed = _Refusal(500, "internal", "the receiver failed; nothing was recorded")
            await _send_json(send, failed.code, {"error": failed.error, "reason": failed.reason})
            self._refused(provider, started, failed)
            return
        finally:
            self.held_bytes -= held[0]
        code = status_code(outcome, arrival_ordered=door.arrival_ordered)
        await _send_json(
            send, code,
            {"outcome": outcome.status, "event_id": outcome.event_id,
             "invoice_id": outcome.invoice_id, "state": outcome.to_state,
             "reason": outcome.reason},
        )  # fmt: skip
        seconds = time.perf_counter() - started
        self.counts.delivery(provider, outcome.status, code, seconds)
        if log.isEnabledFor(logging.INFO):
            log.info("delivery provider=%s event_id=%s outcome=%s status=%d ms=%.2f",
                     provider, _quoted(outcome.event_id), outcome.status, code,
                     seconds * 1000)  # fmt: skip

    async def _deliver(
        self, scope: Scope, receive: Receive, provider: str, held: list[int]
    ) -> tuple[Door, Outcome]:
        if scope["method"] != "POST":
            raise _Refusal(405, "method_not_allowed", "deliveries are POSTed",
                           ((b"allow", b"POST"),))  # fmt: skip
        door = self._door(provider)
        pairs = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        headers = {k: v for k, v in reversed(pairs)}  # the first of a repeated name wins
        _check_content_type(headers.get("content-type"))
        try:
            async with asyncio.timeout(self.read_within):
                body = await self._read_body(headers.get("content-length"), receive, held)
        except TimeoutError:
            raise _Refusal(408, "timeout", f"the body took over {self.read_within:g} s",
                           _CLOSE) from None  # fmt: skip
        if door.secrets is not None:
            try:
                verify_signature(self.engine.chart(provider), body, pairs, door.secrets,
                                 now=self.engine.clock())  # fmt: skip
            except SignatureError as exc:
                self.counts.signature_failure(provider, exc.reason)
                answer = _SIGNATURE_ANSWERS.get(exc.reason, "the delivery can't be verified")
                answer = answer.format(header=exc.header or "signature")
                raise _Refusal(
                    401, "signature", f"{exc.reason}: {answer}", detail=str(exc)
                ) from None
        if door.in_body:  # a key sent in clear is not stored, wherever it is
            body = redact_in_body(body, door.in_body)
        prepared = self.engine.prepare(provider, body, headers, verified=door.secrets is not None)
        try:
            async with asyncio.timeout(self.answer_within):
                return door, await self.writer.apply(prepared)
        except (StoreError, TimeoutError) as exc:
            why = str(exc) or f"not committed within {self.answer_within:g} s (it may still be)"
            raise _Refusal(503, "storage", "the database is unavailable; retry later",
                           _RETRY, detail=why) from None  # fmt: skip

    async def _read_body(self, length: str | None, receive: Receive, held: list[int]) -> bytes:
        """The body; over the limit (or the server's budget), a refusal as soon as that is
        known: the rest is never read."""
        limit = f"the body is over the limit of {MAX_BODY_BYTES:,} bytes"
        too_large = _Refusal(413, "too_large", limit, _CLOSE)
        if length is not None and length.strip().isdigit() and int(length) > MAX_BODY_BYTES:
            raise too_large
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Refusal(400, "disconnected", "the client went away before the whole body")
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise too_large
            if self.held_bytes + len(chunk) > self.max_bytes:
                raise _Refusal(503, "busy", "too many deliveries at once; retry later",
                               _RETRY + _CLOSE)  # fmt: skip
            self.held_bytes += len(chunk)
            held[0] += len(chunk)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _door(self, provider: str) -> Door:
        door = self.doors.get(provider)
        if door is not None:
            return door
        if provider in self.known:
            raise _Refusal(403, "not_served",
                           f"provider {provider!r} is not served: no secret is configured "
                           "for it")  # fmt: skip
        served = ", ".join(sorted(self.doors)) or "none"
        reason = f"no provider {provider[:64]!r} is served here"
        raise _Refusal(404, "unknown_provider", reason, detail=f"{reason} (served: {served})")

    def _refused(self, provider: str, started: float, no: _Refusal) -> None:
        seconds = time.perf_counter() - started
        known = provider in self.known  # an unknown name is not a label: it is the sender's
        self.counts.refusal(provider if known else "(unknown)", no.error, no.code, seconds)
        log.warning("refused provider=%s error=%s status=%d ms=%.2f reason=%s", _quoted(provider),
                    no.error, no.code, seconds * 1000, _quoted(no.detail))  # fmt: skip

    # ------------------------------------------------------------------ the rest

    async def healthz(self, request: Request) -> Response:
        try:
            await asyncio.wait_for(self.writer.ping(), HEALTH_TIMEOUT)
        except (StoreError, TimeoutError) as exc:
            log.error("health check failed: %s", str(exc) or "the database did not answer")
            # the details (the database's name, its errors) are for the log, not for anyone
            # who can reach the port
            reason = (
                "the database did not answer"
                if isinstance(exc, TimeoutError)
                else ("the database is unavailable")
            )
            return JSONResponse({"status": "unavailable", "reason": reason}, status_code=503)
        return JSONResponse({"status": "ok", "providers": sorted(self.doors)})

    async def metrics_text(self, request: Request) -> Response:
        return PlainTextResponse(
            self.counts.render(), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    def app(self) -> ReceiverApp:
        return ReceiverApp(self)


_CLOSE = ((b"connection", b"close"),)
_RETRY = ((b"retry-after", RETRY_AFTER),)


class _WebhookRoute:
    """The webhook route as an ASGI endpoint, for when the app has middleware of the user's
    (which must see every request: an access gate in front of an unsigned provider)."""

    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        provider = scope["path_params"]["provider"]
        await self.receiver.webhook(scope, receive, send, provider)


class ReceiverApp(Starlette):
    """A Starlette app whose webhook route is served without the framework's per-request
    machinery unless middleware was added (see the module docstring); mount it anywhere
    (``app.mount("/billing", create_app(...))``). ``state.receiver`` holds the
    :class:`Receiver`."""

    def __init__(self, receiver: Receiver) -> None:
        @asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            receiver.start()
            try:
                yield
            finally:
                await asyncio.to_thread(receiver.close)

        super().__init__(
            routes=[
                Route("/webhooks/{provider}", _WebhookRoute(receiver)),
                Route("/healthz", receiver.healthz, methods=["GET"]),
                Route("/metrics", receiver.metrics_text, methods=["GET"]),
            ],
            lifespan=lifespan,
        )
        self.router.redirect_slashes = False  # a provider follows no redirect: 404, said once
        self.receiver = receiver
        self.state.receiver = receiver

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self.user_middleware:
            path = _route_path(scope)
            if path.startswith(_PREFIX):
                provider = path[len(_PREFIX) :]
                if provider and "/" not in provider:
                    scope["app"] = self
                    await self.receiver.webhook(scope, receive, send, provider)
                    return
        await super().__call__(scope, receive, send)


def _route_path(scope: Scope) -> str:
    """The path below where the app is mounted (Starlette keeps the full path in ``path`` and
    the mount point in ``root_path``)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def _check_content_type(value: str | None) -> None:
    if value is None:
        return
    media = value.split(";", 1)[0].strip().lower()
    if media == "application/json" or media.endswith("+json"):
        return
    raise _Refusal(415, "unsupported_media_type",
                   f"Content-Type {value[:80]!r} is not JSON; deliveries are JSON "
                   "(application/json)")  # fmt: skip


async def _send_json(
    send: Send, code: int, data: dict[str, Any], headers: tuple[tuple[bytes, bytes], ...] = ()
) -> None:
    payload = json.dumps(data).encode()
    head = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(payload))]
    await send({"type": "http.response.start", "status": code, "headers": [*head, *headers]})
    await send({"type": "http.response.body", "body": payload})


def _quoted(value: str | None) -> str:
    """A value for a log line: JSON-quoted, so it can't forge a line or a field."""
    return "-" if value is None else json.dumps(value[:200])
