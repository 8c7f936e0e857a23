"""The bundled charts: shape checks over every chart, and each provider's documented lifecycles.

The parametrized tests run over every file in ``statecharts/`` (a new chart is checked with no
new code). The per-provider tests replay lifecycles the providers' docs describe (see
``statecharts/*.yaml`` headers for the sources) through the validator API, and pin the facts
that make each provider different: Modern Treasury's paid -> unpaid, Pelcro invoices born open,
Stripe's uncollectible that can still be paid, Moxie's guarded payment. The stream tests check
that every sample in ``examples/streams/`` is readable by its chart.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

import engine
from engine.chart import Chart
from engine.chart.spec import CANONICAL_STATES

STREAMS = Path(__file__).resolve().parent.parent / "examples" / "streams"


# ---------------------------------------------------------------------- every chart


def test_every_bundled_provider_has_a_chart() -> None:
    assert set(engine.available_charts()) >= {
        "stripe",
        "pelcro",
        "modern_treasury",
        "chargeover",
        "moxie",
        "upmind",
        "lago",
    }


def test_chart_header_names_its_sources_and_assumptions(chart_file: Path) -> None:
    text = chart_file.read_text(encoding="utf-8")
    header = text.split("\nprovider:", 1)[0]
    assert header.startswith("#"), "a chart starts with its header comment"
    assert "Sources followed" in header
    assert "Assumptions" in header
    assert engine.load_chart(chart_file).spec.sources, "sources: lists the documents followed"


def _comments(text: str) -> list[str]:
    """The comments of a YAML file: whole-line ones, and those after a value (`key: v  # …`)."""
    found = []
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            found.append(line.lstrip())
        elif " #" in line:
            found.append(line[line.index(" #") + 1 :])
    return found


def test_charts_cite_what_users_can_read(chart_file: Path) -> None:
    """A chart's sources are the provider's public documentation, by URL: nothing that only
    exists on the machine it was written on (issue 17, item 7)."""
    chart = engine.load_chart(chart_file)
    comments = _comments(chart_file.read_text(encoding="utf-8"))
    for text in [*chart.spec.sources, *comments]:
        for private in ("seed", ".txt", "shared/", "PROVIDERS.md"):
            assert private.lower() not in text.lower(), f"{chart_file.name}: {text!r}"
    assert chart.spec.sources
    for source in chart.spec.sources:
        parsed = urlparse(source)
        assert (parsed.scheme, bool(parsed.netloc)) == ("https", True), source
        assert " " not in source, source
        # The reasoning stays in the chart: its header says what each source is used for.
        assert source in "\n".join(comments), f"{chart_file.name}: {source} not in the header"


def test_every_chart_declares_how_its_deliveries_are_verified(chart_file: Path) -> None:
    """A bundled chart says how its provider authenticates a delivery (its `signature:` block,
    never a secret), under a comment that says how sure that is."""
    chart = engine.load_chart(chart_file)
    assert chart.spec.signature is not None
    text = chart_file.read_text(encoding="utf-8")
    above = text.split("\nsignature:", 1)[0].rsplit("\n\n", 1)[-1]
    assert above.lstrip().startswith("#"), "the block has a comment above it"
    assert re.search(r"\[(doc|inferred|unknown|choice)\b", above), above
    assert "INVOICE_ENGINE_SECRET_" in above, "the comment says where the secret comes from"


def test_every_leaf_has_a_known_canonical_state(chart_file: Path) -> None:
    chart = engine.load_chart(chart_file)
    for state in chart.states:
        assert chart.canonical(state) in CANONICAL_STATES, state


def test_invoices_are_born_draft_or_open(chart_file: Path) -> None:
    chart = engine.load_chart(chart_file)
    for state in chart.initial_states:
        assert chart.canonical(state) in ("draft", "open"), state


def test_every_state_is_reachable_from_birth(chart_file: Path) -> None:
    chart = engine.load_chart(chart_file)
    unreachable = [s for s in chart.states if chart.depth(s) >= 1_000]
    assert unreachable == []


def test_final_states_allow_nothing(chart_file: Path) -> None:
    chart = engine.load_chart(chart_file)
    assert chart.final_states, "every lifecycle has an end"
    for state in chart.final_states:
        assert chart.allowed_triggers(state) == [], state


def test_every_status_value_names_a_leaf_or_a_parallel_state(chart_file: Path) -> None:
    """A status names one configuration (a leaf), or a parallel state: "some configuration
    inside it" (Lago's `finalized`; its regions say which)."""
    chart = engine.load_chart(chart_file)
    for value in chart.spec.delivery.statuses:
        state = chart.state_for_status(value)
        assert state in chart.states or state in chart.tree.parallel, value


def test_every_trigger_can_be_reached_by_some_event(chart_file: Path) -> None:
    chart = engine.load_chart(chart_file)
    events = chart.spec.events.values()
    used = {ev.trigger for ev in events if ev.trigger is not None}
    if any(ev.follow_status for ev in events):
        # follow_status takes any transition that moves the invoice (never an internal one).
        used |= {t.trigger for t in chart.spec.transitions if t.dest is not None}
    assert set(chart.triggers) - used == set(), "a trigger no webhook can fire is dead weight"


# --------------------------------------------------------------------------- stripe


def test_stripe_documented_lifecycles() -> None:
    chart = engine.load_chart("stripe")
    assert chart.check(["finalize", "pay"], start="draft") == "paid"
    assert chart.check(["finalize", "notify", "mark_uncollectible", "pay"]) == "paid"
    assert chart.check(["finalize", "mark_uncollectible", "void"]) == "void"
    assert chart.check(["delete"]) == "deleted"
    assert chart.canonical("deleted") == "void"


def test_stripe_uncollectible_is_not_terminal_but_paid_is() -> None:
    chart = engine.load_chart("stripe")
    assert chart.next_state("uncollectible", "pay") == "paid"
    assert chart.next_state("uncollectible", "void") == "void"
    with pytest.raises(engine.TransitionNotAllowed):
        chart.next_state("paid", "void")


# --------------------------------------------------------------------------- pelcro


def test_pelcro_invoices_may_be_born_open() -> None:
    chart = engine.load_chart("pelcro")
    assert chart.initial_states == ["draft", "open"]
    assert chart.spec.events["invoice.created"].kind == "create"
    # "Successful payment (charge automatically)": created (open) -> payment_succeeded -> updated
    assert chart.check(["pay"], start="open") == "paid"
    # "Failed payment": created -> payment_failed -> updated (to uncollectible)
    assert chart.check(["notify", "mark_uncollectible"], start="open") == "uncollectible"


def test_pelcro_paid_twice_is_one_transition() -> None:
    chart = engine.load_chart("pelcro")
    events = chart.spec.events
    assert events["invoice.payment_succeeded"].trigger == "pay"
    assert events["invoice.updated"].kind == "follow_status"
    after_payment = chart.next_state("open", "pay")
    # The invoice.updated that follows names the state the invoice is already in.
    assert chart.state_for_status("paid") == after_payment
    assert chart.is_final(after_payment)


def test_pelcro_status_changes_come_as_invoice_updated() -> None:
    chart = engine.load_chart("pelcro")
    for missing in ("invoice.voided", "invoice.marked_uncollectible", "invoice.finalized"):
        assert missing not in chart.spec.events
    # follow_status can reach void and uncollectible from open.
    assert chart.transitions_between("open", "void") == ["void"]
    assert chart.transitions_between("open", "uncollectible") == ["mark_uncollectible"]
    assert chart.transitions_between("draft", "open") == ["finalize"]


def test_pelcro_upcoming_creates_nothing() -> None:
    upcoming = engine.load_chart("pelcro").spec.events["invoice.upcoming"]
    assert upcoming.kind == "info"
    assert upcoming.invoice_optional


def test_pelcro_payment_failed_leaves_open_invoices_open() -> None:
    chart = engine.load_chart("pelcro")
    assert chart.spec.events["invoice.payment_failed"].trigger == "notify"
    assert chart.next_state("open", "notify") == "open"
    assert not chart.may("paid", "notify")


# ------------------------------------------------------------------ modern treasury


def test_modern_treasury_documented_lifecycle() -> None:
    chart = engine.load_chart("modern_treasury")
    # Manual: draft -> unpaid; payment order: pending -> completed.
    assert chart.check(["mark_unpaid", "start_payment", "pay"], start="draft") == "paid"
    # Payment order failed while pending: back to unpaid; then marked paid by hand.
    assert chart.check(["mark_unpaid", "start_payment", "mark_unpaid", "pay"]) == "paid"
    assert chart.canonical("payment_pending") == "open"
    assert chart.canonical("voided") == "void"


def test_modern_treasury_paid_can_be_reversed_to_unpaid() -> None:
    chart = engine.load_chart("modern_treasury")
    assert not chart.is_final("paid")
    assert chart.next_state("paid", "mark_unpaid") == "unpaid"


def test_modern_treasury_voided_is_terminal_and_only_from_draft_or_unpaid() -> None:
    chart = engine.load_chart("modern_treasury")
    assert chart.is_final("voided")
    assert chart.next_state("draft", "void") == "voided"
    assert chart.next_state("unpaid", "void") == "voided"
    for state in ("payment_pending", "paid"):
        assert not chart.may(state, "void"), state


def test_modern_treasury_event_names_equal_the_new_status() -> None:
    chart = engine.load_chart("modern_treasury")
    for name, ev in chart.spec.events.items():
        if ev.trigger is None:
            continue
        dests = {
            dest
            for state in chart.states
            for dest, _ in chart.steps(state, ev.trigger)
            if dest is not None
        }
        assert dests == {name}, (name, dests)


def test_modern_treasury_overdue_changes_nothing() -> None:
    chart = engine.load_chart("modern_treasury")
    overdue = chart.spec.events["overdue"]
    assert overdue.kind == "info"
    assert overdue.states == ["unpaid"]


def test_modern_treasury_identity_comes_from_the_signed_body() -> None:
    """Its HMAC signs the body only: X-Webhook-ID (unsigned) must not be the identity."""
    dm = engine.load_chart("modern_treasury").spec.delivery
    assert dm.event_id is None
    assert [str(loc) for loc in dm.idempotency_key or ()] == [
        "$.event",
        "$.data.id",
        "$.data.updated_at",
    ]


def test_modern_treasury_example_stream_keys_tell_events_apart() -> None:
    """Distinct events of the example stream get distinct keys; its redelivery the same one."""
    chart = engine.load_chart("modern_treasury")
    keys: dict[str, bytes] = {}
    for text in (STREAMS / "modern_treasury.jsonl").read_text(encoding="utf-8").splitlines():
        try:
            line = json.loads(text)
            event = engine.read_delivery(chart, line["body"], line["headers"])
        except (ValueError, engine.DeliveryError):
            continue  # the stream's one malformed line
        body = line["body"].encode()
        assert keys.setdefault(event.event_id, body) == body, "two events, one key"
    assert len(keys) == 17  # 19 lines: one malformed, one an exact redelivery


# ----------------------------------------------------------------------- chargeover


def test_chargeover_nests_open_and_closed() -> None:
    chart = engine.load_chart("chargeover")
    assert chart.states == ["open.unpaid", "open.overdue", "closed.paid", "closed.void"]
    assert [chart.canonical(s) for s in chart.states] == ["open", "open", "paid", "void"]
    for value in ("open-unpaid", "open-overdue", "closed-paid", "closed-void"):
        assert chart.state_for_status(value) == value.replace("-", ".")


def test_chargeover_lifecycles() -> None:
    chart = engine.load_chart("chargeover")
    assert chart.check(["become_overdue", "pay"], start="open.unpaid") == "closed.paid"
    assert chart.check(["void"], start="open.overdue") == "closed.void"
    # Both open leaves can be closed either way (the parent's transitions apply to each child).
    for state in ("open.unpaid", "open.overdue"):
        assert chart.transitions_between(state, "closed.paid") == ["pay"]
        assert chart.transitions_between(state, "closed.void") == ["void"]
    with pytest.raises(engine.TransitionNotAllowed):
        chart.next_state("closed.paid", "void")


def test_chargeover_reads_a_delivery_with_no_id_and_no_time() -> None:
    delivery = engine.load_chart("chargeover").spec.delivery
    assert [str(loc) for loc in delivery.event_type] == ["$.context_str", "$.event"]
    assert delivery.event_id is None
    assert delivery.occurred_at is None
    key = [str(loc) for loc in delivery.idempotency_key or []]
    for part in (
        "$.context_id",
        "$.data.invoice.invoice_status_str",
        "$.data.invoice.mod_datetime",
    ):
        assert part in key


# ---------------------------------------------------------------------------- moxie


@pytest.mark.parametrize(
    ("start", "amount_due", "expected"),
    [
        ("sent", 0, "paid"),
        ("sent", 96.25, "partial"),
        ("partial", 0, "paid"),
        ("partial", 5, "partial"),
    ],
)
def test_moxie_payment_is_guarded_on_amount_due(
    start: str, amount_due: float, expected: str
) -> None:
    chart = engine.load_chart("moxie")
    assert chart.next_state(start, "receive_payment", {"amountDue": amount_due}) == expected


def test_moxie_payment_without_amount_due_or_before_sending_is_illegal() -> None:
    chart = engine.load_chart("moxie")
    with pytest.raises(engine.TransitionNotAllowed, match="amountDue"):
        chart.next_state("sent", "receive_payment", {})
    assert not chart.may("draft", "receive_payment", {"amountDue": 0})
    assert not chart.may("paid", "receive_payment", {"amountDue": 0})


def test_moxie_lifecycle_and_delivery_map() -> None:
    chart = engine.load_chart("moxie")
    steps: list[str | tuple[str, Any]] = [
        "send",
        ("receive_payment", {"amountDue": 15096.25}),
        "send",  # a resend changes nothing
        ("receive_payment", {"amountDue": 0}),
    ]
    assert chart.check(steps, start="draft") == "paid"
    delivery = chart.spec.delivery
    assert [str(loc) for loc in delivery.event_type] == ["header:X-Event-Type"]
    key = [str(loc) for loc in delivery.idempotency_key or []]
    assert key == ["$.id", "header:X-Event-Type", "$.status", "$.payments[*].id"]


# --------------------------------------------------------------------------- upmind


def test_upmind_hook_codes_follow_the_confirmed_one() -> None:
    chart = engine.load_chart("upmind")
    assert chart.spec.events["invoice_paid_hook"].trigger == "pay"
    assert all(code.endswith("_hook") and code == code.lower() for code in chart.spec.events)
    kinds = [ev.kind for ev in chart.spec.events.values()]
    assert kinds.count("info") > len(kinds) / 2, "most Upmind triggers are informational"


def test_upmind_lifecycles() -> None:
    chart = engine.load_chart("upmind")
    # A proforma is created, paid (becoming an invoice), then refunded.
    assert chart.check(["pay", "refund"], start="unpaid") == "refunded"
    assert chart.check(["cancel"]) == "cancelled"
    assert chart.check(["credit"]) == "credited"
    assert chart.canonical("cancelled") == "void"
    with pytest.raises(engine.TransitionNotAllowed):
        chart.next_state("cancelled", "pay")


def test_upmind_keys_invoices_on_the_object_id() -> None:
    delivery = engine.load_chart("upmind").spec.delivery
    assert str(delivery.invoice_id) == "$.object_id"
    assert str(delivery.event_id) == "$.webhook_event_id"


# -------------------------------------------------------------------------- streams


def _delivery(obj: Any) -> tuple[Any, dict[str, str]]:
    """A stream line's (body, lower-cased headers), the body parsed if it is a JSON string."""
    if isinstance(obj, dict) and set(obj) == {"headers", "body"}:
        headers = {str(k).lower(): str(v) for k, v in obj["headers"].items()}
        body = obj["body"]
        return (json.loads(body) if isinstance(body, str) else body), headers
    return obj, {}


def _read(chart: Chart, body: Any, headers: Mapping[str, str]) -> str:
    parts = [loc.read(body, headers) for loc in chart.spec.delivery.event_type]
    return ".".join(str(p) for p in parts)


def test_stream_lines_are_deliveries_except_one_malformed(chart_name: str) -> None:
    provider = chart_name
    path = STREAMS / f"{provider}.jsonl"
    assert path.is_file(), f"every bundled chart has a sample stream: {path}"
    chart = engine.load_chart(provider)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert 15 <= len(lines) <= 40
    malformed = 0
    invoices: set[str] = set()
    for number, line in enumerate(lines, 1):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            malformed += 1
            continue
        body, headers = _delivery(obj)
        assert isinstance(body, dict), f"line {number}: the body is not a JSON object"
        event_type = _read(chart, body, headers)
        assert event_type in chart.spec.events, f"line {number}: {event_type!r} is not mapped"
        spec = chart.spec.events[event_type]
        invoice = (spec.invoice_id or chart.spec.delivery.invoice_id).read(body, headers)
        if isinstance(invoice, str | int) and not isinstance(invoice, bool):
            invoices.add(str(invoice))
        elif not spec.invoice_optional:
            pytest.fail(f"line {number}: {event_type!r} has no invoice id")
    assert malformed == 1, f"exactly one malformed line, found {malformed}"
    assert 3 <= len(invoices) <= 6
    assert len(lines) > len(set(lines)), "at least one exact duplicate delivery"


def test_streams_readme_describes_every_stream() -> None:
    readme = (STREAMS / "README.md").read_text(encoding="utf-8")
    for path in sorted(STREAMS.glob("*.jsonl")):
        assert f"**{path.name}**" in readme, path.name
