"""Loading charts: safe YAML, the meaning check, and finding charts by name.

A chart is validated twice. First its *structure*, by the pydantic models of
:mod:`engine.chart.spec` (the same models give ``invoice-engine schema``). Then its *meaning*,
by :func:`_check_meaning`: the state tree must be one (:class:`~engine.chart.tree.StateTree`
checks it as it is built), the initial states, every source and dest, every trigger named by the
delivery map and every status mapping must exist; every state must have a canonical lifecycle
state. A chart file must be named after its provider (``stripe.yaml`` says ``provider:
stripe``). Last, the chart's error-level lint findings are refused
(:func:`~engine.chart.lint.enforce`): a chart that lint says is wrong does not load. Either
way a broken chart raises :class:`~engine.errors.ChartError` naming the file, the place inside
it and what was wrong.

YAML is read with a safe loader that keeps ``on``/``off``/``yes``/``no`` as strings (YAML 1.1
would turn them into booleans, silently changing a state called ``on`` into ``True``) and that
refuses duplicate keys (PyYAML would otherwise keep the last one without a word).
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ..errors import ChartError, UnknownProvider
from ._messages import key_path, locate, pydantic_problem, unknown
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

# --------------------------------------------------------------------------------------- YAML


class _Loader(yaml.SafeLoader):
    """Safe, YAML-1.2-ish booleans (only true/false), and no duplicate keys."""


_Loader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def _mapping_without_duplicates(loader: _Loader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: dict[Any, yaml.Node] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            first = seen[key].start_mark
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {key!r} (first at line {first.line + 1}); YAML would keep "
                "only the last one",
                key_node.start_mark,
            )
        seen[key] = key_node
    loader.flatten_mapping(node)
    return dict(loader.construct_pairs(node))


_Loader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _mapping_without_duplicates,
)


def load_yaml(text: str, source: str = "<string>") -> Any:
    """YAML to Python, safely; a YAML error becomes a :class:`ChartError` with the line."""
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        context, start = getattr(exc, "context", None), getattr(exc, "context_mark", None)
        if context and start is not None and start is not mark:
            # The mistake is often where the construct began (an unclosed bracket), not here.
            problem += f" ({context} at line {start.line + 1})"
        raise ChartError(source, where, f"not valid YAML: {problem}") from None


# --------------------------------------------------------------------------------- meaning


def _check_meaning(spec: ChartSpec, source: str) -> None:
    tree = StateTree(spec.states, source)  # the tree's own rules, raised as it is built
    names = list(tree.names)
    leaves = list(tree.leaves)

    def state(name: str, loc: str) -> None:
        if name not in tree:
            raise ChartError(source, loc, unknown("state", name, names))

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
            raise ChartError(
                source,
                loc,
                f"event type {event_type!r} can never arrive: delivery.event_type joins "
                f"{joined} values with '.', so every event type read has at least "
                f"{joined - 1} '.'",
            )
        if ev.trigger is not None and ev.trigger not in triggers:
            raise ChartError(source, f"{loc}.trigger", unknown("trigger", ev.trigger, triggers))
        for j, s in enumerate(ev.states or []):
            state(s, f"{loc}.states[{j}]")
        if ev.follow_status and spec.delivery.status is None:
            raise ChartError(source, loc, "follow_status needs delivery.status")
    for value, target in spec.delivery.statuses.items():
        if target not in leaves:
            raise ChartError(
                source, key_path("delivery.statuses", value), unknown("state", target, leaves)
            )


def _structure(data: Any, source: str) -> ChartSpec:
    """The first validation: the chart's shape, by the pydantic models."""
    if data is None:
        raise ChartError(source, "", "the chart is empty; it needs provider, initial, states, …")
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else f"a {type(data).__name__}"
        raise ChartError(source, "", f"a chart is a mapping (provider: …, states: …), got {kind}")
    try:
        spec = ChartSpec.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        msg = pydantic_problem(first, ChartSpec)
        more = f" (and {exc.error_count() - 1} more problems)" if exc.error_count() > 1 else ""
        raise ChartError(source, locate(first["loc"]), msg + more) from None
    return spec


def parse_chart(data: Any, source: str = "<string>", *, enforce_lint: bool = True) -> ChartSpec:
    """Validate already-loaded YAML data as a chart: structure, meaning, then lint errors.

    Args:
        data: the chart as YAML (or JSON) reads it.
        source: names the chart in errors (its file).
        enforce_lint: refuse a chart with error-level lint findings (see
            :func:`engine.chart.lint.enforce`); ``False`` to lint a broken chart.

    Raises:
        ChartError: naming ``source``, the location inside it and the problem.
    """
    spec = _structure(data, source)
    _check_meaning(spec, source)
    if enforce_lint:
        enforce(Chart(spec, enforce_lint=False), source)
    return spec


def _check_file_name(spec: ChartSpec, path: Path) -> None:
    """A chart file is named after its provider: ``stripe.yaml`` says ``provider: stripe``.

    Charts are found by file name and their invoices stored under the provider's name; a
    file that says otherwise would store rows under one name and find them under another.
    """
    if path.stem != spec.provider:
        raise ChartError(
            str(path),
            "provider",
            f"the file is {path.name} but it says provider: {spec.provider}; a chart file is "
            f"named after its provider: rename the file to {spec.provider}{path.suffix or '.yaml'}"
            f" or write provider: {path.stem}",
        )


def _read_spec(path: Path) -> ChartSpec:
    """Read a chart file: YAML, structure, its name, meaning (not lint)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ChartError(str(path), "", f"can't read the file: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ChartError(str(path), "", f"not UTF-8 text: {exc.reason}") from None
    source = str(path)
    spec = _structure(load_yaml(text, source), source)
    _check_file_name(spec, path)
    _check_meaning(spec, source)
    return spec


def read_chart_file(path: str | Path, *, enforce_lint: bool = True) -> ChartSpec:
    """Read, parse and check a chart file.

    Args:
        path: the file; its name must be the chart's provider (``stripe.yaml``).
        enforce_lint: refuse a chart with error-level lint findings; ``False`` to lint it.

    Raises:
        ChartError: naming the file, the location inside it and the problem.
    """
    p = Path(path)
    spec = _read_spec(p)
    if enforce_lint:
        enforce(Chart(spec, p, enforce_lint=False), str(p))
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
    return Chart(_read_spec(path), path, enforce_lint=enforce_lint)


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
        resolved = as_path.resolve()
        mtime = resolved.stat().st_mtime if resolved.exists() else 0.0
        return _load_path(resolved, mtime, enforce_lint)
    files = _chart_files(chart_dir)
    if text not in files:
        raise UnknownProvider(text, files)
    path = files[text].resolve()
    return _load_path(path, path.stat().st_mtime, enforce_lint)
