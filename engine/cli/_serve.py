"""``invoice-engine serve``: the webhook receiver under uvicorn."""

from __future__ import annotations

import importlib.util
import logging
import sys

import click

from ..errors import EngineError
from ._base import chart_dir_option, db_option, main

__all__: list[str] = []

_EXTRA = "pip install 'invoice-engine[server]'"


def _need_server_extra() -> None:
    """Fail with what to install when the server's packages are missing."""
    missing = [m for m in ("starlette", "uvicorn") if importlib.util.find_spec(m) is None]
    if missing:
        raise click.ClickException(
            f"serve needs {' and '.join(missing)}, which are not installed: {_EXTRA}"
        )


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to listen on (0.0.0.0: every interface).")  # fmt: skip
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on (0: any free port, printed at start).")  # fmt: skip
@db_option
@chart_dir_option
@click.option("--secrets-file", type=click.Path(exists=True, dir_okay=False),
              envvar="INVOICE_ENGINE_SECRETS_FILE", show_envvar=True,
              help="A file of INVOICE_ENGINE_SECRET_<PROVIDER>=secret[,secret…] lines, "
              "read beside the environment.")  # fmt: skip
@click.option("--insecure-accept-unsigned", "unsigned", multiple=True, metavar="PROVIDER",
              help="Take PROVIDER's deliveries WITHOUT checking a signature (repeatable). "
              "Anyone who can reach the server can then change those invoices.")  # fmt: skip
@click.option("--max-connections", default=1024, show_default=True, type=click.IntRange(1),
              help="Connections at once, at most; more are answered 503.")  # fmt: skip
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]),
              help="How much the server logs (one line per delivery at info).")  # fmt: skip
def serve(
    host: str,
    port: int,
    db_path: str,
    chart_dir: str | None,
    secrets_file: str | None,
    unsigned: tuple[str, ...],
    max_connections: int,
    log_level: str,
) -> None:
    """Receive webhooks over HTTP: verify, apply, answer only once recorded.

    Serves POST /webhooks/PROVIDER for each provider with a secret in the environment
    (INVOICE_ENGINE_SECRET_STRIPE=whsec_…, several comma-separated while rotating) or in
    --secrets-file, and GET /healthz and /metrics (Prometheus). A 2xx is sent only after the
    delivery is committed to the database (synchronous=FULL: it survives power loss);
    concurrent deliveries share one transaction. The status codes: the README, "Serve webhooks
    over HTTP".

    Example: invoice-engine serve --port 8000
    """
    _need_server_extra()
    import uvicorn

    from ..runtime.verify import Secrets
    from ..server import create_app
    from ..server._http import http_options

    logging.basicConfig(
        level=log_level.upper(), stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )  # fmt: skip
    try:
        secrets = Secrets.load(secrets_file)
        app = create_app(db_path, chart_dir=chart_dir, secrets=secrets, accept_unsigned=unsigned)
    except EngineError as exc:
        raise click.ClickException(str(exc)) from None
    uvicorn.run(
        app, host=host, port=port, log_level=log_level, access_log=False,
        server_header=False, timeout_graceful_shutdown=30, limit_concurrency=max_connections + 1,
        **http_options(),
    )  # fmt: skip
