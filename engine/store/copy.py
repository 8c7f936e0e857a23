"""Copying a store's records into another store: SQLite to PostgreSQL and back.

The rows go across as they are — the same ``seq`` numbers, times, outcomes, revisions and chart
versions — because both stores hold the same columns (see :mod:`engine.store._postgres_schema`).
The target is written in one transaction (all of the copy, or none of it) and its numbering
then follows the highest ``seq`` copied. Whether the copy tells the same story is for a replay
of the target to say (the ``copy`` command runs one).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import NamedTuple, TypeVar

from ..errors import StoreError
from .base import ReadTx, Store, WriteTx

__all__ = ["Copied", "copy_records", "count_records"]

_CHUNK = 2_000
R = TypeVar("R")


class Copied(NamedTuple):
    """How many records a store holds (or a copy moved), by table."""

    events: int
    invoices: int
    revisions: int
    charts: int


def count_records(tx: ReadTx) -> Copied:
    """What the store holds, in one transaction."""
    return Copied(
        sum(tx.outcome_counts().values()),
        sum(1 for _ in tx.invoice_rows(unborn=True)),
        sum(1 for _ in tx.revision_rows()),
        sum(1 for _ in tx.chart_records()),
    )


def _chunks(rows: Iterable[R]) -> Iterator[list[R]]:
    it = iter(rows)
    while chunk := list(islice(it, _CHUNK)):
        yield chunk


def copy_records(
    source: Store,
    target: Store,
    *,
    replace: bool = False,
    progress: Callable[[int], None] | None = None,
) -> Copied:
    """Copy every record of ``source`` into ``target``, in one write transaction.

    Args:
        replace: delete what ``target`` holds first; without it, a target holding any record
            is refused.
        progress: called with the number of event rows written by each step.

    Raises:
        StoreError: the target is not empty (without ``replace``), is the source, or a store
            failed (nothing of the copy is then written).
    """
    if source.name == target.name:
        raise StoreError(f"{target.name} is the source itself: copy to another database")

    def work(wtx: WriteTx) -> Copied:
        if replace:
            wtx.delete_all()
        else:
            held = count_records(wtx)
            if any(held):
                raise StoreError(
                    f"{target.name} is not empty ({held.events:,} events, {held.invoices:,} "
                    "invoices): copy into a new database, or replace what it holds (--replace)"
                )
        with source.read() as rtx:
            charts = list(rtx.chart_records())
            for chart in charts:
                wtx.record_chart(chart)
            events = 0
            for rows in _chunks(rtx.event_rows()):
                wtx.insert_events(rows)
                events += len(rows)
                if progress is not None:
                    progress(len(rows))
            invoices = 0
            for invoice_rows in _chunks(rtx.invoice_rows(unborn=True)):
                wtx.upsert_invoices(invoice_rows)
                invoices += len(invoice_rows)
            revisions = 0
            for revision_rows in _chunks(rtx.revision_rows()):
                wtx.insert_revisions(revision_rows)
                revisions += len(revision_rows)
        wtx.advance_seqs()
        return Copied(events, invoices, revisions, len(charts))

    return target.transact(work)
