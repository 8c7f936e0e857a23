"""Property-test your own billing code against a provider's invoice lifecycle.

``MyInvoice`` stands for the invoice class of an application that bills through Stripe: a
status and a method per action, each refusing what it should not do. Rather than writing
example after example, the test hands it to :func:`engine.testing.check_against_chart`, which
sends random sequences of actions, legal and illegal, to a fresh ``MyInvoice`` and to the
Stripe chart side by side. If they ever disagree (an action accepted that Stripe forbids, one
refused that Stripe allows, or a different status afterwards), hypothesis shrinks the
sequence and reports the shortest one it finds.

Run it: ``pytest examples/test_my_billing.py`` (or ``python examples/test_my_billing.py``).
"""

from __future__ import annotations

from engine import load_chart
from engine.testing import Adapter, check_against_chart


class InvoiceError(Exception):
    """MyInvoice refuses an action in its current status."""


class MyInvoice:
    """A small invoice class, as an application might write it."""

    def __init__(self) -> None:
        self.status = "draft"
        self.reminders = 0

    def _require(self, *statuses: str) -> None:
        if self.status not in statuses:
            raise InvoiceError(f"not allowed for a {self.status} invoice")

    def finalize(self) -> None:
        self._require("draft")
        self.status = "open"

    def delete(self) -> None:
        self._require("draft")
        self.status = "deleted"

    def pay(self) -> None:
        self._require("open", "uncollectible")
        self.status = "paid"

    def void(self) -> None:
        self._require("open", "uncollectible")
        self.status = "void"

    def mark_uncollectible(self) -> None:
        self._require("open")
        self.status = "uncollectible"

    def send_reminder(self) -> None:
        self._require("draft", "open", "uncollectible")
        self.reminders += 1


def stripe_adapter(invoice: MyInvoice) -> Adapter:
    """How the Stripe chart's triggers map onto MyInvoice's methods."""
    actions = {
        "finalize": invoice.finalize,
        "delete": invoice.delete,
        "pay": invoice.pay,
        "void": invoice.void,
        "mark_uncollectible": invoice.mark_uncollectible,
        "notify": invoice.send_reminder,
    }
    return Adapter(send=lambda trigger, payload: actions[trigger](), state=lambda: invoice.status)


def test_my_invoice_follows_the_stripe_lifecycle() -> None:
    check_against_chart(
        load_chart("stripe"), lambda: stripe_adapter(MyInvoice()), rejects=InvoiceError
    )


if __name__ == "__main__":
    test_my_invoice_follows_the_stripe_lifecycle()
    print("MyInvoice follows the Stripe lifecycle.")
