"""A chart's state tree, walked once: names, nesting, initial children and canonical states.

The statechart rules every reader of a chart needs live here and nowhere else:

* a nested state is named ``parent.child`` (``open.unpaid``);
* a *parallel* state's children are regions, all active at once: an invoice is in a
  :class:`~engine.chart.configuration.Configuration`, one leaf per active region (one leaf
  outside parallel states), and :attr:`StateTree.configurations` lists every one there can be;
* entering a compound state enters its ``initial`` child (its first child when unset), down to
  a leaf; entering a parallel state enters every region;
* a state without ``canonical`` inherits its nearest ancestor's; a parallel state may instead
  give an ordered table of rules over its regions' states, which decides for every
  configuration inside it (the first matching rule), and must cover them all;
* ``source: '*'`` stands for every non-final leaf (and stands alone: the chart's structure
  refuses ``['*', draft]``).

The compiled :class:`~engine.chart.Chart` builds its machine on a :class:`StateTree` and
exposes it as ``chart.tree``; the loader's meaning check, lint, the diagrams, the testing
helpers and the CLI read that tree instead of walking ``ChartSpec.states`` themselves, so no
two of them can disagree about which leaf ``open`` enters or what ``*`` covers.

Building a tree also checks the rules of the tree itself (no two sibling states of one name,
an ``initial`` only on a compound state and naming one of its children, no final compound
state, regions that are compound states, nothing final or with its own canonical state inside
a parallel state, canonical rules that name its regions and their states and cover every
configuration, and, unless asked not to, a canonical state for every leaf). It
raises every problem, in file order, as one :class:`~engine.errors.ChartError`, each with the
location of the offending state (``states[1].states[0].initial``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import NamedTuple

from ..errors import ChartError, ChartProblem
from ._messages import unknown
from ._regions import (
    MAX_CONFIGURATIONS,
    configurations,
    entered_states,
    in_parallel,
    region_problems,
    rule_canonicals,
    ruled,
)
from .configuration import SEPARATOR, Configuration
from .spec import CANONICAL_STATES, StateSpec

__all__ = ["ANY_SOURCE", "MAX_CONFIGURATIONS", "StateNode", "StateTree"]


#: A transition's source that stands for every non-final leaf.
ANY_SOURCE = "*"


class StateNode(NamedTuple):
    """One state of the tree, leaf or compound, with everything the rules derive for it.

    Attributes:
        name: the full dotted name (``open.unpaid``), as transitions, statuses and invoices
            name it.
        spec: the state as the chart file writes it.
        parent: the enclosing state's full name; ``None`` at the top level.
        children: the full names of the nested states, in chart order (empty for a leaf).
        depth: how deeply it is nested (0 at the top level); not :meth:`Chart.depth
            <engine.chart.Chart.depth>`, which counts transitions from birth.
        canonical: the canonical lifecycle state it has or inherits; ``None`` only when no
            ancestor gives one (the loader refuses that for a leaf).
        initial_child: a compound state's child entered by default (full name); ``None`` for
            a leaf.
        location: where the chart file defines it (``states[1].states[0]``), for messages.
    """

    name: str
    spec: StateSpec
    parent: str | None
    children: tuple[str, ...]
    depth: int
    canonical: str | None
    initial_child: str | None
    location: str

    @property
    def leaf(self) -> bool:
        """Whether it is a leaf (invoices are only ever in leaves)."""
        return not self.children

    @property
    def final(self) -> bool:
        """Whether the chart marks it final (only leaves can be)."""
        return self.spec.final

    @property
    def parallel(self) -> bool:
        """Whether its children are regions, all active at once."""
        return self.spec.parallel and bool(self.children)


class StateTree:
    """The state tree of one chart: every state by full name, in chart order.

    Immutable once built; the compiled chart builds one and shares it (``chart.tree``).

    Args:
        states: the chart's top-level states (``ChartSpec.states``).
        source: names the chart in error messages (its file, or ``<chart 'stripe'>``).
        require_canonical: refuse a leaf without a canonical state. Lint passes ``False`` to
            report such leaves as findings instead.
        problems: a list to add the tree's problems to instead of raising them: the tree is
            then built despite them (a state defined twice counts once, as first defined; an
            unknown ``initial`` child is taken as the first child), so that the loader can go
            on checking the rest of the chart against it.

    Raises:
        ChartError: the states don't form a valid tree (see the module docstring), naming
            ``source`` and the location in the chart file.
    """

    __slots__ = (
        "_by_text",
        "_canonical_of",
        "_compound",
        "_configurations",
        "_entered",
        "_final_leaves",
        "_leaves",
        "_leaves_under",
        "_nodes",
        "_non_final_leaves",
        "_parallel",
        "_roots",
    )

    def __init__(
        self,
        states: Sequence[StateSpec],
        source: str = "<chart>",
        *,
        require_canonical: bool = True,
        problems: list[ChartProblem] | None = None,
    ) -> None:
        nodes: dict[str, StateNode] = {}
        leaves: list[str] = []
        found: list[ChartProblem] = [] if problems is None else problems

        def problem(location: str, text: str) -> None:
            found.append(ChartProblem(source=source, location=location, problem=text))

        def walk(states: Sequence[StateSpec], parent: str | None, where: str) -> None:
            # Depth-first, in file order, checking each state before its children, and going
            # on after a problem: every problem is reported, the first one in the file first.
            names = [s.name for s in states]
            twice: dict[str, list[int]] = {}
            if len(set(names)) < len(names):  # only when some name repeats
                for i, n in enumerate(names):
                    twice.setdefault(n, []).append(i)
                twice = {n: at for n, at in twice.items() if len(at) > 1}
            inherited = None if parent is None else nodes[parent].canonical
            depth = 0 if parent is None else nodes[parent].depth + 1
            for i, s in enumerate(states):
                loc = f"{where}[{i}]"
                full = f"{parent}.{s.name}" if parent else s.name
                if s.name in twice and twice[s.name][0] != i:
                    # Said where the name is given again, naming the first: that one stands.
                    first = f"{where}[{twice[s.name][0]}]"
                    problem(f"{loc}.name", f"state {s.name!r} is defined twice (first at {first})")
                    continue
                region_problems(s, loc, in_parallel(nodes, parent), problem)
                own_canonical = s.canonical if isinstance(s.canonical, str) else None
                canonical = own_canonical or inherited
                if not s.states:
                    if canonical is None and require_canonical and not ruled(nodes, parent):
                        on = (
                            "on the parallel state it is in, or a table of rules there"
                            if in_parallel(nodes, parent)
                            else "here or on its parent"
                        )
                        problem(
                            loc,
                            f"state {s.name!r} has no canonical lifecycle state: add canonical: "
                            f"one of {', '.join(CANONICAL_STATES)} ({on})",
                        )
                    if s.initial is not None:
                        problem(
                            f"{loc}.initial",
                            f"only compound states have initial, and {s.name!r} has no states "
                            f"(got initial: {s.initial!r})",
                        )
                    nodes[full] = StateNode(full, s, parent, (), depth, canonical, None, loc)
                    leaves.append(full)
                    continue
                if s.final:
                    problem(f"{loc}.final", "a compound state can't be final")
                own = [c.name for c in s.states]
                child = s.initial if s.initial is not None else own[0]
                if child not in own:
                    # a child whose name couldn't be read (a broken chart's stand-in, "\0…")
                    # may be the one meant: then there is nothing to say about initial
                    if not any(n.startswith("\0") for n in own):
                        problem(f"{loc}.initial", unknown("state", child, own))
                    child = own[0]
                children = tuple(f"{full}.{c}" for c in own)
                nodes[full] = StateNode(
                    full, s, parent, children, depth, canonical, f"{full}.{child}", loc
                )
                walk(s.states, full, f"{loc}.states")

        walk(states, None, "states")
        self._nodes: Mapping[str, StateNode] = MappingProxyType(nodes)
        self._roots = tuple(s.name for s in states)
        self._parallel = tuple(n for n, node in nodes.items() if node.parallel)
        self._configurations: tuple[Configuration, ...] = ()
        self._canonical_of: dict[str, str | None] = {}
        if not found:  # configurations of a broken tree would only add noise
            self._configurations = configurations(nodes, self._roots, problem)
            self._canonical_of = rule_canonicals(
                nodes, self._configurations, problem, required=require_canonical
            )
        self._by_text = {str(c): c for c in self._configurations}
        if found and problems is None:
            raise ChartError.of(found)
        self._leaves = tuple(leaves)
        self._final_leaves = tuple(n for n in leaves if nodes[n].spec.final)
        self._non_final_leaves = tuple(n for n in leaves if not nodes[n].spec.final)
        self._compound = tuple(n for n, node in nodes.items() if node.children)
        under: dict[str, list[str]] = {name: [] for name in self._compound}
        for leaf in leaves:
            scope = nodes[leaf].parent
            while scope is not None:
                under[scope].append(leaf)
                scope = nodes[scope].parent
        self._leaves_under: dict[str, tuple[str, ...]] = {leaf: (leaf,) for leaf in leaves}
        self._leaves_under.update((name, tuple(found)) for name, found in under.items())
        self._entered = entered_states(nodes)

    # --------------------------------------------------------------------------- reading

    @property
    def nodes(self) -> Mapping[str, StateNode]:
        """Every state, leaf or compound, by full name, in chart order (parents first)."""
        return self._nodes

    @property
    def names(self) -> tuple[str, ...]:
        """Every state's full name, leaf or compound, in chart order."""
        return tuple(self._nodes)

    @property
    def roots(self) -> tuple[str, ...]:
        """The top-level states' names, in chart order."""
        return self._roots

    @property
    def leaves(self) -> tuple[str, ...]:
        """Every leaf, in chart order: the states an invoice can be in."""
        return self._leaves

    @property
    def final_leaves(self) -> tuple[str, ...]:
        """The leaves marked final, in chart order."""
        return self._final_leaves

    @property
    def non_final_leaves(self) -> tuple[str, ...]:
        """The leaves not marked final, in chart order: what ``source: '*'`` stands for."""
        return self._non_final_leaves

    @property
    def compound(self) -> tuple[str, ...]:
        """The compound states' full names, in chart order."""
        return self._compound

    def __contains__(self, name: object) -> bool:
        return name in self._nodes

    def node(self, name: str) -> StateNode:
        """The state called ``name`` (full name).

        Raises:
            KeyError: no state has that name.
        """
        return self._nodes[name]

    def parent(self, name: str) -> str | None:
        """The full name of the state enclosing ``name``; ``None`` at the top level."""
        return self._nodes[name].parent

    def children(self, name: str) -> tuple[str, ...]:
        """The full names of the states nested directly in ``name`` (empty for a leaf)."""
        return self._nodes[name].children

    def enter(self, name: str) -> Configuration:
        """The configuration an invoice is in after entering ``name``: initial children, down
        to a leaf, in every region of a parallel state.

        Raises:
            KeyError: no state has that name.
        """
        return self._entered[name]

    @property
    def parallel(self) -> tuple[str, ...]:
        """The parallel states' full names, in chart order."""
        return self._parallel

    @property
    def configurations(self) -> tuple[Configuration, ...]:
        """Every configuration an invoice could be in, in chart order (a chart without
        parallel states: its leaves)."""
        return self._configurations

    def configuration(self, text: str) -> Configuration | None:
        """``text`` as one of the tree's configurations, or ``None`` when it is none (an
        unknown leaf, a compound state, two leaves of one region). Its leaves may come in any
        order; the configuration has them in chart order."""
        found = self._by_text.get(text)
        if found is None and SEPARATOR in text:
            order = {leaf: i for i, leaf in enumerate(self._leaves)}
            leaves = text.split(SEPARATOR)
            if all(leaf in order for leaf in leaves):
                found = self._by_text.get(SEPARATOR.join(sorted(leaves, key=order.__getitem__)))
        return found

    def configurations_within(self, name: str) -> tuple[Configuration, ...]:
        """The configurations with an active leaf at or under ``name``, in chart order."""
        return tuple(c for c in self._configurations if c.within(name))

    def canonical_of(self, config: str) -> str | None:
        """The canonical state of a configuration: its parallel state's first matching rule,
        or what its leaf has or inherits; ``None`` when nothing gives one."""
        found = self._canonical_of.get(config)
        if found is not None or config in self._canonical_of:
            return found
        return self._nodes[config.split(SEPARATOR, 1)[0]].canonical

    def region_of(self, name: str) -> str | None:
        """The innermost region ``name`` is in (``finalized.payment`` for
        ``finalized.payment.pending``), or ``None`` outside parallel states."""
        scope = self._nodes[name].parent
        while scope is not None:
            parent = self._nodes[scope].parent
            if parent is not None and self._nodes[parent].parallel:
                return scope
            scope = parent
        return None

    def inside(self, name: str) -> tuple[str, ...]:
        """The states nested in ``name``, named relative to it (``succeeded`` in
        ``finalized.payment``), in chart order."""
        return tuple(n[len(name) + 1 :] for n in self._nodes if n.startswith(name + "."))

    def leaves_under(self, name: str) -> tuple[str, ...]:
        """The leaves inside ``name`` (itself, for a leaf), in chart order."""
        return self._leaves_under[name]

    def canonical(self, name: str) -> str | None:
        """The canonical state ``name`` has or inherits (``None``: none on its whole branch)."""
        return self._nodes[name].canonical

    def description(self, name: str) -> str:
        """What the chart file says about ``name`` (empty when it says nothing)."""
        return self._nodes[name].spec.description

    def contains(self, ancestor: str, name: str) -> bool:
        """Whether ``name`` is ``ancestor`` or nested in it.

        Own names never contain a dot, so nesting is exactly a dotted prefix; that also answers
        for names the chart doesn't have (a diagram's history may hold any string).
        """
        return name == ancestor or name.startswith(ancestor + ".")

    def expand_sources(self, sources: Iterable[str]) -> tuple[str, ...]:
        """A transition's sources as the machine takes them: ``*`` becomes every non-final
        leaf; named states, leaf or compound, stay as written (a compound source covers its
        leaves in the machine, after their own transitions). Duplicates are dropped."""
        out: dict[str, None] = {}
        for s in sources:
            if s == ANY_SOURCE:
                out.update(dict.fromkeys(self._non_final_leaves))
            else:
                out[s] = None
        return tuple(out)

    def __repr__(self) -> str:
        return f"<StateTree: {len(self._nodes)} states, {len(self._leaves)} leaves>"
