"""How each ``signature:`` scheme checks a delivery: the work behind
:func:`~engine.runtime.verify.verify_signature`, which finds the chart, the headers and the
keys, and calls one of these.

Every comparison of something sent with something computed goes through :func:`_matches`
(:func:`hmac.compare_digest`, every pair, so how long it takes says nothing about which one
matched); the signature is checked before the timestamp.

The ``jwt`` scheme needs PyJWT and cryptography (the ``jwt`` extra), imported only when a
chart uses it, so the core install verifies every other scheme without them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
from collections.abc import Iterable, Sequence
from datetime import datetime
from functools import lru_cache
from types import ModuleType
from typing import TYPE_CHECKING, Any, NoReturn

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
    from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

__all__ = [
    "JWT_EXTRA",
    "Check",
    "bad_secret",
    "check_hmac",
    "check_jwt",
    "check_shared",
    "check_standard",
    "check_stripe",
    "jwt_key",
    "standard_key",
]

#: How to install what the ``jwt`` scheme needs.
JWT_EXTRA = "pip install 'invoice-engine[jwt]'"

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


def _matches(expected: Iterable[bytes], given: Sequence[bytes]) -> bool:
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
    if not _matches((_mac(k, message).hex().encode() for k in keys), signatures):
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
    if not _matches((_mac(k, signed) for k in keys), [given]):
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
    if not _matches((hashlib.sha256(k).digest() for k in keys), [digest]):
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
    if not _matches((_mac(k, message) for k in keys), signatures):
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


def _jwt_modules(check: Check) -> tuple[ModuleType, ModuleType]:
    """PyJWT and cryptography's PEM loader, or a failure that says how to install them."""
    try:
        import jwt
        from cryptography.hazmat.primitives import serialization
    except ImportError:
        check.fail(
            "no_scheme",
            f"the {check.provider} chart's jwt signature scheme needs PyJWT and cryptography, "
            f"which are not installed: {JWT_EXTRA}",
        )
    return jwt, serialization


def _pem(secret: bytes) -> bytes | None:
    """The PEM a secret holds: itself, or the base64 of one (as Lago serves its key)."""
    text = secret.strip()
    if not text.startswith(b"-----BEGIN"):
        try:
            text = base64.b64decode(b"".join(text.split()), validate=True).strip()
        except binascii.Error:
            return None
    return text if text.startswith(b"-----BEGIN") else None


def jwt_key(spec: JwtSignature, secret: bytes, n: int, check: Check) -> bytes:
    """A ``jwt`` scheme's key: the public key's PEM, checked to be one ``spec.algorithm`` can
    verify with (the secret may be the PEM itself or its base64)."""
    _, serialization = _jwt_modules(check)
    pem = _pem(secret)
    if pem is None:
        bad_secret(check, n, "is not a public key (a PEM, or the base64 of a PEM)")
    if b"PRIVATE KEY-----" in pem.split(b"\n", 1)[0]:
        bad_secret(check, n, "is a private key: give the provider's public key, which verifies")
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError):  # not a key, or one cryptography can't read
        bad_secret(check, n, "is not a public key (a PEM, or the base64 of a PEM)")
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    rsa_family = spec.algorithm[:2] in ("RS", "PS")
    if not isinstance(key, rsa.RSAPublicKey if rsa_family else ec.EllipticCurvePublicKey):
        kind = "an RSA" if rsa_family else "an elliptic-curve"
        bad_secret(check, n, f"is not {kind} public key, which {spec.algorithm} needs")
    return pem


@lru_cache(maxsize=32)
def _public_key(pem: bytes) -> PublicKeyTypes:
    from cryptography.hazmat.primitives import serialization

    return serialization.load_pem_public_key(pem)


def _short(value: object) -> str:
    """A token's field shown in a message: only a short plain word (an algorithm's name)."""
    text = str(value)
    return text if len(text) <= 10 and text.isalnum() else "another algorithm"


def check_jwt(
    spec: JwtSignature, body: bytes, keys: tuple[bytes, ...], check: Check, now: datetime
) -> None:
    name = spec.header
    token = check.header(name)
    check_expected(spec, check)
    jwt, _ = _jwt_modules(check)
    try:
        alg = jwt.get_unverified_header(token).get("alg")
    except jwt.PyJWTError:
        check.fail(
            "malformed_header",
            f"the {name} header is not a JSON Web Token (three base64url parts joined by '.')",
            name,
        )
    if alg != spec.algorithm:  # the token's own alg is never trusted to choose the check
        check.fail(
            "malformed_header",
            f"the {name} token says it is signed with {_short(alg)}, but this chart checks "
            f"{spec.algorithm} tokens only",
            name,
        )
    claims: dict[str, Any] | None = None
    # A public key is no secret: which one verified may take its own time.
    for pem in keys:
        try:
            claims = jwt.decode(
                token,
                _public_key(pem),
                algorithms=[spec.algorithm],
                options={
                    "verify_exp": False,  # checked below, against `now`
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_aud": False,
                    "verify_iss": False,
                },
            )
            break
        except jwt.InvalidSignatureError:
            continue
        except jwt.PyJWTError as exc:  # PyJWT's messages name what is wrong, never a value
            check.fail("malformed_header", f"the {name} token can't be read: {exc}", name)
    p, n = check.provider, len(keys)
    if claims is None:
        keyed = f"the {p} public key" if n == 1 else f"any of the {n} {p} public keys"
        check.fail(
            "no_match",
            f"the token in the {name} header is not signed by the private key of {keyed}: a "
            "wrong key configured, or a token made by someone else",
            name,
        )
    data = claims.get(spec.claim)
    if not isinstance(data, str):
        check.fail(
            "malformed_header",
            f"the {name} token has no {spec.claim} claim holding the body as a string",
            name,
        )
    if not _matches([data.encode("utf-8", "surrogatepass")], [body]):
        check.fail(
            "no_match",
            f"the token in the {name} header is valid, but its {spec.claim} claim is not this "
            "body: a body changed since it was signed (parsed and written again?), or another "
            "delivery's token",
            name,
        )
    if spec.issuer is not None and claims.get("iss") != spec.issuer:
        check.fail(
            "no_match",
            f"the token in the {name} header was not issued by {spec.issuer} (its iss claim): "
            "a token of another instance signed with the same key, or a chart whose issuer is "
            "not the provider's",
            name,
        )
    _token_in_time(spec, claims, check, now)


def _token_in_time(spec: JwtSignature, claims: dict[str, Any], check: Check, now: datetime) -> None:
    name, at = spec.header, now.timestamp()
    for claim, late in (("exp", True), ("nbf", False)):
        value = claims.get(claim)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            check.fail("malformed_header", f"the {name} token's {claim} is not a number", name)
        skew = value - at
        if (late and skew < -spec.leeway) or (not late and skew > spec.leeway):
            when = "expired" if late else "is not valid yet"
            check.fail(
                "timestamp_outside_tolerance",
                f"the {name} token {when} ({claim} is {abs(round(skew))} s "
                f"{'in the past' if skew < 0 else 'ahead'}, beyond the {spec.leeway} s leeway)",
                name,
                round(skew),
            )
