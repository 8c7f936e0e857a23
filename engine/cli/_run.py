"""Engine commands that write: apply, demo.

``apply`` streams a JSONL file of deliveries through :meth:`Engine.iter_apply`, so memory stays
flat however long the file (with --json too: it prints JSON lines as each batch commits). How a
line becomes a delivery is :mod:`._jsonl`'s: a line that is not JSON is still applied, as raw
bytes, so it is stored as ``invalid`` with the exact bytes received and reported with its line
number. Bad lines never stop a run; Ctrl-C does, saying how far the run got (each batch
commits whole, and a re-run records the committed lines as duplicates). Summaries count
outcomes as they stand after the run (see :mod:`._tally`).
"""

from __future__ import annotations

import shlex
import sys
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click

from ..chart import available_charts
from ..models import Outcome
from ..runtime.delivery import Oversized
from ._base import (
    chart_arg,
    chart_dir_option,
    db_option,
    emit_json,
    json_option,
    main,
    open_engine,
    shown,
    valid_text,
)
from ._jsonl import MAX_LINE_BYTES, bounded_lines, example_streams, read_jsonl
from ._tally import Final, RunTally
from ._text import clip, json_text, plural, table, visible

if TYPE_CHECKING:  # imported where used: chart-only commands start faster without SQLite
    from ..runtime.engine import Engine

__all__ = ["MAX_LINE_BYTES", "bounded_lines", "read_jsonl"]

_STATUSES = ("applied", "unchanged", "duplicate", "ignored", "rejected", "invalid")
_SHOWN = 10  # rejections / invalid lines listed after an apply
DEMO_DB = "invoice-engine-demo.db"


def _progress(stream: IO[bytes], total: int | None) -> Iterator[bytes | Oversized]:
    """The stream's lines, with a progress display on stderr when stderr is a terminal."""
    lines = bounded_lines(stream)
    if not sys.stderr.isatty():
        yield from lines
        return
    if total:
        with click.progressbar(length=total, label="Applying", file=sys.stderr) as bar:
            for raw in lines:
                bar.update(raw.size if isinstance(raw, Oversized) else len(raw))
                yield raw
        return
    n = 0
    for n, raw in enumerate(lines, 1):
        if n % 1000 == 0:
            click.echo(f"\rApplied {n:,} lines", err=True, nl=False)
        yield raw
    click.echo(f"\rApplied {n:,} lines", err=True)


def _run(
    eng: Engine, provider: str, stream: IO[bytes], total: int | None, tally: RunTally
) -> Iterator[tuple[int, Outcome]]:
    """Apply a JSONL stream; yield (line number, outcome as decided) pairs in order, each once
    its batch is committed, and remember them in ``tally``."""
    lines: deque[int] = deque()
    deliveries = read_jsonl(_progress(stream, total), lines)
    for outcome in eng.iter_apply(provider, deliveries):
        number = lines.popleft()
        tally.add(number, outcome)
        yield number, outcome


def _who(o: Outcome) -> str:
    what = o.event_type or "(unreadable delivery)"
    return f"{o.invoice_id} {what}" if o.invoice_id else what


def _revised_note(n: int) -> str:
    return (
        f"{n} outcome{'s were' if n != 1 else ' was'} revised by later deliveries: the counts "
        "are as the outcomes stand now (`invoice-engine history` marks them [revised Nx])."
    )


def _summary(final: Final) -> str:
    rows = [[s, str(final.counts[s])] for s in _STATUSES if final.counts[s]]
    rows.append(["total", str(final.total)])
    text = table(rows, ["outcome", "deliveries"])
    if final.revised:
        text += "\n\n" + _revised_note(final.revised)
    if final.caused > final.revised:  # some revised outcomes were recorded before this run
        text += (
            f"\n\nThis run's late deliveries revised {plural(final.caused, 'outcome')} in all, "
            "some recorded before it: `invoice-engine history` shows each invoice's story."
        )
    if final.problems:
        text += "\n\nRejected or invalid:\n"
        text += "\n".join(
            f"  line {n}: {o.status} {visible(_who(o))} — {visible(o.reason or '')}"
            + (f" [revised {o.revisions}x]" if o.revisions else "")
            for n, o in final.problems
        )
        if final.more:
            text += f"\n  … and {final.more:,} more (see `invoice-engine history` or --json)"
    return text


def _json_line(data: dict[str, Any]) -> None:
    sys.stdout.write(json_text(data) + "\n")


def _interrupted(committed: int, last_line: int, source: str) -> click.exceptions.Exit:
    """Ctrl-C: what is kept, and that a re-run continues; exit 130 as for any SIGINT."""
    if committed:
        kept = (
            f"lines 1 to {last_line:,} of {source} are committed "
            f"({plural(committed, 'delivery')}); run the same command again to continue: "
            "those come back as duplicates, the rest are applied"
        )
    else:
        kept = "no line was committed; run the same command again to start over"
    click.echo(f"\nInterrupted: {visible(kept)}.", err=True)
    return click.exceptions.Exit(130)


@main.command()
@click.argument("provider", callback=valid_text)
@click.argument("file", type=click.File("rb"), required=False)
@click.option(
    "--example",
    is_flag=True,
    help="Apply PROVIDER's bundled example stream instead of FILE (to see it: "
    "invoice-engine demo --print-stream PROVIDER).",
)
@click.option(
    "--on-unknown",
    type=click.Choice(["adopt", "reject"]),
    default="adopt",
    show_default=True,
    help="An invoice first seen through a non-creating event: adopt its status, or reject.",
)
@click.option(
    "--strict",
    is_flag=True,
    help="Exit 1 if any delivery ends rejected or invalid (checked after applying every line).",
)
@db_option
@chart_dir_option
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print JSON lines (one object per line) instead of text; see above.",
)
def apply(
    provider: str,
    file: IO[bytes] | None,
    example: bool,
    on_unknown: str,
    strict: bool,
    db_path: str,
    chart_dir: str | None,
    as_json: bool,
) -> None:
    """Apply a JSONL stream of webhook deliveries (FILE, or - for stdin).

    PROVIDER is a chart name (see `invoice-engine charts`) or a path to its YAML file; with
    --example, FILE is the bundled example stream of that provider. Each line is a bare body,
    or {"headers": {...}, "body": ...} where body is an object or the raw JSON string. Lines
    that can't be read are recorded as invalid, with their bytes, and listed with their line
    numbers; they never stop the run. A later line can revise an earlier line's outcome (a late
    event re-folds its invoice): the closing summary counts outcomes as they stand after the run
    and says how many were revised. Exit 0 however the deliveries ended, unless --strict.
    Ctrl-C stops the run (exit 130) saying how many lines are committed; the same command run
    again continues.

    \b
    --json prints JSON lines, so memory stays flat however long FILE is:
      {"kind": "outcome", "line": N, "status": ..., "seq": ..., ...}
          each delivery as decided, printed as its batch commits;
      {"kind": "revised", "line": N, "status": ..., "revisions": R, ...}
          after the run, each outcome a later delivery revised, as it stands now;
      {"kind": "summary", "provider": ..., "deliveries": N, "counts": {...},
       "revised": R, "rejected_or_invalid": P}
          last: the final counts.
    A line's last object is its final outcome.

    Example: invoice-engine apply stripe --example
    """
    name, charts = chart_arg(provider, chart_dir)
    if example and file is not None:
        raise click.UsageError("give FILE or --example, not both")
    if example:
        streams = example_streams()
        if name not in streams:
            raise click.UsageError(
                f"no bundled example stream for {name!r}; there are: {', '.join(streams)}"
            )
        file = click.get_current_context().with_resource(streams[name].open("rb"))
    elif file is None:
        raise click.UsageError("give FILE (a JSONL file, or - for stdin), or --example")
    source = getattr(file, "name", None)
    try:
        total = (
            Path(source).stat().st_size if isinstance(source, str) and source != "<stdin>" else None
        )
    except OSError:
        total = None
    tally = RunTally()
    committed, last_line = 0, 0

    def revised(line: int, o: Outcome) -> None:
        _json_line({"kind": "revised", "line": line, **o.model_dump(mode="json")})

    try:
        with open_engine(
            db_path, chart_dir, readonly=False, on_unknown=on_unknown, charts=charts
        ) as eng:
            eng.chart(name)  # an unknown provider fails before any line is read
            for number, outcome in _run(eng, name, file, total, tally):
                committed, last_line = committed + 1, number
                if as_json:
                    _json_line(
                        {"kind": "outcome", "line": number, **outcome.model_dump(mode="json")}
                    )
            final = tally.final(eng, shown=_SHOWN, on_revised=revised if as_json else None)
    except KeyboardInterrupt:
        shown = "the example stream" if example else repr(source or "the input")
        raise _interrupted(committed, last_line, shown) from None
    if as_json:
        _json_line(
            {
                "kind": "summary",
                "provider": name,
                "deliveries": final.total,
                "counts": {s: final.counts[s] for s in _STATUSES if final.counts[s]},
                "revised": final.revised,
                "caused_revisions": final.caused,
                "rejected_or_invalid": final.failed,
            }
        )
    else:
        click.echo(_summary(final))
    if strict and final.failed:
        raise click.ClickException(
            f"--strict: {plural(final.failed, 'delivery')} ended rejected or invalid"
        )


def _demo_one(eng: Engine, provider: str, stream: IO[bytes]) -> dict[str, Any]:
    tally = RunTally()
    for _ in _run(eng, provider, stream, None, tally):
        pass
    final = tally.final(eng, shown=1_000)
    problems = [
        {"line": n, "status": o.status, "reason": o.reason, "revisions": o.revisions}
        for n, o in final.problems
    ]
    invoices = [inv.model_dump(mode="json") for inv in eng.invoices(provider)]
    counts = {s: final.counts[s] for s in _STATUSES if final.counts[s]}
    return {"counts": counts, "revised": final.revised, "problems": problems, "invoices": invoices}


def _print_stream(ctx: click.Context, _: click.Parameter, value: str | None) -> None:
    """``--print-stream NAME``: the bundled stream's bytes on stdout, and nothing else."""
    if value is None or ctx.resilient_parsing:
        return
    streams = example_streams()
    if value not in streams:
        raise click.BadParameter(
            f"{value!r} is not one of the bundled streams: {', '.join(streams)}"
        )
    sys.stdout.buffer.write(streams[value].read_bytes())
    sys.stdout.buffer.flush()
    ctx.exit(0)


@main.command()
@click.option(
    "--db",
    "db_path",
    default=None,
    envvar="INVOICE_ENGINE_DB",
    show_envvar=True,
    help=f"Database to fill, kept as it is (default: a fresh {DEMO_DB} in the current "
    "folder, replaced on each run).",
)
@click.option(
    "--print-stream",
    metavar="PROVIDER",
    callback=_print_stream,
    expose_value=False,
    is_eager=True,
    help="Print PROVIDER's bundled example stream (JSONL) and exit; apply it with "
    "`invoice-engine apply PROVIDER --example`.",
)
@json_option
def demo(db_path: str | None, as_json: bool) -> None:
    """Run every bundled provider's example webhook stream and show what happened.

    The streams hold duplicates, late and out-of-order events, illegal transitions and a
    malformed delivery each. The default database is replaced on each run; one given with --db
    (or INVOICE_ENGINE_DB) is kept, so a second run shows every delivery as a duplicate. Counts
    are the outcomes as they stand after each stream (a late event can revise an earlier
    one's). --print-stream prints one of the streams, to read or to edit into your own.

    Example: invoice-engine demo
    """
    if db_path is None:
        db_path = DEMO_DB
        for suffix in ("", "-wal", "-shm"):
            Path(db_path + suffix).unlink(missing_ok=True)
    charts = set(available_charts())
    streams = {name: f for name, f in example_streams().items() if name in charts}
    if not streams:
        raise click.ClickException("no example streams found: is invoice-engine installed whole?")
    results: dict[str, Any] = {}
    with open_engine(db_path, None, readonly=False) as eng:
        for name, resource in streams.items():
            with resource.open("rb") as f:
                results[name] = _demo_one(eng, name, f)
    db_path = shown(db_path)
    if as_json:
        emit_json({"db": db_path, "providers": results})
        return
    for provider, r in results.items():
        counts = ", ".join(f"{r['counts'][s]} {s}" for s in _STATUSES if r["counts"].get(s))
        total = plural(sum(r["counts"].values()), "delivery")
        click.secho(f"{provider}: {total} — {counts}", bold=True)
        if r["revised"]:
            click.echo(f"  {_revised_note(r['revised'])}")
        for p in r["problems"][:3]:
            revised = f" [revised {p['revisions']}x]" if p["revisions"] else ""
            reason = visible(clip(p["reason"]))
            click.echo(f"  line {p['line']} {p['status']}{revised}: {reason}")
        rows = [
            [i["invoice_id"], i["state"], i["canonical"], str(i["version"])] for i in r["invoices"]
        ]
        click.echo(
            "  " + table(rows, ["invoice", "state", "canonical", "version"]).replace("\n", "\n  ")
        )
        click.echo()
    click.echo(  # quoted for a shell: a URL's ? and & paste as they are
        f"Stored in {db_path}. Try: invoice-engine history stripe in_1PqA8sDemo0002 "
        f"--db {shlex.quote(db_path)}"
    )
