"""Which chart, and which policy, decided each event: part of the record.

Charts change: a provider adds an event, a team fixes a transition. An event stays decided the
way it was decided, so every event row names the fingerprint of the chart that decided it and
the ``on_unknown`` policy in force, and the chart itself is kept (as JSON, in ``charts``) the
first time it decides anything. A re-fold or a replay decides each event again under *its own*
chart and policy — never under whatever the engine that happens to re-fold was started with —
and re-deciding history under a new chart is an explicit act (``replay(rechart=True)``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import datetime

from ..chart import Chart, parse_chart
from ..errors import ChartError
from ..store.base import ChartRecord, ReadTx
from ._clock import utc_text
from .decide import Decision

__all__ = ["VersionResolver", "Versions", "fingerprint"]

#: The chart to decide an event with, given the fingerprint recorded on it.
VersionResolver = Callable[[str | None], Chart]


def fingerprint(chart: Chart) -> str:
    """A short, stable digest of what the chart says (not of its file's comments or layout)."""
    return hashlib.sha256(chart.spec.model_dump_json().encode()).hexdigest()[:16]


class Versions:
    """The charts that decided a provider's events, read back from the store as needed.

    Args:
        current: the chart the engine decides new events with; also used for rows written
            before charts were recorded (``chart`` is NULL) and for a fingerprint the store
            does not hold.
        now: when this version was first used (kept with it in the store).
    """

    def __init__(self, current: Chart, now: datetime) -> None:
        self.current = current
        spec = current.spec.model_dump_json()
        self.fingerprint = hashlib.sha256(spec.encode()).hexdigest()[:16]
        #: The row that keeps this version in the store, and whether a commit already has.
        self.record = ChartRecord(self.fingerprint, current.name, spec, utc_text(now))
        self.recorded = False
        self._known: dict[str, Chart] = {self.fingerprint: current}
        #: Recorded fingerprints the store lacks or this release can't read (see replay).
        self.unreadable: set[str] = set()
        #: The current chart's decisions, by what they read (see ``Batch._decide``).
        self.decisions: dict[tuple[object, ...], tuple[Decision, str | None, str | None]] = {}

    def resolver(self, tx: ReadTx, *, rechart: bool = False) -> VersionResolver:
        """A lookup of recorded fingerprints through ``tx`` (``rechart``: always the current)."""

        def version(recorded: str | None) -> Chart:
            if rechart or recorded is None:
                return self.current
            chart = self._known.get(recorded)
            if chart is None:
                chart = self._known[recorded] = self._load(tx, recorded)
            return chart

        return version

    def _load(self, tx: ReadTx, recorded: str) -> Chart:
        """The recorded chart version, as it was: lint rules added since don't apply to history.
        A version this release can't read at all (or one the store lacks) gives the current
        chart, so a late event can still be folded, and is remembered in ``unreadable``."""
        rec = tx.chart_record(recorded)
        if rec is None:
            self.unreadable.add(recorded)
            return self.current
        source = f"{rec.provider} chart {rec.fingerprint} (as recorded {rec.recorded_at})"
        try:
            spec = parse_chart(json.loads(rec.spec), source, enforce_lint=False)
            return Chart(spec, enforce_lint=False)
        except (ChartError, ValueError):
            self.unreadable.add(recorded)
            return self.current
