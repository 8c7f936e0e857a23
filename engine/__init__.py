"""invoice-engine: invoice lifecycles as statecharts, and a webhook engine that keeps them true.

The public API is this list; everything else is private.
"""

import typing as _typing  # private: __all__ stays exactly the public names

from .chart import Chart, ChartSpec, Finding, available_charts, lint, load_chart
from .errors import (
    ChartError,
    DeliveryError,
    DiagramError,
    EngineError,
    StoreError,
    TransitionNotAllowed,
    UnknownProvider,
    UnknownState,
    UnknownTrigger,
)
from .models import InvoiceState, Mismatch, Outcome, ReplayReport
from .runtime.delivery import Event, read_delivery

__all__ = [
    "Chart",
    "ChartError",
    "ChartSpec",
    "DeliveryError",
    "DiagramError",
    "Engine",
    "EngineError",
    "Event",
    "Finding",
    "InvoiceState",
    "Mismatch",
    "Outcome",
    "ReplayReport",
    "StoreError",
    "TransitionNotAllowed",
    "UnknownProvider",
    "UnknownState",
    "UnknownTrigger",
    "available_charts",
    "lint",
    "load_chart",
    "read_delivery",
]

__version__ = "0.1.0"

# Engine (SQLite) and diagrams (renderers) load on first use: a CLI command that only reads a
# chart should not pay for them at start-up. Type checkers see plain imports (mypy needs the
# spelling `typing.TYPE_CHECKING`; an alias would show it the __getattr__, typing every name Any).
if _typing.TYPE_CHECKING:
    from . import diagrams as diagrams  # mermaid, dot/svg/png, scxml, xstate
    from .runtime.engine import Engine as Engine
else:

    def __getattr__(name: str) -> _typing.Any:
        if name == "Engine":
            from .runtime.engine import Engine

            globals()["Engine"] = Engine
            return Engine
        if name == "diagrams":
            # not `from . import diagrams`: that asks this __getattr__ again, forever
            import importlib

            return importlib.import_module(f"{__name__}.diagrams")
        raise AttributeError(f"module 'engine' has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted({*globals(), "Engine", "diagrams"})
