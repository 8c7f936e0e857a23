"""The PostgreSQL store's sessions: what each connection is given, and the pool's first one.

A writer that stops midway (a frozen process, a lost network) must not hold its invoices for
ever. Its write transactions end themselves when left idle for ``IDLE_IN_TRANSACTION`` (``SET
LOCAL``, sent with the BEGIN: reads, which a caller may page through slowly, are not limited),
unless the server, the role or the URL sets a limit of its own. The server's TCP keepalives
(``tcp_keepalives_*``, per session) let it notice a writer's machine gone within about a
minute, and end its session (which frees its locks); libpq's own keepalives let a writer
notice the server gone. The URL's own settings of either are kept.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import weakref
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

__all__ = [
    "Listener",
    "first_then_new",
    "forget_in_child",
    "idle_limit",
    "keep_alive",
    "session_defaults",
]

IDLE_IN_TRANSACTION = "5min"
_KEEPALIVES = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10,
               "keepalives_count": 3}  # fmt: skip
_SERVER_KEEPALIVES = {"tcp_keepalives_idle": 30, "tcp_keepalives_interval": 10,
                      "tcp_keepalives_count": 3}  # fmt: skip


def session_defaults(given: dict[str, Any], timeout: float) -> dict[str, Any]:
    """libpq parameters to add to those the URL gives (``given``): a connect timeout, and
    keepalives."""
    extra: dict[str, Any] = {}
    if "connect_timeout" not in given:
        extra["connect_timeout"] = max(1, int(timeout))
    if not any(k.startswith("keepalives") for k in given):
        extra.update(_KEEPALIVES)
    return extra


def idle_limit(conn: Any, given: dict[str, Any]) -> str:
    """What to add to a write transaction's BEGIN: the idle limit, unless the URL's options,
    the role or the server already set one (``conn`` shows the session's setting)."""
    if "idle_in_transaction_session_timeout" in str(given.get("options", "")):
        return ""
    row = conn.execute("SHOW idle_in_transaction_session_timeout").fetchone()
    if row is None or row[0] != "0":
        return ""
    return f"; SET LOCAL idle_in_transaction_session_timeout = '{IDLE_IN_TRANSACTION}'"


def keep_alive(given: dict[str, Any]) -> Callable[[Any], None]:
    """The pool's ``configure``: each new session gets the server's keepalives, unless the
    URL's options set them."""
    settings = {k: v for k, v in _SERVER_KEEPALIVES.items() if k not in str(given.get("options"))}

    def configure(conn: Any) -> None:
        for name, value in settings.items():  # names and values are this module's constants
            conn.execute(f"SET {name} = {int(value)}")

    return configure


def connect_first(
    psycopg: Any, url: str, kwargs: dict[str, Any], timeout: float, prepare: Callable[[Any], None]
) -> Any:
    """A connection, ``prepare`` d (the schema checked or made). A connection lost on the way,
    or a server starting up or shutting down, is tried again within ``timeout``; any other
    error (a server that can't be reached at all) is raised at once."""
    deadline = time.monotonic() + timeout
    for attempt in range(1, 1_000):
        conn = None
        try:
            conn = psycopg.connect(url, **kwargs)
            prepare(conn)
            return conn
        except BaseException as exc:
            if conn is not None:
                conn.close()
            if not isinstance(exc, psycopg.Error):
                raise
            lost = conn is not None and isinstance(exc, psycopg.OperationalError)
            starting = getattr(exc, "sqlstate", None) == "57P03" or any(
                f"database system is {w}" in str(exc) for w in ("starting", "shutting")
            )
            if not (lost or starting) or time.monotonic() > deadline:
                raise
        time.sleep(min(0.01 * 2**attempt, 1.0))
    raise AssertionError("unreachable")


def first_then_new(psycopg: Any, first: Any) -> Any:
    """The pool's connection class: its first connection is ``first`` (the one the schema was
    checked on: one server process less to start for each store), then new ones."""
    waiting = [first]

    class Connection(psycopg.Connection):  # type: ignore[misc]
        @classmethod
        def connect(cls, conninfo: str = "", **kwargs: Any) -> Any:
            return waiting.pop() if waiting else super().connect(conninfo, **kwargs)

    return Connection


def forget_in_child(store: object, release: str) -> None:
    """In a forked child, never close the parent's connections (closing one ends the parent's
    session): the child's copy of the store just stops working. ``release`` names the store's
    ``weakref.finalize`` that closes its pool."""
    ref = weakref.ref(store)

    def forget() -> None:
        it = ref()
        if it is not None:
            getattr(it, release).detach()

    os.register_at_fork(after_in_child=forget)


class Listener:
    """Waits for the changes feed's notifications on a connection of its own, LISTENing only
    while it waits (a follower busy elsewhere holds up no one's notifications) and before it
    reads the feed's head (no notification falls between the two).

    A connection lost (a restarted server, a session ended) is made again; one inherited
    through ``fork`` is the parent's and is left alone. One thread waits on the connection at
    a time; another meanwhile looks at the head every 200 ms.
    """

    def __init__(
        self, connect: Callable[[], Any], channel: str, lost: tuple[type[BaseException], ...]
    ) -> None:
        self._connect = connect
        self._channel = channel
        self._lost = lost
        self._lock = threading.Lock()
        self._conn: Any = None
        self._pid = os.getpid()

    def wait(
        self, head: Callable[[], int], after: int, timeout: float, stop: threading.Event
    ) -> None:
        """Return once ``head()`` is past ``after``, ``timeout`` seconds have passed, or
        ``stop`` is set (looked at every second at least)."""
        deadline = time.monotonic() + timeout
        if not self._lock.acquire(timeout=min(timeout, 1.0)):
            while head() <= after and not stop.wait(0.2) and time.monotonic() < deadline:
                pass
            return
        try:
            while not stop.is_set() and time.monotonic() < deadline:
                try:
                    self._listen(head, after, deadline)
                    return
                except self._lost:  # the connection: made again, after a pause
                    self._drop()
                    stop.wait(min(1.0, max(0.0, deadline - time.monotonic())))
        finally:
            self._lock.release()

    def _listen(self, head: Callable[[], int], after: int, deadline: float) -> None:
        if os.getpid() != self._pid:  # the parent's session: not ours to use, nor to close
            self._conn, self._pid = None, os.getpid()
        if self._conn is None or self._conn.closed:
            self._conn = self._connect()
        self._conn.execute(f'LISTEN "{self._channel}"')
        try:
            while head() <= after:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                for _ in self._conn.notifies(timeout=min(left, 1.0), stop_after=1):
                    pass
        finally:
            if not self._conn.closed:
                self._conn.execute("UNLISTEN *")

    def _drop(self) -> None:
        with contextlib.suppress(*self._lost):
            if self._conn is not None:
                self._conn.close()
        self._conn = None

    def close(self) -> None:
        if self._conn is not None and os.getpid() == self._pid:
            self._conn.close()


def xact_committed(
    connection: Callable[[], AbstractContextManager[Any]],
    xid: str,
    timeout: float,
    lost: tuple[type[BaseException], ...],
) -> bool | None:
    """Whether transaction ``xid`` (whose answer to COMMIT was lost) committed, as the server
    tells (``pg_xact_status``) once it is no longer in progress; ``None`` if that can't be
    known within ``timeout`` (or the server no longer remembers). ``connection()`` lends a
    connection; ``lost`` are the errors of one that failed (another is tried)."""
    deadline = time.monotonic() + timeout
    attempt = 0
    while time.monotonic() < deadline:
        attempt += 1
        try:
            with connection() as conn:
                row = conn.execute("SELECT pg_xact_status(%s::xid8)", (xid,)).fetchone()
        except lost:
            time.sleep(min(0.05 * 2**attempt, 1.0))
            continue
        status = row[0] if row else None
        if status in ("committed", "aborted"):
            return bool(status == "committed")
        if status is None:  # too old to know (its status was truncated away)
            return None
        time.sleep(min(0.01 * 2**attempt, 0.5))  # in progress: the commit is under way
    return None
