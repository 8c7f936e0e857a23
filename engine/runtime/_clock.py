"""The engine's one clock, and the one way it writes a time down.

Every timestamp the engine stores is UTC in ISO 8601 with a ``Z`` (``2024-06-01T00:00:10Z``),
the form JSON output uses too, so the database and ``--json`` never disagree on a format.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

__all__ = ["Clock", "utc_now", "utc_text"]

#: The current time, timezone-aware (injectable: ``Engine(clock=...)``).
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The system clock, in UTC."""
    return datetime.now(UTC)


def utc_text(when: datetime) -> str:
    """``when`` as stored: UTC, ISO 8601, ``Z``."""
    if when.tzinfo is not UTC:  # the engine's own times already are: skip the conversion
        when = when.astimezone(UTC)
    return when.isoformat()[:-6] + "Z"  # UTC's isoformat always ends in +00:00
