"""The two tiny languages a chart may contain: payload paths and guards. Neither can call anything.

A **path** is a JSONPath-like address into a webhook body: ``$.data.object.id``,
``$.payments[-1].id``, ``$.payments[*].id``. It is parsed once, when the chart loads, into a
tuple of keys and indexes; reading it is a loop of ``dict.get`` / ``list[i]``.

A **locator** says where a delivery field lives: a body path (``$.type``) or a header
(``header:X-Event-Type``; header names are case-insensitive).

A **guard** is one comparison of a path with a JSON literal: ``$.amountDue == 0``,
``amount_remaining > 0``, ``$.status != "void"``. The grammar is a regular expression and the
literal is read by :func:`json.loads`; there is no expression evaluator, so a chart file can
never run code. Comparisons follow JSON, not Python: ``1`` is not ``true``, ``1`` is ``1.0``,
and ``<`` holds only between two numbers or two strings.
"""

from __future__ import annotations

import json
import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

Step = str | int  # a key, an index, or the wildcard "*"

_MISSING = object()
_STEP = re.compile(r"\.([A-Za-z_][\w\-]*)|\[(-?\d+|\*)\]|\[\"([^\"]+)\"\]|\['([^']+)'\]")


def parse_path(text: str) -> tuple[Step, ...]:
    """Parse ``$.a.b[0]['odd key'][*]`` (the ``$.`` may be left out) into steps.

    Raises:
        ValueError: the text is not a path; the message says where it stops making sense.
    """
    src = text.strip()
    if src == "$":
        return ()
    if not src.startswith("$"):
        src = "$." + src if not src.startswith("[") else "$" + src
    steps: list[Step] = []
    pos = 1
    while pos < len(src):
        m = _STEP.match(src, pos)
        if m is None:
            raise ValueError(f"not a path: {text!r} (can't read from {src[pos:]!r})")
        key, index, dq, sq = m.groups()
        if key is not None:
            steps.append(key)
        elif index is not None:
            steps.append("*" if index == "*" else int(index))
        else:
            steps.append(dq if dq is not None else sq)
        pos = m.end()
    return tuple(steps)


def read_path(doc: Any, steps: tuple[Step, ...]) -> Any:
    """The value at ``steps`` in ``doc``, or :data:`MISSING` when any step is absent.

    ``*`` maps the rest of the path over a list and gives a list (missing items are left out).
    """
    cur = doc
    for i, step in enumerate(steps):
        if isinstance(step, int):
            if type(cur) is not list:
                return _MISSING
            try:
                cur = cur[step]
            except IndexError:
                return _MISSING
        elif step == "*":
            if type(cur) is not list:
                return _MISSING
            rest = steps[i + 1 :]
            found = [read_path(item, rest) for item in cur]
            return [v for v in found if v is not _MISSING]
        else:
            if type(cur) is not dict:
                return _MISSING
            cur = cur.get(step, _MISSING)
            if cur is _MISSING:
                return _MISSING
    return cur


MISSING: Any = _MISSING


@dataclass(frozen=True)
class Locator:
    """Where one field of a delivery lives: a path into the body, or a header."""

    text: str
    header: str | None = None  # lower-cased header name
    steps: tuple[Step, ...] = field(default=())

    @classmethod
    def parse(cls, text: str) -> Locator:
        t = text.strip()
        if t.lower().startswith("header:"):
            name = t[len("header:") :].strip()
            if not name or not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", name):
                raise ValueError(f"not a header name: {name!r}")
            return cls(text=f"header:{name}", header=name.lower())
        return cls(text=t if t.startswith("$") else "$." + t, steps=parse_path(t))

    def read(self, body: Any, headers: Mapping[str, str]) -> Any:
        """The located value, or :data:`MISSING`. ``headers`` must have lower-case keys."""
        if self.header is not None:
            return headers.get(self.header, _MISSING)
        return read_path(body, self.steps)

    def __str__(self) -> str:
        return self.text


_OPS = ("==", "!=", "<=", ">=", "<", ">")
_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
}
_GUARD = re.compile(r"^\s*(?P<path>\S+?)\s*(?P<op>==|!=|<=|>=|<|>)\s*(?P<lit>.+?)\s*$")


def json_kind(value: Any) -> str | None:
    """The JSON type of a Python value as :func:`json.loads` makes it: ``"null"``,
    ``"boolean"``, ``"number"`` or ``"string"``; ``None`` for anything else (arrays, objects).

    ``bool`` is checked before ``int``: in Python ``True`` is an ``int``, in JSON it is not a
    number.
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return None


def json_equal(value: Any, literal: Any) -> bool:
    """JSON equality of a payload value with a guard's scalar literal.

    A boolean equals only the same boolean, ``null`` only ``null``, a string only the same
    string, and numbers compare numerically (``1 == 1.0``, but ``1`` is not ``true``). An array
    or an object never equals a scalar.
    """
    kind = json_kind(value)
    return kind is not None and kind == json_kind(literal) and bool(value == literal)


def json_order(op: str, value: Any, literal: Any) -> bool:
    """``value OP literal`` for an ordering ``op`` (``<``, ``<=``, ``>``, ``>=``).

    Holds only between two numbers (booleans are not numbers) or two strings (compared by
    code point); anything else is false.
    """
    kind = json_kind(value)
    if kind not in ("number", "string") or kind != json_kind(literal):
        return False
    return bool(_ORDER[op](value, literal))


class _NotJSON(ValueError):
    """``NaN``, ``Infinity`` or ``-Infinity``: Python's json reads them, JSON has none."""


def _not_a_constant(text: str) -> Any:
    raise _NotJSON(text)


@dataclass(frozen=True)
class Guard:
    """``PATH OP LITERAL``, e.g. ``$.amountDue == 0``. Called with the payload, returns a bool.

    Comparisons follow JSON, not Python (see :func:`json_equal` and :func:`json_order`): a
    boolean equals only a boolean (``1 == true`` is false, so ``$.flag != true`` holds for
    ``1``), numbers compare numerically (``1 == 1.0``), ``null`` equals only ``null``, and the
    ordering operators hold only between two numbers or two strings. A missing path makes every
    guard false, ``!=`` included.

    Guards that could never mean what they say are refused when they are parsed: a path that
    maps over a list (``[*]``) or is the whole body (``$``), a literal that is not a JSON value
    (``NaN``, ``Infinity``, a number too large for a float), and an ordering operator with a
    boolean or ``null`` literal.
    """

    text: str
    steps: tuple[Step, ...]
    op: str
    literal: Any

    @classmethod
    def parse(cls, text: str) -> Guard:
        """Read ``PATH OP LITERAL``.

        Raises:
            ValueError: the text is not a guard, or a guard that could never hold (or always
                would); the message quotes the guard and says why.
        """
        m = _GUARD.match(text)
        if m is None:
            raise ValueError(
                f"not a guard: {text!r}; write PATH OP VALUE, e.g. '$.amountDue == 0', "
                f"with OP one of {', '.join(_OPS)}"
            )
        extra = re.match(r"[=<>!]+", m["lit"])
        if extra is not None:  # `>>`, `===`, `<>`: the operator is misspelled, not the value
            raise ValueError(
                f"not a guard: {text!r}: {m['op'] + extra[0]!r} is not an operator; OP is one "
                f"of {', '.join(_OPS)}"
            )
        try:
            literal = json.loads(m["lit"], parse_constant=_not_a_constant)
        except json.JSONDecodeError:
            raise ValueError(
                f"not a JSON value in guard {text!r}: {m['lit']!r} "
                '(strings need double quotes: "paid")'
            ) from None
        except _NotJSON:
            raise ValueError(
                f"not a JSON value in guard {text!r}: {m['lit']!r} (JSON has no NaN or "
                "Infinity, and a payload value can never equal them)"
            ) from None
        except ValueError as exc:  # an integer too long to read
            raise ValueError(f"not a usable number in guard {text!r}: {exc}") from None
        if isinstance(literal, dict | list):
            raise ValueError(f"guard {text!r} compares with an object or list; use a scalar")
        if isinstance(literal, float) and not math.isfinite(literal):
            raise ValueError(
                f"guard {text!r}: the number {m['lit']} is too large to compare with "
                "(it reads as infinity)"
            )
        op = m["op"]
        if op in _ORDER and json_kind(literal) not in ("number", "string"):
            raise ValueError(
                f"guard {text!r} can never hold: {op} compares two numbers or two strings, "
                f"never {m['lit']}; use == or !="
            )
        steps = parse_path(m["path"])
        if "*" in steps:
            raise ValueError(
                f"guard {text!r} reads a list with [*]; a list never compares with "
                f"{m['lit']}, so the guard could never hold: name one item ([0], [-1])"
            )
        if not steps:
            raise ValueError(
                f"guard {text!r} compares the whole body, which is always an object; "
                "name a field ($.amountDue)"
            )
        return cls(text=text.strip(), steps=steps, op=op, literal=literal)

    def value(self, payload: Any) -> Any:
        return read_path(payload, self.steps)

    def __call__(self, payload: Any = None, *_: Any, **__: Any) -> bool:
        if type(payload) is Assumed:  # the compiled chart asking the machine "if this held"
            return payload.holds(self)
        value = read_path(payload, self.steps)
        if value is _MISSING:
            return False
        if self.op == "==":
            return json_equal(value, self.literal)
        if self.op == "!=":
            return not json_equal(value, self.literal)
        return json_order(self.op, value, self.literal)

    def __str__(self) -> str:
        return self.text


class Assumed:
    """What the guards say, given rather than read: a compiled chart fires its ``transitions``
    machine with one of these as the payload to learn what the machine does for each outcome
    of the guards it could ask (:mod:`engine.chart._machine`). Never a payload of a delivery
    (a delivery's body is JSON)."""

    __slots__ = ("outcomes",)

    def __init__(self, outcomes: dict[Guard, bool]) -> None:
        self.outcomes = outcomes

    def holds(self, guard: Guard) -> bool:
        try:
            return self.outcomes[guard]
        except KeyError:
            raise GuardNotForeseen(guard) from None


class GuardNotForeseen(LookupError):
    """The machine asked a guard the chart did not expect it to ask for this question."""

    def __init__(self, guard: Guard) -> None:
        super().__init__(
            f"the machine asked guard {guard.text!r}, which no transition it could take has"
        )
