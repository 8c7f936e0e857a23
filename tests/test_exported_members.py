"""``engine.__all__`` is the public API: exactly the public names the package exposes.

As httpx's ``tests/test_exported_members.py``: a name imported into ``engine/__init__.py`` but
left out of ``__all__`` (or listed but gone) fails here, so the list can't drift.
"""

from __future__ import annotations

import inspect
from types import ModuleType

import engine


def _public_names() -> set[str]:
    # Submodules become attributes of the package when imported (engine.chart, …); they are
    # reached as modules, not re-exported names. dir() includes the names loaded on first use.
    return {
        name
        for name in dir(engine)
        if not name.startswith("_") and not isinstance(getattr(engine, name), ModuleType)
    }


def test_all_is_exactly_the_public_names() -> None:
    assert set(engine.__all__) == _public_names()
    assert len(engine.__all__) == len(set(engine.__all__)), "a name is listed twice"


def test_every_exported_name_resolves_and_is_documented() -> None:
    for name in engine.__all__:
        value = getattr(engine, name)
        assert value.__module__.split(".")[0] == "engine", f"{name} is not engine's own"
        assert inspect.getdoc(value), f"engine.{name} has no docstring"


def test_the_design_documents_names_are_there() -> None:
    documented = {"available_charts", "load_chart", "lint", "Chart", "Engine", "EngineError"}
    assert documented <= set(engine.__all__)
    assert engine.__version__
