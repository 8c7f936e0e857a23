"""One invoice's path through a chart, mapped onto the picture's edges and states.

Every picture format marks the same states, steps and rejected events: they are worked out
here once, from the invoice's history (:class:`engine.Outcome` entries, or anything shaped like
:class:`HistoryEntry`).

A history names configurations (``open.unpaid``; ``fin.pay.pending+fin.od.no`` in a parallel
state): every active leaf of one is marked, and one step may take several arrows at once (a
trigger with transitions in several regions moves them all), each numbered with that step.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from ._model import Edge, Graph

__all__ = ["Highlight", "HistoryEntry", "births", "highlight_of", "rejected_by_place"]


class HistoryEntry(Protocol):
    """What a picture needs from one history entry; :class:`engine.Outcome` is one.

    ``status`` is ``applied``, ``unchanged``, ``duplicate``, ``rejected`` or ``invalid``;
    states are chart configurations (``open.unpaid``, or ``fin.pay.pending+fin.od.no`` in a
    parallel state); ``from_state`` is ``None`` at birth. An optional ``adopted`` attribute
    (Outcome has it) marks an invoice first seen through a non-creating event; the picture
    labels its first arrow "adopted".
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


@dataclass
class Highlight:
    """One invoice's path through the chart, ready to draw.

    Attributes:
        states: every state the invoice was in (each active leaf of its configurations).
        steps: for each edge taken, the step numbers (1-based) it was taken at.
        origins: for each step, the leaves the invoice was in before it (where an arrow drawn
            from one of several states really started).
        start_steps: the configuration the invoice was born in, and at which step.
        internal: internal transitions used: (state, trigger) -> how many times.
        stays: transitions taken from a leaf back to itself (legal, changing nothing, as a
            transition from a compound state to a leaf inside it does from that leaf):
            (leaf, trigger) -> how many times.
        rejected: per configuration, the events rejected while the invoice was in it (``""``:
            before it existed, when the engine refuses unseen invoices).
        current: the configuration the invoice is in now.
        adopted: configurations the invoice was first seen in without a creating event.
        extra: moves the chart has no transition for (it changed since): (from, to) leaves.
    """

    states: set[str] = field(default_factory=set)
    steps: dict[tuple[str, str | None], list[int]] = field(default_factory=dict)
    origins: dict[int, tuple[str, ...]] = field(default_factory=dict)
    start_steps: dict[str, list[int]] = field(default_factory=dict)
    internal: dict[tuple[str, str], int] = field(default_factory=dict)
    stays: dict[tuple[str, str], int] = field(default_factory=dict)
    rejected: dict[str, list[str]] = field(default_factory=dict)
    current: str | None = None
    adopted: set[str] = field(default_factory=set)
    extra: dict[tuple[str, str], list[int]] = field(default_factory=dict)

    @property
    def current_leaves(self) -> tuple[str, ...]:
        """The leaves of the current configuration (one outside parallel states)."""
        return tuple(self.current.split("+")) if self.current else ()

    def started_in(self, graph: Graph, state: str, step: int) -> bool:
        """Whether step ``step`` started with the invoice in ``state`` (or inside it)."""
        return any(graph.contains(state, leaf) for leaf in self.origins.get(step, ()))


def highlight_of(graph: Graph, history: Iterable[HistoryEntry]) -> Highlight:
    """Where one invoice went: map each history entry onto the picture's edges and states."""
    hl = Highlight()
    edges = graph.edges()
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
        before, after = graph.leaves_of(frm), graph.leaves_of(to)
        hl.states.update(before + after)
        if entry.status == "unchanged":
            if trig and before:
                _unchanged(graph, edges, hl, before, trig)
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
        hl.origins[step] = before
        if not _moved(graph, edges, hl, step, trig, before, after):
            for pair in _pairs(graph, before, after):
                hl.extra.setdefault(pair, []).append(step)
    return hl


def _unchanged(
    graph: Graph, edges: list[Edge], hl: Highlight, before: tuple[str, ...], trig: str
) -> None:
    """Count an event that was legal and changed nothing: an internal transition, or one back
    to where the invoice already was."""
    for e in edges:
        if trig not in e.triggers or not any(graph.contains(e.source, x) for x in before):
            continue
        if e.target is None:
            key = (e.source, trig)
            hl.internal[key] = hl.internal.get(key, 0) + 1
            return
        back = next((x for x in before if graph.contains(e.target, x)), None)
        if back is not None:  # a transition back to where it was
            hl.stays[(back, trig)] = hl.stays.get((back, trig), 0) + 1
            return


def _moved(
    graph: Graph,
    edges: list[Edge],
    hl: Highlight,
    step: int,
    trig: str | None,
    before: tuple[str, ...],
    after: tuple[str, ...],
) -> bool:
    """Number the edges that explain a move from ``before`` to ``after``: the first edge (in
    chart order) for each part of ``after`` it leads into, so a trigger that moved several
    regions numbers each region's arrow. Whether any edge explains it."""
    several = len(before) > 1 or len(after) > 1
    gone = [x for x in before if x not in after]
    new = {x for x in after if x not in before}
    explained: set[str] = set()
    for e in edges:
        if e.target is None or (trig is not None and trig not in e.triggers):
            continue
        if not any(graph.contains(e.source, x) for x in before):
            continue
        into = {x for x in after if graph.contains(e.target, x)}
        if not into or into & explained:
            continue
        if several and not (into & new or any(graph.contains(e.source, x) for x in gone)):
            continue  # in a parallel state: an edge that changed nothing here was not taken
        hl.steps.setdefault((e.source, e.target), []).append(step)
        explained |= into
    return bool(explained)


def _pairs(graph: Graph, before: tuple[str, ...], after: tuple[str, ...]) -> list[tuple[str, str]]:
    """The (from, to) leaves of a move no edge explains: each leaf that changed, to the new leaf
    of its region (or, leaving a parallel state, to the first new leaf)."""
    gone = [x for x in before if x not in after] or list(before[:1])
    new = [x for x in after if x not in before] or list(after[:1])
    out: list[tuple[str, str]] = []
    for x in gone:
        region = graph.tree.region_of(x)
        same = [y for y in new if region is not None and graph.contains(region, y)]
        out.append((x, (same or new)[0]))
    return out


def births(graph: Graph, hl: Highlight) -> tuple[dict[str, str], dict[str, str]]:
    """Labels for the start arrows of a highlighted picture: ``(1)`` on the chart's own
    initial arrows, and extra arrows into the configurations an invoice was adopted in that
    are not initial (``adopted (1)``), so every step number appears somewhere."""
    steps: dict[str, list[int]] = {}
    extra: dict[str, list[int]] = {}
    adopted: set[str] = set()
    for state, numbers in hl.start_steps.items():
        leaves = graph.leaves_of(state)
        home = next(
            (i for i in graph.initial if leaves and all(graph.contains(i, x) for x in leaves)),
            None,
        )
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


def rejected_by_place(graph: Graph, hl: Highlight) -> dict[str, list[str]]:
    """The events rejected in each configuration, by the state a note about them goes on: its
    leaf, or its parallel state, then saying which configuration it was (``paid (pay), in
    pay.done + od.no``). ``""`` keeps those rejected before the invoice existed."""
    out: dict[str, list[str]] = {}
    for config, events in hl.rejected.items():
        place = graph.place(config) if config else ""
        if place is None:
            continue  # a state the chart doesn't have (any more)
        leaves = graph.leaves_of(config)
        where = ", in " + " + ".join(x[len(place) + 1 :] for x in leaves) if len(leaves) > 1 else ""
        out.setdefault(place, []).extend(ev + where for ev in events)
    return out
