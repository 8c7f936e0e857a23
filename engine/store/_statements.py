"""The statements both stores run alike, written once: with psycopg's ``%s`` marks, and as
SQLite's ``?`` through :func:`qmark`. What differs (PostgreSQL's ``ON CONFLICT DO NOTHING`` on
events, its arrays and locks) stays in each store's module."""

from __future__ import annotations

from .base import ChartRecord, EventRow, InvoiceRow, RevisedOutcome, RevisionRow

__all__ = [
    "CHART_NAMES", "EVENT_NAMES", "FOLD", "INSERT_REVISION", "INVOICE_NAMES", "RECORD_CHART",
    "REVISE", "REVISION_NAMES", "SUPERSEDE", "UPSERT_INVOICE", "marks", "qmark", "revise_args",
]  # fmt: skip

EVENT_NAMES = ", ".join(EventRow._fields)
INVOICE_NAMES = ", ".join(InvoiceRow._fields)
REVISION_NAMES = ", ".join(RevisionRow._fields)
CHART_NAMES = ", ".join(ChartRecord._fields)


def marks(n: int) -> str:
    return ", ".join(["%s"] * n)


def qmark(sql: str) -> str:
    """The statement with SQLite's parameter marks."""
    return sql.replace("%s", "?")


UPSERT_INVOICE = f"""
INSERT INTO invoices ({INVOICE_NAMES}) VALUES ({marks(len(InvoiceRow._fields))})
ON CONFLICT (provider, invoice_id) DO UPDATE SET
  state = excluded.state, canonical = excluded.canonical, version = excluded.version,
  updated_at = excluded.updated_at, last_fold_order = excluded.last_fold_order,
  last_lifecycle_rank = excluded.last_lifecycle_rank, last_event_id = excluded.last_event_id
"""
INSERT_REVISION = (
    f"INSERT INTO revisions ({REVISION_NAMES}) VALUES ({marks(len(RevisionRow._fields))})"
)
FOLD = f"""
SELECT {EVENT_NAMES} FROM events WHERE provider = %s AND invoice_id = %s AND in_fold = 1
ORDER BY fold_order, lifecycle_rank, event_id
"""
SUPERSEDE = "UPDATE events SET in_fold = 0, reason = reason || %s WHERE seq = %s"
REVISE = (
    "UPDATE events SET outcome = %s, reason = %s, from_state = %s, to_state = %s,"
    " trigger = %s, retryable = %s, adopted = %s, revisions = %s, policy = %s,"
    " chart = %s, inferred = %s WHERE seq = %s"
)
RECORD_CHART = (
    f"INSERT INTO charts ({CHART_NAMES}) VALUES ({marks(len(ChartRecord._fields))})"
    " ON CONFLICT (fingerprint) DO NOTHING"
)


def revise_args(outcome: RevisedOutcome) -> tuple[object, ...]:
    """``REVISE``'s parameters: the outcome's fields, then its ``seq``."""
    return (*outcome[1:], outcome.seq)
