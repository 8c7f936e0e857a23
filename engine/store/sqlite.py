"""The SQLite store: an embedded file (WAL) or ``:memory:``.

This module holds the connection and its transactions; the records' SQL is in
:mod:`engine.store._sqlite_tx`, the tables in :mod:`engine.store._sqlite_schema`. The runtime
reaches them only through the :class:`~engine.store.base.Store` interface.

Writers take the lock up front (``BEGIN IMMEDIATE``) and wait up to ``busy_timeout`` for it,
so concurrent processes serialize instead of failing with "database is locked". Readers open a
deferred transaction: in WAL mode every read in it sees one snapshot of committed data.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from ..errors import StoreError
from ._sqlite_schema import (
    OUR_TABLES,
    SCHEMA_VERSION,
    Synchronous,
    check_path,
    create_private,
    create_schema,
    set_wal,
    view_as_current,
)
from ._sqlite_tx import SqliteTx
from .base import T, WriteTx

__all__ = ["SCHEMA_VERSION", "SqliteStore", "Synchronous"]


class SqliteStore:
    """One SQLite database file (or ``:memory:``) with the schema in place.

    Args:
        path: the file, created owner-only (raw bodies carry personal data) in a folder that
            must exist; or ``":memory:"``.
        synchronous: SQLite's durability setting for commits.
        busy_timeout: seconds a writer waits for another process's lock.
        readonly: open an existing database without writing anything to it: no schema created
            or upgraded, no switch to WAL; a write raises :class:`~engine.StoreError`.

    Raises:
        StoreError: the path can't hold a database, or the file is not an invoice-engine
            database (it is then left exactly as it was), or is from a newer version.
    """

    def __init__(
        self,
        path: str | Path = "invoices.db",
        *,
        synchronous: Synchronous = "NORMAL",
        busy_timeout: float = 60.0,
        readonly: bool = False,
    ) -> None:
        self.path = str(path)
        self.readonly = readonly
        if synchronous not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise StoreError(f"synchronous={synchronous!r} is not one of OFF, NORMAL, FULL, EXTRA")
        memory = self.path == ":memory:"
        if not memory:
            check_path(self.path, readonly)
        try:
            if readonly and not memory:
                uri = Path(self.path).resolve().as_uri() + "?mode=ro"
                conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=busy_timeout,
                                       check_same_thread=False)  # fmt: skip
            else:
                if not memory:
                    create_private(Path(self.path))
                conn = sqlite3.connect(
                    self.path, isolation_level=None, timeout=busy_timeout, check_same_thread=False
                )
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            version = self._check_ours(conn)
            if not readonly:
                if not memory:
                    set_wal(conn)
                conn.execute(f"PRAGMA synchronous = {synchronous}")
        except (sqlite3.DatabaseError, OSError) as exc:
            raise StoreError(f"can't open {self.path!r} as a SQLite database: {exc}") from None
        self._conn = conn
        self._opened = None if memory else self._file()  # the file this connection has open
        self._closed = False
        self._lock = threading.RLock()
        self._tx = SqliteTx(conn)
        if version < SCHEMA_VERSION:
            if readonly:  # read an older file as it is, through views under today's names
                with self.read():
                    view_as_current(conn, version)
            else:
                with self.write():
                    create_schema(conn)

    def _check_ours(self, conn: sqlite3.Connection) -> int:
        """The file's schema version, once it is known to be ours (nothing is written)."""
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        tables = {
            r[0]
            for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if not r[0].startswith("sqlite_")
        }
        name = os.path.basename(self.path)
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path!r} has schema version {version}; this invoice-engine knows up to "
                f"{SCHEMA_VERSION}. Upgrade invoice-engine."
            )
        if (version == 0 and tables) or (version > 0 and not tables >= OUR_TABLES):
            shown = ", ".join(sorted(tables)[:8]) or "none"
            raise StoreError(
                f"{name!r} is not an invoice-engine database (its tables: {shown}); "
                "name a new file or one invoice-engine created"
            )
        if version == 0 and self.readonly:
            raise StoreError(f"{name!r} is not an invoice-engine database yet (it is empty)")
        return version

    @contextmanager
    def write(self) -> Iterator[SqliteTx]:
        """One write transaction, taken up front so concurrent writers wait instead of fail.

        ``BEGIN IMMEDIATE`` waits up to the busy timeout; if SQLite still reports the database
        busy (a checkpoint in another process), it is retried with a short back-off. Threads
        sharing one store take turns through a lock (one connection, one transaction).

        Raises:
            StoreError: the store is read-only, or SQLite failed (the transaction is rolled
                back: nothing of it is written).
        """
        if self.readonly:
            raise StoreError(f"{self.path!r} was opened read-only")
        self._check_open()
        with self._lock:
            yield from self._transaction("BEGIN IMMEDIATE")

    def transact(self, work: Callable[[WriteTx], T]) -> T:
        """Run ``work`` in one write transaction (see :meth:`write`). SQLite has one writer at
        a time and waits for its turn up front, so nothing here calls for running it again.
        (What :meth:`write` does, without a generator's context manager around it: this runs
        once per ``Engine.apply``.)"""
        if self.readonly:
            raise StoreError(f"{self.path!r} was opened read-only")
        self._check_open()
        with self._lock:
            self._begin("BEGIN IMMEDIATE")
            try:
                result = work(self._tx)
                self._tx.feed.finish()  # the transaction's changes, numbered last
            except BaseException as exc:
                self._rollback(exc)
                raise
            self._commit()
            return result

    @property
    def name(self) -> str:
        """The file's path (or ``:memory:``)."""
        return self.path

    def identity(self) -> tuple[object, ...]:
        """The file itself (device and inode), however its path is spelled or linked to;
        ``:memory:`` is a database of its own."""
        if self.path == ":memory:":
            return ("memory", id(self))
        st = os.stat(self.path)
        return ("sqlite", st.st_dev, st.st_ino)

    @contextmanager
    def read(self) -> Iterator[SqliteTx]:
        """A read transaction: in WAL mode, one snapshot of committed data for all its reads.

        Inside another transaction of the same thread, it reads in that one.
        """
        self._check_open()
        with self._lock:
            if self._conn.in_transaction:
                yield self._tx
            else:
                yield from self._transaction("BEGIN")

    def _transaction(self, begin: str) -> Iterator[SqliteTx]:
        self._begin(begin)
        try:
            yield self._tx
            self._tx.feed.finish()  # the transaction's changes, numbered last
        except BaseException as exc:
            self._rollback(exc)
            raise
        self._commit()

    def _begin(self, begin: str) -> None:
        for attempt in range(50):
            try:
                self._conn.execute(begin)
                self._tx.begun()
                return
            except sqlite3.OperationalError as exc:
                if ("locked" not in str(exc) and "busy" not in str(exc)) or attempt == 49:
                    raise StoreError(f"can't use {self.path!r}: {exc}") from None
                time.sleep(min(0.005 * 2**attempt, 0.5))

    def _rollback(self, exc: BaseException) -> None:
        """Roll back after ``exc``; raise it as a StoreError if it is SQLite's (the caller
        raises anything else as it is)."""
        if self._conn.in_transaction:  # SQLite may have rolled back already
            self._conn.execute("ROLLBACK")
        if isinstance(exc, sqlite3.Error):
            raise StoreError(f"{self.path!r}: {exc}") from exc
        if isinstance(exc, UnicodeEncodeError):  # a lone surrogate in a name asked for
            raise StoreError(f"{exc.object[:60]!r} is not valid Unicode text") from None

    def _commit(self) -> None:
        try:
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise StoreError(f"can't commit to {self.path!r}: {exc}") from exc

    def explain_fold(self) -> list[str]:
        """SQLite's query plan for reading one invoice's fold (it must search an index)."""
        with self.read() as tx:
            return tx.explain_fold()

    def wait_for_changes(
        self, after: int, *, timeout: float, stop: threading.Event | None = None
    ) -> None:
        """Poll: the file's size and time (and its WAL's) every 50 ms — a ``stat``, no query
        — and the feed's head when they moved, or a second has passed."""
        stop = stop or threading.Event()
        deadline = time.monotonic() + timeout
        stamp: tuple[int, ...] | None = None
        looked = 0.0
        while True:
            if self.path != ":memory:" and self._file() != self._opened:
                raise StoreError(
                    f"{self.path!r} was deleted or replaced by another file while followed: "
                    "start again to follow the new one"
                )
            now = self._stamp()
            # a commit can land without moving the stamp (a WAL restarted at the same size,
            # a coarse clock): the head is read at least every second too
            if now != stamp or not now or time.monotonic() - looked >= 1.0:
                stamp, looked = now, time.monotonic()
                with self.read() as tx:
                    if tx.feed.head() > after:
                        return
            if stop.wait(min(0.05, max(0.0, deadline - time.monotonic()))):
                return
            if time.monotonic() >= deadline:
                return

    def _file(self) -> tuple[object, ...] | None:
        """The file at the path now (device and inode), ``None`` if there is none."""
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return ("sqlite", st.st_dev, st.st_ino)

    def _stamp(self) -> tuple[int, ...]:
        if self.path == ":memory:":
            return ()
        stamp: list[int] = []
        for path in (self.path, self.path + "-wal"):
            with suppress(OSError):
                st = os.stat(path)
                stamp += [st.st_mtime_ns, st.st_size]
        return tuple(stamp)

    def close(self) -> None:
        """Close the connection (after any transaction another thread has open)."""
        with self._lock:
            self._closed = True
            self._conn.close()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"{self.path!r} is closed; open a new Engine to use it")
