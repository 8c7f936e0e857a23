"""Checking a chart: every problem of one, in one run, each at its line.

:func:`examine` runs every check but lint's on a chart that reads as a whole (lint needs the
compiled chart: the loader runs it next), and all of them on one that doesn't: the file's own
problems (duplicate keys), its shape (the pydantic models of :mod:`.spec`), its name (a chart
file is named after its provider), its meaning (every name it uses exists, the state tree holds)
and lint's errors for what could be read (:func:`lint_in_part`), so that no problem hides
another. :func:`place` gives each problem its line and column and names its state or transition.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import ChartError, ChartProblem
from ._lenient import UNREADABLE, Gaps, lenient
from ._messages import (
    clean_loc,
    close_to,
    error_loc,
    key_path,
    locate,
    meant_key,
    parse_location,
    pydantic_problem,
    subject,
    unknown,
)
from ._yaml import Marks
from .compiled import Chart
from .lint import lint_errors
from .spec import PROVIDER_NAME, ChartSpec, TransitionSpec
from .tree import ANY_SOURCE, StateTree

__all__ = ["examine", "not_too_deep", "place", "positions"]

_PROVIDER = re.compile(PROVIDER_NAME)

# --------------------------------------------------------------------------------- placing

_FIRST_AT = re.compile(r"\(first at ((?:states\[\d+\])(?:\.states\[\d+\])*)\)")


def place(
    problems: Iterable[ChartProblem],
    data: Any,
    marks: Marks | None,
    *,
    keys: frozenset[int] = frozenset(),
) -> list[ChartProblem]:
    """``problems`` with each one's line and column (from ``marks``) and subject (from
    ``data``) filled in where it has none, in file order. ``keys``: the indexes of problems
    about a key itself (an unexpected key), placed at the key rather than its value."""
    placed: list[ChartProblem] = []
    for i, p in enumerate(problems):
        path = parse_location(p.location)
        if path is not None:
            if p.line is None and marks is not None and (at := marks.find(path, key=i in keys)):
                p = replace(p, line=at[0], column=at[1])
            named = "" if p.subject else subject(path, data)
            if named and named not in p.problem:
                p = replace(p, subject=named)
        if marks is not None and (m := _FIRST_AT.search(p.problem)):
            # `(first at states[2])`: and its line, which is what an editor goes to.
            first = marks.find(parse_location(m[1]) or ())
            if first is not None:
                p = replace(
                    p, problem=p.problem.replace(m[0], f"(first at {m[1]}, line {first[0]})")
                )
        placed.append(p)
    placed.sort(key=lambda p: (p.line is None, p.line or 0, p.column or 0))
    return placed


def positions(marks: Marks) -> Callable[[str], tuple[int, int] | None]:
    """Where a location (``transitions[3]``) is written, for lint's findings."""

    def where(location: str) -> tuple[int, int] | None:
        path = parse_location(location)
        return None if not path else marks.find(path)

    return where


# --------------------------------------------------------------------------------- meaning


def _check_meaning(
    spec: ChartSpec, source: str, gaps: Gaps | None = None
) -> tuple[StateTree | None, list[ChartProblem]]:
    """Every name the chart uses must exist: the state tree (``None`` when it breaks its own
    rules), and every problem found, in chart order. ``gaps``: what could not be read of a
    chart with a wrong shape (checks that need it are skipped)."""
    gaps = gaps or Gaps()
    problems: list[ChartProblem] = []
    # The tree's own rules; it is built despite them, so the names are checked too.
    tree = StateTree(spec.states, source, problems=problems)
    tree_holds = not problems
    names = [n for n, node in tree.nodes.items() if id(node.spec) not in gaps.unread]
    known = set(names)

    def problem(location: str, text: str) -> None:
        problems.append(ChartProblem(source=source, location=location, problem=text))

    def state(name: str, loc: str) -> None:
        if name not in known and not gaps.names and name != UNREADABLE:
            problem(loc, unknown("state", name, names))

    if not spec.initial and not gaps.initial:
        problem("initial", f"needs at least 1 state, got none; states are: {', '.join(names)}")
    for i, name in enumerate(spec.initial):
        state(name, f"initial[{i}]" if len(spec.initial) > 1 else "initial")
    triggers: list[str] = []
    for i, t in enumerate(spec.transitions):
        for j, src in enumerate(t.source):
            if src != ANY_SOURCE:
                state(src, f"transitions[{i}].source" + (f"[{j}]" if len(t.source) > 1 else ""))
        if t.dest is not None:
            state(t.dest, f"transitions[{i}].dest")
            across = _across_regions(tree, t.source, t.dest) if tree_holds else None
            if across is not None:
                problem(f"transitions[{i}].dest", across)
        if t.trigger and t.trigger not in triggers:
            triggers.append(t.trigger)
    if tree_holds:
        for i, text in _conflicts(tree, spec.transitions):
            problem(f"transitions[{i}]", text)
    joined = len(spec.delivery.event_type)
    for event_type, ev in spec.events.items():
        loc = key_path("events", event_type)
        if event_type.count(".") < joined - 1 and not gaps.event_type:
            problem(
                loc,
                f"event type {event_type!r} can never arrive: delivery.event_type joins "
                f"{joined} values with '.', so every event type read has at least "
                f"{joined - 1} '.'",
            )
        if ev.trigger is not None and ev.trigger not in triggers and not gaps.triggers:
            problem(f"{loc}.trigger", unknown("trigger", ev.trigger, triggers))
        for j, s in enumerate(ev.states or []):
            state(s, f"{loc}.states[{j}]")
        if ev.follow_status and (ev.status or spec.delivery.status) is None and not gaps.status:
            problem(loc, "follow_status needs delivery.status (or the event's own status)")
        region = ev.region
        parent = tree.parent(region) if region is not None and region in tree else None
        if region is not None and not gaps.names and not (parent and tree.node(parent).parallel):
            regions = [r for p in tree.parallel for r in tree.children(p)]
            problem(
                f"{loc}.follow_status",
                unknown("region", region, regions)
                if regions
                else f"follow_status names region {region!r}, but the chart has no parallel "
                "state: write follow_status: true",
            )
    for value, target in spec.delivery.statuses.items():
        if target not in known and not gaps.names:
            problem(key_path("delivery.statuses", value), unknown("state", target, names))
    return (tree if tree_holds else None), problems


def _across_regions(tree: StateTree, sources: Sequence[str], dest: str) -> str | None:
    """Why a transition from ``sources`` to ``dest`` crosses between two regions of one
    parallel state (which has no meaning: leave the parallel state, or stay in one region),
    or ``None``."""
    if dest not in tree:
        return None
    for parallel in tree.parallel:
        if tree.contains(parallel, dest) and dest != parallel:
            outside = [s for s in tree.expand_sources(sources) if not tree.contains(parallel, s)]
            if outside:
                return (
                    f"the transition enters {dest!r}, inside parallel state {parallel!r}, from "
                    f"{outside[0]!r} outside it: the machine would enter that region alone; "
                    f"target {parallel!r} (every region enters its initial state)"
                )
        into = next((r for r in tree.children(parallel) if tree.contains(r, dest)), None)
        if into is None:
            continue
        for source in tree.expand_sources(sources):
            start = next((r for r in tree.children(parallel) if tree.contains(r, source)), None)
            if start is not None and start != into:
                return (
                    f"the transition goes from {source!r} in region {start!r} to {dest!r} in "
                    f"region {into!r} of parallel state {parallel!r}: a transition stays in "
                    "one region, or leaves the parallel state"
                )
    return None


def _conflicts(tree: StateTree, transitions: Sequence[TransitionSpec]) -> Iterator[tuple[int, str]]:
    """Transitions of one trigger in two regions of a parallel state, one of them leaving its
    region for somewhere the others don't go: the machine fires the regions one after another,
    so which wins is an accident of order (statechart runtimes such as SCXML and XState keep
    the first instead)."""
    for parallel in tree.parallel:
        regions = tree.children(parallel)
        by_trigger: dict[str, list[tuple[int, str, str | None]]] = {}
        for i, t in enumerate(transitions):
            for s in tree.expand_sources(t.source):
                region = next((r for r in regions if tree.contains(r, s)), None)
                if region is None:
                    continue
                away = t.dest if t.dest is not None and not tree.contains(region, t.dest) else None
                by_trigger.setdefault(t.trigger, []).append((i, region, away))
        for trigger, found in by_trigger.items():
            # Every region leaving for one place ('*' -> void) is no race: it goes there.
            if len({r for _, r, _ in found}) < 2 or len({a for _, _, a in found}) < 2:
                continue
            for i, region, away in found:
                if away is not None:
                    others = sorted({r for _, r, _ in found if r != region})
                    yield (
                        i,
                        f"{trigger!r} leaves region {region!r} of parallel state {parallel!r} "
                        f"while it also fires in {', '.join(map(repr, others))}: which one wins "
                        "would be an accident of order; write it on the parallel state, or "
                        "give the others another trigger",
                    )
                    break


#: Lint rules whose findings a name left out (unknown, with no likely meaning) could make
#: wrong: a transition left out may be the way into or out of a state.
_GRAPH_RULES = frozenset({"unreachable", "dead-end", "no-final-path"})
#: Lint rules the meaning check reports in its own words.
_SAID_ALREADY = frozenset({"unknown-trigger", "missing-canonical"})
_TRANSITION_AT = re.compile(r"^transitions\[(\d+)\]")


def lint_in_part(
    spec: ChartSpec, tree: StateTree, gaps: Gaps, source: str, path: Path | None
) -> list[ChartProblem]:
    """Lint's errors for a chart that has other problems too, so one run says them all: run
    when its states, transitions and initial states are read as they are and the tree holds.
    A state name that doesn't exist is taken as the one it probably means (the did-you-mean of
    its own problem); one with no likely meaning is left out, and then so are the findings it
    could make wrong (unreachable, dead-end, no-final-path)."""
    if not gaps.strict or gaps.names:
        return []
    names = list(tree.names)
    dropped = False

    def meant(name: str) -> str | None:
        nonlocal dropped
        if name == ANY_SOURCE or name in tree:
            return name
        found = close_to(name, names)
        dropped |= found is None
        return found

    initial = [n for n in (meant(s) for s in spec.initial) if n is not None]
    kept: list[TransitionSpec] = []
    index: list[int] = []  # the chart's index of each transition kept
    for i, t in enumerate(spec.transitions):
        sources = [n for n in (meant(s) for s in t.source) if n is not None]
        dest = None if t.dest is None else meant(t.dest)
        if sources and (dest is not None or t.dest is None):
            kept.append(t.model_copy(update={"source": sources, "dest": dest}))
            index.append(i)
        else:
            dropped = True
    if not initial:
        return []
    triggers = {t.trigger for t in kept}
    linted = ChartSpec.model_construct(
        provider=spec.provider or "chart",
        title="",
        sources=[],
        initial=initial,
        states=spec.states,
        transitions=kept,
        delivery=spec.delivery.model_copy(
            update={"statuses": {k: v for k, v in spec.delivery.statuses.items() if v in tree}}
        ),
        signature=spec.signature,
        events={
            k: ev for k, ev in spec.events.items() if ev.trigger is None or ev.trigger in triggers
        },
        lint_exceptions=spec.lint_exceptions,
    )
    try:
        chart = Chart(linted, path, enforce_lint=False)
    except (ChartError, ValueError, KeyError, TypeError):  # what can't be built isn't linted
        return []
    skip = _SAID_ALREADY | (_GRAPH_RULES if dropped else frozenset())
    problems = []
    for p in lint_errors(chart, source, skip=skip, subjects=False):
        at = _TRANSITION_AT.match(p.location)
        if at is not None:  # the chart's own index, not the one among those kept
            p = replace(p, location=f"transitions[{index[int(at[1])]}]" + p.location[at.end() :])
        problems.append(p)
    return problems


@contextmanager
def not_too_deep(source: str) -> Iterator[None]:
    """A chart nested past Python's recursion limit (thousands of ``[[[…``, or states inside
    states hundreds deep) is a broken chart, not a crash of whatever read it."""
    try:
        yield
    except RecursionError:
        raise ChartError(
            source, "", "nested too deeply to read (hundreds of levels of lists or states)"
        ) from None


def _structure(
    data: dict[Any, Any], source: str, marks: Marks | None
) -> tuple[ChartSpec | None, list[ChartProblem]]:
    """The first validation: the chart's shape, by the pydantic models; every problem."""
    try:
        return ChartSpec.model_validate(data), []
    except ValidationError as exc:
        errors = exc.errors()
    # A key that is missing next to one that is unexpected is most likely misspelled there.
    extra = {clean_loc(e["loc"], ChartSpec) for e in errors if e["type"] == "extra_forbidden"}
    problems: list[ChartProblem] = []
    keys: set[int] = set()
    for error in errors:
        loc = error_loc(error)
        path = clean_loc(loc, ChartSpec)
        text = pydantic_problem(error, ChartSpec)
        if error["type"] == "extra_forbidden":
            keys.add(len(problems))
        elif error["type"] == "missing":
            near = [str(p[-1]) for p in extra if p[:-1] == path[:-1]]
            typo = meant_key(str(path[-1]), near) if near and path else None
            if typo is not None:
                at = marks.find((*path[:-1], typo), key=True) if marks is not None else None
                line = f" (line {at[0]})" if at else ""
                text += f"; {typo!r}{line} looks like a misspelling of it"
        problems.append(ChartProblem(source=source, location=locate(loc, ChartSpec), problem=text))
    return None, place(problems, data, marks, keys=frozenset(keys))


def examine(
    data: Any,
    source: str,
    *,
    marks: Marks | None = None,
    early: Sequence[ChartProblem] = (),
    path: Path | None = None,
) -> ChartSpec:
    """Every check but lint's (which needs the compiled chart) on a chart that reads as a
    whole, and all of them on one that doesn't, so that one run reports every problem: the
    file's own (``early``: duplicate keys), the shape, the file name, the names, and lint's
    errors for what could be read.

    Raises:
        ChartError: listing every problem, in file order.
    """
    problems = list(early)
    if data is None or not isinstance(data, dict):
        if data is None:
            text = "the chart is empty; it needs provider, initial, states, …"
        else:
            kind = "a list" if isinstance(data, list) else f"a {type(data).__name__}"
            text = f"a chart is a mapping (provider: …, states: …), got {kind}"
        raise ChartError.of([*problems, ChartProblem(source=source, problem=text)])
    spec, shape = _structure(data, source, marks)
    problems.extend(shape)
    view, gaps = (spec, Gaps()) if spec is not None else lenient(data)
    named = None if path is None else _file_name_problem(view, path)
    if named is not None:
        problems.append(named)
    tree, meaning = _check_meaning(view, source, gaps)
    problems.extend(meaning)
    if not problems:
        assert spec is not None
        return spec
    if tree is not None:
        problems.extend(lint_in_part(view, tree, gaps, source, path))
    raise ChartError.of(place(problems, data, marks))


def _file_name_problem(spec: ChartSpec, path: Path) -> ChartProblem | None:
    """A chart file is named after its provider: ``stripe.yaml`` says ``provider: stripe``.

    Charts are found by file name and their invoices stored under the provider's name; a
    file that says otherwise would store rows under one name and find them under another.
    """
    if path.stem == spec.provider or not _PROVIDER.match(spec.provider):
        return None  # a provider that is no name at all is a problem of its own
    return ChartProblem(
        source=str(path),
        location="provider",
        problem=f"the file is {path.name} but it says provider: {spec.provider}; a chart file "
        f"is named after its provider: rename the file to {spec.provider}"
        f"{path.suffix or '.yaml'} or write provider: {path.stem}",
    )
