"""Signature verification: every bundled provider, signed as the *provider* signs.

Deliveries are signed by the providers' own code where it exists — stripe-python's
``WebhookSignature``, Modern Treasury's ``webhooks.get_signature``, the ``standardwebhooks``
package — and by the documented recipe otherwise (Upmind's PHP library signs ``trim($body)``;
Pelcro's base64 HMAC of the body; Lago's base64 HMAC of the body with
``X-Lago-Signature-Algorithm: hmac``, or its RS256 token over the body, signed by PyJWT with a
key the test makes, as Lago's ``Webhook#jwt_signature`` does; ChargeOver's key in clear; Moxie's
Bearer token as its chart chooses), never from our chart, so a chart that gets a provider wrong
fails here. Each provider:
a valid delivery passes; a tampered body, a wrong secret, a missing or malformed header fail
with their reason; rotated secrets (old and new) both pass; no message or repr holds a secret,
the expected signature or a shared key. A delivery sent again with a new header is the same
event; :func:`check_secrets` refuses, at start-up, a secret the scheme can't use.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import pickle
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
import modern_treasury
import pytest
import standardwebhooks
import stripe
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

import engine
from engine import Engine, Secrets, SignatureError, verify_signature
from engine.chart import bundled_chart_dir
from engine.runtime.delivery import body_bytes
from engine.runtime.verify import check_secrets, describe_signature

STREAMS = Path(__file__).resolve().parent.parent / "examples" / "streams"
BUNDLED = sorted(p.stem for p in bundled_chart_dir().glob("*.yaml"))

NEW = {p: f"{p}_secret_new_7Qx" for p in BUNDLED} | {"stripe": "whsec_new_7Qx9"}
OLD = {p: f"{p}_secret_old_3Kz" for p in BUNDLED} | {"stripe": "whsec_old_3Kz1"}
WRONG = {p: f"{p}_not_the_secret" for p in BUNDLED}


def _mac(secret: str, data: bytes) -> bytes:
    return hmac.new(secret.encode(), data, hashlib.sha256).digest()


def sign(provider: str, body: bytes, secret: str, *, ts: int | None = None) -> dict[str, str]:
    """The headers ``provider`` itself would send with ``body`` (its SDK, or its recipe)."""
    t = int(time.time()) if ts is None else ts
    if provider == "stripe":
        header = stripe.WebhookSignature.generate_signature_header(body.decode(), secret, t)
        return {"Stripe-Signature": str(header)}
    if provider == "modern_treasury":
        client = modern_treasury.ModernTreasury(
            api_key="unused", organization_id="unused", webhook_key=secret
        )
        return {"X-Signature": client.webhooks.get_signature(body.decode())}
    if provider == "upmind":  # Upmind's library: hash_hmac('sha256', trim($body), $secret)
        return {"X-Webhook-Signature": _mac(secret, body.strip(b" \t\n\r\0\x0b")).hex()}
    if provider == "pelcro":
        return {"X-Pelcro-Hmac-SHA256": base64.b64encode(_mac(secret, body)).decode()}
    if provider == "lago":  # Webhook#hmac_signature: Base64.strict_encode64(HMAC-SHA256(body))
        return {
            "X-Lago-Signature": base64.b64encode(_mac(secret, body)).decode(),
            "X-Lago-Signature-Algorithm": "hmac",
        }
    if provider == "chargeover":
        return {"X-ChargeOver-Key": secret}
    if provider == "moxie":  # Moxie set to Bearer, as its chart chooses
        return {"Authorization": f"Bearer {secret}"}
    raise AssertionError(f"no recipe for {provider}")


#: A header that is there but can't be read, per provider.
MALFORMED = {
    "stripe": {"Stripe-Signature": "t=not-a-time,v1=abc"},
    "modern_treasury": {"X-Signature": "not hex at all"},
    "upmind": {"X-Webhook-Signature": "XYZ"},
    "pelcro": {"X-Pelcro-Hmac-SHA256": "!!! not base64 !!!"},
    "lago": {"X-Lago-Signature": "!!! not base64 !!!", "X-Lago-Signature-Algorithm": "hmac"},
    "moxie": {"Authorization": "Token moxie"},
}


def _body(provider: str) -> bytes:
    line = (STREAMS / f"{provider}.jsonl").read_text(encoding="utf-8").splitlines()[0]
    raw = body_bytes(json.loads(line)["body"])
    # Upmind signs the trimmed body: surrounding whitespace must not matter to it.
    return b"\n  " + raw + b" \n" if provider == "upmind" else raw


def _refused(
    chart: str | engine.Chart, body: bytes, headers: Any, secrets: Any, **kw: Any
) -> SignatureError:
    with pytest.raises(SignatureError) as info:
        verify_signature(chart, body, headers, secrets, **kw)
    _says_no_secret(info.value, secrets, headers)
    return info.value


def _says_no_secret(err: SignatureError, secrets: Any, headers: Any) -> None:
    """Neither the message, nor the repr, nor a pickled copy holds a secret or a header
    value that is long enough to be one."""
    if isinstance(secrets, Secrets):
        values = [s for p in secrets.providers() for s in secrets.secrets(p)]
    else:
        values = [secrets] if isinstance(secrets, str) else list(secrets)
    if isinstance(headers, dict):
        values += [v for v in headers.values() if len(v) >= 12]
    shown = [str(err), repr(err), str(pickle.loads(pickle.dumps(err)))]
    for value in (v.strip() for v in values if v.strip()):
        for text in shown:
            assert value not in text, (value, text)
            for part in value.replace(",", "=").split("="):  # v1=<hex>: not the signature either
                assert len(part) < 12 or part not in text, (part, text)


# --------------------------------------------------------------------- every bundled provider


@pytest.mark.parametrize("provider", BUNDLED)
def test_a_delivery_signed_by_the_provider_passes(provider: str) -> None:
    body = _body(provider)
    verify_signature(provider, body, sign(provider, body, NEW[provider]), NEW[provider])
    # a Secrets, and the headers in another case
    headers = {k.upper(): v for k, v in sign(provider, body, NEW[provider]).items()}
    verify_signature(provider, body, headers, Secrets({provider: NEW[provider]}))


@pytest.mark.parametrize("provider", BUNDLED)
def test_rotated_secrets_old_and_new_both_pass(provider: str) -> None:
    body = _body(provider)
    both = Secrets({provider: [NEW[provider], OLD[provider]]})
    for secret in (NEW[provider], OLD[provider]):
        verify_signature(provider, body, sign(provider, body, secret), both)
    err = _refused(provider, body, sign(provider, body, WRONG[provider]), both)
    assert err.reason == "no_match"
    assert "any of the 2" in str(err)


@pytest.mark.parametrize("provider", BUNDLED)
def test_a_tampered_body_fails(provider: str) -> None:
    body = _body(provider)
    headers = sign(provider, body, NEW[provider])
    tampered = body.replace(b"invoice", b"invoicf", 1)
    assert tampered != body
    if provider in ("chargeover", "moxie"):  # the key is not tied to the body: nothing to see
        verify_signature(provider, tampered, headers, NEW[provider])
        return
    err = _refused(provider, tampered, headers, NEW[provider])
    assert (err.reason, err.provider) == ("no_match", provider)
    assert err.header == next(iter(headers))


@pytest.mark.parametrize("provider", BUNDLED)
def test_a_wrong_secret_fails(provider: str) -> None:
    body = _body(provider)
    err = _refused(provider, body, sign(provider, body, WRONG[provider]), NEW[provider])
    assert err.reason == "no_match"
    assert next(iter(sign(provider, body, "x"))) in str(err)  # names the header


@pytest.mark.parametrize("provider", BUNDLED)
def test_a_missing_header_fails(provider: str) -> None:
    body = _body(provider)
    name = next(iter(sign(provider, body, "x")))
    err = _refused(provider, body, {"Content-Type": "application/json"}, NEW[provider])
    assert (err.reason, err.header) == ("missing_header", name)
    assert f"the {name} header is missing" in str(err)
    assert _refused(provider, body, {name: "  "}, NEW[provider]).reason == "missing_header"


@pytest.mark.parametrize("provider", sorted(set(BUNDLED) - {"chargeover"}))
def test_a_malformed_header_fails(provider: str) -> None:
    body = _body(provider)
    err = _refused(provider, body, MALFORMED[provider], NEW[provider])
    assert err.reason == "malformed_header", str(err)
    assert next(iter(MALFORMED[provider])) in str(err)


def test_a_header_sent_twice_with_two_values_is_malformed() -> None:
    body = _body("modern_treasury")
    good = sign("modern_treasury", body, NEW["modern_treasury"])["X-Signature"]
    pairs = [("X-Signature", good), ("x-signature", "0" * 64)]
    err = _refused("modern_treasury", body, pairs, NEW["modern_treasury"])
    assert err.reason == "malformed_header"
    assert "sent 2 times" in str(err)
    verify_signature("modern_treasury", body, [*pairs[:1], *pairs[:1]], NEW["modern_treasury"])


@pytest.mark.parametrize("provider", BUNDLED)
def test_no_secret_configured_says_which_variable(provider: str) -> None:
    body = _body(provider)
    err = _refused(provider, body, sign(provider, body, "x"), Secrets())
    assert err.reason == "no_secret"
    assert f"INVOICE_ENGINE_SECRET_{provider.upper()}" in str(err)
    assert _refused(provider, body, {}, ["", "  "]).reason == "no_secret"


# ------------------------------------------------------------------------------- Stripe


def test_stripe_accepts_what_stripe_python_accepts() -> None:
    body = _body("stripe")
    headers = sign("stripe", body, NEW["stripe"])
    verify_signature("stripe", body, headers, NEW["stripe"])
    event = stripe.Webhook.construct_event(body, headers["Stripe-Signature"], NEW["stripe"])
    assert event["id"] == json.loads(body)["id"]
    # several v1 (Stripe sends one per active secret while it rolls): any may match
    t = int(time.time())
    v1 = sign("stripe", body, NEW["stripe"], ts=t)["Stripe-Signature"].split(",")[1]
    rolled = f"t={t},v1={'0' * 64},{v1},v0=legacy"
    verify_signature("stripe", body, {"Stripe-Signature": rolled}, NEW["stripe"])
    stripe.WebhookSignature.verify_header(body, rolled, NEW["stripe"], 300)


@pytest.mark.parametrize(
    ("header", "says"),
    [
        ("v1=" + "a" * 64, "no t= timestamp"),
        ("t=1,t=2,v1=" + "a" * 64, "2 t= timestamps"),
        (f"t={int(time.time())}", "no v1= signature"),
        (f"t={int(time.time())},v0=" + "a" * 64, "no v1= signature"),
        ("t=12e3,v1=" + "a" * 64, "not unix seconds"),
        ("t=-5,v1=" + "a" * 64, "not unix seconds"),
    ],
)
def test_stripe_malformed_headers_say_what_is_wrong(header: str, says: str) -> None:
    err = _refused("stripe", b"{}", {"Stripe-Signature": header}, NEW["stripe"])
    assert err.reason == "malformed_header"
    assert says in str(err)


@pytest.mark.parametrize(("offset", "way"), [(-301, "past"), (-3600, "past"), (400, "future")])
def test_stripe_timestamps_outside_the_tolerance_fail_both_ways(offset: int, way: str) -> None:
    now = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
    t = int(now.timestamp()) + offset
    body = _body("stripe")
    headers = sign("stripe", body, NEW["stripe"], ts=t)
    err = _refused("stripe", body, headers, NEW["stripe"], now=now)
    assert (err.reason, err.header, err.skew) == (
        "timestamp_outside_tolerance",
        "Stripe-Signature",
        offset,
    )
    beyond = abs(offset) - 300
    assert f"{abs(offset)} s in the {way}, {beyond} s" in str(err)
    assert "300 s tolerance" in str(err)


@pytest.mark.parametrize("offset", [-300, -299, 0, 299, 300])
def test_stripe_timestamps_inside_the_tolerance_pass(offset: int) -> None:
    now = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
    body = _body("stripe")
    headers = sign("stripe", body, NEW["stripe"], ts=int(now.timestamp()) + offset)
    verify_signature("stripe", body, headers, NEW["stripe"], now=now)
    verify_signature("stripe", body, headers, NEW["stripe"], now=now.replace(tzinfo=None))


def test_a_wrong_signature_is_reported_before_a_stale_time() -> None:
    """``timestamp_outside_tolerance`` means the delivery is authentic but late or early."""
    now = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
    body = _body("stripe")
    stale = sign("stripe", body, WRONG["stripe"], ts=int(now.timestamp()) - 9999)
    assert _refused("stripe", body, stale, NEW["stripe"], now=now).reason == "no_match"


# --------------------------------------------------------------------------- the examples


def test_every_example_stream_line_verifies_with_its_demo_secret() -> None:
    """examples/streams/README.md names the demo secrets the streams were signed with."""
    demo = {
        "stripe": "whsec_demo_stripe",
        "pelcro": "pelcro_demo_secret",
        "modern_treasury": "mt_demo_secret",
        "upmind": "upmind_demo_secret",
        "lago": "lago_demo_secret",
        "chargeover": "co_demo_key_5f2a9c",
        "moxie": "moxie_demo_token",
    }
    for provider, secret in demo.items():
        chart = engine.load_chart(provider)
        assert chart.spec.signature is not None
        header = chart.spec.signature.headers[0]
        checked = 0
        for text in (STREAMS / f"{provider}.jsonl").read_text(encoding="utf-8").splitlines():
            try:
                line = json.loads(text)
            except ValueError:  # each stream has one malformed line, on purpose
                continue
            headers = {k.lower(): v for k, v in line.get("headers", {}).items()}
            if header not in headers:
                continue
            now = None
            if provider == "stripe":  # signed in 2024: check against that time
                t = int(headers[header].split(",")[0].removeprefix("t="))
                now = datetime.fromtimestamp(t, UTC)
            verify_signature(chart, body_bytes(line["body"]), headers, secret, now=now)
            checked += 1
        assert checked, provider


# --------------------------------------------------------- schemes a user's chart can name


def _user_chart(tmp_path: Path, block: str | None, name: str = "acme") -> engine.Chart:
    """The stripe chart under another name, with ``block`` as its signature (none: no block)."""
    text = (bundled_chart_dir() / "stripe.yaml").read_text(encoding="utf-8")
    head, _, rest = text.partition("\nsignature:\n")
    rest = rest[rest.index("\nevents:") :]
    text = head + ("\n" + block if block else "") + rest
    path = tmp_path / f"{name}.yaml"
    path.write_text(text.replace("provider: stripe", f"provider: {name}"), encoding="utf-8")
    return engine.load_chart(path)


WHSEC = "whsec_" + base64.b64encode(b"a standard webhooks key, 32 byte").decode()


def _standard(body: bytes, secret: str, ts: int, prefix: str = "webhook-") -> dict[str, str]:
    when = datetime.fromtimestamp(ts, UTC)
    sig = standardwebhooks.Webhook(secret).sign("msg_2b7", when, body.decode())
    return {f"{prefix}id": "msg_2b7", f"{prefix}timestamp": str(ts), f"{prefix}signature": sig}


def test_standard_webhooks_signed_by_its_library_pass_and_fail(tmp_path: Path) -> None:
    chart = _user_chart(tmp_path, "signature: {scheme: standard_webhooks}\n")
    body, now = _body("stripe"), int(time.time())
    headers = _standard(body, WHSEC, now)
    verify_signature(chart, body, headers, WHSEC)
    standardwebhooks.Webhook(WHSEC).verify(body, headers)  # and the library agrees
    rotated = [WHSEC, "whsec_" + base64.b64encode(b"the next key").decode()]
    headers["webhook-signature"] = "v1a,ignored " + headers["webhook-signature"]
    verify_signature(chart, body, headers, rotated)
    assert _refused(chart, body + b" ", headers, WHSEC).reason == "no_match"
    wrong = "whsec_" + base64.b64encode(b"another key").decode()
    assert _refused(chart, body, headers, wrong).reason == "no_match"
    err = _refused(chart, body, {k: v for k, v in headers.items() if k != "webhook-id"}, WHSEC)
    assert (err.reason, err.header) == ("missing_header", "webhook-id")
    for bad in ("v1", "v2,abc", "v1,@@@"):
        err = _refused(chart, body, {**headers, "webhook-signature": bad}, WHSEC)
        assert (err.reason, err.header) == ("malformed_header", "webhook-signature")
    err = _refused(chart, body, headers, "whsec_not*base64!")
    assert err.reason == "bad_secret"
    assert "#1" in str(err)


@pytest.mark.parametrize(("offset", "way"), [(-301, "past"), (301, "future")])
def test_standard_webhooks_tolerance_holds_both_ways(tmp_path: Path, offset: int, way: str) -> None:
    chart = _user_chart(tmp_path, "signature: {scheme: standard_webhooks}\n")
    now = datetime(2024, 6, 1, tzinfo=UTC)
    body = _body("stripe")
    headers = _standard(body, WHSEC, int(now.timestamp()) + offset)
    err = _refused(chart, body, headers, WHSEC, now=now)
    assert (err.reason, err.header, err.skew) == (
        "timestamp_outside_tolerance",
        "webhook-timestamp",
        offset,
    )
    assert f"in the {way}" in str(err)
    ok = _standard(body, WHSEC, int(now.timestamp()) + offset // 2)
    verify_signature(chart, body, ok, WHSEC, now=now)


def test_standard_webhooks_with_svix_header_names(tmp_path: Path) -> None:
    block = "signature: {scheme: standard_webhooks, header_prefix: svix-, tolerance: 60}\n"
    chart = _user_chart(tmp_path, block)
    body, now = _body("stripe"), int(time.time())
    verify_signature(chart, body, _standard(body, WHSEC, now, "svix-"), WHSEC)
    late = _standard(body, WHSEC, now - 120, "svix-")
    assert _refused(chart, body, late, WHSEC).reason == "timestamp_outside_tolerance"


def test_hmac_with_a_prefix_github_style(tmp_path: Path) -> None:
    chart = _user_chart(
        tmp_path,
        "signature: {scheme: hmac, header: X-Hub-Signature-256, prefix: 'sha256='}\n",
    )
    body = b'{"type": "x"}'
    good = "sha256=" + _mac("gh", body).hex()
    verify_signature(chart, body, {"X-Hub-Signature-256": good}, "gh")
    verify_signature(chart, body, {"X-Hub-Signature-256": good.upper().replace("SHA", "sha")}, "gh")
    err = _refused(chart, body, {"X-Hub-Signature-256": _mac("gh", body).hex()}, "gh")
    assert err.reason == "malformed_header"
    assert "does not start with 'sha256='" in str(err)
    short = {"X-Hub-Signature-256": "sha256=abcd"}
    assert _refused(chart, body, short, "gh").reason == "malformed_header"


@pytest.mark.parametrize(
    ("block", "sent", "ok"),
    [
        (
            "{scheme: shared_secret, form: basic}",
            "Basic " + base64.b64encode(b"u:p w").decode(),
            True,
        ),
        (
            "{scheme: shared_secret, form: basic}",
            "basic " + base64.b64encode(b"u:p w").decode(),
            True,
        ),
        (
            "{scheme: shared_secret, form: basic}",
            "Basic " + base64.b64encode(b"u:nope").decode(),
            False,
        ),
        ("{scheme: shared_secret, form: basic}", "Bearer u:p w", None),
        ("{scheme: shared_secret, form: basic}", "Basic ***", None),
        ("{scheme: shared_secret, form: bearer}", "Bearer u:p w", True),
        ("{scheme: shared_secret, form: bearer}", "Bearer", None),
        ("{scheme: shared_secret, form: bearer, header: X-Token}", "Bearer u:p w", True),
        ("{scheme: shared_secret, header: X-Moxie-Pass}", "u:p w", True),
        ("{scheme: shared_secret, header: X-Moxie-Pass}", "u:p", False),
    ],
)
def test_shared_secret_forms(tmp_path: Path, block: str, sent: str, ok: bool | None) -> None:
    chart = _user_chart(tmp_path, f"signature: {block}\n")
    spec = chart.spec.signature
    assert spec is not None
    headers = {spec.headers[0]: sent}
    if ok:
        verify_signature(chart, b"{}", headers, "u:p w")
    else:
        err = _refused(chart, b"{}", headers, "u:p w")
        assert err.reason == ("no_match" if ok is False else "malformed_header")


def test_a_chart_without_a_signature_block_cannot_verify(tmp_path: Path) -> None:
    chart = _user_chart(tmp_path, None)
    err = _refused(chart, b"{}", {}, "any")
    assert err.reason == "no_scheme"
    assert "signature:" in str(err)
    assert describe_signature(chart) == "no signature scheme"


# ------------------------------------------------------------ Lago: the algorithm header, jwt


def test_lago_hmac_refuses_a_delivery_that_says_it_is_jwt_signed() -> None:
    """Lago names the algorithm in X-Lago-Signature-Algorithm: a jwt-signed delivery to a chart
    that checks hmac fails saying so, not as a mysterious bad signature."""
    body = _body("lago")
    key = _rsa_key()
    headers = {"X-Lago-Signature": _lago_jwt(body, key), "X-Lago-Signature-Algorithm": "jwt"}
    err = _refused("lago", body, headers, NEW["lago"])
    assert (err.reason, err.header) == ("malformed_header", "X-Lago-Signature-Algorithm")
    assert "says 'jwt', but this chart checks 'hmac' deliveries" in str(err)
    hmac_signed = {**sign("lago", body, NEW["lago"]), "X-Lago-Signature-Algorithm": "HMAC"}
    verify_signature("lago", body, hmac_signed, NEW["lago"])  # compared case-insensitively
    err = _refused("lago", body, {"X-Lago-Signature": hmac_signed["X-Lago-Signature"]}, "k")
    assert (err.reason, err.header) == ("missing_header", "X-Lago-Signature-Algorithm")
    long_value = {**hmac_signed, "X-Lago-Signature-Algorithm": "hmac-but-a-long-secret-value"}
    err = _refused("lago", body, long_value, NEW["lago"])
    assert "says something else" in str(err)


def _rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _public(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    """The public key as Lago's GET /api/v1/webhooks/public_key serves it: base64 of a PEM."""
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(pem).decode()


ISSUER = "https://api.getlago.com"


def _lago_jwt(body: bytes, key: Any, **claims: Any) -> str:
    """Webhook#jwt_signature: JWT.encode({data: payload.to_json, iss: LAGO_API_URL}, key, RS256)."""
    algorithm = claims.pop("algorithm", "RS256")
    return jwt.encode({"data": body.decode(), "iss": ISSUER, **claims}, key, algorithm=algorithm)


JWT_BLOCK = (
    "signature: {scheme: jwt, header: X-Lago-Signature, issuer: 'https://api.getlago.com',"
    " expect: {X-Lago-Signature-Algorithm: jwt}}\n"
)


def test_jwt_signed_as_lago_signs_passes_and_fails(tmp_path: Path) -> None:
    chart = _user_chart(tmp_path, JWT_BLOCK)
    body, key = _body("lago"), _rsa_key()
    public = _public(key)
    headers = {"X-Lago-Signature": _lago_jwt(body, key), "X-Lago-Signature-Algorithm": "jwt"}
    verify_signature(chart, body, headers, public)
    pem = base64.b64decode(public).decode()
    verify_signature(chart, body, headers, pem)  # the PEM itself, too
    check_secrets(chart, public)
    # and PyJWT agrees, as Lago's docs verify it
    decoded = jwt.decode(headers["X-Lago-Signature"], pem, algorithms=["RS256"], issuer=ISSUER)
    assert decoded["data"].encode() == body

    err = _refused(chart, body.replace(b"invoice", b"invoicf", 1), headers, public)
    assert (err.reason, err.header) == ("no_match", "X-Lago-Signature")
    assert "its data claim is not this body" in str(err)
    other = _rsa_key()
    err = _refused(chart, body, {**headers, "X-Lago-Signature": _lago_jwt(body, other)}, public)
    assert err.reason == "no_match"
    assert "not signed by the private key of the acme public key" in str(err)
    rotated = Secrets({"acme": [_public(other), public]})
    verify_signature(chart, body, headers, rotated)
    err = _refused(chart, body, {**headers, "X-Lago-Signature": _lago_jwt(body, other)},
                   Secrets({"acme": [public, _public(_rsa_key())]}))  # fmt: skip
    assert "any of the 2 acme public keys" in str(err)
    elsewhere = _lago_jwt(body, key, iss="https://lago.other.example")
    err = _refused(chart, body, {**headers, "X-Lago-Signature": elsewhere}, public)
    assert err.reason == "no_match"
    assert f"not issued by {ISSUER}" in str(err)
    err = _refused(chart, body, {**headers, "X-Lago-Signature-Algorithm": "hmac"}, public)
    assert (err.reason, err.header) == ("malformed_header", "X-Lago-Signature-Algorithm")
    assert "says 'hmac', but this chart checks 'jwt' deliveries" in str(err)


@pytest.mark.parametrize(
    ("token", "says"),
    [
        ("not.a.token", "is not a JSON Web Token"),
        ("abc", "is not a JSON Web Token"),
        ("hs256", "says it is signed with HS256, but this chart checks RS256 tokens only"),
        ("none", "says it is signed with none, but this chart checks RS256"),
        ("no data", "has no data claim holding the body as a string"),
        ("data not text", "has no data claim holding the body as a string"),
    ],
)
def test_jwt_tokens_that_cannot_be_read_say_why(tmp_path: Path, token: str, says: str) -> None:
    chart = _user_chart(tmp_path, JWT_BLOCK)
    body, key = _body("lago"), _rsa_key()
    public = _public(key)
    made = {
        # the algorithm-confusion attack: an HMAC token keyed by the public key (the secret)
        "hs256": lambda: jwt.encode({"data": body.decode()}, public, algorithm="HS256"),
        "none": lambda: jwt.encode({"data": body.decode()}, "", algorithm="none"),
        "no data": lambda: jwt.encode({"iss": ISSUER}, key, algorithm="RS256"),
        "data not text": lambda: jwt.encode({"data": {"a": 1}}, key, algorithm="RS256"),
    }
    sent = made[token]() if token in made else token
    headers = {"X-Lago-Signature": sent, "X-Lago-Signature-Algorithm": "jwt"}
    err = _refused(chart, body, headers, public)
    assert (err.reason, err.header) == ("malformed_header", "X-Lago-Signature"), str(err)
    assert says in str(err)


@pytest.mark.parametrize(("exp", "ok"), [(-30, True), (-120, False), (3600, True)])
def test_jwt_exp_holds_within_the_leeway(tmp_path: Path, exp: int, ok: bool) -> None:
    """Lago's tokens have no exp; a provider's that do expire, within ``leeway`` (60 s)."""
    chart = _user_chart(tmp_path, JWT_BLOCK)
    now = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
    body, key = _body("lago"), _rsa_key()
    token = _lago_jwt(body, key, exp=int(now.timestamp()) + exp)
    headers = {"X-Lago-Signature": token, "X-Lago-Signature-Algorithm": "jwt"}
    if ok:
        verify_signature(chart, body, headers, _public(key), now=now)
        return
    err = _refused(chart, body, headers, _public(key), now=now)
    assert (err.reason, err.skew) == ("timestamp_outside_tolerance", exp)
    assert "expired" in str(err)


def test_jwt_with_an_elliptic_curve_key(tmp_path: Path) -> None:
    block = "signature: {scheme: jwt, header: X-Token, algorithm: ES256, claim: body}\n"
    chart = _user_chart(tmp_path, block)
    body, key = _body("lago"), ec.generate_private_key(ec.SECP256R1())
    token = jwt.encode({"body": body.decode()}, key, algorithm="ES256")
    verify_signature(chart, body, {"X-Token": token}, _public(key))
    assert describe_signature(chart) == "jwt: X-Token, ES256 over the body in body"
    err = _refused(chart, body, {"X-Token": token}, _public(_rsa_key()))
    assert err.reason == "bad_secret"
    assert "acme secret #1 is not an elliptic-curve public key, which ES256 needs" in str(err)


@pytest.mark.parametrize(
    ("secret", "says"),
    [
        ("lago_demo_secret", "is not a public key (a PEM, or the base64 of a PEM)"),
        (base64.b64encode(b"-----BEGIN PUBLIC KEY-----\nnope\n").decode(), "is not a public key"),
        ("private", "is a private key: give the provider's public key"),
        ("ec", "is not an RSA public key, which RS256 needs"),
    ],
)
def test_jwt_check_secrets_refuses_what_is_not_a_public_key(
    tmp_path: Path, secret: str, says: str
) -> None:
    chart = _user_chart(tmp_path, JWT_BLOCK)
    key = _rsa_key()
    if secret == "private":
        secret = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
    elif secret == "ec":
        secret = _public(ec.generate_private_key(ec.SECP256R1()))
    secrets = Secrets({"acme": [_public(key), secret]})
    err = _checked(chart, secrets)
    assert (err.reason, err.header) == ("bad_secret", None)
    assert f"acme secret #2 {says}" in str(err)


def test_jwt_without_its_extra_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chart = _user_chart(tmp_path, JWT_BLOCK)
    monkeypatch.setitem(sys.modules, "jwt", None)  # import jwt now raises ImportError
    err = _checked(chart, _public(_rsa_key()))
    assert err.reason == "no_scheme"
    assert "pip install 'invoice-engine[jwt]'" in str(err)
    # a chart of another scheme never needs it
    verify_signature("pelcro", _body("pelcro"), sign("pelcro", _body("pelcro"), "k"), "k")


def test_lago_s_unique_key_header_is_refused_as_identity_with_either_signature(
    tmp_path: Path,
) -> None:
    """Neither of Lago's signatures covers a header: a chart reading X-Lago-Unique-Key as the
    event id is refused (lint rule unsigned-identity), whichever of the two it checks."""
    text = (bundled_chart_dir() / "lago.yaml").read_text(encoding="utf-8")
    keyed = text.replace("\ndelivery:\n", "\ndelivery:\n  event_id: header:X-Lago-Unique-Key\n")
    start, end = keyed.index("\nsignature:\n"), keyed.index("\nevents:")
    path = tmp_path / "lago.yaml"
    for chart_text in (keyed, keyed[:start] + "\n" + JWT_BLOCK + keyed[end:]):
        path.write_text(chart_text, encoding="utf-8")
        with pytest.raises(engine.ChartError, match=r"\[unsigned-identity\]") as info:
            engine.load_chart(path)
        assert "X-Lago-Unique-Key, which the signature does not cover" in str(info.value)


# ------------------------------------------------------------------------- the call itself


def test_the_chart_can_be_named_by_path_or_in_a_chart_dir(tmp_path: Path) -> None:
    chart = _user_chart(tmp_path, "signature: {scheme: hmac, header: X-Sig}\n")
    body = b"{}"
    headers = {"x-sig": _mac("k", body).hex()}
    assert chart.path is not None
    verify_signature(chart.path, body, headers, "k")
    verify_signature("acme", body, headers, "k", chart_dir=tmp_path)
    with pytest.raises(engine.UnknownProvider):
        verify_signature("acme", body, headers, "k")


def test_secrets_as_a_mapping_are_by_provider_never_its_keys() -> None:
    body = _body("modern_treasury")
    headers = sign("modern_treasury", body, "k")
    verify_signature("modern_treasury", body, headers, {"modern_treasury": ["j", "k"]})
    err = _refused("modern_treasury", body, headers, {"stripe": "k"})
    assert err.reason == "no_secret"
    with pytest.raises(TypeError, match="secrets: give"):
        verify_signature("modern_treasury", body, headers, b"k")  # type: ignore[arg-type]


def test_headers_as_pairs_and_bytes_and_bodies_as_buffers() -> None:
    body = _body("modern_treasury")
    signed = sign("modern_treasury", body, "k")["X-Signature"]
    asgi = [(b"content-type", b"application/json"), (b"x-signature", signed.encode())]
    verify_signature("modern_treasury", bytearray(body), asgi, "k")
    verify_signature("modern_treasury", memoryview(body), [("X-SIGNATURE", signed)], ["k"])


@pytest.mark.parametrize("body", ["{}", {"a": 1}, None])
def test_a_body_that_is_not_bytes_is_a_programming_error(body: Any) -> None:
    with pytest.raises(TypeError, match="raw request body as bytes"):
        verify_signature("modern_treasury", body, {}, "k")


def test_the_error_is_an_engine_error_that_pickles() -> None:
    err = _refused("stripe", b"{}", {}, "whsec_x")
    assert isinstance(err, engine.EngineError)
    back = pickle.loads(pickle.dumps(err))
    assert (back.reason, back.provider, back.header, str(back)) == (
        err.reason,
        err.provider,
        err.header,
        str(err),
    )
    assert str(err).startswith("Can't verify this stripe delivery: ")


def test_describe_signature_of_every_bundled_chart() -> None:
    described = {p: describe_signature(engine.load_chart(p)) for p in BUNDLED}
    assert described["stripe"] == "stripe: Stripe-Signature, 300 s tolerance"
    assert described["chargeover"] == "shared secret in X-ChargeOver-Key"
    assert described["moxie"] == "shared secret in Authorization, Bearer"
    assert "trimmed body" in described["upmind"]
    assert "base64" in described["pelcro"]
    assert described["lago"].endswith("in base64, X-Lago-Signature-Algorithm: hmac")


def test_constant_time_comparison_everywhere() -> None:
    """No ``==`` between a secret-derived value and what was sent: every comparison goes
    through hmac.compare_digest (the one place that compares is _schemes.matches)."""
    runtime = Path(engine.__file__).parent / "runtime"
    schemes = (runtime / "_schemes.py").read_text(encoding="utf-8")
    verify = (runtime / "verify.py").read_text(encoding="utf-8")
    jwt = (runtime / "_jwt.py").read_text(encoding="utf-8")
    assert schemes.count("compare_digest(") == 1
    assert "compare_digest(" not in verify
    assert "compare_digest(" not in jwt
    for source in (schemes, verify, jwt):
        for name in ("expected ==", "== expected", "digest() ==", "hexdigest() ==", "== given"):
            assert name not in source


# ------------------------------------------------------------------- replays with new headers


@pytest.mark.parametrize("provider", BUNDLED)
def test_a_delivery_sent_again_with_a_new_header_is_the_same_event(provider: str) -> None:
    """A captured delivery, sent again with a new value in every header its signature does
    not cover (a new X-Webhook-ID, say), still verifies: it must be a duplicate, not an event.
    (Moxie's X-Event-Type is its event type: a new one is another event, not a replay.)"""
    line = json.loads((STREAMS / f"{provider}.jsonl").read_text(encoding="utf-8").splitlines()[0])
    body = body_bytes(line["body"])
    signed = {**line.get("headers", {}), **sign(provider, body, NEW[provider])}
    spec = engine.load_chart(provider).spec
    assert spec.signature is not None
    keep = {*spec.signature.headers, *(loc.header for loc in spec.delivery.event_type)}
    forged = {k: v if k.lower() in keep else f"{v}-forged" for k, v in signed.items()}
    forged["X-Webhook-ID"] = "wh_forged"
    verify_signature(provider, body, forged, NEW[provider])
    with Engine(":memory:") as eng:
        first = eng.apply(provider, body, signed)
        again = eng.apply(provider, body, forged)
    assert first.status == "applied", first
    assert (again.status, again.event_id) == ("duplicate", first.event_id)


# ----------------------------------------------------------------- check_secrets, at start-up


@pytest.mark.parametrize("provider", BUNDLED)
def test_check_secrets_passes_what_the_scheme_can_use(provider: str) -> None:
    check_secrets(provider, NEW[provider])
    check_secrets(engine.load_chart(provider), Secrets({provider: [NEW[provider], OLD[provider]]}))
    other = "stripe" if provider != "stripe" else "pelcro"
    err = _checked(provider, {other: NEW[other]})
    assert (err.reason, err.provider) == ("no_secret", provider)
    assert str(err).startswith(f"Can't verify {provider} deliveries: no secret")


def _checked(chart: str | engine.Chart, secrets: Any) -> SignatureError:
    with pytest.raises(SignatureError) as info:
        check_secrets(chart, secrets)
    _says_no_secret(info.value, secrets, {})
    return info.value


@pytest.mark.parametrize(
    ("block", "secret", "says"),
    [
        ("{scheme: standard_webhooks}", "whsec_not*base64!", "is not a Standard Webhooks secret"),
        ("{scheme: standard_webhooks}", "whsec_", "is not a Standard Webhooks secret"),
        ("{scheme: standard_webhooks}", "msg_looks_like_an_id!", "is not a Standard Webhooks"),
        ("{scheme: shared_secret, form: basic}", "no-colon-in-it", "is not user:password"),
    ],
)
def test_check_secrets_refuses_a_secret_the_scheme_cannot_use(
    tmp_path: Path, block: str, secret: str, says: str
) -> None:
    chart = _user_chart(tmp_path, f"signature: {block}\n")
    secrets = Secrets({"acme": [WHSEC if "standard" in block else "u:p", secret]})
    with pytest.raises(SignatureError) as info:
        check_secrets(chart, secrets)
    err = info.value
    if secret != "whsec_":  # (the message names the prefix, which is all of that one)
        _says_no_secret(err, secrets, {})
    assert (err.reason, err.provider, err.header) == ("bad_secret", "acme", None)
    assert f"acme secret #2 {says}" in str(err)
    assert "INVOICE_ENGINE_SECRET_ACME" in str(err)
    assert str(err).startswith("Can't verify acme deliveries: ")  # not one delivery's fault
    with pytest.raises(SignatureError) as again:  # and a delivery checked with it says the same
        verify_signature(chart, b"{}", {}, secrets)
    assert str(again.value) == str(err)
    check_secrets(chart, secrets.secrets("acme")[:1])


def test_check_secrets_without_a_scheme_or_a_chart(tmp_path: Path) -> None:
    assert _checked(_user_chart(tmp_path, None), "any").reason == "no_scheme"
    with pytest.raises(SignatureError, match="declares no signature scheme"):
        check_secrets("acme", "k", chart_dir=tmp_path)
    with pytest.raises(engine.UnknownProvider):
        check_secrets("acme", "k")
