"""What lint reports: its rules (:data:`RULES`), a :class:`Finding`, and a chart that doesn't
load as findings (:func:`invalid`). Read them from :mod:`engine.chart.lint`, which runs the
rules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict

from ..errors import ChartError
from ._messages import key_path

if TYPE_CHECKING:
    from .compiled import Chart

__all__ = ["RULES", "Finding", "Severity", "invalid", "is_warning", "location"]

Severity = Literal["error", "warning"]

#: Every rule: its severity and what it catches. Rule names are what ``lint_exceptions`` name.
RULES: dict[str, tuple[Severity, str]] = {
    "unreachable": ("error", "no sequence of transitions reaches the state from an initial state"),
    "unreachable-configuration": (
        "warning",
        "a combination of its regions' states a parallel state can never be in",
    ),
    "dead-end": ("error", "a state that is not final, but that no transition leaves"),
    "final-exit": ("error", "a final state that a transition leaves"),
    "no-final-path": ("warning", "no final state can be reached from the state"),
    "nondeterminism": (
        "error",
        "one trigger from one source goes to several targets, not told apart by guards",
    ),
    "several-regions": (
        "warning",
        "one trigger moves several regions of a parallel state at once",
    ),
    "unknown-trigger": ("error", "an event is mapped to a trigger no transition defines"),
    "missing-canonical": ("error", "a state has no canonical lifecycle state"),
    "noncanonical": ("warning", "a canonical name outside engine.chart.CANONICAL_STATES"),
    "unused-exception": ("warning", "a lint exception that matches no finding"),
    "excused-error": ("error", "a lint exception that names an error rule (only warnings may be)"),
    "unsigned-identity": (
        "error",
        "the event id (or idempotency key) is read from a header the signature does not cover",
    ),
}


class Finding(BaseModel):
    """One problem lint found.

    Attributes:
        rule: the rule's name (a key of :data:`RULES`), as ``lint_exceptions`` spell it.
        severity: ``"error"`` (the chart is wrong) or ``"warning"`` (it may be on purpose).
        target: what the finding is about: a state (``open.overdue``), an event type
            (``invoice.paid``), ``"TRIGGER from SOURCE"`` for a transition, or a place in
            the delivery map (``delivery.event_id``).
        message: what is wrong, in words.
        line: the line (1-based) in the chart file, where known: ``None`` for a chart built
            in code (which has no file).
        column: the column (1-based) on that line, where known.
    """

    model_config = ConfigDict(frozen=True)

    rule: str
    severity: Severity
    target: str
    message: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        line = "" if self.line is None else f"line {self.line}"
        line += "" if self.line is None or self.column is None else f", col {self.column}"
        where = f"{line}: {self.target}" if line else self.target
        return f"{self.severity}: {where}: {self.message} [{self.rule}]"


def invalid(error: ChartError) -> list[Finding]:
    """A chart that doesn't load, as lint reports it: one error per problem of ``error``, each
    with its line and column, and as target the state or transition and the place
    (``transition 'pay' at transitions[1].dest``; ``(file)`` for the whole file). Its rule is
    ``invalid``, or the lint rule of a lint error found with the other problems
    (``final-exit``: the loader lints what it could read of a broken chart)."""
    return [
        Finding(
            rule=p.rule or "invalid",
            severity="error",
            target=p.where or "(file)",
            message=p.problem.removesuffix(f" [{p.rule}]") if p.rule else p.problem,
            line=p.line,
            column=p.column,
        )
        for p in error.problems
    ]


def is_warning(rule: str) -> bool:
    """Whether ``rule`` is a warning (an unknown rule counts as an error)."""
    return RULES.get(rule, ("error", ""))[0] == "warning"


def location(chart: Chart, finding: Finding) -> str:
    """Where in the chart file a finding points: the state, transition, event or exception."""
    spec, tree = chart.spec, chart.tree
    if finding.rule == "unsigned-identity":
        return finding.target  # delivery.event_id, delivery.idempotency_key[1]
    if finding.rule == "unknown-trigger":
        return key_path("events", finding.target) + ".trigger"
    if finding.rule == "excused-error":
        for i, e in enumerate(spec.lint_exceptions):
            if e.target == finding.target and e.rule in RULES and not is_warning(e.rule):
                return f"lint_exceptions[{i}]"
    if finding.rule == "unused-exception":
        for i, e in enumerate(spec.lint_exceptions):
            if e.target == finding.target and finding.message.startswith(
                f"lint exception {{rule: {e.rule},"
            ):
                return f"lint_exceptions[{i}]"
    if finding.rule == "noncanonical" and finding.target in tree:
        return tree.node(finding.target).location + ".canonical"
    if finding.rule == "no-final-path" and finding.target not in tree:
        return "states"  # the chart has no final state
    if finding.rule == "nondeterminism":
        trigger, _, source = finding.target.partition(" from ")
        for i, t in enumerate(spec.transitions):
            if t.trigger == trigger and source in tree.expand_sources(t.source):
                return f"transitions[{i}]"
    if finding.rule == "several-regions":
        trigger, _, top = finding.target.partition(" in ")
        for i, t in enumerate(spec.transitions):
            if t.trigger == trigger and any(
                tree.contains(top, s) for s in tree.expand_sources(t.source)
            ):
                return f"transitions[{i}]"
    if finding.target in tree:
        return tree.node(finding.target).location
    first = finding.target.split("+", 1)[0]
    if "+" in finding.target and first in tree:  # a configuration: its parallel state
        scope: str | None = first
        outer = first
        while scope is not None:
            if tree.node(scope).parallel:
                outer = scope
            scope = tree.parent(scope)
        return tree.node(outer).location
    return ""
