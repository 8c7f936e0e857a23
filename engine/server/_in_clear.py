"""Secrets sent in clear (a shared key) kept out of what is stored, however they are written."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

__all__ = ["in_body_forms", "redact_in_body"]


def in_body_forms(secrets: Iterable[str]) -> tuple[bytes, ...]:
    """How a secret sent in clear can appear in a JSON body: as is, and JSON-escaped."""
    forms = set()
    for secret in secrets:
        forms.add(secret.encode())
        forms.add(json.dumps(secret)[1:-1].encode())
    return tuple(sorted((f for f in forms if f), key=len, reverse=True))


def redact_in_body(body: bytes, secrets: tuple[bytes, ...]) -> bytes:
    """``body`` with every secret in it (as written, or as any JSON escaping of it) replaced
    by ``[redacted]``: a key sent in clear is a credential, not a record."""
    for secret in secrets:
        body = body.replace(secret, b"[redacted]")
    if b"\\" not in body:
        return body  # no escapes: nothing more can hide a secret
    try:
        doc = json.loads(body)
    except ValueError:
        return body
    plain = {s.decode("utf-8", "replace") for s in secrets}
    found = False

    def scrub(value: Any) -> Any:
        nonlocal found
        if isinstance(value, str) and value in plain:
            found = True
            return "[redacted]"
        if isinstance(value, dict):
            return {k: scrub(v) for k, v in value.items()}
        if isinstance(value, list):
            return [scrub(v) for v in value]
        return value

    doc = scrub(doc)
    return json.dumps(doc, ensure_ascii=False).encode() if found else body
