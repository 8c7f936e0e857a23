"""Graphviz DOT text (:mod:`._graphviz` draws it as SVG/PNG).

States are nodes named by their full chart name (quoted, so any name is safe); compound
states are clusters (``compound=true`` lets an arrow end at a cluster's border, as UML draws a
transition into a composite state). Pseudo nodes (start dots, rejected-event notes) have ids
that begin with or contain ``..``, which no chart name can (names have no dots). Labels are
Graphviz HTML-like labels with every character escaped, so nothing a chart says can break out.

Every arrow starts where the invoice really was. A transition written on a compound state
leaves from the cluster's border when it leads out of it; when it leads to a state inside the
compound itself (``source: issued, dest: issued.partially_paid``) a border can't say where it
starts, so it is drawn from each of the compound's other states (and listed as ``↺`` inside
the state it targets, where it changes nothing). Transitions written with ``source: "*"`` start
from a dashed region labelled "any non-final state" that encloses every state they apply to.

A parallel state is a cluster of its regions, each a dashed cluster with its own start dot: an
arrow into the parallel state ends at its border and every region starts at its dot; one
written on it leaves from its border, wherever in its regions the invoice was. Its table of
canonical rules is written in its label, a row each.
"""

from __future__ import annotations

import html

from ._highlight import Highlight, births, rejected_by_place
from ._model import ANY, Edge, Graph, colour_of

_FONT = "Helvetica,Arial,sans-serif"
_GREEN = "#1b5e20"
_RED = "#c62828"
_DIM = "#9e9e9e"


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
    found = [n.canonical for n in graph.nodes.values() if n.canonical]
    found += [r.canonical for n in graph.nodes.values() for r in n.rules]
    canonicals = list(dict.fromkeys(found))
    cells = "".join(
        f'<td bgcolor="{colour_of(c)}" border="1" cellpadding="3">'
        f'<font point-size="10">{_h(c)}</font></td>'
        for c in canonicals
    )
    span = len(canonicals) + 1
    title = f'<tr><td colspan="{span}" align="left"><b>{_h(graph.title)}</b></td></tr>'
    legend = f'<tr><td align="left"><font point-size="10">canonical:</font></td>{cells}</tr>'
    return f'<<table border="0" cellspacing="4" cellpadding="0">{title}{legend}</table>>'


class _Arrow:
    """One arrow to draw: its labels, and the step numbers of the invoice that took it."""

    def __init__(self) -> None:
        self.labels: list[str] = []
        self.steps: list[int] = []


def _arrows(
    graph: Graph, edges: list[Edge], hl: Highlight | None, internal: dict[str, list[str]]
) -> dict[tuple[str, str], _Arrow]:
    """The picture's arrows by (source, target), each drawable from where it starts.

    An edge from a compound state to a state inside it is redrawn from the compound's states
    outside its target (each step numbered where it really started); inside the target a leaf
    target lists it as ``↺`` (into ``internal``): taking it there changes nothing.
    """
    arrows: dict[tuple[str, str], _Arrow] = {}

    def started_in(state: str, step: int) -> bool:
        return hl is not None and hl.started_in(graph, state, step)

    def add(src: str, dst: str, labels: list[str], steps: list[int]) -> None:
        arrow = arrows.setdefault((src, dst), _Arrow())
        arrow.labels += [x for x in labels if x not in arrow.labels]
        arrow.steps = sorted({*arrow.steps, *steps})

    for e in edges:
        if e.target is None:
            continue
        taken = hl.steps.get((e.source, e.target), []) if hl is not None else []
        if e.source == ANY or not (
            graph.nodes[e.source].compound and graph.contains(e.source, e.target)
        ):
            add(e.source, e.target, e.labels, taken)
            continue
        inner = set(graph.leaves(e.target))
        for src in graph.cover(x for x in graph.leaves(e.source) if x not in inner):
            add(src, e.target, e.labels, [n for n in taken if started_in(src, n)])
        if graph.nodes[e.target].compound:  # from its own states: back to its initial state
            for src in graph.cover(inner):
                add(src, e.target, e.labels, [n for n in taken if started_in(src, n)])
        else:
            for trigger, label in e.parts:
                used = hl.stays.get((e.target, trigger), 0) if hl is not None else 0
                internal.setdefault(e.target, []).append(label + (f" \u00d7{used}" if used else ""))
    return arrows


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
    arrows = _arrows(graph, edges, hl, internal)
    notes = rejected_by_place(graph, hl) if hl is not None else {}
    current = set(hl.current_leaves) if hl is not None else set()

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

    def entry(node_id: str) -> str:
        """The node an arrow *into* ``node_id`` ends at: a cluster's start dot (a parallel
        state's first region's: the arrow ends at its border, and every region starts)."""
        node = graph.nodes[node_id]
        if node.parallel:
            return entry(node.children[0])
        return f"{node_id}..start" if node.compound else node_id

    sources = {src for src, _ in arrows}
    # "*": the states it covers sit in one dashed region (every top-level state with a
    # non-final leaf; the final ones inside are marked final, so the label stays true).
    any_roots = tuple(
        r for r in graph.roots if any(graph.contains(ANY, x) for x in graph.leaves(r))
    )
    any_region = ANY in sources or ANY in internal
    any_in = {dst for src, dst in arrows if src == ANY and _inside(graph, any_roots, dst)}

    def exit_(node_id: str, target: str | None = None) -> str:
        """The node an arrow *out of* ``node_id`` starts at: a cluster's invisible exit point,
        ranked after all its states, so arrows leave the cluster on its far side (for "*" to
        a state inside its region: an entry point, ranked before them)."""
        if node_id == ANY:
            return "..any..entry" if target in any_in else "..any..exit"
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
            if nid in current:
                rows.append(f'<font point-size="9" color="{_RED}">● current state</font>')
                attrs["label"] = "<" + "<br/>".join(rows) + ">"
                attrs.update(color=_q(_RED), penwidth="3")
            elif nid in hl.states:
                attrs.update(color=_q(_GREEN), penwidth="2.5")
            else:
                attrs.update(color=_q(_DIM), fontcolor=_q("#555555"))
        return f"{pad}{_q(nid)} " + _attrs(**attrs)

    def rejected_lines(pad: str, nid: str) -> list[str]:
        if nid not in notes:
            return []
        note = f"{nid}..rejected"  # nid "": before the invoice existed, noted at the start
        text = "<br/>".join(f"✗ {_h(ev)}" for ev in notes[nid])
        tail = graph.leaves(nid)[0] if nid else "..start"
        link = {"style": "dashed", "color": _q(_RED), "arrowhead": "none"}
        if nid and graph.nodes[nid].compound:  # a parallel state's: from its border
            link["ltail"] = _q("cluster_" + nid)
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
            f"{pad}{_q(tail)} -> {_q(note)} " + _attrs(**link),
        ]

    def block(children: tuple[str, ...], depth: int) -> None:
        pad = "  " * depth
        for cid in children:
            node = graph.nodes[cid]
            if node.compound:
                region = node.parent is not None and graph.nodes[node.parent].parallel
                out.append(f"{pad}subgraph {_q('cluster_' + cid)} {{")
                out.append(
                    f"{pad}  graph "
                    + _attrs(
                        label=_cluster_label(graph, cid, internal.get(cid, [])),
                        # regions: dashed, side by side in their parallel state, as UML has them
                        style=_q("rounded,dashed" if region else "rounded,filled"),
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
                # the default child, only where it matters (every region of a parallel state)
                if not node.parallel and (region or graph.entered(cid)):
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
    if any_region:
        rows = ["<i>any non-final state</i>"]
        rows += [f'<font point-size="9">↺ {_h(x)}</font>' for x in internal.get(ANY, [])]
        out.append(f"  subgraph {_q('cluster_..any')} {{")
        out.append(
            "    graph "
            + _attrs(
                label="<" + "<br/>".join(rows) + ">",
                style=_q("rounded,dashed"),
                color=_q("#777777"),
                fontcolor=_q("#333333"),
            )
        )
        block(any_roots, 2)
        point = _attrs(shape="point", style="invis", width="0.01")
        invisible = [x for r in any_roots for x in graph.leaves(r) if graph.contains(ANY, x)]
        if any(dst not in any_in for src, dst in arrows if src == ANY):
            out.append(f"    {_q('..any..exit')} {point}")
            out.extend(f"    {_q(x)} -> {_q('..any..exit')} [style=invis]" for x in invisible)
        if any_in:
            out.append(f"    {_q('..any..entry')} {point}")
            out.extend(
                f"    {_q('..any..entry')} -> {_q(x)} [style=invis, weight=0]" for x in invisible
            )
        out.append("  }")
        block(tuple(r for r in graph.roots if r not in any_roots), 1)
    else:
        block(graph.roots, 1)

    born, adopted = births(graph, hl) if hl is not None else ({}, {})
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
        out.extend(
            f"  {_q('..start')} -> {_q(entry(leaf))} "
            + _attrs(label=_q(label), style="dashed", color=_q(_GREEN), fontcolor=_q(_GREEN))
            for leaf in graph.leaves_of(state)
        )

    for (source, target), arrow in arrows.items():
        attrs = {"label": "<" + "<br/>".join(_h(x) for x in arrow.labels) + ">"}
        tail, head = exit_(source, target), entry(target)
        if source == ANY:
            if target not in any_in:
                attrs["ltail"] = _q("cluster_..any")
        elif graph.nodes[source].compound and not graph.contains(source, target):
            attrs["ltail"] = _q("cluster_" + source)
        if graph.nodes[target].compound and (source == ANY or not graph.contains(target, source)):
            attrs["lhead"] = _q("cluster_" + target)
        if hl is not None:
            taken = arrow.steps
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


def _cluster_label(graph: Graph, cid: str, internal: list[str]) -> str:
    """A compound state's label: its name, its canonical state (a parallel state's table of
    rules, a row each) and its internal transitions."""
    node = graph.nodes[cid]
    small = '<font point-size="9">{}</font>'
    rows = [f"<b>{_h(node.name)}</b>" + (" <i>(parallel)</i>" if node.parallel else "")]
    if (note := graph.canonical_note(cid)) is not None:
        rows.append(small.format(f"canonical: {_h(note)}"))
    for i, rule in enumerate(node.rules):
        rows.append(small.format(("canonical: " if i == 0 else "") + _h(rule.text)))
    rows += [small.format(f"↺ {_h(x)}") for x in internal]
    return "<" + "<br/>".join(rows) + ">"


def _inside(graph: Graph, roots: tuple[str, ...], node_id: str) -> bool:
    """Whether ``node_id`` is one of ``roots`` or nested in one."""
    return any(graph.contains(r, node_id) for r in roots)
