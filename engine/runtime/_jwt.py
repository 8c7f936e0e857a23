"""The ``jwt`` signature scheme (Lago's default): a JSON Web Token in a header, signed with an
asymmetric key, whose ``data`` claim is the raw body. Needs PyJWT and cryptography (the
``jwt`` extra), imported only when a chart uses the scheme, so the core install verifies every
other scheme without them.
"""

from __future__ import annotations

import base64
import binascii
import math
from datetime import datetime
from functools import lru_cache
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ..chart._signature import JwtSignature
from ._schemes import Check, bad_secret, check_expected, matches

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

__all__ = ["JWT_EXTRA", "check_jwt", "jwt_key"]

#: How to install what the ``jwt`` scheme needs.
JWT_EXTRA = "pip install 'invoice-engine[jwt]'"


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
    if not matches([data.encode("utf-8", "surrogatepass")], [body]):
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
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
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
