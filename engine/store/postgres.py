"""The PostgreSQL store: many writers, many machines, one database (psycopg 3 and its pool).

Selected by URL: ``Engine("postgresql://user@host:5432/db")``. The tables are SQLite's, column
for column (:mod:`engine.store._postgres_schema`); the records' SQL, and how concurrent writers
stay correct, is in :mod:`engine.store._postgres_tx`. This module holds the connections and the
transactions:

- a write runs at READ COMMITTED through :meth:`PostgresStore.transact`, which runs it again
  from the start after a serialization failure (40001), a deadlock (40P01), another writer's
  live row for the same event (see ``LiveConflict``) or a connection lost before the commit —
  a bounded number of times, with jittered back-off. A connection lost *during* the commit
  leaves it unknown whether it happened; the store then asks the server about the transaction's
  id (``pg_xact_status``), and runs it again only if it did not commit, so an event is never
  applied twice.
- a read is one REPEATABLE READ, READ ONLY transaction: one snapshot of committed data.
- ``readonly=True`` writes nothing, not even the schema.
- a writer that stops midway can't hold its invoices for ever: see ``_postgres_session``.

Connections come from a ``psycopg_pool.ConnectionPool`` (one to ``pool_size``), shared by the
threads using one store; a thread inside a write transaction reads through that transaction.
"""

from __future__ import annotations

import os
import random
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

from ..errors import StoreError
from ._postgres_schema import SCHEMA_VERSION, feed_channel, prepare_schema
from ._postgres_session import (
    Listener,
    connect_first,
    first_then_new,
    forget_in_child,
    idle_limit,
    keep_alive,
    session_defaults,
    xact_committed,
)
from ._postgres_tx import LiveConflict, PostgresTx
from ._url import redact, scrub
from .base import T, WriteTx

__all__ = ["PostgresStore"]

_EXTRA = "pip install 'invoice-engine[postgres]'"
_WRITE = "BEGIN ISOLATION LEVEL READ COMMITTED READ WRITE"
_READ = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
_jitter = random.Random()  # its own: the global generator's state is the caller's


class _Again(Exception):
    """A transient failure: the transaction was rolled back and may be run again."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


class PostgresStore:
    """A PostgreSQL database (its current schema) with the engine's tables in place.

    Args:
        url: ``postgresql://user[:password]@host[:port]/database[?options]`` (libpq's URL;
            ``postgres://`` too). The tables live in the first schema of the ``search_path``
            (``?options=-csearch_path%3Dbilling`` for another than ``public``).
        readonly: write nothing, not even the schema; a write raises.
        pool_size: the most connections the store holds at once (threads share them).
        attempts: how many times :meth:`transact` runs a write that fails transiently.
        timeout: seconds to wait for a connection (a restarting server, a full pool).

    Raises:
        StoreError: psycopg is not installed, the database can't be reached, or its schema is
            not an invoice-engine one. Messages never show the URL's password.
    """

    def __init__(
        self,
        url: str,
        *,
        readonly: bool = False,
        pool_size: int = 4,
        attempts: int = 12,
        timeout: float = 30.0,
    ) -> None:
        self.url = url
        self.readonly = readonly
        self._name = redact(url)
        self._attempts = attempts
        self._timeout = timeout
        try:
            import psycopg
            import psycopg_pool
        except ImportError:
            raise StoreError(f"{self._name}: PostgreSQL needs psycopg: {_EXTRA}") from None
        self._psycopg = psycopg
        self._pool_timeout = psycopg_pool.PoolTimeout
        kwargs: dict[str, Any] = {"autocommit": True}
        try:
            given = psycopg.conninfo.conninfo_to_dict(url)
        except psycopg.Error as exc:  # not a URL libpq can read
            raise StoreError(f"can't use {self._name}: {self._say(exc)}") from None
        kwargs.update(session_defaults(given, timeout))
        first = self._prepare(kwargs)
        self._write_begin = _WRITE + idle_limit(first, given)
        self._pool = psycopg_pool.ConnectionPool(
            url, min_size=1, max_size=max(1, pool_size), kwargs=kwargs, open=False,
            timeout=timeout, name=f"invoice-engine {self._name}", num_workers=1,
            connection_class=first_then_new(psycopg, first), configure=keep_alive(given),
        )  # fmt: skip
        try:  # the first connection handed over now, not in the pool's thread some time later
            self._pool.open(wait=True, timeout=timeout)
        except psycopg_pool.PoolTimeout:
            self._pool.close()
            first.close()
            raise StoreError(f"can't use {self._name}: no connection in {timeout:g} s") from None
        # an Engine dropped without close() still gives its connections back
        self._release = weakref.finalize(self, self._pool.close)
        self._pid = os.getpid()
        forget_in_child(self, "_release")
        self._local = threading.local()
        self._closed = False
        self._listener = Listener(
            lambda: psycopg.connect(url, **kwargs), feed_channel(self._schema),
            (psycopg.OperationalError,),
        )  # fmt: skip

    def _prepare(self, kwargs: dict[str, Any]) -> Any:
        """Connect and check (or make) the schema; the connection (the pool's first)."""

        def prepare(conn: Any) -> None:
            self._schema, version = prepare_schema(conn, self._name, readonly=self.readonly)
            self._legacy = version < SCHEMA_VERSION  # read-only, from before the feed

        try:
            return connect_first(self._psycopg, self.url, kwargs, self._timeout, prepare)
        except self._psycopg.Error as exc:
            raise StoreError(f"can't use {self._name}: {self._say(exc)}") from None

    @property
    def name(self) -> str:
        """The URL without its password."""
        return self._name

    def identity(self) -> tuple[object, ...]:
        """Where the tables are, as the server says (cluster, its start, database, schema)."""
        sql = "SELECT system_identifier, pg_postmaster_start_time(), current_database(), "
        with self._pool.connection() as conn:  # the cluster's id: any role may read it
            row = conn.execute(sql + "current_schema() FROM pg_control_system()").fetchone()
        return ("postgresql", *row)

    # ------------------------------------------------------------- transactions

    def transact(self, work: Callable[[WriteTx], T]) -> T:
        """Run ``work`` in a write transaction, again from the start after a transient failure
        (see the module docstring); at most ``attempts`` times, within about ``timeout`` of the
        first failure (a writer paused for long, its session ended meanwhile, still runs again
        when it wakes)."""
        self._check_writable()
        deadline = None
        for attempt in range(1, self._attempts + 1):
            try:
                return self._attempt(work)
            except _Again as again:
                cause = again.cause
                deadline = deadline or time.monotonic() + self._timeout
                if attempt == self._attempts or time.monotonic() > deadline:
                    break
                time.sleep(min(0.005 * 2**attempt, 1.0) * _jitter.uniform(0.5, 1.5))
        raise StoreError(
            f"{self._name}: the write failed {attempt} time{'s' if attempt > 1 else ''} (nothing"
            " of it is written): "
            f"{self._say(cause)}"
        )

    def _attempt(self, work: Callable[[WriteTx], T]) -> T:
        with self._begin(self._write_begin) as (conn, tx):
            result = work(tx)
            # the transaction's id: if the answer to COMMIT is lost, the server still knows
            # whether it committed (a row of it, looked for at once, may not be visible yet);
            # none: it wrote nothing, and its result stands either way
            xid = tx.current_xid(assign=tx.feed.held)
            tx.feed.finish()  # the transaction's changes, numbered as it commits
            self._local.tx = None
            try:
                conn.execute(tx.commit_sql)
            except self._psycopg.Error as exc:
                if not self._lost(exc):
                    raise
                if xid is None or self._committed(xid):
                    self._notify(conn, tx)
                    return result
                raise _Again(exc) from None
            self._notify(conn, tx)
            if tx.grown:
                self._analyze(conn)
            return result

    def _notify(self, conn: Any, tx: PostgresTx) -> None:
        """Tell those following the feed that entries committed (best effort: they also look
        at the head every second)."""
        if tx.notify is not None:
            with suppress(self._psycopg.Error):
                conn.execute("SELECT pg_notify(%s, '')", (tx.notify,))

    def _analyze(self, conn: Any) -> None:
        """Refresh the planner's statistics: a new store has none until autovacuum first comes
        by (up to a minute), and without them PostgreSQL can pick an index that reads every
        event to find a few (a backfill into a new database would crawl). So the writer that
        numbers the 1,000th, 10,000th, 100,000th, … event runs ANALYZE after its commit.
        Interrupted (Ctrl-C), it is left for autovacuum: the commit has happened, and a caller
        must not be told otherwise."""
        with suppress(self._psycopg.Error, KeyboardInterrupt):
            conn.execute("ANALYZE events, invoices, changes")

    @contextmanager
    def write(self) -> Iterator[PostgresTx]:
        """One write transaction, tried once (the runtime writes through :meth:`transact`).

        Raises:
            StoreError: the store is read-only, or the write failed (nothing of it is written).
        """
        self._check_writable()
        try:
            with self._begin(self._write_begin) as (conn, tx):
                yield tx
                tx.feed.finish()
                self._local.tx = None
                conn.execute(tx.commit_sql)
                self._notify(conn, tx)
        except _Again as again:
            raise StoreError(f"{self._name}: {self._say(again.cause)}; try again") from None

    @contextmanager
    def read(self) -> Iterator[PostgresTx]:
        """A read-only REPEATABLE READ transaction: every read in it sees one snapshot.

        Inside a write transaction of the same thread, it reads in that one.
        """
        self._check_open()
        current = getattr(self._local, "tx", None)
        if current is not None:
            yield current
            return
        try:
            with self._begin(_READ) as (conn, tx):
                yield tx
                self._local.tx = None
                conn.execute("COMMIT")
        except _Again as again:
            raise StoreError(f"{self._name}: {self._say(again.cause)}") from None

    @contextmanager
    def _begin(self, begin: str) -> Iterator[tuple[Any, PostgresTx]]:
        """A pooled connection with ``begin`` run on it, and the transaction's records.

        A pooled connection the server dropped (a restart) fails its BEGIN: another is taken.
        Errors become :class:`_Again` (transient) or :class:`StoreError`.
        """
        if getattr(self._local, "tx", None) is not None:
            raise StoreError("a write transaction can't begin inside another transaction")
        conn = None
        last: BaseException | None = None
        for _ in range(self._attempts):
            conn = self._getconn()
            try:
                conn.execute(begin)
                break
            except self._psycopg.Error as exc:
                self._pool.putconn(conn)
                conn = None
                if not self._transient(exc):
                    raise StoreError(f"{self._name}: {self._say(exc)}") from None
                last = exc
        if conn is None:
            raise _Again(last or StoreError("no connection"))
        tx = PostgresTx(conn, self._schema, legacy=self._legacy)
        self._local.tx = tx
        try:
            yield conn, tx
        except BaseException as exc:
            self._rollback(conn)
            error = self._error(exc)
            if error is exc:
                raise
            raise error from exc
        finally:
            self._local.tx = None
            self._pool.putconn(conn)

    def _getconn(self) -> Any:
        self._check_open()
        if os.getpid() != self._pid:  # the pool's sockets are the parent's sessions
            raise StoreError(
                f"{self._name}: this store was opened before the process forked; open a new "
                "Engine in the child (sharing the parent's connections would mix their results)"
            )
        try:
            return self._pool.getconn()
        except self._pool_timeout as exc:
            raise _Again(exc) from None

    def _rollback(self, conn: Any) -> None:
        if conn.closed or conn.broken:
            return
        try:
            conn.execute("ROLLBACK")
        except self._psycopg.Error:
            conn.close()  # in no state to be used again: the pool replaces it

    def _transient(self, exc: BaseException) -> bool:
        """Whether running the transaction again may succeed: a lost race for an event id, or
        any operational failure (serialization, deadlock, a connection lost or cut, the server
        going away, a session the server ended for idling in its transaction: nothing of it
        was committed) but a cancelled statement (a timeout would only be waited for again)."""
        errors = self._psycopg.errors
        ended = (errors.IdleInTransactionSessionTimeout, getattr(errors, "TransactionTimeout", ()))
        return isinstance(exc, (LiveConflict, *ended)) or (
            isinstance(exc, self._psycopg.OperationalError)
            and not isinstance(exc, errors.QueryCanceled)
        )

    def _lost(self, exc: BaseException) -> bool:
        """Whether ``exc`` leaves unknown what the server did: the connection failed (no SQL
        error came back), or the server ended the session (it may have committed first)."""
        errors = self._psycopg.errors
        if isinstance(exc, errors.AdminShutdown | errors.CrashShutdown):
            return True
        return isinstance(exc, self._psycopg.OperationalError) and exc.sqlstate is None

    def _error(self, exc: BaseException) -> BaseException:
        """What an error inside a transaction becomes, once it is rolled back."""
        if isinstance(exc, _Again | StoreError):
            return exc
        if self._transient(exc):
            return _Again(exc)
        if isinstance(exc, self._psycopg.Error):
            return StoreError(f"{self._name}: {self._say(exc)}")
        if isinstance(exc, UnicodeEncodeError):  # a lone surrogate in a name asked for
            return StoreError(f"{exc.object[:60]!r} is not valid Unicode text")
        return exc

    def _committed(self, xid: str) -> bool:
        """Whether transaction ``xid``, whose answer to COMMIT was lost, committed."""
        lost = (self._psycopg.OperationalError, self._pool_timeout)
        known = xact_committed(self._pool.connection, xid, self._timeout, lost)
        if known is None:
            raise StoreError(
                f"{self._name}: the connection was lost while committing and the database can't"
                " tell whether it did; applying the same deliveries again is safe (those "
                "committed come back as duplicates)"
            )
        return known

    def _say(self, exc: BaseException) -> str:
        """A driver's error in one line, without the password."""
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return scrub(text, self.url)

    # --------------------------------------------------------------- lifecycle

    def wait_for_changes(
        self, after: int, *, timeout: float, stop: threading.Event | None = None
    ) -> None:
        """Through LISTEN/NOTIFY, on a connection of its own (see ``Listener``)."""

        def head() -> int:
            with self.read() as tx:
                return tx.feed.head()

        self._listener.wait(head, after, timeout, stop or threading.Event())

    def close(self) -> None:
        """Close every connection; the store can't be used afterwards."""
        self._closed = True
        self._release()
        self._listener.close()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"{self._name} is closed; open a new Engine to use it")

    def _check_writable(self) -> None:
        if self.readonly:
            raise StoreError(f"{self._name} was opened read-only")
        self._check_open()
