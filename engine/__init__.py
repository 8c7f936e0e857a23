"""invoice-engine: invoice lifecycles as statecharts, and a webhook engine that keeps them true.

A *chart* (a YAML file; seven providers' are bundled) says which states an invoice of one billing
provider can be in, which webhook events move it where, and how to read those webhooks. An
:class:`Engine` applies deliveries to invoices through it and records every event in SQLite.

Quick start::

    import engine
    chart = engine.load_chart("stripe")
    chart.next_state("draft", "finalize")          # 'open'
    with engine.Engine("invoices.db") as eng:
        outcome = eng.apply("stripe", body)        # an Outcome: applied, rejected, ...

The public API is the list below (``engine.__all__``); every other module is private.

Charts:
    load_chart -- a chart by bundled name (``"stripe"``), by name in a folder, or by path.
    available_charts -- the names of the bundled charts (and of a folder's).
    Chart -- a loaded chart: ``next_state``, ``may``, ``allowed_triggers``, ``check``, ...
    Configuration -- an invoice's state: its active leaves, one per region of a parallel
        state (a ``str``: ``draft``, or ``finalized.payment.pending+finalized.overdue.no``).
    ChartSpec -- a chart as data (the YAML's shape), to build one in code.
    lint -- check a chart's structure; returns Findings.
    Finding -- one problem lint found.

Webhooks and the record:
    Engine -- applies deliveries to invoices and records everything in SQLite or PostgreSQL.
    Prepared -- a delivery read by Engine.prepare, for Engine.commit (group commit).
    Outcome -- what happened to one delivery (applied, unchanged, duplicate, rejected, ...).
    InvoiceState -- an invoice's current state as the engine knows it.
    Drift -- an invoice whose provider last reported a status the engine does not hold.
    Change -- one entry of the changes feed (Engine.changes): an invoice's state moved.
    Subscriber -- hands each feed entry to your function, at least once, resuming after restarts.
    ReplayReport -- what rebuilding every invoice from the events table found.
    Mismatch -- one difference a replay found.
    Event -- one delivery, read through a chart.
    read_delivery -- read one delivery without applying it.
    verify_signature -- check a delivery's signature, as its chart's `signature:` says.
    Secrets -- webhook secrets by provider, from INVOICE_ENGINE_SECRET_* or a file.

Errors (all are EngineError):
    EngineError -- the root of every error raised on purpose.
    ChartError -- a chart file is broken; lists every problem, with lines.
    ChartProblem -- one problem of a broken chart: file, line, column, where, what.
    UnknownProvider -- no chart by that name; lists those there are.
    UnknownState -- a state the chart does not have; lists those it has.
    UnknownTrigger -- a trigger the chart does not have; lists those it has.
    TransitionNotAllowed -- a trigger illegal from a state; lists what is allowed.
    DeliveryError -- a delivery that can't be read; names the path and value.
    SignatureError -- a delivery not shown to be the provider's; says why, never a secret.
    SignatureReason -- the type of SignatureError.reason: no_match, missing_header, ...
    SecretsError -- secrets can't be read (a bad line of the secrets file, ...).
    DiagramError -- a diagram can't be drawn (Graphviz missing or failed).
    StoreError -- the SQLite store can't be opened or used.

Submodules:
    engine.diagrams -- Mermaid, Graphviz DOT/SVG/PNG, SCXML and XState of a chart.
    engine.testing -- hypothesis strategies and a model-based test of your code against
        a chart (``pip install 'invoice-engine[testing]'``).
    engine.chart -- the chart's state tree and parts, for tools that read charts.

``help(engine.Engine)``, ``help(engine.Chart)`` and so on document each in full.
"""

import typing as _typing  # private: __all__ stays exactly the public names

from .chart import Chart, ChartSpec, Configuration, Finding, available_charts, lint, load_chart
from .errors import (
    ChartError,
    ChartProblem,
    DeliveryError,
    DiagramError,
    EngineError,
    SecretsError,
    SignatureError,
    SignatureReason,
    StoreError,
    TransitionNotAllowed,
    UnknownProvider,
    UnknownState,
    UnknownTrigger,
)
from .models import Change, Drift, InvoiceState, Mismatch, Outcome, ReplayReport
from .runtime.delivery import Event, read_delivery
from .runtime.verify import Secrets, verify_signature

__all__ = [
    "Change",
    "Chart",
    "ChartError",
    "ChartProblem",
    "ChartSpec",
    "Configuration",
    "DeliveryError",
    "DiagramError",
    "Drift",
    "Engine",
    "EngineError",
    "Event",
    "Finding",
    "InvoiceState",
    "Mismatch",
    "Outcome",
    "Prepared",
    "ReplayReport",
    "Secrets",
    "SecretsError",
    "SignatureError",
    "SignatureReason",
    "StoreError",
    "Subscriber",
    "TransitionNotAllowed",
    "UnknownProvider",
    "UnknownState",
    "UnknownTrigger",
    "available_charts",
    "lint",
    "load_chart",
    "read_delivery",
    "verify_signature",
]

__version__ = "0.1.0"

# Engine (SQLite) and diagrams (renderers) load on first use: a CLI command that only reads a
# chart should not pay for them at start-up. Type checkers see plain imports (mypy needs the
# spelling `typing.TYPE_CHECKING`; an alias would show it the __getattr__, typing every name Any).
if _typing.TYPE_CHECKING:
    from . import diagrams as diagrams  # mermaid, dot/svg/png, scxml, xstate
    from .runtime.engine import Engine as Engine
    from .runtime.engine import Prepared as Prepared
    from .runtime.feed import Subscriber as Subscriber
else:

    def __getattr__(name: str) -> _typing.Any:
        if name in ("Engine", "Prepared"):
            from .runtime import engine as _engine

            globals()[name] = getattr(_engine, name)
            return globals()[name]
        if name == "Subscriber":
            from .runtime import feed as _feed

            globals()[name] = _feed.Subscriber
            return _feed.Subscriber
        if name == "diagrams":
            # not `from . import diagrams`: that asks this __getattr__ again, forever
            import importlib

            return importlib.import_module(f"{__name__}.diagrams")
        raise AttributeError(f"module 'engine' has no attribute {name!r}")

    def __dir__() -> list[str]:
        # The public names and the public submodules: what a user (and tab completion) wants
        # from dir(engine), not this module's imports and helpers.
        return sorted({*__all__, "__version__", "chart", "diagrams", "errors", "models"})
