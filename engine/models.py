"""The records the engine hands back: outcomes, invoice states, drift, replay reports.

History is data: small pydantic models with a readable ``str()`` that serialize to JSON.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

__all__ = ["Drift", "InvoiceState", "Mismatch", "Outcome", "OutcomeStatus", "ReplayReport"]

OutcomeStatus = Literal["applied", "unchanged", "duplicate", "ignored", "rejected", "invalid"]


class Outcome(BaseModel):
    """What happened to one delivery.

    ``status`` is one of ``applied`` (the invoice changed or was born), ``unchanged`` (legal,
    nothing to change), ``duplicate`` (this event was already recorded), ``ignored`` (a readable
    event of a type the chart does not map, e.g. Stripe's ``customer.created``), ``rejected``
    (illegal from the invoice's state; ``retryable`` says whether a later delivery could make it
    legal),
    ``invalid`` (the delivery could not be read; ``reason`` names the path and value).
    """

    model_config = ConfigDict(frozen=True)

    status: OutcomeStatus
    provider: str
    event_id: str | None = None
    invoice_id: str | None = None
    event_type: str | None = None
    trigger: str | None = None
    from_state: str | None = None
    to_state: str | None = None
    reason: str | None = None
    retryable: bool = False
    adopted: bool = False
    occurred_at: datetime | None = None
    received_at: datetime | None = None
    #: The row number of this delivery in the ``events`` table (arrival order).
    seq: int | None = None
    #: How many times a late event re-folded the invoice and changed this outcome.
    revisions: int = 0
    #: Steps the engine inferred along the chart to catch up with the status the event
    #: reported, when its own step was illegal (``"finalize: draft → open"``); see the README.
    inferred: tuple[str, ...] = ()
    #: How many *other* events' outcomes this event's late arrival revised when it re-folded
    #: the invoice (a payment that no longer counts, say): look at them with ``history``.
    caused_revisions: int = 0
    #: Whether the delivery's signature was verified (``True``), it was accepted unsigned from a
    #: provider opened without a secret (``False``), or nobody checked (``None``: applied
    #: through the library or the CLI, whose callers vouch for what they pass).
    verified: bool | None = None

    def __str__(self) -> str:
        who = f"{self.provider}/{self.invoice_id}" if self.invoice_id else self.provider
        what = self.event_type or "(unreadable delivery)"
        if self.trigger and self.trigger != self.event_type:
            what += f" ({self.trigger})"
        move = ""
        if self.status == "applied":
            move = f": {self.from_state or '∅'} → {self.to_state}"
        elif self.from_state:
            move = f": stays {self.from_state}"
        tail = f" — {self.reason}" if self.reason and self.status != "applied" else ""
        if self.adopted:
            tail += " (adopted)"
        if self.inferred:
            tail += f" (inferred: {'; '.join(self.inferred)})"
        if self.retryable:
            tail += " [retryable]"
        if self.caused_revisions:
            tail += f" [revised {self.caused_revisions} earlier outcomes]"
        return f"{self.status:<9} {who} {what}{move}{tail}"


class InvoiceState(BaseModel):
    """An invoice's current state as the engine knows it."""

    model_config = ConfigDict(frozen=True)

    provider: str
    invoice_id: str
    state: str
    canonical: str
    #: Bumped every time an event is folded into the invoice.
    version: int
    #: When this engine first recorded the invoice (not the provider's invoice date). Accepts
    #: ``created_at``, its former name, so records dumped by earlier versions still load.
    first_seen_at: datetime = Field(validation_alias=AliasChoices("first_seen_at", "created_at"))
    #: When this engine last changed its record of the invoice.
    updated_at: datetime

    @property
    def created_at(self) -> datetime:
        """The former name of :attr:`first_seen_at` (it never was the provider's date)."""
        return self.first_seen_at

    def __str__(self) -> str:
        return (
            f"{self.provider}/{self.invoice_id}: {self.state} ({self.canonical}), v{self.version}"
        )


class Drift(BaseModel):
    """An invoice whose provider last reported a status other than the engine's state.

    ``snapshot`` is the provider's own word (Stripe's ``void``, ChargeOver's ``closed-void``);
    ``snapshot_state`` is the chart state it names (the chart's ``delivery.statuses``, where a
    state's own name names itself), ``None`` when the chart no longer knows that status. See
    :meth:`engine.Engine.drift` for when an invoice drifts.
    """

    model_config = ConfigDict(frozen=True)

    provider: str
    invoice_id: str
    #: The engine's state for the invoice, and its canonical state.
    state: str
    canonical: str | None
    #: The status the provider reported last, and the state of the chart it names.
    snapshot: str
    snapshot_state: str | None
    #: The delivery that reported it: its row number (``seq``), event id and type, and the
    #: engine's verdict on it (``rejected``, with the reason, when the chart forbids the move).
    event_seq: int
    event_id: str | None
    event_type: str | None
    outcome: OutcomeStatus
    reason: str | None = None
    #: When the provider says it happened (``None`` for charts without event times), and when
    #: the engine received it.
    occurred_at: datetime | None = None
    seen_at: datetime

    def __str__(self) -> str:
        names = f" (= {self.snapshot_state})" if self.snapshot_state != self.snapshot else ""
        if self.snapshot_state is None:
            names = " (no state of the chart)"
        return (
            f"{self.provider}/{self.invoice_id}: engine {self.state}, provider "
            f"{self.snapshot!r}{names} at #{self.event_seq} {self.event_type or '?'} "
            f"({self.outcome})"
        )


class Mismatch(BaseModel):
    """One difference ``replay`` found between the events table and what is stored."""

    provider: str
    invoice_id: str
    what: str
    stored: str | None
    replayed: str | None

    def __str__(self) -> str:
        return (
            f"{self.provider}/{self.invoice_id}: {self.what}: stored {self.stored!r}, "
            f"replayed {self.replayed!r}"
        )


class ReplayReport(BaseModel):
    """The result of rebuilding every invoice from the events table."""

    invoices: int
    events: int
    #: What the replay found to differ from what is stored.
    mismatches: list[Mismatch]
    #: Whether the stored rows were corrected (``replay(repair=True)``).
    repaired: bool = False
    #: After a repair: what still differs (nothing, unless the repair could not fix it).
    unrepaired: list[Mismatch] = []
    #: Things worth knowing that are not mismatches (events decided under an earlier chart).
    notes: list[str] = []
    #: How many events' outcomes the repair (or ``rechart``) rewrote, each kept as a revision.
    revised: int = 0

    @property
    def ok(self) -> bool:
        """Whether the stored state now agrees with the events: no mismatch was found, or the
        repair fixed every one."""
        return not (self.unrepaired if self.repaired else self.mismatches)

    def __str__(self) -> str:
        head = f"replayed {_n(self.events, 'event')} over {_n(self.invoices, 'invoice')}: "
        if not self.mismatches:
            lines = [head + "no mismatch"]
        else:
            lines = [head + _n(len(self.mismatches), "mismatch", "mismatches")]
            lines += [f"  {m}" for m in self.mismatches[:50]]
            if self.repaired:
                fixed = len(self.mismatches) - len(self.unrepaired)
                lines.append(f"repaired {fixed}; could not repair {len(self.unrepaired)}")
                lines += [f"  {m}" for m in self.unrepaired[:50]]
        if self.revised:
            lines.append(f"rewrote {_n(self.revised, 'outcome')} (each kept as a revision)")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


ChangeKind = Literal["applied", "late", "repair", "rechart", "migrated"]


class Change(BaseModel):
    """One entry of the changes feed: an invoice's state moved (``Engine.changes``).

    Entries are numbered by ``cursor`` in the order their transactions committed, so a
    consumer that stores the last cursor it handled resumes exactly after it. Folding an
    invoice's entries in cursor order (each ``from`` is the ``to`` before it) ends at the
    engine's state for it.
    """

    model_config = ConfigDict(frozen=True)

    cursor: int
    provider: str
    invoice_id: str
    #: The state before (``None``: the invoice was born by this change).
    from_state: str | None
    from_canonical: str | None
    #: The state after (``None``: a repair found the invoice has no state after all).
    to_state: str | None
    to_canonical: str | None
    #: ``applied``: an event moved the invoice; ``late``: a late event re-folded its history;
    #: ``repair``: ``replay --repair`` mended it; ``rechart``: ``replay --rechart`` decided its
    #: history again under the current chart; ``migrated``: its state when the feed began.
    kind: ChangeKind
    #: The delivery that caused it (its ``Outcome.seq`` and event id); ``None`` for a repair
    #: or a migration.
    cause_seq: int | None
    cause_event_id: str | None
    #: The cursor of the invoice's entry before this one, when this one takes back history (a
    #: late event or a repair undid a transition an event had applied), else ``None``. Act on
    #: it: the state that entry announced no longer stands as history, whatever you did then.
    corrects: int | None
    recorded_at: datetime

    @property
    def correction(self) -> bool:
        """Whether this entry takes back what an earlier one said."""
        return self.corrects is not None

    def __str__(self) -> str:
        move = f"{self.from_state or '∅'} → {self.to_state or '∅'}"
        if self.to_canonical and self.to_canonical != self.to_state:
            move += f" ({self.to_canonical})"
        cause = f" by #{self.cause_seq} {self.cause_event_id}" if self.cause_seq else ""
        fix = f" [corrects #{self.corrects}]" if self.corrects is not None else ""
        return f"#{self.cursor} {self.provider}/{self.invoice_id}: {move} ({self.kind}{cause}){fix}"


def _n(count: int, one: str, many: str | None = None) -> str:
    """``1 event``, ``2 events``."""
    return f"{count} {one if count == 1 else (many or one + 's')}"
