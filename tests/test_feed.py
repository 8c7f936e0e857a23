"""The changes feed (``Engine.changes``) and its subscribers, on every store.

- Property: for any stream of deliveries in any arrival order (one transaction each, or in
  batches), each invoice's entries chain and fold to the engine's state, corrections included;
  a delivery that changed nothing has no entry; cursors strictly increase.
- A late event that takes back a transition shows as a correction of the entry it undoes.
- ``replay`` finds a feed that disagrees with the state; ``replay(repair=True)`` mends it.
- ``Subscriber``: retried until it succeeds, filtered by provider, resumed from its stored
  cursor, stopped between entries, never spinning, never in the way of deliveries.

The CLI's side (``changes``, ``consume``, a consumer killed with SIGKILL) is in
``test_cli_feed.py``.
"""

from __future__ import annotations

import itertools
import re
import threading
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import _db
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import (
    Change,
    Engine,
    EngineError,
    Outcome,
    StoreError,
    Subscriber,
    UnknownProvider,
    load_chart,
)
from engine.cli._jsonl import read_jsonl
from engine.testing import Delivery, deliveries

STRIPE = load_chart("stripe")
STREAMS = Path(__file__).resolve().parent.parent / "examples" / "streams"
#: Outcomes that change no state: none may cause an entry.
NO_CHANGE = {"duplicate", "unchanged", "rejected", "invalid", "ignored"}
State = tuple[str | None, str | None]


def stripe(n: int, kind: str, status: str, day: int, invoice: str = "in_1") -> dict[str, Any]:
    """A Stripe webhook about ``invoice``, ``day`` days into June 2024."""
    return {
        "id": f"evt_{invoice}_{n}", "type": f"invoice.{kind}",
        "created": 1_717_200_000 + day * 86_400,
        "data": {"object": {"id": invoice, "status": status}},
    }  # fmt: skip


#: created, finalized, paid (day 9); then a void that happened on day 5 arrives late.
PAID = [stripe(1, "created", "draft", 0), stripe(2, "finalized", "open", 1),
        stripe(3, "paid", "paid", 9)]  # fmt: skip
LATE_VOID = stripe(4, "voided", "void", 5)


def _stream(provider: str) -> list[Any]:
    with (STREAMS / f"{provider}.jsonl").open("rb") as f:
        return list(read_jsonl(f))


@pytest.fixture
def eng(make_db: _db.Databases) -> Iterator[Engine]:
    """An engine on a new database of each store, closed after the test."""
    with Engine(make_db()) as engine:
        yield engine


def _state(eng: Engine, provider: str, invoice_id: str) -> State:
    st_ = eng.state(provider, invoice_id)
    return (None, None) if st_ is None else (st_.state, st_.canonical)


def assert_feed_folds_to_state(eng: Engine, provider: str) -> list[Change]:
    """Each invoice's entries, in cursor order, chain from nothing to its stored state; a
    correction names the invoice's entry before it. Returns the whole feed."""
    feed = eng.changes(limit=None)
    cursors = [c.cursor for c in feed]
    assert all(a < b for a, b in itertools.pairwise(cursors)), cursors
    per_invoice: dict[str, list[Change]] = defaultdict(list)
    for c in feed:
        assert c.provider == provider
        per_invoice[c.invoice_id].append(c)
    states = {i.invoice_id: (i.state, i.canonical) for i in eng.invoices(provider)}
    assert set(per_invoice) == set(states)
    for invoice, entries in per_invoice.items():
        now: State = (None, None)
        previous: int | None = None
        for c in entries:
            assert (c.from_state, c.from_canonical) == now, (str(c), now)
            assert (c.to_state, c.to_canonical) != now, str(c)  # an entry is a change
            if c.corrects is not None:
                assert c.kind in ("late", "repair"), str(c)
                assert c.corrects == previous, str(c)
            now, previous = (c.to_state, c.to_canonical), c.cursor
        assert now == states[invoice], invoice
    return feed


def _move(c: Change) -> tuple[State, State]:
    return (c.from_state, c.from_canonical), (c.to_state, c.to_canonical)


def _last(eng: Engine) -> dict[str, State]:
    """Where each invoice's last entry left it."""
    return {c.invoice_id: _move(c)[1] for c in eng.changes(limit=None)}


#: One delivery for the properties: its invoice's id, body and headers.
Sent = tuple[str, Any, dict[str, str] | None]


def _apply_watching(eng: Engine, made: list[Sent]) -> list[tuple[Outcome, State, State]]:
    """Apply each delivery in its own transaction: its outcome, and its invoice's state
    before and after."""
    seen = []
    for invoice_id, body, headers in made:
        before = _state(eng, "stripe", invoice_id)
        out = eng.apply("stripe", body, headers)
        seen.append((out, before, _state(eng, "stripe", invoice_id)))
    return seen


# ------------------------------------------------------------------------------ properties


def _sent(made: list[Delivery]) -> list[Sent]:
    return [(d.invoice_id, d.body, d.headers) for d in made]


#: Realistic lifecycles (engine.testing), shuffled, duplicated, with illegal events mixed in.
#: Their late events rarely change a state: each lifecycle ends where its last event says.
LIFECYCLES = deliveries(
    STRIPE, max_invoices=3, max_events=6, duplicates=True, shuffle=True, illegal=True
).map(_sent)
#: Any Stripe events at any times in any order: late events that take transitions back (in
#: about half the examples), redeliveries, status snapshots the invoice can't reach.
ANY_EVENTS = [
    ("created", "draft"), ("finalized", "open"), ("paid", "paid"), ("payment_succeeded", "paid"),
    ("voided", "void"), ("marked_uncollectible", "uncollectible"), ("deleted", "draft"),
    ("payment_failed", "open"), ("updated", "open"), ("updated", "paid"), ("updated", "void"),
]  # fmt: skip


@st.composite
def _any_events(draw: st.DrawFn) -> list[Sent]:
    sent: list[Sent] = []
    for i in range(draw(st.integers(1, 2))):
        for n in range(draw(st.integers(1, 6))):
            kind, status = draw(st.sampled_from(ANY_EVENTS))
            day = draw(st.integers(0, 10))
            sent.append((f"in_{i}", stripe(n, kind, status, day, invoice=f"in_{i}"), None))
    order = draw(st.permutations(sent))
    return [*order, *draw(st.lists(st.sampled_from(sent), max_size=3))]


STREAMS_OF_ANY_KIND = st.one_of(LIFECYCLES, _any_events())


@settings(max_examples=50, deadline=None)
@given(made=STREAMS_OF_ANY_KIND)
def test_the_feed_folds_to_the_state_and_skips_what_changed_nothing(
    make_db: _db.Databases, made: list[Sent]
) -> None:
    with Engine(make_db()) as eng:
        seen = _apply_watching(eng, made)
        feed = assert_feed_folds_to_state(eng, "stripe")
        assert eng.replay().ok
    caused: dict[int | None, list[Change]] = defaultdict(list)
    for c in feed:
        assert c.kind in ("applied", "late"), str(c)
        caused[c.cause_seq].append(c)
    status = {out.seq: out.status for out, _, _ in seen}
    for out, before, after in seen:
        mine = [_move(c) for c in caused[out.seq]]
        if out.status in NO_CHANGE or before == after:
            assert mine == [], (str(out), before, after)
        else:
            assert mine == [(before, after)], str(out)
    for c in feed:
        if c.kind == "applied":
            assert status[c.cause_seq] == "applied", str(c)
        assert c.cause_event_id is not None


@settings(max_examples=25, deadline=None)
@given(made=STREAMS_OF_ANY_KIND, batch=st.integers(1, 8))
def test_batched_the_feed_folds_to_the_same_state(
    make_db: _db.Databases, made: list[Sent], batch: int
) -> None:
    with Engine(make_db()) as one_by_one, Engine(make_db(), batch_size=batch) as batched:
        _apply_watching(one_by_one, made)
        batched.apply_many("stripe", [(body, headers) for _, body, headers in made])
        assert_feed_folds_to_state(batched, "stripe")
        assert _last(batched) == _last(one_by_one)


# ----------------------------------------------------------------------------- corrections


def test_a_late_event_that_takes_a_payment_back_is_a_correction(eng: Engine) -> None:
    outs = [eng.apply("stripe", body) for body in PAID]
    paid = eng.changes()[-1]
    assert (paid.to_state, paid.kind, paid.cause_seq) == ("paid", "applied", outs[-1].seq)
    late = eng.apply("stripe", LATE_VOID)
    assert late.status == "applied"
    [entry] = eng.changes(since=paid.cursor)
    assert (entry.from_state, entry.to_state, entry.to_canonical) == ("paid", "void", "void")
    assert (entry.kind, entry.cause_seq, entry.cause_event_id) == ("late", late.seq, "evt_in_1_4")
    assert entry.corrects == paid.cursor
    assert entry.correction
    assert str(entry).endswith(f"[corrects #{paid.cursor}]")
    assert_feed_folds_to_state(eng, "stripe")
    assert eng.replay().ok


def test_in_one_batch_a_correction_names_the_entry_written_with_it(
    eng: Engine,
) -> None:
    eng.apply_many("stripe", [*PAID, LATE_VOID])
    feed = assert_feed_folds_to_state(eng, "stripe")
    assert [(c.to_state, c.kind, c.corrects) for c in feed] == [
        ("draft", "applied", None), ("open", "applied", None), ("paid", "applied", None),
        ("void", "late", feed[2].cursor),
    ]  # fmt: skip


def test_a_late_event_that_changes_no_state_writes_no_entry(eng: Engine) -> None:
    for body in PAID:
        eng.apply("stripe", body)
    head = eng.changes()[-1].cursor
    # written off on day 4, before the payment: still paid (uncollectible is payable)
    out = eng.apply("stripe", stripe(5, "marked_uncollectible", "uncollectible", 4))
    assert out.status == "applied"
    assert eng.changes(since=head) == []
    assert_feed_folds_to_state(eng, "stripe")


# ---------------------------------------------------------------------------------- replay


def _lose_the_last_entry(db: str) -> Engine:
    """An engine on ``db`` holding a paid invoice whose feed lost its last entry (paid)."""
    eng = Engine(db)
    for body in PAID:
        eng.apply("stripe", body)
    _db.delete_last_change_behind_the_engine(db)
    return eng


def test_replay_finds_a_lost_entry_and_repair_mends_the_feed(make_db: _db.Databases) -> None:
    db = make_db(shared=True)
    with _lose_the_last_entry(db) as eng:
        found = eng.replay()
        assert not found.ok
        assert [(m.what, m.stored, m.replayed) for m in found.mismatches] == [
            ("changes feed's last entry", "open at #2", "paid")
        ]
        repaired = eng.replay(repair=True)
        assert repaired.ok, str(repaired)
        assert eng.replay().ok
        feed = assert_feed_folds_to_state(eng, "stripe")
        fix = feed[-1]
        assert (fix.from_state, fix.to_state, fix.kind) == ("open", "paid", "repair")
        assert (fix.cause_seq, fix.cause_event_id) == (None, None)


# ----------------------------------------------------------------------------- the library


def test_changes_reads_after_a_cursor_by_provider_at_most_limit(eng: Engine) -> None:
    eng.apply_many("stripe", _stream("stripe"))
    eng.apply_many("pelcro", _stream("pelcro"))
    everything = eng.changes(limit=None)
    assert [c.cursor for c in everything] == list(range(1, len(everything) + 1))
    assert eng.changes(since=3, limit=2) == everything[3:5]
    assert eng.changes(since=len(everything)) == []
    pelcro = eng.changes(provider="pelcro", limit=None)
    assert pelcro == [c for c in everything if c.provider == "pelcro"] != []
    with pytest.raises(UnknownProvider, match="strpe"):
        eng.changes(provider="strpe")


def test_a_limit_that_is_no_count_of_entries_is_an_error_on_every_store(eng: Engine) -> None:
    eng.apply_many("stripe", _stream("stripe"))
    for bad in (-1, 0, True, 1.5, "2"):
        with pytest.raises(EngineError, match=re.escape(f"limit={bad!r}")):
            eng.changes(limit=bad)  # type: ignore[arg-type]
    assert len(eng.changes(limit=1)) == 1
    assert len(eng.changes(limit=None)) > 1


def _subscribed(eng: Engine, name: str = "test", **kw: Any) -> tuple[Subscriber, list[Change]]:
    got: list[Change] = []
    return Subscriber(eng, name, got.append, **kw), got


def test_a_failing_handler_is_retried_until_it_succeeds_never_skipped(
    eng: Engine,
) -> None:
    for body in PAID:
        eng.apply("stripe", body)
    attempts: list[int] = []
    handled: list[int] = []

    def flaky(change: Change) -> None:
        attempts.append(change.cursor)
        if change.cursor == 2 and attempts.count(2) <= 2:
            raise ConnectionError("mail server down")
        handled.append(change.cursor)

    sub = Subscriber(eng, "flaky", flaky, retry_first=0.001, retry_max=0.002)
    assert sub.run(follow=False) == 3
    assert attempts == [1, 2, 2, 2, 3]
    assert handled == [1, 2, 3]
    assert sub.cursor == 3


def test_a_subscriber_of_one_provider_sees_only_its_entries(eng: Engine) -> None:
    eng.apply_many("stripe", _stream("stripe"))
    eng.apply_many("pelcro", _stream("pelcro"))
    sub, got = _subscribed(eng, provider="pelcro")
    assert sub.run(follow=False) == len(got) > 0
    assert got == eng.changes(provider="pelcro", limit=None)
    with pytest.raises(UnknownProvider, match="strpe"):
        Subscriber(eng, "x", print, provider="strpe")


def test_a_stored_cursor_is_where_the_next_instance_resumes(make_db: _db.Databases) -> None:
    db = make_db(shared=True)
    with Engine(db) as eng:
        for body in PAID[:2]:
            eng.apply("stripe", body)
        first, got = _subscribed(eng, "mailer")
        assert first.run(follow=False) == 2
        eng.apply("stripe", PAID[2])
    with Engine(db) as eng:  # a restart
        second, later = _subscribed(eng, "mailer")
        assert second.cursor == 2
        assert second.run(follow=False) == 1
        assert [c.cursor for c in got + later] == [1, 2, 3]
        other, everything = _subscribed(eng, "another", start=1)  # its own cursor
        assert other.run(follow=False) == 2
        assert [c.cursor for c in everything] == [2, 3]


def test_a_name_keeps_the_provider_it_follows(eng: Engine) -> None:
    eng.apply_many("stripe", _stream("stripe"))
    eng.apply_many("pelcro", _stream("pelcro"))
    pelcro, _ = _subscribed(eng, "mailer", provider="pelcro")
    assert pelcro.run(follow=False) > 0
    # its cursor counts pelcro's entries only: every provider's under that name would skip
    for provider in (None, "stripe"):
        with pytest.raises(EngineError, match="'mailer' follows pelcro's entries"):
            _subscribed(eng, "mailer", provider=provider)[0].run(follow=False)


def test_a_stored_cursor_never_goes_back(eng: Engine) -> None:
    for body in PAID:
        eng.apply("stripe", body)
    ahead, _ = _subscribed(eng, "twice")
    assert ahead.run(follow=False) == 3
    eng.store.transact(lambda tx: tx.feed.save_subscriber("twice", 1, "2026-01-01T00:00:00Z"))
    assert ahead.cursor == 3  # a second process under the name, behind: kept at 3


def test_a_store_failing_under_a_subscriber_is_waited_out(
    eng: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.runtime import feed

    for body in PAID:
        eng.apply("stripe", body)
    real, failures = feed._read, [StoreError("the server is restarting")] * 2

    def flaky_read(*args: Any) -> Any:
        if failures:
            raise failures.pop()
        return real(*args)

    monkeypatch.setattr(feed, "_read", flaky_read)
    sub, got = _subscribed(eng, "patient", retry_first=0.001, retry_max=0.002)
    assert sub.run(follow=False) == 3
    assert [c.cursor for c in got] == [1, 2, 3]


def test_stop_ends_the_run_between_entries(eng: Engine) -> None:
    for body in PAID:
        eng.apply("stripe", body)
    stop = threading.Event()
    got: list[int] = []

    def handle(change: Change) -> None:
        got.append(change.cursor)
        stop.set()  # as a Ctrl-C during the first entry would

    sub = Subscriber(eng, "once", handle)
    assert sub.run(stop=stop) == 1
    assert (got, sub.cursor) == ([1], 1)  # the entry being handled was finished and stored


def test_a_subscriber_is_refused_without_a_name_or_on_a_read_only_engine(
    make_db: _db.Databases,
) -> None:
    db = make_db(shared=True)
    Engine(db).close()
    with Engine(db) as eng, pytest.raises(EngineError, match="1 to 200"):
        Subscriber(eng, " ", print)
    with Engine(db, readonly=True) as ro, pytest.raises(EngineError, match="read-write"):
        Subscriber(ro, "mailer", print)


def _in_thread(sub: Subscriber, stop: threading.Event) -> threading.Thread:
    runner = threading.Thread(target=sub.run, kwargs={"stop": stop}, daemon=True)
    runner.start()
    return runner


def test_a_following_subscriber_gets_what_another_engine_commits(
    make_db: _db.Databases,
) -> None:
    db = make_db(shared=True)
    with Engine(db) as mine, Engine(db) as writer:
        arrived = threading.Event()
        got: list[Change] = []

        def keep(change: Change) -> None:
            got.append(change)
            arrived.set()

        sub = Subscriber(mine, "live", keep)
        stop = threading.Event()
        runner = _in_thread(sub, stop)
        writer.apply("stripe", PAID[0])
        try:
            assert arrived.wait(15), "the subscriber never saw the entry"
        finally:
            stop.set()
            runner.join(15)
        assert not runner.is_alive()
        assert [(c.invoice_id, c.to_state) for c in got] == [("in_1", "draft")]


def test_a_filtered_follower_waits_instead_of_spinning(
    eng: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Other providers' entries beyond its own last one must not wake it again and again."""
    eng.apply("stripe", PAID[0])
    eng.apply_many("pelcro", _stream("pelcro"))
    waits: list[int] = []
    real = eng.store.wait_for_changes

    def counted(after: int, **kw: Any) -> None:
        waits.append(after)
        real(after, **kw)

    monkeypatch.setattr(eng.store, "wait_for_changes", counted)
    sub, got = _subscribed(eng, provider="stripe")
    stop = threading.Event()
    timer = threading.Timer(0.5, stop.set)
    timer.start()
    sub.run(stop=stop, wait=5.0)
    timer.join()
    assert len(got) == 1
    assert len(waits) <= 2, f"woke {len(waits)} times in 0.5 s"


def test_a_blocked_handler_never_holds_up_deliveries(make_db: _db.Databases) -> None:
    db = make_db(shared=True)
    with Engine(db) as mine, Engine(db) as writer:
        writer.apply("stripe", PAID[0])
        inside, release = threading.Event(), threading.Event()

        def slow(change: Change) -> None:
            inside.set()
            release.wait(30)

        stop = threading.Event()
        runner = _in_thread(Subscriber(mine, "slow", slow), stop)
        try:
            assert inside.wait(15)
            outs = [writer.apply("stripe", body) for body in PAID[1:]]  # while it is stuck
            assert [o.status for o in outs] == ["applied", "applied"]
        finally:
            stop.set()
            release.set()
            runner.join(15)
        assert _state(writer, "stripe", "in_1") == ("paid", "paid")


def test_following_a_file_that_was_replaced_says_so(tmp_path: Path) -> None:
    from engine.runtime.feed import follow

    db = tmp_path / "followed.db"
    with Engine(db) as eng:
        eng.apply("stripe", PAID[0])
        entries = follow(eng, wait=0.2)
        assert next(entries).cursor == 1
        db.rename(tmp_path / "elsewhere.db")
        with Engine(db) as other:  # a new file under the same name
            other.apply("stripe", PAID[0])
        with pytest.raises(StoreError, match="deleted or replaced by another file"):
            next(entries)


@pytest.mark.parametrize("bad", [-1, True, 1.5, "3", None, 2**63])
def test_a_since_that_is_no_cursor_is_an_error_on_every_store(eng: Engine, bad: Any) -> None:
    with pytest.raises(EngineError, match=re.escape(f"since={bad!r}")):
        eng.changes(since=bad)


def test_a_run_that_must_end_gives_up_on_an_entry_that_keeps_failing(eng: Engine) -> None:
    for body in PAID:
        eng.apply("stripe", body)
    tries: list[int] = []

    def broken(change: Change) -> None:
        tries.append(change.cursor)
        if change.cursor == 2:
            raise ValueError("template missing")

    sub = Subscriber(eng, "once", broken, retry_first=0.001, retry_max=0.002, give_up_after=3)
    with pytest.raises(EngineError, match=r"entry #2 failed 3 times \(last: ValueError"):
        sub.run(follow=False)
    assert tries == [1, 2, 2, 2]
    assert sub.cursor == 1  # what was handled is stored; #2 comes first next time
