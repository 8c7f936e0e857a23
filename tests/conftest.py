"""Shared fixtures: every bundled chart, parametrized, so a new chart is tested with no new code."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from engine.chart import bundled_chart_dir

ROOT = Path(__file__).resolve().parent.parent
CHART_FILES = sorted(bundled_chart_dir().glob("*.yaml"))
CHART_NAMES = [p.stem for p in CHART_FILES]

# Hypothesis profiles: "ci" (the default: fast) and "thorough" (by hand:
# HYPOTHESIS_PROFILE=thorough pytest).
settings.register_profile(
    "ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "thorough", max_examples=2_000, deadline=None, suppress_health_check=list(HealthCheck)
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(params=CHART_FILES, ids=lambda p: p.name)
def chart_file(request: pytest.FixtureRequest) -> Path:
    """Each bundled chart file in turn."""
    path: Path = request.param
    return path


@pytest.fixture(params=CHART_NAMES)
def chart_name(request: pytest.FixtureRequest) -> str:
    """Each bundled chart's name in turn."""
    name: str = request.param
    return name
