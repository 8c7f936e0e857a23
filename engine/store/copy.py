"""Copying a store's records into another store: SQLite to PostgreSQL and back.

The rows go across as they are — the same ``seq`` numbers, times, outcomes, revisions and chart
versions — because both stores hold the same columns (see :mod:`engine.store._postgres_schema`).
They are read from one snapshot of the source (writes to it after that are not in the copy)
and written in one transaction on the target (all of the copy, or none of it), whose numbering
then follows the highest ``seq`` copied. What was read is counted and digested on the way, and
the target is tallied (:func:`tally`) inside the same transaction, before it commits: a target
that would not hold exactly what was read fails the copy, and nothing is written. Whether the
copy tells the same story is for a replay of the target to say (the ``copy`` command runs it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from hashlib import blake2b
from itertools import islice
from typing import NamedTuple, TypeVar

from ..errors import StoreError
from .base import ReadTx, Store, WriteTx

__all__ = ["LOCK_WAIT", "Copied", "Copy", "Tally", "copy_records", "count_records", "tally"]

_CHUNK = 2_000
#: Seconds a copy waits for a lock on the target (another writer's turn; with ``replace``, a
#: reader of the tables it empties) before that attempt fails, rather than waiting for ever.
LOCK_WAIT = 10.0
_MOD = 2**128
R = TypeVar("R")


class Copied(NamedTuple):
    """How many records a store holds (or a copy moved), by table."""

    events: int
    invoices: int
    revisions: int
    charts: int
    #: Entries of the changes feed, and subscribers' stored cursors.
    changes: int = 0
    subscribers: int = 0


class Tally(NamedTuple):
    """Rows read in one snapshot: how many, and a digest of every column of every row (in any
    order: the stores sort text differently), so two tallies are equal only if the rows are."""

    counts: Copied
    digest: str


class Copy(NamedTuple):
    """What a copy did, all of it in one snapshot of the source."""

    #: The rows read from the source and written to the target.
    copied: Tally
    #: The source's own counts (counted apart from the rows copied) in the same snapshot.
    source: Copied
    #: The target as its own transaction held it just before committing: equal to ``copied``
    #: (else the copy failed), and free of any write to the target after the copy.
    target: Tally


class _Digest:
    """Counts and an order-free digest of rows: the sum of a hash of each."""

    def __init__(self) -> None:
        self.counts = dict.fromkeys(Copied._fields, 0)
        self._sum = 0

    def add(self, table: str, rows: Iterable[tuple[object, ...]]) -> None:
        for row in rows:
            h = blake2b(table.encode(), digest_size=16)
            for value in row:  # each column tagged with its kind and length: no two rows alike
                if isinstance(value, bytes | bytearray | memoryview):
                    kind, data = b"b", bytes(value)
                else:
                    kind, data = b"r", repr(value).encode("utf-8", "surrogatepass")
                h.update(b"|%s%d:" % (kind, len(data)))
                h.update(data)
            self._sum = (self._sum + int.from_bytes(h.digest(), "big")) % _MOD
            self.counts[table] += 1

    def tally(self) -> Tally:
        return Tally(Copied(**self.counts), f"{self._sum:032x}")


def count_records(tx: ReadTx) -> Copied:
    """What the store holds, in one transaction."""
    return Copied(
        sum(tx.outcome_counts().values()),
        sum(1 for _ in tx.invoice_rows(unborn=True)),
        sum(1 for _ in tx.revision_rows()),
        sum(1 for _ in tx.chart_records()),
        sum(len(page) for page in tx.feed.pages()),
        len(tx.feed.subscribers()),
    )


def tally(tx: ReadTx) -> Tally:
    """Every row of the store, in one transaction, counted and digested as a copy reads them."""
    digest = _Digest()
    digest.add("charts", tx.chart_records())
    digest.add("events", tx.event_rows())
    digest.add("invoices", tx.invoice_rows(unborn=True))
    digest.add("revisions", tx.revision_rows())
    for page in tx.feed.pages():
        digest.add("changes", page)
    digest.add("subscribers", tx.feed.subscribers())
    return digest.tally()


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
    lock_wait: float = LOCK_WAIT,
) -> Copy:
    """Copy every record of ``source``, as one snapshot holds them, into ``target``, in one
    write transaction.

    Args:
        replace: delete what ``target`` holds first; without it, a target holding any record
            is refused.
        progress: called with the number of event rows written by each step.
        lock_wait: seconds the target's transaction waits for a lock before it fails (and is
            run again, within the store's timeout).

    Raises:
        StoreError: the target is not empty (without ``replace``), is the source (by whatever
            name), would not hold exactly the rows read (tallied in the copy's transaction,
            before it commits), or a store failed (nothing of the copy is then written).
    """
    if source.identity() == target.identity():
        also = "" if source.name == target.name else f" (the same database as {source.name})"
        raise StoreError(f"{target.name} is the source itself{also}: copy to another database")

    def work(wtx: WriteTx, rtx: ReadTx) -> tuple[Tally, Tally]:  # may run again: all from rtx
        # the whole store, alone, before the check (no writer slips in between it and the
        # copy); no wait for a lock is for ever: it fails, and runs again
        wtx.begin_copy(lock_wait)
        if replace:
            wtx.delete_all()
        else:
            held = count_records(wtx)
            if any(held):
                raise StoreError(
                    f"{target.name} is not empty ({held.events:,} events, {held.invoices:,} "
                    "invoices): copy into a new database, or replace what it holds (--replace)"
                )
        digest = _Digest()
        for charts in _chunks(rtx.chart_records()):
            for chart in charts:
                wtx.record_chart(chart)
            digest.add("charts", charts)
        for rows in _chunks(rtx.event_rows()):
            wtx.insert_events(rows)
            digest.add("events", rows)
            if progress is not None:
                progress(len(rows))
        for invoice_rows in _chunks(rtx.invoice_rows(unborn=True)):
            wtx.upsert_invoices(invoice_rows)
            digest.add("invoices", invoice_rows)
        for revision_rows in _chunks(rtx.revision_rows()):
            wtx.insert_revisions(revision_rows)
            digest.add("revisions", revision_rows)
        for page in rtx.feed.pages():
            wtx.feed.copy(page)
            digest.add("changes", page)
        subscribers = rtx.feed.subscribers()
        for name, cursor, updated_at, provider in subscribers:
            wtx.feed.save_subscriber(name, cursor, updated_at, provider)
        digest.add("subscribers", subscribers)
        wtx.advance_seqs()
        copied = digest.tally()
        # the target as this transaction holds it, before it commits: no later writer is in it
        held_now = tally(wtx)
        if held_now != copied:
            raise StoreError(
                f"{target.name} would not hold what was copied: copied "
                f"{copied.counts._asdict()} (digest {copied.digest}), it holds "
                f"{held_now.counts._asdict()} (digest {held_now.digest}); nothing was written"
            )
        return copied, held_now

    # The snapshot is taken (and the source's tables held) before the target's transaction
    # begins: every attempt of it copies the same rows, and a target that is the source after
    # all (a name identity() could not see through) fails on a lock instead of waiting for ever.
    with source.read() as rtx:
        seen = count_records(rtx)
        try:
            copied, held = target.transact(lambda wtx: work(wtx, rtx))
        except StoreError as exc:
            if "lock timeout" not in str(exc):
                raise
            raise StoreError(
                f"{exc}: the copy waited {lock_wait:g} s at a time for a lock another session "
                "holds (a writer, or with --replace a reader of the tables); try again when "
                "it is done"
            ) from None
    return Copy(copied, seen, held)
