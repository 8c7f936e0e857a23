"""How each ``signature:`` scheme checks a delivery: the work behind
:func:`~engine.runtime.verify.verify_signature`, which finds the chart, the headers and the
keys, and calls one of these.

Every comparison of something sent with something computed goes through :func:`matches`
(:func:`hmac.compare_digest`, every pair, so how long it takes says nothing about which one
matched); the signature is checked before the timestamp.

The ``jwt`` scheme is in :mod:`._jwt`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, NoReturn

from ..chart._signature import (
    HmacSignature,
    JwtSignature,
    SharedSecret,
    StandardWebhooksSignature,
    StripeSignature,
)
from ..errors import SignatureError, SignatureReason
from ._secrets import env_name

if TYPE_CHECKING:
    pass

__all__ = [
    "Check",
    "bad_secret",
    "check_expected",
    "check_hmac",
    "check_shared",
    "check_standard",
    "check_stripe",
    "matches",
    "standard_key",
]

_PHP_TRIM = b" \t\n\r\x0b\x00"  # what PHP's trim() strips, which Upmind signs after


class Check:
    """One verification: the provider, the headers by lower-cased name, and how to fail."""

    def __init__(self, provider: str, headers: dict[str, list[str]]) -> None:
        self.provider = provider
        self.headers = headers

    def fail(
        self,
        reason: SignatureReason,
        problem: str,
        header: str | None = None,
        skew: int | None = None,
    ) -> NoReturn:
        raise SignatureError(self.provider, reason, problem, header=header, skew=skew)

    def header(self, name: str) -> str:
        """The one value of header ``name``; missing, or sent twice with two values, fails."""
        values = [v.strip() for v in self.headers.get(name.lower(), ())]
        if not any(values):
            self.fail("missing_header", f"the {name} header is missing", name)
        if len(set(values)) > 1:
            self.fail("malformed_header", f"the {name} header is sent {len(values)} times", name)
        return values[0]

    def in_time(self, name: str, signed_at: int, tolerance: int, now: datetime) -> None:
        """``signed_at`` (unix seconds, from header ``name``) is within ``tolerance`` of now."""
        skew = signed_at - now.timestamp()
        if abs(skew) <= tolerance:
            return
        beyond = math.ceil(abs(skew) - tolerance)
        if skew < 0:
            where = f"{tolerance + beyond} s in the past, {beyond} s older than"
            why = "a replayed or late delivery, or a clock that is wrong (here or the sender's)"
        else:
            where = f"{tolerance + beyond} s in the future, {beyond} s further ahead than"
            why = "a clock that is wrong (here or the sender's)"
        self.fail(
            "timestamp_outside_tolerance",
            f"the {name} timestamp ({signed_at}) is {where} the {tolerance} s tolerance: {why}",
            name,
            round(skew),
        )

    def no_match(self, name: str, keys: int, what: str, signatures: int = 1) -> NoReturn:
        """No signature in header ``name`` is ``what`` made with any of the ``keys`` secrets."""
        p = self.provider
        secrets = f"the {p} secret" if keys == 1 else f"any of the {keys} {p} secrets"
        if signatures == 1:
            said = f"the signature in the {name} header is not {what} made with {secrets}"
        else:
            said = f"none of the {signatures} signatures in the {name} header is {what} made with"
            said += f" {secrets}"
        self.fail(
            "no_match",
            f"{said}: a wrong secret, or a body changed since it was signed (parsed and written "
            "again?)",
            name,
        )


def bad_secret(check: Check, n: int, problem: str) -> NoReturn:
    """Fail for secret ``n`` (1-based) of the provider's, which the scheme can't use."""
    p = check.provider
    check.fail("bad_secret", f"{p} secret #{n} {problem}: check {env_name(p)} or the secrets file")


def matches(expected: Iterable[bytes], given: Sequence[bytes]) -> bool:
    """Whether any of ``given`` equals any of ``expected``: every pair compared, in constant
    time, so how long it takes says nothing about which one (if any) matched."""
    found = False
    for e in expected:
        for g in given:
            found |= hmac.compare_digest(e, g)
    return found


def _mac(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def _unix(check: Check, name: str, text: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 12:
        check.fail(
            "malformed_header", f"the {name} timestamp is not unix seconds (digits only)", name
        )
    return int(text)


def check_stripe(
    spec: StripeSignature, body: bytes, keys: tuple[bytes, ...], check: Check, now: datetime
) -> None:
    name = spec.header
    items = [item.partition("=") for item in check.header(name).split(",")]
    stamps = [value for key, eq, value in items if key == "t" and eq]
    signatures = [value.encode() for key, eq, value in items if key == "v1" and eq]
    if len(stamps) != 1:
        check.fail(
            "malformed_header",
            f"the {name} header has {'no' if not stamps else len(stamps)} t= timestamp"
            f"{'s' if stamps else ''} (expected t=<unix>,v1=<hex>)",
            name,
        )
    if not signatures:
        check.fail("malformed_header", f"the {name} header has no v1= signature", name)
    signed_at = _unix(check, name, stamps[0])
    message = f"{signed_at}.".encode() + body
    if not matches((_mac(k, message).hex().encode() for k in keys), signatures):
        check.no_match(name, len(keys), "the HMAC of its timestamp and the body", len(signatures))
    check.in_time(name, signed_at, spec.tolerance, now)


def check_expected(spec: HmacSignature | JwtSignature, check: Check) -> None:
    """The headers ``spec.expect`` names hold the values it gives (Lago's
    ``X-Lago-Signature-Algorithm``): a delivery signed another way fails saying so."""
    for name, want in spec.expect.items():
        got = check.header(name)
        if got.lower() == want.lower():
            continue
        # What was sent is shown only when it is a short word (an algorithm's name), never a
        # longer value that could be a credential someone put in the wrong header.
        said = f"says {got!r}" if len(got) <= 10 and got.isalnum() else "says something else"
        check.fail(
            "malformed_header",
            f"the {name} header {said}, but this chart checks {want!r} deliveries: the "
            "provider signs them another way than the chart's signature: block says (Lago: "
            "each webhook endpoint's signature algorithm); change one to match the other",
            name,
        )


def check_hmac(spec: HmacSignature, body: bytes, keys: tuple[bytes, ...], check: Check) -> None:
    name = spec.header
    value = check.header(name)
    check_expected(spec, check)
    if spec.prefix:
        if not value.startswith(spec.prefix):
            check.fail(
                "malformed_header", f"the {name} header does not start with {spec.prefix!r}", name
            )
        value = value[len(spec.prefix) :]
    try:
        given = bytes.fromhex(value) if spec.encoding == "hex" else _b64(value)
    except ValueError:
        given = b""
    if len(given) != hashlib.sha256().digest_size:
        check.fail(
            "malformed_header",
            f"the {name} header is not an HMAC-SHA256 in {spec.encoding} "
            f"({64 if spec.encoding == 'hex' else 44} characters)",
            name,
        )
    signed = body.strip(_PHP_TRIM) if spec.signed == "trimmed_body" else body
    if not matches((_mac(k, signed) for k in keys), [given]):
        what = "the trimmed body" if spec.signed == "trimmed_body" else "the body"
        check.no_match(name, len(keys), f"the HMAC of {what}")


def _b64(text: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise ValueError("not base64") from None


def check_shared(spec: SharedSecret, keys: tuple[bytes, ...], check: Check) -> None:
    name = spec.header_name
    value = check.header(name)
    if spec.form == "plain":
        presented = value.encode("utf-8", "surrogateescape")
    else:
        word, _, credentials = value.partition(" ")
        if word.lower() != spec.form or not credentials.strip():
            check.fail(
                "malformed_header",
                f"the {name} header is not {spec.form.title()} credentials "
                f"({spec.form.title()} <{'secret' if spec.form == 'bearer' else 'base64'}>)",
                name,
            )
        presented = credentials.strip().encode("utf-8", "surrogateescape")
        if spec.form == "basic":
            try:
                presented = _b64(credentials.strip())
            except ValueError:
                check.fail(
                    "malformed_header",
                    f"the {name} header's Basic credentials are not base64",
                    name,
                )
    # By digest: equal-length values, so the comparison's time doesn't even tell the length.
    digest = hashlib.sha256(presented).digest()
    if not matches((hashlib.sha256(k).digest() for k in keys), [digest]):
        n, provider = len(keys), check.provider
        secrets = f"the {provider} secret" if n == 1 else f"any of the {n} {provider} secrets"
        check.fail(
            "no_match", f"the {name} header does not hold {secrets}: a wrong or an old key", name
        )


def check_standard(
    spec: StandardWebhooksSignature,
    body: bytes,
    keys: tuple[bytes, ...],
    check: Check,
    now: datetime,
) -> None:
    id_name, ts_name, sig_name = (
        spec.header_prefix + part for part in ("id", "timestamp", "signature")
    )
    msg_id, stamp, header = check.header(id_name), check.header(ts_name), check.header(sig_name)
    signatures = []
    for entry in header.split():
        version, comma, encoded = entry.partition(",")
        if not comma:
            check.fail(
                "malformed_header",
                f"the {sig_name} header is not a list of <version>,<base64> (v1,…)",
                sig_name,
            )
        if version == "v1":
            try:
                signatures.append(_b64(encoded))
            except ValueError:
                check.fail(
                    "malformed_header", f"a v1 signature in {sig_name} is not base64", sig_name
                )
    if not signatures:
        check.fail("malformed_header", f"the {sig_name} header has no v1 signature", sig_name)
    signed_at = _unix(check, ts_name, stamp)
    message = f"{msg_id}.{stamp}.".encode() + body
    if not matches((_mac(k, message) for k in keys), signatures):
        what = "the HMAC of the id, the timestamp and the body"
        check.no_match(sig_name, len(keys), what, len(signatures))
    check.in_time(ts_name, signed_at, spec.tolerance, now)


def standard_key(secret: bytes, n: int, check: Check) -> bytes:
    """A Standard Webhooks secret's key: the base64 after ``whsec_``."""
    text = secret.removeprefix(b"whsec_")
    try:
        key = base64.b64decode(text + b"=" * (-len(text) % 4), validate=True)
    except binascii.Error:
        key = b""
    if not key:
        bad_secret(check, n, "is not a Standard Webhooks secret (whsec_, then base64)")
    return key


# ----------------------------------------------------------------------------------- jwt
