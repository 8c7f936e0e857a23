"""What lint reports: its rules (:data:`RULES`), a :class:`Finding`, and a chart that doesn't
load as findings (:func:`invalid`). Read them from :mod:`engine.chart.lint`, which runs the
rules.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from ..errors import ChartError

__all__ = ["RULES", "Finding", "Severity", "invalid"]

Severity = Literal["error", "warning"]

#: Every rule: its severity and what it catches. Rule names are what ``lint_exceptions`` name.
RULES: dict[str, tuple[Severity, str]] = {
    "unreachable": ("error", "no sequence of transitions reaches the state from an initial state"),
    "dead-end": ("error", "a state that is not final, but that no transition leaves"),
    "final-exit": ("error", "a final state that a transition leaves"),
    "no-final-path": ("warning", "no final state can be reached from the state"),
    "nondeterminism": (
        "error",
        "one trigger from one source goes to several targets, not told apart by guards",
    ),
    "unknown-trigger": ("error", "an event is mapped to a trigger no transition defines"),
    "missing-canonical": ("error", "a state has no canonical lifecycle state"),
    "noncanonical": ("warning", "a canonical name outside engine.chart.CANONICAL_STATES"),
    "unused-exception": ("warning", "a lint exception that matches no finding"),
    "excused-error": ("error", "a lint exception that names an error rule (only warnings may be)"),
}


class Finding(BaseModel):
    """One problem lint found.

    Attributes:
        rule: the rule's name (a key of :data:`RULES`), as ``lint_exceptions`` spell it.
        severity: ``"error"`` (the chart is wrong) or ``"warning"`` (it may be on purpose).
        target: what the finding is about: a state (``open.overdue``), an event type
            (``invoice.paid``), or ``"TRIGGER from SOURCE"`` for a transition.
        message: what is wrong, in words.
        line: the line (1-based) in the chart file, where known: set for the problems of a
            chart that doesn't load (:func:`invalid`); ``None`` for graph findings.
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
    """A chart that doesn't load, as lint reports it: one ``invalid`` error per problem of
    ``error``, each with its line and column, and as target the state or transition and the
    place (``transition 'pay' at transitions[1].dest``; ``(file)`` for the whole file)."""
    return [
        Finding(
            rule="invalid",
            severity="error",
            target=p.where or "(file)",
            message=p.problem,
            line=p.line,
            column=p.column,
        )
        for p in error.problems
    ]
