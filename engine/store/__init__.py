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
from ._postgres_schema import is_postgres_url, redact
from .base import Store
from .sqlite import SqliteStore, Synchronous

__all__ = ["Store", "display_name", "is_postgres_url", "open_store"]


def open_store(
    db: str | Path, *, synchronous: Synchronous = "NORMAL", readonly: bool = False
) -> Store:
    """The store for ``db``: a SQLite file path, ``":memory:"``, or a PostgreSQL URL
    (``postgresql://…`` or ``postgres://…``; ``synchronous`` is SQLite's and not used there).

    Raises:
        StoreError: ``db`` names no usable database (a URL of a kind with no store here, a
            missing folder, a file that is not an invoice-engine database, a server that
            can't be reached, …).
    """
    if not isinstance(db, str | os.PathLike):
        raise StoreError(f"db={db!r}: give a file path (str or Path), ':memory:' or a URL")
    if is_postgres_url(db):
        from .postgres import PostgresStore  # psycopg is an extra: imported only for a URL

        return PostgresStore(str(db), readonly=readonly)
    return SqliteStore(db, synchronous=synchronous, readonly=readonly)


def display_name(db: str | Path) -> str:
    """``db`` as messages may show it: a path as it is, a URL without its password."""
    return redact(db) if is_postgres_url(db) and isinstance(db, str) else str(db)
