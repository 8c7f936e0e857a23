"""Engine commands that write: apply, demo.

``apply`` streams a JSONL file of deliveries through :meth:`Engine.iter_apply`, so memory stays
flat however long the file (with --json too: it prints JSON lines as each batch commits). A
line is a bare body or ``{"headers": {...}, "body": ...}``; a line that is not JSON is still
applied, as raw bytes, so it is stored as ``invalid`` with the exact bytes received and
reported with its line number. Bad lines never stop a run. Summaries count outcomes as they
stand after the run (see :mod:`._tally`).
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click

from ..chart import available_charts
from ..models import Outcome
from ..runtime.delivery import MAX_BODY_BYTES, Oversized
from ._base import (
    chart_dir_option,
    db_option,
    emit_json,
    json_option,
    main,
    open_engine,
    table,
    valid_text,
)
from ._tally import Final, RunTally

if TYPE_CHECKING:  # imported where used: chart-only commands start faster without SQLite
    from ..runtime.engine import Delivery, Engine

__all__ = ["example_streams_dir", "read_jsonl"]

_STATUSES = ("applied", "unchanged", "duplicate", "ignored", "rejected", "invalid")
_SHOWN = 10  # rejections / invalid lines listed after an apply
DEMO_DB = "invoice-engine-demo.db"


def example_streams_dir() -> Path:
    """The folder of bundled example streams (``PROVIDER.jsonl``).

    In a wheel they sit inside the package (``engine/examples``); in a source checkout (and an
    editable install) they are the repository's ``examples/streams/``.
    """
    here = Path(__file__).resolve().parent.parent
    inside = here / "examples"
    return inside if inside.is_dir() else here.parent / "examples" / "streams"


def _delivery(line: bytes) -> Delivery:
    """One JSONL line as a delivery; anything not an envelope is the body, bytes as received."""
    try:
        doc = json.loads(line)
    except (ValueError, RecursionError):  # not JSON, or nested too deep: the engine says which
        return line
    if isinstance(doc, dict) and "body" in doc and set(doc) <= {"headers", "body"}:
        headers = doc.get("headers")
        body = doc["body"]
        if isinstance(body, str | dict) and (headers is None or isinstance(headers, dict)):
            return (body, headers)
    return line


def read_jsonl(
    stream: Iterable[bytes | Oversized], lines: deque[int] | None = None
) -> Iterator[Delivery]:
    """Deliveries from a JSONL byte stream, skipping blank lines.

    Args:
        stream: the open file.
        lines: if given, each yielded delivery's 1-based line number is appended to it, so the
            caller can pair outcomes with lines without holding the whole file.
    """
    for number, raw in enumerate(stream, 1):
        if isinstance(raw, Oversized):  # a line too long to hold: its head, size and hash
            if lines is not None:
                lines.append(number)
            yield raw
            continue
        line = raw.rstrip(b"\r\n")
        if not line.strip():
            continue
        if lines is not None:
            lines.append(number)
        yield _delivery(line)


#: The longest JSONL line held in memory: a body at the limit, escaped in an envelope.
MAX_LINE_BYTES = 2 * MAX_BODY_BYTES + 64 * 1024


def bounded_lines(stream: IO[bytes]) -> Iterator[bytes | Oversized]:
    """The stream's lines, never holding more than ``MAX_LINE_BYTES`` of one: a longer line is
    read through in chunks and given as :class:`Oversized` (its head, size and SHA-256)."""
    while True:
        line = stream.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        if len(line) <= MAX_LINE_BYTES or line.endswith(b"\n"):
            yield line
            continue
        digest = hashlib.sha256(line)
        head, size = line[:MAX_BODY_BYTES], len(line)
        while not line.endswith(b"\n"):
            line = stream.readline(1024 * 1024)
            if not line:
                break
            digest.update(line)
            size += len(line)
        yield Oversized(head, size, digest.hexdigest())


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
            f"\n\nThis run's late deliveries revised {final.caused} outcomes in all, some "
            "recorded before it: `invoice-engine history` shows each invoice's story."
        )
    if final.problems:
        text += "\n\nRejected or invalid:\n"
        text += "\n".join(
            f"  line {n}: {o.status} {_who(o)} — {o.reason}"
            + (f" [revised {o.revisions}x]" if o.revisions else "")
            for n, o in final.problems
        )
        if final.more:
            text += f"\n  … and {final.more} more (see `invoice-engine history` or --json)"
    return text


def _json_line(data: dict[str, Any]) -> None:
    click.echo(json.dumps(data, default=str, ensure_ascii=False, separators=(",", ":")))


@main.command()
@click.argument("provider", callback=valid_text)
@click.argument("file", type=click.File("rb"))
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
    file: IO[bytes],
    on_unknown: str,
    strict: bool,
    db_path: str,
    chart_dir: str | None,
    as_json: bool,
) -> None:
    """Apply a JSONL stream of webhook deliveries (FILE, or - for stdin).

    Each line is a bare body, or {"headers": {...}, "body": ...} where body is an object or the
    raw JSON string. Lines that can't be read are recorded as invalid, with their bytes, and
    listed with their line numbers; they never stop the run. A later line can revise an earlier
    line's outcome (a late event re-folds its invoice): the closing summary counts outcomes as
    they stand after the run and says how many were revised. Exit 0 however the deliveries
    ended, unless --strict.

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

    Example: invoice-engine apply stripe examples/streams/stripe.jsonl --strict
    """
    name = getattr(file, "name", None)
    try:
        total = Path(name).stat().st_size if isinstance(name, str) and name != "<stdin>" else None
    except OSError:
        total = None
    tally = RunTally()

    def revised(line: int, o: Outcome) -> None:
        _json_line({"kind": "revised", "line": line, **o.model_dump(mode="json")})

    with open_engine(db_path, chart_dir, readonly=False, on_unknown=on_unknown) as eng:
        eng.chart(provider)  # an unknown provider fails before any line is read
        for number, outcome in _run(eng, provider, file, total, tally):
            if as_json:
                _json_line({"kind": "outcome", "line": number, **outcome.model_dump(mode="json")})
        final = tally.final(eng, shown=_SHOWN, on_revised=revised if as_json else None)
    if as_json:
        _json_line(
            {
                "kind": "summary",
                "provider": provider,
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
        n = final.failed
        raise click.ClickException(
            f"--strict: {n} deliver{'ies' if n != 1 else 'y'} ended rejected or invalid"
        )


def _demo_one(eng: Engine, provider: str, path: Path) -> dict[str, Any]:
    tally = RunTally()
    with path.open("rb") as f:
        for _ in _run(eng, provider, f, None, tally):
            pass
    final = tally.final(eng, shown=1_000)
    problems = [
        {"line": n, "status": o.status, "reason": o.reason, "revisions": o.revisions}
        for n, o in final.problems
    ]
    invoices = [inv.model_dump(mode="json") for inv in eng.invoices(provider)]
    counts = {s: final.counts[s] for s in _STATUSES if final.counts[s]}
    return {"counts": counts, "revised": final.revised, "problems": problems, "invoices": invoices}


@main.command()
@click.option(
    "--db",
    "db_path",
    default=None,
    help=f"Database to fill (default: a fresh {DEMO_DB} in the current folder).",
)
@json_option
def demo(db_path: str | None, as_json: bool) -> None:
    """Run every bundled provider's example webhook stream and show what happened.

    The streams hold duplicates, late and out-of-order events, illegal transitions and a
    malformed delivery each. The default database is replaced on each run; one given with --db
    is kept, so a second run shows every delivery as a duplicate. Counts are the outcomes as
    they stand after each stream (a late event can revise an earlier one's).

    Example: invoice-engine demo
    """
    if db_path is None:
        db_path = DEMO_DB
        for suffix in ("", "-wal", "-shm"):
            Path(db_path + suffix).unlink(missing_ok=True)
    streams = example_streams_dir()
    charts = set(available_charts())
    files = sorted(p for p in streams.glob("*.jsonl") if p.stem in charts)
    if not files:
        raise click.ClickException(f"no example streams found in {streams}")
    results: dict[str, Any] = {}
    with open_engine(db_path, None, readonly=False) as eng:
        for path in files:
            results[path.stem] = _demo_one(eng, path.stem, path)
    if as_json:
        emit_json({"db": db_path, "providers": results})
        return
    for provider, r in results.items():
        counts = ", ".join(f"{r['counts'][s]} {s}" for s in _STATUSES if r["counts"].get(s))
        click.secho(f"{provider}: {sum(r['counts'].values())} deliveries — {counts}", bold=True)
        if r["revised"]:
            click.echo(f"  {_revised_note(r['revised'])}")
        for p in r["problems"][:3]:
            revised = f" [revised {p['revisions']}x]" if p["revisions"] else ""
            click.echo(f"  line {p['line']} {p['status']}{revised}: {_clip(p['reason'])}")
        rows = [
            [i["invoice_id"], i["state"], i["canonical"], str(i["version"])] for i in r["invoices"]
        ]
        click.echo(
            "  " + table(rows, ["invoice", "state", "canonical", "version"]).replace("\n", "\n  ")
        )
        click.echo()
    click.echo(
        f"Stored in {db_path}. Try: invoice-engine history stripe in_1PqA8sDemo0002 --db {db_path}"
    )


def _clip(text: str | None, width: int = 110) -> str:
    text = text or ""
    return text if len(text) <= width else text[: width - 1] + "…"
