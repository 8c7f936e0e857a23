"""Chart commands that answer a question: schema (what a chart file may hold), check (is a
trigger sequence legal?). Neither needs a database."""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

import click

from ..chart import load_chart
from ..errors import TransitionNotAllowed
from ._base import chart_dir_option, emit_json, json_option, main, write_output
from ._text import visible

if TYPE_CHECKING:
    from ..chart import Chart


# --------------------------------------------------------------------------------- schema


@main.command()
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, writable=True),
    help="Write the schema to this file instead of stdout.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Accepted for symmetry with every other command: the schema is JSON already.",
)
def schema(output: str | None, as_json: bool) -> None:
    """Print the JSON Schema of chart files, for editors and tools.

    A copy is shipped as statecharts/statechart.schema.json; point your editor's YAML support
    at it (e.g. `# yaml-language-server: $schema=statechart.schema.json` atop a chart). The
    output is one JSON document, with or without --json.

    Example: invoice-engine schema -o statechart.schema.json
    """
    from ..chart.spec import ChartSpec

    text = json.dumps(ChartSpec.model_json_schema(), indent=2, ensure_ascii=False) + "\n"
    if output is None:
        click.echo(text, nl=False)
        return
    write_output(output, text)
    click.echo(f"Wrote {output}", err=True)


# ---------------------------------------------------------------------------------- check


def _hint(chart: Chart, triggers: list[str], payload: Any, exc: TransitionNotAllowed) -> str:
    """What to try instead: a start state from which the whole sequence is legal, or why not."""
    items = [(t, payload) for t in triggers]
    starts = sorted(chart.states, key=lambda s: (chart.depth(s), chart.states.index(s)))
    for start in starts:
        if chart.is_final(start):
            continue
        try:
            chart.check(items, start=start)
        except TransitionNotAllowed:
            continue
        return f"Try --from {start}"
    if exc.reason and "is false" in exc.reason:
        return "Its guard reads the payload: pass one with --payload '{...}'"
    if chart.is_final(exc.state):
        return f"{exc.state!r} is final: nothing leaves it"
    if exc.allowed:
        return f"From {exc.state!r} you can: {', '.join(exc.allowed)}"
    return f"Nothing is legal from {exc.state!r}"


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (JavaScript's, not JSON's)")


def _payload(_: click.Context, __: click.Parameter, value: str | None) -> Any:
    """``--payload``: a JSON object, as a webhook body is (``[]``, ``NaN``, ``1e999`` aren't)."""
    if value is None:
        return None
    shown = value if len(value) <= 40 else value[:39] + "…"  # shown with !r: escaped
    try:
        doc = json.loads(value, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc.msg} (at character {exc.pos})") from None
    except ValueError as exc:
        raise click.BadParameter(f"{shown!r}: {exc}") from None
    except RecursionError:
        raise click.BadParameter(f"{shown!r}: nested too deeply to read") from None
    if not isinstance(doc, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean"}.get(type(doc), "a number")
        raise click.BadParameter(
            f"{shown!r} is {'null' if doc is None else kind}; a payload is a JSON object, "
            "like the webhook body a guard reads: '{\"amountDue\": 0}'"
        )
    if _has_infinity(doc):
        raise click.BadParameter(f"{shown!r} holds a number too large for JSON (infinity)")
    return doc


def _has_infinity(doc: Any) -> bool:
    """Whether a number in ``doc`` overflowed to infinity (``1e999``)."""
    stack = [doc]
    while stack:
        item = stack.pop()
        if isinstance(item, float) and math.isinf(item):
            return True
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


@main.command()
@click.argument("provider")
@click.argument("triggers", nargs=-1, required=True)
@click.option("--from", "start", metavar="STATE", help="Start here (default: the first initial).")
@click.option(
    "--payload",
    metavar="JSON",
    callback=_payload,
    help="The webhook body guards read, e.g. '{\"amountDue\": 0}'.",
)
@chart_dir_option
@json_option
def check(
    provider: str,
    triggers: tuple[str, ...],
    start: str | None,
    payload: Any,
    chart_dir: str | None,
    as_json: bool,
) -> None:
    """Is a trigger sequence legal? Prints the end state, or why not.

    Triggers are folded from --from (default: the chart's first initial state). The first
    illegal one stops the fold with exit code 1, its reason, and a hint at what would work.

    Example: invoice-engine check stripe finalize pay --from draft
    """
    chart = load_chart(provider, chart_dir)
    state = chart.check([], start=start)  # the default start, or UnknownState for a bad one
    first = state
    path: list[dict[str, str]] = []
    for i, trigger in enumerate(triggers):
        try:
            nxt = chart.next_state(state, trigger, payload)
        except TransitionNotAllowed as exc:
            hint = _hint(chart, list(triggers), payload, exc)
            where = f"step {i + 1} of {len(triggers)}: " if len(triggers) > 1 else ""
            if as_json:
                emit_json(
                    {
                        "legal": False,
                        "provider": chart.name,
                        "from": first,
                        "triggers": list(triggers),
                        "state": state,
                        "step": i + 1,
                        "trigger": trigger,
                        "reason": str(exc),
                        "allowed": exc.allowed,
                        "hint": hint,
                        "path": path,
                    }
                )  # the answer on stdout; as every exit 1, an `Error:` line on stderr too
            click.echo(visible(f"Error: {where}{exc}"), err=True)
            click.echo(visible(f"Hint: {hint}"), err=True)
            click.get_current_context().exit(1)
        path.append({"from": state, "trigger": trigger, "to": nxt})
        state = nxt
    if as_json:
        emit_json(
            {
                "legal": True,
                "provider": chart.name,
                "from": first,
                "triggers": list(triggers),
                "state": state,
                "canonical": chart.canonical(state),
                "final": chart.is_final(state),
                "path": path,
            }
        )
        return
    click.echo(visible(state))
