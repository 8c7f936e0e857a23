"""engine.testing on every bundled chart and a small parallel one (``charts_parallel/par.yaml``):
strategies, paths, and the model-based check."""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
from collections import deque
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import pytest
from _dict_chart import DictChart
from _reference import Reference
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st

import engine
from engine import Chart, TransitionNotAllowed, load_chart, read_delivery
from engine.chart import bundled_chart_dir
from engine.chart.configuration import Configuration
from engine.testing import (
    Adapter,
    Delivery,
    Step,
    chart_state_machine,
    check_against_chart,
    covering_paths,
    deliveries,
    event_sequences,
    expected_states,
    shortest_paths,
)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))

import test_my_billing as billing  # the README's example, run here as a test

# Chart fixtures hold a file path, the same for every example: safe to share.
FIXTURE_OK = settings(
    suppress_health_check=[*settings().suppress_health_check, HealthCheck.function_scoped_fixture]
)
# Model-based runs whose result is asserted: no example database, so every run searches anew.
# Derandomized: the same examples every run, so CI never sees the ~1% of seeds that miss.
FRESH = settings(settings(), database=None, derandomize=True)

#: A small parallel chart: a finalized invoice's payment and overdue flag change independently.
PARALLEL = Path(__file__).resolve().parent / "charts_parallel" / "par.yaml"
CHARTS = [*sorted(bundled_chart_dir().glob("*.yaml")), PARALLEL]


@pytest.fixture(params=CHARTS, ids=lambda p: p.name)
def chart_path(request: pytest.FixtureRequest) -> Path:
    """Each bundled chart in turn, then the parallel one."""
    path: Path = request.param
    return path


def _reachable(chart: Chart) -> set[str]:
    return set().union(*(chart.reachable(s) for s in chart.initial_states))


# --------------------------------------------------------------------------- sequences


@FIXTURE_OK
@given(data=st.data())
def test_legal_sequences_fold_to_their_last_state(chart_path: Path, data: st.DataObject) -> None:
    chart = load_chart(chart_path)
    start = data.draw(st.sampled_from(chart.initial_states))
    steps = data.draw(event_sequences(chart, start=start, min_size=2, max_size=8))
    assert len(steps) <= 8
    state: str = start
    for step in steps:
        assert step.legal
        assert step.source == state
        state = step.dest
    assert chart.check([s.pair for s in steps], start=start) == state
    if len(steps) < 2:  # only a state that nothing leaves ends a sequence early
        assert not chart.allowed_triggers(state)


@FIXTURE_OK
@given(data=st.data())
def test_mixed_sequences_label_every_step(chart_path: Path, data: st.DataObject) -> None:
    chart = load_chart(chart_path)
    steps = data.draw(event_sequences(chart, legal_only=False, illegal_rate=0.5, max_size=15))
    state: str = chart.initial_states[0]
    for step in steps:
        assert step.source == state
        assert step.legal == chart.may(state, step.trigger, step.payload), step
        if step.legal:
            assert chart.next_state(state, step.trigger, step.payload) == step.dest
        else:
            assert step.dest == state
            with pytest.raises(TransitionNotAllowed):
                chart.next_state(state, step.trigger, step.payload)
        state = step.dest


def test_illegal_steps_are_mixed_in(chart_path: Path) -> None:
    chart = load_chart(chart_path)
    found = find(
        event_sequences(chart, legal_only=False, min_size=3, max_size=3),
        lambda steps: any(not s.legal for s in steps) and any(s.legal for s in steps),
        settings=settings(database=None),
    )
    assert len(found) == 3


def test_guarded_steps_come_with_a_payload_the_guard_takes() -> None:
    chart = load_chart("moxie")
    steps = find(
        event_sequences(chart, max_size=4),
        lambda steps: bool(steps) and steps[-1].dest == "paid",
        settings=settings(database=None),
    )
    assert [s.trigger for s in steps] == ["send", "receive_payment"]
    assert steps[-1].payload == {"amountDue": 0}
    assert repr(steps[-1]) == "Step('sent' --receive_payment {'amountDue': 0}--> 'paid')"


def test_sequence_arguments_are_checked() -> None:
    chart = load_chart("stripe")
    with pytest.raises(ValueError, match="min_size=3"):
        event_sequences(chart, min_size=3, max_size=2)
    with pytest.raises(ValueError, match="illegal_rate"):
        event_sequences(chart, illegal_rate=1.5)
    with pytest.raises(engine.UnknownState, match=r"'payed'.*draft"):
        event_sequences(chart, start="payed")


# ------------------------------------------------------------------------------- paths


def _distances(chart: Chart) -> dict[str, int]:
    """Breadth-first over the chart's transitions (every bundled guard can be satisfied)."""
    dist: dict[str, int] = dict.fromkeys(chart.initial_states, 0)
    queue: deque[str] = deque(chart.initial_states)
    while queue:
        state = queue.popleft()
        for trigger in chart.allowed_triggers(state):
            for dest, _ in chart.steps(state, trigger):
                if dest is not None and dest not in dist:
                    dist[dest] = dist[state] + 1
                    queue.append(dest)
    return dist


def _edges(chart: Chart) -> set[tuple[str, str, str]]:
    return {
        (s, t, s if dest is None else dest)
        for s in _reachable(chart)
        for t in chart.allowed_triggers(s)
        for dest, _ in chart.steps(s, t)
    }


def test_shortest_paths_reach_every_state_by_a_shortest_route(chart_path: Path) -> None:
    chart = load_chart(chart_path)
    paths = shortest_paths(chart)
    distances = _distances(chart)
    assert set(paths) == _reachable(chart) == set(distances)
    for state, path in paths.items():
        assert path.end == state
        assert chart.check(path.pairs, start=path.start) == state
        assert len(path.steps) == distances[state], str(path)
    assert shortest_paths(chart) == paths  # deterministic


def test_covering_paths_take_every_transition(chart_path: Path) -> None:
    chart = load_chart(chart_path)
    paths = covering_paths(chart)
    taken = set()
    for path in paths:
        assert path.start in chart.initial_states
        assert chart.check(path.pairs, start=path.start) == path.end
        taken |= {(s.source, s.trigger, s.dest) for s in path.steps}
    assert taken == _edges(chart)
    assert covering_paths(chart) == paths  # deterministic


def test_stripe_paths_read_like_the_diagram() -> None:
    chart = load_chart("stripe")
    assert {s: str(p) for s, p in shortest_paths(chart).items()} == {
        "draft": "draft",
        "open": "draft -finalize-> open",
        "deleted": "draft -delete-> deleted",
        "paid": "draft -finalize-> open -pay-> paid",
        "void": "draft -finalize-> open -void-> void",
        "uncollectible": "draft -finalize-> open -mark_uncollectible-> uncollectible",
    }
    assert str(covering_paths(chart)[0]) == "draft -finalize-> open -pay-> paid"
    assert set(shortest_paths(chart, start="open")) == {"open", "paid", "void", "uncollectible"}


def test_guarded_paths_carry_their_payloads() -> None:
    chart = load_chart("moxie")
    partial = shortest_paths(chart)["partial"]
    assert partial.pairs == [("send", None), ("receive_payment", {"amountDue": 1})]


# -------------------------------------------------------------------------- deliveries


@FIXTURE_OK
@given(data=st.data())
def test_deliveries_read_back_as_generated(chart_path: Path, data: st.DataObject) -> None:
    chart = load_chart(chart_path)
    made = data.draw(deliveries(chart, duplicates=True, shuffle=True, illegal=True))
    assert made
    for d in made:
        event = read_delivery(chart, d.raw, d.headers)
        assert (event.invoice_id, event.event_type, event.trigger) == (
            d.invoice_id,
            d.event_type,
            d.trigger,
        )
        assert event.occurred_at == d.occurred_at
        assert event.derived_id == (d.event_id is None)
        if d.event_id is not None:
            assert event.event_id == d.event_id
        assert event.status_state == d.snapshot
        if d.legal and d.snapshot is not None:  # the snapshot says where the invoice is
            assert Configuration(d.dest).within(d.snapshot), d


@FIXTURE_OK
@given(data=st.data())
def test_delivery_labels_hold(chart_path: Path, data: st.DataObject) -> None:
    chart = load_chart(chart_path)
    dup = data.draw(st.booleans())
    made = data.draw(deliveries(chart, min_invoices=2, max_invoices=3, duplicates=dup))
    keys = [read_delivery(chart, d.raw, d.headers).event_id for d in made]
    assert [d.duplicate for d in made] == [k in keys[:i] for i, k in enumerate(keys)]
    assert dup or not any(d.duplicate for d in made)
    by_invoice: dict[str, list[Delivery]] = {}
    for d in made:
        if not d.duplicate:
            by_invoice.setdefault(d.invoice_id, []).append(d)
    assert 2 <= len(by_invoice) <= 3
    for life in by_invoice.values():
        assert [d.seq for d in life] == list(range(len(life)))  # arrival in lifecycle order
        times = [d.occurred_at for d in life]
        if chart.spec.delivery.occurred_at is not None:
            assert all(
                a is not None and b is not None and a < b for a, b in itertools.pairwise(times)
            )
        assert life[0].source is None
        for before, after in itertools.pairwise(life):
            assert after.source == before.dest  # a legal lifecycle, step by step
    assert {i: life[-1].dest for i, life in by_invoice.items()} == expected_states(made)


def _first_delivery(provider: str) -> Delivery:
    quick = settings(database=None, phases=[Phase.generate])
    return find(deliveries(load_chart(provider)), bool, settings=quick)[0]


def test_deliveries_have_the_providers_shape() -> None:
    stripe = _first_delivery("stripe")
    assert stripe.body["type"] == "invoice.created"
    assert stripe.body["data"]["object"]["status"] == "draft"
    assert stripe.body["id"].startswith("evt_")
    assert isinstance(stripe.body["created"], int)
    moxie = _first_delivery("moxie")
    assert moxie.headers == {"X-Event-Type": "InvoiceSent"}
    assert moxie.body["status"] == "SENT"
    chargeover = _first_delivery("chargeover")
    assert chargeover.body["context_str"] == "invoice"
    assert chargeover.body["event"] == "insert"
    assert re.search(r"invoice\.insert: born 'open\.(unpaid|overdue)'\)$", repr(chargeover))


def test_delivery_arguments_are_checked() -> None:
    chart = load_chart("stripe")
    with pytest.raises(ValueError, match="min_invoices"):
        deliveries(chart, min_invoices=4, max_invoices=3)
    with pytest.raises(ValueError, match="max_events"):
        deliveries(chart, max_events=-1)


# --------------------------------------------------------------------- parallel states


def _found(chart: Chart, wanted: Callable[[Delivery], bool]) -> list[Delivery]:
    """A few deliveries of one invoice, with one that ``wanted`` accepts (``find`` shrinks)."""
    quick = settings(database=None, phases=[Phase.generate], max_examples=2_000, derandomize=True)
    return find(
        deliveries(chart, max_invoices=1, max_events=8, illegal=True),
        lambda made: any(wanted(d) for d in made),
        settings=quick,
    )


def test_a_region_s_status_is_written_relative_to_the_region() -> None:
    """``paid`` follows the payment region through its own field (``pay_status: done``); the
    body says the invoice's status too, and every body about a finalized invoice says its
    payment status, as a provider's invoice object does."""
    chart = load_chart(PARALLEL)

    def pays(d: Delivery) -> bool:
        return d.event_type == "paid" and d.legal and d.snapshot == "fin.pay.done"

    made = _found(chart, pays)
    paid = next(d for d in made if pays(d))
    assert paid.source is not None
    assert Configuration(paid.source).within("fin.pay.pending")
    assert paid.dest in ("fin.pay.done+fin.od.no", "fin.pay.done+fin.od.yes")
    assert paid.body["pay_status"] == "done"
    said = chart.state_for_status(paid.body["status"])  # through statuses: finalized -> fin
    assert said is not None
    assert Configuration(paid.dest).within(said)
    assert read_delivery(chart, paid.raw).status_state == "fin.pay.done"
    for d in made:  # (a paid event's own field is its snapshot: for a rejected one, a claim)
        if d.event_type == "paid":
            assert f"fin.pay.{d.body['pay_status']}" == d.snapshot, d
        elif Configuration(d.dest).within("fin"):
            done = Configuration(d.dest).within("fin.pay.done")
            assert d.body["pay_status"] == ("done" if done else "pending"), d
        else:
            assert "pay_status" not in d.body, d


def test_a_status_out_of_a_region_s_reach_is_rejected() -> None:
    chart = load_chart(PARALLEL)

    def back(d: Delivery) -> bool:
        return d.event_type == "paid" and not d.legal

    wrong = next(d for d in _found(chart, back) if back(d))
    assert wrong.snapshot is not None
    assert wrong.snapshot.startswith("fin.pay.")
    assert wrong.body["pay_status"] == wrong.snapshot.removeprefix("fin.pay.")
    assert not chart.can_reach(wrong.dest, wrong.snapshot)


def test_lago_deliveries_have_lago_s_shape() -> None:
    if "lago" not in engine.available_charts():
        pytest.skip("no lago chart yet")
    chart = load_chart("lago")

    def payment(d: Delivery) -> bool:
        return d.event_type == "invoice.payment_status_updated" and d.legal

    made = _found(chart, payment)
    d = next(d for d in made if payment(d))
    invoice = d.body["invoice"]
    assert invoice["status"] == "finalized"
    assert d.snapshot == f"finalized.payment.{invoice['payment_status']}"
    assert Configuration(d.dest).within(d.snapshot)
    for d in made:  # each invoice object says its payment status
        envelope = chart.spec.events[d.event_type].invoice_id is None  # the invoice at $.invoice
        if Configuration(d.dest).within("finalized") and envelope:
            assert d.body["invoice"]["payment_status"] in ("pending", "succeeded", "failed")


def test_sequences_and_paths_walk_configurations() -> None:
    chart = load_chart(PARALLEL)
    start = "fin.od.no+fin.pay.pending"  # leaves in any order name the configuration
    steps = find(
        event_sequences(chart, start=start, max_size=3),
        lambda steps: [s.trigger for s in steps] == ["pay", "overdue"],
        settings=settings(database=None),
    )
    assert [s.dest for s in steps] == ["fin.pay.done+fin.od.no", "fin.pay.done+fin.od.yes"]
    assert steps[1].payload == {"late": True}
    assert {s: str(p) for s, p in shortest_paths(chart).items()} == {
        "draft": "draft",
        "fin.pay.pending+fin.od.no": "draft -finalize-> fin.pay.pending+fin.od.no",
        "fin.pay.done+fin.od.no": "draft -finalize-> fin.pay.pending+fin.od.no "
        "-pay-> fin.pay.done+fin.od.no",
        "fin.pay.pending+fin.od.yes": "draft -finalize-> fin.pay.pending+fin.od.no "
        "-overdue-> fin.pay.pending+fin.od.yes",
        "void": "draft -finalize-> fin.pay.pending+fin.od.no -void-> void",
        "fin.pay.done+fin.od.yes": "draft -finalize-> fin.pay.pending+fin.od.no "
        "-pay-> fin.pay.done+fin.od.no -overdue-> fin.pay.done+fin.od.yes",
    }
    with pytest.raises(engine.UnknownState, match=r"'fin\.pay\.done'.*not a configuration"):
        shortest_paths(chart, start="fin.pay.done")  # one region's leaf is no configuration


def test_the_model_based_check_compares_configurations() -> None:
    """A system may name its configuration with the leaves in any order, or as a collection;
    one that loses a region is caught."""
    chart = load_chart(PARALLEL)

    def system(report: Callable[[list[str]], str | Collection[str]]) -> Callable[[], Adapter]:
        def fresh() -> Adapter:
            here = [chart.initial_states[0]]

            def send(trigger: str, payload: Any) -> bool:
                try:
                    here[0] = chart.next_state(here[0], trigger, payload)
                except TransitionNotAllowed:
                    return False
                return True

            return Adapter(send=send, state=lambda: report(here[0].split("+")))

        return fresh

    check_against_chart(chart, system(lambda leaves: "+".join(reversed(leaves))))
    check_against_chart(chart, system(lambda leaves: set(leaves)))
    with pytest.raises(AssertionError, match=r"your system is in 'fin\.pay\.pending', but the"):
        check_against_chart(chart, system(lambda leaves: leaves[0]), settings=FRESH)


# ------------------------------------------------------------------------- model-based


class _Reading:
    """A chart read without the engine: the dict reading, or (it knows no parallel states) a
    ``transitions`` machine built from the chart file by the tests' own hand."""

    def __init__(self, path: Path) -> None:
        chart = load_chart(path)
        self.parallel = bool(chart.tree.parallel)
        self._dict = None if self.parallel else DictChart(path)
        self._machine = Reference(chart.spec) if self.parallel else None
        self.initial = self._dict.initial[0] if self._dict else self._reference().initial

    def _reference(self) -> Reference:
        assert self._machine is not None
        return self._machine

    def next_state(self, state: str, trigger: str, payload: Any) -> str | None:
        if self._dict is not None:
            return self._dict.next_state(state, trigger, payload)
        return self._reference().next_state(state, trigger, payload)


def _dict_system(
    path: Path, *, start: str | None = None, mutate: Callable[[str, str], str | None] | None = None
) -> Callable[[], Adapter]:
    """A "user's system" that follows the chart file through its own reading, optionally with
    a bug: ``mutate(state, trigger)`` overrides the answer where it returns a state. In a
    parallel chart it reports its active leaves as a list, last leaf first (any order will
    do)."""
    reading = _Reading(path)

    def fresh() -> Adapter:
        current = [start or reading.initial]

        def send(trigger: str, payload: Any) -> bool:
            dest = reading.next_state(current[0], trigger, payload)
            wrong = mutate(current[0], trigger) if mutate else None
            dest = wrong or dest
            if dest is None:
                return False
            current[0] = dest
            return True

        def state() -> str | list[str]:
            return current[0].split("+")[::-1] if reading.parallel else current[0]

        return Adapter(send=send, state=state)

    return fresh


def _named(chart: Chart, state: str | Collection[str]) -> str:
    """A system's state as the configuration it names (its leaves may come in any order)."""
    return chart.configuration(state if isinstance(state, str) else "+".join(state))


def _shrunk_steps(err: BaseException) -> list[str]:
    return [n for n in getattr(err, "__notes__", []) if n.startswith("state.send(")]


def test_a_faithful_system_passes(chart_path: Path) -> None:
    check_against_chart(load_chart(chart_path), _dict_system(chart_path))


def _forbidden_target(chart: Chart) -> tuple[str, str, int]:
    """The illegal (state, trigger) deepest in the chart, preferring final states."""
    paths = shortest_paths(chart, start=chart.initial_states[0])
    state = max(paths, key=lambda s: (chart.is_final(s), len(paths[s].steps)))
    illegal = [t for t in chart.triggers if t not in chart.allowed_triggers(state)]
    return state, illegal[-1], len(paths[state].steps)


def test_a_system_accepting_a_forbidden_step_is_caught_and_shrunk(chart_path: Path) -> None:
    chart = load_chart(chart_path)
    state, trigger, depth = _forbidden_target(chart)

    def bug(s: str, t: str) -> str | None:
        return s if (s, t) == (state, trigger) else None

    with pytest.raises(AssertionError, match="accepted") as info:
        check_against_chart(chart, _dict_system(chart_path, mutate=bug), settings=FRESH)
    assert f"in {state!r}, but the chart forbids it" in str(info.value)
    steps = _shrunk_steps(info.value)
    assert len(steps) == depth + 1, steps
    assert steps[-1].startswith(f"state.send(trigger={trigger!r}")


def test_a_system_refusing_a_legal_step_is_caught(chart_path: Path) -> None:
    chart = load_chart(chart_path)
    edge = covering_paths(chart)[0].steps[0]
    faithful = _dict_system(chart_path, start=edge.source)

    def refusing() -> Adapter:
        inner = faithful()

        def send(trigger: str, payload: Any) -> object:
            if (_named(chart, inner.state()), trigger) == (edge.source, edge.trigger):
                return False
            return inner.send(trigger, payload)

        return Adapter(send=send, state=inner.state)

    with pytest.raises(AssertionError, match=r"returned False.*but the chart allows it") as info:
        check_against_chart(chart, refusing, start=edge.source, settings=FRESH)
    assert len(_shrunk_steps(info.value)) == 1


def test_a_system_ending_in_another_state_is_caught(chart_path: Path) -> None:
    chart = load_chart(chart_path)
    edge = covering_paths(chart)[0].steps[0]
    elsewhere = next(s for s in chart.states if s != edge.dest)

    def misroutes(state: str, trigger: str) -> str | None:
        return elsewhere if (state, trigger) == (edge.source, edge.trigger) else None

    system = _dict_system(chart_path, start=edge.source, mutate=misroutes)
    with pytest.raises(
        AssertionError, match=re.escape(f"is in {elsewhere!r}, but the chart says")
    ) as info:
        check_against_chart(chart, system, start=edge.source, settings=FRESH)
    steps = _shrunk_steps(info.value)
    assert len(steps) == 1
    assert steps[0].startswith(f"state.send(trigger={edge.trigger!r}")


def test_a_wrong_start_is_caught_at_once() -> None:
    path = engine.chart.bundled_chart_dir() / "stripe.yaml"
    with pytest.raises(AssertionError, match="at the start, your system is in 'open'"):
        check_against_chart(load_chart("stripe"), _dict_system(path, start="open"))


def test_canonical_comparison() -> None:
    chart = load_chart("modern_treasury")
    path = chart.path
    assert path is not None

    def canonical_system() -> Adapter:
        inner = _dict_system(path)()
        return Adapter(send=inner.send, state=lambda: chart.canonical(_named(chart, inner.state())))

    check_against_chart(chart, canonical_system, compare="canonical")
    with pytest.raises(
        AssertionError, match=r"is in '(open|void)', but the chart says '(unpaid|voided)'"
    ):
        check_against_chart(chart, canonical_system, settings=FRESH)


def test_only_the_listed_exceptions_mean_refused() -> None:
    def fragile() -> Adapter:
        adapter = billing.stripe_adapter(billing.MyInvoice())

        def send(trigger: str, payload: Any) -> object:
            if trigger == "pay":
                raise KeyError("boom")  # a bug, not a refusal
            return adapter.send(trigger, payload)

        return Adapter(send=send, state=adapter.state)

    with pytest.raises(KeyError, match="boom"):
        check_against_chart(
            load_chart("stripe"), fragile, rejects=billing.InvoiceError, settings=FRESH
        )


def test_triggers_limit_what_is_sent() -> None:
    sent: set[str] = set()

    def recording() -> Adapter:
        adapter = billing.stripe_adapter(billing.MyInvoice())

        def send(trigger: str, payload: Any) -> object:
            sent.add(trigger)
            return adapter.send(trigger, payload)

        return Adapter(send=send, state=adapter.state)

    chart = load_chart("stripe")
    check_against_chart(chart, recording, triggers=["finalize", "pay"])
    assert sent == {"finalize", "pay"}
    with pytest.raises(engine.UnknownTrigger, match="'payy'"):
        check_against_chart(chart, recording, triggers=["payy"])


def test_the_state_machine_runs_as_a_unittest_case() -> None:
    machine = chart_state_machine(
        load_chart("stripe"), lambda: billing.stripe_adapter(billing.MyInvoice())
    )
    assert machine.__name__ == "StripeCheck"
    machine.TestCase("runTest").runTest()


# ------------------------------------------------------------------- the README example


def test_the_billing_example_passes() -> None:
    billing.test_my_invoice_follows_the_stripe_lifecycle()


class LenientInvoice(billing.MyInvoice):
    """The deliberate bug: voiding forgets that a paid invoice is final."""

    def void(self) -> None:
        self._require("open", "uncollectible", "paid")
        self.status = "void"


def test_voiding_a_paid_invoice_is_caught_with_the_shortest_sequence() -> None:
    with pytest.raises(AssertionError) as info:
        check_against_chart(
            load_chart("stripe"),
            lambda: billing.stripe_adapter(LenientInvoice()),
            rejects=billing.InvoiceError,
            settings=FRESH,
        )
    assert str(info.value) == (
        "your system accepted 'void' in 'paid', but the chart forbids it: "
        "Can't 'void' when in 'paid' (a final state); nothing is allowed from 'paid'"
    )
    assert _shrunk_steps(info.value) == [
        "state.send(trigger='finalize')",
        "state.send(trigger='pay')",
        "state.send(trigger='void')",
    ]


def test_hypothesis_is_needed_only_by_engine_testing() -> None:
    plain = "import sys, engine; assert 'hypothesis' not in sys.modules"
    subprocess.run([sys.executable, "-c", plain], check=True)
    missing = "import sys; sys.modules['hypothesis'] = None; import engine.testing"
    res = subprocess.run([sys.executable, "-c", missing], capture_output=True, text=True)
    assert res.returncode == 1
    assert "pip install 'invoice-engine[testing]'" in res.stderr


def test_step_repr_is_readable() -> None:
    assert repr(Step("void", None, "paid", "paid", legal=False)) == (
        "Step('paid' --void--> rejected)"
    )
