"""The feed's SQL, one text for both stores (they differ only in how a parameter is marked).

See :mod:`engine.store.feed`. ``Feed`` works on a DB-API connection whose ``execute`` returns a
cursor (sqlite3's and psycopg's both do); the store calls :meth:`Feed.finish` just before its
COMMIT, with ``before_write`` run first (PostgreSQL takes the feed's lock there).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from .feed import PREVIOUS, ChangeRow

__all__ = [
    "CHANGE_COLUMNS", "FEED_DDL", "FEED_START", "SUBSCRIBER_COLUMNS", "Feed"
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
    "SELECT NULL::text AS name, 0::bigint AS cursor, NULL::text AS updated_at WHERE false"
)


class Feed:
    """The feed's reads and writes on one transaction's connection."""

    def __init__(
        self,
        conn: Any,
        mark: str,
        before_write: Callable[[], None] = lambda: None,
        hold: Callable[[], None] = lambda: None,
        *,
        legacy: bool = False,
    ) -> None:
        self._conn = conn
        self._legacy = legacy
        self._mark = mark
        self._before_write = before_write  # before numbering entries (a lock, on PostgreSQL)
        self._hold = hold  # before any other write (the store's shared hold, on PostgreSQL)
        self._pending: list[ChangeRow] = []

    def _sql(self, text: str) -> str:
        if self._legacy:  # reads only: a store from before the feed
            for table, rows in (("changes", _LEGACY_CHANGES), ("subscribers", _LEGACY_SUBS)):
                text = text.replace(f" FROM {table}", f" FROM ({rows}) AS {table}")
        return text.replace("%s", self._mark)

    # ------------------------------------------------------------------- reads

    def _written(self) -> None:
        """A transaction reading the feed after appending to it (a repair checking itself)
        reads its own entries: they are written now, not at the commit."""
        if self._pending:
            self.finish()

    def changes(
        self, since: int = 0, provider: str | None = None, limit: int | None = None
    ) -> list[ChangeRow]:
        self._written()
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
        self._written()
        where, args = ("WHERE provider = %s", [provider]) if provider is not None else ("", [])
        sql = (
            f"SELECT {_NAMES} FROM changes WHERE cursor IN"
            f" (SELECT MAX(cursor) FROM changes {where} GROUP BY provider, invoice_id)"
        )
        rows = self._conn.execute(self._sql(sql), args).fetchall()
        return {(r[1], r[2]): ChangeRow._make(r) for r in rows}

    def last(self, provider: str, invoice_id: str) -> ChangeRow | None:
        self._written()
        sql = self._sql(
            f"SELECT {_NAMES} FROM changes WHERE provider = %s AND invoice_id = %s"
            " ORDER BY cursor DESC LIMIT 1"
        )
        row = self._conn.execute(sql, [provider, invoice_id]).fetchone()
        return None if row is None else ChangeRow._make(row)

    def subscriber(self, name: str) -> int | None:
        sql = self._sql("SELECT cursor FROM subscribers WHERE name = %s")
        row = self._conn.execute(sql, [name]).fetchone()
        return None if row is None else int(row[0])

    def subscribers(self) -> list[tuple[str, int, str]]:
        sql = self._sql("SELECT name, cursor, updated_at FROM subscribers ORDER BY name")
        rows = self._conn.execute(sql)
        return [(n, int(c), u) for n, c, u in rows.fetchall()]

    def pages(self, size: int = 2_000) -> Iterator[list[ChangeRow]]:
        since = 0
        while page := self.changes(since, None, size):
            yield page
            since = page[-1].cursor

    # ------------------------------------------------------------------ writes

    def append(self, rows: Sequence[ChangeRow]) -> None:
        self._pending += rows

    def save_subscriber(self, name: str, cursor: int, now: str) -> None:
        sql = (
            "INSERT INTO subscribers (name, cursor, updated_at) VALUES (%s, %s, %s)"
            " ON CONFLICT (name) DO UPDATE SET cursor = excluded.cursor,"
            " updated_at = excluded.updated_at"
        )
        self._hold()
        self._conn.execute(self._sql(sql), [name, cursor, now])

    def copy(self, rows: Sequence[ChangeRow]) -> None:
        self._hold()
        marks = ", ".join([self._mark] * len(ChangeRow._fields))
        sql = f"INSERT INTO changes ({_NAMES}) VALUES ({marks})"
        with self._cursor() as cur:
            cur.executemany(sql, rows)

    def _cursor(self) -> Any:
        cur = self._conn.cursor()
        return cur if hasattr(cur, "__enter__") else _Closing(cur)

    def finish(self) -> int | None:
        """Write the held entries, numbered after every entry before them; the highest cursor
        written, or ``None`` when there were none. Run just before COMMIT."""
        if not self._pending:
            return None
        self._before_write()
        cursor = self.head()
        last: dict[tuple[str, str], int] = {}
        rows: list[ChangeRow] = []
        for row in self._pending:
            cursor += 1
            key = (row.provider, row.invoice_id)
            corrects = row.corrects
            if corrects == PREVIOUS:
                corrects = last.get(key) if key in last else self._last_of(*key)
            last[key] = cursor
            rows.append(row._replace(cursor=cursor, corrects=corrects))
        self._pending.clear()
        self.copy(rows)
        return cursor

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
