"""Lint's rules on the graph of configurations the machine runs: what is unreachable, what
can't be left or never settles, what a final state lets out, and which triggers move several
regions of a parallel state at once. (:mod:`.lint` runs them with the others.)"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ._findings import RULES, Finding
from .tree import StateTree

if TYPE_CHECKING:
    from .compiled import Chart

__all__ = ["finding", "graph_rules", "several_regions"]


def finding(rule: str, target: str, message: str) -> Finding:
    """A finding of ``rule``, at its severity."""
    return Finding(rule=rule, severity=RULES[rule][0], target=target, message=message)


def _names(values: Iterable[str]) -> str:
    return ", ".join(repr(v) for v in values)


def _successors(chart: Chart) -> dict[str, dict[str, list[str]]]:
    """For each leaf, the other leaves it can move to, each with the triggers that lead there."""
    succ: dict[str, dict[str, list[str]]] = {s: {} for s in chart.states}
    for state in chart.states:
        for trigger in chart.triggers:
            for dest, _ in chart.steps(state, trigger):
                if dest is not None and dest != state:
                    triggers = succ[state].setdefault(dest, [])
                    if trigger not in triggers:
                        triggers.append(trigger)
    return succ


def _closure(starts: Iterable[str], edges: dict[str, set[str]]) -> set[str]:
    seen = set(starts)
    queue = deque(seen)
    while queue:
        for nxt in edges.get(queue.popleft(), ()):
            if nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    return seen


def _top_parallel(tree: StateTree, name: str) -> str | None:
    """The outermost parallel state ``name`` is in (or is), if any."""
    found = None
    scope: str | None = name
    while scope is not None:
        if tree.node(scope).parallel:
            found = scope
        scope = tree.parent(scope)
    return found


def _unreachable(chart: Chart, reachable: set[str]) -> list[Finding]:
    """A state no configuration reachable from birth has is an error (``unreachable``); in a
    parallel state whose every state some reachable configuration has, a combination none
    reaches is only a warning (``unreachable-configuration``): regions are often linked."""
    tree = chart.tree
    found: list[Finding] = []
    start = _names(chart.initial_states)
    said: set[str] = set()
    for s in chart.states:
        if s in reachable:
            continue
        top = _top_parallel(tree, s.leaves[0])
        if top is None:
            found.append(
                finding(
                    "unreachable",
                    s,
                    f"no transition leads to {s!r} from the initial state(s) {start}",
                )
            )
            continue
        inside = [c for c in tree.configurations_within(top) if c in reachable]
        if not inside:
            if top not in said:
                said.add(top)
                found.append(
                    finding(
                        "unreachable",
                        top,
                        f"no transition leads to {top!r} from the initial state(s) {start}",
                    )
                )
            continue
        lost = [leaf for leaf in s.leaves if not any(leaf in c.leaves for c in inside)]
        for leaf in lost:
            if leaf not in said:
                said.add(leaf)
                found.append(
                    finding(
                        "unreachable",
                        leaf,
                        f"no transition leads to {leaf!r} from the initial state(s) {start}",
                    )
                )
        if not lost:
            found.append(
                finding(
                    "unreachable-configuration",
                    s,
                    f"no sequence of transitions from {start} reaches the configuration {s!r}, "
                    "though each of its states is reached",
                )
            )
    return found


def several_regions(chart: Chart) -> list[Finding]:
    """A trigger with transitions inside several regions of one parallel state moves them all
    at once (the machine fires each region's): worth saying, as it is easy to do by mistake.
    (Leaving the parallel state, ``'*'`` to ``void``, or an internal transition moves none.)"""
    tree = chart.tree
    found: list[Finding] = []
    for trigger in chart.triggers:
        for top in tree.parallel:
            regions: list[str] = []
            for t in chart.spec.transitions:
                if t.trigger != trigger:
                    continue
                for source in tree.expand_sources(t.source):
                    region = _region_in(tree, top, source)
                    stays = (
                        t.dest is not None and region is not None and tree.contains(region, t.dest)
                    )
                    if region is not None and stays and region not in regions:
                        regions.append(region)
            if len(regions) > 1:
                found.append(
                    finding(
                        "several-regions",
                        f"{trigger} in {top}",
                        f"{trigger!r} has transitions in regions {_names(regions)} of {top!r}, "
                        "so one event moves them all at once; if that is meant, say so in "
                        "lint_exceptions",
                    )
                )
    return found


def _region_in(tree: StateTree, parallel: str, name: str) -> str | None:
    """The region of ``parallel`` that ``name`` is in, if it is in one."""
    for region in tree.children(parallel):
        if tree.contains(region, name):
            return region
    return None


def graph_rules(chart: Chart) -> list[Finding]:
    found: list[Finding] = []
    succ = _successors(chart)
    forward = {s: set(d) for s, d in succ.items()}
    reachable = _closure(chart.initial_states, forward)
    found.extend(_unreachable(chart, reachable))
    # In a parallel state, only what can happen is worth a finding: an unreachable
    # configuration was reported as such.
    judged = [
        s for s in chart.states if s in reachable or _top_parallel(chart.tree, s.leaves[0]) is None
    ]
    dead_ends = set()
    for s in judged:
        if chart.is_final(s):
            if succ[s]:
                exits = "; ".join(f"{', '.join(t)} -> {d!r}" for d, t in succ[s].items())
                found.append(
                    finding(
                        "final-exit",
                        s,
                        f"final state {s!r} has transitions out ({exits}); nothing may leave a "
                        "final state: drop them, or make the state not final",
                    )
                )
        elif not succ[s]:
            dead_ends.add(s)
            stays = chart.allowed_triggers(s)
            found.append(
                finding(
                    "dead-end",
                    s,
                    f"no transition leaves {s!r}, but it is not final"
                    + (f" (only {', '.join(stays)}, which stay)" if stays else "")
                    + ": add a way out, or mark it final: true",
                )
            )
    if not chart.final_states:
        found.append(
            finding(
                "no-final-path",
                chart.name,
                f"chart {chart.name!r} has no final state, so no invoice ever settles",
            )
        )
        return found
    backward: dict[str, set[str]] = {}
    for here, dests in forward.items():
        for d in dests:
            backward.setdefault(d, set()).add(here)
    can_finish = _closure(chart.final_states, backward)
    found.extend(
        finding(
            "no-final-path",
            s,
            f"no final state ({_names(chart.final_states)}) can be reached from {s!r}",
        )
        for s in judged
        if s not in can_finish and s not in dead_ends  # a dead end is reported once, as such
    )
    return found
