"""``engine.__all__`` is the public API: exactly the public names the package exposes.

As httpx's ``tests/test_exported_members.py``: a name imported into ``engine/__init__.py`` but
left out of ``__all__`` (or listed but gone) fails here, so the list can't drift.
"""

from __future__ import annotations

import inspect
import pydoc
import typing
from types import ModuleType

import engine


def _public_names() -> set[str]:
    # Submodules become attributes of the package when imported (engine.chart, …); they are
    # reached as modules, not re-exported names. dir() includes the names loaded on first use;
    # vars() is what engine/__init__.py really binds (dir() is kept to the public names).
    return {
        name
        for name in {*vars(engine), *dir(engine)}
        if not name.startswith("_") and not isinstance(getattr(engine, name), ModuleType)
    }


def test_all_is_exactly_the_public_names() -> None:
    assert set(engine.__all__) == _public_names()
    assert len(engine.__all__) == len(set(engine.__all__)), "a name is listed twice"


def test_every_exported_name_resolves_and_is_documented() -> None:
    for name in engine.__all__:
        value = getattr(engine, name)
        if typing.get_origin(value) is typing.Literal:
            # A type alias (SignatureReason) has no docstring or module of its own: it is
            # engine.errors', documented there by a `#:` comment naming each of its values.
            assert value is getattr(engine.errors, name), f"{name} is not engine.errors'"
            source = inspect.getsource(engine.errors)
            comment = source.split(f"\n{name} = ", 1)[0].rsplit("\n\n", 1)[-1]
            assert comment.startswith("#: "), f"engine.errors.{name} has no #: comment"
            for literal in typing.get_args(value):
                assert f"``{literal}``" in comment, f"{name}: {literal!r} is not documented"
            continue
        assert value.__module__.split(".")[0] == "engine", f"{name} is not engine's own"
        assert inspect.getdoc(value), f"engine.{name} has no docstring"


def test_the_design_documents_names_are_there() -> None:
    documented = {"available_charts", "load_chart", "lint", "Chart", "Engine", "EngineError"}
    assert documented <= set(engine.__all__)
    assert engine.__version__


def test_dir_is_the_public_names_and_submodules_only() -> None:
    """``dir(engine)`` (tab completion, ``inspect.getmembers``) shows what a user may use."""
    names = dir(engine)
    assert set(engine.__all__) <= set(names)
    private = [n for n in names if n.startswith("_") and n != "__version__"]
    assert private == [], private
    modules = {n for n in names if isinstance(getattr(engine, n), ModuleType)}
    assert modules == {"chart", "diagrams", "errors", "models"}
    assert len(names) <= len(engine.__all__) + 5


def test_help_opens_with_the_public_list_one_line_each() -> None:
    """``help(engine)`` starts with the module docstring: every public name, with a line on
    what it is, before pydoc's own listing of each class in full."""
    text = pydoc.plain(pydoc.render_doc(engine))
    head = text.split("\nCLASSES\n", 1)[0]
    assert len(head.splitlines()) < 150, len(head.splitlines())
    doc = inspect.getdoc(engine) or ""
    for name in engine.__all__:
        lines = [line for line in doc.splitlines() if line.strip().startswith(f"{name} -- ")]
        assert len(lines) == 1, f"engine.{name} is not listed once in engine's docstring"
    for module in ("engine.diagrams", "engine.testing", "engine.chart"):
        assert f"{module} -- " in doc
    assert "pydantic" not in head  # the opening is ours, not pydantic's internals
