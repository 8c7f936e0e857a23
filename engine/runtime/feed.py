"""Following the changes feed: reading entries, waiting for new ones, and subscribers.

The feed itself is written by the write path, in the transaction of each change (see
:mod:`engine.store.feed`); this module only reads it — so a slow or failing consumer never holds
up a delivery — and stores each subscriber's cursor after its handler has returned.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, TypeVar

from ..errors import EngineError, StoreError
from ..models import Change
from ..store.feed import ChangeRow
from ._clock import utc_text
from ._construct import construct

if TYPE_CHECKING:
    from .engine import Engine

__all__ = ["Subscriber", "follow", "to_change"]

_log = logging.getLogger("engine.feed")

#: The most entries one read of the feed returns (a page; the next starts after it).
PAGE = 500
#: A subscriber stores its cursor after this many entries, or this many seconds, at most.
SAVE_EVERY = 100
SAVE_WITHIN = 1.0
R = TypeVar("R")


def to_change(row: ChangeRow) -> Change:
    """A feed row as the public record."""
    return construct(
        Change, cursor=row.cursor, provider=row.provider, invoice_id=row.invoice_id,
        from_state=row.from_state, from_canonical=row.from_canonical, to_state=row.to_state,
        to_canonical=row.to_canonical, kind=row.kind, cause_seq=row.cause_seq,
        cause_event_id=row.cause_event_id, corrects=row.corrects,
        recorded_at=datetime.fromisoformat(row.recorded_at),
    )  # fmt: skip


def follow(
    engine: Engine,
    since: int = 0,
    *,
    provider: str | None = None,
    stop: threading.Event | None = None,
    wait: float = 5.0,
) -> Iterator[Change]:
    """Every entry after cursor ``since``, then each new one as it commits, until ``stop`` is
    set (checked at least every ``wait`` seconds) or the caller stops iterating."""
    stop = stop or threading.Event()
    if provider is not None:
        engine.chart(provider)  # UnknownProvider now
    cursor = since
    while not stop.is_set():
        page, seen = _read(engine, cursor, provider)
        yield from page
        if page:
            cursor = page[-1].cursor
        if len(page) < PAGE:
            engine.store.wait_for_changes(seen, timeout=wait, stop=stop)


def _read(engine: Engine, since: int, provider: str | None) -> tuple[list[Change], int]:
    """A page of entries after ``since``, and the cursor to wait after when it is the last
    page: the feed's head as read with it. Not the page's last cursor: with ``provider``,
    other providers' entries lie beyond it, and waiting after it would return at once, for
    ever (a reader spinning on the database)."""
    with engine.store.read() as tx:
        head = tx.feed.head()
        rows = tx.feed.changes(since, provider, PAGE)
    return [to_change(r) for r in rows], max(head, since)


class Subscriber:
    """Hands each entry of the feed to ``handler``, at least once, after it commits, and
    stores how far it got under ``name``, so a restart resumes after the last entry handled.

    ``handler`` is called with one :class:`~engine.Change` at a time, in cursor order. Once it
    has returned, the entry's cursor is stored (see :meth:`run`); when it raises, the same
    entry is tried again after a back-off (``retry_first`` seconds, doubling up to
    ``retry_max``), for ever — an entry is never skipped. A process killed before its cursor
    was stored gets those entries again: make the handler idempotent (for example, key what it
    does by ``change.cursor``). Run one process per name: a stored cursor never goes back, but
    two processes under one name both handle every entry. A name keeps the provider it was
    first run for. Entries that are corrections (``change.corrects``) take back what an
    earlier entry said: see :class:`~engine.Change`.

    Args:
        engine: the engine whose store holds the feed (a read-write one: cursors are stored).
        name: the subscriber's name: one stored cursor per name.
        handler: what to do with each entry.
        provider: only entries of this provider (the cursor still counts every entry).
        start: where a subscriber with no stored cursor begins (0: the whole feed).
        give_up_after: raise instead of trying an entry again after this many failures
            (``None``: never; a run that must end, as ``consume --once``, sets it).
    """

    def __init__(
        self,
        engine: Engine,
        name: str,
        handler: Callable[[Change], object],
        *,
        provider: str | None = None,
        start: int = 0,
        retry_first: float = 0.5,
        retry_max: float = 60.0,
        give_up_after: int | None = None,
    ) -> None:
        if not isinstance(name, str) or not name.strip() or len(name) > 200:
            raise EngineError(f"subscriber name {name!r}: give 1 to 200 characters")
        if engine.store.readonly:
            raise EngineError(f"subscriber {name!r} stores its cursor: open the engine read-write")
        if provider is not None:
            engine.chart(provider)  # UnknownProvider now, not at the first read
        self.engine = engine
        self.name = name
        self.handler = handler
        self.provider = provider
        self.start = start
        self.retry_first = retry_first
        self.retry_max = retry_max
        self.give_up_after = give_up_after

    @property
    def cursor(self) -> int:
        """The last cursor stored (``start`` if none was stored yet).

        Raises:
            EngineError: the name's stored cursor follows another provider than this one.
        """
        with self.engine.store.read() as tx:
            stored = tx.feed.subscriber(self.name)
        if stored is None:
            return self.start
        cursor, provider = stored
        if provider != self.provider:
            raise EngineError(
                f"subscriber {self.name!r} follows {_whose(provider)}, not {_whose(self.provider)}:"
                " its cursor counts only those entries; give this one another name"
            )
        return cursor

    def run(
        self, *, follow: bool = True, stop: threading.Event | None = None, wait: float = 5.0
    ) -> int:
        """Handle entries until ``stop`` is set (or, without ``follow``, until the feed's end);
        returns how many were handled.

        The cursor is stored every ``SAVE_EVERY`` entries or ``SAVE_WITHIN`` seconds, when the
        feed is caught up, and when the run ends: a crash hands again at most the entries since
        (at least once). A store that fails (a restarting server) is tried again with the same
        back-off as the handler; the run goes on.
        """
        stop = stop or threading.Event()
        handled = 0
        cursor = saved = self.cursor
        saved_at = time.monotonic()
        try:
            while not stop.is_set():
                got = self._patiently(partial(_read, self.engine, cursor, self.provider), stop)
                if got is None:
                    break
                page, seen = got
                for change in page:
                    if stop.is_set() or not self._handle(change, stop):  # stop: between entries
                        return handled
                    cursor, handled = change.cursor, handled + 1
                    if cursor - saved >= SAVE_EVERY or time.monotonic() - saved_at >= SAVE_WITHIN:
                        saved, saved_at = self._save(cursor, stop), time.monotonic()
                if len(page) < PAGE:
                    saved, saved_at = self._save(cursor, stop), time.monotonic()
                    if not follow:
                        break
                    waiting = self.engine.store.wait_for_changes
                    self._patiently(partial(waiting, seen, timeout=wait, stop=stop), stop)
        finally:
            if cursor != saved:
                self._save(cursor, threading.Event(), patient=False)
        return handled

    def _handle(self, change: Change, stop: threading.Event) -> bool:
        """Run the handler until it succeeds (True) or ``stop`` is set (False). Only
        ``Exception`` is retried: ``SystemExit``, ``KeyboardInterrupt`` and the like end the
        run (the entry comes again at the next)."""
        delay = self.retry_first
        for attempt in itertools.count(1):
            try:
                self.handler(change)
                return True
            except Exception as exc:
                if attempt == self.give_up_after:
                    raise EngineError(
                        f"subscriber {self.name!r}: entry #{change.cursor} failed "
                        f"{attempt} times (last: {type(exc).__name__}: {exc}); it and those "
                        "after it are not handled yet"
                    ) from exc
                _log.exception(
                    "subscriber %r: entry #%d failed; trying it again in %.1f s",
                    self.name, change.cursor, delay,
                )  # fmt: skip
            if stop.wait(delay):
                return False
            delay = min(delay * 2, self.retry_max)
        raise AssertionError("unreachable")

    def _patiently(self, step: Callable[[], R], stop: threading.Event) -> R | None:
        """``step()``, tried again after a failing store until it works or ``stop`` is set."""
        delay = self.retry_first
        while True:
            try:
                return step()
            except StoreError as exc:
                _log.warning("subscriber %r: %s; trying again in %.1f s", self.name, exc, delay)
            if stop.wait(delay):
                return None
            delay = min(delay * 2, self.retry_max)

    def _save(self, cursor: int, stop: threading.Event, *, patient: bool = True) -> int:
        now = utc_text(self.engine.clock())

        def save() -> None:
            self.engine.store.transact(
                lambda tx: tx.feed.save_subscriber(self.name, cursor, now, self.provider)
            )

        if patient:
            self._patiently(save, stop)
        else:
            save()
        return cursor


def _whose(provider: str | None) -> str:
    return "every provider's entries" if provider is None else f"{provider}'s entries"
