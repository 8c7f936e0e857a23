"""Parallel states for the state tree: every configuration a chart has, and the canonical state
a parallel state's table of rules gives each configuration inside it (checked total).

Split from :mod:`.tree`, which builds its nodes first and then asks these functions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from itertools import product
from typing import TYPE_CHECKING

from ._messages import unknown
from .configuration import Configuration
from .spec import CanonicalRule, StateSpec

if TYPE_CHECKING:
    from .tree import StateNode

__all__ = [
    "MAX_CONFIGURATIONS",
    "configurations",
    "enter_towards",
    "entered_states",
    "in_parallel",
    "outermost_parallel",
    "region_problems",
    "rule_canonicals",
    "ruled",
]

#: The most configurations a chart may have (parallel regions multiply): beyond it a chart is
#: refused rather than loaded for minutes. Loading asks the machine every (configuration,
#: trigger) question, about half a millisecond each inside ``transitions``: 1,000
#: configurations of a ten-trigger chart load in a few seconds.
MAX_CONFIGURATIONS = 1_000

Problem = Callable[[str, str], None]


def in_parallel(nodes: Mapping[str, StateNode], name: str | None) -> bool:
    """Whether ``name`` is a parallel state or inside one."""
    while name is not None:
        node = nodes[name]
        if node.parallel:
            return True
        name = node.parent
    return False


def region_problems(s: StateSpec, loc: str, inside: bool, problem: Problem) -> None:
    """The rules of parallel states for one state as the chart writes it (at ``loc``;
    ``inside``: in a parallel state): regions are compound states, a parallel state has no
    ``initial``, and nothing inside one is final or has a canonical state of its own."""
    if s.name.startswith("\0"):  # a name that couldn't be read: said where it is written
        return
    if inside and s.canonical is not None:
        problem(
            f"{loc}.canonical",
            f"state {s.name!r} is inside a parallel state, whose canonical state (or table of "
            "rules) decides for its configurations: move it there",
        )
    if inside and s.final:
        problem(
            f"{loc}.final",
            f"state {s.name!r} is inside a parallel state: nothing there can be final, as a "
            "transition out of the parallel state leaves it",
        )
    if not s.parallel:
        return
    if not s.states:
        problem(f"{loc}.parallel", f"parallel state {s.name!r} has no regions (states)")
    if s.initial is not None:
        problem(
            f"{loc}.initial",
            f"parallel state {s.name!r} enters every region: it has no initial "
            f"(got initial: {s.initial!r})",
        )
    for j, region in enumerate(s.states):
        if not region.states:
            problem(
                f"{loc}.states[{j}]",
                f"region {region.name!r} of parallel state {s.name!r} has no states: a "
                "region is a compound state, with its own initial",
            )


def ruled(nodes: Mapping[str, StateNode], name: str | None) -> bool:
    """Whether ``name`` is, or is inside, a parallel state with a table of canonical rules
    (which then decides the canonical state, checked total by :func:`rule_canonicals`)."""
    while name is not None:
        node = nodes[name]
        if node.parallel and isinstance(node.spec.canonical, list):
            return True
        name = node.parent
    return False


def configurations(
    nodes: Mapping[str, StateNode], roots: Sequence[str], problem: Problem
) -> tuple[Configuration, ...]:
    """Every configuration, in chart order: a leaf's is itself, a compound state's are its
    children's, a parallel state's are one of each region's, every combination."""
    too_many = False

    def of(name: str) -> list[tuple[str, ...]]:
        nonlocal too_many
        node = nodes[name]
        if not node.children:
            return [(name,)]
        if not node.parallel:
            return [c for child in node.children for c in of(child)]
        regions = [of(region) for region in node.children]
        count = 1
        for r in regions:
            count *= len(r)
        if count > MAX_CONFIGURATIONS:
            too_many = True
            problem(
                node.location,
                f"parallel state {name!r} has {count:,} configurations (its regions' states "
                f"multiplied); at most {MAX_CONFIGURATIONS:,} are supported (loading asks the "
                "machine about each one): split the chart, or make fewer states independent",
            )
            return [tuple(r[0][0] for r in regions)]
        return [tuple(leaf for part in combo for leaf in part) for combo in product(*regions)]

    out = [Configuration.of(c) for root in roots for c in of(root)]
    if not too_many and len(out) > MAX_CONFIGURATIONS:
        problem(
            "states",
            f"the chart has {len(out):,} configurations; at most {MAX_CONFIGURATIONS:,} "
            "are supported",
        )
    return tuple(out)


def rule_canonicals(
    nodes: Mapping[str, StateNode],
    configs: Sequence[Configuration],
    problem: Problem,
    *,
    required: bool,
) -> dict[str, str | None]:
    """The canonical state of every configuration inside a (top) parallel state with a table
    of rules: the first matching rule's. The rules must name the state's regions and their
    states, and (``required``) cover every configuration inside it."""
    out: dict[str, str | None] = {}
    for name, node in nodes.items():
        rules = node.spec.canonical
        if not node.parallel or not isinstance(rules, list) or in_parallel(nodes, node.parent):
            continue
        regions = {nodes[r].spec.name: r for r in node.children}
        for i, rule in enumerate(rules):
            where = f"{node.location}.canonical[{i}].when"
            for region, values in rule.when.items():
                full = regions.get(region)
                if full is None:
                    problem(where, unknown("region", region, list(regions)))
                    continue
                inside = [n[len(full) + 1 :] for n in nodes if n.startswith(full + ".")]
                for v in values:
                    if v not in inside:
                        problem(
                            f"{where}.{region}", unknown(f"state of region {region!r}", v, inside)
                        )
        uncovered: list[str] = []
        for config in configs:
            if config.within(name):
                found = _first_rule(rules, regions, config)
                if found is None:
                    uncovered.append(config)
                out[config] = found
        if uncovered and required:
            problem(
                f"{node.location}.canonical",
                f"no canonical rule of {name!r} matches {len(uncovered)} of its "
                f"configurations, e.g. {uncovered[0]!r}: end the table with a rule without when",
            )
    return out


def _first_rule(
    rules: Sequence[CanonicalRule], regions: Mapping[str, str], config: Configuration
) -> str | None:
    """The canonical state the first rule matching ``config`` gives (``None``: none does)."""
    for rule in rules:
        if all(
            any(config.within(f"{regions[r]}.{v}") for v in values)
            for r, values in rule.when.items()
            if r in regions
        ):
            return rule.canonical
    return None


def outermost_parallel(nodes: Mapping[str, StateNode], name: str) -> str | None:
    found = None
    scope: str | None = name
    while scope is not None:
        if nodes[scope].parallel:
            found = scope
        scope = nodes[scope].parent
    return found


def entered_states(nodes: Mapping[str, StateNode]) -> dict[str, Configuration]:
    """The configuration entering each state gives: initial children down to a leaf, every
    region of a parallel state, and, for a state inside a parallel state, the other regions'
    defaults (Lago's ``finalized.payment.failed``: overdue no, dispute none)."""
    # Children come after their parent in chart order: backwards, a compound state's initial
    # child already knows what it enters.
    entered: dict[str, Configuration] = {}
    for name, node in reversed(list(nodes.items())):
        if node.parallel:
            entered[name] = Configuration.of(
                leaf for region in node.children for leaf in entered[region].leaves
            )
        elif node.initial_child is None:
            entered[name] = Configuration(name)
        else:
            entered[name] = entered[node.initial_child]
    defaults = dict(entered)  # what each state enters on its own, read while replacing
    for name in nodes:
        outer = outermost_parallel(nodes, name)
        if outer is not None and outer != name:
            entered[name] = enter_towards(nodes, defaults, outer, name)
    return entered


def enter_towards(
    nodes: Mapping[str, StateNode], entered: Mapping[str, Configuration], scope: str, target: str
) -> Configuration:
    """The configuration entering ``scope`` gives when ``target`` (inside it) must be active:
    the regions on the way to it enter towards it, every other region its default."""
    if scope == target or not nodes[scope].children:
        return entered[target]
    node = nodes[scope]
    on_way = next(c for c in node.children if target == c or target.startswith(c + "."))
    if not node.parallel:
        return enter_towards(nodes, entered, on_way, target)
    return Configuration.of(
        leaf
        for region in node.children
        for leaf in (
            enter_towards(nodes, entered, region, target) if region == on_way else entered[region]
        ).leaves
    )
