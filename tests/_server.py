"""A real ``invoice-engine serve`` process, and deliveries signed the way each provider signs.

The server tests talk to a real server process over real sockets; nothing in the HTTP layer is
mocked. Deliveries are signed by the providers' own SDKs where one exists (stripe-python,
modern-treasury, standardwebhooks) and by each provider's documented recipe where none does
(Upmind, Pelcro, ChargeOver's shared key, Moxie's shared secret), so a test passes only if the
server accepts what the provider would really send.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

from engine import Engine, Outcome, load_chart
from engine.chart import bundled_chart_dir
from engine.cli._jsonl import bounded_lines, example_streams, read_jsonl
from engine.runtime.delivery import body_bytes

ROOT = Path(__file__).resolve().parent.parent
CLI = Path(sys.executable).with_name("invoice-engine")

#: Two secrets per provider: the old and the new of a rotation (the server accepts both).
#: ``acme`` is a user's own chart (tests write it) using the Standard Webhooks scheme, whose
#: secrets are ``whsec_`` + base64 of the key.
SECRETS: dict[str, tuple[str, str]] = {
    "stripe": ("whsec_old_4f1c2b9e7d", "whsec_new_8a3e6d0c5f"),
    "modern_treasury": ("mt_old_key_71c3", "mt_new_key_94e2"),
    "upmind": ("upmind_old_secret_2b7", "upmind_new_secret_6d1"),
    "pelcro": ("pelcro_old_secret_5e8", "pelcro_new_secret_3a9"),
    "lago": ("lago_old_hmac_key_4c2", "lago_new_hmac_key_8d5"),
    "chargeover": ("co_old_key_0d4f7a", "co_new_key_9c2e1b"),
    "moxie": ("moxie_old_token_1f6e", "moxie_new_token_7b3d"),
    "acme": (
        "whsec_" + base64.b64encode(b"acme old key, 24 bytes!!").decode(),
        "whsec_" + base64.b64encode(b"acme new key, 24 bytes!!").decode(),
    ),
}
WRONG_SECRET = {p: old.replace("old", "bad") for p, (old, _) in SECRETS.items()}
WRONG_SECRET["acme"] = "whsec_" + base64.b64encode(b"not acme's key, 24 bytes").decode()

#: Header names that carry a signature or a key in some provider's scheme: removed from the
#: example streams' headers before signing them again with the test's secrets.
AUTH_HEADERS = frozenset(
    {
        "stripe-signature",
        "x-signature",
        "x-webhook-signature",
        "x-pelcro-hmac-sha256",
        "x-lago-signature",
        "x-lago-signature-algorithm",
        "x-chargeover-key",
        "authorization",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    }
)
#: Providers whose scheme is a key sent in clear (not bound to the body).
SHARED_KEY = frozenset({"chargeover", "moxie"})
#: Providers whose signature carries a time the server checks against a tolerance.
TIMED = frozenset({"stripe", "acme"})


def env_name(provider: str) -> str:
    """The environment variable that holds ``provider``'s secrets."""
    return "INVOICE_ENGINE_SECRET_" + provider.upper()


def secret_env(providers: Sequence[str], *, rotate: bool = True) -> dict[str, str]:
    """``INVOICE_ENGINE_SECRET_<P>`` for each provider: ``old,new`` (a rotation) or ``old``."""
    return {env_name(p): ",".join(SECRETS[p] if rotate else SECRETS[p][:1]) for p in providers}


# ------------------------------------------------------------------------------ the server


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without any invoice-engine setting, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INVOICE_ENGINE_")}
    env.update(extra or {})
    return env


class ServerDied(RuntimeError):
    """The server process exited when it should be serving."""


class Server:
    """``invoice-engine serve`` in a subprocess on a free port, its output in a log file.

    ``kill()`` sends SIGKILL (nothing flushed, nothing cleaned up) and ``start()`` again runs it
    on the same port and database, as a supervisor would.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        db: Path | None = None,
        env: Mapping[str, str] | None = None,
        args: Sequence[str] = (),
        port: int | None = None,
    ) -> None:
        self.workdir = workdir
        self.db = db or workdir / "invoices.db"
        self.env = clean_env(env)
        self.args = list(args)
        self.port = port or free_port()
        self.log_path = workdir / f"serve-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.base + path

    def command(self) -> list[str]:
        return [
            str(CLI),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--db",
            str(self.db),
            *self.args,
        ]

    def start(self, timeout: float = 30.0) -> Server:
        """Start the process and return once ``GET /healthz`` answers 200."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.starts}: {' '.join(self.command())}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.command(),
                cwd=self.workdir,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise ServerDied(f"serve exited {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.url("/healthz"), timeout=1.0).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise ServerDied(f"serve did not answer /healthz in {timeout} s:\n{self.log()}")
            time.sleep(0.05)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: the process ends at once, in the middle of whatever it was doing."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> int | None:
        """SIGTERM, as a supervisor stops a service; SIGKILL if it lingers. The exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode

    def log(self) -> str:
        """Everything the process printed (stdout and stderr), over all its starts."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_serve(
    workdir: Path, args: Sequence[str], env: Mapping[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """Run ``invoice-engine serve ARGS`` expecting it to exit by itself (a refusal to start)."""
    return subprocess.run(
        [str(CLI), "serve", *args],
        cwd=workdir,
        env=clean_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# ------------------------------------------------------------------------------- deliveries


@dataclass(frozen=True)
class Delivery:
    """One webhook delivery as the provider sends it, before authentication headers."""

    provider: str
    body: bytes
    headers: Mapping[str, str]

    def with_body(self, body: bytes) -> Delivery:
        return replace(self, body=body)


def stream(provider: str) -> list[Delivery]:
    """The bundled example stream of ``provider``, each line's own auth headers removed."""
    source = example_streams()[provider]
    with source.open("rb") as f:
        items = list(read_jsonl(bounded_lines(f)))
    out: list[Delivery] = []
    for item in items:
        body, headers = item if isinstance(item, tuple) else (item, None)
        hdrs = {str(k): str(v) for k, v in (headers or {}).items() if k.lower() not in AUTH_HEADERS}
        out.append(Delivery(provider, body_bytes(body), hdrs))
    return out


def stripe_body(
    event_id: str, invoice_id: str, event_type: str, status: str, **extra: Any
) -> bytes:
    """A Stripe invoice event (``created`` a minute ago), compact JSON."""
    doc = {
        "id": event_id,
        "object": "event",
        "type": event_type,
        "created": int(time.time()) - 60,
        "data": {"object": {"id": invoice_id, "object": "invoice", "status": status, **extra}},
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def stripe_delivery(event_id: str, invoice_id: str, event_type: str, status: str) -> Delivery:
    return Delivery(
        "stripe",
        stripe_body(event_id, invoice_id, event_type, status),
        {"Content-Type": "application/json"},
    )


def as_user_chart(chart_dir: Path, name: str = "acme") -> Path:
    """A user's own chart ``name`` in ``chart_dir``: Stripe's lifecycle, Standard Webhooks'
    signature scheme, written as the docs tell a user to (the text edited, not re-dumped, so
    the chart loader reads it exactly as it reads the bundled one)."""
    lines = (bundled_chart_dir() / "stripe.yaml").read_text().splitlines()
    out: list[str] = []
    skipping = False
    for line in lines:
        if skipping and (line[:1].isspace() or not line.strip() or line.startswith("#")):
            continue
        skipping = line.startswith("signature:")
        if skipping:
            continue
        out.append(f"provider: {name}" if line.startswith("provider:") else line)
    out += ["", "signature:", "  scheme: standard_webhooks", "  tolerance: 300", ""]
    chart_dir.mkdir(parents=True, exist_ok=True)
    path = chart_dir / f"{name}.yaml"
    path.write_text("\n".join(out))
    _CHART_DIRS[name] = chart_dir
    return path


def signature_block(provider: str, chart_dir: Path | None = None) -> dict[str, Any]:
    """The ``signature:`` block of a provider's chart, as written (``{}`` if it has none)."""
    path = chart_dir / f"{provider}.yaml" if chart_dir else None
    if path is None or not path.exists():
        path = bundled_chart_dir() / f"{provider}.yaml"
    doc = yaml.safe_load(path.read_text())
    block = doc.get("signature") or {}
    assert isinstance(block, dict)
    return block


def _hmac(secret: str | bytes, data: bytes) -> bytes:
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, data, hashlib.sha256).digest()


def _block_sign(delivery: Delivery, secret: str, ts: int, msg_id: str | None) -> dict[str, str]:
    """Sign as the chart's ``signature:`` block says (a user's chart; see the docs)."""
    block = signature_block(delivery.provider, _CHART_DIRS.get(delivery.provider))
    scheme = block.get("scheme")
    body, headers = delivery.body, dict(delivery.headers)
    if scheme == "stripe":
        import stripe

        header = stripe.WebhookSignature.generate_signature_header(
            body.decode("utf-8"), secret, timestamp=ts
        )
        headers[str(block.get("header", "Stripe-Signature"))] = str(header)
    elif scheme == "hmac":
        signed = body.strip(b" \t\n\r\0\x0b") if block.get("signed") == "trimmed_body" else body
        mac = _hmac(secret, signed)
        text = base64.b64encode(mac).decode() if block.get("encoding") == "base64" else mac.hex()
        headers[str(block["header"])] = str(block.get("prefix", "")) + text
    elif scheme == "shared_secret":
        name, value = _shared(block, secret)
        headers[name] = value
    elif scheme == "standard_webhooks":
        import standardwebhooks

        prefix = str(block.get("header_prefix", "webhook-"))
        mid = msg_id or "msg_" + hashlib.sha256(body).hexdigest()[:24]
        headers[prefix + "id"] = mid
        headers[prefix + "timestamp"] = str(ts)
        headers[prefix + "signature"] = standardwebhooks.Webhook(secret).sign(
            mid, datetime.fromtimestamp(ts, UTC), body.decode("utf-8")
        )
    else:
        raise AssertionError(f"{delivery.provider}: no signing recipe for scheme {scheme!r}")
    return headers


def _shared(block: Mapping[str, Any], secret: str) -> tuple[str, str]:
    form = str(block.get("form", "plain"))
    header = str(block.get("header") or "Authorization")
    if form == "bearer":
        return header, f"Bearer {secret}"
    if form == "basic":
        return header, "Basic " + base64.b64encode(secret.encode()).decode()
    return header, secret


#: Where the tests wrote a user's chart (provider -> chart folder), for _block_sign.
_CHART_DIRS: dict[str, Path] = {}
_MT_CLIENTS: dict[str, Any] = {}


def sign(
    delivery: Delivery,
    secret: str,
    *,
    timestamp: int | None = None,
    msg_id: str | None = None,
) -> dict[str, str]:
    """The delivery's headers plus its provider's signature (or key) made with ``secret``.

    The bundled providers are signed as the *providers* do — their SDKs (Stripe, Modern
    Treasury) or their documented recipes — not as our charts say, so a chart that gets a
    provider wrong fails here. Other providers (a user's chart) are signed as their chart's
    ``signature:`` block says.

    Args:
        delivery: what to sign.
        secret: the signing secret (or shared key).
        timestamp: for schemes that sign a time (Stripe, Standard Webhooks): this Unix time
            instead of now.
        msg_id: Standard Webhooks' ``webhook-id`` (default: derived from the body).
    """
    provider, body = delivery.provider, delivery.body
    headers = dict(delivery.headers)
    ts = int(time.time()) if timestamp is None else timestamp
    if provider == "stripe":
        import stripe

        header = stripe.WebhookSignature.generate_signature_header(
            body.decode("utf-8"), secret, timestamp=ts
        )
        headers["Stripe-Signature"] = str(header)
    elif provider == "modern_treasury":
        import modern_treasury

        client = _MT_CLIENTS.get(secret)
        if client is None:
            client = modern_treasury.ModernTreasury(
                api_key="unused", organization_id="unused", webhook_key=secret
            )
            _MT_CLIENTS[secret] = client
        headers["X-Signature"] = str(client.webhooks.get_signature(body.decode("utf-8")))
    elif provider == "upmind":
        # Upmind's PHP library signs trim($body): space, \t, \n, \r, \0 and \x0B.
        headers["X-Webhook-Signature"] = _hmac(secret, body.strip(b" \t\n\r\0\x0b")).hex()
    elif provider == "pelcro":
        headers["X-Pelcro-Hmac-SHA256"] = base64.b64encode(_hmac(secret, body)).decode()
    elif provider == "lago":  # Lago's Webhook#hmac_signature, with the algorithm it names
        headers["X-Lago-Signature"] = base64.b64encode(_hmac(secret, body)).decode()
        headers["X-Lago-Signature-Algorithm"] = "hmac"
    elif provider == "chargeover":
        headers["X-ChargeOver-Key"] = secret
    elif provider == "moxie":  # no scheme of its own: the user's choice, as its chart says
        name, value = _shared(signature_block("moxie"), secret)
        headers[name] = value
    else:
        return _block_sign(delivery, secret, ts, msg_id)
    return headers


def signature_header(provider: str) -> str:
    """The name of the header that carries ``provider``'s signature or key."""
    fixed = {
        "stripe": "Stripe-Signature",
        "modern_treasury": "X-Signature",
        "upmind": "X-Webhook-Signature",
        "pelcro": "X-Pelcro-Hmac-SHA256",
        "lago": "X-Lago-Signature",
        "chargeover": "X-ChargeOver-Key",
    }
    if provider in fixed:
        return fixed[provider]
    block = signature_block(provider, _CHART_DIRS.get(provider))
    if block.get("scheme") == "standard_webhooks":
        return str(block.get("header_prefix", "webhook-")) + "signature"
    if block.get("scheme") == "shared_secret":
        return _shared(block, "x")[0]
    return str(block.get("header", "Stripe-Signature"))


def _malformed(provider: str) -> str:
    known = {
        "stripe": "t=not-a-time,v1=zz",
        "modern_treasury": "not hex at all",
        "upmind": "XYZ",
        "pelcro": "!!! not base64 !!!",
        "lago": "!!! not base64 !!!",
        "chargeover": "",
        "moxie": "",
    }
    if provider in known:
        return known[provider]
    scheme = signature_block(provider, _CHART_DIRS.get(provider)).get("scheme")
    return {"standard_webhooks": "v1,@@@not-base64@@@", "stripe": "t=x,v1=zz"}.get(
        str(scheme), "@@@"
    )


def _tampered(body: bytes) -> bytes:
    """The body changed in a way JSON doesn't notice: a space after the opening brace (what a
    re-serialized body looks like to a signature), or a byte added to what is not JSON."""
    if len(body) > 1 and body[:1] == b"{":
        return b"{ " + body[1:]
    return body + b"x"


def forgeries(delivery: Delivery, *, timed: bool = True) -> list[tuple[str, dict[str, str], bytes]]:
    """Ways to get the delivery wrong: (what, headers, body); each must be refused with 401."""
    provider = delivery.provider
    good = sign(delivery, SECRETS[provider][0])
    sig = signature_header(provider)
    out: list[tuple[str, dict[str, str], bytes]] = [
        ("wrong secret", sign(delivery, WRONG_SECRET[provider]), delivery.body),
        ("missing header", _without(good, sig), delivery.body),
        ("malformed header", {**good, sig: _malformed(provider)}, delivery.body),
    ]
    if provider not in SHARED_KEY:
        out.append(("tampered body", good, _tampered(delivery.body)))
    if provider in TIMED and timed:
        now = int(time.time())
        out.append(
            (
                "stale timestamp",
                sign(delivery, SECRETS[provider][0], timestamp=now - 400),
                delivery.body,
            )
        )
        out.append(
            (
                "future timestamp",
                sign(delivery, SECRETS[provider][0], timestamp=now + 400),
                delivery.body,
            )
        )
    return out


def _without(headers: Mapping[str, str], name: str) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() != name.lower()}


def post(
    client: httpx.Client,
    delivery: Delivery,
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
) -> httpx.Response:
    """POST the delivery to ``/webhooks/<provider>`` (signed headers given, or as it is)."""
    return client.post(
        f"/webhooks/{delivery.provider}",
        content=delivery.body if body is None else body,
        headers=dict(delivery.headers if headers is None else headers),
    )


# -------------------------------------------------------------------------- what is stored


def expected_code(outcome: Outcome, chart_dir: Path | None = None) -> int:
    """The status code the contract gives an outcome: 409 only for a retryable rejection on a
    chart without event times (there a redelivery is decided again; elsewhere a re-fold
    settles it, so the answer is 200)."""
    if outcome.status == "invalid":
        return 422
    if outcome.status == "rejected" and outcome.retryable:
        chart = load_chart(outcome.provider, chart_dir)
        return 409 if chart.spec.delivery.occurred_at is None else 200
    return 200


def clean_run(
    deliveries: Sequence[Delivery], chart_dir: Path | None = None
) -> tuple[list[Outcome], dict[str, str]]:
    """The deliveries applied in order by an in-process engine on a fresh database: each
    outcome, and the final state of every invoice (by id)."""
    if not deliveries:
        return [], {}
    provider = deliveries[0].provider
    with Engine(":memory:", chart_dir=chart_dir) as eng:
        outs = [eng.apply(provider, d.body, d.headers) for d in deliveries]
        states = {s.invoice_id: s.state for s in eng.invoices(provider)}
    return outs, states


def states(db: Path, provider: str, chart_dir: Path | None = None) -> dict[str, str]:
    """Every invoice's state in a database the server writes (read-only, while it runs)."""
    with Engine(db, readonly=True, chart_dir=chart_dir) as eng:
        return {s.invoice_id: s.state for s in eng.invoices(provider)}


# ------------------------------------------------------------------------------- /metrics

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse_metrics(text: str) -> Samples:
    """Prometheus' text format: (name, labels) -> value. Fails on a line it can't read."""
    out: Samples = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        assert m, f"not a Prometheus sample line: {line!r}"
        labels = frozenset((k, v) for k, v in _LABEL.findall(m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def sample(samples: Samples, name: str, **labels: str) -> float:
    """The sum of every sample of ``name`` whose labels include ``labels`` (0 if none)."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


# ------------------------------------------------------------------------------ raw sockets


@contextmanager
def raw_connection(port: int, timeout: float = 10.0) -> Iterator[socket.socket]:
    """A plain TCP connection to the server, for requests no HTTP client would send."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        yield sock
    finally:
        sock.close()


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def read_response(sock: socket.socket) -> RawResponse | None:
    """One HTTP/1.1 response read off the socket; ``None`` if the server closed the
    connection without answering."""
    data = b""
    while b"\r\n\r\n" not in data:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            return None if not data else _parse(data, sock)
        data += chunk
    return _parse(data, sock)


def _parse(data: bytes, sock: socket.socket) -> RawResponse:
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        rest += chunk
    return RawResponse(status, headers, rest[:length])


def request_head(method: str, path: str, headers: Mapping[str, str], port: int) -> bytes:
    """The bytes of a request line and headers (the caller adds the body)."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
