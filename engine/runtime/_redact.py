"""Which headers of a delivery are stored as they came, and which as ``[redacted]``.

A header is a secret when it carries a credential itself: the shared key a chart's
``shared_secret`` scheme names (ChargeOver's ``X-ChargeOver-Key``, whatever header a Moxie
chart picks), ``Authorization``, cookies, and any header whose name says secret, token,
password, credential or key. Those are stored as ``[redacted]``.

A signature is not a secret: an HMAC output reveals nothing of its key, and a stored delivery
can only be verified again later with its signature headers. So the headers a chart's
``signature:`` scheme reads (``Stripe-Signature``, ``X-Signature``, ``webhook-signature``, …)
are stored verbatim, as are the headers its delivery map reads (an event id in a header is
data the chart names, not a credential). A header the chart does not name is judged by its
name alone; a name that says it is an idempotency or unique key (``Idempotency-Key``, Lago's
``X-Lago-Unique-Key``: the webhook's id) names an identifier, not a credential, and is kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from weakref import WeakKeyDictionary

from ..chart.compiled import Chart

__all__ = ["REDACTED", "redact_headers"]

REDACTED = "[redacted]"

#: Header names with one of these in them carry a credential (``X-Api-Key``, ``Set-Cookie``).
_SECRET_WORDS = (
    "secret",
    "token",
    "password",
    "passwd",
    "credential",
    "authorization",
    "cookie",
    "key",
)

#: Header names ending so are identifiers, whatever their "key" says.
_IDENTIFIERS = ("idempotency-key", "unique-key")

#: Per chart: the headers always redacted, and those always kept (lower-cased names).
_NAMED: WeakKeyDictionary[Chart, tuple[frozenset[str], frozenset[str]]] = WeakKeyDictionary()


def _named(chart: Chart) -> tuple[frozenset[str], frozenset[str]]:
    named = _NAMED.get(chart)
    if named is None:
        spec = chart.spec
        secret = spec.signature.secret_header if spec.signature is not None else None
        dm = spec.delivery
        locators = [
            *dm.event_type,
            dm.event_id,
            *(dm.idempotency_key or ()),
            dm.invoice_id,
            dm.status,
            dm.occurred_at.at if dm.occurred_at is not None else None,
            *(loc for ev in spec.events.values() for loc in (ev.invoice_id, ev.status)),
        ]
        read = {loc.header for loc in locators if loc is not None and loc.header is not None}
        signed = set(spec.signature.headers) if spec.signature is not None else set()
        redacted = frozenset({secret} if secret is not None else set())
        named = (redacted, frozenset((read | signed) - redacted))
        _NAMED[chart] = named
    return named


def _identifier(name: str) -> bool:
    """An idempotency or unique key, whose only secret-sounding word is its "key"."""
    return name.endswith(_IDENTIFIERS) and not any(w in name for w in _SECRET_WORDS if w != "key")


def redact_headers(headers: Mapping[str, str], chart: Chart | None = None) -> dict[str, str]:
    """The headers (lower-cased names, as :func:`~engine.runtime.delivery.normalize_headers`
    gives them) with credentials replaced by ``[redacted]``; with ``chart``, its shared-secret
    header too, and its signature headers and the headers it reads kept."""
    redacted, kept = _named(chart) if chart is not None else (frozenset(), frozenset())
    return {
        k: REDACTED
        if k in redacted
        or (k not in kept and any(w in k for w in _SECRET_WORDS) and not _identifier(k))
        else v
        for k, v in headers.items()
    }
