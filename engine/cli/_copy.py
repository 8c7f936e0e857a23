"""``copy``: move a database's whole history to another store — SQLite to PostgreSQL and back —
and prove the copy by replaying it.

The copy reads one snapshot of the source (a live source keeps being written: what comes after
the snapshot is not in the copy) and is one transaction on the target (all of it, or nothing),
and never merges: a target that holds records is refused unless ``--replace`` says to delete
them first. The target is tallied (counts and a digest of every row) against what was read inside
the copy's own transaction, before it commits, so a writer that writes to the target right after
cannot make a good copy look bad; then every invoice is replayed from the copied events; exit 1
if anything differs. ^C at any moment exits 130 with a word on what it left: before the copy
commits, none of the records (a new target may keep its empty tables).
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
    from ..store.copy import Copy

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
    TARGET is checked to hold exactly the rows read before the copy commits, then every invoice
    of TARGET is replayed from its events (--chart-dir for your own charts): exit 0 when the
    copy tells the same story, else 1. Ctrl-C before the copy commits leaves TARGET none of the
    records; a new TARGET may keep its empty tables (exit 130).

    Example: invoice-engine copy invoices.db postgresql://localhost/billing
    """
    committed: list[Copy] = []  # the copy, once its transaction has committed
    try:  # ^C at any moment of the command, from the very first: what it left, and exit 130
        _copy_and_check(source, target, replace, chart_dir, as_json, committed)
    except KeyboardInterrupt:
        to = visible(shown(target))
        if committed:
            said = (
                f"{to} holds the whole copy; check it with: "
                f"invoice-engine replay --db {shlex.quote(to)}"
            )
        else:
            said = (
                f"nothing was written to {to}: none of the records (the copy is one "
                "transaction); a new target may keep its empty tables"
            )
        click.echo(f"\ncopy interrupted: {said}", err=True)
        raise click.exceptions.Exit(130) from None


def _copy_and_check(
    source: str,
    target: str,
    replace: bool,
    chart_dir: str | None,
    as_json: bool,
    committed: list[Copy],
) -> None:
    """The ``copy`` command but for ^C: copy, replay the target, say how it went."""
    done = _copy(source, target, replace, committed)
    to = visible(shown(target))
    # the target's tally is the copy's own, taken before it committed: a writer writing to the
    # target since cannot make a good copy look bad. The replay sees such writes too, but only
    # checks that the history tells a consistent story.
    with open_engine(target, chart_dir, readonly=True) as eng:
        report = eng.replay()
    copied = done.copied.counts
    after = done.target
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
        what = [
            plural(copied.events, "event"),
            plural(copied.invoices, "invoice"),
            plural(copied.revisions, "revision"),
            plural(copied.charts, "chart version"),
            plural(copied.changes, "changes-feed entry", "changes-feed entries"),
        ]
        if copied.subscribers:
            what.append(plural(copied.subscribers, "subscriber cursor"))
        click.echo(
            f"copied {', '.join(what[:-1])} and {what[-1]} from {visible(shown(source))} to "
            f"{to}, as one snapshot of the source held them (what was written to it since is "
            "not in the copy)"
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
            f"{done.copied.digest}), it held {after.counts._asdict()} (digest {after.digest})"
        )
    if not report.ok:
        raise click.ClickException(
            f"replay of the copy found {plural(len(report.mismatches), 'mismatch')}"
        )


def _copy(source: str, target: str, replace: bool, committed: list[Copy]) -> Copy:
    """Open both stores and copy (one transaction on the target, tallied before it commits),
    noting the copy in ``committed`` as soon as it has committed (before the stores close)."""
    from ..store.copy import copy_records

    with _opened(source, readonly=True) as src, _opened(target, readonly=False) as dst:
        with src.read() as tx:  # the progress bar's length (the copy counts in its snapshot)
            total = sum(tx.outcome_counts().values())
        with _progress(total) as step:
            committed.append(copy_records(src, dst, replace=replace, progress=step))
    return committed[-1]


@contextmanager
def _opened(db: str, *, readonly: bool) -> Iterator[Store]:
    from ..store import open_store

    store = open_store(db, readonly=readonly)
    try:
        yield store
    finally:
        store.close()
