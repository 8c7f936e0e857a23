"""Chart commands: charts, show, lint, schema, check."""

from __future__ import annotations

import click

from ..machine import available_charts, load_chart
from ._base import chart_dir_option, emit_json, json_option, main, table


@main.command()
@chart_dir_option
@json_option
def charts(chart_dir: str | None, as_json: bool) -> None:
    """List the available charts (bundled, plus those in --chart-dir).

    Example: invoice-engine charts
    """
    rows = []
    for name in available_charts(chart_dir):
        chart = load_chart(name, chart_dir)
        rows.append(
            {
                "name": name,
                "title": chart.spec.title,
                "states": len(chart.states),
                "triggers": len(chart.triggers),
                "events": len(chart.spec.events),
                "path": str(chart.path),
            }
        )
    if as_json:
        emit_json(rows)
        return
    click.echo(
        table(
            [[r["name"], str(r["states"]), str(r["triggers"]), str(r["events"]), r["title"]]
             for r in rows],
            ["chart", "states", "triggers", "events", "title"],
        )
    )
