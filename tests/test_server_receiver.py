"""The receiver's hardening, each point through real parts: the app in-process (httpx's
``ASGITransport``, the ASGI lifespan run as a server runs it) where the app decides, a real
``invoice-engine serve`` process where the HTTP server does. (Starlette's ``TestClient`` is not
used: with plain httpx it warns of a deprecation, an error under ``filterwarnings = error``.)

What must hold: a user's middleware sees webhooks; a broken chart stops the start; one failing
write fails only its own delivery; nothing hangs on a locked database; the app starts twice; a
key sent in clear is stored nowhere; the answers' headers (``Allow``, ``Connection: close``,
``Retry-After``) and a 401 that doesn't count secrets; ``synchronous=FULL``; ``serve``'s flags
(``--log-level``, ``--port 0``, ``--max-connections``); the cap on request heads; the body read
deadline; the status-code rule.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from _db import events, held_exclusive, invoice_write_fails, own_pragma
from _server import (
    SECRETS,
    Delivery,
    Server,
    ServerDied,
    clean_run,
    env_name,
    forgeries,
    post,
    raw_connection,
    read_response,
    request_head,
    run_serve,
    secret_env,
    sign,
    stream,
    stripe_delivery,
)
from click.testing import CliRunner
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine import Engine, Outcome
from engine.chart import available_charts
from engine.errors import ChartError
from engine.runtime.delivery import MAX_BODY_BYTES, MAX_HEADER_BYTES
from engine.server import create_app, doors, status_code
from engine.server._app import HEALTH_TIMEOUT, RETRY_AFTER, Receiver

HERE = Path(__file__).resolve().parent
SECRET = SECRETS["stripe"][0]
#: The receiver's default deadline for a commit (``Receiver(answer_within=…)``).
ANSWER_WITHIN: float = inspect.signature(Receiver).parameters["answer_within"].default
#: ``PRAGMA synchronous`` for FULL (NORMAL is 1: a commit may be lost to a power cut).
FULL = 2


def _fresh(tag: str) -> Delivery:
    """A Stripe ``invoice.created`` for an invoice nobody has seen yet."""
    stamp = f"{tag}_{time.monotonic_ns()}"
    return stripe_delivery(f"evt_{stamp}", f"in_{stamp}", "invoice.created", "draft")


def _event_id(d: Delivery) -> str:
    eid: str = json.loads(d.body)["id"]
    return eid


def _invoice_id(d: Delivery) -> str:
    iid: str = json.loads(d.body)["data"]["object"]["id"]
    return iid


def _rows_of(db: Path, d: Delivery) -> list[str]:
    """The outcomes of the rows stored for the delivery's event (live ones first)."""
    rows = [r for r in events(db) if r.event_id == _event_id(d)]
    return [r.outcome for r in sorted(rows, key=lambda r: not r.in_fold)]


def _live(db: Path, d: Delivery) -> int:
    return sum(1 for r in events(db) if r.event_id == _event_id(d) and r.in_fold)


def _receiver(db: Path, *, max_bytes: int = 2**20, read_within: float = 30.0) -> Receiver:
    """A receiver for Stripe (its first secret) on ``db``, with deadlines of the test's own."""

    def open_engine() -> Engine:
        return Engine(db, synchronous="FULL")

    engine = open_engine()
    served = doors(engine, {"stripe": SECRET})
    known = frozenset(available_charts())
    return Receiver(
        open_engine, served, known, engine=engine, max_bytes=max_bytes, read_within=read_within
    )


@contextlib.asynccontextmanager
async def _lifespan(app: ASGIApp) -> AsyncIterator[None]:
    """The app started and, at the end, shut down: the ASGI lifespan protocol, as a server
    runs it."""
    to_app: asyncio.Queue[Message] = asyncio.Queue()
    from_app: asyncio.Queue[Message] = asyncio.Queue()
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}

    async def run() -> None:
        await app(scope, to_app.get, from_app.put)

    task = asyncio.create_task(run())
    await to_app.put({"type": "lifespan.startup"})
    assert (await from_app.get())["type"] == "lifespan.startup.complete"
    try:
        yield
    finally:
        await to_app.put({"type": "lifespan.shutdown"})
        assert (await from_app.get())["type"] == "lifespan.shutdown.complete"
        await task


@contextlib.asynccontextmanager
async def _client(app: ASGIApp, *, started: bool = True) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app in-process (httpx's ASGI transport); ``started``: inside the app's
    lifespan (else the app as it is)."""
    transport = httpx.ASGITransport(app=app)
    async with contextlib.AsyncExitStack() as stack:
        if started:
            await stack.enter_async_context(_lifespan(app))
        yield await stack.enter_async_context(
            httpx.AsyncClient(transport=transport, base_url="http://receiver")
        )


def _apost(
    c: httpx.AsyncClient,
    d: Delivery,
    headers: Mapping[str, str] | None = None,
    content: bytes | AsyncIterator[bytes] | None = None,
) -> Awaitable[httpx.Response]:
    """POST the delivery (signed headers given, or as it is) to ``/webhooks/<provider>``."""
    return c.post(
        f"/webhooks/{d.provider}",
        content=d.body if content is None else content,
        headers=dict(d.headers if headers is None else headers),
    )


def _closed(sock: socket.socket, within: float = 5.0) -> bool:
    """Whether the server closed the connection (after its answer was read)."""
    sock.settimeout(within)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


# ------------------------------------------------------------------------ the status rule


_FINAL = ("applied", "unchanged", "duplicate", "ignored")


@pytest.mark.parametrize(
    ("status", "retryable", "ordered", "code"),
    [
        *[(s, False, o, 200) for s in _FINAL for o in (False, True)],
        ("rejected", False, True, 200),
        ("rejected", False, False, 200),
        ("rejected", True, True, 409),
        ("rejected", True, False, 200),
        ("invalid", False, True, 422),
        ("invalid", False, False, 422),
    ],
)
def test_status_code_409_only_for_a_retryable_rejection_in_arrival_order(
    status: str, retryable: bool, ordered: bool, code: int
) -> None:
    outcome = Outcome(status=status, provider="chargeover", retryable=retryable)
    assert status_code(outcome, arrival_ordered=ordered) == code
    if not ordered:
        assert status_code(outcome) == code  # the default: not arrival-ordered


# ------------------------------------------------------------------- the app, in-process


class Gate:
    """A user's access gate in front of an unsigned provider: 403 unless ``X-Gate: open``."""

    def __init__(self, app: ASGIApp, seen: list[str]) -> None:
        self.app, self.seen = app, seen

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.seen.append(f"{scope['method']} {scope['path']}")
            if (b"x-gate", b"open") not in scope["headers"]:
                await PlainTextResponse("gated", status_code=403)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def test_middleware_added_by_the_user_sees_webhooks(tmp_path: Path) -> None:
    db = tmp_path / "gated.db"
    app = create_app(db, accept_unsigned=["moxie"])
    seen: list[str] = []
    app.add_middleware(Gate, seen=seen)
    d = stream("moxie")[0]
    [want], _ = clean_run([d])

    async def scenario() -> None:
        async with _client(app) as c:
            blocked = await _apost(c, d)
            assert blocked.status_code == 403, blocked.text
            assert blocked.text == "gated"
            assert events(db) == []
            assert seen == ["POST /webhooks/moxie"]

            r = await _apost(c, d, {**d.headers, "X-Gate": "open"})
            assert r.status_code == 200, r.text
            assert r.json()["outcome"] == want.status
            # behind the gate, the receiver's own refusals keep their headers
            r = await c.get("/webhooks/moxie", headers={"X-Gate": "open"})
            assert r.status_code == 405, r.text
            assert r.headers["allow"] == "POST"

    asyncio.run(scenario())
    assert [r.outcome for r in events(db)] == [want.status]


def test_an_unsigned_provider_with_a_broken_chart_stops_the_start(tmp_path: Path) -> None:
    charts = tmp_path / "charts"
    charts.mkdir()
    shutil.copy(HERE / "charts_broken" / "unknown_dest.yaml", charts / "unknown_dest.yaml")
    with pytest.raises(ChartError, match="payed"):
        create_app(tmp_path / "lib.db", chart_dir=charts, accept_unsigned=["unknown_dest"])

    args = ["--port", "0", "--db", str(tmp_path / "cli.db"), "--chart-dir", str(charts)]
    try:
        res = run_serve(tmp_path, [*args, "--insecure-accept-unsigned", "unknown_dest"], timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail("serve started with a broken chart for the provider it opens")
    assert res.returncode == 1, res
    assert res.stderr.startswith("Error: "), res.stderr
    assert "payed" in res.stderr
    assert "Traceback" not in res.stderr


def test_the_app_starts_twice(tmp_path: Path) -> None:
    """Started, shut down (which closes its database), started again: it serves again, on a
    database opened as the first time (``synchronous=FULL``)."""
    db = tmp_path / "twice.db"
    app = create_app(db, secrets={"stripe": SECRET})
    sent = [_fresh("first"), _fresh("second")]

    async def scenario(d: Delivery) -> None:
        async with _client(app) as c:
            r = await _apost(c, d, sign(d, SECRET))
            assert r.status_code == 200, r.text
            assert r.json()["outcome"] == "applied"
            assert (await c.get("/healthz")).status_code == 200
            assert own_pragma(app.state.receiver.engine, "synchronous") == FULL

    for d in sent:
        asyncio.run(scenario(d))
    assert [_rows_of(db, d) for d in sent] == [["applied"], ["applied"]]


def test_serve_opens_the_database_with_synchronous_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From the receiver's own connection (``synchronous`` is per connection: another
    connection to the file would not show it), for ``create_app`` and for what ``serve`` runs
    (its app taken where it is handed to uvicorn)."""
    import uvicorn

    from engine.cli import main

    app = create_app(tmp_path / "lib.db", secrets={"stripe": SECRET})
    try:
        assert own_pragma(app.state.receiver.engine, "synchronous") == FULL
    finally:
        app.state.receiver.close()

    handed: list[Starlette] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: handed.append(app))
    for name in [n for n in os.environ if n.startswith("INVOICE_ENGINE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv(env_name("stripe"), SECRET)
    res = CliRunner().invoke(main, ["serve", "--db", str(tmp_path / "cli.db")])
    assert res.exit_code == 0, res.output
    [served] = handed
    try:
        assert own_pragma(served.state.receiver.engine, "synchronous") == FULL
    finally:
        served.state.receiver.close()


@pytest.mark.parametrize("key", ["co_live_key_7Qx2p", 'co_key_"quoted"\\and/slashed'])
def test_a_key_sent_in_clear_is_stored_nowhere(tmp_path: Path, key: str) -> None:
    """ChargeOver sends its key in a header and again as the body's ``security_token``: the
    header is stored ``[redacted]``, the token replaced by ``[redacted]`` (as is and
    JSON-escaped), and the deliveries still apply."""
    db = tmp_path / "co.db"
    demo = json.dumps("co_demo_key_5f2a9c").encode()
    ds = [d.with_body(d.body.replace(demo, json.dumps(key).encode())) for d in stream("chargeover")]
    ds = ds[:3]
    assert all(json.loads(d.body)["security_token"] == key for d in ds)
    wants, _ = clean_run(ds)
    assert wants[0].status == "applied"

    async def scenario() -> None:
        async with _client(create_app(db, secrets={"chargeover": key})) as c:
            for d, want in zip(ds, wants, strict=True):
                r = await _apost(c, d, sign(d, key))
                assert r.status_code in (200, 409), r.text
                assert r.json()["outcome"] == want.status

    asyncio.run(scenario())
    rows = events(db)
    assert [r.outcome for r in rows] == [w.status for w in wants]
    escaped = json.dumps(key)[1:-1]
    for row in rows:
        headers = {k.lower(): v for k, v in json.loads(row.headers or "{}").items()}
        assert headers["x-chargeover-key"] == "[redacted]", headers
        assert json.loads(bytes(row.body))["security_token"] == "[redacted]"
        assert key not in (row.headers or "")
        assert key.encode() not in bytes(row.body)
        assert escaped.encode() not in bytes(row.body)
    for f in tmp_path.glob("co.db*"):  # the file itself, its WAL, its shared memory
        data = f.read_bytes()
        assert key.encode() not in data, f.name
        assert escaped.encode() not in data, f.name


def test_a_401_does_not_tell_how_many_secrets_there_are(tmp_path: Path) -> None:
    d = _fresh("count")
    tries = forgeries(d)  # signed once: the same requests for both apps

    async def answers(secrets: Sequence[str]) -> dict[str, str]:
        out = {}
        async with _client(
            create_app(tmp_path / f"{len(secrets)}.db", secrets={"stripe": secrets})
        ) as c:
            for what, headers, body in tries:
                r = await _apost(c, d, headers, body)
                assert r.status_code == 401, (what, r.text)
                out[what] = r.text
        return out

    one = asyncio.run(answers(SECRETS["stripe"][:1]))
    two = asyncio.run(answers(SECRETS["stripe"]))
    assert one == two
    for what, text in two.items():
        reason = json.loads(text)["reason"]
        assert not re.search(r"\d.{0,20}(secret|key)|(secret|key).{0,20}\d", reason), (what, reason)
        assert not any(s in text for s in SECRETS["stripe"]), what


@pytest.mark.parametrize("cause", ["busy", "shut down"])
def test_a_503_of_the_receiver_has_retry_after(tmp_path: Path, cause: str) -> None:
    receiver = _receiver(tmp_path / "busy.db", max_bytes=16 if cause == "busy" else 2**20)
    if cause == "shut down":
        receiver.close()
    d = _fresh("busy")

    async def scenario() -> httpx.Response:
        async with _client(receiver.app(), started=False) as c:
            return await _apost(c, d, sign(d, SECRET))

    try:
        r = asyncio.run(scenario())
    finally:
        receiver.close()
    assert r.status_code == 503, r.text
    assert r.headers["retry-after"] == RETRY_AFTER.decode()
    assert events(tmp_path / "busy.db") == []


def test_a_body_sent_too_slowly_is_408(tmp_path: Path) -> None:
    receiver = _receiver(tmp_path / "slow.db", read_within=0.3)
    d = _fresh("slow")

    async def trickle() -> AsyncIterator[bytes]:
        yield d.body[:10]
        await asyncio.sleep(5)
        yield d.body[10:]

    async def scenario() -> tuple[httpx.Response, float, httpx.Response]:
        async with _client(receiver.app(), started=False) as c:
            started = time.monotonic()
            slow = await _apost(c, d, sign(d, SECRET), trickle())
            took = time.monotonic() - started
            return slow, took, await _apost(c, d, sign(d, SECRET))

    try:
        r, took, on_time = asyncio.run(scenario())
    finally:
        receiver.close()
    assert r.status_code == 408, r.text
    assert took < 3, f"answered after {took:.1f} s"
    assert r.headers["connection"] == "close"
    assert r.json()["error"] == "timeout"
    assert on_time.status_code == 200, on_time.text
    assert _rows_of(tmp_path / "slow.db", d) == ["applied"]


# ---------------------------------------------------------------- a real `serve` process

_RUNNING = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")


class AnyPortServer(Server):
    """``serve --port 0``: the port is the one its log says it took."""

    def command(self) -> list[str]:
        cmd = super().command()
        cmd[cmd.index("--port") + 1] = "0"
        return cmd

    def start(self, timeout: float = 30.0) -> AnyPortServer:
        self.starts += 1
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.command(), cwd=self.workdir, env=self.env, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while not (found := _RUNNING.search(self.log())):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise ServerDied(f"serve --port 0 logged no port:\n{self.log()}")
            time.sleep(0.05)
        self.port = int(found.group(1))
        assert httpx.get(self.url("/healthz"), timeout=5).status_code == 200
        return self


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AnyPortServer]:
    srv = AnyPortServer(tmp_path_factory.mktemp("receiver"), env=secret_env(["stripe"])).start()
    try:
        yield srv
    finally:
        srv.stop()


def assert_still_serving(srv: Server) -> None:
    assert srv.alive(), srv.log()
    d = _fresh("after")
    with httpx.Client(base_url=srv.base, timeout=30) as c:
        r = post(c, d, sign(d, SECRET))
        assert r.status_code == 200, r.text
        assert c.get("/healthz").status_code == 200
    assert _rows_of(srv.db, d) == ["applied"]


def test_port_0_takes_a_free_port_and_logs_it(server: AnyPortServer) -> None:
    assert server.port != 0
    assert f"Uvicorn running on http://127.0.0.1:{server.port}" in server.log()


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_405_says_allow_post(server: AnyPortServer, method: str) -> None:
    r = httpx.request(method, server.url("/webhooks/stripe"), timeout=10)
    assert r.status_code == 405, r.text
    assert r.headers["allow"] == "POST"


def test_413_on_content_length_closes_the_connection(server: AnyPortServer) -> None:
    headers = {"Content-Type": "application/json", "Content-Length": str(MAX_BODY_BYTES + 1)}
    with raw_connection(server.port) as sock:
        sock.sendall(request_head("POST", "/webhooks/stripe", headers, server.port) + b"{")
        response = read_response(sock)
        assert response is not None, "closed without an answer"
        assert response.status == 413, response
        assert response.headers.get("connection") == "close", response.headers
        assert _closed(sock), "the connection was left open"
    assert_still_serving(server)


@pytest.mark.parametrize("shape", ["one header", "many headers", "request line and headers"])
def test_a_request_head_over_the_cap_is_400_and_closed(server: AnyPortServer, shape: str) -> None:
    d = _fresh("head")
    headers = {**sign(d, SECRET), "Content-Length": str(len(d.body))}
    path, pad = "/webhooks/stripe", MAX_HEADER_BYTES + 1024
    if shape == "one header":
        headers["X-Pad"] = "p" * pad
    elif shape == "many headers":
        headers.update({f"X-Pad-{i}": "p" * 1000 for i in range(pad // 1000 + 1)})
    else:  # each part under the cap (and under uvicorn's own limit on a URL), not both
        path += "?pad=" + "p" * (pad // 2)
        headers["X-Pad"] = "p" * (pad // 2)
    with raw_connection(server.port) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(request_head("POST", path, headers, server.port))
        response = read_response(sock)
        assert response is not None, "closed without an answer"
        assert response.status == 400, response
        assert _closed(sock), "the connection was left open"
    assert _rows_of(server.db, d) == []
    assert_still_serving(server)


def test_a_request_head_under_the_cap_is_served(server: AnyPortServer) -> None:
    pad = {f"X-Pad-{i}": "p" * 1000 for i in range((MAX_HEADER_BYTES - 4096) // 1000)}
    r = httpx.get(server.url("/healthz"), headers=pad, timeout=10)
    assert r.status_code == 200, r.text


def test_one_failing_write_fails_only_its_own_delivery(server: AnyPortServer) -> None:
    """31 deliveries are made to wait for the database (another connection holds its lock):
    a first one in the writer, 30 queued behind it, which then commit as one group. The
    database refuses one invoice's row: that delivery, and only it, is answered 503."""
    plug, group = _fresh("plug"), [_fresh(f"group{i}") for i in range(30)]
    bad = group[17]
    log_from = len(server.log())

    def send(d: Delivery) -> httpx.Response:
        with httpx.Client(base_url=server.base, timeout=30) as c:
            return post(c, d, sign(d, SECRETS["stripe"][len(d.body) % 2]))

    with invoice_write_fails(server.db, _invoice_id(bad)), ThreadPoolExecutor(31) as pool:
        with held_exclusive(server.db):
            first = pool.submit(send, plug)
            time.sleep(0.3)  # the plug is in the writer, waiting for the lock
            rest = [pool.submit(send, d) for d in group]
            time.sleep(1.2)  # the group is queued behind it
        answers = [f.result() for f in rest]
        assert first.result().status_code == 200, first.result().text
    failed = server.log()[log_from:]
    sizes = [int(n) for n in re.findall(r"a group of (\d+) failed", failed)]
    assert sizes, f"the fault never hit a group of several:\n{failed}"
    assert max(sizes) >= 2

    for d, r in zip(group, answers, strict=True):
        if d is bad:
            assert r.status_code == 503, r.text
            assert r.headers["retry-after"].isdigit(), r.headers
            assert _rows_of(server.db, d) == []
        else:
            assert r.status_code == 200, r.text
            assert r.json()["outcome"] == "applied"
            assert _rows_of(server.db, d) == ["applied"]
    with httpx.Client(base_url=server.base, timeout=30) as c:  # the provider's retry
        r = post(c, bad, sign(bad, SECRET))
    assert r.status_code == 200, r.text
    assert _rows_of(server.db, bad) == ["applied"]


def test_a_locked_database_is_answered_503_in_time_and_recovers(server: AnyPortServer) -> None:
    d = _fresh("locked")
    timed: dict[str, tuple[httpx.Response | None, float]] = {}
    patience = HEALTH_TIMEOUT + ANSWER_WITHIN  # the client's: a hung request is None

    def run(name: str, request: Callable[[httpx.Client], httpx.Response]) -> None:
        with httpx.Client(base_url=server.base, timeout=patience) as c:
            started = time.monotonic()
            try:
                r: httpx.Response | None = request(c)
            except httpx.TimeoutException:
                r = None
            timed[name] = (r, time.monotonic() - started)

    with held_exclusive(server.db):
        delivery = threading.Thread(
            target=run, args=("post", lambda c: post(c, d, sign(d, SECRET)))
        )
        health = threading.Thread(target=run, args=("healthz", lambda c: c.get("/healthz")))
        delivery.start()
        time.sleep(0.5)  # the delivery is in the writer, waiting for the lock
        health.start()
        delivery.join()
        health.join()

    for name, limit in (("post", ANSWER_WITHIN), ("healthz", HEALTH_TIMEOUT)):
        r, took = timed[name]
        assert r is not None, f"{name}: no answer in {took:.1f} s"
        assert r.status_code == 503, (name, r.text)
        assert took < limit + 2, f"{name}: answered after {took:.1f} s"
    r, _ = timed["post"]
    assert r is not None
    assert r.headers["retry-after"].isdigit(), r.headers

    with httpx.Client(base_url=server.base, timeout=30) as c:
        assert c.get("/healthz").status_code == 200
        r = post(c, d, sign(d, SECRET))  # the provider's retry
    assert r.status_code == 200, r.text
    assert r.json()["outcome"] in ("applied", "duplicate")
    assert _live(server.db, d) == 1
    assert _rows_of(server.db, d)[0] == "applied"


def test_info_logs_one_line_per_delivery_without_body_or_secret(server: AnyPortServer) -> None:
    marker = f"cus_LOGMARK{time.monotonic_ns()}"
    ds = []
    for i in range(3):
        d = _fresh(f"info{i}")
        doc = json.loads(d.body)
        doc["data"]["object"]["customer"] = marker
        ds.append(d.with_body(json.dumps(doc).encode()))
    with httpx.Client(base_url=server.base, timeout=30) as c:
        for d in ds:
            assert post(c, d, sign(d, SECRETS["stripe"][1])).status_code == 200
    deadline = time.monotonic() + 5
    while not all(_event_id(d) in server.log() for d in ds) and time.monotonic() < deadline:
        time.sleep(0.05)
    log = server.log()
    for d in ds:
        lines = [ln for ln in log.splitlines() if _event_id(d) in ln]
        assert len(lines) == 1, lines
        assert "applied" in lines[0]
    assert marker not in log
    assert not any(s in log for s in SECRETS["stripe"])


# ------------------------------------------------------------- `serve` with other flags


def test_log_level_warning_logs_no_line_per_delivery(tmp_path: Path) -> None:
    marker = f"cus_LOGMARK{time.monotonic_ns()}"
    srv = Server(tmp_path, env=secret_env(["stripe"]), args=["--log-level", "warning"])
    with srv, httpx.Client(base_url=srv.base, timeout=30) as c:
        ds = []
        for i in range(3):
            d = _fresh(f"warn{i}")
            doc = json.loads(d.body)
            doc["data"]["object"]["customer"] = marker
            ds.append(d.with_body(json.dumps(doc).encode()))
            assert post(c, ds[-1], sign(ds[-1], SECRET)).status_code == 200
        assert post(c, ds[0], sign(ds[0], "whsec_wrong_one")).status_code == 401
        deadline = time.monotonic() + 5
        while "refused" not in srv.log() and time.monotonic() < deadline:
            time.sleep(0.05)
    log = srv.log()
    assert "refused" in log, f"the warning for the 401 is missing: nothing is logged?\n{log}"
    assert not [ln for ln in log.splitlines() if any(_event_id(d) in ln for d in ds)], log
    assert marker not in log
    assert not any(s in log for s in (*SECRETS["stripe"], "whsec_wrong_one"))


def _hold(port: int, d: Delivery, stack: contextlib.ExitStack) -> socket.socket:
    """A connection carrying a signed delivery whose body has not all come in yet."""
    sock = stack.enter_context(raw_connection(port, timeout=10))
    headers = {**sign(d, SECRET), "Content-Length": str(len(d.body))}
    sock.sendall(request_head("POST", "/webhooks/stripe", headers, port) + d.body[:5])
    time.sleep(0.2)  # its head is read: it is a request in progress
    return sock


def test_max_connections_answers_503_to_one_more(tmp_path: Path) -> None:
    """``--max-connections 2``: two deliveries whose bodies are still coming in hold two
    connections; a third connection is answered 503; the two then finish and are applied."""
    srv = Server(tmp_path, env=secret_env(["stripe"]), args=["--max-connections", "2"])
    held = [_fresh("held0"), _fresh("held1")]
    with srv, contextlib.ExitStack() as stack:
        socks = [_hold(srv.port, d, stack) for d in held]
        third = httpx.get(srv.url("/healthz"), timeout=10)
        assert third.status_code == 503, third.text
        for sock, d in zip(socks, held, strict=True):
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                sock.sendall(d.body[5:])
        answers = [read_response(sock) for sock in socks]
        statuses = [a.status if a else None for a in answers]
        assert statuses == [200, 200], f"the held deliveries were answered {statuses}"
        stack.close()
        assert httpx.get(srv.url("/healthz"), timeout=10).status_code == 200
    assert [_rows_of(srv.db, d) for d in held] == [["applied"], ["applied"]]


def test_an_unhealthy_answer_names_nothing_of_the_database(tmp_path: Path) -> None:
    """/healthz is open to anyone who reaches the port: its 503 says the database is
    unavailable, and the details (the database's name, its error) go to the log only."""
    db = tmp_path / "private-name.db"
    receiver = _receiver(db)
    receiver.engine.store.close()  # the database gone from under the writer

    async def scenario() -> httpx.Response:
        async with _client(receiver.app(), started=False) as c:
            return await c.get("/healthz")

    r = asyncio.run(scenario())
    assert r.status_code == 503, r.text
    assert r.json() == {"status": "unavailable", "reason": "the database is unavailable"}
    assert "private-name" not in r.text
    receiver.close()


def test_a_401_names_the_header_it_is_about(tmp_path: Path) -> None:
    """Lago says how it signed in X-Lago-Signature-Algorithm: a chart checking hmac refuses a
    jwt-signed delivery naming that header, not "the signature header" the sender did send."""
    body = b'{"webhook_type":"invoice.voided","invoice":{"lago_id":"i","status":"voided"}}'
    sent = {"X-Lago-Signature": "c2lnbmF0dXJl", "X-Lago-Signature-Algorithm": "jwt"}

    async def reasons() -> list[str]:
        app = create_app(tmp_path / "l.db", secrets={"lago": ["lago_demo_secret"]})
        async with _client(app) as c:
            out = []
            for headers in (sent, {"X-Lago-Signature": "c2lnbmF0dXJl"}):
                r = await c.post("/webhooks/lago", content=body, headers=headers)
                assert r.status_code == 401, r.text
                out.append(json.loads(r.text)["reason"])
            return out

    wrong, missing = asyncio.run(reasons())
    assert wrong == "malformed_header: the X-Lago-Signature-Algorithm header can't be read"
    assert missing == "missing_header: the X-Lago-Signature-Algorithm header is missing"
