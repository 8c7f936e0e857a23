"""The commands that read the record: state, history, replay.

They open the database read-only (``replay --repair``/``--rechart`` excepted): nothing is
created, upgraded or written, so pointing one at any file leaves it byte-for-byte as it was,
and a missing file is ``Error: no database at …``.
"""

from __future__ import annotations

import click

from ..models import Mismatch, Outcome, ReplayReport
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
from ._text import plural, table, visible

__all__: list[str] = []


@main.command()
@click.argument("provider", callback=valid_text)
@click.argument("invoice_id", callback=valid_text)
@db_option
@chart_dir_option
@json_option
def state(
    provider: str, invoice_id: str, db_path: str, chart_dir: str | None, as_json: bool
) -> None:
    """Show an invoice's current state (exit 1 if it is not known).

    PROVIDER is a chart name (see `invoice-engine charts`) or a path to its YAML file. Reads the
    database without writing to it. A provider without a chart (a misspelt name, or your own
    chart without --chart-dir) is an error, not "no invoice".

    Example: invoice-engine state stripe in_1PqA8sDemo0001
    """
    name, charts = chart_arg(provider, chart_dir)
    with open_engine(db_path, chart_dir, readonly=True, charts=charts) as eng:
        st = eng.state(name, invoice_id)
    if st is None:
        raise click.ClickException(f"no invoice {invoice_id!r} of {name!r} in {shown(db_path)!r}")
    if as_json:
        emit_json(st.model_dump(mode="json"))
    else:
        click.echo(visible(st))


def _when(o: Outcome) -> str:
    if o.occurred_at is None:
        return "-"
    return o.occurred_at.strftime("%Y-%m-%d %H:%M:%S")


@main.command()
@click.argument("provider", callback=valid_text)
@click.argument("invoice_id", callback=valid_text)
@db_option
@chart_dir_option
@json_option
def history(
    provider: str, invoice_id: str, db_path: str, chart_dir: str | None, as_json: bool
) -> None:
    """Show every delivery about an invoice, in the order they count (occurrence time).

    PROVIDER is a chart name or a path to its YAML file. Deliveries that did not count
    (duplicates, superseded retries) come last. An outcome a late event changed is marked
    "revised Nx". Reads the database without writing to it; exit 1 when nothing is known
    about the invoice.

    Example: invoice-engine history stripe in_1PqA8sDemo0002
    """
    name, charts = chart_arg(provider, chart_dir)
    with open_engine(db_path, chart_dir, readonly=True, charts=charts) as eng:
        outs = eng.history(name, invoice_id)
    if not outs:
        raise click.ClickException(
            f"no deliveries about {name!r} invoice {invoice_id!r} in {shown(db_path)!r}"
        )
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
@click.argument("provider", callback=valid_text, required=False)
@click.option(
    "--repair",
    is_flag=True,
    help="Correct the stored outcomes and invoices to what the replay finds; exit 1 (listing "
    "them) if any could not be corrected.",
)
@click.option(
    "--rechart",
    is_flag=True,
    help="Re-decide all of history under the charts as they are now (after you edited one), "
    "each event under the on-unknown policy it came under, recording each changed outcome as "
    "a revision (the report counts them). Without it, each event is judged under the chart it "
    "was decided with.",
)
@click.option(
    "--on-unknown",
    type=click.Choice(["adopt", "reject"]),
    default=None,
    help="With --rechart: the policy for events recorded before invoice-engine recorded "
    "policies (schema 1 databases; default: adopt). Every other event keeps its own.",
)
@db_option
@chart_dir_option
@json_option
def replay(
    provider: str | None,
    repair: bool,
    rechart: bool,
    on_unknown: str | None,
    db_path: str,
    chart_dir: str | None,
    as_json: bool,
) -> None:
    """Rebuild every invoice from its events and compare with what is stored.

    PROVIDER (a chart name or a path to its YAML file) limits it to that provider's invoices.
    Each event is decided again under the chart and policy recorded with it; events decided
    under an earlier version of a chart are reported as notes. Without --repair or --rechart
    the database is only read. Exit 0 when the stored state agrees with the events (after
    --repair: when every mismatch was corrected), else 1, listing what differs.

    Example: invoice-engine replay stripe
    """
    if on_unknown is not None and not rechart:
        raise click.UsageError(
            "--on-unknown only matters with --rechart: replay otherwise judges each event under "
            "the policy it was recorded with"
        )
    writes = repair or rechart
    kw = {"on_unknown": on_unknown or "adopt"} if rechart else {}
    name, charts = chart_arg(provider, chart_dir) if provider is not None else (None, {})
    with open_engine(db_path, chart_dir, readonly=not writes, charts=charts, **kw) as eng:
        report = eng.replay(name, repair=repair, rechart=rechart)
    if as_json:
        emit_json({**report.model_dump(mode="json"), "ok": report.ok})
    else:
        click.echo(_report_text(report))
    if not report.ok:
        problem = "could not repair" if report.repaired else "found"
        n = len(report.unrepaired if report.repaired else report.mismatches)
        raise click.ClickException(f"replay {problem} {plural(n, 'mismatch')}")


def _mismatch(m: Mismatch) -> str:
    return visible(
        f"{m.provider}/{m.invoice_id}: {m.what}: stored {m.stored!r}, replayed {m.replayed!r}"
    )


def _report_text(report: ReplayReport, shown: int = 50) -> str:
    """A replay report for people: counted words, every stored value :func:`visible`."""
    head = f"replayed {plural(report.events, 'event')} over {plural(report.invoices, 'invoice')}: "
    if not report.mismatches:
        lines = [head + "no mismatch"]
    else:
        lines = [head + plural(len(report.mismatches), "mismatch")]
        lines += [f"  {_mismatch(m)}" for m in report.mismatches[:shown]]
        if report.repaired:
            fixed = len(report.mismatches) - len(report.unrepaired)
            lines.append(f"repaired {fixed}; could not repair {len(report.unrepaired)}")
            lines += [f"  {_mismatch(m)}" for m in report.unrepaired[:shown]]
    if report.revised:
        lines.append(f"rewrote {plural(report.revised, 'outcome')} (each kept as a revision)")
    lines += [f"note: {visible(n)}" for n in report.notes]
    return "\n".join(lines)
