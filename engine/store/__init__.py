"""Persistence: the only place SQL is written.

:mod:`.base` is the interface the runtime talks to (typed rows, read and write transactions);
:mod:`.sqlite` is the embedded default. :func:`open_store` picks the store a database name asks
for.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import StoreError
from .base import Store
from .sqlite import SqliteStore, Synchronous

__all__ = ["Store", "open_store"]


def open_store(
    db: str | Path, *, synchronous: Synchronous = "NORMAL", readonly: bool = False
) -> Store:
    """The store for ``db``: a SQLite file path, or ``":memory:"``.

    Raises:
        StoreError: ``db`` names no usable database (a URL of a kind with no store here, a
            missing folder, a file that is not an invoice-engine database, …).
    """
    if not isinstance(db, str | os.PathLike):
        raise StoreError(f"db={db!r}: give a file path (str or Path), or ':memory:'")
    return SqliteStore(db, synchronous=synchronous, readonly=readonly)
