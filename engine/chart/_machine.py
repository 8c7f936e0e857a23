"""A chart's ``transitions`` machine, and the step table a :class:`~engine.chart.Chart`
answers from, read once from that machine.

For every (leaf, trigger), the ordered :class:`CandidateStep` list the ``transitions`` machine
would try: a child's transitions before its parent's, a compound dest entering its initial
child. And for every (compound state, trigger), the steps all its leaves share: the chart uses a
compound name as a source meaning "any of its leaves" (``source: open``), so a validator user
may ask from it too, and gets an answer exactly where it can't depend on the leaf.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from typing import Any, NamedTuple

from transitions import Machine
from transitions.core import Condition

from ..errors import UnknownState
from .tree import StateTree

__all__ = [
    "CandidateStep",
    "Table",
    "compile_steps",
    "dot_machine",
    "leaf_by_leaf",
    "machine_states",
    "mixed_canonical",
    "shared_steps",
]


class CandidateStep(NamedTuple):
    """One step the chart's machine would try for a (state, trigger), in the order it tries
    them: see :meth:`Chart.steps <engine.chart.Chart.steps>`. A tuple too, so ``for dest,
    conditions in chart.steps(s, t)`` works. (Not :class:`engine.testing.Step`, which is one
    step of a generated test path.)

    Attributes:
        dest: the leaf the step leads to, or ``None`` for an internal transition (legal, the
            invoice stays where it is).
        conditions: the guards that must all hold, as the ``transitions`` machine's own
            ``Condition`` objects: ``c.func(payload) == c.target`` is the test, and ``c.func``
            is the chart's guard (its ``str()`` is the expression as written). Empty: always.
    """

    dest: str | None
    conditions: tuple[Condition, ...]


@cache
def dot_machine() -> type[Machine]:
    """transitions' nested machine with ``.`` as the separator.

    Built on first use: importing ``transitions.extensions`` pulls in asyncio (~30 ms), which
    flat charts, and a CLI command that only reads one, never need.
    """
    from transitions.extensions.nesting import HierarchicalMachine, NestedState

    class _DotState(NestedState):
        separator = "."

    class _DotMachine(HierarchicalMachine):
        state_cls = _DotState

    return _DotMachine


def machine_states(tree: StateTree, names: Iterable[str]) -> list[dict[str, Any]]:
    """The states of ``names`` and their subtrees, in ``transitions``' nested-dict form."""
    out: list[dict[str, Any]] = []
    for name in names:
        node = tree.node(name)
        d: dict[str, Any] = {"name": node.spec.name, "final": node.final}
        if node.initial_child is not None:
            d["children"] = machine_states(tree, node.children)
            d["initial"] = tree.node(node.initial_child).spec.name
        out.append(d)
    return out


#: (state, trigger) -> the steps to try, in order; absent: the trigger is not legal there.
Table = dict[tuple[str, str], tuple[CandidateStep, ...]]


def compile_steps(machine: Machine, tree: StateTree) -> Table:
    """Every leaf's steps, resolved the way ``machine`` resolves them."""
    parent = {name: node.parent for name, node in tree.nodes.items()}
    table: Table = {}
    for trigger, event in machine.events.items():
        for leaf in tree.leaves:
            steps: list[CandidateStep] = []
            scope: str | None = leaf
            while scope is not None:  # the deepest scope first, as the machine does
                for tr in event.transitions.get(scope, []):
                    dest = None if tr.dest is None else tree.enter(tr.dest)
                    steps.append(CandidateStep(dest, tuple(tr.conditions)))
                scope = parent[scope]
            if steps:
                table[(leaf, trigger)] = tuple(steps)
    return table


def shared_steps(table: Table, tree: StateTree, triggers: Iterable[str]) -> Table:
    """(compound, trigger) -> the steps every leaf inside the compound has, where they all
    have the same (always so for a transition written on the compound itself)."""
    out: Table = {}
    for compound in tree.compound:
        leaves = tree.leaves_under(compound)
        for trigger in triggers:
            steps = table.get((leaves[0], trigger))
            if steps is not None and all(table.get((s, trigger)) == steps for s in leaves):
                out[(compound, trigger)] = steps
    return out


def leaf_by_leaf(table: Table, tree: StateTree, state: str, trigger: str) -> str | None:
    """Why a compound ``state`` has no answer for ``trigger`` its leaves know: what each leaf
    would do, so the caller can ask with the right one. ``None`` for a leaf, or when no leaf
    inside allows ``trigger``."""
    if state not in tree.compound:
        return None
    leaves = tree.leaves_under(state)
    if not any((leaf, trigger) in table for leaf in leaves):
        return None
    ways = []
    for leaf in leaves:
        moves = [
            (dest or "stays") + (" if " + " and ".join(str(c.func) for c in conds) if conds else "")
            for dest, conds in table.get((leaf, trigger), ())
        ]
        ways.append(f"{leaf} → {', else '.join(moves)}" if moves else f"{leaf}: not allowed")
    return (
        f"{state!r} is a compound state and its leaves differ: {'; '.join(ways)}; "
        "ask with the leaf the invoice is in"
    )


def mixed_canonical(
    chart: str, state: str, tree: StateTree, canonical: dict[str, str], states: list[str]
) -> UnknownState:
    """The error for the canonical state of a compound ``state`` whose leaves have different
    ones: an :class:`UnknownState` (no such canonical state) that says why, naming them."""
    err = UnknownState(chart, state, states)
    each = ", ".join(f"{leaf}: {canonical.get(leaf)}" for leaf in tree.leaves_under(state))
    err.args = (  # the class's own message would call the state unknown
        f"{state!r} is a compound state of chart {chart!r} whose leaves have different "
        f"canonical states ({each}); ask with the leaf the invoice is in",
    )
    return err
