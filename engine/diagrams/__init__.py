"""Diagrams of a chart: Mermaid, Graphviz DOT (and SVG/PNG through it), SCXML and XState.

Extract once, render many: :mod:`._model` turns a chart into one small graph (states tree,
transitions, and the picture's merged arrows); each format is one short renderer over it.
The text formats need nothing installed; SVG and PNG run Graphviz's ``dot`` program, and
when it is missing the error says how to install it.

Pictures (Mermaid, DOT/SVG/PNG) nest compound states as composite states/clusters, mark
initial and final states, label guards (``pay [$.amountDue == 0]``) and list internal
(no-op) transitions inside their state (``↺ notify``), and colour states by canonical
lifecycle state. A parallel state's regions are drawn side by side, as Mermaid's concurrent
regions (``--``) or as dashed DOT clusters; an arrow into it enters every region (a fork bar in
Mermaid, each region's start dot in DOT), and one written on it leaves from its border. Given one
invoice's history they also mark the states and arrows it went through (with step numbers),
its current configuration (every active leaf), and the events that were rejected.

SCXML and XState are machine formats: they behave like the chart, parallel states included
(``<parallel>``, ``type: "parallel"``); the tests run them in python-statemachine and XState on
generated event sequences and compare the configurations with the chart's.

Example::

    import engine, engine.diagrams as diagrams
    chart = engine.load_chart("stripe")
    print(diagrams.to_mermaid(chart))
    diagrams.render(chart, "stripe.svg")
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

from ..errors import DiagramError
from ._dot import to_dot as _to_dot
from ._graphviz import INSTALL_HINT, run_dot
from ._highlight import HistoryEntry, highlight_of
from ._ids import ncname_ids, word_ids
from ._mermaid import to_mermaid as _to_mermaid
from ._model import Graph, build
from ._scxml import to_scxml as _to_scxml
from ._xstate import to_xstate as _to_xstate

if TYPE_CHECKING:
    from ..chart import Chart

__all__ = [
    "DIRECTIONS",
    "FORMATS",
    "INSTALL_HINT",
    "Direction",
    "Format",
    "HistoryEntry",
    "ImageFormat",
    "TextFormat",
    "export",
    "format_for",
    "render",
    "state_ids",
    "to_dot",
    "to_image",
    "to_mermaid",
    "to_scxml",
    "to_xstate",
]

#: The formats :func:`export` returns as text.
TextFormat = Literal["mermaid", "dot", "scxml", "xstate"]
#: The formats :func:`export` returns as bytes (drawn by Graphviz).
ImageFormat = Literal["svg", "png"]
Format = Literal[TextFormat, ImageFormat]
#: Which way a picture's arrows run: left to right, top to bottom, right to left, bottom to top.
Direction = Literal["LR", "TB", "RL", "BT"]
#: Every format :func:`export` knows.
FORMATS: tuple[str, ...] = ("mermaid", "dot", "svg", "png", "scxml", "xstate")
#: Every direction a picture can be drawn in (the values of :data:`Direction`; the CLI's
#: ``--direction`` choices).
DIRECTIONS: tuple[Direction, ...] = ("LR", "TB", "RL", "BT")
_SUFFIXES = {
    ".mmd": "mermaid",
    ".mermaid": "mermaid",
    ".dot": "dot",
    ".gv": "dot",
    ".svg": "svg",
    ".png": "png",
    ".scxml": "scxml",
    ".json": "xstate",
}


def _check_direction(direction: str) -> None:
    if direction not in DIRECTIONS:
        raise DiagramError(f"direction {direction!r} is not one of {', '.join(DIRECTIONS)}")


def to_mermaid(
    chart: Chart,
    *,
    highlight: Iterable[HistoryEntry] | None = None,
    direction: Direction = "LR",
) -> str:
    """A Mermaid ``stateDiagram-v2`` of ``chart`` (paste it in a ```` ```mermaid ```` block).

    Args:
        chart: the chart to draw.
        highlight: one invoice's history (e.g. ``Engine.history(provider, invoice_id)``):
            mark its states, the arrows it took (with step numbers), its current state and
            the events rejected on the way.
        direction: ``LR`` (left to right, the default) or ``TB``/``RL``/``BT``.
    """
    _check_direction(direction)
    graph = build(chart)
    hl = highlight_of(graph, highlight) if highlight is not None else None
    return _to_mermaid(graph, hl, direction)


def to_dot(
    chart: Chart,
    *,
    highlight: Iterable[HistoryEntry] | None = None,
    direction: Direction = "LR",
) -> str:
    """Graphviz DOT text of ``chart``; see :func:`to_mermaid` for ``highlight``."""
    _check_direction(direction)
    graph = build(chart)
    hl = highlight_of(graph, highlight) if highlight is not None else None
    return _to_dot(graph, hl, direction)


def to_scxml(chart: Chart) -> str:
    """A W3C SCXML document that behaves like ``chart``.

    Send the chart's triggers as events with the webhook payload as event data; guards read
    it as ``_event.data`` (ECMAScript data model). State ids are :func:`state_ids` ``"scxml"``.
    With python-statemachine: ``sm = statemachine.io.load(text, format="scxml")()``, then
    ``StateChart.send(sm, "pay", **body)`` (an event named ``send`` would shadow ``sm.send``).
    """
    return _to_scxml(build(chart))


def to_xstate(chart: Chart) -> dict[str, Any]:
    """An XState v5 machine config (JSON-serializable) that behaves like ``chart``.

    Guards are ``{"type": "payloadMatches", "params": ...}``: provide that one guard when you
    create the machine (see :mod:`engine.diagrams._xstate`). Send events as
    ``{"type": trigger, "payload": body}``.
    """
    return _to_xstate(build(chart))


def to_image(
    chart: Chart,
    format: Literal["svg", "png"] = "svg",
    *,
    highlight: Iterable[HistoryEntry] | None = None,
    direction: Direction = "LR",
) -> bytes:
    """SVG or PNG bytes of ``chart``, drawn by Graphviz's ``dot``.

    Raises:
        DiagramError: ``dot`` is not installed (the message says how to install it) or failed.
    """
    if format not in ("svg", "png"):
        raise DiagramError(f"image format {format!r} is not one of svg, png")
    return run_dot(to_dot(chart, highlight=highlight, direction=direction), format)


def format_for(path: str | Path) -> str:
    """The format a file name asks for, by its suffix: ``.mmd`` is mermaid, ``.json`` xstate.

    Raises:
        DiagramError: the suffix is not one we know; the message lists those we do.
    """
    suffix = Path(path).suffix.lower()
    if suffix not in _SUFFIXES:
        known = ", ".join(f"{s} ({f})" for s, f in _SUFFIXES.items())
        raise DiagramError(
            f"can't tell the diagram format of {str(path)!r} from its suffix; known: {known}"
        )
    return _SUFFIXES[suffix]


@overload
def export(
    chart: Chart,
    format: TextFormat,
    *,
    highlight: Iterable[HistoryEntry] | None = None,
    direction: Direction = "LR",
) -> str: ...
@overload
def export(
    chart: Chart,
    format: ImageFormat,
    *,
    highlight: Iterable[HistoryEntry] | None = None,
    direction: Direction = "LR",
) -> bytes: ...
@overload
def export(
    chart: Chart,
    format: str,
    *,
    highlight: Iterable[HistoryEntry] | None = None,
    direction: Direction = "LR",
) -> str | bytes: ...
def export(
    chart: Chart,
    format: str,
    *,
    highlight: Iterable[HistoryEntry] | None = None,
    direction: Direction = "LR",
) -> str | bytes:
    """``chart`` in any of :data:`FORMATS`: text for mermaid/dot/scxml/xstate, bytes for svg/png.

    A type checker knows which from a literal format: ``export(chart, "svg")`` is ``bytes``,
    ``export(chart, "mermaid")`` is ``str``; a format held in a ``str`` gives ``str | bytes``.
    ``highlight`` applies to the pictures (mermaid, dot, svg, png) only.

    Raises:
        DiagramError: an unknown format (the message lists them), a highlight for a machine
            format, a direction not in :data:`DIRECTIONS`, or Graphviz is missing.
    """
    if format == "mermaid":
        return to_mermaid(chart, highlight=highlight, direction=direction)
    if format == "dot":
        return to_dot(chart, highlight=highlight, direction=direction)
    if format in ("svg", "png"):
        return to_image(chart, format, highlight=highlight, direction=direction)  # type: ignore[arg-type]
    if highlight is not None:
        raise DiagramError(f"highlighting an invoice is for pictures, not {format!r}")
    if format == "scxml":
        return to_scxml(chart)
    if format == "xstate":
        return json.dumps(to_xstate(chart), indent=2, ensure_ascii=False) + "\n"
    raise DiagramError(f"unknown diagram format {format!r}; choose one of {', '.join(FORMATS)}")


def render(
    chart: Chart,
    path: str | Path,
    format: str | None = None,
    *,
    highlight: Iterable[HistoryEntry] | None = None,
    direction: Direction = "LR",
) -> Path:
    """Write ``chart`` to ``path`` in ``format`` (default: from the path's suffix).

    Returns the path written.

    Raises:
        DiagramError: as :func:`export`; or no ``format`` and a suffix that names none, or a
            ``format`` the suffix contradicts (``render(c, "x.png", "svg")``).
    """
    out = Path(path)
    implied = _SUFFIXES.get(out.suffix.lower())
    if format is not None and implied is not None and implied != format:
        raise DiagramError(f"{str(out)!r} is a {implied} file name, but format={format!r}")
    fmt = format or format_for(out)
    data = export(chart, fmt, highlight=highlight, direction=direction)
    if isinstance(data, bytes):
        out.write_bytes(data)
    else:
        out.write_text(data, encoding="utf-8")
    return out


def state_ids(chart: Chart, format: str) -> dict[str, str]:
    """The identifier each state (leaves and compound states) has in ``format``.

    Chart names are kept wherever the format allows them: SCXML ids are the chart's names
    when they are XML names (``open.unpaid``); Mermaid and XState ids use ``[A-Za-z0-9_]``
    (``open_unpaid``); DOT quotes every name as it is.
    """
    graph: Graph = build(chart)
    if format in ("mermaid", "xstate"):
        return word_ids(graph)
    if format == "scxml":
        return ncname_ids(graph)
    if format in ("dot", "svg", "png"):
        return {n: n for n in graph.nodes}
    raise DiagramError(f"unknown diagram format {format!r}; choose one of {', '.join(FORMATS)}")
