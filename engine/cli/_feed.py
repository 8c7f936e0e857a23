"""The changes feed from the command line: ``changes`` reads (and follows) it; ``consume`` hands
each entry to your function and stores how far it got.

``changes`` is a read command like those in :mod:`engine.cli._read`: it opens the database
read-only, so nothing is created or written. ``consume`` opens it read-write, as it stores its
subscriber's cursor there, but never creates one: a consumer pointed at a misspelt file would
otherwise wait for ever on an empty database of its own. Both stop on Ctrl-C or SIGTERM by
setting an event their loops check between entries — never inside your handler, so an entry
being handled is finished (and its cursor stored) — and exit 0.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType, ModuleType
from typing import TYPE_CHECKING, Any

import click

from ..models import Change
from ..runtime.feed import Subscriber, follow
from ._base import (
    DEBUG_ENV,
    chart_arg,
    chart_dir_option,
    db_option,
    emit_json,
    json_option,
    main,
    open_engine,
    valid_text,
)
from ._text import json_text, plural, visible

if TYPE_CHECKING:
    from ..runtime.engine import Engine

__all__ = ["load_handler"]

#: Entries read at a time when printing the feed without --follow.
_PAGE = 1000
_FORMS = "give module:function (importable from the current folder) or path/to/file.py:function"


@contextmanager
def _stopping(stop: threading.Event) -> Iterator[None]:
    """While inside, SIGINT and SIGTERM set ``stop`` instead of interrupting: the loops end
    between two entries. A second Ctrl-C interrupts at once (a handler that hangs)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def on_signal(signum: int, frame: FrameType | None) -> None:
        # set from another thread: the signal may have come while this thread held the
        # event's own lock (inside stop.wait()), which set() here would wait on for ever
        threading.Thread(target=stop.set, daemon=True).start()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    for s in previous:
        signal.signal(s, on_signal)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)


def _pages(
    eng: Engine, since: int, provider: str | None, limit: int | None
) -> Iterator[list[Change]]:
    """The feed after ``since``, a page at a time, at most ``limit`` entries in all."""
    left = limit
    while left is None or left > 0:
        page = eng.changes(
            since, provider=provider, limit=_PAGE if left is None else min(left, _PAGE)
        )
        if not page:
            return
        yield page
        since = page[-1].cursor
        left = None if left is None else left - len(page)


def _line(change: Change, as_json: bool) -> str:
    return json_text(change.model_dump(mode="json")) if as_json else visible(change)


@main.command()
@click.argument("provider", callback=valid_text, required=False)
@click.option("--since", type=click.IntRange(min=0, max=2**63 - 1), default=0, metavar="N",
              help="Only entries after cursor N (default: 0, the whole feed).")  # fmt: skip
@click.option("--limit", type=click.IntRange(min=1, max=2**63 - 1), metavar="N",
              help="At most N entries (default: all); with --follow, exit after N.")  # fmt: skip
@click.option("--follow", "keep_following", is_flag=True,
              help="Keep printing new entries as they are written, until Ctrl-C (on PostgreSQL "
              "woken by LISTEN/NOTIFY; on SQLite by watching the file). With --json, one JSON "
              "object per line.")  # fmt: skip
@db_option
@chart_dir_option
@json_option
def changes(
    provider: str | None,
    since: int,
    limit: int | None,
    keep_following: bool,
    db_path: str,
    chart_dir: str | None,
    as_json: bool,
) -> None:
    """Show the changes feed: every change of an invoice's state, in the order it committed.

    Each entry has a cursor (strictly increasing), the invoice, its state before → after
    (with the canonical state), what caused it (applied: the event; late: a late event's
    re-fold; repair: replay --repair; rechart: replay --rechart; migrated: the state when an
    older database got the feed) and, for a correction, the earlier entry it takes back
    ("[corrects #N]": the state that entry announced no longer stands as history). PROVIDER (a chart
    name or a path to its YAML file) limits it to that provider's entries. Reads the database
    without writing to it; "no changes" (exit 0) when there are none.

    Example: invoice-engine changes stripe --since 40 --follow
    """
    name, charts = chart_arg(provider, chart_dir) if provider is not None else (None, {})
    with open_engine(db_path, chart_dir, readonly=True, charts=charts) as eng:
        if name is not None:
            eng.chart(name)  # an unknown provider fails before anything is printed
        if keep_following:
            _follow(eng, since, name, limit, as_json)
        elif as_json:
            emit_json(
                [c.model_dump(mode="json") for p in _pages(eng, since, name, limit) for c in p]
            )
        else:
            shown = 0
            for page in _pages(eng, since, name, limit):
                click.echo("\n".join(visible(c) for c in page))
                shown += len(page)
            if not shown:
                click.echo("no changes" + (f" after #{since}" if since else ""))


def _follow(
    eng: Engine, since: int, provider: str | None, limit: int | None, as_json: bool
) -> None:
    """Print entries as they commit (each line flushed) until a signal or ``limit``."""
    stop = threading.Event()
    shown = 0
    try:
        with _stopping(stop):
            for change in follow(eng, since, provider=provider, stop=stop):
                if stop.is_set():
                    break
                click.echo(_line(change, as_json))  # click.echo flushes: a pipe sees it now
                shown += 1
                if limit is not None and shown >= limit:
                    break
    except KeyboardInterrupt:  # a second Ctrl-C: the reader asked twice to stop
        pass


# ------------------------------------------------------------------------------------- consume


def _bad(message: str) -> click.BadParameter:
    return click.BadParameter(message, param_hint="'HANDLER'")


def _imported(name: str) -> ModuleType:
    """``name`` imported with the current folder on the path first, as ``python -m`` has it."""
    if not all(part.isidentifier() for part in name.split(".")):
        raise _bad(f"{name!r} is not a module name; {_FORMS}")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
            raise _bad(f"no module {name!r} in the current folder or installed; {_FORMS}") from None
        raise click.ClickException(f"importing {name!r} failed: {_summary(exc)}") from None
    except Exception as exc:
        raise click.ClickException(f"importing {name!r} failed: {_summary(exc)}") from None


def _from_file(path: Path) -> ModuleType:
    """The Python file at ``path``, run as a module (its folder on the path, as ``python
    file.py`` has it)."""
    if not path.is_file():
        raise _bad(f"no file {str(path)!r}; {_FORMS}")
    name = f"_invoice_engine_handler_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise _bad(f"{str(path)!r} is not a Python file; {_FORMS}")
    module = importlib.util.module_from_spec(spec)
    folder = str(path.resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    sys.modules[name] = module  # dataclasses and pickling look a module up by name
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise click.ClickException(f"running {str(path)!r} failed: {_summary(exc)}") from None
    return module


def load_handler(spec: str) -> Callable[[Change], object]:
    """The function a ``HANDLER`` argument names: ``module:function`` (``package.mod:obj.attr``
    too) or ``path/to/file.py:function``.

    Raises:
        click.BadParameter: the text has neither form, or names nothing callable.
        click.ClickException: the module was found but importing it failed.
    """
    where, _, attr = spec.rpartition(":")
    if not where or not attr:
        raise _bad(f"{spec!r} names no function; {_FORMS}")
    as_file = where.endswith(".py") or "/" in where or os.sep in where
    found: Any = _from_file(Path(where)) if as_file else _imported(where)
    for part in attr.split("."):
        if not hasattr(found, part):
            raise _bad(f"{where!r} has no {attr!r}; {_FORMS}")
        found = getattr(found, part)
    if not callable(found):
        raise _bad(f"{spec!r} is {found!r}, not a function; {_FORMS}")
    handler: Callable[[Change], object] = found
    return handler


def _summary(exc: BaseException) -> str:
    return "".join(traceback.format_exception_only(exc)).strip().replace("\n", " ")


class _Retries(logging.Formatter):
    """A handler's failure in one line (``…: ValueError: boom``); its traceback with
    ``INVOICE_ENGINE_DEBUG=1``."""

    def format(self, record: logging.LogRecord) -> str:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None or os.environ.get(DEBUG_ENV):
            return "Warning: " + super().format(record)
        return f"Warning: {record.getMessage()} ({_summary(exc)})"


@contextmanager
def _retries_logged() -> Iterator[None]:
    """While inside, the subscriber's retries are reported on stderr."""
    log = logging.getLogger("engine.feed")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Retries("%(message)s"))
    log.addHandler(handler)
    try:
        yield
    finally:
        log.removeHandler(handler)


_ONCE_TRIES = 5  # consume --once ends (exit 1) rather than retry an entry for ever


@main.command()
@click.argument("name", callback=valid_text)
@click.argument("handler_spec", metavar="HANDLER")
@click.argument("provider", callback=valid_text, required=False)
@click.option("--from", "start", type=click.IntRange(min=0, max=2**63 - 1), default=0, metavar="N",
              help="Where NAME starts when it has no stored cursor: after cursor N (default: "
              "0, the whole feed). A stored cursor wins.")  # fmt: skip
@click.option("--once", is_flag=True,
              help="Handle the entries there are now, then exit (default: keep waiting for "
              "new ones until Ctrl-C); an entry whose handler fails 5 times ends it with "
              "exit 1.")  # fmt: skip
@db_option
@chart_dir_option
def consume(
    name: str,
    handler_spec: str,
    provider: str | None,
    start: int,
    once: bool,
    db_path: str,
    chart_dir: str | None,
) -> None:
    """Hand each entry of the changes feed to your function, resuming where NAME stopped.

    HANDLER is module:function (a module importable from the current folder) or
    path/to/file.py:function; it is called with one engine.Change at a time, in cursor order,
    each at least once and only after it committed. The cursor of the entries handled is stored
    under NAME in the database (every 100 entries or second, when caught up, and on stopping),
    so a restart resumes after them; when the handler raises, the entry is tried again after a
    back-off (0.5 s, doubling up to 60 s; each failure is a warning on stderr), never skipped.
    A consumer killed gets the entries since its last stored cursor again: make the handler
    idempotent (key what it does by change.cursor). Run one process per NAME. PROVIDER limits it
    to that provider's entries. Ctrl-C (or SIGTERM) stops after the entry being handled; a
    one-line summary goes to stderr. The database must exist: consume opens it read-write, to
    store the cursor, but never creates one.

    Example: invoice-engine consume receipts examples/receipts.py:send_receipt
    """
    handler = load_handler(handler_spec)  # before the database: a typo costs nothing
    if db_path == ":memory:":
        raise click.UsageError("consume needs a database file or URL, not :memory: (empty)")
    prov, charts = chart_arg(provider, chart_dir) if provider is not None else (None, {})
    open_engine(db_path, chart_dir, readonly=True, charts=charts).close()  # it must exist
    stop = threading.Event()
    with open_engine(db_path, chart_dir, readonly=False, charts=charts) as eng:
        if prov is not None:
            eng.chart(prov)
        sub = Subscriber(eng, name, handler, provider=prov, start=start,
                         give_up_after=_ONCE_TRIES if once else None)  # fmt: skip
        if not once:
            click.echo(f"{name}: following the feed after #{sub.cursor}; Ctrl-C stops", err=True)
        with _stopping(stop), _retries_logged():
            handled = sub.run(follow=not once, stop=stop)
        click.echo(f"{name}: handled {plural(handled, 'entry')}; at #{sub.cursor}",
                   err=True)  # fmt: skip
