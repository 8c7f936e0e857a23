"""Engine commands: apply, state, history, replay, demo.

``apply`` streams a JSONL file of deliveries through :meth:`Engine.iter_apply`, so memory stays
flat however long the file. A line is a bare body or ``{"headers": {...}, "body": ...}``; a line
that is not JSON is still applied, as raw bytes, so it is stored as ``invalid`` with the exact
bytes received and reported with its line number. Bad lines never stop a run.
"""

from __future__ import annotations

import json
import sys
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click

from ..chart import available_charts
from ..models import Outcome
from ._base import chart_dir_option, db_option, emit_json, json_option, main, table

if TYPE_CHECKING:  # imported where used: chart-only commands start faster without SQLite
    from ..runtime.engine import Delivery, Engine

__all__ = ["example_streams_dir", "read_jsonl"]

_STATUSES = ("applied", "unchanged", "duplicate", "rejected", "invalid")
_SHOWN = 10  # rejections / invalid lines listed after a run
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


def read_jsonl(stream: Iterable[bytes], lines: deque[int] | None = None) -> Iterator[Delivery]:
    """Deliveries from a JSONL byte stream, skipping blank lines.

    Args:
        stream: the open file.
        lines: if given, each yielded delivery's 1-based line number is appended to it, so the
            caller can pair outcomes with lines without holding the whole file.
    """
    for number, raw in enumerate(stream, 1):
        line = raw.rstrip(b"\r\n")
        if not line.strip():
            continue
        if lines is not None:
            lines.append(number)
        yield _delivery(line)


def _progress(stream: IO[bytes], total: int | None) -> Iterator[bytes]:
    """The stream's lines, with a progress display on stderr when stderr is a terminal."""
    if not sys.stderr.isatty():
        yield from stream
        return
    if total:
        with click.progressbar(length=total, label="Applying", file=sys.stderr) as bar:
            for raw in stream:
                bar.update(len(raw))
                yield raw
        return
    n = 0
    for n, raw in enumerate(stream, 1):
        if n % 1000 == 0:
            click.echo(f"\rApplied {n:,} lines", err=True, nl=False)
        yield raw
    click.echo(f"\rApplied {n:,} lines", err=True)


def _run(
    eng: Engine, provider: str, stream: IO[bytes], total: int | None
) -> Iterator[tuple[int, Outcome]]:
    """Apply a JSONL stream; yield (line number, outcome) pairs in order."""
    lines: deque[int] = deque()
    deliveries = read_jsonl(_progress(stream, total), lines)
    for outcome in eng.iter_apply(provider, deliveries):
        yield lines.popleft(), outcome


def _summary(counts: Counter[str], problems: list[tuple[int, Outcome]], dropped: int) -> str:
    rows = [[s, str(counts[s])] for s in _STATUSES if counts[s]]
    rows.append(["total", str(sum(counts.values()))])
    text = table(rows, ["outcome", "deliveries"])
    if problems:
        text += "\n\nRejected or invalid:\n"
        text += "\n".join(f"  line {n}: {o.status} {_who(o)} — {o.reason}" for n, o in problems)
        if dropped:
            text += f"\n  … and {dropped} more (see `invoice-engine history` or --json)"
    return text


def _who(o: Outcome) -> str:
    what = o.event_type or "(unreadable delivery)"
    return f"{o.invoice_id} {what}" if o.invoice_id else what


def _engine(db_path: str, chart_dir: str | None, *, must_exist: bool, **kw: Any) -> Engine:
    if must_exist and db_path != ":memory:" and not Path(db_path).exists():
        raise click.ClickException(
            f"no database at {db_path!r}; run `invoice-engine apply` first, or pass --db"
        )
    from ..runtime.engine import Engine

    return Engine(db_path, chart_dir=chart_dir, **kw)


@main.command()
@click.argument("provider")
@click.argument("file", type=click.File("rb"))
@click.option(
    "--on-unknown",
    type=click.Choice(["adopt", "reject"]),
    default="adopt",
    show_default=True,
    help="An invoice first seen through a non-creating event: adopt its status, or reject.",
)
@db_option
@chart_dir_option
@json_option
def apply(
    provider: str,
    file: IO[bytes],
    on_unknown: str,
    db_path: str,
    chart_dir: str | None,
    as_json: bool,
) -> None:
    """Apply a JSONL stream of webhook deliveries (FILE, or - for stdin).

    Each line is a bare body, or {"headers": {...}, "body": ...} where body is an object or the
    raw JSON string. Lines that can't be read are recorded as invalid, with their bytes, and
    listed with their line numbers; they never stop the run. Ends with a summary by outcome.

    Example: invoice-engine apply stripe examples/streams/stripe.jsonl
    """
    name = getattr(file, "name", None)
    try:
        total = Path(name).stat().st_size if isinstance(name, str) and name != "<stdin>" else None
    except OSError:
        total = None
    counts: Counter[str] = Counter()
    problems: list[tuple[int, Outcome]] = []
    dropped = 0
    rows: list[dict[str, Any]] = []
    with _engine(db_path, chart_dir, must_exist=False, on_unknown=on_unknown) as eng:
        eng.chart(provider)  # an unknown provider fails before any line is read
        for number, outcome in _run(eng, provider, file, total):
            counts[outcome.status] += 1
            if as_json:
                rows.append({"line": number, **outcome.model_dump(mode="json")})
            elif outcome.status in ("rejected", "invalid"):
                if len(problems) < _SHOWN:
                    problems.append((number, outcome))
                else:
                    dropped += 1
    if as_json:
        emit_json({"provider": provider, "counts": dict(counts), "outcomes": rows})
    else:
        click.echo(_summary(counts, problems, dropped))


@main.command()
@click.argument("provider")
@click.argument("invoice_id")
@db_option
@chart_dir_option
@json_option
def state(
    provider: str, invoice_id: str, db_path: str, chart_dir: str | None, as_json: bool
) -> None:
    """Show an invoice's current state (exit 1 if it is not known).

    Example: invoice-engine state stripe in_1PqA8sDemo0001
    """
    with _engine(db_path, chart_dir, must_exist=True) as eng:
        st = eng.state(provider, invoice_id)
    if st is None:
        raise click.ClickException(f"no invoice {invoice_id!r} of {provider!r} in {db_path!r}")
    if as_json:
        emit_json(st.model_dump(mode="json"))
    else:
        click.echo(str(st))


def _when(o: Outcome) -> str:
    if o.occurred_at is None:
        return "-"
    return o.occurred_at.strftime("%Y-%m-%d %H:%M:%S")


@main.command()
@click.argument("provider")
@click.argument("invoice_id")
@db_option
@chart_dir_option
@json_option
def history(
    provider: str, invoice_id: str, db_path: str, chart_dir: str | None, as_json: bool
) -> None:
    """Show every delivery about an invoice, in the order they count (occurrence time).

    Deliveries that did not count (duplicates, superseded retries) come last. An outcome a
    late event changed is marked "revised Nx".

    Example: invoice-engine history stripe in_1PqA8sDemo0002
    """
    with _engine(db_path, chart_dir, must_exist=True) as eng:
        outs = eng.history(provider, invoice_id)
    if not outs:
        raise click.ClickException(f"no deliveries about {provider!r} invoice {invoice_id!r}")
    if as_json:
        emit_json([o.model_dump(mode="json") for o in outs])
        return
    rows = []
    for o in outs:
        move = f"{o.from_state or '∅'} → {o.to_state or '∅'}"
        note = o.reason or ""
        if o.adopted:
            note = "(adopted) " + note
        if o.revisions:
            note = f"[revised {o.revisions}x] " + note
        rows.append(
            [f"#{o.seq}", _when(o), o.event_type or "?", o.trigger or "-", move, o.status, note]
        )
    click.echo(table(rows, ["seq", "occurred", "event", "trigger", "from → to", "outcome", "note"]))


@main.command()
@click.argument("provider", required=False)
@click.option("--repair", is_flag=True, help="Correct stored rows to what the replay finds.")
@db_option
@chart_dir_option
@json_option
def replay(
    provider: str | None, repair: bool, db_path: str, chart_dir: str | None, as_json: bool
) -> None:
    """Rebuild every invoice from its events and compare with what is stored.

    Exit code 1 when there are mismatches (unless --repair corrected them).

    Example: invoice-engine replay stripe
    """
    with _engine(db_path, chart_dir, must_exist=True) as eng:
        report = eng.replay(provider, repair=repair)
    if as_json:
        emit_json({**report.model_dump(mode="json"), "ok": report.ok})
    else:
        click.echo(str(report) + (" (repaired)" if repair and not report.ok else ""))
    if not report.ok and not repair:
        click.get_current_context().exit(1)


def _demo_one(eng: Engine, provider: str, path: Path) -> dict[str, Any]:
    counts: Counter[str] = Counter()
    problems: list[dict[str, Any]] = []
    with path.open("rb") as f:
        for number, o in _run(eng, provider, f, None):
            counts[o.status] += 1
            if o.status in ("rejected", "invalid"):
                problems.append({"line": number, "status": o.status, "reason": o.reason})
    invoices = [inv.model_dump(mode="json") for inv in eng.invoices(provider)]
    return {"counts": dict(counts), "problems": problems, "invoices": invoices}


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
    is kept, so a second run shows every delivery as a duplicate.

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
    from ..runtime.engine import Engine

    with Engine(db_path) as eng:
        for path in files:
            results[path.stem] = _demo_one(eng, path.stem, path)
    if as_json:
        emit_json({"db": db_path, "providers": results})
        return
    for provider, r in results.items():
        counts = ", ".join(f"{r['counts'][s]} {s}" for s in _STATUSES if r["counts"].get(s))
        click.secho(f"{provider}: {sum(r['counts'].values())} deliveries — {counts}", bold=True)
        for p in r["problems"][:3]:
            click.echo(f"  line {p['line']} {p['status']}: {_clip(p['reason'])}")
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
