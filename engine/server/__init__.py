"""The webhook receiver: an ASGI application (Starlette) and what ``invoice-engine serve`` runs.

::

    from engine.server import create_app
    app = create_app("invoices.db")          # secrets from INVOICE_ENGINE_SECRET_<PROVIDER>

Mount it in your own app (``app.mount("/billing", create_app(...))``) or run it with any ASGI
server. Needs the ``server`` extra: ``pip install 'invoice-engine[server]'``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path

from starlette.applications import Starlette

from ..chart import Chart, available_charts
from ..chart._signature import SharedSecret
from ..errors import EngineError, UnknownProvider
from ..runtime._secrets import env_name
from ..runtime.engine import Engine
from ..runtime.verify import Secrets, SecretsLike, check_secrets, describe_signature
from ._app import Door, Receiver, status_code
from ._in_clear import in_body_forms as _in_body

__all__ = ["create_app", "doors", "status_code"]

log = logging.getLogger("engine.server")


def doors(
    engine: Engine,
    secrets: SecretsLike | None = None,
    accept_unsigned: Iterable[str] = (),
) -> dict[str, Door]:
    """Which providers are served, and how: each with a secret is verified; each named in
    ``accept_unsigned`` is taken unsigned; every other is refused. Every served provider's
    chart is loaded here, so a broken one stops the start, not a delivery.

    Raises:
        EngineError: nothing would be served; a provider has both a secret and an unsigned
            opening; a provider with a secret has a chart that declares no signature scheme.
        UnknownProvider: ``accept_unsigned`` or a secret names no chart.
        ChartError: a served provider's chart is broken.
    """
    if isinstance(accept_unsigned, str):
        raise EngineError(
            f"accept_unsigned={accept_unsigned!r}: give a list of providers ([{accept_unsigned!r}])"
        )
    if secrets is not None and not isinstance(secrets, Secrets | Mapping):
        raise EngineError(
            f"secrets is a {type(secrets).__name__}: give a Secrets or a mapping of provider to "
            "its secrets ({'stripe': ['whsec_…']})"
        )
    found = Secrets.from_env() if secrets is None else _secrets(secrets)
    known = available_charts(engine.chart_dir)
    served: dict[str, Door] = {}
    for provider in sorted(found.providers()):
        if provider not in known:  # a misspelt variable must not leave a provider unserved
            raise UnknownProvider(
                provider, known, hint=f"a secret is set for it ({env_name(provider)})"
            )
        chart = engine.chart(provider)
        if chart.spec.signature is None:
            raise EngineError(
                f"a secret is set for {provider!r}, but its chart declares no `signature:` "
                "scheme to check it with; add one to the chart, or open the provider unsigned"
            )
        keys = found.secrets(provider)
        check_secrets(chart, keys)  # a secret its scheme can't use stops the start
        in_clear = isinstance(chart.spec.signature, SharedSecret)
        served[provider] = Door(
            provider, keys, _arrival_ordered(chart), _in_body(keys) if in_clear else ()
        )
    for provider in accept_unsigned:
        if provider not in known:
            raise UnknownProvider(provider, known)
        if provider in served:
            raise EngineError(f"{provider!r} has a secret and is also opened unsigned; choose one")
        served[provider] = Door(provider, None, _arrival_ordered(engine.chart(provider)))
    if not served:
        raise EngineError(
            "no provider is served: set a secret, e.g. INVOICE_ENGINE_SECRET_STRIPE=whsec_…"
            " (several comma-separated during a rotation), or name a secrets file; charts: "
            + ", ".join(known)
        )
    return served


def _arrival_ordered(chart: Chart) -> bool:
    return chart.spec.delivery.occurred_at is None


def create_app(
    db: str | Path = "invoices.db",
    *,
    chart_dir: str | Path | None = None,
    secrets: SecretsLike | None = None,
    accept_unsigned: Iterable[str] = (),
) -> Starlette:
    """The receiver as a Starlette application.

    Args:
        db: the database (opened with SQLite's ``synchronous=FULL``: a 2xx survives power loss).
        chart_dir: a folder of your own charts, beside the bundled ones.
        secrets: each provider's secrets (several during a rotation); default: the
            ``INVOICE_ENGINE_SECRET_<PROVIDER>`` environment variables.
        accept_unsigned: providers whose deliveries are taken without a signature. Anyone who
            can reach the server can then change their invoices: use only behind a gate of
            your own.

    Raises:
        EngineError: see :func:`doors`; :class:`~engine.StoreError` if ``db`` can't be opened.
    """

    if str(db).strip() == ":memory:":
        raise EngineError(
            "db=':memory:' keeps nothing: every acknowledged delivery would be lost when the "
            "server stops; give a database file (or a PostgreSQL URL)"
        )

    def open_engine() -> Engine:
        return Engine(db, chart_dir=chart_dir, synchronous="FULL")

    engine = open_engine()
    try:
        served = doors(engine, secrets, accept_unsigned)
        for provider in sorted(served):
            door = served[provider]
            if door.secrets is None:
                log.warning("serving %s UNSIGNED: anyone who can reach this server can change "
                            "its invoices", provider)  # fmt: skip
            else:
                how = describe_signature(engine.chart(provider))
                n = len(door.secrets)
                log.info("serving %s: %s, %d secret%s", provider, how, n, "" if n == 1 else "s")
        known = frozenset(available_charts(chart_dir))
        _warn_broken(engine, known - served.keys())
        receiver = Receiver(open_engine, served, known, engine=engine)
    except BaseException:
        engine.close()
        raise
    return receiver.app()


def _secrets(secrets: SecretsLike) -> Secrets:
    return secrets if isinstance(secrets, Secrets) else Secrets(secrets)


def _warn_broken(engine: Engine, unserved: Iterable[str]) -> None:
    """Say which of the charts not served are broken (they would be refused if opened)."""
    for provider in sorted(unserved):
        try:
            engine.chart(provider)
        except EngineError as exc:
            log.warning("the %s chart is broken (not served): %s", provider, exc)
