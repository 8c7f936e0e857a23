"""The one graph every diagram format is drawn from, extracted once from a compiled chart.

The states tree is the chart's own (:attr:`Chart.tree <engine.chart.Chart.tree>`, the tree
its machine runs on): leaves, initial children and inherited canonical states are read from
it, never worked out again here.

Two views of the same transitions serve two kinds of output:

* **machine formats** (SCXML, XState) must behave exactly like the chart, so they get
  :attr:`Graph.transitions`: the chart's transitions in chart order, with sources as written
  (``*`` expanded to every non-final leaf by the chart's tree, as its machine has it),
  because moving a source up to a parent state would change which transition wins;
* **pictures** (Mermaid, DOT) must be readable, so they get :meth:`Graph.edges`: each
  transition's sources replaced by the fewest states that cover them (all of ``open``'s
  children become ``open``), parallel edges merged into one label, and internal (no-op)
  transitions listed inside the state they belong to, the way UML draws internal activities.

A highlight (:class:`Highlight`) is computed here too, from an invoice's history, so that every
picture format marks the same states, steps and rejected events.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from ..chart.expr import Guard
from ..chart.tree import ANY_SOURCE, StateTree

if TYPE_CHECKING:
    from ..chart import Chart

__all__ = ["ANY", "Edge", "Graph", "Highlight", "HistoryEntry", "Node", "Transition", "build"]

#: The source of a picture's edge for ``source: "*"`` transitions (no state can be named so).
ANY = ANY_SOURCE

#: Fill colours per canonical state (light fills, so black labels stay readable).
CANONICAL_COLOURS = {
    "draft": "#eceff1",
    "open": "#d6e8fb",
    "paid": "#d5f2d8",
    "void": "#dcdcdc",
    "uncollectible": "#fde2c8",
    "refunded": "#e9ddf7",
    "credited": "#d3f0ee",
}
_SPARE_COLOURS = ("#fff4bf", "#f7d6e6", "#e1f0c4", "#d9e4f5")


def colour_of(canonical: str | None) -> str:
    """A fill colour for a canonical state; unknown canonical names get a stable spare one."""
    if canonical is None:
        return "#ffffff"
    if canonical in CANONICAL_COLOURS:
        return CANONICAL_COLOURS[canonical]
    return _SPARE_COLOURS[sum(map(ord, canonical)) % len(_SPARE_COLOURS)]


class HistoryEntry(Protocol):
    """What a picture needs from one history entry; :class:`engine.Outcome` is one.

    ``status`` is ``applied``, ``unchanged``, ``duplicate``, ``rejected`` or ``invalid``;
    states are chart state names (``open.unpaid``); ``from_state`` is ``None`` at birth. An
    optional ``adopted`` attribute (Outcome has it) marks an invoice first seen through a
    non-creating event; the picture labels its first arrow "adopted".
    """

    @property
    def status(self) -> str: ...
    @property
    def trigger(self) -> str | None: ...
    @property
    def from_state(self) -> str | None: ...
    @property
    def to_state(self) -> str | None: ...
    @property
    def event_type(self) -> str | None: ...


@dataclass(frozen=True)
class Node:
    """A state of the chart: a leaf, or a compound state whose children nest under it."""

    id: str  # the chart's full name: "open.unpaid"
    name: str  # its own name: "unpaid"
    parent: str | None
    children: tuple[str, ...]
    initial_child: str | None  # compound states: the child entered by default
    canonical: str | None  # leaves: always set; compound states: only if the chart says so
    final: bool
    description: str

    @property
    def compound(self) -> bool:
        return bool(self.children)


@dataclass(frozen=True)
class Transition:
    """One chart transition, for the machine formats: sources exactly as the machine has them."""

    trigger: str
    sources: tuple[str, ...]  # state ids, leaf or compound; "*" already expanded
    target: str | None  # None: internal (legal, changes nothing)
    guard: Guard | None
    description: str
    any_source: bool = False  # written as "*": from every non-final state


@dataclass(frozen=True)
class Edge:
    """One arrow of a picture: from a state to a state, with every trigger that takes it.

    ``source`` is :data:`ANY` for a transition written with ``source: "*"``: pictures draw it
    once, from an "any non-final state" box, instead of from every state.
    """

    source: str
    target: str | None  # None: an internal transition, listed inside ``source``
    parts: tuple[tuple[str, str], ...]  # (trigger, label): ("pay", "pay [$.amountDue == 0]")

    @property
    def labels(self) -> list[str]:
        return [label for _, label in self.parts]

    @property
    def triggers(self) -> list[str]:
        return list(dict.fromkeys(trigger for trigger, _ in self.parts))


@dataclass
class Highlight:
    """One invoice's path through the chart, ready to draw.

    Attributes:
        states: every state the invoice was in.
        steps: for each edge taken, the step numbers (1-based) it was taken at.
        leaf_steps: the same, by the (from, to) leaf states of each move.
        start_steps: the initial state the invoice was born in, and at which step.
        internal: internal transitions used: (state, trigger) -> how many times.
        stays: transitions taken from a leaf back to itself (legal, changing nothing, as a
            transition from a compound state to a leaf inside it does from that leaf):
            (leaf, trigger) -> how many times.
        rejected: per state, the events rejected while the invoice was in it (``""``: before
            it existed, when the engine refuses unseen invoices).
        current: the state the invoice is in now.
        adopted: states the invoice was first seen in without a creating event.
    """

    states: set[str] = field(default_factory=set)
    steps: dict[tuple[str, str | None], list[int]] = field(default_factory=dict)
    leaf_steps: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    start_steps: dict[str, list[int]] = field(default_factory=dict)
    internal: dict[tuple[str, str], int] = field(default_factory=dict)
    stays: dict[tuple[str, str], int] = field(default_factory=dict)
    rejected: dict[str, list[str]] = field(default_factory=dict)
    current: str | None = None
    adopted: set[str] = field(default_factory=set)
    extra: dict[tuple[str, str], list[int]] = field(default_factory=dict)  # moves not in the chart


@dataclass(frozen=True)
class Graph:
    """A chart as a graph: nodes in chart order (parents before children), and transitions."""

    name: str
    title: str
    tree: StateTree  # the compiled chart's own tree: leaves, initial children, nesting
    nodes: dict[str, Node]
    roots: tuple[str, ...]
    initial: tuple[str, ...]  # where invoices are born, as the chart names them
    transitions: tuple[Transition, ...]

    def leaves(self, node_id: str | None = None) -> list[str]:
        """The leaf states under ``node_id`` (itself if a leaf), or every leaf, in chart order."""
        return list(self.tree.leaves if node_id is None else self.tree.leaves_under(node_id))

    def enter(self, node_id: str) -> str:
        """The leaf an invoice is in after entering ``node_id`` (initial children, down)."""
        return self.tree.enter(node_id)

    def entered(self, node_id: str) -> bool:
        """Whether some transition (or birth) enters ``node_id`` itself, not only a child."""
        return node_id in self.initial or any(t.target == node_id for t in self.transitions)

    def canonical_note(self, node_id: str) -> str | None:
        """The canonical state worth writing on ``node_id``: not when its name or an
        enclosing state's already says it (``open.unpaid`` inside ``open``)."""
        node = self.nodes[node_id]
        if node.canonical is None or node.canonical == node.name:
            return None
        parent = node.parent
        while parent is not None:
            p = self.nodes[parent]
            if node.canonical in (p.name, p.canonical):
                return None
            parent = p.parent
        return node.canonical

    def contains(self, ancestor: str, node_id: str) -> bool:
        """Whether ``node_id`` is ``ancestor`` or nested inside it (:data:`ANY`: any non-final)."""
        if ancestor == ANY:
            return node_id in self.nodes and not self.nodes[node_id].final
        return self.tree.contains(ancestor, node_id)

    def cover(self, leaves: Iterable[str]) -> list[str]:
        """The fewest states whose leaves are exactly ``leaves`` (in chart order)."""
        wanted = set(leaves)
        out: list[str] = []

        def walk(ids: Sequence[str]) -> None:
            for i in ids:
                under = set(self.tree.leaves_under(i))
                if under <= wanted:
                    out.append(i)
                elif under & wanted:
                    walk(self.nodes[i].children)

        walk(self.roots)
        return out

    def edges(self) -> list[Edge]:
        """The picture's arrows: sources covered, parallel arrows merged, in chart order."""
        merged: dict[tuple[str, str | None], list[tuple[str, str]]] = {}
        for t in self.transitions:
            leaves = [leaf for s in t.sources for leaf in self.tree.leaves_under(s)]
            label = t.trigger + (f" [{t.guard}]" if t.guard is not None else "")
            for src in [ANY] if t.any_source else self.cover(leaves):
                parts = merged.setdefault((src, t.target), [])
                if (t.trigger, label) not in parts:
                    parts.append((t.trigger, label))
        return [Edge(src, dst, tuple(parts)) for (src, dst), parts in merged.items()]

    def births(self, hl: Highlight) -> tuple[dict[str, str], dict[str, str]]:
        """Labels for the start arrows of a highlighted picture: ``(1)`` on the chart's own
        initial arrows, and extra arrows into the states an invoice was adopted in that are not
        initial (``adopted (1)``), so every step number appears somewhere."""
        steps: dict[str, list[int]] = {}
        extra: dict[str, list[int]] = {}
        adopted: set[str] = set()
        for state, numbers in hl.start_steps.items():
            home = next((i for i in self.initial if self.contains(i, state)), None)
            key = home if home is not None else state
            (steps if home is not None else extra).setdefault(key, []).extend(numbers)
            if state in hl.adopted:
                adopted.add(key)

        def label(key: str, numbers: list[int]) -> str:
            text = "(" + ", ".join(map(str, sorted(numbers))) + ")"
            return f"adopted {text}" if key in adopted else text

        return (
            {k: label(k, v) for k, v in steps.items()},
            {k: label(k, v) for k, v in extra.items()},
        )

    def highlight(self, history: Iterable[HistoryEntry]) -> Highlight:
        """Where one invoice went: map each history entry onto the picture's edges and states."""
        hl = Highlight()
        edges = self.edges()
        step = 0
        for entry in history:
            frm, to, trig = entry.from_state, entry.to_state, entry.trigger
            what = entry.event_type or trig or "?"
            if trig and trig != entry.event_type and entry.event_type:
                what += f" ({trig})"
            if entry.status == "rejected":  # "": before the invoice existed (reject policy)
                hl.rejected.setdefault(frm or "", []).append(what)
                continue
            if entry.status not in ("applied", "unchanged"):
                continue  # duplicates and unreadable deliveries change nothing and have no state
            for s in (frm, to):
                if s in self.nodes:
                    hl.states.add(s)
            if entry.status == "unchanged":
                if trig and frm:
                    for e in edges:
                        if trig not in e.triggers or not self.contains(e.source, frm):
                            continue
                        if e.target is None:
                            key = (e.source, trig)
                            hl.internal[key] = hl.internal.get(key, 0) + 1
                            break
                        if self.contains(e.target, frm):  # a transition back to where it was
                            hl.stays[(frm, trig)] = hl.stays.get((frm, trig), 0) + 1
                            break
                hl.current = frm or to or hl.current
                continue
            if to is None:
                continue
            hl.current = to
            step += 1
            if frm is None:
                if getattr(entry, "adopted", False):
                    hl.adopted.add(to)
                hl.start_steps.setdefault(to, []).append(step)
                continue
            hl.leaf_steps.setdefault((frm, to), []).append(step)
            for e in edges:
                if (
                    e.target is not None
                    and (trig is None or trig in e.triggers)
                    and self.contains(e.source, frm)
                    and self.contains(e.target, to)
                ):
                    hl.steps.setdefault((e.source, e.target), []).append(step)
                    break
            else:
                hl.extra.setdefault((frm, to), []).append(step)
        return hl


def _node(tree: StateTree, name: str) -> Node:
    state = tree.node(name)
    return Node(
        id=name,
        name=state.spec.name,
        parent=state.parent,
        children=state.children,
        initial_child=state.initial_child,
        # A picture writes a compound state's canonical state only where the chart gives it;
        # its leaves show what they inherit.
        canonical=state.canonical if state.leaf else state.spec.canonical,
        final=state.final,
        description=state.spec.description,
    )


def build(chart: Chart) -> Graph:
    """Extract the graph of ``chart``: its compiled state tree, and its transitions as written.

    Leaves, initial children, inherited canonical states and what ``*`` covers are read from
    ``chart.tree``, the tree the chart's machine runs on, so a picture can't disagree with it.
    """
    spec, tree = chart.spec, chart.tree
    transitions = tuple(
        Transition(
            trigger=t.trigger,
            sources=tree.expand_sources(t.source),
            target=t.dest,
            guard=t.guard,
            description=t.description,
            any_source=list(t.source) == [ANY_SOURCE],
        )
        for t in spec.transitions
    )
    return Graph(
        name=spec.provider,
        title=spec.title or spec.provider,
        tree=tree,
        nodes={name: _node(tree, name) for name in tree.nodes},
        roots=tree.roots,
        initial=tuple(spec.initial),
        transitions=transitions,
    )
