"""Graphviz DOT text, and SVG/PNG through Graphviz's ``dot`` program.

States are nodes named by their full chart name (quoted, so any name is safe); compound
states are clusters (``compound=true`` lets an arrow end at a cluster's border, as UML draws a
transition into a composite state). Pseudo nodes (start dots, rejected-event notes) have ids
that begin with or contain ``..``, which no chart name can (names have no dots). Labels are
Graphviz HTML-like labels with every character escaped, so nothing a chart says can break out.
"""

from __future__ import annotations

import html
import shutil
import subprocess

from ..errors import DiagramError
from ._model import ANY, Graph, Highlight, colour_of

_FONT = "Helvetica,Arial,sans-serif"
_GREEN = "#1b5e20"
_RED = "#c62828"
_DIM = "#9e9e9e"

INSTALL_HINT = (
    "Graphviz's `dot` program is needed to draw SVG or PNG. Install it with "
    "`apt-get install graphviz` (Debian/Ubuntu), `brew install graphviz` (macOS), "
    "`choco install graphviz` (Windows), or from https://graphviz.org/download/; "
    "the text formats (mermaid, dot, scxml, xstate) need nothing."
)


def _q(value: str) -> str:
    """A DOT quoted string."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _h(value: str) -> str:
    """Text for an HTML-like label."""
    return html.escape(value, quote=True)


def _attrs(**kw: str) -> str:
    return "[" + ", ".join(f"{k}={v}" for k, v in kw.items()) + "]"


def _steps(numbers: list[int]) -> str:
    return "(" + ", ".join(map(str, numbers)) + ")"


def _legend(graph: Graph) -> str:
    canonicals = list(dict.fromkeys(n.canonical for n in graph.nodes.values() if n.canonical))
    cells = "".join(
        f'<td bgcolor="{colour_of(c)}" border="1" cellpadding="3">'
        f'<font point-size="10">{_h(c)}</font></td>'
        for c in canonicals
    )
    span = len(canonicals) + 1
    title = f'<tr><td colspan="{span}" align="left"><b>{_h(graph.title)}</b></td></tr>'
    legend = f'<tr><td align="left"><font point-size="10">canonical:</font></td>{cells}</tr>'
    return f'<<table border="0" cellspacing="4" cellpadding="0">{title}{legend}</table>>'


def to_dot(graph: Graph, highlight: Highlight | None = None, direction: str = "LR") -> str:
    """The DOT text for ``graph``, with one invoice's path marked if ``highlight`` is given."""
    hl = highlight
    edges = graph.edges()
    internal: dict[str, list[str]] = {}
    for e in edges:
        if e.target is None:
            for trigger, label in e.parts:
                used = hl.internal.get((e.source, trigger), 0) if hl is not None else 0
                internal.setdefault(e.source, []).append(label + (f" \u00d7{used}" if used else ""))

    out = [f"digraph {_q(graph.name)} {{"]
    out.append(
        "  graph "
        + _attrs(
            rankdir=direction,
            compound="true",
            fontname=_q(_FONT),
            labelloc="t",
            labeljust="l",
            nodesep="0.4",
            ranksep="0.55",
            label=_legend(graph),
        )
    )
    out.append(
        "  node "
        + _attrs(
            shape="box",
            style=_q("rounded,filled"),
            fontname=_q(_FONT),
            fontsize="11",
            margin=_q("0.14,0.06"),
        )
    )
    out.append("  edge " + _attrs(fontname=_q(_FONT), fontsize="10", arrowsize="0.7"))

    def start_dot(pid: str) -> str:
        return f"{_q(pid)} " + _attrs(
            shape="circle",
            style="filled",
            fillcolor="black",
            label='""',
            width="0.16",
            fixedsize="true",
        )

    def any_box() -> str:
        rows = ["<i>any non-final state</i>"]
        rows += [f'<font point-size="9">↺ {_h(x)}</font>' for x in internal.get(ANY, [])]
        label = "<" + "<br/>".join(rows) + ">"
        return f"  {_q('..any')} " + _attrs(
            label=label, style=_q("rounded,dashed"), color=_q("#777777")
        )

    def entry(node_id: str) -> str:
        """The node an arrow *into* ``node_id`` ends at (a cluster's start dot)."""
        return f"{node_id}..start" if graph.nodes[node_id].compound else node_id

    sources = {e.source for e in edges if e.target is not None}

    def exit_(node_id: str) -> str:
        """The node an arrow *out of* ``node_id`` starts at: a cluster's invisible exit point,
        ranked after all its states, so arrows leave the cluster on its far side."""
        if node_id == ANY:
            return "..any"
        return f"{node_id}..exit" if graph.nodes[node_id].compound else node_id

    def node_line(pad: str, nid: str) -> str:
        node = graph.nodes[nid]
        rows = [f"<b>{_h(node.name)}</b>"]
        if (note := graph.canonical_note(nid)) is not None:
            rows.append(f'<font point-size="9">canonical: {_h(note)}</font>')
        rows += [f'<font point-size="9">↺ {_h(x)}</font>' for x in internal.get(nid, [])]
        attrs = {"label": "<" + "<br/>".join(rows) + ">"}
        attrs["fillcolor"] = _q(colour_of(node.canonical))
        if node.final:
            attrs["peripheries"] = "2"
        if node.description:
            attrs["tooltip"] = _q(node.description)
        if hl is not None:
            if nid == hl.current:
                rows.append(f'<font point-size="9" color="{_RED}">● current state</font>')
                attrs["label"] = "<" + "<br/>".join(rows) + ">"
                attrs.update(color=_q(_RED), penwidth="3")
            elif nid in hl.states:
                attrs.update(color=_q(_GREEN), penwidth="2.5")
            else:
                attrs.update(color=_q(_DIM), fontcolor=_q("#555555"))
        return f"{pad}{_q(nid)} " + _attrs(**attrs)

    def rejected_lines(pad: str, nid: str) -> list[str]:
        if hl is None or nid not in hl.rejected:
            return []
        note = f"{nid}..rejected"  # nid "": before the invoice existed, noted at the start
        text = "<br/>".join(f"✗ {_h(ev)}" for ev in hl.rejected[nid])
        return [
            f"{pad}{_q(note)} "
            + _attrs(
                shape="note",
                style="filled",
                fillcolor=_q("#ffebee"),
                color=_q(_RED),
                fontcolor=_q(_RED),
                fontsize="9",
                label=f"<<i>rejected</i><br/>{text}>",
            ),
            f"{pad}{_q(nid or '..start')} -> {_q(note)} "
            + _attrs(style="dashed", color=_q(_RED), arrowhead="none"),
        ]

    def block(children: tuple[str, ...], depth: int) -> None:
        pad = "  " * depth
        for cid in children:
            node = graph.nodes[cid]
            if node.compound:
                rows = [f"<b>{_h(node.name)}</b>"]
                if (note := graph.canonical_note(cid)) is not None:
                    rows.append(f'<font point-size="9">canonical: {_h(note)}</font>')
                rows += [f'<font point-size="9">↺ {_h(x)}</font>' for x in internal.get(cid, [])]
                out.append(f"{pad}subgraph {_q('cluster_' + cid)} {{")
                out.append(
                    f"{pad}  graph "
                    + _attrs(
                        label="<" + "<br/>".join(rows) + ">",
                        style=_q("rounded,filled"),
                        fillcolor=_q("#f7f7f7"),
                        color=_q(_GREEN if hl is not None and cid in hl.states else "#777777"),
                    )
                )
                block(node.children, depth + 1)
                if cid in sources:
                    out.append(
                        f"{pad}  {_q(cid + '..exit')} "
                        + _attrs(shape="point", style="invis", width="0.01")
                    )
                    out.extend(
                        f"{pad}  {_q(leaf)} -> {_q(cid + '..exit')} [style=invis]"
                        for leaf in graph.leaves(cid)
                    )
                if graph.entered(cid):  # draw the default child only where it matters
                    assert node.initial_child is not None
                    inner = node.initial_child
                    lhead = graph.nodes[inner].compound
                    out.append(f"{pad}  {start_dot(cid + '..start')}")
                    out.append(
                        f"{pad}  {_q(cid + '..start')} -> {_q(entry(inner))}"
                        + (f" {_attrs(lhead=_q('cluster_' + inner))}" if lhead else "")
                    )
                out.append(f"{pad}}}")
            else:
                out.append(node_line(pad, cid))
                out.extend(rejected_lines(pad, cid))

    out.append(f"  {start_dot('..start')}")
    out.extend(rejected_lines("  ", ""))
    if any(e.source == ANY for e in edges):
        out.append(any_box())
    block(graph.roots, 1)

    born, adopted = graph.births(hl) if hl is not None else ({}, {})
    for i in graph.initial:
        attrs: dict[str, str] = {}
        if graph.nodes[i].compound:
            attrs["lhead"] = _q("cluster_" + i)
        if i in born:
            attrs.update(label=_q(born[i]), color=_q(_GREEN), penwidth="2.5", fontcolor=_q(_GREEN))
        elif hl is not None:
            attrs.update(color=_q(_DIM))
        tail = f" {_attrs(**attrs)}" if attrs else ""
        out.append(f"  {_q('..start')} -> {_q(entry(i))}{tail}")
    for state, label in adopted.items():
        out.append(
            f"  {_q('..start')} -> {_q(entry(state))} "
            + _attrs(label=_q(label), style="dashed", color=_q(_GREEN), fontcolor=_q(_GREEN))
        )

    for e in edges:
        if e.target is None:
            continue
        attrs = {"label": "<" + "<br/>".join(_h(x) for x in e.labels) + ">"}
        tail, head = exit_(e.source), entry(e.target)
        if (
            e.source != ANY
            and graph.nodes[e.source].compound
            and not graph.contains(e.source, e.target)
        ):
            attrs["ltail"] = _q("cluster_" + e.source)
        if graph.nodes[e.target].compound and (
            e.source == ANY or not graph.contains(e.target, e.source)
        ):
            attrs["lhead"] = _q("cluster_" + e.target)
        if hl is not None:
            taken = hl.steps.get((e.source, e.target))
            if taken:
                attrs["label"] = attrs["label"][:-1] + f"<br/><b>{_steps(taken)}</b>>"
                attrs.update(color=_q(_GREEN), penwidth="2.5", fontcolor=_q(_GREEN))
            else:
                attrs.update(color=_q(_DIM), fontcolor=_q(_DIM))
        if tail == head:
            attrs["dir"] = "forward"
        out.append(f"  {_q(tail)} -> {_q(head)} {_attrs(**attrs)}")

    if hl is not None:
        for (frm, to), numbers in hl.extra.items():
            if frm in graph.nodes and to in graph.nodes:
                out.append(
                    f"  {_q(exit_(frm))} -> {_q(entry(to))} "
                    + _attrs(
                        label=_q(f"not in chart {_steps(numbers)}"),
                        style="dashed",
                        color=_q(_RED),
                        fontcolor=_q(_RED),
                    )
                )
    out.append("}")
    return "\n".join(out) + "\n"


def run_dot(dot_text: str, fmt: str) -> bytes:
    """Lay out ``dot_text`` with Graphviz and return the ``fmt`` (``svg``/``png``) output.

    Raises:
        DiagramError: ``dot`` is not installed (the message says how to install it), or it
            failed (the message has its error output).
    """
    exe = shutil.which("dot")
    if exe is None:
        raise DiagramError(INSTALL_HINT)
    proc = subprocess.run(  # a fixed program; our own text on stdin
        [exe, f"-T{fmt}"], input=dot_text.encode("utf-8"), capture_output=True, check=False
    )
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip()
        raise DiagramError(f"Graphviz dot failed (exit {proc.returncode}) drawing {fmt}: {err}")
    return proc.stdout
