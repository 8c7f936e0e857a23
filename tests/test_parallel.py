"""Parallel states end to end: configurations, the validator, canonical rules, region-following
events, per-event delivery paths, and the engine recording configurations on both stores.

The chart is small on purpose (two regions of two states each) so every expectation can be
read off it; Lago, the bundled parallel chart, has tests of its own (``test_lago.py``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import _db
import pytest

import engine
from engine import Chart, Configuration, Engine, TransitionNotAllowed, UnknownState
from engine.chart import load_yaml, parse_chart

PARALLEL = (Path(__file__).parent / "charts_parallel" / "par.yaml").read_text(encoding="utf-8")

FRESH = "fin.pay.pending+fin.od.no"
PAID = "fin.pay.done+fin.od.no"


@pytest.fixture(scope="module")
def chart() -> Chart:
    return Chart(parse_chart(load_yaml(PARALLEL)))


# ----------------------------------------------------------------------- configurations


def test_a_configuration_is_its_text_and_its_leaves(chart: Chart) -> None:
    assert chart.states == [
        "draft",
        "fin.pay.pending+fin.od.no",
        "fin.pay.pending+fin.od.yes",
        "fin.pay.done+fin.od.no",
        "fin.pay.done+fin.od.yes",
        "void",
    ]
    fresh = chart.check(["finalize"])
    assert isinstance(fresh, Configuration)
    assert fresh == FRESH
    assert fresh.leaves == ("fin.pay.pending", "fin.od.no")
    assert [fresh.within(s) for s in ("fin", "fin.od", "fin.pay.done")] == [True, True, False]
    assert chart.configuration("fin.od.no+fin.pay.pending") == FRESH  # any order, one text
    assert chart.check(["finalize"], start="draft") == chart.check(["finalize"])


@pytest.mark.parametrize(
    "text", ["fin.pay.pending", "fin", "fin.pay.pending+fin.pay.done", "nope+fin.od.no", ""]
)
def test_what_is_no_configuration_is_refused_by_name(chart: Chart, text: str) -> None:
    with pytest.raises(UnknownState, match=repr(text).replace("+", r"\+").replace(".", r"\.")):
        chart.configuration(text)


def test_a_state_name_may_not_hold_the_separator() -> None:
    with pytest.raises(engine.ChartError, match=r"must be non-empty and contain no '\.' or '\+'"):
        parse_chart(load_yaml(PARALLEL.replace("{name: draft,", "{name: 'dr+aft',")))


# ---------------------------------------------------------------------------- validator


def test_a_region_moves_alone_and_leaving_the_parallel_state_leaves_them_all(
    chart: Chart,
) -> None:
    assert chart.next_state(FRESH, "pay") == PAID
    assert chart.next_state(PAID, "overdue", {"late": True}) == "fin.pay.done+fin.od.yes"
    assert chart.next_state("fin.pay.done+fin.od.yes", "void") == "void"
    assert chart.next_state(PAID, "note") == PAID  # internal: legal, nothing moves
    with pytest.raises(TransitionNotAllowed, match=r"\$\.late == true is false"):
        chart.next_state(PAID, "overdue", {"late": False})
    with pytest.raises(TransitionNotAllowed, match="Can't 'pay' when in"):
        chart.next_state(PAID, "pay")
    assert chart.allowed_triggers(FRESH) == ["pay", "overdue", "void", "note"]
    assert chart.allowed_triggers(PAID) == ["overdue", "void", "note"]


def test_the_parallel_state_by_name_answers_where_its_configurations_agree(chart: Chart) -> None:
    assert chart.next_state("fin", "void") == "void"
    assert chart.allowed_triggers("fin") == ["void", "note"]
    with pytest.raises(TransitionNotAllowed, match="'fin' is a compound state"):
        chart.next_state("fin", "pay")


def test_canonical_rules_decide_per_configuration(chart: Chart) -> None:
    assert [chart.canonical(s) for s in chart.states] == [
        "draft",
        "open",
        "open",
        "paid",
        "paid",
        "void",
    ]
    assert chart.canonical("fin.pay.done") == "paid"  # every configuration with it agrees
    with pytest.raises(UnknownState, match="different canonical states"):
        chart.canonical("fin")


def test_graph_reads_configurations(chart: Chart) -> None:
    assert chart.reachable("fin.pay.done+fin.od.yes") == {"fin.pay.done+fin.od.yes", "void"}
    assert chart.can_reach("draft", "fin.od.yes")
    assert not chart.can_reach("void", "fin")
    assert chart.destinations("pay") == {PAID, "fin.pay.done+fin.od.yes"}
    assert [chart.depth(s) for s in ("draft", FRESH, "fin")] == [0, 1, 1]
    assert [
        (s.dest, [str(c.func) for c in s.conditions]) for s in chart.steps(FRESH, "overdue")
    ] == [("fin.pay.pending+fin.od.yes", ["$.late == true"])]
    assert engine.lint(chart) == []


def test_a_crash_inside_transitions_is_a_broken_chart_not_illegal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from engine.chart._machine import dot_machine

    def explode(*_: Any, **__: Any) -> bool:
        raise RuntimeError("boom")

    monkeypatch.setattr(dot_machine(), "_trigger_event", explode)
    with pytest.raises(engine.ChartError, match=r"the transitions machine failed on .*boom"):
        Chart(parse_chart(load_yaml(PARALLEL)))


# ------------------------------------------------------------------------------- engine


def _delivery(n: int, kind: str, inv: str = "inv_1", **extra: Any) -> dict[str, Any]:
    return {"id": f"evt_{n}", "type": kind, "inv": inv, **extra}


@pytest.fixture
def eng(make_db: _db.Databases, chart: Chart) -> Iterator[Engine]:
    with Engine(make_db(), charts={"par": chart}) as e:
        yield e


def test_the_engine_records_configurations_and_follows_a_region(eng: Engine) -> None:
    out = [
        eng.apply("par", _delivery(1, "created", status="draft")),
        eng.apply("par", _delivery(2, "finalized", status="finalized")),
        eng.apply("par", _delivery(3, "overdue", status="finalized", late=True)),
        eng.apply("par", _delivery(4, "paid", pay_status="done")),
        eng.apply("par", _delivery(5, "paid", pay_status="done")),
    ]
    assert [(o.status, o.to_state) for o in out] == [
        ("applied", "draft"),
        ("applied", FRESH),
        ("applied", "fin.pay.pending+fin.od.yes"),
        ("applied", "fin.pay.done+fin.od.yes"),
        ("unchanged", "fin.pay.done+fin.od.yes"),
    ]
    state = eng.state("par", "inv_1")
    assert state is not None
    assert (state.state, state.canonical) == ("fin.pay.done+fin.od.yes", "paid")
    assert [i.invoice_id for i in eng.invoices("par", state="fin.od.yes")] == ["inv_1"]
    assert [i.invoice_id for i in eng.invoices("par", state="fin")] == ["inv_1"]
    assert list(eng.invoices("par", state="fin.od.no")) == []
    assert eng.replay().ok


def test_a_region_snapshot_catches_up_along_the_chart(eng: Engine) -> None:
    eng.apply("par", _delivery(1, "created", status="draft"))
    caught = eng.apply("par", _delivery(2, "paid", pay_status="done"))
    assert (caught.status, caught.to_state) == ("applied", PAID)
    assert "finalize" in (caught.reason or "")


def test_an_event_reads_its_invoice_where_it_says(eng: Engine) -> None:
    eng.apply("par", _delivery(1, "created", inv="inv_9", status="draft"))
    eng.apply("par", _delivery(2, "finalized", inv="inv_9", status="finalized"))
    out = eng.apply("par", {"id": "evt_3", "type": "disputed", "dispute": {"inv": "inv_9"}})
    assert (out.status, out.invoice_id) == ("unchanged", "inv_9")


def test_a_region_status_it_does_not_know_is_invalid_naming_the_regions_states(
    eng: Engine,
) -> None:
    eng.apply("par", _delivery(1, "created", status="draft"))
    out = eng.apply("par", _delivery(2, "paid", pay_status="refunded"))
    assert out.status == "invalid"
    assert "unknown status 'refunded' at $.pay_status; statuses are: pending, done" in (
        out.reason or ""
    )


def test_configurations_survive_the_cli_as_text(tmp_path: Path, chart: Chart) -> None:
    from click.testing import CliRunner

    from engine.cli import main

    folder = tmp_path / "charts"
    folder.mkdir()
    (folder / "par.yaml").write_text(PARALLEL, encoding="utf-8")
    db = str(tmp_path / "p.db")
    with Engine(db, chart_dir=folder) as e:
        e.apply("par", _delivery(1, "created", status="draft"))
        e.apply("par", _delivery(2, "finalized", status="finalized"))
    result = CliRunner().invoke(
        main, ["invoices", "par", "--db", db, "--chart-dir", str(folder), "--json"]
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [(r["invoice_id"], r["state"], r["canonical"]) for r in rows] == [
        ("inv_1", FRESH, "open")
    ]


def test_an_invoice_first_seen_takes_the_events_own_step_within_its_status(
    eng: Engine,
) -> None:
    """A status can name less than a configuration ('finalized': which payment, which
    overdue?); the event's own step says more, and is taken where it stays within it."""
    late = eng.apply("par", _delivery(1, "overdue", status="finalized", late=True))
    assert (late.status, late.to_state) == ("applied", "fin.pay.pending+fin.od.yes")
    guarded = eng.apply("par", _delivery(2, "overdue", "inv_2", status="finalized", late=False))
    assert (guarded.status, guarded.to_state) == ("applied", FRESH)  # its guard refused it
    voided = eng.apply("par", _delivery(3, "voided", "inv_3", status="finalized"))
    assert (voided.status, voided.to_state) == ("applied", FRESH)  # the provider's word wins


def test_what_is_almost_a_configuration_is_refused_saying_why(chart: Chart) -> None:
    with pytest.raises(UnknownState, match=r"'fin' is a state of chart 'par' but not a config"):
        chart.configuration("fin")
    with pytest.raises(UnknownState, match=r"as in 'fin\.pay\.done\+fin\.od\.no'"):
        chart.configuration("fin.pay.done")
    with pytest.raises(UnknownState, match=r"'void\+fin\.pay\.done' is not a configuration"):
        chart.configuration("void+fin.pay.done")
    with pytest.raises(UnknownState, match=r"it has two leaves of region 'fin\.pay'"):
        chart.configuration("fin.pay.done+fin.pay.pending+fin.od.no")
    with pytest.raises(TransitionNotAllowed, match=r"'fin\.pay\.pending' is a state of one"):
        chart.next_state("fin.pay.pending", "pay")


def test_loading_a_chart_logs_nothing_of_the_machine(caplog: pytest.LogCaptureFixture) -> None:
    """transitions logs every state it enters at INFO: the questions a chart asks it on
    loading are about no invoice, and would flood a server's log (serve logs at INFO)."""
    with caplog.at_level(logging.INFO):
        Chart(parse_chart(load_yaml(PARALLEL)))
    assert [r for r in caplog.records if r.name.startswith("transitions")] == []
    assert logging.getLogger("transitions").level == logging.NOTSET  # put back as it was


# ------------------------------------------------------------------------- what it refuses


def _guarded(n: int) -> str:
    """The chart with ``n`` guards that one question (``go`` from ``draft``) could meet."""
    steps = "".join(
        f"  - {{trigger: go, source: draft, dest: void, guard: '$.g{i} == 1'}}\n" for i in range(n)
    )
    return PARALLEL.replace("transitions:\n", "transitions:\n" + steps, 1).replace(
        "  created: {create: true}", "  created: {create: true}\n  went: go"
    )


def test_a_question_meets_at_most_eight_guards() -> None:
    """Every combination of a question's guards is asked of the machine on loading."""
    assert Chart(parse_chart(load_yaml(_guarded(8)))).next_state("draft", "go", {"g7": 1}) == "void"
    with pytest.raises(
        engine.ChartError, match=r"'go' from 'draft' could meet 9 guards; at most 8"
    ):
        Chart(parse_chart(load_yaml(_guarded(9))))


def test_the_machine_is_fired_a_bounded_number_of_times_on_loading(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from engine.chart import _machine

    monkeypatch.setattr(_machine, "MAX_FIRINGS", 20)
    with pytest.raises(
        engine.ChartError, match=r"would fire its machine 3[0-9] times .* at most 20"
    ):
        Chart(parse_chart(load_yaml(PARALLEL)))


def test_follow_status_is_true_or_a_region_never_a_yaml_word() -> None:
    with pytest.raises(
        engine.ChartError, match=r"follow_status is true, or a region's name; got 'yes'"
    ):
        parse_chart(load_yaml(PARALLEL.replace("follow_status: fin.pay,", "follow_status: 'yes',")))


def test_a_region_is_followed_by_the_step_that_changes_least() -> None:
    """Two triggers reach payment 'done'; the one that also makes the invoice overdue comes
    first in the chart, but the provider only said the payment is done."""
    both = "  - {trigger: settle, source: fin.pay.pending, dest: fin.pay.done}\n"
    both += "  - {trigger: settle, source: fin.od.no, dest: fin.od.yes}\n"
    text = PARALLEL.replace("transitions:\n", "transitions:\n" + both, 1)
    text += "lint_exceptions:\n  - {rule: several-regions, target: settle in fin, why: a test}\n"
    chart = Chart(parse_chart(load_yaml(text)))
    with Engine(":memory:", charts={"par": chart}) as e:
        e.apply("par", _delivery(1, "created", status="draft"))
        e.apply("par", _delivery(2, "finalized", status="finalized"))
        out = e.apply("par", _delivery(3, "paid", pay_status="done"))
    assert (out.trigger, out.to_state) == ("pay", PAID)


def test_a_create_without_a_status_is_born_in_the_first_initial_configuration() -> None:
    text = PARALLEL.replace("initial: draft", "initial: [fin, draft]", 1)
    with Engine(":memory:", charts={"par": Chart(parse_chart(load_yaml(text)))}) as e:
        out = e.apply("par", {"id": "evt_1", "type": "created", "inv": "inv_1"})
    assert (out.status, out.to_state) == ("applied", FRESH)


def test_sibling_leaves_missing_a_canonical_state_are_each_placed() -> None:
    text = PARALLEL.replace("      - {canonical: open}\n", "")
    text = text.replace(
        "  - {name: draft, canonical: draft}", "  - {name: draft}\n  - {name: late}"
    )
    with pytest.raises(engine.ChartError) as info:
        parse_chart(load_yaml(text))
    where = [p.location for p in info.value.problems]
    assert where[:2] == ["states[0]", "states[1]"], where
