"""``copy``: move a database's whole history to another store — SQLite to PostgreSQL and back —
and prove the copy by replaying it.

The copy is one transaction on the target (all of it, or nothing), and never merges: a target
that holds records is refused unless ``--replace`` says to delete them first. Afterwards the
target is opened read-only, its counts are compared with the source's, and every invoice is
replayed from the copied events; exit 1 if anything differs.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import click

from ._base import chart_dir_option, emit_json, json_option, main, open_engine, shown
from ._read import _report_text
from ._text import plural, visible

if TYPE_CHECKING:  # imported where used: chart-only commands start faster without a store
    from ..store.base import Store

__all__: list[str] = []


@contextmanager
def _progress(total: int) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr when it is a terminal (else nothing): events written."""
    if not sys.stderr.isatty() or total < 10_000:
        yield lambda n: None
        return
    with click.progressbar(length=total, label="Copying events", file=sys.stderr) as bar:
        yield bar.update


@main.command()
@click.argument("source")
@click.argument("target")
@click.option(
    "--replace",
    is_flag=True,
    help="Delete everything TARGET holds before copying (without it, a TARGET that holds "
    "records is refused).",
)
@chart_dir_option
@json_option
def copy(source: str, target: str, replace: bool, chart_dir: str | None, as_json: bool) -> None:
    """Copy every record of SOURCE into TARGET, then replay TARGET to prove the copy.

    SOURCE and TARGET are SQLite files or PostgreSQL URLs (postgresql://user@host/dbname), so
    this moves a history from SQLite to PostgreSQL and back. Events, invoices, revisions and
    chart versions go across as they are (the same numbers, times and outcomes), in one
    transaction: TARGET gets all of it or nothing. SOURCE is only read. TARGET must be empty
    (a new file, an empty database or schema) unless --replace. Afterwards the counts are
    compared and every invoice of TARGET is replayed from its events (--chart-dir for your own
    charts): exit 0 when the copy tells the same story, else 1.

    Example: invoice-engine copy invoices.db postgresql://localhost/billing
    """
    from ..store import open_store
    from ..store.copy import copy_records, count_records

    with _opened(source, readonly=True) as src, _opened(target, readonly=False) as dst:
        with src.read() as tx:
            before = count_records(tx)
        with _progress(before.events) as step:
            copied = copy_records(src, dst, replace=replace, progress=step)
    after_store = open_store(target, readonly=True)
    try:
        with after_store.read() as tx:
            after = count_records(tx)
    finally:
        after_store.close()
    with open_engine(target, chart_dir, readonly=True) as eng:
        report = eng.replay()
    same = before == copied == after
    if as_json:
        emit_json(
            {
                "source": shown(source),
                "target": shown(target),
                "copied": copied._asdict(),
                "source_counts": before._asdict(),
                "target_counts": after._asdict(),
                "replay": {**report.model_dump(mode="json"), "ok": report.ok},
                "ok": same and report.ok,
            }
        )
    else:
        click.echo(
            f"copied {plural(copied.events, 'event')}, {plural(copied.invoices, 'invoice')}, "
            f"{plural(copied.revisions, 'revision')} and "
            f"{plural(copied.charts, 'chart version')} from {visible(shown(source))} to "
            f"{visible(shown(target))}"
        )
        click.echo(_report_text(report))
    if not same:
        raise click.ClickException(
            f"the copy's counts differ: source {before._asdict()}, copied {copied._asdict()}, "
            f"target {after._asdict()}"
        )
    if not report.ok:
        raise click.ClickException(
            f"replay of the copy found {plural(len(report.mismatches), 'mismatch')}"
        )


@contextmanager
def _opened(db: str, *, readonly: bool) -> Iterator[Store]:
    from ..store import open_store

    store = open_store(db, readonly=readonly)
    try:
        yield store
    finally:
        store.close()
