"""Chart commands: charts, show, lint (schema and check are in :mod:`._check`).

None of them needs a database: they read chart files and ask the validator. A chart is named by
its provider (``stripe``, or a name in ``--chart-dir``) or given as a path to a YAML file.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..chart import available_charts, load_chart
from ..errors import ChartError, UnknownState
from ._base import (
    chart_dir_option,
    emit_json,
    is_chart_path,
    json_option,
    main,
    replaced_bundled,
)
from ._text import plural, table, visible

if TYPE_CHECKING:
    from ..chart import Chart
    from ..chart.lint import Finding
    from ..chart.spec import EventSpec


@main.command()
@chart_dir_option
@json_option
def charts(chart_dir: str | None, as_json: bool) -> None:
    """List the available charts (bundled, plus those in --chart-dir), with their files.

    A chart that fails to load is listed with its error instead of stopping the list (with
    --json: every problem, each with its line, column, where and message, and the command that
    lints it). A chart in --chart-dir named like a bundled one replaces it; the list says so.

    Example: invoice-engine charts --chart-dir ./my_charts
    """
    bundled = set(available_charts())
    replaced = replaced_bundled(chart_dir)
    rows: list[dict[str, Any]] = []
    for name in available_charts(chart_dir):
        where = {"bundled": name in bundled and name not in replaced}
        where["replaces_bundled"] = name in replaced
        try:
            chart = load_chart(name, chart_dir)
        except ChartError as exc:
            more = len(exc.problems) - 1
            hint = f"invoice-engine lint {shlex.quote(exc.source)}"
            error = str(exc.problems[0]) + (
                f" (and {plural(more, 'more problem')}: {hint})" if more else ""
            )
            rows.append(
                {
                    "name": name,
                    "error": error,
                    "problems": problems_json(exc),
                    "hint": hint,
                    "path": exc.source,
                    **where,
                }
            )
            continue
        rows.append(
            {
                "name": name,
                "title": chart.spec.title,
                "states": len(chart.states),
                "triggers": len(chart.triggers),
                "events": len(chart.spec.events),
                "path": str(chart.path),
                **where,
            }
        )
    if as_json:
        emit_json(rows)
        return

    def file(r: dict[str, Any]) -> str:
        if r["bundled"]:
            return "(bundled)"
        return str(r["path"]) + (" (replaces the bundled chart)" if r["replaces_bundled"] else "")

    click.echo(
        table(
            [
                [r["name"], "-", "-", "-", f"BROKEN: {r['error']}", file(r)]
                if "error" in r
                else [
                    r["name"],
                    str(r["states"]),
                    str(r["triggers"]),
                    str(r["events"]),
                    r["title"] or "",
                    file(r),
                ]
                for r in rows
            ],
            ["chart", "states", "triggers", "events", "title", "file"],
        )
    )


# ----------------------------------------------------------------------------------- show


def problems_json(exc: ChartError) -> list[dict[str, Any]]:
    """A broken chart's problems for ``--json``: each with its line and column (``null`` when
    not known), where (the state or transition and the place in the chart), its message and,
    for one of lint's errors, the rule."""
    return [
        {
            "line": p.line,
            "column": p.column,
            "where": p.where,
            "message": p.problem,
            "rule": p.rule or None,
        }
        for p in exc.problems
    ]


def _leaf_canonical(chart: Chart, leaf: str) -> str | None:
    """A leaf's canonical state; in a parallel state, the one every configuration with it
    shares (``None`` when its table of rules gives them different ones)."""
    try:
        return chart.canonical(leaf)
    except UnknownState:
        return None


def _event_meaning(ev: EventSpec) -> str:
    if ev.kind == "trigger":
        text = f"trigger {ev.trigger}"
    elif ev.kind == "create":
        text = "create (in the status snapshot's state)"
    elif ev.kind == "follow_status":
        text = "follow the status snapshot" + (f" of region {ev.region}" if ev.region else "")
    else:
        text = "info" + (f" (legal in {', '.join(ev.states)})" if ev.states else "")
    return text + ("; invoice id optional" if ev.invoice_optional else "")


def _describe(chart: Chart) -> dict[str, Any]:
    spec = chart.spec
    return {
        "provider": chart.name,
        "title": spec.title,
        "path": str(chart.path) if chart.path else None,
        "sources": spec.sources,
        "initial": chart.initial_states,
        "states": [
            {
                "name": s,
                "canonical": _leaf_canonical(chart, s),
                "final": chart.is_final(s),
                "initial": any(s in c.leaves for c in chart.initial_states),
                "description": chart.tree.description(s),
                "region": chart.tree.region_of(s),
            }
            for s in chart.tree.leaves
        ],
        # What an invoice can be in: one leaf each, but for a chart with parallel states.
        "configurations": [
            {
                "name": c,
                "canonical": chart.canonical(c),
                "final": chart.is_final(c),
                "initial": c in chart.initial_states,
            }
            for c in chart.states
        ],
        "transitions": [
            {
                "trigger": t.trigger,
                "source": t.source,
                "dest": t.dest,
                "internal": t.internal,
                "guard": None if t.guard is None else str(t.guard),
                "description": t.description,
            }
            for t in spec.transitions
        ],
        "events": [
            {"event": name, "meaning": _event_meaning(ev), **ev.model_dump(mode="json")}
            for name, ev in spec.events.items()
        ],
        "delivery": spec.delivery.model_dump(mode="json", exclude_none=True),
    }


@main.command()
@click.argument("provider")
@chart_dir_option
@json_option
def show(provider: str, chart_dir: str | None, as_json: bool) -> None:
    """Show a chart's states, transitions, events and delivery map.

    PROVIDER is a chart name (see `invoice-engine charts`) or a path to a YAML file. A chart
    that doesn't load is an error listing every problem; with --json, they are also printed as
    one JSON document ({"provider", "path", "loads": false, "problems": [...]}), and the exit
    code is still 1.

    Example: invoice-engine show stripe
    """
    try:
        chart = load_chart(provider, chart_dir)
    except ChartError as exc:
        if as_json:
            emit_json(
                {
                    "provider": provider,
                    "path": exc.source,
                    "loads": False,
                    "problems": problems_json(exc),
                }
            )  # the answer on stdout; as every exit 1, an `Error:` line on stderr too
        raise
    info = _describe(chart)
    if as_json:
        emit_json(info)
        return
    default = chart.initial_states[0]
    click.echo(visible(f"{chart.name}: {info['title'] or '(untitled)'}  ({info['path']})"))
    click.echo(visible(f"initial: {', '.join(chart.initial_states)}") + "\n")
    state_rows = [
        [
            s["name"],
            s["canonical"] or "(by rule)",
            "yes" if s["final"] else "",
            ("default" if s["name"] == default else "yes") if s["initial"] else "",
            s["description"],
        ]
        for s in info["states"]
    ]
    click.echo(table(state_rows, ["state", "canonical", "final", "initial", "description"]))
    if chart.tree.parallel:  # the combinations an invoice can be in, each with its canonical
        config_rows = [
            [c["name"], c["canonical"], "yes" if c["initial"] else ""]
            for c in info["configurations"]
            if "+" in c["name"]
        ]
        click.echo("\n" + table(config_rows, ["configuration", "canonical", "initial"]))
    transition_rows = [
        [
            t["trigger"],
            ", ".join(t["source"]),
            "(internal)" if t["internal"] else t["dest"],
            t["guard"] or "",
        ]
        for t in info["transitions"]
    ]
    click.echo("\n" + table(transition_rows, ["trigger", "source", "dest", "guard"]))
    event_rows = [[e["event"], e["meaning"]] for e in info["events"]]
    click.echo("\n" + table(event_rows, ["event", "meaning"]))
    click.echo("\ndelivery:")
    for key, value in info["delivery"].items():
        if not value:
            continue
        if isinstance(value, dict) and key == "statuses":
            click.echo(f"  {key}:")
            click.echo("".join(f"    {k!r} -> {visible(v)}\n" for k, v in value.items()), nl=False)
        elif isinstance(value, dict):
            click.echo(visible(f"  {key}: {', '.join(f'{k} {v}' for k, v in value.items())}"))
        elif isinstance(value, list):
            click.echo(visible(f"  {key}: {' + '.join(value)}"))
        else:
            click.echo(visible(f"  {key}: {value}"))


# ----------------------------------------------------------------------------------- lint


def _lint_one(target: str, chart_dir: str | None) -> tuple[str, str, list[Finding]]:
    """A chart's name, its file (as given, for a path) and its findings."""
    from ..chart.lint import invalid, lint

    try:
        chart = load_chart(target, chart_dir, enforce_lint=False)  # lint reports each error
    except ChartError as exc:
        name = Path(exc.source).stem if exc.source.endswith((".yaml", ".yml")) else target
        shown = target if is_chart_path(target) else exc.source
        return name, shown, invalid(exc)  # every problem, each with its line
    return chart.name, target if is_chart_path(target) else str(chart.path), lint(chart)


def _finding_text(path: str, f: Finding) -> str:
    """``PATH:LINE:COL: severity: message [rule]``, as compilers say it (editors and terminals
    make it a link); a problem of a chart that doesn't load also says where it is."""
    place = path
    if f.line is not None:
        place += f":{f.line}" + (f":{f.column}" if f.column is not None else "")
    what = f"{f.target}: {f.message}" if f.rule == "invalid" and f.target != "(file)" else f.message
    return f"{place}: {f.severity}: {what} [{f.rule}]"


@main.command(name="lint")
@click.argument("targets", metavar="[CHART|PATH]...", nargs=-1)
@click.option("--strict", is_flag=True, help="Fail on warnings too, not only errors.")
@chart_dir_option
@json_option
def lint_command(
    targets: tuple[str, ...], strict: bool, chart_dir: str | None, as_json: bool
) -> None:
    """Check charts for structural mistakes (default: all charts).

    Reports unreachable states, dead ends, final states with a way out, states that can never
    finish, unguarded nondeterminism, unknown triggers and canonical-state problems; a chart
    that doesn't load is reported as `invalid`. Exits 1 when there are errors (with --strict,
    warnings too). A chart excuses a finding on purpose in its `lint_exceptions`.

    Each finding is printed as PATH:LINE:COL: severity: message [rule].

    Example: invoice-engine lint stripe ./my_charts/acme.yaml
    """
    for target in targets:
        if Path(target).is_dir():
            raise click.ClickException(
                f"{target!r} is a folder: lint its charts with --chart-dir {shlex.quote(target)}"
            )
    names = list(targets) or available_charts(chart_dir)
    results = [_lint_one(t, chart_dir) for t in names]
    errors = sum(f.severity == "error" for _, _, fs in results for f in fs)
    warnings = sum(f.severity == "warning" for _, _, fs in results for f in fs)
    if as_json:
        emit_json(
            {
                "charts": [
                    {"chart": n, "path": p, "findings": [f.model_dump() for f in fs]}
                    for n, p, fs in results
                ],
                "errors": errors,
                "warnings": warnings,
            }
        )
    else:
        for name, path, findings in results:
            if not findings:
                click.echo(visible(f"{name}: ok ({path})"))
            for f in findings:
                click.echo(visible(_finding_text(path, f)))
        click.echo(
            f"{plural(len(results), 'chart')}: {plural(errors, 'error')}, "
            f"{plural(warnings, 'warning')}"
        )
    if errors or (strict and warnings):
        click.get_current_context().exit(1)
