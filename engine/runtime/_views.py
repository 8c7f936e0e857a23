"""The operator's views of the record: invoices by state, dead letters, drift.

Read-only questions for whoever runs the engine, each answered from one read transaction (a
consistent snapshot of committed data, never a write). The store filters in SQL; what needs a
chart — which leaf states a ``state`` filter names, which state a provider's status names — is
decided here. Also here: the conversions from the store's rows to the records
:class:`~engine.Engine` hands back.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from ..chart import Chart, Configuration, available_charts
from ..errors import ChartError, EngineError, UnknownState
from ..models import Drift, InvoiceState, Outcome
from ..store.base import EventRow, InvoiceRow
from ..store.views import SnapshotRow

if TYPE_CHECKING:
    from .engine import Engine

__all__ = ["as_invoice_state", "as_outcome", "find_dead_letters", "find_drift", "invoice_states"]


def as_invoice_state(row: InvoiceRow) -> InvoiceState:
    """An ``invoices`` row (of a born invoice) as the record the engine hands back."""
    return InvoiceState(
        provider=row.provider, invoice_id=row.invoice_id, state=row.state,
        canonical=row.canonical, version=row.version, first_seen_at=row.first_seen_at,
        updated_at=row.updated_at,
    )  # fmt: skip


def as_outcome(row: EventRow, caused: int = 0) -> Outcome:
    """An ``events`` row as the outcome the engine hands back; ``caused``: how many revisions
    its late arrival caused."""
    return Outcome(
        status=row.outcome, provider=row.provider, event_id=row.event_id,
        invoice_id=row.invoice_id, event_type=row.event_type, trigger=row.trigger,
        reason=row.reason, from_state=row.from_state, to_state=row.to_state,
        retryable=bool(row.retryable), adopted=bool(row.adopted), occurred_at=row.occurred_at,
        received_at=row.received_at, seq=row.seq, revisions=row.revisions,
        inferred=tuple(json.loads(row.inferred)) if row.inferred else (),
        caused_revisions=caused, verified=None if row.verified is None else bool(row.verified),
    )  # fmt: skip


def _limit(limit: int | None) -> int | None:
    if limit is not None and not _whole(limit, 1):
        raise EngineError(f"limit={limit!r}; give a whole number of at least 1 (None: all)")
    return limit


def _since(since: int) -> int:
    if not _whole(since, 0):
        raise EngineError(f"since={since!r}; give a cursor, 0 or more (0: from the start)")
    return since


def _whole(n: object, least: int) -> bool:
    """An ``int`` (not a ``bool``) from ``least`` to the most a database integer holds."""
    return isinstance(n, int) and not isinstance(n, bool) and least <= n < 2**63


def _charts(eng: Engine, provider: str | None) -> list[Chart]:
    """``provider``'s chart; with none, every chart ``eng`` can load: those given in code, in
    its ``chart_dir`` and bundled (a broken file is left out: it has no states to offer)."""
    if provider is not None:
        return [eng.chart(provider)]
    charts = []
    for name in dict.fromkeys([*eng._charts, *available_charts(eng.chart_dir)]):
        try:
            charts.append(eng.chart(name))
        except ChartError:
            continue
    return charts


def _configurations(charts: list[Chart], state: str, provider: str | None) -> list[str]:
    """The configurations ``state`` names: itself (in any leaf order), or each configuration
    within it (a compound state, a region, a leaf of one region)."""
    found: set[str] = set()
    for c in charts:
        config = c.tree.configuration(state)
        if config is not None:
            found.add(config)
        elif state in c.tree:
            found.update(c.tree.configurations_within(state))
    if not found:
        names = dict.fromkeys(name for c in charts for name in c.tree.names)
        raise UnknownState(provider or "", state, names)
    return sorted(found)


def _check_canonical(charts: list[Chart], canonical: str, provider: str | None) -> None:
    known = dict.fromkeys(
        name for c in charts for config in c.states if (name := c.tree.canonical_of(config))
    )
    if canonical not in known:
        raise UnknownState(provider or "", canonical, known, kind="canonical state")


def invoice_states(
    eng: Engine,
    provider: str | None,
    *,
    state: str | None,
    canonical: str | None,
    limit: int | None,
) -> list[InvoiceState]:
    """:meth:`Engine.invoices`: the filters checked against the charts, then done in SQL."""
    limit = _limit(limit)
    if provider is not None:
        eng.chart(provider)
    configs = None
    if state is not None or canonical is not None:
        charts = _charts(eng, provider)
        if state is not None:
            configs = _configurations(charts, state, provider)
        if canonical is not None:
            _check_canonical(charts, canonical, provider)
    with eng.store.read() as tx:
        rows = tx.invoice_rows(provider, states=configs, canonical=canonical, limit=limit)
        return [as_invoice_state(r) for r in rows]


def find_dead_letters(eng: Engine, provider: str | None, *, limit: int | None) -> list[Outcome]:
    """:meth:`Engine.dead_letters`."""
    limit = _limit(limit)
    if provider is not None:
        eng.chart(provider)
    with eng.store.read() as tx:
        return [as_outcome(r) for r in tx.dead_letter_rows(provider, limit=limit)]


def _drifts(chart: Chart, row: SnapshotRow, said: str | None) -> bool:
    """Whether the state the snapshot names (``said``) disagrees with the state the event that
    carried it left the invoice in (see :func:`find_drift`)."""
    left = row.to_state if row.outcome == "applied" else row.from_state
    if said == left or (said is not None and left is not None and Configuration(left).within(said)):
        return False
    if said is None or left is None or row.outcome == "rejected" or row.trigger is None:
        return True
    # The event's own step leads from the state its snapshot names to where the engine has the
    # invoice: the snapshot shows the invoice before that step (Stripe's invoice.deleted says
    # draft; a Moxie partial payment delivered after the full one says PARTIAL), no dispute.
    return row.trigger not in chart.transitions_between(said, left)


def find_drift(eng: Engine, provider: str | None) -> list[Drift]:
    """:meth:`Engine.drift`.

    The rule, in the provider's vocabulary translated into the chart's: per invoice with a
    state, the store gives the live event with the highest fold key among those that carry a
    status snapshot; the chart reads the snapshot as a state (``state_for_status``); the
    invoice drifts when that is not the state the event left it in (its ``to_state`` when
    applied, else the state it stayed in), unless the event was not rejected and its own
    trigger leads from the snapshot's state to that state: the snapshot then shows the invoice
    before the step the event reports (taken before it, or an earlier event arriving late).
    Comparing with the state *that event* left, not the invoice's state now, lets later events
    that carry no snapshot move the invoice on without counting as drift: they are the
    provider's newer word. A status the current chart no longer knows always drifts
    (``snapshot_state`` is ``None``).
    """
    if provider is not None:
        eng.chart(provider)
    with eng.store.read() as tx:
        rows = list(tx.snapshot_rows(provider))
    found = []
    for row in rows:
        chart = eng.chart(row.provider)
        spec = chart.event(row.event_type or "")
        said = chart.state_for_status(row.status_snapshot, spec.region if spec else None)
        if not _drifts(chart, row, said):
            continue
        found.append(Drift(
            provider=row.provider, invoice_id=row.invoice_id, state=row.state,
            canonical=row.canonical, snapshot=row.status_snapshot, snapshot_state=said,
            event_seq=row.seq, event_id=row.event_id, event_type=row.event_type,
            outcome=row.outcome, reason=row.reason, occurred_at=row.occurred_at,
            seen_at=row.received_at,
        ))  # fmt: skip
    return found
