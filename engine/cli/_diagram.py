"""The diagram command: a chart as Mermaid, DOT, SVG, PNG, SCXML or XState, optionally with one
invoice's path through it highlighted."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import cast

import click

from ..chart import load_chart
from ..diagrams import FORMATS, Direction, HistoryEntry, export, format_for
from ..errors import DiagramError
from ._base import chart_dir_option, db_option, main

_PICTURES = ("mermaid", "dot", "svg", "png")


@main.command()
@click.argument("provider")
@click.option(
    "-f",
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    help="Output format. Default: from the -o file's suffix, else mermaid.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True),
    help="Write to this file instead of stdout (.mmd .dot .gv .svg .png .scxml .json).",
)
@click.option(
    "--invoice",
    "invoice_id",
    help="Highlight this invoice's path (from --db): its states, steps, rejected events.",
)
@click.option(
    "--direction",
    type=click.Choice(["LR", "TB"]),
    default="LR",
    show_default=True,
    help="Pictures: left to right, or top to bottom.",
)
@db_option
@chart_dir_option
def diagram(
    provider: str,
    fmt: str | None,
    output: str | None,
    invoice_id: str | None,
    direction: str,
    db_path: str,
    chart_dir: str | None,
) -> None:
    """Draw a chart: mermaid, dot, svg, png (svg/png need Graphviz), scxml or xstate JSON.

    Nested states are drawn as composite states, initial and final states are marked, guards
    and internal (no-op) transitions are labelled, and states are coloured by canonical state.
    With --invoice, the invoice's states and steps (numbered), its current state and its
    rejected events are highlighted: a picture of how it got where it is.

    Example: invoice-engine diagram stripe -o stripe.svg
    """
    if fmt is None:
        if output is None:
            fmt = "mermaid"
        else:
            try:
                fmt = format_for(output)
            except DiagramError as exc:
                raise click.BadParameter(f"{exc}; or give -f", param_hint="-o/--output") from None
    if invoice_id is not None and fmt not in _PICTURES:
        raise click.UsageError(
            f"--invoice highlights a picture; use -f {', '.join(_PICTURES)} (not {fmt})"
        )
    if fmt == "png" and output is None and sys.stdout.isatty():
        raise click.UsageError("PNG is binary; write it to a file with -o FILE.png")

    chart = load_chart(provider, chart_dir)
    history = None
    if invoice_id is not None:
        history = _history(db_path, chart_dir, chart.name, invoice_id)
    way = cast(Direction, direction)
    data = export(chart, fmt, highlight=history, direction=way)

    if output is None:
        if isinstance(data, bytes):
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        else:
            click.echo(data, nl=False)
        return
    path = Path(output)
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data, encoding="utf-8")
    click.echo(f"Wrote {output} ({fmt})", err=True)


def _history(
    db_path: str, chart_dir: str | None, provider: str, invoice_id: str
) -> list[HistoryEntry]:
    from ..runtime.engine import Engine

    if db_path != ":memory:" and not Path(db_path).exists():
        raise click.ClickException(
            f"no database at {db_path!r}; run `invoice-engine apply` first, or pass --db"
        )
    with Engine(db_path, chart_dir=chart_dir) as eng:
        outcomes = eng.history(provider, invoice_id)
    if not outcomes:
        raise click.ClickException(
            f"no deliveries about {provider!r} invoice {invoice_id!r} in {db_path}"
        )
    return list(outcomes)
