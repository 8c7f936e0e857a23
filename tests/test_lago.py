"""Lago's chart: a parallel `finalized` state (payment, overdue and dispute at once), tax
states before it, identity from the signed body, and its example stream.

Lago's facts are its open-source code's (getlago/lago-api): what each webhook carries, which
steps send none, how a retry resends the stored payload. The signature itself (hmac with the
algorithm header, and the jwt alternative) is tested with the other schemes, in
``test_verify.py``.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest
from _cli import apply_json
from click.testing import CliRunner

import engine
from engine import Engine, verify_signature
from engine.chart import Configuration
from engine.cli import main
from engine.runtime.delivery import body_bytes, read_delivery

STREAM = Path(__file__).resolve().parent.parent / "examples" / "streams" / "lago.jsonl"
DEMO_SECRET = "lago_demo_secret"

#: The regions' leaves, as a configuration names them.
PENDING = "finalized.payment.pending+finalized.overdue.no+finalized.dispute.none"
PAID = "finalized.payment.succeeded+finalized.overdue.no+finalized.dispute.none"


def _config(payment: str = "pending", overdue: str = "no", dispute: str = "none") -> str:
    return f"finalized.payment.{payment}+finalized.overdue.{overdue}+finalized.dispute.{dispute}"


@pytest.fixture(scope="module")
def chart() -> engine.Chart:
    return engine.load_chart("lago")


# ------------------------------------------------------------------------------ the chart


def test_the_chart_loads_and_lints_clean(chart: engine.Chart) -> None:
    assert engine.lint(chart) == []
    result = CliRunner().invoke(main, ["lint", "lago", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert (doc["errors"], doc["warnings"]) == (0, 0)


def test_finalized_is_three_regions_entered_at_their_initial_states(chart: engine.Chart) -> None:
    assert chart.tree.parallel == ("finalized",)
    assert chart.tree.children("finalized") == (
        "finalized.payment",
        "finalized.overdue",
        "finalized.dispute",
    )
    assert chart.initial_states == ["draft", PENDING]
    assert chart.check(["finalize"], start="draft") == PENDING
    # 3 * 2 * 2 configurations inside finalized, and the five plain states
    assert len(chart.states) == 12 + 5
    assert all(Configuration(c).within("finalized") for c in chart.states[3:15])


def test_yes_and_no_stay_state_names(chart: engine.Chart) -> None:
    """YAML 1.1 reads an unquoted yes/no as a boolean: the chart quotes them, and the loader
    would refuse a boolean state name."""
    assert chart.tree.children("finalized.overdue") == (
        "finalized.overdue.no",
        "finalized.overdue.yes",
    )


@pytest.mark.parametrize(
    ("triggers", "start", "state", "canonical"),
    [
        (["finalize"], "draft", PENDING, "open"),
        (["finalize", "pay"], "draft", PAID, "paid"),
        (["fail_payment", "retry_payment", "pay"], PENDING, PAID, "paid"),
        (["fail_payment", "become_overdue"], PENDING, _config("failed", "yes"), "open"),
        # Lago clears the overdue flag when the payment succeeds, and when a dispute is lost
        (["become_overdue", "pay"], PENDING, PAID, "paid"),
        (["become_overdue", "lose_dispute"], PENDING, _config(dispute="lost"), "open"),
        (["pay", "lose_dispute"], PENDING, _config("succeeded", dispute="lost"), "paid"),
        (["await_taxes", "fail_taxes", "retry_taxes", "finalize"], "draft", PENDING, "open"),
        (["await_taxes"], "draft", "pending", "draft"),
        (["await_taxes", "fail_taxes"], "draft", "failed", "draft"),
        (["void"], PENDING, "voided", "void"),
        (["pay", "void"], PENDING, "voided", "void"),  # any finalized invoice can be voided
        (["become_overdue", "lose_dispute", "void"], PENDING, "voided", "void"),
        (["delete"], "draft", "deleted", "void"),
    ],
)
def test_lifecycles(
    chart: engine.Chart, triggers: list[str], start: str, state: str, canonical: str
) -> None:
    assert chart.check(triggers, start=start) == state
    assert chart.canonical(state) == canonical


@pytest.mark.parametrize(
    ("state", "trigger"),
    [
        # a paid invoice is never un-paid: in arrival order a late "failed" would do it
        (PAID, "fail_payment"),
        (PAID, "retry_payment"),
        (_config(dispute="lost"), "lose_dispute"),
        ("draft", "void"),  # only a finalized invoice is voided
        ("pending", "delete"),  # only a draft is deleted
        ("failed", "finalize"),  # a failed tax computation is retried first
        ("voided", "lose_dispute"),  # voided is final
        ("deleted", "finalize"),
    ],
)
def test_what_lago_does_not_do_is_refused(chart: engine.Chart, state: str, trigger: str) -> None:
    with pytest.raises(engine.TransitionNotAllowed):
        chart.next_state(state, trigger)


def test_statuses_name_states_and_payment_statuses_name_the_payment_region(
    chart: engine.Chart,
) -> None:
    for status in ("draft", "pending", "failed", "voided", "deleted"):
        assert chart.state_for_status(status) == status
    assert chart.state_for_status("finalized") == "finalized"  # some configuration inside it
    region = "finalized.payment"
    for status in ("pending", "succeeded", "failed"):
        assert chart.state_for_status(status, region) == f"{region}.{status}"
    assert chart.state_for_status("paid", region) is None


# ------------------------------------------------------------------------------ deliveries


def _stream() -> list[dict[str, Any]]:
    lines = STREAM.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.endswith("}")]


def _first(event_type: str) -> tuple[dict[str, Any], dict[str, str]]:
    for line in _stream():
        body = json.loads(line["body"])
        if body["webhook_type"] == event_type:
            return body, line["headers"]
    raise AssertionError(f"no {event_type} in the stream")


def _sign(
    body: dict[str, Any], unique_key: str = "6f1d0c1e-0000-4000-8000-000000000001"
) -> tuple[bytes, dict[str, str]]:
    """A delivery as Lago sends it: compact JSON, signed as Webhook#hmac_signature does."""
    raw = json.dumps(body, separators=(",", ":")).encode()
    mac = hmac.new(DEMO_SECRET.encode(), raw, hashlib.sha256).digest()
    return raw, {
        "X-Lago-Signature": base64.b64encode(mac).decode(),
        "X-Lago-Signature-Algorithm": "hmac",
        "X-Lago-Unique-Key": unique_key,
    }


def test_each_event_reads_its_invoice_where_lago_puts_it(chart: engine.Chart) -> None:
    body, headers = _first("invoice.payment_dispute_lost")
    ev = read_delivery(chart, body, headers)
    assert ev.invoice_id == body["payment_dispute_lost"]["invoice"]["lago_id"]
    assert ev.status_state == "finalized"

    body, headers = _first("invoice.payment_failure")
    ev = read_delivery(chart, body, headers)
    assert ev.invoice_id == body["payment_provider_invoice_payment_error"]["lago_invoice_id"]
    assert ev.status_state is None  # an error object: no invoice, so no status

    body, headers = _first("invoice.payment_status_updated")
    ev = read_delivery(chart, body, headers)
    assert ev.status == body["invoice"]["payment_status"]
    assert ev.status_state == f"finalized.payment.{ev.status}"


def test_identity_is_the_signed_body_never_the_unique_key_header() -> None:
    """Lago's retries resend the stored payload: a duplicate, whatever X-Lago-Unique-Key says
    (the signature doesn't cover it). A new snapshot (updated_at) is a new event."""
    body, _ = _first("invoice.drafted")
    raw, headers = _sign(body)
    replayed = {**headers, "X-Lago-Unique-Key": "6f1d0c1e-0000-4000-8000-00000000beef"}
    verify_signature("lago", raw, replayed, DEMO_SECRET)  # still verifies
    later = copy.deepcopy(body)
    later["invoice"]["updated_at"] = "2024-07-01T00:00:07Z"
    with Engine(":memory:") as eng:
        first = eng.apply("lago", raw, headers)
        again = eng.apply("lago", raw, replayed)
        other = eng.apply("lago", *_sign(later))
    assert first.status == "applied"
    assert (again.status, again.event_id) == ("duplicate", first.event_id)
    assert other.status == "unchanged"  # the draft exists: a new event, that changes nothing
    assert other.event_id != first.event_id


def test_a_payment_update_before_the_invoice_is_adopted_in_its_region() -> None:
    body, _ = _first("invoice.payment_status_updated")
    body = copy.deepcopy(body)
    body["invoice"]["lago_id"] = "0f0f0f0f-0000-4000-8000-000000000001"
    body["invoice"]["payment_status"] = "failed"
    with Engine(":memory:") as eng:
        out = eng.apply("lago", *_sign(body))
        state = eng.state("lago", body["invoice"]["lago_id"])
    assert (out.status, out.adopted, out.to_state) == ("applied", True, _config("failed"))
    assert state is not None
    assert state.canonical == "open"


def test_a_late_payment_failure_never_unpays_an_invoice() -> None:
    paid, _ = _first("invoice.payment_status_updated")
    paid = copy.deepcopy(paid)
    paid["invoice"]["lago_id"] = "0f0f0f0f-0000-4000-8000-000000000002"
    failed = copy.deepcopy(paid)
    paid["invoice"]["payment_status"] = "succeeded"
    failed["invoice"]["payment_status"] = "failed"
    failed["invoice"]["updated_at"] = "2024-07-01T00:00:01Z"  # an older snapshot, delivered late
    with Engine(":memory:") as eng:
        assert eng.apply("lago", *_sign(paid)).to_state == PAID
        late = eng.apply("lago", *_sign(failed))
        state = eng.state("lago", paid["invoice"]["lago_id"])
    assert late.status == "rejected"
    assert not late.retryable
    assert state is not None
    assert (state.state, state.canonical) == (PAID, "paid")


# ------------------------------------------------------------------------ the example stream

#: Each line's outcome, the state it leaves its invoice in, and the trigger (or None).
EXPECTED: dict[int, tuple[str, str | None]] = {
    1: ("applied", "draft"),  # …4001 drafted
    2: ("unchanged", "draft"),  # ready to finalize
    3: ("applied", PENDING),  # …4002 one-off, born finalized
    4: ("applied", PENDING),  # …4001 invoice.created finalizes the draft
    5: ("unchanged", PENDING),  # …4002 payment_failure: an error object, informational
    6: ("applied", _config("failed")),  # …4002 payment failed
    7: ("unchanged", PENDING),  # …4001 PDF generated
    8: ("applied", PAID),  # …4001 paid
    9: ("applied", PENDING),  # …4003 finalized at once
    10: ("duplicate", None),  # …4001's payment webhook again (Lago's retry)
    11: ("applied", PAID),  # …4004 payment before its invoice.created: adopted
    12: ("applied", "voided"),  # …4003 voided
    13: ("rejected", "voided"),  # …4003 its earlier payment failure, delivered after the void
    14: ("unchanged", PAID),  # …4004 the late invoice.created
    15: ("applied", "draft"),  # …4005 drafted
    16: ("applied", "deleted"),  # …4005 deleted
    17: ("applied", _config("failed", "yes")),  # …4002 overdue
    18: ("applied", PAID),  # …4002 paid late: the overdue flag cleared
    19: ("applied", "failed"),  # …4006 first seen in a Salesforce resync, taxes failed
    20: ("applied", PENDING),  # …4006 finalized: failed -> pending inferred
    21: ("invalid", None),  # the truncated line
    22: ("applied", _config("succeeded", dispute="lost")),  # …4002 dispute lost
}

FINAL = {
    "01": (PAID, "paid"),
    "02": (_config("succeeded", dispute="lost"), "paid"),
    "03": ("voided", "void"),
    "04": (PAID, "paid"),
    "05": ("deleted", "void"),
    "06": (PENDING, "open"),
}


def test_the_example_stream_through_the_cli(tmp_path: Path) -> None:
    db = str(tmp_path / "lago.db")
    result = CliRunner().invoke(main, ["apply", "lago", "--example", "--db", db, "--json"])
    assert result.exit_code == 0, result.output
    records = apply_json(result.stdout).final()
    got = {}
    for line, record in records.items():
        after = record["to_state"] if record["status"] == "applied" else record["from_state"]
        got[line] = (record["status"], after)
    assert got == EXPECTED
    assert records[20]["inferred"] == [
        "retry_taxes: failed → pending",
        f"finalize: pending → {PENDING}",
    ]
    assert records[11]["adopted"]
    summary = apply_json(result.stdout).summary
    assert summary["counts"] == {
        "applied": 15,
        "unchanged": 4,
        "duplicate": 1,
        "rejected": 1,
        "invalid": 1,
    }

    with Engine(db) as eng:
        final = {i.invoice_id[-2:]: (i.state, i.canonical) for i in eng.invoices("lago")}
        assert final == FINAL
        paid = eng.invoices("lago", canonical="paid")
        assert sorted(i.invoice_id[-2:] for i in paid) == ["01", "02", "04"]
        lost = eng.invoices("lago", state="finalized.dispute.lost")
        assert [i.invoice_id[-2:] for i in lost] == ["02"]


def test_every_line_of_the_stream_is_signed_with_the_demo_secret() -> None:
    for line in _stream():
        verify_signature("lago", body_bytes(line["body"]), line["headers"], DEMO_SECRET)
