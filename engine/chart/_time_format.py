"""What an occurrence time may be written in: the named formats and strptime formats that
read back what they write (:func:`check_time_format`; :class:`~engine.chart.spec.TimeSpec`
uses it)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

__all__ = ["NUMERIC_TIME_FORMATS", "TIME_FORMATS", "check_time_format"]

#: Occurrence-time formats read from a JSON number (seconds, milliseconds since 1970).
NUMERIC_TIME_FORMATS = ("unix", "unix_ms")
#: The named occurrence-time formats; anything else must be a strptime format.
TIME_FORMATS = (*NUMERIC_TIME_FORMATS, "iso8601")
_DIRECTIVE = re.compile(r"%[^%]")
_SAMPLE_TIME = datetime(2024, 11, 23, 13, 45, 56, 789012, tzinfo=UTC)


def check_time_format(fmt: str) -> str:
    """``fmt`` if it is a format an occurrence time can be read with, else a ``ValueError``.

    The named formats are ``unix``, ``unix_ms`` and ``iso8601``. Anything else must be a
    :func:`~datetime.datetime.strptime` format with at least one ``%`` directive that writes
    a sample time (:func:`~datetime.datetime.strftime`) and reads it back as the same time, to
    the precision it writes (at least the day): ``epoch`` or ``%Y-%m`` would make every
    delivery invalid or every time meaningless, and ``%I:%M`` without ``%p`` reads 13:45 as
    01:45.
    """
    if fmt in TIME_FORMATS:
        return fmt
    choices = (
        f"use one of {', '.join(TIME_FORMATS)}, or a strptime format such as '%Y-%m-%d %H:%M:%S'"
    )
    if not _DIRECTIVE.search(fmt.replace("%%", "")):  # '%%' writes a literal '%'
        raise ValueError(f"format {fmt!r} is not a time format: {choices}")
    try:
        back = datetime.strptime(_SAMPLE_TIME.strftime(fmt), fmt)
    except ValueError as exc:
        raise ValueError(
            f"format {fmt!r} can't read back the times it writes ({exc}): {choices}"
        ) from None
    back = back.replace(tzinfo=UTC) if back.tzinfo is None else back.astimezone(UTC)
    precisions = [
        _SAMPLE_TIME,
        _SAMPLE_TIME.replace(microsecond=0),
        _SAMPLE_TIME.replace(second=0, microsecond=0),
        _SAMPLE_TIME.replace(minute=0, second=0, microsecond=0),
        _SAMPLE_TIME.replace(hour=0, minute=0, second=0, microsecond=0),
    ]
    if back not in precisions:
        raise ValueError(
            f"format {fmt!r} reads {_SAMPLE_TIME:%Y-%m-%d %H:%M:%S} back as "
            f"{back:%Y-%m-%d %H:%M:%S}: it must keep the date, and the time of day to the "
            f"precision it writes; {choices}"
        )
    return fmt
