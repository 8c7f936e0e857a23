"""Replay: decide every invoice's history again from the events table, and compare.

The record must be provable: each invoice's live events, folded again under the chart version
and policy each was decided with, must give exactly the stored outcomes (verdict, reason,
states, trigger, flags, inferred steps) and the stored invoice row (state, canonical state,
fold position). Invoice rows left without any event are mismatches too. ``repair`` rewrites
what differs inside one write transaction and checks again there; ``rechart`` re-decides
history under the current charts, as an explicit act. Events decided under a chart version the
store does not hold (or this release can't read) are not judged under a stand-in: they are
named in the notes and left for ``rechart``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from ..models import Mismatch, ReplayReport
from ..store.base import NO_KEY, InvoiceRow, ReadTx, Store, WriteTx
from ..store.feed import PREVIOUS, ChangeRow
from ._clock import Clock, utc_text
from ._refold import Refolded, refold
from .decide import OnUnknown
from .fold import Folded, fold
from .versions import Versions

__all__ = ["replay"]

_OUTCOME_FIELDS = (
    ("outcome", "status"), ("reason", "reason"), ("from_state", "from_state"),
    ("to_state", "to_state"), ("trigger", "trigger"), ("retryable", "retryable"),
    ("adopted", "adopted"),
)  # fmt: skip


class _Found(NamedTuple):
    invoices: list[tuple[str, str]]
    events: int
    mismatches: list[Mismatch]
    notes: list[str]
    #: Invoices with events under a chart version that can't be read: not judged, not repaired.
    unjudged: set[tuple[str, str]]


def replay(
    store: Store,
    versions_of: Callable[[str], Versions],
    on_unknown: OnUnknown,
    clock: Clock,
    provider: str | None,
    *,
    repair: bool,
    rechart: bool,
) -> ReplayReport:
    """The work of :meth:`engine.Engine.replay` (see there)."""
    repair = repair or rechart
    with store.read() as tx:
        providers = {p for p, _ in tx.chart_versions(provider)}
    for name in sorted(providers | ({provider} if provider else set())):
        versions_of(name)  # every chart loaded (or its error raised) before reading
    with store.read() as tx:
        found = _check(tx, versions_of, on_unknown, provider)
    redo = {(m.provider, m.invoice_id) for m in found.mismatches} - found.unjudged
    if rechart:
        redo = set(found.invoices)
    unrepaired: list[Mismatch] = []
    revised = 0
    if repair and redo:
        touched = [versions_of(prov) for prov in sorted({p for p, _ in redo})]

        def work(wtx: WriteTx) -> tuple[int, list[Mismatch]]:  # may run again (transact)
            if rechart:  # every invoice: the whole store, alone
                wtx.lock_store()
            else:  # as a writer would, before reading them
                wtx.lock_invoices(sorted(redo))
            now = utc_text(clock())
            for versions in touched:
                wtx.record_chart(versions.record)  # rechart writes its fingerprint on rows
            revised = 0
            for prov, iid in sorted(redo):
                done = refold(
                    wtx, versions_of(prov), iid, on_unknown, cause=None, now=now, rechart=rechart
                )
                revised += done.revised
                _put_invoice(wtx, prov, iid, done, now, "rechart" if rechart else "repair")
            return revised, _check(wtx, versions_of, on_unknown, provider, only=redo).mismatches

        revised, unrepaired = store.transact(work)
        for versions in touched:
            versions.recorded = True
    notes = found.notes
    if rechart:  # every event now stands under the current chart
        notes = [n for n in notes if "earlier chart" not in n and "can't read" not in n]
    return ReplayReport(
        invoices=len(found.invoices), events=found.events, mismatches=found.mismatches,
        repaired=repair, unrepaired=unrepaired, notes=notes, revised=revised,
    )  # fmt: skip


def _differs(step: Folded) -> str | None:
    """Which stored fields of an event's outcome the replay decides otherwise, or None."""
    if not step.changed:
        return None
    row, d = step.row, step.decision
    names = [col for col, attr in _OUTCOME_FIELDS if getattr(row, col) != getattr(d, attr)]
    return ", ".join(names) or "inferred"


def _check(
    tx: ReadTx,
    versions_of: Callable[[str], Versions],
    on_unknown: OnUnknown,
    provider: str | None,
    only: set[tuple[str, str]] | None = None,
) -> _Found:
    """Fold every invoice (or ``only`` these) from its stored events and compare with what
    is stored, in one transaction."""
    pairs = tx.folded_invoices(provider)
    folded = set(pairs)
    orphans = [(i.provider, i.invoice_id) for i in tx.invoice_rows(provider)]
    pairs += [p for p in orphans if p not in folded]
    if only is not None:
        pairs = [p for p in pairs if p in only]
    mismatches: list[Mismatch] = []
    unjudged: set[tuple[str, str]] = set()
    events = 0
    latest = tx.feed.latest(provider)
    for prov, iid in pairs:
        versions = versions_of(prov)
        state = canonical = None
        key = NO_KEY
        mine: list[Mismatch] = []
        for step in fold(tx.fold_rows(prov, iid), versions.resolver(tx), on_unknown):
            events += 1
            row, d = step.row, step.decision
            if row.chart is not None and row.chart in versions.unreadable:
                unjudged.add((prov, iid))
            what = _differs(step)
            if what is not None:
                mine.append(
                    Mismatch(provider=prov, invoice_id=iid, what=f"event #{row.seq} {what}",
                             stored=f"{row.outcome} → {row.to_state}: {row.reason}",
                             replayed=f"{d.status} → {d.to_state}: {d.reason}")
                )  # fmt: skip
            if d.status == "applied" and d.to_state is not None:
                canonical = step.chart.canonical(d.to_state)
            state, key = d.state_after, row.key
        stored = tx.invoice(prov, iid)
        if stored is None or stored.state != state:
            mine.append(
                Mismatch(provider=prov, invoice_id=iid, what="state",
                         stored=stored.state if stored else "(no invoice row)", replayed=state)
            )  # fmt: skip
        elif state is not None and (stored.canonical, stored.key) != (canonical, key):
            mine.append(
                Mismatch(provider=prov, invoice_id=iid, what="canonical state or fold position",
                         stored=f"{stored.canonical} at {tuple(stored.key)}",
                         replayed=f"{canonical} at {tuple(key)}")
            )  # fmt: skip
        said = latest.pop((prov, iid), None)
        feed_says = (said.to_state, said.to_canonical) if said else (None, None)
        if feed_says != (state, canonical if state else None):
            mine.append(_feed_mismatch(prov, iid, said, state))
        if (prov, iid) not in unjudged:
            mismatches += mine
    if only is None:  # entries for invoices the events know nothing of
        mismatches += [
            _feed_mismatch(p, i, said, None) for (p, i), said in latest.items() if said.to_state
        ]
    return _Found(pairs, events, mismatches, _notes(tx, versions_of, provider, only), unjudged)


def _feed_mismatch(provider: str, invoice_id: str, said: ChangeRow | None, state: str | None
                   ) -> Mismatch:  # fmt: skip
    stored = f"{said.to_state} at #{said.cursor}" if said else "(no entry)"
    return Mismatch(provider=provider, invoice_id=invoice_id, what="changes feed's last entry",
                    stored=stored, replayed=state)  # fmt: skip


def _notes(
    tx: ReadTx,
    versions_of: Callable[[str], Versions],
    provider: str | None,
    only: set[tuple[str, str]] | None,
) -> list[str]:
    if only is not None:
        return []
    notes = []
    for (prov, version), n in sorted(tx.chart_versions(provider).items(), key=str):
        versions = versions_of(prov)
        if version is None or version == versions.fingerprint:
            continue
        if version in versions.unreadable:
            notes.append(
                f"{prov}: {n} event{'s were' if n != 1 else ' was'} decided under chart "
                f"{version}, which this store does not hold or this release can't read; their "
                "invoices were not judged. "
                "--rechart re-decides them under the current chart."
            )
        else:
            notes.append(
                f"{prov}: {n} event{'s were' if n != 1 else ' was'} decided under an earlier "
                f"chart ({version}); they replay under it. replay(rechart=True) (--rechart) "
                "re-decides them under the current chart."
            )
    return notes


def _put_invoice(
    tx: WriteTx, provider: str, invoice_id: str, done: Refolded, now: str, kind: str
) -> None:
    """Write a re-folded invoice's row, creating it if it was lost."""
    old = tx.invoice(provider, invoice_id)
    last = tx.feed.last(provider, invoice_id)  # what the feed said last: the entry's "from"
    before = (last.to_state, last.to_canonical) if last else (None, None)
    if before != (done.state, done.canonical if done.state else None):
        # a correction when it takes back a transition an event had applied, or the invoice
        # itself; else it only tells what the feed had missed
        corrects = PREVIOUS if done.undid or done.state is None else None
        tx.feed.append([
            ChangeRow(0, provider, invoice_id, *before, done.state,
                      done.canonical if done.state else None, None, None, corrects, kind, now)
        ])  # fmt: skip
    tx.upsert_invoices(
        [
            InvoiceRow(
                provider, invoice_id, done.state, done.canonical if done.state else None,
                (old.version if old else 0) + 1, old.first_seen_at if old else now, now,
                *done.key,
            )
        ]
    )  # fmt: skip
