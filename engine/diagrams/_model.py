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

Parallel states are nodes too (``Node.parallel``), whose children are their regions. An
invoice is in a configuration, one leaf per active region; :meth:`Graph.enter` says which leaves
entering a state enters, and :meth:`Graph.targets` where a machine format must point a
transition so that it exits and enters what the chart's own machine does.

One invoice's history is mapped onto the picture by :mod:`._highlight`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from ..chart.configuration import SEPARATOR, Configuration
from ..chart.expr import Guard
from ..chart.tree import ANY_SOURCE, StateTree

if TYPE_CHECKING:
    from ..chart import Chart

__all__ = ["ANY", "Edge", "Graph", "Node", "Rule", "Transition", "build"]

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


class Rule(NamedTuple):
    """One row of a parallel state's canonical table: the first row whose regions are all in
    one of the states it names gives a configuration its canonical state."""

    when: tuple[tuple[str, tuple[str, ...]], ...]  # (region, its states); empty: always
    canonical: str

    @property
    def text(self) -> str:
        """The row in words: ``paid if pay is done``, ``open otherwise``."""
        if not self.when:
            return f"{self.canonical} otherwise"
        cond = " and ".join(f"{region} is {' or '.join(names)}" for region, names in self.when)
        return f"{self.canonical} if {cond}"

    def as_json(self) -> dict[str, object]:
        """The row as the chart file writes it: ``{"when": {...}, "canonical": ...}``."""
        return {"when": {r: list(names) for r, names in self.when}, "canonical": self.canonical}


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
    parallel: bool = False  # its children are regions, all active at once
    rules: tuple[Rule, ...] = ()  # a parallel state's table of canonical rules, in order

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

    def enter(self, node_id: str) -> Configuration:
        """The leaves entering ``node_id`` activates inside it: initial children, down to a
        leaf, in every region of a parallel state (one leaf outside those). Not the regions
        around it, which :meth:`entered_from` adds where a transition enters them."""
        leaves = self.tree.enter(node_id).leaves
        return Configuration.of(x for x in leaves if self.tree.contains(node_id, x))

    def entered_from(self, source: str | None, target: str) -> Configuration:
        """The leaves a transition from ``source`` (``None``: birth, :data:`ANY`: anywhere)
        to ``target`` enters: those ``target`` enters, and every other region's initial leaf
        of each parallel state around ``target`` that ``source`` is outside of."""
        leaves = set(self.enter(target).leaves)
        for scope in self.ancestors(target):
            if source not in (None, ANY) and self.contains(scope, source):
                break
            if self.nodes[scope].parallel:
                for region in self.nodes[scope].children:
                    if not self.contains(region, target):
                        leaves.update(self.enter(region).leaves)
        return Configuration.of(x for x in self.tree.leaves if x in leaves)

    def ancestors(self, node_id: str) -> list[str]:
        """The states enclosing ``node_id``, innermost first."""
        out: list[str] = []
        parent = self.nodes[node_id].parent
        while parent is not None:
            out.append(parent)
            parent = self.nodes[parent].parent
        return out

    def leaves_of(self, config: str | None) -> tuple[str, ...]:
        """The states of a configuration's text (``a.x+a.y``) that the chart has, in its order
        (a history may name states a chart no longer has; ``None``: none)."""
        if not config:
            return ()
        return tuple(s for s in config.split(SEPARATOR) if s in self.nodes)

    def place(self, config: str) -> str | None:
        """Where a picture draws a note about configuration ``config``: its leaf, or the
        innermost state holding all its leaves (their parallel state); ``None`` when the
        chart has none of them."""
        leaves = self.leaves_of(config)
        if not leaves:
            return None
        scope: str | None = leaves[0]
        while scope is not None and not all(self.contains(scope, x) for x in leaves):
            scope = self.nodes[scope].parent
        return scope

    def targets(self, source: str, target: str) -> tuple[tuple[str, ...], bool]:
        """Where a machine format's transition from ``source`` to ``target`` must point, and
        whether it must be internal (SCXML's ``type="internal"``), so that it exits and enters
        what the chart's machine does.

        SCXML and XState exit everything under a transition's *domain*, the innermost state
        enclosing both ends (for SCXML never a parallel one). Two cases would exit more than
        the chart's machine does, which keeps a transition inside one region to that region:

        * into its own region (``source: a.pay.done, dest: a.pay``): the domain is the
          parallel state ``a`` or above it, so its other regions would start again; pointing
          at the leaves ``a.pay`` enters (``a.pay.pending``) keeps the domain in the region;
        * from a compound state into a state inside it (``source: a.pay, dest: a.pay.done``):
          an internal transition doesn't exit and enter the source itself.
        """
        domain = next(
            (
                a
                for a in self.ancestors(source)
                if not self.nodes[a].parallel and self.contains(a, target)
            ),
            None,
        )
        out: tuple[str, ...] = (target,)
        scope = self.nodes[target].parent
        while scope is not None and scope != domain:
            if self.nodes[scope].parallel:
                out = self.enter(target).leaves
                break
            scope = self.nodes[scope].parent
        inside = self.nodes[source].compound and all(
            t != source and self.contains(source, t) for t in out
        )
        return out, inside

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


def _node(tree: StateTree, name: str) -> Node:
    state = tree.node(name)
    own = state.spec.canonical
    rules = own if isinstance(own, list) else []
    own = own if isinstance(own, str) else None
    return Node(
        id=name,
        name=state.spec.name,
        parent=state.parent,
        children=state.children,
        initial_child=state.initial_child,
        # A picture writes a compound state's canonical state only where the chart gives it;
        # its leaves show what they inherit.
        canonical=state.canonical if state.leaf else own,
        final=state.final,
        description=state.spec.description,
        parallel=state.parallel,
        rules=tuple(
            Rule(tuple((r, tuple(v)) for r, v in rule.when.items()), rule.canonical)
            for rule in rules
        ),
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
