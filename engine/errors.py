"""The exception tree: one root, one class per failure.

Every error carries the offending values as attributes and says them in its message, with the
valid choices where there are few, so that a user reading ``Error: …`` on a terminal knows what
to fix without reading a traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "ChartError",
    "ChartProblem",
    "DeliveryError",
    "DiagramError",
    "EngineError",
    "SecretsError",
    "SignatureError",
    "SignatureReason",
    "StoreError",
    "TransitionNotAllowed",
    "UnknownProvider",
    "UnknownState",
    "UnknownTrigger",
]


def _choices(values: Iterable[str], limit: int = 12) -> str:
    values = list(values)
    shown = ", ".join(values[:limit])
    return shown + (f", … ({len(values) - limit} more)" if len(values) > limit else "")


class EngineError(Exception):
    """The root of every error this package raises on purpose."""


@dataclass(frozen=True, kw_only=True)
class ChartProblem:
    """One thing wrong in a chart file, and where.

    Attributes:
        source: the file (or ``"<string>"``) the chart came from.
        line: the line (1-based) in the file; ``None`` when not known (a chart given as data).
        column: the column (1-based) on that line; ``None`` when not known.
        location: where inside the chart, as its YAML reads (``transitions[3].dest``,
            ``events['invoice.paid'].trigger``); empty for the whole file.
        problem: what is wrong, in words, naming the value found.
        subject: the state or transition at ``location``, by name (``state 'deleted'``,
            ``transition 'pay'``); empty when the location names none, or the problem already
            does.
        rule: the lint rule (``final-exit``, ``unreachable``, …) when the problem is one of
            lint's errors; empty for the others.
    """

    source: str
    line: int | None = None
    column: int | None = None
    location: str = ""
    problem: str
    subject: str = ""
    rule: str = ""

    @property
    def where(self) -> str:
        """What and where: ``state 'deleted' at states[6].final`` (the location alone when it
        names no state or transition)."""
        if self.subject:
            return f"{self.subject} at {self.location}" if self.location else self.subject
        return self.location

    def __str__(self) -> str:
        place = self.source
        if self.line is not None:
            place += f":{self.line}" + (f":{self.column}" if self.column is not None else "")
        where = self.where
        return f"{place}: {where}: {self.problem}" if where else f"{place}: {self.problem}"


class ChartError(EngineError):
    """A chart file is broken: unreadable YAML, a wrong shape, or a meaning that does not hold.

    A chart is checked in full before it is refused: :attr:`problems` lists every problem
    found (in file order), each with its line; ``str()`` says them all. The other attributes
    are the first problem's.

    Attributes:
        problems: every problem found, in file order (at least one).
        source: the file (or ``"<string>"``) the chart came from.
        location: where inside it, e.g. ``transitions[3].dest``; empty for the whole file.
        problem: what was wrong, in words.
        line: the line of the first problem (1-based); ``None`` when not known.
        column: its column (1-based); ``None`` when not known.
    """

    def __init__(
        self,
        source: str,
        location: str = "",
        problem: str = "",
        *,
        line: int | None = None,
        column: int | None = None,
        subject: str = "",
        more: Sequence[ChartProblem] = (),
    ) -> None:
        first = ChartProblem(
            source=source,
            line=line,
            column=column,
            location=location,
            problem=problem,
            subject=subject,
        )
        self.problems: list[ChartProblem] = [first, *more]
        self.source = source
        self.location = location
        self.problem = problem
        self.line = line
        self.column = column
        if not more:
            message = str(first)
        else:
            shown = "\n".join(f"  {p}" for p in self.problems)
            message = f"{source}: {len(self.problems)} problems:\n{shown}"
        super().__init__(message)

    @classmethod
    def of(cls, problems: Sequence[ChartProblem]) -> ChartError:
        """One error for ``problems`` (at least one), the first of which it is named after."""
        first, *more = problems
        error = cls(
            first.source,
            first.location,
            first.problem,
            line=first.line,
            column=first.column,
            subject=first.subject,
            more=more,
        )
        error.problems[0] = first  # as given, with its rule
        return error

    def __reduce__(self) -> tuple[Any, ...]:
        return (_chart_error, (list(self.problems),))


def _chart_error(problems: list[ChartProblem]) -> ChartError:
    return ChartError.of(problems)


class UnknownProvider(EngineError):
    """No chart of that name is bundled or in the given chart directory."""

    def __init__(self, name: str, available: Iterable[str], hint: str | None = None) -> None:
        self.name = name
        self.available = sorted(available)
        self.hint = hint
        close = difflib.get_close_matches(name.lower(), self.available, n=1, cutoff=0.6)
        meant = f" (did you mean {close[0]!r}?)" if close else ""
        message = (
            f"Unknown provider {name!r}{meant}. Available: {_choices(self.available)}"
            if self.available
            else f"Unknown provider {name!r}: no charts are available"
        )
        super().__init__(f"{message}. Hint: {hint}" if hint else message)


class UnknownState(EngineError):
    """A state name that the chart does not define.

    ``kind`` says which names: ``"state"``, or ``"canonical state"``; ``chart`` is empty when
    no chart was named (a filter over every chart), and ``states`` are then every chart's.
    """

    def __init__(
        self, chart: str, state: str, states: Iterable[str], *, kind: str = "state"
    ) -> None:
        self.chart = chart
        self.state = state
        self.states = list(states)
        self.kind = kind
        where = f" in chart {chart!r}" if chart else ": no chart has it"
        super().__init__(
            f"Unknown {kind} {state!r}{where}. {kind.capitalize()}s are: "
            f"{_choices(self.states, limit=40 if not chart else 12)}"
        )


class UnknownTrigger(EngineError):
    """A trigger name that the chart does not define."""

    def __init__(self, chart: str, trigger: str, triggers: Iterable[str]) -> None:
        self.chart = chart
        self.trigger = trigger
        self.triggers = list(triggers)
        super().__init__(
            f"Unknown trigger {trigger!r} in chart {chart!r}. Triggers are: "
            f"{_choices(self.triggers)}"
        )


class TransitionNotAllowed(EngineError):
    """A trigger that is not legal from a state (or whose guard is false for this payload).

    Attributes:
        state: the state the step was tried from.
        trigger: the trigger that was refused.
        allowed: the triggers that *are* legal from ``state``.
        reason: why, when it is more than "not legal from here" (a false guard, a final state).
    """

    def __init__(
        self, state: str, trigger: str, allowed: Iterable[str], reason: str | None = None
    ) -> None:
        self.state = state
        self.trigger = trigger
        self.allowed = list(allowed)
        self.reason = reason
        allowed_text = (
            f"allowed from {state!r}: {_choices(self.allowed)}"
            if self.allowed
            else f"nothing is allowed from {state!r}"
        )
        why = f" ({reason})" if reason else ""
        super().__init__(f"Can't {trigger!r} when in {state!r}{why}; {allowed_text}")


class DeliveryError(EngineError):
    """A webhook delivery that can't be read through the chart's delivery map.

    Attributes:
        path: the JSON path or header that was wrong (``$.data.object.id``,
            ``header:X-Event-Type``).
        value: the value found there (``None`` when missing).
        problem: what was wrong, in words.
    """

    def __init__(self, problem: str, path: str | None = None, value: object = None) -> None:
        self.problem = problem
        self.path = path
        self.value = value
        super().__init__(problem)


class DiagramError(EngineError):
    """A diagram can't be drawn: Graphviz is missing or failed, or the format is unknown."""


class StoreError(EngineError):
    """The SQLite store can't be opened or used (wrong schema version, not a database, …)."""


#: Why a delivery's signature was refused (:attr:`SignatureError.reason`): the chart declares
#: no scheme (``no_scheme``); no secret is configured for the provider (``no_secret``); a
#: configured secret can't be used by the scheme (``bad_secret``: a Standard Webhooks secret
#: that isn't base64, a Basic secret that isn't ``user:password``); a header the scheme needs
#: is absent (``missing_header``) or can't be read (``malformed_header``); no signature matches
#: the body with any secret (``no_match``); or the signature matches but its timestamp is too
#: old or too far ahead (``timestamp_outside_tolerance``). The first three are the set-up's,
#: the same for every delivery.
SignatureReason = Literal[
    "no_scheme",
    "no_secret",
    "bad_secret",
    "missing_header",
    "malformed_header",
    "no_match",
    "timestamp_outside_tolerance",
]


_SETUP: frozenset[SignatureReason] = frozenset({"no_scheme", "no_secret", "bad_secret"})


class SignatureError(EngineError):
    """A delivery that can't be shown to come from its provider: refuse it (HTTP 401).

    The message says what failed and in which header, and for a timestamp by how many seconds
    and in which direction. It never holds a secret, the signature expected, or a header's
    value (a shared-secret header's value *is* a secret, or someone's guess at it).

    Attributes:
        provider: the chart's provider.
        reason: what failed, for code (see :data:`SignatureReason`).
        header: the header concerned, as the chart names it (``None`` when none is).
        skew: for ``timestamp_outside_tolerance``, the signed time minus now in whole seconds
            (negative: in the past); ``None`` otherwise.
    """

    def __init__(
        self,
        provider: str,
        reason: SignatureReason,
        problem: str,
        *,
        header: str | None = None,
        skew: int | None = None,
    ) -> None:
        self.provider = provider
        self.reason: SignatureReason = reason
        self.problem = problem
        self.header = header
        self.skew = skew
        # A scheme or secret that is wrong is wrong for every delivery (and check_secrets
        # says so before any): not this delivery's fault.
        what = f"{provider} deliveries" if reason in _SETUP else f"this {provider} delivery"
        super().__init__(f"Can't verify {what}: {problem}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _signature_error,
            (self.provider, self.reason, self.problem, self.header, self.skew),
        )


def _signature_error(
    provider: str, reason: SignatureReason, problem: str, header: str | None, skew: int | None
) -> SignatureError:
    return SignatureError(provider, reason, problem, header=header, skew=skew)


class SecretsError(EngineError):
    """Webhook secrets can't be read: a malformed line or an unknown variable in a secrets
    file, a file others can read, an environment variable that names no provider. The message
    names the file and line, or the variable; never a value.

    Attributes:
        source: the secrets file, or ``"environment"``.
        line: the line (1-based) in the file; ``None`` for the whole file or the environment.
        problem: what is wrong, in words.
    """

    def __init__(self, source: str, problem: str, *, line: int | None = None) -> None:
        self.source = source
        self.line = line
        self.problem = problem
        super().__init__(f"{source}{'' if line is None else f':{line}'}: {problem}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (_secrets_error, (self.source, self.problem, self.line))


def _secrets_error(source: str, problem: str, line: int | None) -> SecretsError:
    return SecretsError(source, problem, line=line)
