"""Structural checks on a chart: the mistakes in its graph that its meaning check can't see.

The loader's meaning check (:mod:`engine.chart.load`) refuses charts that don't mean anything:
unknown states, unknown triggers, states without a canonical lifecycle state. A chart can pass
all of that and still be wrong — a state nothing leads to, a state an invoice can never leave, a
final state with a way out, two transitions fighting over one trigger. :func:`lint` finds those,
on the graph the machine really runs (:meth:`Chart.steps <engine.chart.Chart.steps>`, so nesting
and ``source: '*'`` count exactly as the machine counts them).

It also repeats the loader's meaning checks that a chart built in code (a :class:`ChartSpec`
made with ``model_validate``, which skips them) may have missed: events mapped to unknown
triggers and states without a canonical mapping. And it refuses an identity its signature
doesn't cover (``unsigned-identity``: an event id read from a header that an ``hmac`` scheme
doesn't sign lets a replayed delivery pass as a new event; see
:func:`~engine.chart._signature.unsigned_identity`).

A finding the chart's author accepts on purpose is declared in the chart itself, with a reason::

    lint_exceptions:
      - {rule: no-final-path, target: overdue, why: "Overdue invoices are written off by hand."}

and an exception that no longer matches anything is itself reported, so they don't go stale.

**Errors are refused by the loader.** A chart with an error-level finding (:data:`RULES`) does
not load: :func:`~engine.chart.load_chart`, :func:`~engine.chart.parse_chart` and
``Chart(spec)`` raise a :class:`~engine.errors.ChartError` listing every error, one problem
each (see :func:`enforce`). Only *warnings* may be excused: an exception that names an error
rule excuses nothing and is itself an error (``excused-error``), because an error means the
chart does something it must not (``paid -> disputed`` out of a final state). To lint a chart
that has errors, :func:`lint` takes its :class:`ChartSpec`, or a chart built with
``Chart(spec, enforce_lint=False)`` (``load_chart(..., enforce_lint=False)``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..errors import ChartError, ChartProblem
from ._findings import RULES, Finding, invalid, is_warning, location
from ._graph_rules import finding as _finding
from ._graph_rules import graph_rules, several_regions
from ._messages import close_to, parse_location, subject
from ._signature import unsigned_identity
from .compiled import Chart
from .expr import Guard, json_kind
from .spec import CANONICAL_STATES, ChartSpec
from .tree import StateTree

__all__ = ["RULES", "Finding", "enforce", "invalid", "lint", "lint_errors"]


# ------------------------------------------------------------------------------ spec rules


def _canonical_rules(tree: StateTree) -> list[Finding]:
    found: list[Finding] = []
    for name, node in tree.nodes.items():  # chart order, each state before its children
        own = node.spec.canonical
        given = [r.canonical for r in own] if isinstance(own, list) else [own]
        for value in dict.fromkeys(given):
            if value is not None and value not in CANONICAL_STATES:
                meant = close_to(value, list(CANONICAL_STATES))
                hint = f"did you mean {meant!r}? " if meant is not None else ""
                found.append(
                    _finding(
                        "noncanonical",
                        name,
                        f"canonical state {value!r} is not one of "
                        f"{', '.join(CANONICAL_STATES)} ({hint}a provider may add its own; "
                        "check the spelling)",
                    )
                )
    for config in tree.configurations:
        if tree.canonical_of(config) is None:
            found.append(
                _finding(
                    "missing-canonical",
                    config,
                    f"state {config!r} has no canonical lifecycle state (give it, or its "
                    f"parent, canonical: one of {', '.join(CANONICAL_STATES)})"
                    if "+" not in config
                    else f"configuration {config!r} matches no canonical rule of its parallel "
                    "state: end the table with a rule without when",
                )
            )
    return found


def _trigger_rules(spec: ChartSpec, triggers: list[str]) -> list[Finding]:
    return [
        _finding(
            "unknown-trigger",
            event_type,
            f"event {event_type!r} fires trigger {ev.trigger!r}, which no transition defines; "
            f"triggers are: {', '.join(triggers) or '(none)'}",
        )
        for event_type, ev in spec.events.items()
        if ev.trigger is not None and ev.trigger not in triggers
    ]


def _meaning(conditions: Iterable[Any]) -> list[tuple[Any, ...]]:
    """What guards test, however they are spelled: ``amount == 1`` is ``$.amount == 1.0``."""
    out: list[tuple[Any, ...]] = []
    for c in conditions:
        g = c.func
        key = (g.steps, g.op, json_kind(g.literal), g.literal) if isinstance(g, Guard) else (g,)
        out.append((*key, c.target))
    return out


def _nondeterminism(chart: Chart) -> list[Finding]:
    """Several transitions for one (source, trigger) that guards don't tell apart.

    The machine tries a source's transitions in chart order and takes the first whose guard
    holds; a child's transitions come before its parent's, which is how a nested state overrides
    its parent on purpose, so only transitions declared on the *same* source compete.
    """
    found: list[Finding] = []
    for trigger in chart.triggers:
        for source, transitions in chart.machine.events[trigger].transitions.items():
            dests = list(dict.fromkeys(tr.dest for tr in transitions))
            if len(dests) < 2:
                continue
            shown = ", ".join("(internal)" if d is None else repr(d) for d in dests)
            for i, tr in enumerate(transitions):
                later = [o for o in transitions[i + 1 :] if o.dest != tr.dest]
                shadowed = not tr.conditions or any(
                    _meaning(o.conditions) == _meaning(tr.conditions) for o in later
                )
                if later and shadowed:
                    how = (
                        "has no guard" if not tr.conditions else "has the same guard as a later one"
                    )
                    target = "(internal)" if tr.dest is None else repr(tr.dest)
                    found.append(
                        _finding(
                            "nondeterminism",
                            f"{trigger} from {source}",
                            f"{trigger!r} from {source!r} goes to {shown}; the transition to "
                            f"{target} {how}, so the machine always takes it: give each a guard "
                            "that tells them apart",
                        )
                    )
                    break
    return found


# ------------------------------------------------------------------------------------ lint


def _as_chart(spec: ChartSpec) -> Chart:
    # Leaves without a canonical state are reported by a rule, so the machine is built anyway.
    try:
        return Chart(spec, require_canonical=False, enforce_lint=False)
    except (ValueError, KeyError) as exc:  # what transitions says about unknown states
        raise ChartError(
            f"<chart {spec.provider!r}>", "", f"can't build its machine to lint it: {exc}"
        ) from exc


def lint(chart: Chart | ChartSpec) -> list[Finding]:
    """Check a chart's structure; return the findings its ``lint_exceptions`` don't excuse.

    Args:
        chart: a loaded :class:`Chart`, or a :class:`ChartSpec` built in code (which may miss
            the loader's checks; those this module can report are reported).

    Returns:
        Findings in a stable order: spec rules, then the graph, then nondeterminism, then
        unused exceptions. Errors mean the chart is wrong; warnings may be on purpose (declare
        them in ``lint_exceptions`` with a reason). Each has the line and column of the state,
        transition, event or exception it is about when the chart was loaded from a file.

    Raises:
        ChartError: a ``ChartSpec`` so broken (unknown states, two states of one name) that
            no machine can be built.
    """
    spec = chart.spec if isinstance(chart, Chart) else chart
    built = chart if isinstance(chart, Chart) else _as_chart(chart)
    found = _findings(built, spec)
    where = built._positions
    if where is None:
        return found
    placed = []
    for f in found:
        at = where(location(built, f))
        placed.append(f if at is None else f.model_copy(update={"line": at[0], "column": at[1]}))
    return placed


def _findings(built: Chart, spec: ChartSpec) -> list[Finding]:
    findings = [
        *_canonical_rules(built.tree),
        *_trigger_rules(spec, built.triggers),
        *(
            _finding("unsigned-identity", at, said)
            for at, said in unsigned_identity(spec.signature, spec.delivery)
        ),
        *graph_rules(built),
        *_nondeterminism(built),
        *several_regions(built),
    ]
    excused = {(e.rule, e.target) for e in spec.lint_exceptions if is_warning(e.rule)}
    kept = [f for f in findings if (f.rule, f.target) not in excused]
    matched = {(f.rule, f.target) for f in findings}
    for e in spec.lint_exceptions:
        if e.rule in RULES and not is_warning(e.rule):
            warnings = ", ".join(r for r in RULES if is_warning(r))
            kept.append(
                _finding(
                    "excused-error",
                    e.target,
                    f"lint exception {{rule: {e.rule}, target: {e.target}}} names an error; "
                    f"only warnings ({warnings}) can be excused: fix the chart instead",
                )
            )
            continue
        if (e.rule, e.target) in matched:
            continue
        unknown = e.rule not in RULES
        kept.append(
            _finding(
                "unused-exception",
                e.target,
                f"lint exception {{rule: {e.rule}, target: {e.target}}} matches no finding"
                + (f"; rules are: {', '.join(RULES)}" if unknown else "; remove it"),
            )
        )
    return kept


def enforce(chart: Chart, source: str | None = None) -> None:
    """Refuse a chart with error-level lint findings, as the loader does.

    ``Chart(spec)``, :func:`~engine.chart.parse_chart` and :func:`~engine.chart.load_chart`
    call this; ``lint_exceptions`` excuse warnings only (see the module docstring).

    Args:
        chart: the compiled chart (built with ``enforce_lint=False``).
        source: names the chart in the error (its file); default: the chart's own.

    Raises:
        ChartError: listing every error, each at its place in the chart file (``states[2]``,
            ``transitions[4]``, ``events['invoice.paid'].trigger``, ``lint_exceptions[0]``)
            and with its rule; the loader adds each one's line.
    """
    problems = lint_errors(chart, source)
    if problems:
        raise ChartError.of(problems)


def lint_errors(
    chart: Chart,
    source: str | None = None,
    *,
    skip: frozenset[str] = frozenset(),
    subjects: bool = True,
) -> list[ChartProblem]:
    """The error-level findings of :func:`lint` as the loader reports them: one problem each,
    at its place in the chart file (and its line, when the chart knows them), with its rule.

    Args:
        chart: the compiled chart (built with ``enforce_lint=False``).
        source: names the chart in the problems (its file); default: the chart's own.
        skip: rules not to report (the loader's, for a chart it had to read in part).
        subjects: name the state or transition of each problem (the loader names them from
            the file instead, for a chart it had to read in part).
    """
    errors = [f for f in lint(chart) if f.severity == "error" and f.rule not in skip]
    where = source if source is not None else str(chart.path or f"<chart {chart.name!r}>")
    data = chart.spec.model_dump() if subjects and errors else None
    problems = []
    for f in errors:
        at = location(chart, f)
        named = "" if data is None else subject(parse_location(at) or (), data)
        problem = f"{f.message} [{f.rule}]"
        problems.append(
            ChartProblem(
                source=where,
                line=f.line,
                column=f.column,
                location=at,
                problem=problem,
                subject=named if named not in problem else "",
                rule=f.rule,
            )
        )
    return problems
