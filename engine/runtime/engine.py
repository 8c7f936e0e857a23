"""The engine: webhook deliveries in, true invoice state and a lossless SQLite history out.

For every delivery: **read** it through the chart's delivery map (unreadable: ``invalid``);
**deduplicate** on (provider, event id); **decide** with the chart's machine from the invoice's
current state (:mod:`engine.decide`); **record** the event row and the invoice row in the same
transaction. Nothing a user sent is dropped: invalid deliveries and duplicates are rows too.

**Order.** When a chart says where a delivery's occurrence time lives, every invoice's events
are folded in *fold order* — (occurrence time, lifecycle rank, event id) — whatever order they
arrived in. An event that arrives late (its key sorts before the invoice's last folded event)
re-folds that invoice's live events from the start: the final state and every recorded outcome
are then exactly those of a sorted arrival, and each outcome that changed is written to the
``revisions`` table. This costs O(that invoice's events). Charts without occurrence times fold
in arrival order; there a redelivery of an event that was rejected as ``retryable`` is decided
again (the earlier attempt is kept, marked as superseded) — that is how "retry later" works.

**Batches.** :meth:`Engine.apply_many` runs many deliveries per transaction, keeping the
batch's invoice rows in memory and writing rows with ``executemany``; the results are identical
to applying one by one, because both go through the same :class:`_Batch`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..chart import Chart, load_chart
from ..errors import DeliveryError, EngineError
from ..models import InvoiceState, Mismatch, Outcome, OutcomeStatus, ReplayReport
from ..store.sqlite import EVENT_FIELDS, Store, Synchronous
from ._construct import construct
from .decide import Decision, OnUnknown, decide, fold_rank
from .delivery import Event, normalize_headers, raw_bytes, read_delivery, redact_headers
from .fold import FOLD_ROWS, refold, stored_event

__all__ = ["Body", "Delivery", "Engine"]

Body = bytes | str | Mapping[str, Any]
Delivery = Body | tuple[Body, Mapping[str, Any] | None]

_INSERT_EVENT = (
    f"INSERT INTO events ({', '.join(EVENT_FIELDS)}) VALUES ({', '.join('?' * len(EVENT_FIELDS))})"
)
_UPSERT_INVOICE = """
INSERT INTO invoices (provider, invoice_id, state, canonical, version, created_at, updated_at,
                      last_time, last_rank, last_event_id)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (provider, invoice_id) DO UPDATE SET
  state = excluded.state, canonical = excluded.canonical, version = excluded.version,
  updated_at = excluded.updated_at, last_time = excluded.last_time,
  last_rank = excluded.last_rank, last_event_id = excluded.last_event_id
"""


def _micros(when: datetime) -> int:
    return int(when.timestamp() * 1_000_000)


class _Invoice:
    """An invoice row held in memory for the length of a batch."""

    __slots__ = ("created_at", "exists", "key", "state", "version")

    def __init__(
        self, state: str | None, version: int, created_at: str | None, key: tuple[int, int, str]
    ) -> None:
        self.state = state
        self.version = version
        self.created_at = created_at
        self.key = key
        self.exists = created_at is not None


class _Batch:
    """One write transaction's worth of deliveries for one provider."""

    def __init__(self, engine: Engine, chart: Chart) -> None:
        self.engine = engine
        self.chart = chart
        self.conn = engine.store.conn
        self.provider = chart.name
        self.timed = chart.spec.delivery.occurred_at is not None
        self.seq = engine.store.next_seq()
        self.invoices: dict[str, _Invoice] = {}
        self.dirty: set[str] = set()
        self.rows: list[tuple[Any, ...]] = []
        self.live: dict[str, tuple[int, str, bool]] = {}  # event id -> (seq, outcome, retryable)
        self.absent: set[str] = set()  # event ids known not to be live in the database

    # ------------------------------------------------------------------ memory

    def _invoice(self, invoice_id: str) -> _Invoice:
        inv = self.invoices.get(invoice_id)
        if inv is None:
            row = self.conn.execute(
                "SELECT state, version, created_at, last_time, last_rank, last_event_id "
                "FROM invoices WHERE provider = ? AND invoice_id = ?",
                (self.provider, invoice_id),
            ).fetchone()
            if row is None:
                inv = _Invoice(None, 0, None, (-1, -1, ""))
            else:
                inv = _Invoice(row[0], row[1], row[2], (row[3], row[4], row[5]))
            self.invoices[invoice_id] = inv
        return inv

    def _prefetch(self, events: list[Event]) -> None:
        """Look up a chunk's event ids and invoices in two queries per 500, not two per delivery."""
        ids = list({ev.event_id for ev in events if ev.event_id not in self.live})
        invoice_ids = list(
            {ev.invoice_id for ev in events if ev.invoice_id is not None} - self.invoices.keys()
        )
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            rows = self.conn.execute(
                "SELECT event_id, seq, outcome, retryable FROM events WHERE provider = ?"
                f" AND live = 1 AND event_id IN ({', '.join('?' * len(part))})",
                (self.provider, *part),
            ).fetchall()
            self.absent.update(part)
            for r in rows:
                self.absent.discard(r[0])
                self.live[r[0]] = (r[1], r[2], bool(r[3]))
        for i in range(0, len(invoice_ids), 500):
            part = invoice_ids[i : i + 500]
            rows = self.conn.execute(
                "SELECT invoice_id, state, version, created_at, last_time, last_rank,"
                " last_event_id FROM invoices WHERE provider = ?"
                f" AND invoice_id IN ({', '.join('?' * len(part))})",
                (self.provider, *part),
            ).fetchall()
            for iid in part:
                self.invoices[iid] = _Invoice(None, 0, None, (-1, -1, ""))
            for r in rows:
                self.invoices[r[0]] = _Invoice(r[1], r[2], r[3], (r[4], r[5], r[6]))

    def _known(self, event_id: str) -> tuple[int, str, bool] | None:
        hit = self.live.get(event_id)
        if hit is None and event_id not in self.absent:
            row = self.conn.execute(
                "SELECT seq, outcome, retryable FROM events "
                "WHERE provider = ? AND event_id = ? AND live = 1",
                (self.provider, event_id),
            ).fetchone()
            if row is not None:
                hit = (row[0], row[1], bool(row[2]))
        return hit

    def flush(self) -> None:
        if self.rows:
            self.conn.executemany(_INSERT_EVENT, self.rows)
            self.rows.clear()
        if self.dirty:
            self.conn.executemany(
                _UPSERT_INVOICE,
                [self._invoice_row(iid, self.invoices[iid]) for iid in self.dirty],
            )
            self.dirty.clear()

    def _invoice_row(self, invoice_id: str, inv: _Invoice) -> tuple[Any, ...]:
        now = self.engine._now_text()
        created = inv.created_at or now
        inv.created_at = created
        state = inv.state
        canonical = self.chart.canonical(state) if state is not None else None
        return (self.provider, invoice_id, state, canonical, inv.version, created, now, *inv.key)

    # ------------------------------------------------------------------- apply

    def run(self, chunk: list[tuple[Body, Mapping[str, Any] | None]]) -> list[Outcome]:
        """Read every delivery of the chunk, prefetch what they touch, then apply in order."""
        read = [self._read(body, headers) for body, headers in chunk]
        if len(read) > 1:  # one delivery: its two point lookups are cheaper than IN lists
            self._prefetch([r[2] for r in read if isinstance(r[2], Event)])
        return [self._apply(*r) for r in read]

    def _read(
        self, body: Body, headers: Mapping[str, Any] | None
    ) -> tuple[bytes, str | None, Event | DeliveryError]:
        hdrs = normalize_headers(headers)
        raw = raw_bytes(body)
        stored_headers = json.dumps(redact_headers(hdrs)) if hdrs else None
        try:
            return raw, stored_headers, read_delivery(self.chart, body, hdrs)
        except DeliveryError as exc:
            return raw, stored_headers, exc

    def _apply(self, raw: bytes, stored_headers: str | None, ev: Event | DeliveryError) -> Outcome:
        now = self.engine._now()
        seq = self.seq
        self.seq += 1
        if isinstance(ev, DeliveryError):
            exc = ev
            self.rows.append(
                (seq, self.provider, None, 0, None, None, None, None, "invalid", str(exc),
                 None, None, 0, 0, None, None, None, now.isoformat(), 0, stored_headers, raw)
            )  # fmt: skip
            return Outcome.model_construct(
                status="invalid", provider=self.provider, reason=str(exc), received_at=now,
                seq=seq, event_id=None, invoice_id=None, event_type=None, trigger=None,
                from_state=None, to_state=None, retryable=False, adopted=False,
                occurred_at=None, revisions=0,
            )  # fmt: skip

        known = self._known(ev.event_id)
        if known is not None:
            prior_seq, prior_outcome, prior_retryable = known
            if self.timed or not (prior_outcome == "rejected" and prior_retryable):
                reason = f"already recorded as #{prior_seq} ({prior_outcome})"
                return self._record(ev, seq, now, raw, stored_headers, "duplicate", None,
                                    reason=reason, retryable=prior_retryable, live=0)  # fmt: skip
            self._supersede(prior_seq, seq)

        if ev.invoice_id is None:
            d = decide(self.chart, None, ev, self.engine.on_unknown)
            return self._record(ev, seq, now, raw, stored_headers, d.status, d, live=1)

        inv = self._invoice(ev.invoice_id)
        if self.timed:
            assert ev.occurred_at is not None
            key = (_micros(ev.occurred_at), fold_rank(self.chart, ev), ev.event_id)
        else:
            key = (seq, 0, ev.event_id)
        if inv.exists and key < inv.key:
            return self._late(ev, inv, key, seq, now, raw, stored_headers)
        d = decide(self.chart, inv.state, ev, self.engine.on_unknown)
        inv.state = d.state_after
        inv.key = key
        inv.version += 1
        inv.exists = True
        self.dirty.add(ev.invoice_id)
        return self._record(ev, seq, now, raw, stored_headers, d.status, d, key=key, live=1)

    def _record(
        self,
        ev: Event,
        seq: int,
        now: datetime,
        raw: bytes,
        headers: str | None,
        status: OutcomeStatus,
        d: Decision | None,
        *,
        live: int,
        reason: str | None = None,
        retryable: bool = False,
        key: tuple[int, int, str] | None = None,
    ) -> Outcome:
        if d is not None:
            reason, retryable = d.reason, d.retryable
        frm = d.from_state if d else None
        to = d.to_state if d else None
        trigger = d.trigger if d and d.trigger else ev.trigger
        adopted = d.adopted if d else False
        occurred = ev.occurred_at.isoformat() if ev.occurred_at else None
        self.rows.append(
            (seq, self.provider, ev.event_id, live, ev.invoice_id, ev.event_type, trigger,
             ev.status, status, reason, frm, to, int(retryable), int(adopted), occurred,
             key[0] if key else None, key[1] if key else None, now.isoformat(), 0, headers, raw)
        )  # fmt: skip
        if live:
            self.live[ev.event_id] = (seq, status, retryable)
        return construct(
            Outcome, status=status, provider=self.provider, event_id=ev.event_id,
            invoice_id=ev.invoice_id, event_type=ev.event_type, trigger=trigger,
            from_state=frm, to_state=to, reason=reason, retryable=retryable, adopted=adopted,
            occurred_at=ev.occurred_at, received_at=now, seq=seq, revisions=0,
        )  # fmt: skip

    def _supersede(self, prior_seq: int, by_seq: int) -> None:
        """An untimed retry of a retryable rejection: the old attempt stops counting."""
        self.flush()
        self.conn.execute(
            "UPDATE events SET live = 0, reason = reason || ? WHERE seq = ?",
            (f"; superseded by #{by_seq}", prior_seq),
        )
        self.live = {k: v for k, v in self.live.items() if v[0] != prior_seq}

    def _late(
        self,
        ev: Event,
        inv: _Invoice,
        key: tuple[int, int, str],
        seq: int,
        now: datetime,
        raw: bytes,
        headers: str | None,
    ) -> Outcome:
        """A late arrival: record it, then re-fold the invoice in fold order."""
        assert ev.invoice_id is not None
        placeholder = Decision("rejected", None, None, reason="late: being re-folded")
        self._record(ev, seq, now, raw, headers, "rejected", placeholder, key=key, live=1)
        self.flush()
        inv.state, inv.key, mine = refold(
            self.conn, self.chart, ev.invoice_id, self.engine.on_unknown, cause=seq, live=self.live
        )
        inv.version += 1
        self.dirty.add(ev.invoice_id)
        return mine


def _invoice_state(r: tuple[Any, ...]) -> InvoiceState:
    """An ``invoices`` row (provider, invoice_id, state, canonical, version, created, updated)."""
    return InvoiceState(
        provider=r[0], invoice_id=r[1], state=r[2], canonical=r[3], version=r[4],
        created_at=r[5], updated_at=r[6],
    )  # fmt: skip


class Engine:
    """Applies webhook deliveries to invoices, recording everything in SQLite.

    Args:
        db: a SQLite file path (created, owner-only, WAL) or ``":memory:"``.
        chart_dir: a folder of your own charts, used beside the bundled ones.
        charts: charts to use by provider name, overriding files (e.g. built in code).
        on_unknown: an invoice first seen through a non-creating event: ``"adopt"`` its status
            snapshot (recorded as adopted), or ``"reject"`` the event (``retryable``).
        synchronous: SQLite's durability setting; ``"NORMAL"`` (default, WAL: durable across
            process crashes, may lose the last transactions on power loss) or ``"FULL"``.
        batch_size: deliveries per transaction in :meth:`apply_many`.
    """

    def __init__(
        self,
        db: str | Path = "invoices.db",
        *,
        chart_dir: str | Path | None = None,
        charts: Mapping[str, Chart] | None = None,
        on_unknown: OnUnknown = "adopt",
        synchronous: Synchronous = "NORMAL",
        batch_size: int = 2000,
    ) -> None:
        if on_unknown not in ("adopt", "reject"):
            raise EngineError(f"on_unknown={on_unknown!r}; choose 'adopt' or 'reject'")
        self.store = Store(db, synchronous=synchronous)
        self.chart_dir = chart_dir
        self._charts: dict[str, Chart] = dict(charts or {})
        self.on_unknown: OnUnknown = on_unknown
        self.batch_size = max(1, batch_size)

    def _now(self) -> datetime:
        return datetime.now(UTC)

    def _now_text(self) -> str:
        return self._now().isoformat()

    def chart(self, provider: str) -> Chart:
        """The chart for ``provider`` (raises :class:`~engine.UnknownProvider`)."""
        chart = self._charts.get(provider)
        if chart is None:
            chart = self._charts[provider] = load_chart(provider, self.chart_dir)
        return chart

    def apply(self, provider: str, body: Body, headers: Mapping[str, Any] | None = None) -> Outcome:
        """Apply one delivery in its own durable transaction. Never raises for bad input."""
        chart = self.chart(provider)
        with self.store.write():
            batch = _Batch(self, chart)
            out = batch.run([(body, headers)])[0]
            batch.flush()
        return out

    def iter_apply(self, provider: str, deliveries: Iterable[Delivery]) -> Iterator[Outcome]:
        """Apply a stream, ``batch_size`` deliveries per transaction, yielding each outcome
        once its batch is committed. Memory stays flat however long the stream."""
        chart = self.chart(provider)
        items = iter(deliveries)
        while True:
            chunk: list[tuple[Body, Mapping[str, Any] | None]] = []
            for item in items:
                chunk.append(item if isinstance(item, tuple) else (item, None))
                if len(chunk) >= self.batch_size:
                    break
            if not chunk:
                return
            with self.store.write():
                batch = _Batch(self, chart)
                outs = batch.run(chunk)
                batch.flush()
            yield from outs

    def apply_many(self, provider: str, deliveries: Iterable[Delivery]) -> list[Outcome]:
        """Apply many deliveries in batched transactions; the same outcomes as one by one.

        Each item is a body, or a ``(body, headers)`` pair. For very long streams prefer
        :meth:`iter_apply`, which does not hold every outcome in memory.
        """
        return list(self.iter_apply(provider, deliveries))

    # ------------------------------------------------------------------ reading

    def state(self, provider: str, invoice_id: str | int) -> InvoiceState | None:
        """The invoice's current state, or ``None`` if it has never been born here."""
        row = self.store.conn.execute(
            "SELECT state, canonical, version, created_at, updated_at FROM invoices "
            "WHERE provider = ? AND invoice_id = ? AND state IS NOT NULL",
            (provider, str(invoice_id)),
        ).fetchone()
        return None if row is None else _invoice_state((provider, str(invoice_id), *row))

    def history(self, provider: str, invoice_id: str | int) -> list[Outcome]:
        """Every delivery about the invoice: the events in fold order (the order they count
        in), then the deliveries that did not count (duplicates, superseded retries)."""
        rows = self.store.conn.execute(
            "SELECT seq, event_id, event_type, trigger, outcome, reason, from_state, to_state,"
            " retryable, adopted, occurred_at, received_at, revisions FROM events"
            " WHERE provider = ? AND invoice_id = ?"
            " ORDER BY live DESC, fold_time, fold_rank, event_id, seq",
            (provider, str(invoice_id)),
        ).fetchall()
        return [self._outcome(provider, str(invoice_id), r) for r in rows]

    @staticmethod
    def _outcome(provider: str, invoice_id: str, r: tuple[Any, ...]) -> Outcome:
        return Outcome(
            status=r[4], provider=provider, event_id=r[1], invoice_id=invoice_id,
            event_type=r[2], trigger=r[3], reason=r[5], from_state=r[6], to_state=r[7],
            retryable=bool(r[8]), adopted=bool(r[9]), occurred_at=r[10], received_at=r[11],
            seq=r[0], revisions=r[12],
        )  # fmt: skip

    def invoices(self, provider: str | None = None) -> Iterator[InvoiceState]:
        """Every invoice with a known state, optionally of one provider."""
        sql = (
            "SELECT provider, invoice_id, state, canonical, version, created_at, updated_at "
            "FROM invoices WHERE state IS NOT NULL"
        )
        args: tuple[str, ...] = ()
        if provider is not None:
            sql += " AND provider = ?"
            args = (provider,)
        for r in self.store.conn.execute(sql + " ORDER BY provider, invoice_id", args):
            yield _invoice_state(r)

    def counts(self, provider: str | None = None) -> dict[str, int]:
        """How many deliveries ended in each outcome."""
        sql = "SELECT outcome, COUNT(*) FROM events"
        args: tuple[str, ...] = ()
        if provider is not None:
            sql += " WHERE provider = ?"
            args = (provider,)
        return dict(self.store.conn.execute(sql + " GROUP BY outcome", args).fetchall())

    def replay(self, provider: str | None = None, *, repair: bool = False) -> ReplayReport:
        """Rebuild every invoice's state from the events table and report any mismatch.

        With ``repair=True`` the stored rows are corrected to what the replay found.
        """
        sql = (
            "SELECT DISTINCT provider, invoice_id FROM events"
            " WHERE live = 1 AND invoice_id IS NOT NULL"
        )
        args: tuple[str, ...] = ()
        if provider is not None:
            sql += " AND provider = ?"
            args = (provider,)
        pairs = self.store.conn.execute(sql, args).fetchall()
        mismatches: list[Mismatch] = []
        events = 0
        for prov, iid in pairs:
            chart = self.chart(prov)
            rows = self.store.conn.execute(FOLD_ROWS, (prov, iid)).fetchall()
            events += len(rows)
            state: str | None = None
            for r in rows:
                d = decide(chart, state, stored_event(chart, r), self.on_unknown)
                if d.status != r[6] or d.to_state != r[9]:
                    mismatches.append(
                        Mismatch(provider=prov, invoice_id=iid, what=f"event #{r[0]} outcome",
                                 stored=f"{r[6]} → {r[9]}", replayed=f"{d.status} → {d.to_state}")
                    )  # fmt: skip
                state = d.state_after
            stored = self.store.conn.execute(
                "SELECT state FROM invoices WHERE provider = ? AND invoice_id = ?", (prov, iid)
            ).fetchone()
            if (stored[0] if stored else None) != state:
                mismatches.append(
                    Mismatch(provider=prov, invoice_id=iid, what="state",
                             stored=stored[0] if stored else None, replayed=state)
                )  # fmt: skip
        if repair and mismatches:
            with self.store.write():
                for prov, iid in {(m.provider, m.invoice_id) for m in mismatches}:
                    chart = self.chart(prov)
                    state, key, _ = refold(self.store.conn, chart, iid, self.on_unknown, cause=None)
                    self.store.conn.execute(
                        "UPDATE invoices SET state = ?, canonical = ?, last_time = ?,"
                        " last_rank = ?, last_event_id = ?, version = version + 1"
                        " WHERE provider = ? AND invoice_id = ?",
                        (state, chart.canonical(state) if state else None, *key, prov, iid),
                    )
        return ReplayReport(
            invoices=len(pairs), events=events, mismatches=mismatches, repaired=repair
        )

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
