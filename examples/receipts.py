"""Reacting to changes: a receipt when an invoice is paid — once per payment, even when a late
event re-folds the invoice — by following the changes feed.

``send_receipt`` is a subscriber's handler, for the library (``engine.Subscriber``) or for the
command line, which stores how far it got under the subscriber's name::

    invoice-engine consume receipts examples/receipts.py:send_receipt stripe

A handler is called at least once per entry (a consumer killed between handling an entry and
storing its cursor gets that entry again), so it must be idempotent. This one keeps, in a small
JSON file (``receipts.json`` in the current folder), which invoices their customer was told are
paid: an entry into ``paid`` sends a receipt unless the customer was told already; an entry out
of it that is a *correction* (``change.corrects``: a late event showed the payment never stood)
sends a correction. An entry out of ``paid`` that is not one (a refund, a reversed payment) is
news of its own; a later payment then gets a receipt of its own.

It sends first and records after: a crash between the two sends that one message again. Where a
duplicate is worse than a missing message, record first — or give your mail provider an
idempotency key, such as ``f"{change.provider}/{change.cursor}"``.

Run: ``python examples/receipts.py`` (an in-memory database: a payment, then a late void that
takes it back).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine import Change, Engine, Subscriber


class Receipts:
    """A handler remembering in ``path`` which invoices' customers were told they are paid."""

    def __init__(self, path: Path, send: Callable[[str], object] = print) -> None:
        self.path = path
        self.send = send

    def __call__(self, change: Change) -> None:
        told: dict[str, int] = json.loads(self.path.read_text()) if self.path.exists() else {}
        invoice = f"{change.provider}/{change.invoice_id}"
        if change.to_canonical == "paid" and invoice not in told:
            self.send(f"receipt: {invoice} is paid (entry #{change.cursor})")
            told[invoice] = change.cursor
        elif change.to_canonical != "paid" and invoice in told:
            announced = told.pop(invoice)
            if change.correction:
                self.send(
                    f"correction: {invoice} is {change.to_state}, not paid: the receipt of entry "
                    f"#{announced} did not stand"
                )
        else:
            return  # nothing to tell: a redelivered entry lands here too
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(told))
        os.replace(tmp, self.path)  # whole or not at all, whenever the process dies


#: The handler ``invoice-engine consume`` is given: its record in the current folder.
send_receipt = Receipts(Path("receipts.json"))


def _stripe(n: int, kind: str, status: str, day: int) -> dict[str, Any]:
    """A Stripe webhook about invoice ``in_demo``, ``day`` days into June 2024."""
    return {
        "id": f"evt_demo_{n}", "type": f"invoice.{kind}", "created": 1_717_200_000 + day * 86_400,
        "data": {"object": {"id": "in_demo", "status": status}},
    }  # fmt: skip


def main() -> None:
    with tempfile.TemporaryDirectory() as folder, Engine(":memory:") as eng:
        receipts = Subscriber(eng, "receipts", Receipts(Path(folder) / "receipts.json"))
        for n, kind, status, day in [(1, "created", "draft", 0), (2, "finalized", "open", 1),
                                     (3, "paid", "paid", 9)]:  # fmt: skip
            eng.apply("stripe", _stripe(n, kind, status, day))
        receipts.run(follow=False)  # the feed so far; follow=True waits for more
        eng.apply("stripe", _stripe(4, "voided", "void", 5))  # late: voided before the payment
        eng.apply("stripe", _stripe(3, "paid", "paid", 9))  # redelivered: no entry
        receipts.run(follow=False)
        receipts.run(follow=False)  # nothing new: nothing sent twice
        print("the feed:")
        for change in eng.changes(provider="stripe"):
            print(f"  {change}")


if __name__ == "__main__":
    main()
