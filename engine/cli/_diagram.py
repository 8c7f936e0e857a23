"""The diagram command: a chart as Mermaid, DOT, SVG, PNG, SCXML or XState, optionally with one
invoice's path through it highlighted."""

from __future__ import annotations

import base64
import sys
from typing import TYPE_CHECKING, Any, cast

import click

from ..chart import load_chart
from ..diagrams import DIRECTIONS, FORMATS, Direction, HistoryEntry, export, format_for
from ..errors import DiagramError
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
    write_output,
)

if TYPE_CHECKING:
    from ..chart import Chart

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
    callback=valid_text,
    help="Highlight this invoice's path (from --db): its states, steps, rejected events.",
)
@click.option(
    "--direction",
    type=click.Choice(DIRECTIONS),
    default="LR",
    show_default=True,
    help="Which way the picture runs: LR (left to right), TB (top to bottom), RL, BT. "
    "Pictures only (mermaid, dot, svg, png); scxml and xstate have no direction.",
)
@db_option
@chart_dir_option
@json_option
def diagram(
    provider: str,
    fmt: str | None,
    output: str | None,
    invoice_id: str | None,
    direction: str,
    db_path: str,
    chart_dir: str | None,
    as_json: bool,
) -> None:
    """Draw a chart: mermaid, dot, svg, png (svg/png need Graphviz), scxml or xstate JSON.

    PROVIDER is a chart name or a path to its YAML file. Nested states are drawn as composite
    states, a parallel state's regions side by side, initial and final states are marked,
    guards and internal (no-op) transitions are labelled, and states are coloured by canonical
    state. With --invoice, the invoice's states and steps (numbered), its current
    configuration (every active leaf) and its rejected events are highlighted: a picture of
    how it got where it is.

    \b
    --json prints one object instead of the drawing:
      {"format": ..., "provider": ..., "invoice": ... or null, "text": ...}
    with "base64" instead of "text" for PNG, and with -o, "output": FILE instead of either.

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
    elif output is not None:  # -f svg -o y.png would write SVG into a .png: say so instead
        try:
            implied = format_for(output)
        except DiagramError:
            implied = fmt  # a suffix that says nothing: -f decides
        if implied != fmt:
            raise click.UsageError(
                f"-o {output} is a {implied} file name but -f says {fmt}: make them agree"
            )
    if invoice_id is not None and fmt not in _PICTURES:
        raise click.UsageError(
            f"--invoice highlights a picture; use -f {', '.join(_PICTURES)} (not {fmt})"
        )
    if fmt == "png" and output is None and not as_json and sys.stdout.isatty():
        raise click.UsageError("PNG is binary; write it to a file with -o FILE.png")

    if invoice_id is None:
        chart, history = load_chart(provider, chart_dir), None
    else:
        chart, history = _history(db_path, chart_dir, provider, invoice_id)
    way = cast(Direction, direction)
    data = export(chart, fmt, highlight=history, direction=way)

    doc: dict[str, Any] = {"format": fmt, "provider": chart.name, "invoice": invoice_id}
    if output is not None:
        write_output(output, data)
        click.echo(f"Wrote {output} ({fmt})", err=True)
        if as_json:
            emit_json({**doc, "output": output})
    elif as_json:
        if isinstance(data, bytes):
            emit_json({**doc, "base64": base64.b64encode(data).decode("ascii")})
        else:
            emit_json({**doc, "text": data})
    elif isinstance(data, bytes):
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        click.echo(data, nl=False)


def _history(
    db_path: str, chart_dir: str | None, provider: str, invoice_id: str
) -> tuple[Chart, list[HistoryEntry]]:
    """The chart and the invoice's history, read without writing to the database. The chart
    is found as `state` and `history` find it: by path, by name, and for a name only
    --chart-dir holds, an error saying to pass it when the database knows the provider."""
    name, charts = chart_arg(provider, chart_dir)
    with open_engine(db_path, chart_dir, readonly=True, charts=charts) as eng:
        chart = eng.chart(name)
        outcomes = eng.history(name, invoice_id)
    if not outcomes:
        raise click.ClickException(
            f"no deliveries about {name!r} invoice {invoice_id!r} in {shown(db_path)!r}"
        )
    return chart, list(outcomes)
