"""W3C SCXML (https://www.w3.org/TR/scxml/) for any SCXML interpreter.

The document behaves like the chart: events are the chart's triggers, each state's
transitions are written in chart order (SCXML, like ``transitions``, takes the first enabled
transition of the deepest state, then its parents'), ``*`` sources are expanded to every
non-final leaf, internal transitions are targetless (legal, nothing exits or enters), and
guards become ``cond`` expressions of the ECMAScript data model over ``_event.data`` — the
webhook payload sent with the event; they compare as the chart does (JSON: ``1`` is not
``true``), and a missing field makes a guard false (see :func:`guard_to_ecmascript`).
A parallel state is a ``<parallel>`` whose regions are ``<state>`` children, each with its
own ``initial``: entering it enters every region (:meth:`Graph.targets
<engine.diagrams._model.Graph.targets>` keeps a transition inside a region from leaving it, as
the chart's machine keeps it).
Canonical states and the other initial states ride along as attributes in our own namespace,
which SCXML readers ignore; their names are not SCXML attribute names, because some readers
(python-statemachine 3.2) drop the namespace of attributes.
"""

from __future__ import annotations

import json
import re
from xml.sax.saxutils import escape, quoteattr

from ..chart.expr import Guard
from ..errors import DiagramError
from ._ids import ncname_ids
from ._model import Graph, Transition

SCXML_NS = "http://www.w3.org/2005/07/scxml"
OUR_NS = "urn:invoice-engine:statechart"
_JS_NAME = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")
_JS_RESERVED = frozenset(
    [
        "break",
        "case",
        "catch",
        "class",
        "const",
        "continue",
        "debugger",
        "default",
        "delete",
        "do",
        "else",
        "enum",
        "export",
        "extends",
        "false",
        "finally",
        "for",
        "function",
        "if",
        "import",
        "in",
        "instanceof",
        "new",
        "null",
        "return",
        "super",
        "switch",
        "this",
        "throw",
        "true",
        "try",
        "typeof",
        "var",
        "void",
        "while",
        "with",
        "yield",
        "let",
        "static",
        "await",
    ]
)


def guard_to_ecmascript(guard: Guard, root: str = "_event.data") -> str:
    """A guard as an ECMAScript ``cond``: ``$.amountDue == 0`` is ``_event.data.amountDue === 0``.

    The first key is a property (``.amountDue``), deeper steps are subscripts (``["b"]``,
    ``[0]``). The condition compares as the chart does (JSON, see
    :class:`~engine.chart.expr.Guard`), written without ``typeof`` so that restricted
    ECMAScript evaluators read it too:

    * ``==`` is ``===``: strict equality is JSON's (``1 === 1.0``, ``1 !== true``, and a
      missing value is ``undefined``, which equals no literal);
    * a value that is there and ``null`` is told from a missing one (``undefined``) by
      ``X === null && X + "" === "null"`` (``undefined + ""`` is ``"undefined"``): so
      ``$.a == null`` is that, and ``$.a != "x"`` is that ``|| X != null && X !== "x"``
      (``!= null`` is false for both ``undefined`` and ``null``); ``$.a != null`` is
      ``X != null``. (Evaluators that read a missing field as ``null``, such as
      python-statemachine, find ``null + ""`` an error, hence false: there a present
      ``null`` is taken for a missing value, which is what they can tell apart.)
    * ``<``, ``<=``, ``>``, ``>=`` hold only between two numbers or two strings, where
      ECMAScript would convert (``"2" < 3``, ``true < 3``, ``null < 3`` are all true there):
      ``X - 0 === X`` holds only for a number, ``X + "" === X`` only for a string.

    A missing step in the middle of the path (``$.a.b`` without ``a``) is an error in the
    condition, which SCXML treats as false, as the chart does. Strings are ordered by
    UTF-16 code unit in ECMAScript and by code point in the chart: they differ only
    between characters above U+FFFF and those from U+E000 to U+FFFF.

    Raises:
        DiagramError: the guard's path maps over a list (``[*]``), which a one-line
            condition can't say (the chart loader refuses such guards; a ``Guard`` made in
            code might still have one).
    """
    access = root
    for i, step in enumerate(guard.steps):
        if step == "*":
            raise DiagramError(
                f"guard {str(guard)!r} reads a list with [*]; SCXML export can't write it"
            )
        if isinstance(step, int):
            access += f"[{step}]" if step >= 0 else f".at({step})"
        elif i == 0 and _JS_NAME.match(step) and step not in _JS_RESERVED:
            access += f".{step}"
        else:
            access += f"[{json.dumps(step)}]"
    literal = json.dumps(guard.literal)
    is_null = f'{access} === null && {access} + "" === "null"'
    if guard.op == "==":
        return is_null if guard.literal is None else f"{access} === {literal}"
    if guard.op == "!=":
        if guard.literal is None:
            return f"{access} != null"
        return f"{is_null} || {access} != null && {access} !== {literal}"
    same_kind = f'{access} + ""' if isinstance(guard.literal, str) else f"{access} - 0"
    return f"{same_kind} === {access} && {access} {guard.op} {literal}"


def to_scxml(graph: Graph) -> str:
    """The SCXML document for ``graph`` (UTF-8 text with an XML declaration)."""
    ids = ncname_ids(graph)
    outgoing: dict[str, list[Transition]] = {n: [] for n in graph.nodes}
    for t in graph.transitions:
        for s in t.sources:
            outgoing[s].append(t)

    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f"<!-- {escape(graph.title)}: the {escape(graph.name)!s} chart of invoice-engine."
        " Send the chart's triggers as events, with the webhook payload as event data. -->",
        f'<scxml xmlns="{SCXML_NS}" xmlns:ie="{OUR_NS}" version="1.0" datamodel="ecmascript"'
        f" name={quoteattr(graph.name)} initial={quoteattr(ids[graph.initial[0]])}"
        f" ie:initial-states={quoteattr(' '.join(ids[i] for i in graph.initial))}>",
    ]

    def transition(pad: str, source: str, t: Transition) -> str:
        attrs = f"event={quoteattr(t.trigger)}"
        if t.guard is not None:
            attrs += f" cond={quoteattr(guard_to_ecmascript(t.guard))}"
        if t.target is not None:
            where, internal = graph.targets(source, t.target)
            attrs += f" target={quoteattr(' '.join(ids[x] for x in where))}"
            if internal:
                attrs += ' type="internal"'
        return f"{pad}<transition {attrs}/>"

    def state(pad: str, nid: str) -> None:
        node = graph.nodes[nid]
        attrs = f"id={quoteattr(ids[nid])}"
        if node.canonical:
            attrs += f" ie:canonical={quoteattr(node.canonical)}"
        if node.rules:
            rules = json.dumps([r.as_json() for r in node.rules], ensure_ascii=False)
            attrs += f" ie:canonical-rules={quoteattr(rules)}"
        if node.initial_child is not None and not node.parallel:
            attrs += f" initial={quoteattr(ids[node.initial_child])}"
        final = node.final and not outgoing[nid]  # SCXML finals have no transitions
        tag = "final" if final else "parallel" if node.parallel else "state"
        if node.final and not final:
            attrs += ' ie:final-state="true"'
        body = [transition(pad + "  ", nid, t) for t in outgoing[nid]]
        if not body and not node.children:
            lines.append(f"{pad}<{tag} {attrs}/>")
            return
        lines.append(f"{pad}<{tag} {attrs}>")
        for child in node.children:
            state(pad + "  ", child)
        lines.extend(body)
        lines.append(f"{pad}</{tag}>")

    for root in graph.roots:
        state("  ", root)
    lines.append("</scxml>")
    return "\n".join(lines) + "\n"
