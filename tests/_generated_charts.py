"""Hypothesis strategies for chart files: flat, nested and parallel states, final leaves,
``initial`` children, canonical states and tables of canonical rules, transitions with guards
that hold or not, ``source: '*'``, lists of sources, compound and parallel sources and
destinations, and internal transitions.

Every chart drawn is one the loader accepts for its meaning (lint aside: load it with
``enforce_lint=False``, as unreachable states and the like are no concern here): a transition
stays in one region of a parallel state or leaves it, and enters a parallel state only through
the parallel state itself or from inside it (``transitions`` would enter the one region
alone); no trigger fires in two regions of a parallel state with one of them leaving its region
for somewhere the others don't go (the machine fires regions one after another: which wins
would be an accident of order); nothing inside a parallel state is final or has its own
canonical state; a table of canonical rules ends with a rule without ``when``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from math import prod
from typing import Any

from hypothesis import assume
from hypothesis import strategies as st

from engine.chart._machine import MAX_FIRINGS, MAX_GUARDS
from engine.chart.spec import CANONICAL_STATES

#: The most configurations a drawn chart has (parallel regions multiply them).
MAX_CONFIGURATIONS = 32
#: Guard fields: a top-level key, another, and one nested in an object.
FIELDS = ("$.a", "$.b", "$.n.c")
_EQUALITY_LITERALS: tuple[Any, ...] = (0, 1, True, False, None, "x")
_ORDER_LITERALS: tuple[Any, ...] = (0, 1, 2.5, "m")
#: Values a payload field may hold: each literal, its neighbours, other JSON types.
VALUES: tuple[Any, ...] = (
    0,
    1,
    2,
    -1,
    1.0,
    2.5,
    True,
    False,
    None,
    "x",
    "m",
    "z",
    "",
    [1],
    {"c": 1},
)


@dataclass
class _Node:
    full: str
    kind: str  # "leaf", "compound" or "parallel"
    final: bool = False
    in_parallel: bool = False
    children: list[str] = field(default_factory=list)


def _contains(ancestor: str, name: str) -> bool:
    return name == ancestor or name.startswith(ancestor + ".")


@st.composite
def _state(
    draw: st.DrawFn,
    nodes: dict[str, _Node],
    name: str,
    parent: str | None,
    depth: int,
    in_parallel: bool,
    *,
    region: bool = False,
    parallel: bool = True,
) -> dict[str, Any]:
    full = f"{parent}.{name}" if parent else name
    kinds = ["leaf", "compound", "parallel"][: 3 if parallel else 2] if depth < 3 else ["leaf"]
    kind = "compound" if region else draw(st.sampled_from(kinds))
    node = _Node(full, kind, in_parallel=in_parallel)
    nodes[full] = node
    out: dict[str, Any] = {"name": name}
    if kind == "leaf":
        if not in_parallel and draw(st.integers(0, 4)) == 4:
            out["final"] = node.final = True
        return out
    if kind == "parallel":
        out["parallel"] = True
        count = draw(st.integers(2, 3))
        names = [f"r{i}" for i in range(count)]
        out["states"] = [draw(_state(nodes, n, full, depth + 1, True, region=True)) for n in names]
    else:
        count = draw(st.integers(1, 3))
        names = [chr(ord("a") + i) for i in range(count)]
        out["states"] = [
            draw(_state(nodes, n, full, depth + 1, in_parallel, parallel=parallel)) for n in names
        ]
        initial = draw(st.none() | st.sampled_from(names))
        if initial is not None:
            out["initial"] = initial
    node.children = [f"{full}.{n}" for n in names]
    return out


def _configurations(nodes: dict[str, _Node], name: str) -> int:
    node = nodes[name]
    counts = [_configurations(nodes, c) for c in node.children]
    if node.kind == "leaf":
        return 1
    return prod(counts) if node.kind == "parallel" else sum(counts)


@st.composite
def _rules(draw: st.DrawFn, nodes: dict[str, _Node], full: str) -> list[dict[str, Any]]:
    """A parallel state's table of canonical rules, ending with one that matches anything."""
    rules: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(0, 2))):
        region = draw(st.sampled_from(nodes[full].children))
        inside = [n[len(region) + 1 :] for n in nodes if n.startswith(region + ".")]
        picked = draw(st.lists(st.sampled_from(inside), min_size=1, max_size=2, unique=True))
        when = {region.rsplit(".", 1)[1]: picked}
        rules.append({"when": when, "canonical": draw(st.sampled_from(CANONICAL_STATES))})
    rules.append({"canonical": draw(st.sampled_from(CANONICAL_STATES))})
    return rules


@st.composite
def _canonical(draw: st.DrawFn, state: dict[str, Any], nodes: dict[str, _Node], full: str) -> None:
    """Give ``state`` (at the top level) a canonical state, and maybe states inside it (not
    inside a parallel state) their own."""
    node = nodes[full]
    top = "." not in full
    if node.kind == "parallel" and draw(st.booleans()):
        state["canonical"] = draw(_rules(nodes, full))
    elif top or draw(st.integers(0, 3)) == 3:
        state["canonical"] = draw(st.sampled_from(CANONICAL_STATES))
    if node.kind == "compound":
        for child in state["states"]:
            draw(_canonical(child, nodes, f"{full}.{child['name']}"))


def guard_text(field_: str, op: str, literal: Any) -> str:
    return f"{field_} {op} {json.dumps(literal)}"


_GUARDS = st.one_of(
    st.builds(
        guard_text,
        st.sampled_from(FIELDS),
        st.sampled_from(["==", "!="]),
        st.sampled_from(_EQUALITY_LITERALS),
    ),
    st.builds(
        guard_text,
        st.sampled_from(FIELDS),
        st.sampled_from(["<", "<=", ">", ">="]),
        st.sampled_from(_ORDER_LITERALS),
    ),
)


def _dest_ok(nodes: dict[str, _Node], sources: list[str], dest: str) -> bool:
    """Whether a transition from ``sources`` (expanded) to ``dest`` stays in one region of
    each parallel state it goes into, entering none from outside (see the module docstring)."""
    for p in (n for n in nodes.values() if n.kind == "parallel"):
        into = next((r for r in p.children if _contains(r, dest)), None)
        if into is None:
            continue
        if not all(s == p.full or _contains(into, s) for s in sources):
            return False
    return True


@st.composite
def _transition(
    draw: st.DrawFn, nodes: dict[str, _Node], trigger: str, guard: str | None
) -> dict[str, Any]:
    names = list(nodes)
    shapes = ["one", "many", "*"] if len(names) > 1 else ["one", "*"]
    shape = draw(st.sampled_from(shapes))
    source: str | list[str]
    if shape == "*":
        source = "*"
        expanded = _expanded(nodes, "*")
    elif shape == "one":
        source = draw(st.sampled_from(names))
        expanded = [source]
    else:
        source = draw(st.lists(st.sampled_from(names), min_size=2, max_size=3, unique=True))
        expanded = source
    out: dict[str, Any] = {"trigger": trigger, "source": source}
    dests = [d for d in names if _dest_ok(nodes, expanded, d)]
    if not dests or draw(st.integers(0, 4)) == 4:
        out["internal"] = True
    else:
        out["dest"] = draw(st.sampled_from(dests))
    if guard is not None:
        out["guard"] = guard
    return out


def _expanded(nodes: dict[str, _Node], source: str | list[str]) -> list[str]:
    if source == "*":
        return [n for n, node in nodes.items() if node.kind == "leaf" and not node.final]
    return [source] if isinstance(source, str) else source


def _races(nodes: dict[str, _Node], transitions: list[dict[str, Any]]) -> bool:
    """Whether one trigger fires in two regions of a parallel state and one of them leaves
    its region for somewhere the others don't go (the loader refuses that: ``transitions``
    fires the regions one after another, and which wins would be an accident of order)."""
    for p in (n for n in nodes.values() if n.kind == "parallel"):
        found: dict[str, set[tuple[str, str | None]]] = {}
        for t in transitions:
            dest = t.get("dest")
            for s in _expanded(nodes, t["source"]):
                region = next((r for r in p.children if _contains(r, s)), None)
                if region is not None:
                    away = dest if dest is not None and not _contains(region, dest) else None
                    found.setdefault(t["trigger"], set()).add((region, away))
        for pairs in found.values():
            if len({r for r, _ in pairs}) > 1 and len({a for _, a in pairs}) > 1:
                return True
    return False


def _add(nodes: dict[str, _Node], transitions: list[dict[str, Any]], new: dict[str, Any]) -> None:
    """Add ``new`` unless it makes a race between regions (see :func:`_races`)."""
    if not _races(nodes, [*transitions, new]):
        transitions.append(new)


@st.composite
def chart_data(draw: st.DrawFn, *, parallel: bool = True) -> dict[str, Any]:
    """A chart file's data (as YAML would read it), one the loader accepts for its meaning.

    Args:
        parallel: let parallel states be drawn (``False``: flat and nested charts only).
    """
    nodes: dict[str, _Node] = {}
    top: list[dict[str, Any]] = []
    for i in range(draw(st.integers(1, 4))):
        top.append(draw(_state(nodes, f"s{i}", None, 0, False, parallel=parallel)))
    roots = [s["name"] for s in top]
    assume(sum(_configurations(nodes, r) for r in roots) <= MAX_CONFIGURATIONS)
    for state in top:
        draw(_canonical(state, nodes, state["name"]))
    triggers = [f"t{i}" for i in range(draw(st.integers(1, 4)))]
    transitions: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(0, 10))):
        trigger = draw(st.sampled_from(triggers))
        guard = draw(st.none() | _GUARDS)
        _add(nodes, transitions, draw(_transition(nodes, trigger, guard)))
    if draw(st.integers(0, 7)) == 7:
        # As many guards met by one question as a chart may have (every combination of them
        # is asked of the machine when the chart loads).
        template = draw(_transition(nodes, triggers[0], None))
        had = {t["guard"] for t in transitions if t["trigger"] == triggers[0] and "guard" in t}
        for i in range(MAX_GUARDS - len(had)):
            guard = guard_text("$.a", "==", i + 10) if i % 2 else guard_text("$.b", "!=", i + 10)
            _add(nodes, transitions, {**template, "guard": guard})
    guards = {
        t: {x["guard"] for x in transitions if x["trigger"] == t and "guard" in x} for t in triggers
    }
    configs = sum(_configurations(nodes, r) for r in roots)
    assume(all(len(g) <= MAX_GUARDS for g in guards.values()))
    assume(configs * sum(2 ** len(g) for g in guards.values()) <= MAX_FIRINGS)
    outside = [n for n, node in nodes.items() if not node.in_parallel]
    initial = draw(st.lists(st.sampled_from(outside), min_size=1, max_size=2, unique=True))
    return {
        "provider": "generated",
        "initial": initial,
        "states": top,
        "transitions": transitions,
        "delivery": {"event_type": "$.type", "event_id": "$.id", "invoice_id": "$.invoice"},
        "events": {"created": {"create": True}},
    }


def _value_at(path: str, value: Any) -> dict[str, Any]:
    steps = path.removeprefix("$.").split(".")
    out: Any = value
    for step in reversed(steps):
        out = {step: out}
    result: dict[str, Any] = out
    return result


@st.composite
def payloads(draw: st.DrawFn, chart: dict[str, Any] | None = None) -> Any:
    """A payload for the guards of :func:`chart_data`: each field missing or holding one of
    :data:`VALUES` (each literal, values beside it, other JSON types), most often a literal
    the ``chart``'s own guards compare that field with; now and then ``None`` or not an object
    at all."""
    shape = draw(st.sampled_from(["object", "object", "object", "none", "scalar"]))
    if shape == "none":
        return None
    if shape == "scalar":
        return draw(st.sampled_from(VALUES))
    literals: dict[str, list[Any]] = {}
    for t in (chart or {}).get("transitions", ()):
        if "guard" in t:
            path, _, literal = t["guard"].split(" ", 2)
            literals.setdefault(path, []).append(json.loads(literal))
    out: dict[str, Any] = {}
    for path in FIELDS:
        if draw(st.integers(0, 3)) == 0:
            continue
        own = literals.get(path)
        pool = own if own and draw(st.integers(0, 2)) else VALUES
        value = draw(st.sampled_from(pool))
        head, *rest = path.removeprefix("$.").split(".")
        if rest and draw(st.integers(0, 5)) == 5:
            out[head] = value  # a scalar where the path needs an object: missing
        else:
            out.update(_value_at(path, value))
    return out
