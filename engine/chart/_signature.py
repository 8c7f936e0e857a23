"""The chart's ``signature:`` block: how a provider proves a delivery is its own.

The block names a *scheme* and says where its parts are — the header, what is signed, how the
signature is written, how far a signed timestamp may be from now — and never a secret: secrets
come at run time (:class:`engine.Secrets`), so a chart can be published, diffed and reviewed.
:func:`engine.verify_signature` checks a delivery against it.

Five schemes cover the bundled providers and the common shapes of the others:

- ``stripe``: ``Stripe-Signature: t=<unix>,v1=<hex>[,v1=…]``, an HMAC-SHA256 of
  ``"{t}.{body}"``; ``t`` must be within ``tolerance`` seconds of now, in both directions.
- ``hmac``: one header holding an HMAC-SHA256 of the body (or of the body trimmed of
  surrounding whitespace), in hex or base64, optionally after a fixed prefix (``sha256=``).
  No timestamp, so no replay protection: a captured delivery can be sent again, and only the
  engine's deduplication makes it a ``duplicate`` — so the event's identity must come from
  the signed body, never from a header (see :func:`unsigned_identity`).
- ``jwt``: one header holding a JSON Web Token signed with the provider's *private* key, whose
  claim ``data`` (or another) is the raw body as a string: Lago's default. The secret
  configured is the provider's *public* key (PEM, or the base64 of a PEM, as Lago serves it), so
  it verifies but can't sign; only asymmetric algorithms are accepted. Like ``hmac``, it signs
  the body only: no timestamp (unless the token has ``exp``), no header.
- ``shared_secret``: no signature; the secret itself travels in a header, as is (``plain``),
  or as ``Authorization: Bearer <secret>`` or ``Authorization: Basic <base64(secret)>``.
- ``standard_webhooks``: the Standard Webhooks specification (standardwebhooks.com, used by
  Svix and others): ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature: v1,<base64>
  […]``, an HMAC-SHA256 of ``"{id}.{timestamp}.{body}"`` keyed by the base64-decoded secret
  (after its ``whsec_`` prefix).

``hmac`` and ``jwt`` can ``expect`` headers to hold fixed values (Lago's
``X-Lago-Signature-Algorithm``): a delivery signed the other way fails saying so.

What a scheme signs decides where a chart may read a delivery's identity from: an event id (or
an idempotency key) read from a header the signature does not cover can be changed by anyone
who saw one delivery, turning a replay into a new, verified event. :func:`unsigned_identity`
finds such a chart; lint refuses it (rule ``unsigned-identity``).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    WithJsonSchema,
    model_validator,
)

if TYPE_CHECKING:
    from .spec import DeliveryMap

__all__ = [
    "JWT_ALGORITHMS",
    "SCHEMES",
    "HmacSignature",
    "JwtSignature",
    "SharedSecret",
    "SignatureSpec",
    "StandardWebhooksSignature",
    "StripeSignature",
    "unsigned_identity",
]

#: The scheme names a chart's ``signature.scheme`` may give.
SCHEMES = ("stripe", "hmac", "jwt", "shared_secret", "standard_webhooks")

_TOKEN = r"[A-Za-z0-9!#$%&'*+.^_`|~-]+"  # what an HTTP header name is made of (RFC 9110)


def _header_name(value: str) -> str:
    if not re.fullmatch(_TOKEN, value):
        raise ValueError(f"not a header name: {value!r}")
    return value


HeaderName = Annotated[
    str,
    AfterValidator(_header_name),
    WithJsonSchema({"type": "string", "pattern": f"^{_TOKEN}$", "description": "A header name"}),
]


class _Scheme(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @property
    def headers(self) -> tuple[str, ...]:
        """The headers the scheme reads, lower-cased."""
        raise NotImplementedError

    @property
    def secret_header(self) -> str | None:
        """The header that carries a secret itself (lower-cased), never to be stored."""
        return None

    @property
    def signed_headers(self) -> tuple[str, ...]:
        """The headers whose values the signature covers (lower-cased): none, but for
        Standard Webhooks' id and timestamp. A signature header itself is not covered: more
        signatures can be added to it, or its blanks changed, and it still verifies."""
        return ()

    @property
    def covers(self) -> str:
        """What the signature covers, in words, for a message about what it doesn't."""
        raise NotImplementedError

    def describe(self) -> str:
        """How deliveries are verified, in a few words (see ``describe_signature``)."""
        raise NotImplementedError


def _distinct_names(expect: dict[str, str]) -> dict[str, str]:
    lowered = [name.lower() for name in expect]
    twice = sorted({n for n in lowered if lowered.count(n) > 1})
    if twice:
        raise ValueError(f"expect names {twice[0]!r} twice (header names are case-insensitive)")
    return expect


Expected = Annotated[
    dict[HeaderName, Annotated[str, Field(min_length=1, max_length=100)]],
    AfterValidator(_distinct_names),
]


def _expect() -> Any:
    return Field(
        default_factory=dict,
        description="Headers that must hold these values (compared case-insensitively), "
        "checked before the signature: {X-Lago-Signature-Algorithm: hmac} makes a delivery "
        "signed another way fail saying so",
    )


def _no_overlap(header: str, expect: dict[str, str]) -> None:
    if header.lower() in (name.lower() for name in expect):
        raise ValueError(f"expect names {header!r}, the header the signature is in")


def _described(expect: dict[str, str]) -> str:
    return "".join(f", {name}: {value}" for name, value in expect.items())


def _tolerance() -> int:
    return Field(
        300,
        ge=1,
        description="Seconds the signed timestamp may be from now, in either direction: older "
        "is a replay (or a late retry), newer a clock that is wrong",
    )


class StripeSignature(_Scheme):
    """Stripe's scheme: ``Stripe-Signature: t=<unix>,v1=<hex>[,v1=…]``, each ``v1`` the hex
    HMAC-SHA256 of ``"{t}.{raw body}"`` keyed by the endpoint secret (``whsec_…``, as UTF-8
    bytes); any ``v1`` may match, and ``t`` must be within ``tolerance`` of now."""

    scheme: Literal["stripe"] = Field(description="t=<unix>,v1=<hex> in one header")
    header: HeaderName = Field("Stripe-Signature", description="The header the signature is in")
    tolerance: Annotated[int, Strict()] = _tolerance()

    @property
    def covers(self) -> str:
        return "stripe signs its t= timestamp and the body"

    @property
    def headers(self) -> tuple[str, ...]:
        return (self.header.lower(),)

    def describe(self) -> str:
        return f"stripe: {self.header}, {self.tolerance} s tolerance"


class HmacSignature(_Scheme):
    """One header holding the HMAC-SHA256 of the raw body, keyed by the secret (as UTF-8
    bytes): Modern Treasury (``X-Signature``, hex), Upmind (``X-Webhook-Signature``, hex of the
    trimmed body), Pelcro (``X-Pelcro-Hmac-SHA256``, base64), Lago's hmac mode, GitHub
    (``X-Hub-Signature-256``, prefix ``sha256=``). No timestamp: no replay protection."""

    scheme: Literal["hmac"] = Field(description="An HMAC-SHA256 of the body in one header")
    header: HeaderName = Field(description="The header the signature is in")
    signed: Literal["body", "trimmed_body"] = Field(
        "body",
        description="body: the raw bytes as received; trimmed_body: the same without leading "
        "and trailing whitespace (spaces, tabs, CR, LF, NUL, vertical tab), as PHP's trim()",
    )
    encoding: Literal["hex", "base64"] = Field(
        "hex", description="How the 32-byte HMAC is written: hex (either case) or base64"
    )
    prefix: str = Field(
        "", description="Fixed text before the signature in the header, e.g. 'sha256='"
    )
    expect: Expected = _expect()

    @model_validator(mode="after")
    def _expect_is_other_headers(self) -> HmacSignature:
        _no_overlap(self.header, self.expect)
        return self

    @property
    def covers(self) -> str:
        return "hmac signs the body only"

    @property
    def headers(self) -> tuple[str, ...]:
        return (self.header.lower(), *(name.lower() for name in self.expect))

    def describe(self) -> str:
        what = "trimmed body" if self.signed == "trimmed_body" else "body"
        return f"hmac: {self.header}, HMAC-SHA256 of the {what} in {self.encoding}" + _described(
            self.expect
        )


#: What a ``jwt`` scheme's token may be signed with: asymmetric algorithms only. The secret a
#: user configures is a *public* key; an HMAC algorithm (HS256) keyed by it would let anyone who
#: has the public key sign (the classic JWT algorithm-confusion attack).
JwtAlgorithm = Literal[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"
]
JWT_ALGORITHMS: tuple[str, ...] = get_args(JwtAlgorithm)


class JwtSignature(_Scheme):
    """One header holding a JSON Web Token (JWS compact form) signed with the provider's
    private key, whose ``claim`` is the raw body as a string: Lago's default (RS256 in
    ``X-Lago-Signature``, claims ``data`` and ``iss``). The secret is the provider's public key:
    PEM, or the base64 of a PEM (Lago's ``GET /api/v1/webhooks/public_key`` serves it so). The
    token must be signed with ``algorithm`` (no other: the token's own ``alg`` is not trusted);
    ``exp`` and ``nbf``, where the token has them, hold within ``leeway`` seconds. Needs the
    ``jwt`` extra (PyJWT with cryptography)."""

    scheme: Literal["jwt"] = Field(description="A JSON Web Token over the body in one header")
    header: HeaderName = Field(description="The header the token is in")
    algorithm: JwtAlgorithm = Field(
        "RS256", description="The one algorithm the token must be signed with (asymmetric)"
    )
    claim: str = Field(
        "data", min_length=1, description="The claim that holds the raw body, as a string"
    )
    issuer: str | None = Field(
        None,
        min_length=1,
        description="When set, the token's iss claim must be exactly this (Lago: its "
        "LAGO_API_URL, such as https://api.getlago.com)",
    )
    leeway: Annotated[int, Strict()] = Field(
        60, ge=0, description="Seconds of clock skew allowed on the token's exp and nbf claims"
    )
    expect: Expected = _expect()

    @model_validator(mode="after")
    def _expect_is_other_headers(self) -> JwtSignature:
        _no_overlap(self.header, self.expect)
        return self

    @property
    def covers(self) -> str:
        return f"jwt signs the body (its {self.claim} claim) only"

    @property
    def headers(self) -> tuple[str, ...]:
        return (self.header.lower(), *(name.lower() for name in self.expect))

    def describe(self) -> str:
        issuer = f", iss {self.issuer}" if self.issuer else ""
        return (
            f"jwt: {self.header}, {self.algorithm} over the body in {self.claim}{issuer}"
            + _described(self.expect)
        )


class SharedSecret(_Scheme):
    """No signature: the secret itself is sent with every delivery, compared in constant time.
    ``plain``: the header's whole value is the secret (ChargeOver's ``X-ChargeOver-Key``);
    ``bearer``: ``Authorization: Bearer <secret>``; ``basic``: ``Authorization: Basic
    <base64 of user:password>``, the secret being ``user:password``. Anyone who sees one
    delivery (a proxy's log) can forge the next: prefer a signature where the provider has one.
    """

    scheme: Literal["shared_secret"] = Field(description="The secret itself, in a header")
    form: Literal["plain", "bearer", "basic"] = Field(
        "plain",
        description="plain: the header value is the secret; bearer: 'Bearer <secret>'; "
        "basic: 'Basic <base64(user:password)>' with the secret 'user:password'",
    )
    header: HeaderName | None = Field(
        None, description="The header the secret is in; bearer and basic: Authorization if unset"
    )

    @model_validator(mode="after")
    def _plain_names_its_header(self) -> SharedSecret:
        if self.form == "plain" and self.header is None:
            raise ValueError(
                "form plain needs header: the header the secret is sent in (X-ChargeOver-Key)"
            )
        return self

    @property
    def header_name(self) -> str:
        """The header the secret is in, as the chart spells it."""
        return self.header or "Authorization"

    @property
    def headers(self) -> tuple[str, ...]:
        return (self.header_name.lower(),)

    @property
    def secret_header(self) -> str | None:
        return self.header_name.lower()

    @property
    def covers(self) -> str:
        return "a shared secret signs nothing"

    def describe(self) -> str:
        form = "" if self.form == "plain" else f", {self.form.title()}"
        return f"shared secret in {self.header_name}{form}"


class StandardWebhooksSignature(_Scheme):
    """The Standard Webhooks scheme (standardwebhooks.com; Svix): ``webhook-id``,
    ``webhook-timestamp`` (unix seconds) and ``webhook-signature: v1,<base64> [v1,<base64> …]``,
    each the HMAC-SHA256 of ``"{id}.{timestamp}.{raw body}"`` keyed by the secret's bytes: the
    base64 after its ``whsec_`` prefix. Any ``v1`` may match; other versions are skipped."""

    scheme: Literal["standard_webhooks"] = Field(description="webhook-id/-timestamp/-signature")
    header_prefix: Annotated[str, Field(pattern=f"^{_TOKEN}$")] = Field(
        "webhook-", description="Before id, timestamp and signature: 'svix-' for Svix's own names"
    )
    tolerance: Annotated[int, Strict()] = _tolerance()

    @property
    def headers(self) -> tuple[str, ...]:
        p = self.header_prefix.lower()
        return (f"{p}id", f"{p}timestamp", f"{p}signature")

    @property
    def signed_headers(self) -> tuple[str, ...]:
        return self.headers[:2]

    @property
    def covers(self) -> str:
        p = self.header_prefix
        return f"standard_webhooks signs {p}id, {p}timestamp and the body"

    def describe(self) -> str:
        return f"standard webhooks: {self.header_prefix}*, {self.tolerance} s tolerance"


SignatureSpec = Annotated[
    StripeSignature | HmacSignature | JwtSignature | SharedSecret | StandardWebhooksSignature,
    Field(discriminator="scheme"),
]


def unsigned_identity(scheme: SignatureSpec | None, delivery: DeliveryMap) -> list[tuple[str, str]]:
    """Where ``delivery`` reads a delivery's identity from a header ``scheme`` does not sign:
    ``(location, problem)`` for each (``delivery.event_id``, ``delivery.idempotency_key[1]``);
    none without a scheme, which claims nothing.

    Identity is what makes a delivery sent again a ``duplicate``. Read from a header the
    signature does not cover, anyone who saw one delivery can send it again with a new value
    there and have it verified and applied as a new event. A header that is also read as the
    event *type* is not counted: a new value there is another event type (unsigned too, a
    lesser problem of its own), not the same event again.
    """
    if scheme is None:
        return []
    if delivery.event_id is not None:
        read = [("delivery.event_id", "the event id", delivery.event_id)]
    else:
        keys = delivery.idempotency_key or []
        read = [
            (f"delivery.idempotency_key[{i}]", "part of the idempotency key", loc)
            for i, loc in enumerate(keys)
        ]
    typed = {loc.header for loc in delivery.event_type}
    found = []
    for where, what, loc in read:
        if loc.header is None or loc.header in typed or loc.header in scheme.signed_headers:
            continue
        name = str(loc).removeprefix("header:")
        found.append(
            (
                where,
                f"{what} is read from the header {name}, which the signature does not cover "
                f"({scheme.covers}): anyone who saw one delivery could send it again with a "
                f"new {name} and have it verified and applied as a new event; read it from the "
                "body (event_id: $.id), or derive a key from the body (idempotency_key: "
                "[$.type, $.data.id, $.data.updated_at])",
            )
        )
    return found
