"""The changes feed as the store keeps it: one row per change of an invoice's state.

A transaction's changes are held back (:meth:`FeedWrites.append`) and written just before it
commits, numbered then: on SQLite the one writer numbers them; on PostgreSQL the message that
commits numbers them under the feed's lock (held only while the server runs that message), so
the numbers (``cursor``) follow the order in which transactions commit — a reader that has
seen cursor *n* will never later find a new entry below it. That is what lets a consumer
resume from the last cursor it handled.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple, Protocol

__all__ = ["PREVIOUS", "ChangeRow", "FeedReads", "FeedWrites"]

#: ``ChangeRow.corrects`` before it is written: "the invoice's entry before this one" (the store
#: fills in its cursor, or ``None`` if the invoice has none).
PREVIOUS = -1


class ChangeRow(NamedTuple):
    """One row of ``changes``."""

    #: Strictly increasing in commit order (0 until written).
    cursor: int
    provider: str
    invoice_id: str
    from_state: str | None
    from_canonical: str | None
    to_state: str | None
    to_canonical: str | None
    #: The delivery (``events.seq``) that caused it; ``None`` for a repair or a migration.
    cause_seq: int | None
    cause_event_id: str | None
    #: The cursor of the entry this one corrects (what it said no longer stands), or ``None``.
    corrects: int | None
    #: ``applied`` (an event moved the invoice), ``late`` (a late event's re-fold),
    #: ``repair`` (``replay --repair``), ``rechart`` (``replay --rechart``), ``migrated`` (the
    #: state when the feed began).
    kind: str
    recorded_at: str


class FeedReads(Protocol):
    """The feed, read inside a transaction's snapshot."""

    def changes(
        self, since: int = 0, provider: str | None = None, limit: int | None = None
    ) -> list[ChangeRow]:
        """Entries after cursor ``since`` (of one provider), in cursor order."""
        ...

    def head(self) -> int:
        """The highest cursor written (0: none)."""
        ...

    def latest(self, provider: str | None = None) -> dict[tuple[str, str], ChangeRow]:
        """Each invoice's last entry, by (provider, invoice id)."""
        ...

    def last(self, provider: str, invoice_id: str) -> ChangeRow | None:
        """The invoice's last entry, or ``None``."""
        ...

    def subscriber(self, name: str) -> tuple[int, str | None] | None:
        """The cursor a subscriber last stored and the provider it follows (``None``: all),
        or ``None`` if it never stored one."""
        ...

    def subscribers(self) -> list[tuple[str, int, str, str | None]]:
        """Every stored subscriber: (name, cursor, updated at, provider), by name."""
        ...

    def pages(self, size: int = 2_000) -> Iterator[list[ChangeRow]]:
        """Every entry, in cursor order, ``size`` at a time."""
        ...


class FeedWrites(FeedReads, Protocol):
    """The feed, written inside a write transaction."""

    def append(self, rows: Sequence[ChangeRow]) -> None:
        """Entries to write, in order, when the transaction commits (their cursors then)."""
        ...

    def save_subscriber(
        self, name: str, cursor: int, now: str, provider: str | None = None
    ) -> None:
        """Store the cursor a subscriber has handled up to (of ``provider``'s entries, if
        given: kept from its first save); never lower than one stored before."""
        ...

    def copy(self, rows: Sequence[ChangeRow]) -> None:
        """Insert entries as they are, cursors included (a copy of another store's)."""
        ...
