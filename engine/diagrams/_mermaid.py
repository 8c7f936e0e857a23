"""Mermaid ``stateDiagram-v2`` text: what GitHub, GitLab and most docs sites render.

Every state gets a word-only id (:func:`~engine.diagrams._ids.word_ids`) and its real name
as a quoted label, so names like ``payment_pending``, ``open-overdue``, ``end`` or ``a b``
cannot collide with Mermaid's syntax. Free text (labels, notes) goes through :func:`_text`,
which writes Mermaid's ``#code;`` entities for the characters its lexer would act on
(``;`` ends a statement, ``:`` starts a label, ``#`` starts a comment or an entity).
Composite states cannot carry descriptions in Mermaid, so a compound state's internal
transitions are listed on each of its leaves, and a parallel state's in a note beside it.

A parallel state is a composite state whose regions are Mermaid's concurrent sections (``--``
between them), each a named composite state. Mermaid makes a state that an arrow names a child
of the composite the arrow is written in, so an arrow is written inside a composite state only
when both its ends sit directly in it, and at the top level (which moves nothing) otherwise.
"""

from __future__ import annotations

import json
import re

from ._highlight import Highlight, births, rejected_by_place
from ._ids import word_ids
from ._model import ANY, Graph, colour_of

_ENTITIES = {
    "#": "#35;",
    ";": "#59;",
    ":": "#58;",
    '"': "#quot;",
    "<": "#lt;",
    ">": "#gt;",
    "%": "#37;",
}
_ESCAPE = re.compile("[" + re.escape("".join(_ENTITIES)) + "]")
# Mermaid's lexer takes any line containing "direction TB|BT|LR|RL" as a direction statement.
_DIRECTION = re.compile(r"(direction)(\s+)(TB|BT|LR|RL)", re.IGNORECASE)


def _text(value: str) -> str:
    """Free text made safe for a Mermaid label, description or note (one line)."""
    out = _ESCAPE.sub(lambda m: _ENTITIES[m.group(0)], " ".join(value.split()))
    return _DIRECTION.sub(lambda m: m.group(1)[:-1] + "#110;" + m.group(2) + m.group(3), out)


def _class_name(canonical: str) -> str:
    return "c_" + re.sub(r"[^A-Za-z0-9_]", "_", canonical)


def _steps(numbers: list[int]) -> str:
    return "(" + ", ".join(map(str, numbers)) + ")"


def to_mermaid(graph: Graph, highlight: Highlight | None = None, direction: str = "LR") -> str:
    """The Mermaid text for ``graph``, with one invoice's path marked if ``highlight`` is given."""
    ids = word_ids(graph)
    taken = set(ids.values())

    def fresh(base: str) -> str:
        ident, n = base, 2
        while ident in taken:
            ident, n = f"{base}_{n}", n + 1
        taken.add(ident)
        return ident

    edges = graph.edges()
    if any(e.source == ANY for e in edges):  # one box stands for "from every non-final state"
        ids = {**ids, ANY: fresh("any_state")}
    hl = highlight
    # The title is drawn as HTML, where Mermaid's entities don't apply: keep markup out of it.
    swaps: dict[str, str | int | None] = {"<": "\u2039", ">": "\u203a", "&": "and"}
    title = graph.title.translate(str.maketrans(swaps))
    lines = ["---", f"title: {json.dumps(title, ensure_ascii=False)}", "---"]
    lines += ["stateDiagram-v2", f"    direction {direction}"]

    canonicals = list(dict.fromkeys(n.canonical for n in graph.nodes.values() if n.canonical))
    for c in canonicals:
        lines.append(f"    classDef {_class_name(c)} fill:{colour_of(c)},stroke:#555,color:#000")
    if any(e.source == ANY for e in edges):
        lines.append("    classDef any fill:#ffffff,stroke:#777,stroke-dasharray:4 3,color:#333")
    if hl is not None:
        lines.append("    classDef visited stroke:#1b5e20,stroke-width:3px")
        lines.append("    classDef current stroke:#c62828,stroke-width:4px")

    # Mermaid's layout draws arrows that touch a composite state badly (cut at its border,
    # labels adrift), so arrows run between leaves where they can: one from a composite state
    # starts at each of its leaves, one into it ends at the leaf it enters. A parallel state is
    # the exception, as no one leaf stands for it: an arrow into it ends at a fork bar with an
    # arrow to each region's initial state, and one written on it leaves from its border.
    forks: dict[str, tuple[str, str]] = {}  # configuration entered: fork id, parallel state

    def entry(source: str | None, target: str) -> str:
        """Where an arrow from ``source`` into ``target`` ends: the leaf it enters, or the
        configuration it enters (several leaves), whose fork bar :func:`ident` names."""
        config = graph.entered_from(source, target)
        if len(config.leaves) == 1:
            return config
        if config not in forks:
            inner = graph.place(config)
            assert inner is not None  # the leaves entered are the chart's own
            forks[config] = (fresh(ids[inner] + "_fork"), inner)
        return config

    def ident(state: str) -> str:
        return forks[state][0] if state in forks else ids[state]

    def drawn_from(source: str) -> list[str]:
        node = graph.nodes.get(source)
        if node is None or not node.compound or node.parallel:  # ANY, a leaf, a parallel state
            return [source]
        return [x for child in node.children for x in drawn_from(child)]

    internal: dict[str, list[str]] = {}
    arrows: dict[tuple[str, str], tuple[list[str], list[int]]] = {}
    for e in edges:
        for src in drawn_from(e.source):
            if e.target is None:
                for trigger, label in e.parts:
                    used = hl.internal.get((e.source, trigger), 0) if hl is not None else 0
                    times = f" \u00d7{used}" if used else ""
                    internal.setdefault(src, []).append(label + times)
                continue
            labels, numbers = arrows.setdefault((src, entry(src, e.target)), ([], []))
            labels.extend(x for x in e.labels if x not in labels)
            if hl is not None:
                numbers.extend(
                    n
                    for n in hl.steps.get((e.source, e.target), [])
                    if src == ANY or hl.started_in(graph, src, n)
                )
    starts = {i: entry(None, i) for i in graph.initial}  # every fork known before drawing

    def home(a: str, b: str) -> str | None:
        """The composite state an arrow is written in: the one both ends sit in directly (a
        fork bar sits beside its parallel state), else the top level. Mermaid makes a state
        named in an arrow a child of the composite the arrow is written in, so an arrow to or
        from a state nested deeper must be written at the top level, which moves nothing."""
        if a == ANY:
            return None
        scope = graph.nodes[a].parent
        there = graph.nodes[forks[b][1]].parent if b in forks else graph.nodes[b].parent
        return scope if scope == there else None

    notes = rejected_by_place(graph, hl) if hl is not None else {}
    if "" in notes:  # rejected before the invoice existed: noted on the first initial state
        first = graph.place(graph.enter(graph.initial[0])) or ""
        notes[first] = notes.get(first, []) + [f"{x}, before it existed" for x in notes[""]]
    current = set(hl.current_leaves) if hl is not None else set()

    def edge_line(pad: str, src: str, dst: str, labels: list[str]) -> str:
        text = "<br/>".join(_text(label) for label in labels if label)
        return f"{pad}{src} --> {dst}" + (f" : {text}" if text else "")

    def note(pad: str, cid: str, side: str, texts: list[str]) -> None:
        lines.append(f"{pad}note {side} of {ids[cid]}")
        lines.extend(f"{pad}    {text}" for text in texts)
        lines.append(f"{pad}end note")

    def declare(cid: str, depth: int) -> None:
        pad = "    " * depth
        node = graph.nodes[cid]
        label = _text(node.name)
        if (canonical := graph.canonical_note(cid)) is not None:
            label += " · " + _text(canonical)
        if node.parallel:  # its regions side by side, as Mermaid's concurrent states
            lines.append(f'{pad}state "{label}" as {ids[cid]} {{')
            for i, region in enumerate(node.children):
                if i:
                    lines.append(f"{pad}    --")
                declare(region, depth + 1)
            connect(cid, list(node.children), depth + 1)
            lines.append(f"{pad}}}")
            if cid in internal:
                note(pad, cid, "right", [f"↺ {_text(x)}" for x in internal[cid]])
        elif node.compound:
            lines.append(f'{pad}state "{label}" as {ids[cid]} {{')
            block(cid, list(node.children), depth + 1)
            lines.append(f"{pad}}}")
        else:
            lines.append(f'{pad}state "{label}" as {ids[cid]}')
            lines.extend(f"{pad}{ids[cid]} : ↺ {_text(x)}" for x in internal.get(cid, []))
            if cid in current:
                lines.append(f"{pad}{ids[cid]} : ● current state")
        if cid in notes:
            note(pad, cid, "left", [f"✗ rejected: {_text(x)}" for x in notes[cid]])

    def connect(parent: str | None, children: list[str], depth: int) -> None:
        pad = "    " * depth
        for fork, inner in forks.values():  # declared before any arrow names them
            if graph.nodes[inner].parent == parent:
                lines.append(f"{pad}state {fork} <<fork>>")
        if parent is None:
            for config, (fork, _) in forks.items():  # into regions, nested deeper: see home()
                lines.extend(f"{pad}{fork} --> {ids[x]}" for x in config.split("+"))
            born, adopted = births(graph, hl) if hl is not None else ({}, {})
            for i, start in starts.items():
                lines.append(edge_line(pad, "[*]", ident(start), [born.get(i, "")]))
            for state, text in adopted.items():
                for leaf in graph.leaves_of(state):
                    lines.append(edge_line(pad, "[*]", ids[leaf], [text]))
        for (src, dst), (labels, numbers) in arrows.items():
            if home(src, dst) == parent:
                steps = [_steps(sorted(set(numbers)))] if numbers else []
                lines.append(edge_line(pad, ids[src], ident(dst), labels + steps))
        for cid in children:
            if graph.nodes[cid].final:
                lines.append(f"{pad}{ids[cid]} --> [*]")

    def block(parent: str | None, children: list[str], depth: int) -> None:
        for cid in children:
            declare(cid, depth)
        connect(parent, children, depth)

    if ANY in ids:
        lines.append(f'    state "any non-final state" as {ids[ANY]}')
        lines.extend(f"    {ids[ANY]} : ↺ {_text(x)}" for x in internal.get(ANY, []))
    block(None, list(graph.roots), 1)
    if hl is not None:
        for (frm, to), numbers in hl.extra.items():
            if frm in ids and to in ids:
                labels = ["not in chart", _steps(numbers)]
                lines.append(edge_line("    ", ids[frm], ids[to], labels))

    for c in canonicals:
        members = [ids[n.id] for n in graph.nodes.values() if n.canonical == c and not n.compound]
        if members:
            lines.append(f"    class {','.join(members)} {_class_name(c)}")
    if ANY in ids:
        lines.append(f"    class {ids[ANY]} any")
    if hl is not None:
        visited = [ids[s] for s in graph.nodes if s in hl.states and s not in current]
        if visited:
            lines.append(f"    class {','.join(visited)} visited")
        now = [ids[s] for s in graph.nodes if s in current]
        if now:
            lines.append(f"    class {','.join(now)} current")
    return "\n".join(lines) + "\n"
