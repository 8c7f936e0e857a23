"""The compiled delivery reader reads what ``_read`` reads, or leaves the delivery to it.

:mod:`engine.runtime._reader` is the engine's fast path. Its one promise: for any delivery it
returns either ``None`` (``_read`` then reads it, and explains what is wrong) or exactly the
``Event`` that ``_read`` returns. These tests hold it to that on every bundled chart's
example stream and hostile corpus, on generated bodies full of awkward values, with msgspec
and with the standard library's parser; and check that good deliveries do take it.
"""

from __future__ import annotations

import gc
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from engine import Chart, Engine, Event
from engine.chart import bundled_chart_dir, load_chart
from engine.errors import DeliveryError
from engine.runtime import _gc, _reader
from engine.runtime._clock import utc_text
from engine.runtime.delivery import _read, body_bytes, normalize_headers

ROOT = Path(__file__).resolve().parent.parent
CHARTS = sorted(p.stem for p in bundled_chart_dir().glob("*.yaml"))
NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(params=["msgspec", "stdlib"])
def parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test runs with msgspec parsing bodies, and with the standard library alone."""
    if request.param == "stdlib":
        monkeypatch.setattr(_reader, "_decode", None)
    else:
        pytest.importorskip("msgspec")
        assert _reader._decode is not None
    return str(request.param)


def _deliveries(provider: str) -> Iterator[tuple[bytes, dict[str, str]]]:
    """The provider's example stream, its hostile corpus and the common one."""
    for line in (ROOT / "examples" / "streams" / f"{provider}.jsonl").read_text().splitlines():
        try:
            doc = json.loads(line)
        except ValueError:  # the streams hold broken lines too
            doc = None
        if isinstance(doc, dict) and "body" in doc:  # an envelope with headers
            yield body_bytes(doc["body"]), normalize_headers(doc.get("headers"))
        else:
            yield line.encode(), {}
    for folder in (provider, "common"):
        for path in sorted((ROOT / "tests" / "hostile" / folder).glob("*.json")):
            if folder == "common":
                yield path.read_bytes(), {}
                continue
            doc = json.loads(path.read_bytes())
            yield body_bytes(doc["body"]), normalize_headers(doc.get("headers"))


def _slow(provider: str, raw: bytes, hdrs: dict[str, str]) -> Event | str:
    try:
        return _read(load_chart(provider), raw, hdrs, NOW)
    except DeliveryError as exc:
        return f"{type(exc).__name__}: {exc}"


def _same(provider: str, raw: bytes, hdrs: dict[str, str]) -> bool:
    """Checks the promise for one delivery; whether the fast path read it."""
    read = _reader.reader(load_chart(provider))
    fast = None if read is None else read(raw, hdrs, NOW)
    if fast is None:
        return False
    slow = _slow(provider, raw, hdrs)
    assert isinstance(slow, Event), (fast, slow)
    assert fast == slow
    assert fast.model_dump() == slow.model_dump()
    assert repr(fast) == repr(slow)  # the same types too (1 is not 1.0 nor True)
    return True


@pytest.mark.parametrize("provider", CHARTS)
def test_every_example_and_hostile_delivery_reads_the_same(provider: str, parser: str) -> None:
    taken = [_same(provider, raw, hdrs) for raw, hdrs in _deliveries(provider)]
    if _reader.reader(load_chart(provider)) is not None:
        assert any(taken), f"the fast path read none of {provider}'s deliveries"


_CHARTS: dict[str, Chart] = {}


def _lago(tmp_path_factory: pytest.TempPathFactory) -> Chart:
    """The chart of :func:`_lago_with_ids`, loaded once (a parallel chart takes a while)."""
    if "lago" not in _CHARTS:
        _CHARTS["lago"] = load_chart(_lago_with_ids(tmp_path_factory.mktemp("lago")))
    return _CHARTS["lago"]


def _lago_with_ids(tmp_path: Path) -> Path:
    """Lago's chart (parallel regions, per-event invoice ids and statuses, a region's status)
    with an event id and a unix time, so that the fast path reads it."""
    text = (bundled_chart_dir() / "lago.yaml").read_text()
    start = text.index("  idempotency_key:")
    end = text.index("\n", text.index("provider_error", start))
    path = tmp_path / "lago.yaml"
    ids = "  event_id: $.webhook_id\n  occurred_at: {at: $.created, format: unix}"
    path.write_text(text[:start] + ids + text[end:])
    return path


@settings(max_examples=600, deadline=None)
@given(data=st.data())
def test_generated_lago_bodies_read_the_same(tmp_path_factory: pytest.TempPathFactory,
                                              data: st.DataObject) -> None:  # fmt: skip
    chart = _lago(tmp_path_factory)
    read = _reader.reader(chart)
    assert read is not None
    statuses = st.one_of(
        st.sampled_from(["draft", "finalized", "voided", "pending", "succeeded", "failed",
                         " succeeded", "", "finalized.payment.succeeded", "overdue"]),
        _maybe,
    )  # fmt: skip
    doc: dict[str, Any] = {}
    _put(
        doc, "webhook_type", data.draw(st.one_of(st.sampled_from(list(chart.spec.events)), _maybe))
    )
    _put(doc, "webhook_id", data.draw(st.one_of(st.just("w1"), _maybe)))
    _put(doc, "created", data.draw(st.one_of(st.just(1_700_000_000), _maybe)))
    invoice: dict[str, Any] = {}
    _put(invoice, "lago_id", data.draw(st.one_of(st.just("in_1"), _maybe)))
    _put(invoice, "status", data.draw(statuses))
    _put(invoice, "payment_status", data.draw(statuses))
    doc["invoice"] = invoice
    if data.draw(st.booleans()):
        lost = {
            "lago_id": data.draw(st.one_of(st.just("in_2"), _maybe)),
            "status": data.draw(statuses),
        }
        doc["payment_dispute_lost"] = {"invoice": lost}
    if data.draw(st.booleans()):
        error = {"lago_invoice_id": data.draw(st.one_of(st.just("in_3"), _maybe))}
        doc["payment_provider_invoice_payment_error"] = error
    raw = json.dumps(doc, default=str).encode("utf-8", "surrogatepass")
    fast = read(raw, {}, NOW)
    if fast is not None:
        assert repr(fast) == repr(_read(chart, raw, {}, NOW))


def test_lago_deliveries_with_ids_take_the_fast_path(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Lago's example stream, given ids and times: what _read reads, the fast path reads the
    same (regions' statuses, per-event invoice ids and statuses included)."""
    chart = _lago(tmp_path_factory)
    read = _reader.reader(chart)
    assert read is not None
    taken = 0
    for i, (raw, _) in enumerate(_deliveries("lago")):
        try:
            doc = json.loads(raw)
        except (ValueError, RecursionError):  # the hostile corpus's
            continue
        if not isinstance(doc, dict):
            continue
        raw = json.dumps({**doc, "webhook_id": f"w{i}", "created": 1_700_000_000 + i}).encode()
        fast = read(raw, {}, NOW)
        if fast is None:
            continue
        assert repr(fast) == repr(_read(chart, raw, {}, NOW))
        taken += 1
    assert taken >= 10


def test_a_charts_reader_does_not_keep_it_alive() -> None:
    """Readers are cached per chart, weakly: a chart let go (reloaded, edited) is freed."""
    import weakref

    chart = Chart(load_chart("stripe").spec)
    assert _reader.reader(chart) is not None
    gone = weakref.ref(chart)
    del chart
    gc.collect()
    assert gone() is None


def test_the_decision_memo_is_off_for_charts_with_guards(tmp_path: Path) -> None:
    """Moxie's PaymentReceived is guarded on the body's amountDue: two invoices in the same
    state, the same event type and status, but different payloads, are decided apart."""

    def delivery(invoice: str, kind: str, **body: object) -> tuple[bytes, dict[str, str]]:
        return json.dumps({"id": invoice, **body}).encode(), {"X-Event-Type": kind}

    stream = [
        delivery("A", "InvoiceSent", status="SENT"),
        delivery("B", "InvoiceSent", status="SENT"),
        delivery("A", "PaymentReceived", amountDue=0),
        delivery("B", "PaymentReceived", amountDue=5),
    ]
    assert load_chart("moxie").has_guards
    with Engine(tmp_path / "g.db") as eng:
        outs = eng.apply_many("moxie", stream)
    assert [(o.invoice_id, o.to_state) for o in outs[2:]] == [("A", "paid"), ("B", "partial")]


def test_the_engine_without_msgspec_records_the_same(tmp_path: Path) -> None:
    """In a fresh interpreter where msgspec can't be imported, the engine parses with the
    standard library and records exactly what it records with msgspec."""
    import subprocess
    import sys

    pytest.importorskip("msgspec")
    script = (
        "import sys, json\n"
        "if sys.argv[1] == 'stdlib': sys.modules['msgspec'] = None\n"
        "sys.path.insert(0, 'benchmarks')\n"
        "from workload import stripe_stream\n"
        "from engine import Engine\n"
        "from engine.runtime import _reader\n"
        "assert (_reader._decode is None) == (sys.argv[1] == 'stdlib')\n"
        "bodies = list(stripe_stream(2000, 200, seed=7))\n"
        "bodies += [b'{\"id\": 1e400}', b'{\"id\": \"\\\\ud800\"}', b'[' * 300 + b']' * 300]\n"
        "with Engine(sys.argv[2]) as eng:\n"
        "    outs = eng.apply_many('stripe', bodies)\n"
        "print(json.dumps([o.model_dump(mode='json', exclude={'received_at'}) for o in outs]))\n"
    )
    runs = []
    for mode in ("msgspec", "stdlib"):
        proc = subprocess.run(
            [sys.executable, "-c", script, mode, str(tmp_path / f"{mode}.db")],
            capture_output=True, text=True, cwd=ROOT, check=True,
        )  # fmt: skip
        runs.append(json.loads(proc.stdout))
    assert runs[0] == runs[1]
    assert len(runs[0]) == 2003


def test_which_charts_have_a_fast_reader() -> None:
    """Charts whose maps it handles; the others (derived ids, joined event types) read as
    before. If this changes, the README's Performance section should say so."""
    fast = {name for name in CHARTS if _reader.reader(load_chart(name)) is not None}
    assert fast == {"pelcro", "stripe", "upmind"}


def test_good_stripe_deliveries_take_the_fast_path(parser: str) -> None:
    """Every delivery about an invoice that ``_read`` reads without headers (Stripe's map is
    all in the body), the fast path reads too: it is not a path nobody takes."""
    read = _reader.reader(load_chart("stripe"))
    assert read is not None
    slow = [(raw, _slow("stripe", raw, {})) for raw, _ in _deliveries("stripe")]
    # (an event about no invoice, Stripe's invoice.upcoming, is left to _read)
    readable = [raw for raw, ev in slow if isinstance(ev, Event) and ev.invoice_id is not None]
    assert len(readable) > 10
    assert [raw[:60] for raw in readable if read(raw, {}, NOW) is None] == []


# ----------------------------------------------------------------- generated bodies

_odd_text = st.sampled_from(
    ["paid", " paid", "paid ", "", " ", "PAID", "in_1", "in\x001", "é", "in_é", "\ud800",
     "x" * 255, "x" * 256, "evt_1", "invoice.paid", "invoice.created", "void", "draft"]
)  # fmt: skip
_value = st.one_of(
    _odd_text,
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.lists(st.just("in_1"), max_size=1),
    st.dictionaries(st.just("id"), st.just("in_1"), max_size=1),
)
_MISSING = object()
_maybe = st.one_of(st.just(_MISSING), _value)


def _put(doc: dict[str, Any], key: str, value: object) -> None:
    if value is not _MISSING:
        doc[key] = value


@settings(max_examples=400, deadline=None)
@given(
    event_type=st.one_of(st.sampled_from(["invoice.paid", "invoice.created"]), _maybe),
    event_id=_maybe,
    invoice_id=_maybe,
    status=_maybe,
    created=st.one_of(
        st.integers(min_value=-(2**40), max_value=2**40), st.just(1_700_000_000), _maybe
    ),
    data_is_list=st.booleans(),
)
def test_generated_stripe_bodies_read_the_same(
    event_type: object,
    event_id: object,
    invoice_id: object,
    status: object,
    created: object,
    data_is_list: bool,
) -> None:
    inner: dict[str, Any] = {}
    _put(inner, "id", invoice_id)
    _put(inner, "status", status)
    doc: dict[str, Any] = {"data": [inner] if data_is_list else {"object": inner}}
    _put(doc, "type", event_type)
    _put(doc, "id", event_id)
    _put(doc, "created", created)
    raw = json.dumps(doc).encode("utf-8", "surrogatepass")
    for decode in (_reader._decode, None):
        saved, _reader._decode = _reader._decode, decode
        try:
            _same("stripe", raw, {})
        finally:
            _reader._decode = saved


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a": 1e400}',  # msgspec refuses; the standard library reads inf
        b'{"a": 18446744073709551616, "b": -9223372036854775809}',  # beyond 64 bits: exact
        b'{"id": 19933688932870350000, "b": 19446744073709551617}',  # msgspec 0.18 misread these
        b'{"a": NaN}',
        b'{"a": "\\ud800"}',
        b'\xef\xbb\xbf{"a": 1}',
        b'{"a": 1, "a": 2}',
        b'{"a": ' + b"9" * 4301 + b"}",
        b'{"a":' * 200 + b"1" + b"}" * 200,
        b'{"a":' * 300 + b"1" + b"}" * 300,
        b"[" * 2000 + b"]" * 2000,
        b"",
        b"   ",
        b'{"a": "\xe9"}',
    ],
    ids=lambda raw: repr(raw[:24]),
)
def test_bodies_parse_as_the_standard_library_parses_them(raw: bytes, parser: str) -> None:
    try:
        expected: Any = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):
        expected = None
    got = _reader.parse_json(raw)
    assert repr(got) == repr(expected)


# ------------------------------------------------------------------------ the gc


def test_a_batch_pauses_the_collector_and_turns_it_back_on(tmp_path: Path) -> None:
    seen: list[bool] = []

    def bodies() -> Iterator[bytes]:
        for i in range(5):
            seen.append(gc.isenabled())
            inner = {"id": f"in_{i}", "status": "draft"}
            doc = {
                "id": f"e{i}",
                "type": "invoice.created",
                "created": 1,
                "data": {"object": inner},
            }
            yield json.dumps(doc).encode()

    assert gc.isenabled()
    with Engine(tmp_path / "gc.db", batch_size=2) as eng:
        outs = []
        for out in eng.iter_apply("stripe", bodies()):
            outs.append(out.status)
            assert gc.isenabled()  # the caller's code runs with it on
    assert outs == ["applied"] * 5
    assert seen == [False] * 5  # read inside the batch
    assert gc.isenabled()


def test_the_collector_is_turned_back_on_when_a_batch_fails(tmp_path: Path) -> None:
    def bodies() -> Iterator[bytes]:
        yield b"{}"
        raise RuntimeError("the caller's stream broke")

    with Engine(tmp_path / "gc.db") as eng, pytest.raises(RuntimeError, match="stream broke"):
        eng.apply_many("stripe", bodies())
    assert gc.isenabled()


def test_a_collector_turned_off_by_the_caller_stays_off(tmp_path: Path) -> None:
    gc.disable()
    try:
        with Engine(tmp_path / "gc.db") as eng:
            eng.apply_many("stripe", [b"{}"])
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_threads_batches_overlapping_leave_the_collector_on() -> None:
    """Thread A pauses, B pauses, A ends, B ends: on only once both are out, and on after."""
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    states: list[bool] = []

    def first() -> None:
        with _gc.paused():
            a_in.set()
            b_in.wait(5)
        a_out.set()

    def second() -> None:
        a_in.wait(5)
        with _gc.paused():
            b_in.set()
            a_out.wait(5)
            states.append(gc.isenabled())  # A has left; B is still inside

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert states == [False]
    assert gc.isenabled()


# ------------------------------------------------------------ stored times


@settings(max_examples=300, deadline=None)
@given(
    when=st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30))]))
)
def test_stored_times_are_isoformat_with_a_z(when: datetime) -> None:
    """``utc_text`` writes the text out itself (for speed): byte for byte what isoformat
    writes, every year from 1 to 9999, any offset."""
    try:
        utc = when.astimezone(UTC)
    except OverflowError:  # year 1 at +05:30 is before year 1 in UTC: no stored time
        return
    assert utc_text(when) == utc.isoformat(timespec="microseconds").replace("+00:00", "Z")


# ------------------------------------------------- records made without validation


def test_records_made_per_delivery_are_whole_models(tmp_path: Path) -> None:
    """The engine makes each delivery's Event and Outcome from a dict display (no
    validation, for speed): every field there, in the model's order, each of its type, so
    that they compare, print and dump as validated models do."""
    from engine import Outcome

    deliveries = list(_deliveries("stripe"))
    with Engine(tmp_path / "m.db") as eng:
        outcomes = eng.apply_many("stripe", deliveries + [raw for raw, _ in deliveries])
    read = _reader.reader(load_chart("stripe"))
    assert read is not None
    events = [e for raw, _ in _deliveries("stripe") if (e := read(raw, {}, NOW)) is not None]
    assert events
    assert {o.status for o in outcomes} >= {"applied", "duplicate", "invalid"}
    pairs: list[tuple[BaseModel, type[BaseModel]]] = [(o, Outcome) for o in outcomes]
    pairs += [(e, Event) for e in events]
    for model, cls in pairs:
        assert list(model.__dict__) == list(cls.model_fields)
        assert model.model_fields_set == set(cls.model_fields)
        again = cls.model_validate(model.model_dump())
        assert again == model
        assert repr(again) == repr(model)
        for name, value in model.__dict__.items():  # a str may be a Configuration (a str)
            assert isinstance(value, type(getattr(again, name))), (name, value)


def test_a_child_forked_inside_a_batch_has_its_collector_back() -> None:
    """fork() while another thread is inside a batch: the child runs none of its batches,
    so it must not inherit the pause."""
    import os

    inside, leave = threading.Event(), threading.Event()

    def batch() -> None:
        with _gc.paused():
            inside.set()
            leave.wait(10)

    thread = threading.Thread(target=batch)
    thread.start()
    try:
        assert inside.wait(5)
        assert not gc.isenabled()
        pid = os.fork()
        if pid == 0:  # the child: report through the exit code
            os._exit(0 if gc.isenabled() else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        leave.set()
        thread.join(10)
    assert gc.isenabled()


def test_iter_apply_holds_one_batch_at_a_time(tmp_path: Path) -> None:
    """While a batch is read, the last one's deliveries and outcomes are gone (the memory
    benchmark's flat peak rests on it)."""
    from engine import Outcome

    alive: list[int] = []

    def ours() -> int:
        return sum(isinstance(o, Event | Outcome) for o in gc.get_objects())

    def bodies() -> Iterator[bytes]:
        for i in range(30):
            if i % 10 == 0:  # the first of a batch of 10
                alive.append(ours())
            inner = {"id": f"in_{i}", "status": "draft"}
            yield json.dumps(
                {"id": f"e{i}", "type": "invoice.created", "created": 1, "data": {"object": inner}}
            ).encode()

    with Engine(tmp_path / "one.db", batch_size=10) as eng:
        statuses = [o.status for o in eng.iter_apply("stripe", bodies())]
    assert statuses == ["applied"] * 30
    # the caller's loop variable holds the last outcome it was given: at most one more
    assert [n - alive[0] for n in alive[1:]] in ([0, 0], [1, 1])


def test_records_share_one_set_of_fields_that_nobody_can_change(tmp_path: Path) -> None:
    """Each record's ``model_fields_set`` is one set per model (memory: see _construct); all
    that pydantic does with it works, and changing it in place is refused."""
    import copy
    import pickle

    deliveries = [raw for raw, _ in _deliveries("stripe")]
    with Engine(tmp_path / "f.db") as eng:
        first, second = eng.apply_many("stripe", deliveries)[:2]
    assert first.model_fields_set is second.model_fields_set
    assert first.model_dump(exclude_unset=True) == first.model_dump()
    assert first.model_dump_json(exclude_unset=True) == first.model_dump_json()
    changed = first.model_copy(update={"revisions": 5})
    assert changed.revisions == 5
    assert changed.model_fields_set == first.model_fields_set
    changed.model_fields_set.add("x")  # a copy: its own, plain set
    for again in (copy.deepcopy(first), copy.copy(first)):
        assert again == first
        assert type(again.model_fields_set) is set
    one, two = pickle.loads(pickle.dumps([first, second]))  # unpickled together: shared
    assert (one, two) == (first, second)
    with pytest.raises(TypeError, match="shared by many records"):
        one.model_fields_set.discard("reason")
    with pytest.raises(TypeError, match="shared by many records"):
        first.model_fields_set.__init__(())  # type: ignore[misc]
    with pytest.raises(TypeError, match="shared by many records"):
        first.model_fields_set.add("x")
    with pytest.raises(TypeError, match="shared by many records"):
        first.model_fields_set.clear()
    assert second.model_fields_set == set(type(second).model_fields)


def test_unreadable_deliveries_are_kept_in_no_reference_cycle() -> None:
    """An unreadable delivery's error is kept without the traceback and the exception it was
    raised in: with the collector paused (as in a batch), nothing of it waits for one."""
    from engine.runtime._receive import receive

    chart = load_chart("stripe")
    cases: list[tuple[object, object]] = list(_deliveries("stripe"))
    cases += [(b"\xff" * 100, None), (b"[1]", None), (b"{", None), ("x", {"a": object()})]
    gc.collect()
    gc.disable()
    try:
        errors = []
        for body, headers in cases:
            event = receive(chart, body, headers, NOW).event
            if isinstance(event, DeliveryError):
                errors.append(event)
        assert len(errors) > 20
        del errors, event  # let go of: freed at once, or held by a cycle
        assert gc.collect() == 0
    finally:
        gc.enable()


def test_a_reader_whose_chart_is_gone_reads_nothing() -> None:
    chart = Chart(load_chart("stripe").spec)
    read = _reader.reader(chart)
    assert read is not None
    del chart
    gc.collect()
    body = {"id": "e1", "type": "invoice.finalized", "created": 1,
            "data": {"object": {"id": "in_1", "status": "open"}}}  # fmt: skip
    assert read(json.dumps(body).encode(), {}, NOW) is None


def test_a_child_forked_inside_its_own_batch_pauses_again() -> None:
    import os

    with _gc.paused():
        pid = os.fork()
    if pid == 0:  # the child, out of the batch it was forked in
        ok = False
        try:
            ok = _gc._inside == 0 and gc.isenabled()
            with _gc.paused():
                ok = ok and not gc.isenabled()
            ok = ok and gc.isenabled()
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert gc.isenabled()


def test_records_of_a_model_that_can_change_get_their_own_set_of_fields() -> None:
    """Only a frozen model's records share one set: pydantic adds to a record's set when a
    field is assigned, which must not touch the others."""
    from engine.runtime._construct import builder, construct

    class Note(BaseModel):
        a: int
        b: str

    first, second = builder(Note)({"a": 1, "b": "x"}), construct(Note, b="y", a=2)
    first.a = 5
    assert (first.a, second.a, second.b) == (5, 2, "y")
    assert first.model_fields_set == second.model_fields_set == {"a", "b"}
    assert first.model_fields_set is not second.model_fields_set
