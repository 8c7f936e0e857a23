"""The click group and what every command shares: error handling, --json, --db, --chart-dir,
and naming a chart (by name, or by the path of its YAML file).

Every failure is ``Error: …`` on stderr, never a traceback, and it is caught in one place
(:class:`_Group`): library errors (:class:`~engine.errors.EngineError`) and operating-system
errors (a file that can't be written) exit 1; usage errors stay click's (exit 2); anything else
is a bug, still reported in one line (exit 1), with ``INVOICE_ENGINE_DEBUG=1`` to see where.
"""

from __future__ import annotations

import errno
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ..chart import available_charts, load_chart
from ..errors import EngineError, StoreError
from ._text import json_text, visible

if TYPE_CHECKING:
    from ..chart import Chart
    from ..runtime.engine import Engine

F = TypeVar("F", bound=Callable[..., Any])

#: Set to see a traceback for an unexpected error instead of its one-line report.
DEBUG_ENV = "INVOICE_ENGINE_DEBUG"


def _os_message(exc: OSError) -> str:
    """An OS error in words, naming the file: ``can't use '/x/y.svg': No such file or …``."""
    what = exc.strerror or str(exc)
    if exc.filename is None:
        return what
    return f"can't use {os.fsdecode(exc.filename)!r}: {what}"


class _Group(click.Group):
    """The one place a failure becomes ``Error: …`` (see the module docstring)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort, EOFError):
            raise  # click's own: usage errors (2), exits, ^C / end of input
        except EngineError as exc:
            raise click.ClickException(str(exc)) from exc
        except OSError as exc:
            if exc.errno == errno.EPIPE:  # `| head` closed the pipe: click exits quietly
                raise
            raise click.ClickException(_os_message(exc)) from exc
        except Exception as exc:
            if os.environ.get(DEBUG_ENV):
                raise
            raise click.ClickException(
                f"unexpected {type(exc).__name__}: {exc}. This is a bug in invoice-engine; "
                f"run again with {DEBUG_ENV}=1 to see where it happened"
            ) from exc


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="invoice-engine")
def main() -> None:
    """Keep invoices in a true, provable state while billing providers throw webhooks at it.

    Each provider's invoice lifecycle is a statechart (see `invoice-engine charts`); `apply`
    feeds webhook deliveries through it into a SQLite history that loses nothing.

    Example: invoice-engine demo
    """
    _quiet_third_party_logs()


#: Libraries whose log records the CLI keeps off stderr unless logging is set up to show them.
_QUIET_LOGGERS = ("psycopg", "psycopg_pool")


def _quiet_third_party_logs() -> None:
    """Keep psycopg's own warnings (``discarding closed connection: …``, ``error ignored
    terminating …``, logged when a connection is lost, which the command reports itself) off
    stderr. With no handler anywhere, Python prints a warning through its last-resort handler;
    a :class:`logging.NullHandler` on the library's logger stops that, and nothing else: the
    records still propagate, so logging set up by the user (or ``serve``'s ``--log-level``)
    shows them as before. ``INVOICE_ENGINE_DEBUG=1`` leaves them be."""
    if os.environ.get(DEBUG_ENV):
        return
    for name in _QUIET_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
            logger.addHandler(logging.NullHandler())


def json_option(f: F) -> F:
    """``--json``: print exactly one JSON document on stdout instead of tables."""
    return click.option(
        "--json", "as_json", is_flag=True, help="Print one JSON document instead of text."
    )(f)


def replaced_bundled(chart_dir: str | Path | None) -> dict[str, Path]:
    """The charts in ``chart_dir`` named like a bundled one, which they replace: name → file."""
    if chart_dir is None:
        return {}
    folder = Path(chart_dir)
    mine = {p.stem: p for p in [*sorted(folder.glob("*.yaml")), *sorted(folder.glob("*.yml"))]}
    bundled = set(available_charts())
    return {name: path for name, path in sorted(mine.items()) if name in bundled}


def _warn_replaced(_: click.Context, __: click.Parameter, value: str | None) -> str | None:
    """A chart in --chart-dir named like a bundled one replaces it: say so, once a command."""
    for name, path in replaced_bundled(value).items():
        click.echo(
            f"Warning: {visible(path)} replaces the bundled chart {name!r} "
            "(`invoice-engine charts` shows which file each name uses)",
            err=True,
        )
    return value


def chart_dir_option(f: F) -> F:
    """``--chart-dir``: a folder of the user's own charts, beside the bundled ones."""
    return click.option(
        "--chart-dir",
        type=click.Path(exists=True, file_okay=False),
        envvar="INVOICE_ENGINE_CHART_DIR",
        show_envvar=True,
        callback=_warn_replaced,
        help="A folder of your own charts (*.yaml), used beside the bundled ones; one named "
        "like a bundled chart replaces it (with a warning).",
    )(f)


def db_option(f: F) -> F:
    """``--db``: the SQLite file or PostgreSQL URL (``INVOICE_ENGINE_DB``, default
    ``invoices.db``)."""
    return click.option(
        "--db",
        "db_path",
        default="invoices.db",
        show_default=True,
        envvar="INVOICE_ENGINE_DB",
        show_envvar=True,
        help="SQLite database file (or :memory:), or a PostgreSQL URL "
        "(postgresql://user:password@host/dbname; in a password write @ / ? # as "
        "%40 %2F %3F %23). Other URLs, libpq keyword strings and names with white space "
        "around a URL are refused, never taken for a file name.",
    )(f)


def shown(db: str) -> str:
    """A ``--db`` value as output may show it: a password is never printed, however it is
    written (one redaction for every name: :func:`engine.store.display_name`)."""
    from ..store import display_name  # imported here: chart-only commands need no store

    return display_name(db)


def emit_json(data: Any) -> None:
    """One JSON document on stdout, written whole: made before anything is printed, so an
    error while making it leaves stdout empty (the error is ``Error: …`` on stderr)."""
    text = json_text(data, indent=2)
    sys.stdout.write(text + "\n")


def is_chart_path(text: str) -> bool:
    """Whether a chart argument is a file path (``./zebrapay.yaml``), not a name (as
    :func:`~engine.chart.load_chart` decides)."""
    return text.endswith((".yaml", ".yml")) or "/" in text


def chart_arg(name_or_path: str, chart_dir: str | None) -> tuple[str, dict[str, Chart]]:
    """A PROVIDER argument: the provider it names and, when it is a chart file's path, that
    chart (for ``Engine(charts=…)``), so every command takes a path where it takes a name."""
    if not is_chart_path(name_or_path):
        return name_or_path, {}
    chart = load_chart(name_or_path, chart_dir)
    return chart.name, {chart.name: chart}


def valid_text(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """``callback=`` for a text argument that reaches the database (ids, names): text that is
    valid Unicode: an argument made of undecodable bytes (which Python keeps
    as lone surrogates) is a usage error naming it, not a crash deep in the database."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise click.BadParameter(f"{value!r} is not valid UTF-8 text") from None
    return value


def open_engine(db_path: str, chart_dir: str | None, *, readonly: bool, **kw: Any) -> Engine:
    """The engine over ``--db``; ``readonly`` for commands that only read, which then write
    nothing to the file (nor create it: a missing one is ``no database at …``)."""
    from ..runtime.engine import Engine

    try:
        return Engine(db_path, chart_dir=chart_dir, readonly=readonly, **kw)
    except StoreError as exc:
        if readonly and str(exc).startswith("no database at"):
            raise click.ClickException(
                f"{exc}; run `invoice-engine apply` first, or pass --db"
            ) from None
        raise


def write_output(output: str, data: str | bytes) -> None:
    """Write ``-o FILE``; a file that can't be written is ``Error: can't write …``."""
    path = Path(output)
    try:
        with path.open("rb") as existing:
            if existing.read(16) == b"SQLite format 3\x00":  # a database: never overwrite it
                raise click.ClickException(
                    f"{output!r} is a SQLite database; write the output to another file"
                )
    except OSError:
        pass  # not there yet (or unreadable: the write below says why)
    try:
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(data, encoding="utf-8")
    except OSError as exc:
        raise click.ClickException(f"can't write {output!r}: {exc.strerror or exc}") from None
