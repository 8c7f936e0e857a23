"""Loading charts: reading chart files safely, checking them, and finding charts by name.

A chart is checked in full before it is refused (:func:`~engine.chart._checks.examine`): its
YAML (duplicate keys), its *structure* by the pydantic models of :mod:`engine.chart.spec` (the
same models give ``invoice-engine schema``), its file name (``stripe.yaml`` says ``provider:
stripe``), its *meaning* (the state tree must be one, and the initial states, every source and
dest, every trigger named by the events and every status mapping must exist; every state must
have a canonical lifecycle state) and, last, its error-level lint findings
(:func:`~engine.chart.lint.enforce`): a chart that lint says is wrong does not load. One
problem does not hide another: a chart whose shape is wrong is still read as far as it can be,
and its names, file name and lint errors checked (see :mod:`engine.chart._lenient`). A broken
chart raises :class:`~engine.errors.ChartError` listing every problem, each with the file, the
line and column, the state or transition concerned by name and the place inside the chart
(``state 'deleted' at states[6].final``), the value found and, for a misspelled key or name,
the one probably meant.

YAML is read safely by :mod:`engine.chart._yaml` (``on``/``off``/``yes``/``no`` stay strings,
a duplicate key is a problem), which also notes where every value and key starts
(:class:`~engine.chart._yaml.Marks`): that is how a problem found in the parsed chart is given
its line, and how a loaded chart's lint findings are (:func:`~engine.chart.lint`).
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import ChartError, UnknownProvider
from ._checks import examine, not_too_deep, place, positions
from ._yaml import Marks, load_yaml, parse_yaml
from .compiled import Chart
from .lint import lint_errors
from .spec import ChartSpec

__all__ = [
    "available_charts",
    "bundled_chart_dir",
    "load_chart",
    "load_yaml",
    "parse_chart",
    "read_chart_file",
]


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
    with not_too_deep(source):
        spec = examine(data, source)
        if enforce_lint:
            problems = lint_errors(Chart(spec, enforce_lint=False), source)
            if problems:
                raise ChartError.of(place(problems, data, None))
    return spec


def _read_spec(path: Path) -> tuple[ChartSpec, Any, Marks]:
    """Read a chart file: YAML, structure, its name, meaning (not lint, unless the chart has
    other problems: then they are all raised together). Also returns the data and where each
    value of it is written (for lint's errors)."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except IsADirectoryError:
        raise ChartError(
            source,
            "",
            "is a folder, not a chart file: name a .yaml file in it, or use the "
            "folder as the chart directory (--chart-dir, chart_dir=)",
        ) from None
    except OSError as exc:
        raise ChartError(source, "", f"can't read the file: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ChartError(source, "", f"not UTF-8 text: {exc.reason}") from None
    with not_too_deep(source):
        data, marks, early = parse_yaml(text, source)
        spec = examine(data, source, marks=marks, early=early, path=path)
    return spec, data, marks


def _compiled(path: Path, enforce_lint: bool) -> Chart:
    """The chart in ``path``, compiled, its lint errors refused (``enforce_lint``) at their
    lines; it knows where its states and transitions are written, for :func:`lint`."""
    spec, data, marks = _read_spec(path)
    source = str(path)
    with not_too_deep(source):
        chart = Chart(spec, path, enforce_lint=False)
        chart._positions = positions(marks)
        if enforce_lint:
            problems = lint_errors(chart, source)
            if problems:
                raise ChartError.of(place(problems, data, marks))
    return chart


def read_chart_file(path: str | Path, *, enforce_lint: bool = True) -> ChartSpec:
    """Read, parse and check a chart file.

    Args:
        path: the file; its name must be the chart's provider (``stripe.yaml``).
        enforce_lint: refuse a chart with error-level lint findings; ``False`` to lint it.

    Raises:
        ChartError: listing every problem, each with the file, line, location and what.
    """
    return _compiled(Path(path), enforce_lint).spec


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
    return _compiled(path, enforce_lint)


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
        folder = as_path.is_dir()  # `lint my_charts`: a folder of charts, named as one
        hint = f"{text!r} is a folder: use it as the chart directory (--chart-dir {text})"
        raise UnknownProvider(text, files, hint if folder else None)
    return _load_path(*_resolved(files[text]), enforce_lint)
