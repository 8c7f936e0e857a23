"""The operator views' SQL (invoices by state, dead letters, drift), one text for both stores.

The stores differ only in how a parameter is marked (``?``, ``%s``), how a list of values is
passed (SQLite: one parameter per value; PostgreSQL: one array) and how text compares: fold
keys compare event ids by code point (Python's order, and SQLite's), and the views list
invoices by provider and id in that order too (so ``limit`` picks the same rows on both
stores), which PostgreSQL does under ``COLLATE "C"`` only, whatever the database's collation.
Each function returns the statement and its parameters.
"""

from __future__ import annotations

from collections.abc import Sequence

from .base import EventRow, InvoiceRow

__all__ = ["POSTGRES_COLLATE", "dead_letters_query", "invoices_query", "snapshots_query"]

#: The clause that makes PostgreSQL compare text by code point, as SQLite and Python do.
POSTGRES_COLLATE = ' COLLATE "C"'

_INVOICE_NAMES = ", ".join(InvoiceRow._fields)
_EVENT_NAMES = ", ".join(EventRow._fields)

# Each born invoice beside its live event with the highest fold key among those that carry a
# status snapshot: the window numbers each invoice's such events from the last one.
_SNAPSHOTS = """
SELECT i.provider, i.invoice_id, i.state, i.canonical, e.seq, e.event_id, e.event_type,
  e.trigger, e.status_snapshot, e.outcome, e.reason, e.from_state, e.to_state, e.occurred_at,
  e.received_at
FROM (
  SELECT seq, provider, invoice_id, event_id, event_type, trigger, status_snapshot, outcome,
    reason, from_state, to_state, occurred_at, received_at, ROW_NUMBER() OVER (
      PARTITION BY provider, invoice_id
      ORDER BY fold_order DESC, lifecycle_rank DESC, event_id{collate} DESC
    ) AS nth
  FROM events
  WHERE in_fold = 1 AND invoice_id IS NOT NULL AND status_snapshot IS NOT NULL{where}
) AS e
JOIN invoices AS i ON i.provider = e.provider AND i.invoice_id = e.invoice_id
WHERE e.nth = 1 AND i.state IS NOT NULL
ORDER BY i.provider{collate}, i.invoice_id{collate}
"""


def invoices_query(
    mark: str,
    provider: str | None,
    *,
    unborn: bool,
    states: Sequence[str] | None,
    canonical: str | None,
    limit: int | None,
    arrays: bool,
    collate: str | None = None,
) -> tuple[str, list[object]]:
    """``ReadTx.invoice_rows``: invoices by provider and id (by code point), filtered;
    ``arrays``: pass ``states`` as one array parameter (PostgreSQL), else one parameter per
    state; ``collate``: as for :func:`snapshots_query` (``None``: PostgreSQL's when ``arrays``,
    else none)."""
    if collate is None:
        collate = POSTGRES_COLLATE if arrays else ""
    where, args = ["state IS NOT NULL"] if not unborn else [], list[object]()
    if provider is not None:
        where.append(f"provider = {mark}")
        args.append(provider)
    if states is not None and arrays:
        where.append(f"state = ANY({mark}::text[])")
        args.append(list(states))
    elif states is not None:
        where.append(f"state IN ({', '.join([mark] * len(states))})")
        args += states
    if canonical is not None:
        where.append(f"canonical = {mark}")
        args.append(canonical)
    sql = f"SELECT {_INVOICE_NAMES} FROM invoices"
    sql += f" WHERE {' AND '.join(where)}" if where else ""
    sql += f" ORDER BY provider{collate}, invoice_id{collate}"
    if limit is not None:
        sql += f" LIMIT {mark}"
        args.append(limit)
    return sql, args


def dead_letters_query(
    mark: str, provider: str | None, limit: int | None
) -> tuple[str, list[object]]:
    """``ReadTx.dead_letter_rows``: live ``rejected`` + ``retryable`` events, by ``seq``."""
    sql = (
        f"SELECT {_EVENT_NAMES} FROM events"
        " WHERE in_fold = 1 AND outcome = 'rejected' AND retryable = 1"
    )
    args: list[object] = []
    if provider is not None:
        sql += f" AND provider = {mark}"
        args.append(provider)
    sql += " ORDER BY seq"
    if limit is not None:
        sql += f" LIMIT {mark}"
        args.append(limit)
    return sql, args


def snapshots_query(mark: str, provider: str | None, *, collate: str) -> tuple[str, list[object]]:
    """``ReadTx.snapshot_rows``, by provider and invoice id; ``collate``: the clause that makes
    text compare by code point (:data:`POSTGRES_COLLATE` on PostgreSQL, nothing on SQLite)."""
    where = f" AND provider = {mark}" if provider is not None else ""
    sql = _SNAPSHOTS.format(collate=collate, where=where)
    return sql, [provider] if provider is not None else []
