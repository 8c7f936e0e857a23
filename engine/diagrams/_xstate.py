"""An XState v5 machine config: a JSON-serializable dict for ``createMachine``.

State keys are the chart's own names, so a snapshot's value reads like the chart
(``{"open": "unpaid"}`` is ``open.unpaid``); each state also gets a word-only ``id`` that
transitions target (``#open_unpaid``), so names with dots, dashes or spaces are safe.
Events are the chart's triggers; send the webhook payload as ``payload``:
``actor.send({type: "pay", payload: body})``.

Guards are data, as in the chart: ``{"type": "payloadMatches", "params": {"steps": [...],
"op": "==", "value": 0, "path": "$.amountDue"}}``. Provide the one guard implementation
``payloadMatches`` (read ``params.steps`` from ``event.payload``; a missing value is false;
compare as JSON, as the chart does: a boolean equals only a boolean, ``null`` only ``null``,
and ``<``/``>`` hold only between two numbers or two strings) with
``machine.provide({guards: {payloadMatches}})``; ``tests/js/xstate_check.mjs`` has one.
Internal transitions are targetless (legal, nothing exits or enters) and carry
``meta.internal``. A parallel state is ``type: "parallel"``, its regions its ``states``;
XState's ``reenter: false`` default already keeps a transition from a compound state into a
state inside it from exiting the source, as the chart does.
"""

from __future__ import annotations

from typing import Any

from ._ids import word_ids
from ._model import Graph, Transition

GUARD_TYPE = "payloadMatches"


def to_xstate(graph: Graph) -> dict[str, Any]:
    """The XState v5 machine config for ``graph``."""
    ids = word_ids(graph)
    outgoing: dict[str, list[Transition]] = {n: [] for n in graph.nodes}
    for t in graph.transitions:
        for s in t.sources:
            outgoing[s].append(t)

    def transition(source: str, t: Transition) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if t.target is not None:
            where, _ = graph.targets(source, t.target)  # XState doesn't re-enter the source
            out["target"] = ["#" + ids[x] for x in where] if len(where) > 1 else "#" + ids[where[0]]
        else:
            out["meta"] = {"internal": True}
        if t.guard is not None:
            out["guard"] = {
                "type": GUARD_TYPE,
                "params": {
                    "path": str(t.guard),
                    "steps": list(t.guard.steps),
                    "op": t.guard.op,
                    "value": t.guard.literal,
                },
            }
        if t.description:
            out["description"] = t.description
        return out

    def state(nid: str) -> dict[str, Any]:
        node = graph.nodes[nid]
        out: dict[str, Any] = {"id": ids[nid]}
        if node.description:
            out["description"] = node.description
        meta: dict[str, Any] = {"name": nid}
        if node.canonical:
            meta["canonical"] = node.canonical
        if node.rules:  # a parallel state's: the first matching row decides
            meta["canonicalRules"] = [r.as_json() for r in node.rules]
        out["meta"] = meta
        if node.final and not outgoing[nid]:
            out["type"] = "final"
        if node.parallel:
            out["type"] = "parallel"
        elif node.children:
            assert node.initial_child is not None  # every compound state has one
            out["initial"] = graph.nodes[node.initial_child].name
        if node.children:
            out["states"] = {graph.nodes[c].name: state(c) for c in node.children}
        on: dict[str, list[dict[str, Any]]] = {}
        for t in outgoing[nid]:
            on.setdefault(t.trigger, []).append(transition(nid, t))
        if on:
            out["on"] = on
        return out

    first = graph.initial[0].split(".", 1)[0]
    return {
        "id": graph.name,
        "description": graph.title,
        "initial": first,
        "meta": {"initialStates": list(graph.initial)},
        "states": {name: state(name) for name in graph.roots},
    }
