"""Charts: the YAML format (:mod:`.spec`), loading it (:mod:`.load`), guard and path expressions
(:mod:`.expr`), the state tree (:mod:`.tree`), the compiled :class:`Chart` over the shared
``transitions`` machine (:mod:`.compiled`) and lint (:mod:`.lint`).

The compiled :class:`Chart` is the one reader of the state tree: its :attr:`Chart.tree` (a
:class:`StateTree`) is what everything else (lint, diagrams, the testing helpers, the CLI) asks,
never the spec, for leaves, regions, configurations, initial children, canonical states and
what ``*`` expands to. An invoice's state is a :class:`Configuration` (:mod:`.configuration`).
"""

from .compiled import CandidateStep, Chart
from .configuration import Configuration
from .lint import Finding, lint
from .load import available_charts, bundled_chart_dir, load_chart, load_yaml, parse_chart
from .spec import CANONICAL_STATES, CanonicalRule, ChartSpec, EventSpec, StateSpec
from .tree import StateNode, StateTree

__all__ = [
    "CANONICAL_STATES",
    "CandidateStep",
    "CanonicalRule",
    "Chart",
    "ChartSpec",
    "Configuration",
    "EventSpec",
    "Finding",
    "StateNode",
    "StateSpec",
    "StateTree",
    "available_charts",
    "bundled_chart_dir",
    "lint",
    "load_chart",
    "load_yaml",
    "parse_chart",
]
