"""Embedding the engine in a webhook endpoint: one delivery in, one HTTP status out.

``handle`` is what a web framework's view would call with the raw request body and headers.
The status tells the provider what to do next:

- 200: recorded (applied, unchanged, a duplicate we already have, or an event type the chart
  ignores, such as Stripe's ``customer.created``) — don't send it again;
- 409 with Retry-After: rejected but *retryable* (a later event could make it legal) on a
  provider whose events carry no occurrence time (ChargeOver, Moxie): there the engine decides
  a redelivery of that event again, so asking the provider to retry is the retry;
- 200 for a retryable rejection on a provider whose events carry an occurrence time (Stripe,
  Pelcro, Modern Treasury, Upmind): a redelivery would only be a ``duplicate``; the engine
  re-decides the event by itself when the missing earlier event arrives (a re-fold);
- 422: rejected for good (illegal from a final state) — still recorded, retrying won't help;
- 400: the delivery could not be read (the raw bytes are stored as ``invalid``).

Run: ``python examples/embed_engine.py`` (uses an in-memory database).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

from engine import Engine, Outcome

STREAM = Path(__file__).resolve().parent / "streams" / "stripe.jsonl"


def http_status(outcome: Outcome, *, timed: bool) -> int:
    """The HTTP status to answer a webhook delivery with (``timed``: the chart orders events
    by their occurrence time)."""
    if outcome.status == "invalid":
        return 400
    if outcome.status == "rejected" and not outcome.retryable:
        return 422
    if outcome.status == "rejected" and not timed:
        return 409  # the redelivery is decided again
    return 200


def handle(eng: Engine, provider: str, body: bytes, headers: Mapping[str, str]) -> int:
    """A webhook view: apply the raw delivery and answer with a status code."""
    timed = eng.chart(provider).spec.delivery.occurred_at is not None
    return http_status(eng.apply(provider, body, headers), timed=timed)


def main() -> None:
    counts: Counter[int] = Counter()
    with Engine(":memory:", on_unknown="reject") as eng:
        for line in STREAM.read_text(encoding="utf-8").splitlines():
            try:
                doc = json.loads(line)
            except ValueError:
                counts[handle(eng, "stripe", line.encode(), {})] += 1
                continue
            body = doc.get("body", doc)
            raw = body if isinstance(body, str) else json.dumps(body)
            counts[handle(eng, "stripe", raw.encode(), doc.get("headers") or {})] += 1
        for invoice in eng.invoices("stripe"):
            print(invoice)
    print("responses:", ", ".join(f"{code} x{n}" for code, n in sorted(counts.items())))
    assert counts[200] > 0
    assert counts[400] == 1  # the stream's one malformed delivery


if __name__ == "__main__":
    main()
