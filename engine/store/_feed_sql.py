"""The feed's SQL, one text for both stores (they differ only in how a parameter is marked).

See :mod:`engine.store.feed`. ``Feed`` works on a DB-API connection whose ``execute`` returns a
cursor (sqlite3's and psycopg's both do); the store calls :meth:`Feed.finish` just before its
COMMIT. SQLite numbers entries there (its one writer); PostgreSQL writes them with provisional
numbers there and numbers them in the COMMIT's own message (``NUMBER_AT_COMMIT``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from .feed import PREVIOUS, ChangeRow

__all__ = [
    "CHANGE_COLUMNS", "FEED_DDL", "FEED_START", "NUMBER_AT_COMMIT", "SUBSCRIBER_COLUMNS", "Feed"
]  # fmt: skip

#: Column types (the first word: PostgreSQL's and SQLite's alike), in ``ChangeRow`` order.
CHANGE_COLUMNS = {
    "cursor": "BIGINT PRIMARY KEY",
    "provider": "TEXT NOT NULL",
    "invoice_id": "TEXT NOT NULL",
    "from_state": "TEXT",
    "from_canonical": "TEXT",
    "to_state": "TEXT",
    "to_canonical": "TEXT",
    "cause_seq": "BIGINT",
    "cause_event_id": "TEXT",
    "corrects": "BIGINT",
    "kind": "TEXT NOT NULL",
    "recorded_at": "TEXT NOT NULL",
}
SUBSCRIBER_COLUMNS = {
    "name": "TEXT PRIMARY KEY",
    "cursor": "BIGINT NOT NULL",
    "updated_at": "TEXT NOT NULL",
    "provider": "TEXT",  # the one provider it follows (NULL: every provider)
}


def _table(name: str, columns: dict[str, str]) -> str:
    return f"CREATE TABLE {name} ({', '.join(f'{c} {k}' for c, k in columns.items())})"


#: The tables and index, for both stores' schema creation.
FEED_DDL = [
    _table("changes", CHANGE_COLUMNS),
    _table("subscribers", SUBSCRIBER_COLUMNS),
    "CREATE INDEX changes_invoice ON changes (provider, invoice_id, cursor)",
]
#: One entry per invoice with a state, when a store made before the feed first gets it (at
#: the time the invoice's row was last written).
FEED_START = (
    "INSERT INTO changes"
    " SELECT ROW_NUMBER() OVER (ORDER BY provider, invoice_id), provider, invoice_id, NULL, NULL,"
    " state, canonical, NULL, NULL, NULL, 'migrated', updated_at"
    " FROM invoices WHERE state IS NOT NULL"
)

_NAMES = ", ".join(ChangeRow._fields)
_INSERT = {
    mark: f"INSERT INTO changes ({_NAMES}) VALUES ({', '.join([mark] * len(ChangeRow._fields))})"
    for mark in ("?", "%s")
}
_new = tuple.__new__
_PER_TX = 1 << 20  # provisional numbers: -(transaction id << 20 | n)
#: PostgreSQL's COMMIT for a transaction that wrote provisional entries, in one message (no
#: parameters, so several statements): the feed's lock, the entries numbered after the head
#: in the order they were written (a statement of its own: its snapshot comes after the lock;
#: only this transaction's range of provisional numbers is read, not the dead index entries
#: every earlier transaction's provisional numbers leave until vacuum),
#: corrections among them pointed at the new numbers, and the commit, which lets go of the
#: lock — so the numbers follow the order of commits, and the lock is never held while this
#: process is paused.
NUMBER_AT_COMMIT = (
    "SELECT pg_advisory_xact_lock(hashtextextended('invoice-engine feed ' || current_schema(),"
    " 0));"
    " WITH p AS (SELECT c.cursor AS tmp, h.head + ROW_NUMBER() OVER (ORDER BY c.cursor DESC)"
    " AS final FROM changes c,"
    " (SELECT COALESCE(MAX(cursor), 0) AS head FROM changes WHERE cursor > 0) h,"
    " (SELECT -(pg_current_xact_id()::text::bigint * 1048576) AS base) x"
    " WHERE c.cursor BETWEEN x.base - 1048575 AND x.base - 1)"
    " UPDATE changes c SET cursor = p.final,"
    " corrects = COALESCE((SELECT q.final FROM p q WHERE q.tmp = c.corrects), c.corrects)"
    " FROM p WHERE c.cursor = p.tmp;"
    " COMMIT"
)
#: A PostgreSQL store from before the feed, opened read-only (so not upgraded): the feed as the
#: upgrade will begin it, and no subscribers.
_LEGACY_CHANGES = (
    "SELECT ROW_NUMBER() OVER (ORDER BY provider, invoice_id) AS cursor, provider, invoice_id,"
    " NULL::text AS from_state, NULL::text AS from_canonical, state AS to_state,"
    " canonical AS to_canonical, NULL::bigint AS cause_seq, NULL::text AS cause_event_id,"
    " NULL::bigint AS corrects, 'migrated'::text AS kind, updated_at AS recorded_at"
    " FROM invoices WHERE state IS NOT NULL"
)
_LEGACY_SUBS = (
    "SELECT NULL::text AS name, 0::bigint AS cursor, NULL::text AS updated_at,"
    " NULL::text AS provider WHERE false"
)


class Feed:
    """The feed's reads and writes on one transaction's connection."""

    def __init__(
        self,
        conn: Any,
        mark: str,
        before_write: Callable[[], int | None] = lambda: None,
        hold: Callable[[], None] = lambda: None,
        *,
        legacy: bool = False,
        provisional: Callable[[], int] | None = None,
    ) -> None:
        self._conn = conn
        self._legacy = legacy
        self._provisional = provisional  # this transaction's id, for provisional numbers
        #: Entries were written with provisional numbers: commit with ``NUMBER_AT_COMMIT``.
        self.deferred = False
        self._mark = mark
        # before numbering entries (PostgreSQL: a lock); may return the head, read after it
        self._before_write = before_write
        self._hold = hold  # before any other write (the store's shared hold, on PostgreSQL)
        self._pending: list[ChangeRow] = []

    def _sql(self, text: str) -> str:
        if self._legacy:  # reads only: a store from before the feed
            for table, rows in (("changes", _LEGACY_CHANGES), ("subscribers", _LEGACY_SUBS)):
                text = text.replace(f" FROM {table}", f" FROM ({rows}) AS {table}")
        return text.replace("%s", self._mark)

    # ------------------------------------------------------------------- reads

    def changes(
        self, since: int = 0, provider: str | None = None, limit: int | None = None
    ) -> list[ChangeRow]:
        args: list[object] = [since]
        sql = f"SELECT {_NAMES} FROM changes WHERE cursor > %s"
        if provider is not None:
            sql, args = sql + " AND provider = %s", [*args, provider]
        sql += " ORDER BY cursor"
        if limit is not None:
            sql, args = sql + " LIMIT %s", [*args, limit]
        rows = self._conn.execute(self._sql(sql), args).fetchall()
        return [ChangeRow._make(r) for r in rows]

    def head(self) -> int:
        row = self._conn.execute(self._sql("SELECT MAX(cursor) FROM changes")).fetchone()
        return int(row[0] or 0)

    def latest(self, provider: str | None = None) -> dict[tuple[str, str], ChangeRow]:
        where, args = ("WHERE provider = %s", [provider]) if provider is not None else ("", [])
        sql = (
            f"SELECT {_NAMES} FROM changes WHERE cursor IN"
            f" (SELECT MAX(cursor) FROM changes {where} GROUP BY provider, invoice_id)"
        )
        rows = self._conn.execute(self._sql(sql), args).fetchall()
        found = {(r[1], r[2]): ChangeRow._make(r) for r in rows}
        for row in self._pending:  # held by this transaction (a repair checking itself)
            if provider is None or row.provider == provider:
                found[row.provider, row.invoice_id] = row
        return found

    def last(self, provider: str, invoice_id: str) -> ChangeRow | None:
        mine = [r for r in self._pending if (r.provider, r.invoice_id) == (provider, invoice_id)]
        if mine:  # held, not written yet (nor numbered): what it says is all that's asked
            return mine[-1]
        sql = self._sql(
            f"SELECT {_NAMES} FROM changes WHERE provider = %s AND invoice_id = %s"
            " ORDER BY cursor DESC LIMIT 1"
        )
        row = self._conn.execute(sql, [provider, invoice_id]).fetchone()
        return None if row is None else ChangeRow._make(row)

    def subscriber(self, name: str) -> tuple[int, str | None] | None:
        sql = self._sql("SELECT cursor, provider FROM subscribers WHERE name = %s")
        row = self._conn.execute(sql, [name]).fetchone()
        return None if row is None else (int(row[0]), row[1])

    def subscribers(self) -> list[tuple[str, int, str, str | None]]:
        sql = self._sql("SELECT name, cursor, updated_at, provider FROM subscribers ORDER BY name")
        rows = self._conn.execute(sql)
        return [(n, int(c), u, p) for n, c, u, p in rows.fetchall()]

    def pages(self, size: int = 2_000) -> Iterator[list[ChangeRow]]:
        since = 0
        while page := self.changes(since, None, size):
            yield page
            since = page[-1].cursor

    # ------------------------------------------------------------------ writes

    def append(self, rows: Sequence[ChangeRow]) -> None:
        self._pending += rows

    def save_subscriber(
        self, name: str, cursor: int, now: str, provider: str | None = None
    ) -> None:
        # never back: two processes under one name (a mistake) can't make either repeat more
        sql = (
            "INSERT INTO subscribers (name, cursor, updated_at, provider) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (name) DO UPDATE SET cursor = excluded.cursor,"
            " updated_at = excluded.updated_at WHERE subscribers.cursor < excluded.cursor"
        )
        self._hold()
        self._conn.execute(self._sql(sql), [name, cursor, now, provider])

    def copy(self, rows: Sequence[ChangeRow]) -> None:
        self._hold()
        sql = _INSERT[self._mark]
        with self._cursor() as cur:
            cur.executemany(sql, rows)

    def _cursor(self) -> Any:
        cur = self._conn.cursor()
        return cur if hasattr(cur, "__enter__") else _Closing(cur)

    @property
    def held(self) -> bool:
        """Whether entries wait to be written at the commit."""
        return bool(self._pending)

    def finish(self) -> int | None:
        """Write the held entries, numbered after every entry before them; the highest cursor
        written, or ``None`` when there were none. Run just before COMMIT.

        With ``provisional`` (PostgreSQL), the entries are written with negative numbers of
        this transaction's own (from its id: no other transaction can hold them) and
        numbered by ``NUMBER_AT_COMMIT``, sent with the COMMIT in one message: the feed's
        lock is then held only while the server runs that message, never across a pause of
        this process. Corrections' earlier entries are looked up before (the invoices' locks
        keep them as they are).
        """
        if not self._pending:
            return None
        earlier: dict[tuple[str, str], int | None] = {}
        for row in self._pending:
            key = (row.provider, row.invoice_id)
            if key not in earlier:
                earlier[key] = self._last_of(*key) if row.corrects == PREVIOUS else None
        if self._provisional is not None and len(self._pending) < _PER_TX:
            cursor, step = -(self._provisional() << 20), -1
        else:
            head = self._before_write()
            cursor, step = (self.head() if head is None else head), 1
        last: dict[tuple[str, str], int | None] = dict(earlier)
        rows: list[ChangeRow] = []
        for row in self._pending:
            cursor += step
            key = (row.provider, row.invoice_id)
            corrects = last[key] if row.corrects == PREVIOUS else row.corrects
            last[key] = cursor
            # row._replace(cursor=..., corrects=...), without its keywords: once per change
            rows.append(_new(ChangeRow, (cursor, *row[1:9], corrects, *row[10:])))
        self._pending.clear()
        self.copy(rows)
        self.deferred = step < 0
        return None if self.deferred else cursor

    def _last_of(self, provider: str, invoice_id: str) -> int | None:
        sql = self._sql("SELECT MAX(cursor) FROM changes WHERE provider = %s AND invoice_id = %s")
        row = self._conn.execute(sql, [provider, invoice_id]).fetchone()
        return None if row is None or row[0] is None else int(row[0])


class _Closing:
    """sqlite3's cursor as a context manager (psycopg's is one already)."""

    def __init__(self, cur: Any) -> None:
        self._cur = cur

    def __enter__(self) -> Any:
        return self._cur

    def __exit__(self, *exc: object) -> None:
        self._cur.close()
