"""Mermaid ``stateDiagram-v2`` text: what GitHub, GitLab and most docs sites render.

Every state gets a word-only id (:func:`~engine.diagrams._ids.word_ids`) and its real name
as a quoted label, so names like ``payment_pending``, ``open-overdue``, ``end`` or ``a b``
cannot collide with Mermaid's syntax. Free text (labels, notes) goes through :func:`_text`,
which writes Mermaid's ``#code;`` entities for the characters its lexer would act on
(``;`` ends a statement, ``:`` starts a label, ``#`` starts a comment or an entity).
Composite states cannot carry descriptions in Mermaid, so their internal transitions are
written as a note.
"""

from __future__ import annotations

import json
import re

from ._ids import word_ids
from ._model import ANY, Graph, Highlight, colour_of

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
    edges = graph.edges()
    if any(e.source == ANY for e in edges):  # one box stands for "from every non-final state"
        any_id, n = "any_state", 2
        while any_id in ids.values():
            any_id, n = f"any_state_{n}", n + 1
        ids = {**ids, ANY: any_id}
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
    # labels adrift), so every arrow here runs between leaves: a transition from a composite
    # state starts at each of its leaves, one into it ends at the leaf it enters.
    internal: dict[str, list[str]] = {}
    arrows: dict[tuple[str, str], list[str]] = {}
    for e in edges:
        sources = [ANY] if e.source == ANY else graph.leaves(e.source)
        for src in sources:
            if e.target is None:
                for trigger, label in e.parts:
                    used = hl.internal.get((e.source, trigger), 0) if hl is not None else 0
                    times = f" \u00d7{used}" if used else ""
                    internal.setdefault(src, []).append(label + times)
                continue
            labels = arrows.setdefault((src, graph.enter(e.target)), [])
            labels.extend(x for x in e.labels if x not in labels)

    def steps_of(src: str, dst: str) -> list[int]:
        if hl is None:
            return []
        if src != ANY:
            return hl.leaf_steps.get((src, dst), [])
        return sorted(  # moves no leaf's own arrow explains
            n
            for (f, t), ns in hl.leaf_steps.items()
            if t == dst and (f, dst) not in arrows and graph.contains(ANY, f)
            for n in ns
        )

    def rejected_at(leaf: str) -> list[str]:
        """Events rejected in ``leaf``; those rejected before birth go on the first initial."""
        if hl is None:
            return []
        before = hl.rejected.get("", []) if leaf == graph.enter(graph.initial[0]) else []
        return hl.rejected.get(leaf, []) + [f"{ev}, before it existed" for ev in before]

    def home(a: str, b: str) -> str | None:
        """The innermost composite state holding both ends (None: the top level)."""
        if a == ANY:
            return None
        scope = graph.nodes[a].parent
        while scope is not None and not graph.contains(scope, b):
            scope = graph.nodes[scope].parent
        return scope

    def edge_line(pad: str, src: str, dst: str, labels: list[str]) -> str:
        text = "<br/>".join(_text(label) for label in labels)
        return f"{pad}{src} --> {dst}" + (f" : {text}" if text else "")

    def block(parent: str | None, children: list[str], depth: int) -> None:
        pad = "    " * depth
        for cid in children:
            node = graph.nodes[cid]
            label = _text(node.name)
            if (note := graph.canonical_note(cid)) is not None:
                label += " · " + _text(note)
            if node.compound:
                lines.append(f'{pad}state "{label}" as {ids[cid]} {{')
                block(cid, list(node.children), depth + 1)
                lines.append(f"{pad}}}")
                continue
            lines.append(f'{pad}state "{label}" as {ids[cid]}')
            lines.extend(f"{pad}{ids[cid]} : ↺ {_text(x)}" for x in internal.get(cid, []))
            if hl is not None and hl.current == cid:
                lines.append(f"{pad}{ids[cid]} : ● current state")
            if hl is not None and (refused := rejected_at(cid)):
                lines.append(f"{pad}note left of {ids[cid]}")
                lines.extend(f"{pad}    ✗ rejected: {_text(ev)}" for ev in refused)
                lines.append(f"{pad}end note")
        if parent is None:
            born, adopted = graph.births(hl) if hl is not None else ({}, {})
            for i in graph.initial:
                labels = [born[i]] if i in born else []
                lines.append(edge_line(pad, "[*]", ids[graph.enter(i)], labels))
            for state, text in adopted.items():
                lines.append(edge_line(pad, "[*]", ids[state], [text]))
        for (src, dst), labels in arrows.items():
            if home(src, dst) == parent:
                numbers = steps_of(src, dst)
                lines.append(
                    edge_line(
                        pad, ids[src], ids[dst], labels + ([_steps(numbers)] if numbers else [])
                    )
                )
        for cid in children:
            if graph.nodes[cid].final:
                lines.append(f"{pad}{ids[cid]} --> [*]")

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
        visited = [ids[s] for s in graph.nodes if s in hl.states and s != hl.current]
        if visited:
            lines.append(f"    class {','.join(visited)} visited")
        if hl.current in ids:
            lines.append(f"    class {ids[hl.current]} current")
    return "\n".join(lines) + "\n"
