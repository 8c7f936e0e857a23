"""Persistence: the only place SQL is written.

:mod:`.base` is the interface the runtime talks to (typed rows, read and write transactions);
:mod:`.sqlite` is the embedded default, :mod:`.postgres` the one for many writers (an extra:
``pip install 'invoice-engine[postgres]'``). :func:`open_store` picks the store a database name
asks for.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import StoreError
from ._url import checked_name, is_postgres_url, redact, scrub
from .base import Store
from .sqlite import SqliteStore, Synchronous

__all__ = ["Store", "display_name", "is_postgres_url", "open_store"]


def open_store(
    db: str | Path, *, synchronous: Synchronous = "NORMAL", readonly: bool = False
) -> Store:
    """The store for ``db``: a SQLite file path, ``":memory:"``, or a PostgreSQL URL
    (``postgresql://…`` or ``postgres://…``, the scheme in any case; ``synchronous`` is
    SQLite's and not used there).

    Names that are neither are refused before a file is created for them: another
    ``scheme://``, ``postgresql:`` without ``//``, a libpq keyword string, a URL with white
    space around it (never stripped), one libpq would misread (see :mod:`._url`).

    Raises:
        StoreError: ``db`` names no usable database (a URL of a kind with no store here, a
            missing folder, a file that is not an invoice-engine database, a server that
            can't be reached, …). Messages never show a password.
    """
    if not isinstance(db, str | os.PathLike):
        raise StoreError(f"db={db!r}: give a file path (str or Path), ':memory:' or a URL")
    name = checked_name(os.fsdecode(db))
    if is_postgres_url(name):
        from .postgres import PostgresStore  # psycopg is an extra: imported only for a URL

        return PostgresStore(name, readonly=readonly)
    try:
        return SqliteStore(db, synchronous=synchronous, readonly=readonly)
    except StoreError as exc:
        if redact(name) == name:
            raise
        raise StoreError(scrub(str(exc), name)) from None  # `u:pw@host/db`, a scheme missing


def display_name(db: str | Path) -> str:
    """``db`` as messages may show it: a path as it is, a URL (or anything like one) without
    its password."""
    return redact(os.fsdecode(db)) if isinstance(db, str | os.PathLike) else str(db)
