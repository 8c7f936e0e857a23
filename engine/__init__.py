"""invoice-engine: invoice lifecycles as statecharts, and a webhook engine that keeps them true.

The public API is this list; everything else is private.
"""

from . import diagrams as diagrams  # engine.diagrams: mermaid, dot/svg/png, scxml, xstate
from .chart import ChartSpec
from .deliveries import Event, read_delivery
from .engine import Engine
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
from .lint import Finding, lint
from .machine import Chart, available_charts, load_chart
from .models import InvoiceState, Mismatch, Outcome, ReplayReport

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
