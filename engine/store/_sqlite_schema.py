"""The SQLite file itself: where it may be, its schema, its permissions, and WAL mode.

Three tables, readable as they are in Datasette or ``sqlite-utils``:

- ``invoices``: one row per (provider, invoice id): state, canonical state, version, timestamps,
  and the fold key of the last event folded into it (to tell a late arrival in O(1)).
- ``events``: every delivery ever received, whatever its outcome, with the raw body bytes and
  the (redacted) headers. ``in_fold = 1`` marks the row that stands for an event in the invoice's
  fold; duplicates, invalid deliveries and superseded attempts have ``in_fold = 0``. A partial
  unique index on (provider, event_id) where in_fold = 1 makes double-applying impossible even
  for several processes on one file.
- ``revisions``: the audit trail of outcomes changed when a late event re-folded an invoice.
- ``charts``: every version of a chart that decided events, by fingerprint (``events.chart``),
  so a re-fold or a replay decides each event with the chart it was first decided with.

The schema version is ``PRAGMA user_version``; a file from a newer version is refused, not
misread. The column lists are the fields of the rows in :mod:`engine.store.base`, in order.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import Literal

from ..errors import StoreError
from ._feed_sql import CHANGE_COLUMNS, FEED_DDL, FEED_START, SUBSCRIBER_COLUMNS

__all__ = [
    "OUR_TABLES",
    "SCHEMA_VERSION",
    "Synchronous",
    "check_path",
    "create_private",
    "create_schema",
    "set_wal",
    "view_as_current",
]

#: 1: events, invoices, revisions. 2: events.policy, .chart and .inferred, the charts table, and
#: columns renamed to say what they hold (live -> in_fold, status -> status_snapshot, …).
#: 3: events.verified (whether the delivery's signature was checked). 4: the changes feed
#: (``changes``, ``subscribers``), begun with one entry per invoice's state at the upgrade.
SCHEMA_VERSION = 4
Synchronous = Literal["OFF", "NORMAL", "FULL", "EXTRA"]

_EVENT_COLUMNS = {
    "seq": int,
    "provider": str,
    "event_id": str,
    "in_fold": int,  # 1: this row stands for its event in the invoice's fold
    "invoice_id": str,
    "event_type": str,
    "trigger": str,
    "status_snapshot": str,  # the invoice status the provider reported with the event
    "outcome": str,
    "reason": str,
    "from_state": str,
    "to_state": str,
    "retryable": int,
    "adopted": int,
    "occurred_at": str,
    "fold_order": int,  # occurrence time in µs since the epoch; arrival number if untimed
    "lifecycle_rank": int,  # breaks ties in fold_order: earlier in the lifecycle first
    "received_at": str,
    "revisions": int,
    "headers": str,
    "body": bytes,
    "policy": str,  # the on_unknown policy the event was decided under
    "chart": str,  # the fingerprint of the chart it was decided with (see charts)
    "inferred": str,  # JSON list of steps inferred to catch up with the status snapshot
    "verified": int,  # 1: signature verified; 0: accepted unsigned; NULL: not checked
}

_CHART_COLUMNS = {
    "fingerprint": str,
    "provider": str,
    "spec": str,  # the chart as JSON: enough to decide again exactly as it did
    "recorded_at": str,
}

_INVOICE_COLUMNS = {
    "provider": str,
    "invoice_id": str,
    "state": str,
    "canonical": str,
    "version": int,
    "first_seen_at": str,  # when this engine first recorded the invoice (not the provider's)
    "updated_at": str,
    "last_fold_order": int,  # the fold key of the last event folded in
    "last_lifecycle_rank": int,
    "last_event_id": str,
}

_REVISION_COLUMNS = {
    "id": int,
    "seq": int,  # the event whose outcome changed
    "cause_seq": int,  # the late event whose arrival changed it
    "revised_at": str,
    "old_outcome": str,
    "new_outcome": str,
    "old_from": str,
    "old_to": str,
    "new_from": str,
    "new_to": str,
    "old_reason": str,
    "new_reason": str,
}


def check_path(name: str, readonly: bool) -> None:
    """Refuse, by name, a path that can't be a database file, before anything is created."""
    if name.strip() == "":
        raise StoreError("no database named: give a file path, or ':memory:'")
    if name.startswith("file:"):  # SQLite would read it as a URI (mode=memory, another path…)
        raise StoreError(f"{name!r}: SQLite URI names are not accepted; give a plain file path")
    if "://" in name:
        scheme = name.split("://", 1)[0]
        raise StoreError(
            f"{name!r}: no store for {scheme!r} URLs; give a SQLite file path, ':memory:', "
            "or a postgresql:// URL"
        )
    path = Path(name)
    if path.is_dir():
        raise StoreError(f"{str(path)!r} is a folder, not a database file")
    if readonly and not path.exists():
        raise StoreError(f"no database at {str(path)!r}")
    folder = path.parent
    if not folder.is_dir():
        what = "is a file" if folder.exists() else "does not exist"
        raise StoreError(f"can't create {str(path)!r}: the folder {str(folder)!r} {what}")


def create_private(path: Path) -> None:
    """Create the database file readable by its owner only: raw bodies carry personal data."""
    if not path.exists():
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)


def set_wal(conn: sqlite3.Connection) -> None:
    """Switch to WAL. Two processes opening one new file can both try at once, and SQLite
    reports "locked" for the loser without calling the busy handler: retry with back-off."""
    for attempt in range(50):
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == 49:
                raise
            time.sleep(min(0.005 * 2**attempt, 0.5))


def create_schema(conn: sqlite3.Connection) -> None:
    """Create the tables and indexes, or upgrade an older file's, in the caller's transaction.

    sqlite-utils writes the CREATE TABLE statements (``create_table_sql``); they are run
    here rather than through ``Table.create``, which commits on its own, so that two
    processes opening one new file at once take turns instead of racing (the caller holds an
    IMMEDIATE transaction, and the version is read again under it).
    """
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version >= SCHEMA_VERSION:
        return  # another process created or upgraded it while we waited for the lock
    # Imported here, not at the top: sqlite-utils (and pluggy, dateutil) cost the CLI
    # ~40-80 ms of start-up, and commands that only read charts never open a store.
    import sqlite_utils

    db = sqlite_utils.Database(conn)
    statements: list[str] = []
    if version == 0:
        statements += [
            db.create_table_sql(
                "events",
                _EVENT_COLUMNS,
                pk="seq",
                not_null={"provider", "in_fold", "outcome", "received_at", "revisions"},
                defaults={"in_fold": 0, "revisions": 0, "retryable": 0, "adopted": 0},
                if_not_exists=True,
            ),
            db.create_table_sql(
                "invoices",
                _INVOICE_COLUMNS,
                pk=("provider", "invoice_id"),
                not_null={"version"},  # state is NULL while only rejected events are known
                if_not_exists=True,
            ),
            db.create_table_sql("revisions", _REVISION_COLUMNS, pk="id", if_not_exists=True),
            # sqlite-utils' create_index has no WHERE clause: the partial indexes are plain SQL.
            "CREATE UNIQUE INDEX IF NOT EXISTS events_live_event"
            " ON events(provider, event_id) WHERE in_fold = 1",
            "CREATE INDEX IF NOT EXISTS events_invoice_fold ON events(provider, invoice_id,"
            " fold_order, lifecycle_rank, event_id) WHERE in_fold = 1",
            "CREATE INDEX IF NOT EXISTS events_invoice_seq ON events(provider, invoice_id, seq)",
            "CREATE INDEX IF NOT EXISTS events_event_id ON events(provider, event_id)",
            "CREATE INDEX IF NOT EXISTS revisions_seq ON revisions(seq)",
            "CREATE INDEX IF NOT EXISTS revisions_cause ON revisions(cause_seq)",
        ]
    elif version == 1:  # rows written before policy and chart were recorded keep them NULL
        statements += [
            "ALTER TABLE events ADD COLUMN policy TEXT",
            "ALTER TABLE events ADD COLUMN chart TEXT",
            "ALTER TABLE events ADD COLUMN inferred TEXT",
            # names that say what they hold (SQLite rewrites the indexes that use them)
            "ALTER TABLE events RENAME COLUMN live TO in_fold",
            "ALTER TABLE events RENAME COLUMN status TO status_snapshot",
            "ALTER TABLE events RENAME COLUMN fold_time TO fold_order",
            "ALTER TABLE events RENAME COLUMN fold_rank TO lifecycle_rank",
            "ALTER TABLE invoices RENAME COLUMN created_at TO first_seen_at",
            "ALTER TABLE invoices RENAME COLUMN last_time TO last_fold_order",
            "ALTER TABLE invoices RENAME COLUMN last_rank TO last_lifecycle_rank",
            "CREATE INDEX IF NOT EXISTS revisions_cause ON revisions(cause_seq)",
        ]
    if version in (1, 2):  # rows written before signatures were checked: NULL, not checked
        statements.append("ALTER TABLE events ADD COLUMN verified INTEGER")
    statements.append(
        db.create_table_sql("charts", _CHART_COLUMNS, pk="fingerprint", if_not_exists=True)
    )
    # the cursor as the rowid itself (INTEGER PRIMARY KEY): no second index beside the table
    statements += [sql.replace("BIGINT PRIMARY KEY", "INTEGER PRIMARY KEY") for sql in FEED_DDL]
    for sql in statements:
        conn.execute(sql)
    if version > 0:
        conn.execute(FEED_START)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def view_as_current(conn: sqlite3.Connection, version: int) -> None:
    """Show an older file's tables under today's names, without writing to it.

    Read-only connections may still create TEMP objects (they live outside the file): views
    named like the tables shadow them, so every query reads an older file as if it were
    current. Columns an older version did not record read as NULL.
    """
    if version not in (1, 2, 3):
        raise ValueError(f"no view for schema version {version}")
    renamed: dict[str, str] = {}
    added = {"verified"} if version < 3 else set()
    if version == 1:
        renamed = {"in_fold": "live", "status_snapshot": "status", "fold_order": "fold_time",
                   "lifecycle_rank": "fold_rank", "first_seen_at": "created_at",
                   "last_fold_order": "last_time", "last_lifecycle_rank": "last_rank"}  # fmt: skip
        added |= {"policy", "chart", "inferred"}
        conn.execute(
            "CREATE TEMP TABLE charts"
            f" ({', '.join(f'{c} TEXT' for c in _CHART_COLUMNS)}, PRIMARY KEY (fingerprint))"
        )
    if added:
        for table, columns in (("events", _EVENT_COLUMNS), ("invoices", _INVOICE_COLUMNS)):
            select = ", ".join(
                f"NULL AS {c}" if c in added else f"{renamed.get(c, c)} AS {c}" for c in columns
            )
            conn.execute(f"CREATE TEMP VIEW {table} AS SELECT {select} FROM main.{table}")
    for table, feed in (("changes", CHANGE_COLUMNS), ("subscribers", SUBSCRIBER_COLUMNS)):
        conn.execute(
            f"CREATE TEMP TABLE {table} ({', '.join(f'{c} {k}' for c, k in feed.items())})"
        )
    conn.execute(FEED_START)  # the feed as the upgrade will begin it


#: The tables a file of ours has, at any schema version.
OUR_TABLES = frozenset({"events", "invoices", "revisions"})
