"""Realistic Stripe-shaped webhook streams for the benchmarks, generated lazily.

Every invoice lives a plausible Stripe lifecycle (created, maybe updated, finalized, reminders
and failed payments, then paid, voided, written off or deleted). On top of that a stream has
duplicates (the same bytes delivered again), illegal deliveries (an event the invoice's state
forbids, e.g. ``invoice.finalized`` after it was paid) and shuffled pairs (an invoice's two
consecutive events arriving in the wrong order, which the engine must re-fold).

Invoices are generated in windows of a few hundred at a time and their events interleaved, as
a provider sends them: the stream is a generator, so a million deliveries cost no memory here.
The same seed always yields the same bytes.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["Mix", "stripe_lifecycles", "stripe_stream"]

#: Occurrence times start here (2024-01-01T00:00:00Z): in the past, as the engine requires.
_EPOCH = 1_704_067_200
_NOTIFY = ("invoice.sent", "invoice.payment_failed", "invoice.overdue", "invoice.will_be_due")
#: Stripe event type -> the status snapshot its body carries.
_ENDINGS = {
    "paid": [("invoice.paid", "paid"), ("invoice.payment_succeeded", "paid")],
    "void": [("invoice.voided", "void")],
    "uncollectible": [
        ("invoice.marked_uncollectible", "uncollectible"),
        ("invoice.payment_failed", "uncollectible"),
        ("invoice.paid", "paid"),
    ],
}


@dataclass(frozen=True)
class Mix:
    """What fraction of a stream's deliveries are duplicates, illegal, or out of order."""

    duplicates: float = 0.05
    illegal: float = 0.05
    shuffled: float = 0.02


def _body(event_id: str, event_type: str, invoice_id: str, created: int, status: str) -> bytes:
    doc = {
        "id": event_id,
        "object": "event",
        "type": event_type,
        "created": created,
        "livemode": False,
        "data": {
            "object": {
                "id": invoice_id,
                "object": "invoice",
                "status": status,
                "customer": "cus_" + invoice_id[3:],
                "amount_due": 4200,
                "currency": "eur",
            }
        },
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def _lifecycle(rng: random.Random, length: int) -> list[tuple[str, str]]:
    """(event type, status after) pairs of one legal lifecycle of about ``length`` events."""
    if rng.random() < 0.05:
        events = [("invoice.created", "draft"), ("invoice.deleted", "draft")]
        return events[: max(1, length)]
    start = [("invoice.created", "draft"), ("invoice.updated", "draft")]
    start.append(("invoice.finalized", "open"))
    ending = _ENDINGS[rng.choices(["paid", "void", "uncollectible"], [0.85, 0.05, 0.10])[0]]
    pad = max(0, length - len(start) - len(ending))
    middle = [(rng.choice(_NOTIFY), "open") for _ in range(pad)]
    return start + middle + ending


def stripe_lifecycles(n_invoices: int, per_invoice: int, seed: int = 1) -> list[list[str]]:
    """Legal trigger sequences (chart triggers) for the validator benchmark."""
    rng = random.Random(seed)
    trigger_of = {
        "invoice.finalized": "finalize",
        "invoice.paid": "pay",
        "invoice.payment_succeeded": "pay",
        "invoice.voided": "void",
        "invoice.marked_uncollectible": "mark_uncollectible",
        "invoice.deleted": "delete",
        **dict.fromkeys(_NOTIFY, "notify"),
    }
    out: list[list[str]] = []
    for _ in range(n_invoices):
        seq = [trigger_of[t] for t, _ in _lifecycle(rng, per_invoice) if t in trigger_of]
        # A second "pay" (paid + payment_succeeded) is not a legal trigger from paid.
        out.append([t for i, t in enumerate(seq) if not (t == "pay" and "pay" in seq[:i])])
    return out


def stripe_stream(
    n_deliveries: int,
    n_invoices: int,
    *,
    mix: Mix | None = None,
    seed: int = 1,
    window: int = 500,
) -> Iterator[bytes]:
    """Exactly ``n_deliveries`` Stripe webhook bodies over ``n_invoices`` invoices.

    Args:
        n_deliveries: how many bodies to yield.
        n_invoices: how many distinct invoices they are about.
        mix: the fractions of duplicates, illegal and shuffled deliveries (default 5/5/2 %).
        seed: the random seed; the same arguments always give the same stream.
        window: invoices in flight at once; their events are interleaved.
    """
    mix = mix or Mix()
    rng = random.Random(seed)
    per_invoice = max(2, round(n_deliveries / n_invoices))
    base_len = max(2, round(per_invoice * (1 - mix.duplicates - mix.illegal)))
    emitted = 0
    serial = 0
    invoice_no = 0
    round_no = 0  # when the stream outlasts its invoices, later rounds come later in time
    while emitted < n_deliveries:
        queues: list[list[bytes]] = []
        for _ in range(min(window, n_invoices)):  # never one invoice twice in a window
            if invoice_no >= n_invoices:
                invoice_no, round_no = 0, round_no + 1  # re-visits: mostly rejected
            iid = f"in_{invoice_no:08d}"
            invoice_no += 1
            t0 = _EPOCH + round_no * (n_invoices * 7 + 120 * per_invoice) + invoice_no * 7
            events: list[bytes] = []
            for i, (etype, status) in enumerate(_lifecycle(rng, base_len)):
                serial += 1
                events.append(_body(f"evt_{serial:010d}", etype, iid, t0 + 60 * i, status))
            last_t = t0 + 60 * len(events)
            for j in range(len(events)):
                if rng.random() < mix.illegal / (1 - mix.duplicates - mix.illegal):
                    serial += 1  # finalizing a finished (or deleted) invoice: always illegal
                    events.append(
                        _body(f"evt_{serial:010d}", "invoice.finalized", iid, last_t + j, "open")
                    )
            for k in range(1, len(events)):
                if rng.random() < mix.shuffled:
                    events[k - 1], events[k] = events[k], events[k - 1]
            for k in range(len(events) - 1, -1, -1):
                if rng.random() < mix.duplicates / (1 - mix.duplicates - mix.illegal):
                    events.insert(k + 1, events[k])
            events.reverse()  # pop() from the end yields them in order
            queues.append(events)
        while queues and emitted < n_deliveries:
            i = rng.randrange(len(queues))
            yield queues[i].pop()
            emitted += 1
            if not queues[i]:
                queues[i] = queues[-1]
                queues.pop()
