"""``copy``: move a database's whole history to another store — SQLite to PostgreSQL and back —
and prove the copy by replaying it.

The copy reads one snapshot of the source (a live source keeps being written: what comes after
the snapshot is not in the copy) and is one transaction on the target (all of it, or nothing),
and never merges: a target that holds records is refused unless ``--replace`` says to delete
them first. Afterwards the target is opened read-only and tallied (counts and a digest of every
row) against what was read, and every invoice is replayed from the copied events; exit 1 if
anything differs. ^C during the copy writes nothing (exit 130).
"""

from __future__ import annotations

import shlex
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
    this moves a history from SQLite to PostgreSQL and back. Events, invoices, revisions,
    chart versions, the changes feed and subscribers' cursors go across as they are (the same
    numbers, cursors, times and outcomes), in one
    transaction: TARGET gets all of it or nothing. SOURCE is only read. TARGET must be empty
    (a new file, an empty database or schema) unless --replace. SOURCE may be in use: the copy
    is of one snapshot of it, and what is written to it after that is not in the copy.
    Afterwards TARGET is checked to hold exactly the rows read, and every invoice of TARGET is
    replayed from its events (--chart-dir for your own charts): exit 0 when the copy tells the
    same story, else 1.

    Example: invoice-engine copy invoices.db postgresql://localhost/billing
    """
    from ..store import open_store
    from ..store.copy import copy_records, tally

    to = visible(shown(target))
    with _opened(source, readonly=True) as src, _opened(target, readonly=False) as dst:
        with src.read() as tx:  # the progress bar's length (the copy counts in its snapshot)
            total = sum(tx.outcome_counts().values())
        try:
            with _progress(total) as step:
                done = copy_records(src, dst, replace=replace, progress=step)
        except KeyboardInterrupt:
            click.echo(
                f"\ncopy interrupted: nothing was written to {to} (the copy is one transaction)",
                err=True,
            )
            raise click.exceptions.Exit(130) from None
    try:
        after_store = open_store(target, readonly=True)
        try:
            with after_store.read() as tx:
                after = tally(tx)
        finally:
            after_store.close()
        with open_engine(target, chart_dir, readonly=True) as eng:
            report = eng.replay()
    except KeyboardInterrupt:
        click.echo(
            f"\ninterrupted: {to} holds the whole copy, not yet checked: "
            f"invoice-engine replay --db {shlex.quote(to)}",
            err=True,
        )
        raise click.exceptions.Exit(130) from None
    copied = done.copied.counts
    read_all = done.source == copied
    same = read_all and done.copied == after
    if as_json:
        emit_json(
            {
                "source": shown(source),
                "target": shown(target),
                "copied": copied._asdict(),
                "source_counts": done.source._asdict(),
                "target_counts": after.counts._asdict(),
                "copied_digest": done.copied.digest,
                "target_digest": after.digest,
                "replay": {**report.model_dump(mode="json"), "ok": report.ok},
                "ok": same and report.ok,
            }
        )
    else:
        click.echo(
            f"copied {plural(copied.events, 'event')}, {plural(copied.invoices, 'invoice')}, "
            f"{plural(copied.revisions, 'revision')}, "
            f"{plural(copied.charts, 'chart version')} and "
            f"{plural(copied.changes, 'changes-feed entry', 'changes-feed entries')} from "
            f"{visible(shown(source))} to {to}, "
            "as one snapshot of the source held them (what was written to it since is not in "
            "the copy)"
        )
        click.echo(_report_text(report))
    if not read_all:
        raise click.ClickException(
            f"the copy read other rows than the source counts in the same snapshot: counted "
            f"{done.source._asdict()}, read {copied._asdict()}"
        )
    if not same:
        raise click.ClickException(
            f"{to} does not hold what was copied: copied {copied._asdict()} (digest "
            f"{done.copied.digest}), it holds {after.counts._asdict()} (digest {after.digest})"
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
