"""What a compiled chart derives from its machine's answers: the dictionaries the validator
answers from, the graph of configurations (reachable, depth, routes, destinations), and the
answers a state name that is no configuration (``open``, ``finalized``) stands for.

A chart's ``source:`` uses a compound name to mean "in any of its leaves", so a validator user
may ask from it too, and gets an answer exactly where it can't depend on which configuration
inside: where the machine answered every configuration inside it alike.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence

from ..errors import UnknownState
from ._machine import STAY, Answer, CandidateStep
from .configuration import SEPARATOR, Configuration
from .tree import StateTree

__all__ = ["Graph", "candidate_steps", "mixed_canonical", "not_a_configuration", "scope_by_scope"]


def _moves(config: Configuration, answer: Answer) -> Iterable[Configuration]:
    """Where ``answer`` can lead from ``config`` (an internal transition: ``config``)."""
    for outcome in answer.outcomes.values():
        if outcome is STAY:
            yield config
        elif isinstance(outcome, Configuration):
            yield outcome


def _same(a: Answer, b: Answer) -> bool:
    return [c.func for c in a.conditions] == [c.func for c in b.conditions] and (
        a.outcomes == b.outcomes
    )


class Graph:
    """The machine's answers, arranged for the validator.

    Attributes:
        answers: (state, trigger) -> the machine's answers, for every configuration and for
            every other state name whose configurations all have the same ones.
        fast: (state, trigger) -> the configuration after it, where no guard is involved.
        allowed: state -> the triggers legal there, in chart order.
        scopes: the state names that are no configuration (compound states, regions, leaves
            inside a parallel state), in chart order.
        final_scopes: those whose configurations are all final.
    """

    def __init__(
        self,
        tree: StateTree,
        configs: Sequence[Configuration],
        triggers: Sequence[str],
        answers: dict[tuple[str, str], Answer],
        initial: Sequence[Configuration],
    ) -> None:
        self.answers = answers
        self.allowed: dict[str, list[str]] = {
            c: [t for t in triggers if (c, t) in answers] for c in configs
        }
        self.scopes = tuple(n for n in tree.names if tree.configuration(n) is None)
        finals = {c for c in configs if tree.node(c.leaves[0]).final}
        self.final_scopes = frozenset(
            n for n in self.scopes if all(c in finals for c in tree.configurations_within(n))
        )
        for name in self.scopes:
            inside = tree.configurations_within(name)
            self.allowed[name] = []
            for t in triggers:
                first = answers.get((inside[0], t))
                if first is not None and all(
                    (found := answers.get((c, t))) is not None and _same(first, found)
                    for c in inside
                ):
                    answers[(name, t)] = first
                    self.allowed[name].append(t)
        self.fast: dict[tuple[str, str], Configuration] = {}
        for (state, t), answer in answers.items():
            if not answer.conditions:
                outcome = answer.outcomes[()]
                if outcome is STAY:
                    self.fast[(state, t)] = tree.configuration(state) or Configuration(state)
                elif isinstance(outcome, Configuration):
                    self.fast[(state, t)] = outcome
        self.routes: dict[tuple[str, str], list[str]] = {}
        self.dests: dict[str, frozenset[Configuration]] = {t: frozenset() for t in triggers}
        self._next: dict[Configuration, set[Configuration]] = {c: set() for c in configs}
        for c in configs:
            for t in self.allowed[c]:
                for there in _moves(c, answers[(c, t)]):
                    self._next[c].add(there)
                    self.dests[t] |= {there}
                    route = self.routes.setdefault((c, there), [])
                    if t not in route:
                        route.append(t)
        self.depth: dict[str, int] = {c: 0 for c in initial}
        queue = deque(initial)
        position = {c: i for i, c in enumerate(configs)}
        while queue:
            here = queue.popleft()
            for there in sorted(self._next[here], key=position.__getitem__):
                if there not in self.depth:
                    self.depth[there] = self.depth[here] + 1
                    queue.append(there)
        self._reach: dict[Configuration, frozenset[Configuration]] = {}

    def canonicals(self, tree: StateTree, configs: Sequence[Configuration]) -> dict[str, str]:
        """Every configuration's canonical state, and each other state name's whose
        configurations all share one (``open`` for ChargeOver's ``open``)."""
        out: dict[str, str] = {}
        for config in configs:
            canonical = tree.canonical_of(config)
            if canonical is not None:
                out[config] = canonical
        for name in self.scopes:
            shared = {out.get(c) for c in tree.configurations_within(name)}
            if len(shared) == 1 and (canonical := next(iter(shared))) is not None:
                out[name] = canonical
        return out

    def reachable(self, start: Configuration) -> frozenset[Configuration]:
        """Every configuration reachable from ``start`` (itself included), found once."""
        found = self._reach.get(start)
        if found is None:
            seen = {start}
            stack = [start]
            while stack:
                for there in self._next[stack.pop()]:
                    if there not in seen:
                        seen.add(there)
                        stack.append(there)
            found = self._reach[start] = frozenset(seen)
        return found


def candidate_steps(state: str, answer: Answer) -> tuple[CandidateStep, ...]:
    """The machine's answers to one question, as steps a reader can follow: one for each
    combination of the guards' values on which the machine moves, with the guards that hold in
    it; combinations with more guards holding first. A payload's own combination is the first
    step whose guards all hold, so that step is the machine's answer for it (unless the machine
    refuses that very combination: then it is no step at all)."""
    moves = [
        (outcome, values) for values, outcome in answer.outcomes.items() if outcome is not None
    ]
    ranked = sorted(moves, key=lambda m: (-sum(m[1]), [not v for v in m[1]]))
    return tuple(
        CandidateStep(
            None if outcome is STAY else outcome,  # type: ignore[arg-type]
            tuple(c for c, v in zip(answer.conditions, values, strict=True) if v),
        )
        for outcome, values in ranked
    )


def scope_by_scope(
    tree: StateTree, answers: dict[tuple[str, str], Answer], state: str, trigger: str
) -> str | None:
    """Why a state name that is no configuration has no answer for ``trigger`` its
    configurations know: what each would do, so the caller can ask with the right one.
    ``None`` when no configuration inside allows ``trigger``."""
    inside = tree.configurations_within(state)
    if not any((c, trigger) in answers for c in inside):
        return None
    ways = []
    for c in inside[:8]:
        answer = answers.get((c, trigger))
        if answer is None:
            ways.append(f"{c}: not allowed")
            continue
        moves = [
            (dest or "stays") + (" if " + " and ".join(str(g.func) for g in conds) if conds else "")
            for dest, conds in candidate_steps(c, answer)
        ]
        ways.append(f"{c} → {', else '.join(moves) or 'refused'}")
    more = f"; and {len(inside) - 8} more" if len(inside) > 8 else ""
    what = "a compound state" if state in tree.compound else "a state of one region"
    return (
        f"{state!r} is {what} and the configurations within it differ: "
        f"{'; '.join(ways)}{more}; ask with the one the invoice is in"
    )


def not_a_configuration(
    chart: str, tree: StateTree, text: str, states: Sequence[str]
) -> UnknownState:
    """The error for ``text`` that is no configuration: an :class:`UnknownState` that says
    why when the names are the chart's (a state that is not a whole configuration; leaves
    that miss a region, or have two in one)."""
    err = UnknownState(chart, text, states)
    leaves = text.split(SEPARATOR)
    if text in tree:
        why = (
            f"{text!r} is a state of chart {chart!r} but not a configuration: an invoice is in "
            f"one leaf of each region of a parallel state, as in {str(tree.enter(text))!r}"
        )
    elif all(leaf in tree and tree.node(leaf).leaf for leaf in leaves):
        regions = [tree.region_of(leaf) for leaf in leaves]
        twice = sorted({r for r in regions if r is not None and regions.count(r) > 1})
        within = next((leaf for leaf in leaves if tree.region_of(leaf) is not None), leaves[0])
        missing = [r for r in map(tree.region_of, tree.enter(within).leaves) if r not in regions]
        said = f"two leaves of region {twice[0]!r}" if twice else ""
        said = said or (
            f"no leaf of region {missing[0]!r}"
            if missing
            else "leaves that are never active together"
        )
        why = f"{text!r} is not a configuration of chart {chart!r}: it has {said}"
    else:
        return err
    err.args = (why,)
    return err


def mixed_canonical(
    chart: str, state: str, tree: StateTree, canonical: dict[str, str], states: Sequence[str]
) -> UnknownState:
    """The error for the canonical state of a state name whose configurations have different
    ones: an :class:`UnknownState` (no such canonical state) that says why, naming them."""
    err = UnknownState(chart, state, states)
    each = ", ".join(f"{c}: {canonical.get(c)}" for c in tree.configurations_within(state)[:8])
    err.args = (  # the class's own message would call the state unknown
        f"{state!r} is a {'compound state' if state in tree.compound else 'state'} of chart "
        f"{chart!r} whose configurations have different canonical states ({each}); ask with "
        "the configuration the invoice is in",
    )
    return err
