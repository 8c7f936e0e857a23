"""The records the operator views read (:meth:`~engine.store.base.ReadTx.snapshot_rows`); their
SQL, one text for both stores, is in :mod:`engine.store._views_sql`."""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["SnapshotRow"]


class SnapshotRow(NamedTuple):
    """An invoice with a known state, beside the live event that carries the last status
    snapshot in its fold (the highest fold key among its events that carry one)."""

    provider: str
    invoice_id: str
    #: The invoice's state and canonical state, as its ``invoices`` row holds them now.
    state: str
    canonical: str | None
    #: That event's row number, id, type and the trigger it fired (or the last step taken).
    seq: int
    event_id: str | None
    event_type: str | None
    trigger: str | None
    #: The provider's status snapshot the event carried (the provider's word, not a state).
    status_snapshot: str
    #: The engine's verdict on the event, and the states it moved the invoice from and to.
    outcome: str
    reason: str | None
    from_state: str | None
    to_state: str | None
    occurred_at: str | None
    received_at: str
