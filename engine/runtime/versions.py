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
from ..store.base import ChartRecord, ReadTx

__all__ = ["VersionResolver", "Versions", "chart_record", "fingerprint"]

#: The chart to decide an event with, given the fingerprint recorded on it.
VersionResolver = Callable[[str | None], Chart]

_FINGERPRINTS: dict[int, tuple[Chart, str]] = {}


def fingerprint(chart: Chart) -> str:
    """A short, stable digest of what the chart says (not of its file's comments or layout)."""
    hit = _FINGERPRINTS.get(id(chart))
    if hit is not None and hit[0] is chart:
        return hit[1]
    text = chart.spec.model_dump_json()
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    if len(_FINGERPRINTS) > 256:  # charts are few; this only stops an unbounded growth
        _FINGERPRINTS.clear()
    _FINGERPRINTS[id(chart)] = (chart, digest)
    return digest


def chart_record(chart: Chart, now: datetime) -> ChartRecord:
    """The row that keeps this version of the chart."""
    return ChartRecord(
        fingerprint(chart), chart.name, chart.spec.model_dump_json(), now.isoformat()
    )


class Versions:
    """The charts that decided a provider's events, read back from the store as needed.

    Args:
        current: the chart the engine decides new events with; also used for rows written
            before charts were recorded (``chart`` is NULL) and for a fingerprint the store
            does not hold.
    """

    def __init__(self, current: Chart) -> None:
        self.current = current
        self.fingerprint = fingerprint(current)
        self._known: dict[str, Chart] = {self.fingerprint: current}

    def resolver(self, tx: ReadTx, *, rechart: bool = False) -> VersionResolver:
        """A lookup of recorded fingerprints through ``tx`` (``rechart``: always the current)."""

        def version(recorded: str | None) -> Chart:
            if rechart or recorded is None:
                return self.current
            chart = self._known.get(recorded)
            if chart is None:
                rec = tx.chart_record(recorded)
                if rec is None:
                    return self.current
                source = f"{rec.provider} chart {rec.fingerprint} (as recorded {rec.recorded_at})"
                chart = self._known[recorded] = Chart(parse_chart(json.loads(rec.spec), source))
            return chart

        return version
