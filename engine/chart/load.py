"""Loading charts: safe YAML, the meaning check, and finding charts by name.

A chart is validated twice. First its *structure*, by the pydantic models of
:mod:`engine.chart.spec` (the same models give ``invoice-engine schema``). Then its *meaning*,
by :func:`_check_meaning`: the state tree must be one (:class:`~engine.chart.tree.StateTree`
checks it as it is built), the initial states, every source and dest, every trigger named by the
delivery map and every status mapping must exist; every state must have a canonical lifecycle
state. A chart file must be named after its provider (``stripe.yaml`` says ``provider:
stripe``). Last, the chart's error-level lint findings are refused
(:func:`~engine.chart.lint.enforce`): a chart that lint says is wrong does not load. Either
way a broken chart raises :class:`~engine.errors.ChartError` listing every problem of the
first stage that has any (structure, then name and meaning, then lint), each with the file, the
line and column, the state or transition concerned by name and the place inside the chart
(``state 'deleted' at states[6].final``), the value found and, for a misspelled key or name,
the one probably meant.

YAML is read safely by :mod:`engine.chart._yaml` (``on``/``off``/``yes``/``no`` stay strings,
duplicate keys are refused), which also notes where every value and key starts
(:class:`~engine.chart._yaml.Marks`): that is how a problem found in the parsed chart is given
its line.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import ChartError, ChartProblem, UnknownProvider
from ._messages import (
    clean_loc,
    key_path,
    locate,
    meant_key,
    parse_location,
    pydantic_problem,
    subject,
    unknown,
)
from ._yaml import Marks, load_yaml, parse_yaml
from .compiled import Chart
from .lint import enforce
from .spec import ChartSpec
from .tree import ANY_SOURCE, StateTree

__all__ = [
    "available_charts",
    "bundled_chart_dir",
    "load_chart",
    "load_yaml",
    "parse_chart",
    "read_chart_file",
]

# --------------------------------------------------------------------------------- placing


def _placed(
    exc: ChartError, data: Any, marks: Marks | None, *, keys: frozenset[int] = frozenset()
) -> ChartError:
    """``exc`` with each problem's line and column (from ``marks``) and subject (from
    ``data``) filled in where it has none, in file order. ``keys``: the indexes of problems
    about a key itself (an unexpected key), placed at the key rather than its value."""
    problems: list[ChartProblem] = []
    for i, p in enumerate(exc.problems):
        path = parse_location(p.location)
        if path is not None:
            if p.line is None and marks is not None and (at := marks.find(path, key=i in keys)):
                p = replace(p, line=at[0], column=at[1])
            named = "" if p.subject else subject(path, data)
            if named and named not in p.problem:
                p = replace(p, subject=named)
        problems.append(p)
    problems.sort(key=lambda p: (p.line is None, p.line or 0, p.column or 0))
    return ChartError.of(problems)


# --------------------------------------------------------------------------------- meaning


def _check_meaning(spec: ChartSpec, source: str) -> None:
    """Every name the chart uses must exist; raise every problem found, in chart order."""
    tree = StateTree(spec.states, source)  # the tree's own rules, raised as it is built
    names = list(tree.names)
    leaves = list(tree.leaves)
    problems: list[ChartProblem] = []

    def problem(location: str, text: str) -> None:
        problems.append(ChartProblem(source=source, location=location, problem=text))

    def state(name: str, loc: str) -> None:
        if name not in tree:
            problem(loc, unknown("state", name, names))

    if not spec.initial:
        problem("initial", f"needs at least 1 state, got none; states are: {', '.join(names)}")
    for i, name in enumerate(spec.initial):
        state(name, f"initial[{i}]" if len(spec.initial) > 1 else "initial")
    triggers: list[str] = []
    for i, t in enumerate(spec.transitions):
        for j, src in enumerate(t.source):
            if src != ANY_SOURCE:
                state(src, f"transitions[{i}].source" + (f"[{j}]" if len(t.source) > 1 else ""))
        if t.dest is not None:
            state(t.dest, f"transitions[{i}].dest")
        if t.trigger not in triggers:
            triggers.append(t.trigger)
    joined = len(spec.delivery.event_type)
    for event_type, ev in spec.events.items():
        loc = key_path("events", event_type)
        if event_type.count(".") < joined - 1:
            problem(
                loc,
                f"event type {event_type!r} can never arrive: delivery.event_type joins "
                f"{joined} values with '.', so every event type read has at least "
                f"{joined - 1} '.'",
            )
        if ev.trigger is not None and ev.trigger not in triggers:
            problem(f"{loc}.trigger", unknown("trigger", ev.trigger, triggers))
        for j, s in enumerate(ev.states or []):
            state(s, f"{loc}.states[{j}]")
        if ev.follow_status and spec.delivery.status is None:
            problem(loc, "follow_status needs delivery.status")
    for value, target in spec.delivery.statuses.items():
        if target not in leaves:
            problem(key_path("delivery.statuses", value), unknown("state", target, leaves))
    if problems:
        raise ChartError.of(problems)


@contextmanager
def _not_too_deep(source: str) -> Iterator[None]:
    """A chart nested past Python's recursion limit (thousands of ``[[[…``, or states inside
    states hundreds deep) is a broken chart, not a crash of whatever read it."""
    try:
        yield
    except RecursionError:
        raise ChartError(
            source, "", "nested too deeply to read (hundreds of levels of lists or states)"
        ) from None


def _structure(data: Any, source: str, marks: Marks | None = None) -> ChartSpec:
    """The first validation: the chart's shape, by the pydantic models; every problem."""
    if data is None:
        raise ChartError(source, "", "the chart is empty; it needs provider, initial, states, …")
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else f"a {type(data).__name__}"
        raise ChartError(source, "", f"a chart is a mapping (provider: …, states: …), got {kind}")
    try:
        return ChartSpec.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
    # A key that is missing next to one that is unexpected is most likely misspelled there.
    extra = {clean_loc(e["loc"]) for e in errors if e["type"] == "extra_forbidden"}
    problems: list[ChartProblem] = []
    keys: set[int] = set()
    for error in errors:
        path = clean_loc(error["loc"])
        text = pydantic_problem(error, ChartSpec)
        if error["type"] == "extra_forbidden":
            keys.add(len(problems))
        elif error["type"] == "missing":
            near = [str(p[-1]) for p in extra if p[:-1] == path[:-1]]
            typo = meant_key(str(path[-1]), near) if near and path else None
            if typo is not None:
                at = marks.find((*path[:-1], typo), key=True) if marks is not None else None
                line = f" (line {at[0]})" if at else ""
                text += f"; {typo!r}{line} looks like a misspelling of it"
        problems.append(ChartProblem(source=source, location=locate(error["loc"]), problem=text))
    raise _placed(ChartError.of(problems), data, marks, keys=frozenset(keys))


def parse_chart(data: Any, source: str = "<string>", *, enforce_lint: bool = True) -> ChartSpec:
    """Validate already-loaded YAML data as a chart: structure, meaning, then lint errors.

    Args:
        data: the chart as YAML (or JSON) reads it.
        source: names the chart in errors (its file).
        enforce_lint: refuse a chart with error-level lint findings (see
            :func:`engine.chart.lint.enforce`); ``False`` to lint a broken chart.

    Raises:
        ChartError: listing every problem, each naming ``source``, the location inside it
            (and the state or transition there) and what is wrong. Data has no lines: a file
            read with :func:`load_chart` gives them too.
    """
    with _not_too_deep(source):
        spec = _structure(data, source)
        try:
            _check_meaning(spec, source)
            if enforce_lint:
                enforce(Chart(spec, enforce_lint=False), source)
        except ChartError as exc:
            raise _placed(exc, data, None) from None
    return spec


def _file_name_problem(spec: ChartSpec, path: Path) -> ChartProblem | None:
    """A chart file is named after its provider: ``stripe.yaml`` says ``provider: stripe``.

    Charts are found by file name and their invoices stored under the provider's name; a
    file that says otherwise would store rows under one name and find them under another.
    """
    if path.stem == spec.provider:
        return None
    return ChartProblem(
        source=str(path),
        location="provider",
        problem=f"the file is {path.name} but it says provider: {spec.provider}; a chart file "
        f"is named after its provider: rename the file to {spec.provider}"
        f"{path.suffix or '.yaml'} or write provider: {path.stem}",
    )


def _read_spec(path: Path) -> tuple[ChartSpec, Callable[[ChartError], ChartError]]:
    """Read a chart file: YAML, structure, its name, meaning (not lint). Also returns what
    gives a later error (lint's) the file's lines."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ChartError(str(path), "", f"can't read the file: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ChartError(str(path), "", f"not UTF-8 text: {exc.reason}") from None
    source = str(path)
    with _not_too_deep(source):
        data, marks = parse_yaml(text, source)
        spec = _structure(data, source, marks)
        problems = [p for p in [_file_name_problem(spec, path)] if p is not None]
        try:
            _check_meaning(spec, source)
        except ChartError as exc:
            problems.extend(exc.problems)
        if problems:
            raise _placed(ChartError.of(problems), data, marks)
    return spec, lambda exc: _placed(exc, data, marks)


def _checked(chart: Chart, place: Callable[[ChartError], ChartError]) -> Chart:
    """``chart``, if lint finds no error in it; else its errors, at their lines."""
    try:
        enforce(chart, str(chart.path))
    except ChartError as exc:
        raise place(exc) from None
    return chart


def read_chart_file(path: str | Path, *, enforce_lint: bool = True) -> ChartSpec:
    """Read, parse and check a chart file.

    Args:
        path: the file; its name must be the chart's provider (``stripe.yaml``).
        enforce_lint: refuse a chart with error-level lint findings; ``False`` to lint it.

    Raises:
        ChartError: listing every problem, each with the file, line, location and what.
    """
    p = Path(path)
    spec, place = _read_spec(p)
    if enforce_lint:
        with _not_too_deep(str(p)):
            _checked(Chart(spec, p, enforce_lint=False), place)
    return spec


# --------------------------------------------------------------------------------- loading


def bundled_chart_dir() -> Path:
    """The folder of the charts shipped with the package.

    In a wheel the charts sit inside the package (``engine/statecharts``); in a source checkout
    (and an editable install) they are the repository's top-level ``statecharts/``.
    """
    package = Path(__file__).resolve().parent.parent
    inside = package / "statecharts"
    return inside if inside.is_dir() else package.parent / "statecharts"


def _chart_files(chart_dir: str | Path | None) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for folder in [bundled_chart_dir(), *([Path(chart_dir)] if chart_dir else [])]:
        for p in sorted(folder.glob("*.yaml")) + sorted(folder.glob("*.yml")):
            found[p.stem] = p
    return found


def available_charts(chart_dir: str | Path | None = None) -> list[str]:
    """Names of the bundled charts, plus those in ``chart_dir`` (which win on a name clash)."""
    return sorted(_chart_files(chart_dir))


@lru_cache(maxsize=64)
def _load_path(path: Path, mtime: float, enforce_lint: bool = True) -> Chart:
    # Bounded: a long-running process that watches an edited chart, or loads many files by
    # path, would otherwise keep every version it ever compiled.
    spec, place = _read_spec(path)
    with _not_too_deep(str(path)):
        chart = Chart(spec, path, enforce_lint=False)
        return _checked(chart, place) if enforce_lint else chart


def _resolved(path: Path) -> tuple[Path, float]:
    """The file a chart path names (through symlinks) and its modification time; a symlink
    loop or one to nowhere is a :class:`ChartError` naming the path as given."""
    try:
        resolved = path.resolve(strict=True)
        return resolved, resolved.stat().st_mtime
    except RuntimeError:  # Python 3.11's word for a symlink loop (later versions: OSError)
        problem = "can't read the file: it is a symlink loop"
    except OSError as exc:
        problem = f"can't read the file: {exc.strerror or exc}"
        if path.is_symlink():
            problem = f"can't read the file: it is a symlink to {os.readlink(path)!r}, " + (
                "which does not exist"
                if isinstance(exc, FileNotFoundError)
                else f"which can't be read ({exc.strerror or exc})"
            )
    raise ChartError(str(path), "", problem)


def load_chart(
    name_or_path: str | Path, chart_dir: str | Path | None = None, *, enforce_lint: bool = True
) -> Chart:
    """A chart by bundled name (``"stripe"``), by name in ``chart_dir``, or by file path.

    Charts are cached per file and modification time, so loading one twice is free. A chart
    file is named after its provider (``stripe.yaml`` says ``provider: stripe``).

    Args:
        name_or_path: a chart name, or a path to a ``.yaml``/``.yml`` file.
        chart_dir: a folder of the user's charts, searched before the bundled ones.
        enforce_lint: refuse a chart with error-level lint findings (the default); ``False``
            loads it anyway, for :func:`~engine.chart.lint` to report them.

    Raises:
        UnknownProvider: no chart of that name; the message lists those available.
        ChartError: the chart file is broken, or its provider is not its file name.
    """
    text = str(name_or_path)
    as_path = Path(text)
    if isinstance(name_or_path, Path) or text.endswith((".yaml", ".yml")) or "/" in text:
        if not as_path.exists() and not as_path.is_symlink():  # _read_spec says it's missing
            return _load_path(as_path.absolute(), 0.0, enforce_lint)
        return _load_path(*_resolved(as_path), enforce_lint)
    files = _chart_files(chart_dir)
    if text not in files:
        raise UnknownProvider(text, files)
    return _load_path(*_resolved(files[text]), enforce_lint)
