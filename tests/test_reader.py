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

from engine import Engine, Event
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
