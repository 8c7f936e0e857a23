"""Re-folding one invoice: its live events, in fold order, through the engine's rules.

When an event arrives late (its fold key sorts before the invoice's last folded event), the
engine records it and re-folds the invoice from the start: every live event is decided again in
(occurrence time, lifecycle rank, event id) order, each outcome that changes is updated and
written to ``revisions`` (the audit trail), and the final state is returned. ``replay`` uses the
same reading of stored rows, so what is stored and what a replay finds can only differ when the
data was changed behind the engine's back. The cost is O(that invoice's events), read through
the ``events_invoice_fold`` index.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from typing import Any

from ..chart.compiled import Chart
from ..models import Outcome
from ._construct import construct
from .decide import Decision, OnUnknown, decide
from .delivery import Event

__all__ = ["FOLD_ROWS", "refold", "stored_event"]

FOLD_ROWS = """
SELECT seq, event_id, event_type, status, fold_time, fold_rank, outcome, reason, from_state,
       to_state, trigger, retryable, adopted, body, occurred_at, received_at, revisions
FROM events WHERE provider = ? AND invoice_id = ? AND live = 1
ORDER BY fold_time, fold_rank, event_id
"""


def _decision_row(d: Decision) -> tuple[Any, ...]:
    return (d.status, d.reason, d.from_state, d.to_state, d.trigger, int(d.retryable),
            int(d.adopted))  # fmt: skip


def stored_event(chart: Chart, r: tuple[Any, ...]) -> Event:
    spec = chart.event(r[2])
    payload: dict[str, Any] = {}
    if chart.has_guards and r[13] is not None:
        try:
            payload = json.loads(r[13])
        except ValueError:
            payload = {}
    return construct(
        Event, provider=chart.name, event_id=r[1], derived_id=False, invoice_id="?",
        event_type=r[2], trigger=spec.trigger if spec else None, status=r[3],
        status_state=chart.state_for_status(r[3]), occurred_at=None, payload=payload,
    )  # fmt: skip


def refold(
    conn: sqlite3.Connection,
    chart: Chart,
    invoice_id: str,
    on_unknown: OnUnknown,
    *,
    cause: int | None,
    live: dict[str, tuple[int, str, bool]] | None = None,
) -> tuple[str | None, tuple[int, int, str], Outcome]:
    """Fold one invoice's live events in fold order, revising outcomes that change.

    Returns the final state, the last fold key, and the outcome of event ``cause`` (or of the
    last event when ``cause`` is None). ``live``, a batch's cache of live events, is updated
    with each event's new outcome.
    """
    rows = conn.execute(FOLD_ROWS, (chart.name, invoice_id)).fetchall()
    state: str | None = None
    now = datetime.now(UTC).isoformat()
    result: Outcome | None = None
    key: tuple[int, int, str] = (-1, -1, "")
    for r in rows:
        ev = stored_event(chart, r)
        d = decide(chart, state, ev, on_unknown)
        new, old = _decision_row(d), (r[6], r[7], r[8], r[9], r[10], r[11], r[12])
        revisions = r[16]
        if new != old:
            if r[0] != cause:
                revisions += 1
                conn.execute(
                    "INSERT INTO revisions (seq, cause_seq, revised_at, old_outcome, new_outcome,"
                    " old_from, old_to, new_from, new_to, old_reason, new_reason)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (r[0], cause, now, r[6], d.status, r[8], r[9], d.from_state, d.to_state,
                     r[7], d.reason),
                )  # fmt: skip
            conn.execute(
                "UPDATE events SET outcome = ?, reason = ?, from_state = ?, to_state = ?,"
                " trigger = ?, retryable = ?, adopted = ?, revisions = ? WHERE seq = ?",
                (*new, revisions, r[0]),
            )
        state = d.state_after
        key = (r[4], r[5], r[1])
        if live is not None:
            live[r[1]] = (r[0], d.status, d.retryable)
        if cause is None or r[0] == cause:
            result = Outcome.model_construct(
                status=d.status, provider=chart.name, event_id=r[1], invoice_id=invoice_id,
                event_type=r[2], trigger=d.trigger or ev.trigger, from_state=d.from_state,
                to_state=d.to_state, reason=d.reason, retryable=d.retryable, adopted=d.adopted,
                occurred_at=datetime.fromisoformat(r[14]) if r[14] else None,
                received_at=datetime.fromisoformat(r[15]), seq=r[0], revisions=revisions,
            )  # fmt: skip
    assert result is not None
    return state, key, result
