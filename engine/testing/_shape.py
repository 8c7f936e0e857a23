"""The chart's delivery map, read backwards: where each field of a delivery is written.

:class:`Shape` knows, for one chart, where the provider puts the event type, ids, occurrence
time and status snapshot of a webhook, which event types tell each trigger, and which status
values name each state; :func:`payload_values` draws the values a step's guards must read
(amounts above or below a threshold). :mod:`._deliveries` builds whole lifecycles with them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from hypothesis import strategies as st

from ..chart import Chart
from ..chart.configuration import Configuration
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
        follows: the event types that follow the status snapshot (of the whole chart, or of
            one region of a parallel state).
        by_trigger: for each trigger, the event types that fire it.
        infos: informational event types about an invoice, with the states they are legal in.
        regions: where a region-following event reads its region's status, when that is not
            where the chart's status snapshot is (Lago's ``$.invoice.payment_status``): every
            body carries it, as the provider's do.
        tick: the finest time step the chart's occurrence times can tell apart.
    """

    def __init__(self, chart: Chart) -> None:
        self.chart = chart
        dm = chart.spec.delivery
        self.dm = dm
        events = chart.spec.events
        self.creates = [t for t, e in events.items() if e.create]
        self.follows = [t for t, e in events.items() if e.follow_status]
        self.by_trigger: dict[str, list[str]] = {}
        self.infos: list[tuple[str, list[str] | None]] = []
        for event_type, ev in events.items():
            if ev.trigger is not None:
                self.by_trigger.setdefault(ev.trigger, []).append(event_type)
            elif ev.info and not ev.invoice_optional:
                self.infos.append((event_type, ev.states))
        # The values a status snapshot names states by: those the chart maps to them, and the
        # names of the leaves no mapped state covers (a provider that says "finalized" never
        # says "finalized.payment.pending"). A configuration is told by a state it is within.
        self._named: dict[str, list[str]] = {}
        for value, state in dm.statuses.items():
            self._named.setdefault(state, []).append(value)
        for leaf in chart.tree.leaves:
            if not any(_inside(leaf, state) for state in dm.statuses.values()):
                self._named[leaf] = [leaf]
        self.regions: dict[Locator, str] = {}
        for ev in events.values():
            if ev.region is not None and ev.status is not None and ev.status != dm.status:
                self.regions.setdefault(ev.status, ev.region)
        fmt = dm.occurred_at.format if dm.occurred_at else "unix"
        self.tick = _resolution(fmt)

    def status_at(self, event_type: str) -> Locator | None:
        """Where ``event_type`` carries its status snapshot (``None``: nowhere)."""
        return self.chart.spec.events[event_type].status or self.dm.status

    def invoice_at(self, event_type: str) -> Locator:
        """Where ``event_type`` carries its invoice id."""
        return self.chart.spec.events[event_type].invoice_id or self.dm.invoice_id

    def snapshots(
        self, event_type: str, wanted: Callable[[str], bool]
    ) -> list[tuple[str, str]] | None:
        """The status values ``event_type``'s snapshot may carry, each with the state it
        names, for the states ``wanted`` accepts; ``None`` when the event carries no snapshot.

        A region-following event names a state of its region, relative to it (``succeeded``
        for ``finalized.payment.succeeded``); any other the chart's own values (``finalized``)
        where they cover a state, else leaves by their names. ``event_type`` empty: the chart's own
        snapshot (``delivery.status``).
        """
        if (self.status_at(event_type) if event_type else self.dm.status) is None:
            return None
        region = self.chart.spec.events[event_type].region if event_type else None
        if region is not None:
            inside = [n for n in self.chart.tree.names if n.startswith(region + ".")]
            return [(n[len(region) + 1 :], n) for n in inside if wanted(n)]
        return [(v, s) for s, values in self._named.items() if wanted(s) for v in values]

    def region_statuses(self, event_type: str, config: str) -> list[tuple[Locator, str]]:
        """The status fields a body about ``config`` carries besides ``event_type``'s own
        snapshot, as a provider's invoice object does: where each goes, and the value.

        A region-following event also says the whole invoice's status (Lago's
        ``invoice.status: finalized`` beside its ``payment_status``); an event in the usual
        envelope (its invoice id where the chart's is) each region's status, relative to it
        (``pending``), for every region in :attr:`regions` that ``config`` is in.
        """
        out: list[tuple[Locator, str]] = []
        own = self.status_at(event_type)
        spec = self.chart.spec.events[event_type]
        if spec.region is not None and self.dm.status is not None and own != self.dm.status:
            found = self.snapshots("", partial(_inside, config)) or []
            out += [(self.dm.status, value) for value, _ in found[:1]]
        if self.invoice_at(event_type) != self.dm.invoice_id:
            return out
        for loc, region in self.regions.items():
            leaf = next((x for x in config.split("+") if x.startswith(region + ".")), None)
            if leaf is not None and loc != own:
                out.append((loc, leaf[len(region) + 1 :].split(".", 1)[0]))
        return out

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


def _inside(config: str, state: str) -> bool:
    return Configuration(config).within(state)


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
