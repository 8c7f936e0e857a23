"""Is this delivery from the provider? The chart's ``signature:`` scheme, checked on the raw bytes.

:func:`verify_signature` is what a receiver calls first, before anything is parsed: a parsed
and re-serialized body is not the body that was signed. It returns nothing, or raises
:class:`~engine.errors.SignatureError` whose ``reason`` says what failed for code and whose
message says it for people (the header, and for a timestamp by how much and which way) and
never holds a secret or the signature expected.

How it checks, whatever the scheme: header names are case-insensitive; every comparison is
constant-time (:func:`hmac.compare_digest`, on bytes; a shared secret is compared by digest, so
not even its length shows); every configured secret is tried (rotation: old and new both pass);
the signature is checked before the timestamp, so ``timestamp_outside_tolerance`` means an
authentic delivery that is too old (a replay, a late retry) or too far ahead (a wrong clock);
the tolerance holds in both directions (stripe-python only checks the past).

A chart without a ``signature:`` block can't be verified: the call raises (reason
``no_scheme``) rather than pass a delivery it has nothing to check against.

:func:`check_secrets` makes the checks that need no delivery — a scheme, a secret, a secret the
scheme can use — so that a server finds a wrong secret when it starts, not at the first
delivery.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from ..chart._signature import (
    HmacSignature,
    JwtSignature,
    SharedSecret,
    SignatureSpec,
    StandardWebhooksSignature,
    StripeSignature,
)
from ..chart.compiled import Chart
from ..chart.load import load_chart
from ._clock import utc_now
from ._jwt import check_jwt, jwt_key
from ._schemes import (
    Check,
    bad_secret,
    check_hmac,
    check_shared,
    check_standard,
    check_stripe,
    standard_key,
)
from ._secrets import Secrets, SecretsLike, env_name, secrets_for

__all__ = [
    "Headers",
    "Secrets",
    "SecretsLike",
    "check_secrets",
    "describe_signature",
    "verify_signature",
]

#: Request headers as web frameworks hand them over: a mapping (Starlette, Django), or pairs
#: (Flask's ``request.headers``, ASGI's raw ``scope["headers"]`` as bytes).
Headers = Mapping[str, str] | Iterable[tuple[str | bytes, str | bytes]]


def verify_signature(
    chart: Chart | str | Path,
    body: bytes | bytearray | memoryview,
    headers: Headers,
    secrets: SecretsLike | str | Sequence[str],
    *,
    now: datetime | None = None,
    chart_dir: str | Path | None = None,
) -> None:
    """Check that a delivery was signed by its provider, as its chart's ``signature:`` says.

    Call it on the body's raw bytes, exactly as received, before parsing them.

    Args:
        chart: a loaded chart, or a provider's name (``"stripe"``) or chart path.
        body: the raw request body (``bytes``; ``bytearray`` and ``memoryview`` too).
        headers: the request headers, any case: a mapping or ``(name, value)`` pairs.
        secrets: a :class:`~engine.Secrets` or a mapping of provider to secret(s) (the
            provider's are used), or the provider's secret, or a list of them (several
            while rotating).
        now: the time to check signed timestamps against (default: the current time).
        chart_dir: a folder of the user's charts, when ``chart`` is a name.

    Raises:
        SignatureError: the delivery is not shown to come from the provider; its ``reason``
            is one of ``no_scheme``, ``no_secret``, ``bad_secret``, ``missing_header``,
            ``malformed_header``, ``no_match``, ``timestamp_outside_tolerance``.
        UnknownProvider, ChartError: ``chart`` names no chart, or a broken one.
        TypeError: ``body`` is not bytes (text or a parsed body is not what was signed).
    """
    if not isinstance(chart, Chart):
        chart = load_chart(chart, chart_dir)
    if not isinstance(body, bytes | bytearray | memoryview):
        raise TypeError(
            f"body is a {type(body).__name__}: pass the raw request body as bytes, exactly as "
            "received (a parsed or decoded body is not the bytes the provider signed)"
        )
    raw = bytes(body)
    check = Check(chart.name, _headers(headers))
    scheme, keys = _keys(chart, secrets, check)
    when = now or utc_now()
    if when.tzinfo is None:  # a naive time is taken as UTC, as the engine's own times are
        when = when.replace(tzinfo=UTC)
    if isinstance(scheme, StripeSignature):
        check_stripe(scheme, raw, keys, check, when)
    elif isinstance(scheme, HmacSignature):
        check_hmac(scheme, raw, keys, check)
    elif isinstance(scheme, JwtSignature):
        check_jwt(scheme, raw, keys, check, when)
    elif isinstance(scheme, SharedSecret):
        check_shared(scheme, keys, check)
    else:
        check_standard(scheme, raw, keys, check, when)


def check_secrets(
    chart: Chart | str | Path,
    secrets: SecretsLike | str | Sequence[str],
    *,
    chart_dir: str | Path | None = None,
) -> None:
    """Check that ``chart``'s scheme can use the secrets configured for its provider, before
    any delivery: what a server calls for each provider it serves, when it starts.

    A secret the scheme can't use fails every delivery with 401; this says so at start-up,
    naming the provider and which secret (``#2``, in the order given), never its value: a
    Standard Webhooks secret that is not base64 after ``whsec_`` (or empty there), a Basic
    secret without the ``:`` of ``user:password``, a jwt secret that is not a public key the
    algorithm can use. A jwt chart without the ``jwt`` extra installed fails here too.

    Args:
        chart: a loaded chart, or a provider's name or chart path.
        secrets: as :func:`verify_signature` takes them.
        chart_dir: a folder of the user's charts, when ``chart`` is a name.

    Raises:
        SignatureError: reason ``no_scheme`` (the chart declares no signature scheme, or its
            scheme's library is not installed: the ``jwt`` extra), ``no_secret`` (none is
            configured for the provider) or ``bad_secret``.
        UnknownProvider, ChartError: ``chart`` names no chart, or a broken one.
    """
    if not isinstance(chart, Chart):
        chart = load_chart(chart, chart_dir)
    _keys(chart, secrets, Check(chart.name, {}))


def describe_signature(chart: Chart) -> str:
    """How ``chart``'s deliveries are verified, in a few words (for logs and ``show``):
    ``stripe: Stripe-Signature, 300 s tolerance``; ``no signature scheme`` when it has none."""
    spec = chart.spec.signature
    return "no signature scheme" if spec is None else spec.describe()


def _headers(headers: Headers) -> dict[str, list[str]]:
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    out: dict[str, list[str]] = {}
    for name, value in pairs:
        key = name.decode("latin-1") if isinstance(name, bytes) else str(name)
        text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
        out.setdefault(key.lower(), []).append(text)
    return out


def _keys(
    chart: Chart, secrets: SecretsLike | str | Sequence[str], check: Check
) -> tuple[SignatureSpec, tuple[bytes, ...]]:
    """The chart's scheme and the keys it signs with: each secret configured for the provider
    (for Standard Webhooks, the bytes its base64 says; for jwt, the public key's PEM). Fails
    without a scheme, without a secret, or with a secret the scheme can't use."""
    scheme = chart.spec.signature
    if scheme is None:
        check.fail(
            "no_scheme",
            f"the {chart.name} chart declares no signature scheme, so there is nothing to "
            "check a delivery against: add a `signature:` block to the chart",
        )
    keys = secrets_for(chart.name, secrets)
    if not keys:
        check.fail(
            "no_secret",
            f"no secret is configured for {chart.name}: set {env_name(chart.name)} (several, "
            "comma-separated, while rotating) or give one in the secrets file",
        )
    if isinstance(scheme, StandardWebhooksSignature):
        keys = tuple(standard_key(k, n, check) for n, k in enumerate(keys, 1))
    elif isinstance(scheme, JwtSignature):
        keys = tuple(jwt_key(scheme, k, n, check) for n, k in enumerate(keys, 1))
    elif isinstance(scheme, SharedSecret) and scheme.form == "basic":
        for n, key in enumerate(keys, 1):
            if b":" not in key:
                bad_secret(check, n, "is not user:password, as Basic credentials always are")
    return scheme, keys
