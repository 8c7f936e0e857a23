"""``invoice-engine serve`` over real HTTP: every bundled provider, signed as the provider signs.

One server process serves the whole module (every bundled provider with a rotation of two
secrets, plus a user's own chart signed with Standard Webhooks); the tests run in order on it
and each checks what it changed. The status-code contract under test:

======================================================  ====
applied, unchanged, duplicate, ignored, rejected (final)  200
rejected, retryable                                      409
invalid (verified, unreadable by the chart)              422
bad, missing or stale signature                          401 (nothing stored)
unknown provider / bundled provider not served           404 / 403
body over 2 MiB                                          413 (the rest never read)
Content-Type given and not JSON                          415
storage failure                                          503 + Retry-After
not POST                                                 405
======================================================  ====
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from _db import count_rows_read_only, events, invoice_writes_fail
from _server import (
    SECRETS,
    Delivery,
    Server,
    as_user_chart,
    clean_run,
    expected_code,
    forgeries,
    parse_metrics,
    post,
    raw_connection,
    read_response,
    request_head,
    sample,
    secret_env,
    sign,
    signature_header,
    states,
    stream,
    stripe_delivery,
)
from conftest import CHART_NAMES

from engine import Engine, Outcome
from engine.runtime.delivery import MAX_BODY_BYTES

USER_CHART = "acme"  # Stripe's lifecycle under a user's name, signed with Standard Webhooks
SERVED = [*CHART_NAMES, USER_CHART]


@pytest.fixture(scope="module")
def chart_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("charts")
    as_user_chart(folder, USER_CHART)
    return folder


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, chart_dir: Path) -> Iterator[Server]:
    work = tmp_path_factory.mktemp("serve")
    srv = Server(work, env=secret_env(SERVED), args=["--chart-dir", str(chart_dir)])
    with srv:
        yield srv


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base, timeout=30) as c:
        yield c


def deliveries_of(provider: str) -> list[Delivery]:
    if provider == USER_CHART:
        return [Delivery(USER_CHART, d.body, d.headers) for d in stream("stripe")]
    return stream(provider)


def rows(server: Server) -> int:
    return count_rows_read_only(server.db) or 0


def refusal(response: httpx.Response, code: int) -> dict[str, str]:
    """The refusal's JSON body ({"error", "reason"}), after checking its status code."""
    assert response.status_code == code, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    doc = response.json()
    assert set(doc) >= {"error", "reason"}, doc
    assert isinstance(doc["error"], str)
    assert isinstance(doc["reason"], str)
    assert doc["error"]
    assert doc["reason"]
    return {"error": doc["error"], "reason": doc["reason"]}


# ----------------------------------------------------------------------------- start-up


def test_start_up_log_names_each_served_provider_and_how(server: Server) -> None:
    log = server.log()
    assert "Uvicorn running on" in log
    for provider in SERVED:
        lines = [ln for ln in log.splitlines() if re.search(rf"\b{provider}\b", ln)]
        assert lines, f"no start-up line names {provider}:\n{log}"
    for pair in SECRETS.values():
        for secret in pair:
            assert secret not in log, "a secret is in the log"


def test_healthz(client: httpx.Client) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.json()["status"] == "ok"


# ---------------------------------------------------------------- every provider's stream


@pytest.mark.parametrize("provider", SERVED)
def test_stream_over_http_answers_as_the_contract_says(
    provider: str, server: Server, client: httpx.Client, chart_dir: Path
) -> None:
    """Each delivery of the provider's example stream: first every forgery of it (401, nothing
    stored, nothing changed), then the genuine one, signed alternately with the old and the new
    secret of a rotation: the code and outcome an in-process engine gives the same stream."""
    deliveries = deliveries_of(provider)
    outcomes, final = clean_run(deliveries, chart_dir)
    secrets = SECRETS[provider]
    for i, (delivery, want) in enumerate(zip(deliveries, outcomes, strict=True)):
        before_rows, before = rows(server), states(server.db, provider, chart_dir)
        for what, headers, body in forgeries(delivery):
            r = post(client, delivery, headers, body)
            doc = refusal(r, 401)
            assert not any(s in r.text for s in secrets), (what, r.text)
            assert doc["error"], what
        assert rows(server) == before_rows, f"line {i + 1}: a forged delivery was stored"
        assert states(server.db, provider, chart_dir) == before

        r = post(client, delivery, sign(delivery, secrets[i % 2]))
        assert r.status_code == expected_code(want, chart_dir), (i + 1, want.status, r.text)
        doc = r.json()
        assert doc["outcome"] == want.status, (i + 1, doc, str(want))
        assert doc["event_id"] == want.event_id
        assert doc["invoice_id"] == want.invoice_id
        assert doc["state"] == want.to_state
        assert "reason" in doc
    assert states(server.db, provider, chart_dir) == final

    # A redelivery of a delivery that was applied: 200, duplicate, nothing changes.
    first = next(d for d, o in zip(deliveries, outcomes, strict=True) if o.status == "applied")
    r = post(client, first, sign(first, secrets[1]))
    assert r.status_code == 200, r.text
    assert r.json()["outcome"] == "duplicate"
    assert states(server.db, provider, chart_dir) == final

    # What is stored: every row verified; signature headers kept, keys sent in clear redacted.
    mine = [r for r in events(server.db) if r.provider == provider]
    assert len(mine) == len(deliveries) + 1
    assert {r.verified for r in mine} == {1}
    name = signature_header(provider).lower()
    for row in mine:
        stored = {k.lower(): v for k, v in json.loads(row.headers or "{}").items()}
        if provider in ("chargeover", "moxie") or name == "authorization":
            assert stored.get(name) == "[redacted]", stored
        else:
            assert stored.get(name) not in (None, "[redacted]"), stored
    with Engine(server.db, readonly=True, chart_dir=chart_dir) as eng:
        some = next(o for o in outcomes if o.invoice_id)
        assert some.invoice_id is not None
        assert {o.verified for o in eng.history(provider, some.invoice_id)} == {True}


def _fresh(tag: str) -> Delivery:
    """A Stripe invoice.created for an invoice nobody has seen yet."""
    stamp = f"{tag}_{time.monotonic_ns()}"
    return stripe_delivery(f"evt_{stamp}", f"in_{stamp}", "invoice.created", "draft")


def _state(server: Server, invoice_id: str) -> str | None:
    with Engine(server.db, readonly=True) as eng:
        s = eng.state("stripe", invoice_id)
    return None if s is None else s.state


def test_stripe_timestamps_within_tolerance_pass_outside_fail(
    server: Server, client: httpx.Client
) -> None:
    secret = SECRETS["stripe"][0]
    now = int(time.time())
    for offset in (-400, 400, -310, 310):
        d = _fresh("ts")
        r = post(client, d, sign(d, secret, timestamp=now + offset))
        doc = refusal(r, 401)
        assert re.search(r"toleran|old|future|ahead|behind|seconds", doc["reason"]), doc
    for offset in (-250, 0, 250):
        d = _fresh("ts")
        r = post(client, d, sign(d, secret, timestamp=now + offset))
        assert r.status_code == 200, (offset, r.text)
        assert r.json()["outcome"] == "applied"


def test_stripe_any_v1_may_match(server: Server, client: httpx.Client) -> None:
    d = _fresh("v1s")
    good = sign(d, SECRETS["stripe"][1])["Stripe-Signature"]
    t, v1 = good.split(",")
    headers = {**d.headers, "Stripe-Signature": f"{t},v1={'0' * 64},{v1},v0=abc"}
    r = post(client, d, headers)
    assert r.status_code == 200, r.text
    only_v0 = {**d.headers, "Stripe-Signature": f"{t},v0={v1.removeprefix('v1=')}"}
    refusal(post(client, _fresh("v0"), only_v0), 401)


def test_a_timed_retryable_rejection_is_200_and_an_unmapped_type_is_ignored(
    server: Server, client: httpx.Client
) -> None:
    """A payment before its invoice can take it (no status snapshot to catch up with) is
    rejected as retryable. On Stripe's timed chart the event waits in the invoice's history and
    the finalization, when it comes, re-folds it into place: 200, no redelivery needed (the
    provider's retries are duplicates). An event type the chart does not map
    (``customer.created``) is ``ignored``: 200."""
    stamp = time.monotonic_ns()
    iid, t = f"in_retry_{stamp}", int(time.time()) - 600

    def event(n: int, kind: str, status: str | None, at: int) -> Delivery:
        obj: dict[str, object] = {"id": iid, "object": "invoice"}
        if status is not None:
            obj["status"] = status
        doc = {"id": f"evt_retry_{stamp}_{n}", "type": kind, "created": at, "data": {"object": obj}}
        return Delivery("stripe", json.dumps(doc).encode(), {"Content-Type": "application/json"})

    sequence = [
        event(1, "invoice.created", "draft", t),
        event(3, "invoice.paid", None, t + 200),
        event(3, "invoice.paid", None, t + 200),  # the provider's retry, still too early
        event(2, "invoice.finalized", "open", t + 100),
        event(3, "invoice.paid", None, t + 200),  # and again, after the finalization
        Delivery(
            "stripe",
            json.dumps(
                {
                    "id": f"evt_cust_{stamp}",
                    "type": "customer.created",
                    "created": t,
                    "data": {"object": {"id": "cus_1", "object": "customer"}},
                }
            ).encode(),
            {"Content-Type": "application/json"},
        ),
    ]
    outcomes, final = clean_run(sequence)
    assert any(o.status == "rejected" and o.retryable for o in outcomes), outcomes
    assert {expected_code(o) for o in outcomes} == {200}
    assert outcomes[-1].status == "ignored"
    for d, want in zip(sequence, outcomes, strict=True):
        r = post(client, d, sign(d, SECRETS["stripe"][0]))
        assert r.status_code == 200, (str(want), r.text)
        assert r.json()["outcome"] == want.status
    assert _state(server, iid) == final[iid]


# --------------------------------------------------------------------------- refusals


def test_unknown_provider_is_404_and_nothing_stored(server: Server, client: httpx.Client) -> None:
    before = rows(server)
    d = _fresh("unknown")
    r = client.post("/webhooks/strpe", content=d.body, headers=sign(d, SECRETS["stripe"][0]))
    doc = refusal(r, 404)
    assert "strpe" in doc["reason"]
    assert rows(server) == before


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_not_post_is_405(client: httpx.Client, method: str) -> None:
    r = client.request(method, "/webhooks/stripe")
    assert r.status_code == 405, r.text


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
    ],
)
def test_content_type_not_json_is_415(
    server: Server, client: httpx.Client, content_type: str
) -> None:
    before = rows(server)
    d = _fresh("ct")
    headers = {**sign(d, SECRETS["stripe"][0]), "Content-Type": content_type}
    refusal(post(client, d, headers), 415)
    assert rows(server) == before
    assert _state(server, json.loads(d.body)["data"]["object"]["id"]) is None


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "application/json",
        "application/JSON; charset=utf-8",
        "application/vnd.acme.event+json",
    ],
)
def test_json_content_types_and_none_are_taken(
    client: httpx.Client, content_type: str | None
) -> None:
    d = _fresh("ctok")
    headers = {k: v for k, v in sign(d, SECRETS["stripe"][0]).items() if k != "Content-Type"}
    if content_type is not None:
        headers["Content-Type"] = content_type
    # httpx adds no Content-Type of its own for content=bytes
    r = post(client, d, headers)
    assert r.status_code == 200, r.text
    assert r.json()["outcome"] == "applied"


def _padded(tag: str, size: int) -> Delivery:
    """A genuine Stripe delivery whose body is exactly ``size`` bytes (a long description)."""
    d = _fresh(tag)
    doc = json.loads(d.body)
    doc["data"]["object"]["description"] = ""
    base = len(json.dumps(doc, separators=(",", ":")).encode())
    doc["data"]["object"]["description"] = "x" * (size - base)
    body = json.dumps(doc, separators=(",", ":")).encode()
    assert len(body) == size
    return d.with_body(body)


def test_body_at_the_limit_is_taken(server: Server, client: httpx.Client) -> None:
    d = _padded("limit", MAX_BODY_BYTES)
    r = post(client, d, sign(d, SECRETS["stripe"][0]))
    assert r.status_code == 200, r.text[:500]
    assert r.json()["outcome"] == "applied"


def test_body_over_the_limit_is_413_and_nothing_stored(
    server: Server, client: httpx.Client
) -> None:
    before = rows(server)
    d = _padded("over", MAX_BODY_BYTES + 1)
    doc = refusal(post(client, d, sign(d, SECRETS["stripe"][0])), 413)
    assert doc["reason"]
    assert rows(server) == before


def test_413_is_sent_before_the_body_is_read(server: Server) -> None:
    """Content-Length says 50 MB; 1 KB is sent and the client waits. The server must answer
    from the header alone (a server that read on would wait here forever)."""
    head = request_head(
        "POST",
        "/webhooks/stripe",
        {"Content-Type": "application/json", "Content-Length": str(50_000_000)},
        server.port,
    )
    with raw_connection(server.port, timeout=10) as sock:
        sock.sendall(head + b"{" + b" " * 1023)
        try:
            response = read_response(sock)
        except TimeoutError:
            pytest.fail("no answer within 10 s: the server waited for the 50 MB body")
    assert response is not None, "the server closed the connection without answering"
    assert response.status == 413, response
    assert set(response.json()) >= {"error", "reason"}


def test_a_chunked_body_is_cut_at_the_limit(server: Server) -> None:
    """No Content-Length, a chunked body that never ends: 413 once it passes 2 MiB."""
    before = rows(server)
    head = request_head(
        "POST",
        "/webhooks/stripe",
        {"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
        server.port,
    )
    chunk = 64 * 1024
    piece = f"{chunk:x}\r\n".encode() + b" " * chunk + b"\r\n"
    with raw_connection(server.port, timeout=10) as sock:
        sock.sendall(head)
        sent = 0
        try:
            while sent < 3 * MAX_BODY_BYTES:
                sock.sendall(piece)
                sent += chunk
        except (BrokenPipeError, ConnectionResetError):
            pass  # it stopped reading: fine, the answer is waiting
        try:
            response = read_response(sock)
        except TimeoutError:
            pytest.fail(f"no answer within 10 s after {sent:,} bytes of a chunked body")
    assert response is not None, "the server closed the connection without answering"
    assert response.status == 413, response
    assert rows(server) == before


def test_storage_failure_is_503_with_retry_after_then_recovers(
    server: Server, client: httpx.Client
) -> None:
    d = _fresh("storage")
    invoice_id = json.loads(d.body)["data"]["object"]["id"]
    headers = sign(d, SECRETS["stripe"][0])
    before = rows(server)
    with invoice_writes_fail(server.db):
        r = post(client, d, headers)
        refusal(r, 503)
        assert r.headers.get("retry-after", "").isdigit(), r.headers
    assert rows(server) == before
    assert _state(server, invoice_id) is None
    r = post(client, d, headers)  # the provider's retry
    assert r.status_code == 200, r.text
    assert r.json()["outcome"] == "applied"
    assert client.get("/healthz").status_code == 200


# ------------------------------------------------------------------- observability


def test_metrics_count_what_happened(server: Server, client: httpx.Client) -> None:
    def scrape() -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        r = client.get("/metrics")
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/plain")
        return parse_metrics(r.text)

    before = scrape()
    d = _fresh("metrics")
    secret = SECRETS["stripe"][0]
    assert post(client, d, sign(d, secret)).status_code == 200  # applied
    assert post(client, d, sign(d, secret)).status_code == 200  # duplicate
    refusal(post(client, d, sign(d, "whsec_wrong")), 401)
    refusal(post(client, d, {**d.headers}), 401)  # no signature header
    after = scrape()

    def delta(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    total = "invoice_engine_deliveries_total"
    assert delta(total, provider="stripe", outcome="applied", code="200") == 1
    assert delta(total, provider="stripe", outcome="duplicate", code="200") == 1
    assert delta("invoice_engine_signature_failures_total", provider="stripe") == 2
    reasons = {
        dict(ls)["reason"]
        for (n, ls), v in after.items()
        if n == "invoice_engine_signature_failures_total" and dict(ls).get("provider") == "stripe"
    }
    assert len(reasons) >= 2, reasons  # a wrong signature and a missing header differ
    assert delta("invoice_engine_request_seconds_count", provider="stripe") >= 2

    # The histogram is a histogram: cumulative buckets, +Inf equal to the count.
    hist = "invoice_engine_request_seconds"
    for provider in {dict(ls)["provider"] for (n, ls) in after if n == hist + "_count"}:
        buckets = sorted(
            (float(dict(ls)["le"]), v)
            for (n, ls), v in after.items()
            if n == hist + "_bucket" and dict(ls)["provider"] == provider
        )
        assert buckets
        assert buckets[-1][0] == float("inf")
        counts = [v for _, v in buckets]
        assert counts == sorted(counts), buckets
        assert buckets[-1][1] == sample(after, hist + "_count", provider=provider)
        assert sample(after, hist + "_sum", provider=provider) > 0


def test_one_log_line_per_delivery_without_bodies_or_secrets(
    server: Server, client: httpx.Client
) -> None:
    marker = f"cus_LOGMARK{time.monotonic_ns()}"
    d = _fresh("log")
    doc = json.loads(d.body)
    doc["data"]["object"]["customer"] = marker
    d = d.with_body(json.dumps(doc).encode())
    event_id = doc["id"]
    r = post(client, d, sign(d, SECRETS["stripe"][0]))
    assert r.status_code == 200
    refusal(post(client, d, sign(d, "whsec_wrong_one")), 401)
    deadline = time.monotonic() + 5
    while event_id not in server.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    log = server.log()
    lines = [ln for ln in log.splitlines() if event_id in ln]
    assert len(lines) == 1, lines
    line = lines[0]
    for word in ("stripe", "applied", "200"):
        assert word in line, line
    assert re.search(r"ms\b|\bms=|millis", line), line
    assert marker not in log, "a body reached the log"
    for pair in SECRETS.values():
        for secret in pair:
            assert secret not in log, "a secret reached the log"
    assert "whsec_wrong_one" not in log


# --------------------------------------------------------------------- concurrency


def test_concurrent_deliveries_are_each_recorded_once(server: Server, client: httpx.Client) -> None:
    """32 connections at once, each a new invoice: each answered 200 after commit, each row
    there exactly once (the writer groups them; no answer is lost or doubled)."""
    from concurrent.futures import ThreadPoolExecutor

    ds = [_fresh(f"conc{i}") for i in range(200)]
    before = rows(server)

    def send(i: int) -> int:
        with httpx.Client(base_url=server.base, timeout=30) as c:
            return post(c, ds[i], sign(ds[i], SECRETS["stripe"][i % 2])).status_code

    with ThreadPoolExecutor(32) as pool:
        codes = list(pool.map(send, range(len(ds))))
    assert codes == [200] * len(ds)
    assert rows(server) == before + len(ds)
    with Engine(server.db, readonly=True) as eng:
        for d in ds:
            iid = json.loads(d.body)["data"]["object"]["id"]
            s = eng.state("stripe", iid)
            assert s is not None
            assert s.state == "draft"


def test_still_serving_after_everything(server: Server, client: httpx.Client) -> None:
    assert server.alive()
    d = _fresh("end")
    assert post(client, d, sign(d, SECRETS["stripe"][1])).status_code == 200
    assert client.get("/healthz").status_code == 200


def test_a_retryable_rejection_is_409_only_where_a_redelivery_is_decided_again() -> None:
    from engine.server import status_code

    retry = Outcome(status="rejected", provider="chargeover", retryable=True)
    assert status_code(retry, arrival_ordered=True) == 409
    assert status_code(retry, arrival_ordered=False) == 200
    assert status_code(retry.model_copy(update={"retryable": False}), arrival_ordered=True) == 200
    assert status_code(Outcome(status="invalid", provider="x"), arrival_ordered=True) == 422
