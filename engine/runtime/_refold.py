"""Re-folding an invoice: its live events decided again in fold order, the outcomes that
change rewritten (and kept in ``revisions``) — after a late event, and by ``replay --repair``."""

from __future__ import annotations

from datetime import datetime

from ..models import Outcome
from ..store.base import NO_KEY, FoldKey, LiveEvent, RevisedOutcome, RevisionRow, WriteTx
from ._construct import construct
from .decide import OnUnknown
from .fold import fold, inferred_text
from .versions import Versions

__all__ = ["Refolded", "refold"]


class Refolded:
    """What re-folding an invoice found: its state (and that state's canonical one, from the
    chart version that decided it), its last fold key, and the cause's outcome."""

    __slots__ = ("canonical", "key", "outcome", "revised", "state", "undid")

    def __init__(
        self,
        state: str | None,
        canonical: str | None,
        key: FoldKey,
        outcome: Outcome | None,
        revised: int,
        undid: bool = False,
    ) -> None:
        self.state = state
        self.canonical = canonical
        self.key = key
        self.outcome = outcome
        #: How many events' outcomes the re-fold revised (a revision row each).
        self.revised = revised
        #: Whether it took back a transition an event had applied (a correction, in the feed).
        self.undid = undid


def refold(
    tx: WriteTx,
    versions: Versions,
    invoice_id: str,
    on_unknown: OnUnknown,
    *,
    cause: int | None,
    now: str,
    live: dict[str, LiveEvent] | None = None,
    rechart: bool = False,
) -> Refolded:
    """Fold one invoice's live events in fold order, rewriting the outcomes that change.

    Each event is decided under the chart version and policy it was recorded with (with
    ``rechart``: under the current chart, which is then recorded on it; the policy stays).
    A changed outcome of any event but ``cause`` (the late arrival itself, whose outcome was a
    placeholder) is written to ``revisions``. ``live``, a batch's cache of live events, is
    updated with each event's new outcome. Returns the outcome of event ``cause`` (``None`` for
    a repair, which has no cause).
    """
    provider = versions.current.name
    state: str | None = None
    canonical: str | None = None
    key = NO_KEY
    result: Outcome | None = None
    written = 0  # revision rows
    undid = False
    rows = tx.fold_rows(provider, invoice_id)
    for step in fold(rows, versions.resolver(tx, rechart=rechart), on_unknown):
        row, d = step.row, step.decision
        revisions = row.revisions
        recorded = (row.policy, row.chart)  # as RevisedOutcome orders them
        if rechart:  # the current chart; each event keeps the policy it came under
            recorded = (step.policy, versions.fingerprint)
        changed = step.changed  # computed from the row and the decision: ask once
        if changed or recorded != (row.policy, row.chart):
            revision = None
            if changed and row.seq != cause:
                undid = undid or (row.outcome == "applied" and (d.status, d.to_state) != (
                    "applied", row.to_state))  # fmt: skip
                written += 1
                revisions += 1
                revision = RevisionRow(
                    row.seq, cause, now, row.outcome, d.status, row.from_state, row.to_state,
                    d.from_state, d.to_state, row.reason, d.reason,
                )  # fmt: skip
            tx.revise(
                RevisedOutcome(
                    row.seq, d.status, d.reason, d.from_state, d.to_state, d.trigger,
                    int(d.retryable), int(d.adopted), revisions, *recorded,
                    inferred_text(d.inferred),
                ),
                revision,
            )  # fmt: skip
        if d.status == "applied" and d.to_state is not None:
            canonical = step.chart.canonical(d.to_state)
        state = d.state_after
        key = row.key
        if live is not None and row.event_id is not None:
            live[row.event_id] = LiveEvent(row.seq, d.status, d.retryable)
        if row.seq == cause:
            result = construct(
                Outcome, status=d.status, provider=provider, event_id=row.event_id,
                invoice_id=invoice_id, event_type=row.event_type,
                trigger=d.trigger or step.event.trigger, from_state=d.from_state,
                to_state=d.to_state, reason=d.reason, retryable=d.retryable, adopted=d.adopted,
                occurred_at=datetime.fromisoformat(row.occurred_at) if row.occurred_at else None,
                received_at=datetime.fromisoformat(row.received_at), seq=row.seq,
                revisions=revisions, inferred=d.inferred, caused_revisions=0,
                verified=None if row.verified is None else bool(row.verified),
            )  # fmt: skip
    if result is not None and written:
        result = result.model_copy(update={"caused_revisions": written})
    return Refolded(state, canonical, key, result, written, undid)
