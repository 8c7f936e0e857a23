"""invoice-engine: invoice lifecycles as statecharts, and a webhook engine that keeps them true.

The public API is this list; everything else is private.
"""

from .chart import ChartSpec
from .errors import (
    ChartError,
    DeliveryError,
    EngineError,
    StoreError,
    TransitionNotAllowed,
    UnknownProvider,
    UnknownState,
    UnknownTrigger,
)
from .machine import Chart, available_charts, load_chart

__all__ = [
    "Chart",
    "ChartError",
    "ChartSpec",
    "DeliveryError",
    "EngineError",
    "StoreError",
    "TransitionNotAllowed",
    "UnknownProvider",
    "UnknownState",
    "UnknownTrigger",
    "available_charts",
    "load_chart",
]

__version__ = "0.1.0"
