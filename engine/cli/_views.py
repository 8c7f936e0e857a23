"""The operator's views of the record: invoices, dead-letters, drift.

Like the commands in :mod:`engine.cli._read`, they open the database read-only: nothing is
created, upgraded or written, and a missing file is ``Error: no database at …``. Each prints a
table, or with ``--json`` one JSON document (a list of records).
"""

from __future__ import annotations

from datetime import datetime

import click

from ..models import Drift
from ._base import (
    chart_arg,
    chart_dir_option,
    db_option,
    emit_json,
    json_option,
    main,
    open_engine,
    valid_text,
)
from ._text import clip, plural, table, visible

__all__: list[str] = []


def _time(at: datetime | None) -> str:
    return "-" if at is None else at.strftime("%Y-%m-%d %H:%M:%S")


_COUNT = click.IntRange(min=1, max=2**63 - 1)  # what a database integer holds


@main.command()
@click.argument("provider", callback=valid_text, required=False)
@click.option(
    "--state",
    callback=valid_text,
    help="Only invoices in this state of the chart: a leaf (paid), a configuration "
    "(finalized.payment.failed+finalized.overdue.yes+finalized.dispute.none, its leaves in any "
    "order), or a state with every configuration inside it: a compound state (ChargeOver's "
    "open), a parallel state or one region's state (Lago's finalized.overdue.yes).",
)
@click.option(
    "--canonical",
    callback=valid_text,
    help="Only invoices in this canonical state (draft, open, paid, void, …): the one "
    "vocabulary every provider's chart maps to.",
)
@click.option("--limit", type=_COUNT, metavar="N", help="At most N invoices (default: all).")
@db_option
@chart_dir_option
@json_option
def invoices(
    provider: str | None,
    state: str | None,
    canonical: str | None,
    limit: int | None,
    db_path: str,
    chart_dir: str | None,
    as_json: bool,
) -> None:
    """List invoices and their states, by provider and id.

    PROVIDER (a chart name or a path to its YAML file) limits the list to that provider's
    invoices. --state and --canonical must name states of its chart (without PROVIDER, of
    any chart); an unknown one is an error that lists those there are. Invoices only seen
    through rejected events have no state and are not listed (see `invoice-engine
    dead-letters`). Reads the database without writing to it; "no invoices" (exit 0) when
    none match.

    Example: invoice-engine invoices stripe --canonical open
    """
    name, charts = chart_arg(provider, chart_dir) if provider is not None else (None, {})
    with open_engine(db_path, chart_dir, readonly=True, charts=charts) as eng:
        found = list(eng.invoices(name, state=state, canonical=canonical, limit=limit))
    if as_json:
        emit_json([i.model_dump(mode="json") for i in found])
    elif not found:
        click.echo("no invoices")
    else:
        rows = [
            [i.provider, i.invoice_id, i.state, i.canonical, str(i.version), _time(i.updated_at)]
            for i in found
        ]
        click.echo(table(rows, ["provider", "invoice", "state", "canonical", "version", "updated"]))


@main.command("dead-letters")
@click.argument("provider", callback=valid_text, required=False)
@click.option("--limit", type=_COUNT, metavar="N", help="At most N, oldest first.")
@db_option
@chart_dir_option
@json_option
def dead_letters(
    provider: str | None, limit: int | None, db_path: str, chart_dir: str | None, as_json: bool
) -> None:
    """List deliveries still waiting for a redelivery: rejected, but retryable.

    Each is an event that counts (not a duplicate, not a superseded attempt) that was illegal
    from its invoice's state when decided, though a delivery still to come could make it legal:
    an invoice first seen through an event that does not create it, a step that came before the
    one it follows. It leaves this list once a delivery makes it legal (on providers without
    event times, when the provider retries it). Oldest (by seq) first; PROVIDER (a chart name
    or a path) limits it to one provider. Exit 0 whatever is found. Reads the database
    without writing to it.

    Example: invoice-engine dead-letters stripe
    """
    name, charts = chart_arg(provider, chart_dir) if provider is not None else (None, {})
    with open_engine(db_path, chart_dir, readonly=True, charts=charts) as eng:
        found = eng.dead_letters(name, limit=limit)
    if as_json:
        emit_json([o.model_dump(mode="json") for o in found])
    elif not found:
        click.echo("no dead letters")
    else:
        rows = [
            [f"#{o.seq}", o.provider, o.invoice_id or "-", o.event_id or "-",
             o.event_type or "?", _time(o.received_at), clip(o.reason, 80)]
            for o in found
        ]  # fmt: skip
        headers = ["seq", "provider", "invoice", "event id", "type", "received", "reason"]
        click.echo(table(rows, headers))


def _said(d: Drift) -> str:
    """The provider's status, and the state it names when that is spelt otherwise."""
    if d.snapshot_state is None:
        return f"{d.snapshot} (no state)"
    return d.snapshot if d.snapshot_state == d.snapshot else f"{d.snapshot} (= {d.snapshot_state})"


@main.command()
@click.argument("provider", callback=valid_text, required=False)
@db_option
@chart_dir_option
@json_option
def drift(provider: str | None, db_path: str, chart_dir: str | None, as_json: bool) -> None:
    """List invoices whose provider last reported a status the engine does not hold.

    For each invoice with a state, the status snapshot of the last event (in the order events
    count) that carried one is read as a state through the chart (its delivery.statuses) and
    compared with the state that event left the invoice in. A snapshot from before the event's
    own step is no disagreement (Stripe's invoice.deleted says draft). Drift is typically a
    move the chart forbids (paid -> void), recorded as rejected: look at the invoice's
    history. PROVIDER (a chart name or a path) limits it to one provider.

    Exit 1 when any invoice drifts (for a cron job or a monitor), 0 when none does. Reads the
    database without writing to it.

    Example: invoice-engine drift stripe
    """
    name, charts = chart_arg(provider, chart_dir) if provider is not None else (None, {})
    with open_engine(db_path, chart_dir, readonly=True, charts=charts) as eng:
        found = eng.drift(name)
    if as_json:
        emit_json([d.model_dump(mode="json") for d in found])
    elif not found:
        click.echo("no drift")
    else:
        rows = [
            [d.provider, d.invoice_id, d.state, _said(d), f"#{d.event_seq}",
             d.event_type or "?", _time(d.occurred_at), d.outcome]
            for d in found
        ]  # fmt: skip
        headers = ["provider", "invoice", "engine", "provider says", "seq", "event", "occurred"]
        click.echo(table(rows, [*headers, "outcome"]))
    if found:
        one = found[0]
        see = f"{one.provider} {one.invoice_id}" if len(found) == 1 else "PROVIDER ID"
        raise click.ClickException(
            f"found drift on {plural(len(found), 'invoice')}: the provider's last status "
            f"disagrees with the engine's state (see `invoice-engine history {visible(see)}`)"
        )
