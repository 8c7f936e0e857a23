"""The chart's delivery map, read backwards: where each field of a delivery is written.

:class:`Shape` knows, for one chart, where the provider puts the event type, ids, occurrence
time and status snapshot of a webhook, which event types tell each trigger, and which status
values name each state; :func:`payload_values` draws the values a step's guards must read
(amounts above or below a threshold). :mod:`._deliveries` builds whole lifecycles with them.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from ..chart import Chart
from ..chart.expr import MISSING, Guard, Locator
from ..errors import TransitionNotAllowed
from ._paths import Step, put_path

__all__ = ["Shape", "payload_values"]


def _header_name(loc: Locator) -> str:
    return loc.text.split(":", 1)[1]


def _resolution(fmt: str) -> timedelta:
    """The finest time step a format writes, so that generated times stay distinct."""
    if fmt in ("unix", "unix_ms", "iso8601") or "%S" in fmt or "%s" in fmt:
        return timedelta(seconds=1)
    if "%M" in fmt:
        return timedelta(minutes=1)
    return timedelta(hours=1) if "%H" in fmt or "%I" in fmt else timedelta(days=1)


class Shape:
    """The chart's delivery map, ready to be written into.

    Attributes:
        creates: the event types that create an invoice.
        follows: the event types that follow the status snapshot.
        by_trigger: for each trigger, the event types that fire it.
        infos: informational event types about an invoice, with the states they are legal in.
        status_values: for each leaf, the provider status values that name it.
        tick: the finest time step the chart's occurrence times can tell apart.
    """

    def __init__(self, chart: Chart) -> None:
        self.chart = chart
        dm = chart.spec.delivery
        self.dm = dm
        self.creates = [t for t, e in chart.spec.events.items() if e.create]
        self.follows = [t for t, e in chart.spec.events.items() if e.follow_status]
        self.by_trigger: dict[str, list[str]] = {}
        self.infos: list[tuple[str, list[str] | None]] = []
        for event_type, ev in chart.spec.events.items():
            if ev.trigger is not None:
                self.by_trigger.setdefault(ev.trigger, []).append(event_type)
            elif ev.info and not ev.invoice_optional:
                self.infos.append((event_type, ev.states))
        self.status_values: dict[str, list[str]] = {s: [] for s in chart.states}
        for value, state in dm.statuses.items():
            self.status_values[state].append(value)
        for state, values in self.status_values.items():
            values.extend([] if values else [state])
        fmt = dm.occurred_at.format if dm.occurred_at else "unix"
        self.tick = _resolution(fmt)

    def write(
        self, body: dict[str, Any], headers: dict[str, str], loc: Locator, value: Any
    ) -> None:
        """Put ``value`` where ``loc`` says: a header, or a path in the body."""
        if loc.header is not None:
            headers[_header_name(loc)] = str(value)
        else:
            put_path(body, loc.steps, value)

    def read(self, body: dict[str, Any], headers: dict[str, str], loc: Locator) -> Any:
        """The value at ``loc``, read as the engine reads it (header names ignore case)."""
        return loc.read(body, {k.lower(): v for k, v in headers.items()})

    def time_value(self, when: datetime) -> tuple[Any, datetime]:
        """The time as the chart writes it, and as the engine will read it back."""
        spec = self.dm.occurred_at
        assert spec is not None  # only called for a chart with occurrence times
        if spec.format == "unix":
            return int(when.timestamp()), when
        if spec.format == "unix_ms":
            return int(when.timestamp()) * 1000, when
        if spec.format == "iso8601":
            return when.strftime("%Y-%m-%dT%H:%M:%SZ"), when
        text = when.strftime(spec.format)
        back = datetime.strptime(text, spec.format)
        return text, back.replace(tzinfo=UTC) if back.tzinfo is None else back.astimezone(UTC)

    def identity(self, body: dict[str, Any], headers: dict[str, str]) -> str:
        """What the engine deduplicates the delivery by: its event id, or its derived key."""
        if self.dm.event_id is not None:
            return str(self.read(body, headers, self.dm.event_id))
        parts = [self.read(body, headers, loc) for loc in self.dm.idempotency_key or ()]
        return json.dumps([None if p is MISSING else p for p in parts], default=str)


def _guard_strategy(guard: Guard) -> st.SearchStrategy[Any]:
    """Realistic values (amounts) for a numeric comparison; the literal itself otherwise."""
    lit, op = guard.literal, guard.op
    if isinstance(lit, bool) or not isinstance(lit, int | float) or op in ("==", "!="):
        return st.nothing()
    span = 1_000_000
    if op in (">", ">="):
        low = math.floor(lit) + 1 if op == ">" else math.ceil(lit)
        return st.integers(low, low + span)
    high = math.ceil(lit) - 1 if op == "<" else math.floor(lit)
    return st.integers(high - span, high)


@st.composite
def payload_values(draw: st.DrawFn, chart: Chart, step: Step) -> list[tuple[Guard, Any]]:
    """Values for the guards of ``step``'s transition, drawn, then checked with the chart."""
    if step.payload is None:
        return []
    if not step.legal:
        every = [c.func for _, conds in chart.steps(step.source, step.trigger) for c in conds]
        found = [(g, g.value(step.payload)) for g in every if isinstance(g, Guard)]
        return [(g, v) for g, v in found if v is not MISSING]
    guards = [
        c.func
        for dest, conds in chart.steps(step.source, step.trigger)
        if (step.source if dest is None else dest) == step.dest
        for c in conds
        if isinstance(c.func, Guard)
    ]
    drawn = [(g, draw(_guard_strategy(g) | st.just(g.value(step.payload)))) for g in guards]
    trial: dict[str, Any] = {}
    for g, v in drawn:
        put_path(trial, g.steps, v)
    try:
        if chart.next_state(step.source, step.trigger, trial) == step.dest:
            return drawn
    except TransitionNotAllowed:
        pass
    return [(g, g.value(step.payload)) for g in guards]
