"""An independent reading of a chart file, with plain dicts: the oracle for the machine wiring.

It shares nothing with ``engine.machine`` (no ``transitions``, no compiled tables) and nothing
with ``engine._expr`` (its own path reader and guard evaluator): only the YAML loader, so that
``on``/``no`` stay strings here as there. The rules are the chart format's, read from its
docs: a leaf is named ``parent.child``; entering a compound state enters its initial child (its
first, when unset); a transition from a compound state applies to every state inside it, but a
child's own transitions for the same trigger are tried first; within one state, transitions are
tried in file order and the first whose guard holds fires; ``source: '*'`` is every non-final
leaf; an internal transition is legal and stays put.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.chart.load import load_yaml

_MISSING = object()


def _path_steps(text: str) -> list[str | int]:
    """``$.a.b[0]["c d"]`` -> ``['a', 'b', 0, 'c d']``, by hand."""
    src = text.strip()
    src = src[1:] if src.startswith("$") else "." + src
    steps: list[str | int] = []
    i = 0
    while i < len(src):
        if src[i] == ".":
            j = i + 1
            while j < len(src) and src[j] not in ".[":
                j += 1
            steps.append(src[i + 1 : j])
            i = j
        elif src[i] == "[":
            j = src.index("]", i)
            inner = src[i + 1 : j]
            if inner[:1] in "\"'":
                steps.append(inner[1:-1])
            else:
                steps.append(int(inner))
            i = j + 1
        else:
            raise ValueError(f"can't read path {text!r} at {src[i:]!r}")
    return steps


def _read(doc: Any, steps: list[str | int]) -> Any:
    for step in steps:
        if isinstance(step, int):
            if not isinstance(doc, list) or not -len(doc) <= step < len(doc):
                return _MISSING
            doc = doc[step]
        else:
            if not isinstance(doc, dict) or step not in doc:
                return _MISSING
            doc = doc[step]
    return doc


def _json_type(value: Any) -> str:
    """JSON's name for a value's type; Python's bool is not a number here."""
    if value is None:
        return "null"
    if value is True or value is False:
        return "boolean"
    if type(value) in (int, float):
        return "number"
    return "string" if type(value) is str else "other"


def guard_holds(text: str, payload: Any) -> bool:
    """``PATH OP LITERAL`` against a payload, with JSON's rules rather than Python's.

    A missing value is false (for ``!=`` too). ``==`` needs the same JSON type (``1`` is not
    ``true``; ``1`` is ``1.0``); ``!=`` is its negation. ``<``, ``<=``, ``>``, ``>=`` hold only
    between two numbers or two strings.
    """
    for op in ("==", "!=", "<=", ">=", "<", ">"):
        if op in text:
            left, right = text.split(op, 1)
            break
    else:
        raise ValueError(f"not a guard: {text!r}")
    value = _read(payload, _path_steps(left))
    literal = json.loads(right.strip())
    if value is _MISSING:
        return False
    same_type = _json_type(value) == _json_type(literal)
    if op in ("==", "!="):
        equal = same_type and value == literal
        return equal if op == "==" else not equal
    if not same_type or _json_type(value) not in ("number", "string"):
        return False
    compare: Callable[[Any, Any], Any] = {
        "<=": operator.le,
        ">=": operator.ge,
        "<": operator.lt,
        ">": operator.gt,
    }[op]
    return bool(compare(value, literal))


class DictChart:
    """A chart file read into dicts; :meth:`next_state` answers like ``Chart.next_state``."""

    def __init__(self, path: Path) -> None:
        data = load_yaml(path.read_text(encoding="utf-8"), str(path))
        self.provider: str = data["provider"]
        self.nodes: dict[str, dict[str, Any]] = {}
        self.parent: dict[str, str | None] = {}
        self.leaves: list[str] = []
        self._walk(data["states"], None)
        self.final = {leaf for leaf in self.leaves if self.nodes[leaf].get("final") is True}
        initial = data["initial"]
        self.initial = [self.enter(n) for n in ([initial] if isinstance(initial, str) else initial)]
        self.transitions: list[dict[str, Any]] = data["transitions"]
        self.triggers = list(dict.fromkeys(t["trigger"] for t in self.transitions))
        self.canonical: dict[str, str] = {}
        for leaf in self.leaves:
            name: str | None = leaf
            while name is not None and "canonical" not in self.nodes[name]:
                name = self.parent[name]
            assert name is not None, f"{leaf} has no canonical state"
            given = self.nodes[name]["canonical"]
            if isinstance(given, str):  # a parallel state's table of rules: per configuration
                self.canonical[leaf] = given

    def _walk(self, states: list[dict[str, Any]], parent: str | None) -> None:
        for node in states:
            full = f"{parent}.{node['name']}" if parent else str(node["name"])
            self.nodes[full] = node
            self.parent[full] = parent
            if node.get("states"):
                self._walk(node["states"], full)
            else:
                self.leaves.append(full)

    def enter(self, name: str) -> str:
        """The configuration (leaves joined by ``+``) an invoice is in when it enters ``name``:
        initial children down to a leaf, every region of a parallel state, and, for a state
        inside a parallel state, the other regions' defaults."""
        top = name
        scope = self.parent[name]
        while scope is not None:
            if self.nodes[scope].get("parallel") is True:
                top = scope
            scope = self.parent[scope]
        return "+".join(self._enter(top, name))

    def _enter(self, name: str, target: str) -> list[str]:
        node = self.nodes[name]
        children = [f"{name}.{c['name']}" for c in node.get("states") or []]
        if not children:
            return [name]
        if node.get("parallel") is True:
            return [leaf for c in children for leaf in self._enter(c, target)]
        toward = [c for c in children if target == c or target.startswith(c + ".")]
        if toward and name != target:
            return self._enter(toward[0], target)
        return self._enter(f"{name}.{node.get('initial') or node['states'][0]['name']}", target)

    def _sources(self, transition: dict[str, Any]) -> list[str]:
        src = transition["source"]
        names = [src] if isinstance(src, str) else list(src)
        if names == ["*"]:
            return [leaf for leaf in self.leaves if leaf not in self.final]
        return names

    def next_state(self, state: str, trigger: str, payload: Any = None) -> str | None:
        """The state after ``trigger``, or ``None`` when the chart does not allow it."""
        scope: str | None = state
        while scope is not None:
            for t in self.transitions:
                if t["trigger"] != trigger or scope not in self._sources(t):
                    continue
                if t.get("guard") is not None and not guard_holds(t["guard"], payload):
                    continue
                return state if t.get("internal") is True else self.enter(t["dest"])
            scope = self.parent[scope]
        return None

    def allowed(self, state: str) -> set[str]:
        """Triggers with some transition out of ``state`` (guards not evaluated)."""
        out = set()
        scope: str | None = state
        while scope is not None:
            out |= {t["trigger"] for t in self.transitions if scope in self._sources(t)}
            scope = self.parent[scope]
        return out
