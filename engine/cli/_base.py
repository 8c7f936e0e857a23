"""The click group and what every command shares: error handling, --json, --db, --chart-dir.

Library errors (:class:`~engine.errors.EngineError`) become ``Error: …`` on stderr with exit
code 1, never a traceback; usage errors stay click's (exit 2).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from ..errors import EngineError

F = TypeVar("F", bound=Callable[..., Any])


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EngineError as exc:
            raise click.ClickException(str(exc)) from exc


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="invoice-engine")
def main() -> None:
    """Keep invoices in a true, provable state while billing providers throw webhooks at it.

    Each provider's invoice lifecycle is a statechart (see `invoice-engine charts`); `apply`
    feeds webhook deliveries through it into a SQLite history that loses nothing.

    Example: invoice-engine demo
    """


def json_option(f: F) -> F:
    """``--json``: print exactly one JSON document on stdout instead of tables."""
    return click.option(
        "--json", "as_json", is_flag=True, help="Print one JSON document instead of text."
    )(f)


def chart_dir_option(f: F) -> F:
    """``--chart-dir``: a folder of the user's own charts, beside the bundled ones."""
    return click.option(
        "--chart-dir",
        type=click.Path(exists=True, file_okay=False),
        envvar="INVOICE_ENGINE_CHART_DIR",
        help="A folder of your own charts (*.yaml), used beside the bundled ones.",
    )(f)


def db_option(f: F) -> F:
    """``--db``: the SQLite file (``INVOICE_ENGINE_DB``, default ``invoices.db``)."""
    return click.option(
        "--db",
        "db_path",
        default="invoices.db",
        show_default=True,
        envvar="INVOICE_ENGINE_DB",
        help="SQLite database file (or :memory:).",
    )(f)


def emit_json(data: Any) -> None:
    """One JSON document on stdout."""
    json.dump(data, sys.stdout, indent=2, default=str, ensure_ascii=False)
    sys.stdout.write("\n")


def table(rows: list[list[str]], headers: list[str]) -> str:
    """A plain aligned text table (no dependency; rows are short)."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [line.format(*headers).rstrip(), line.format(*("-" * w for w in widths)).rstrip()]
    out.extend(line.format(*row).rstrip() for row in rows)
    return "\n".join(out)
