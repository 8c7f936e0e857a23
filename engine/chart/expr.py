"""The two tiny languages a chart may contain: payload paths and guards. Neither can call anything.

A **path** is a JSONPath-like address into a webhook body: ``$.data.object.id``,
``$.payments[-1].id``, ``$.payments[*].id``. It is parsed once, when the chart loads, into a
tuple of keys and indexes; reading it is a loop of ``dict.get`` / ``list[i]``.

A **locator** says where a delivery field lives: a body path (``$.type``) or a header
(``header:X-Event-Type``; header names are case-insensitive).

A **guard** is one comparison of a path with a JSON literal: ``$.amountDue == 0``,
``amount_remaining > 0``, ``$.status != "void"``. The grammar is a regular expression and the
literal is read by :func:`json.loads`; there is no expression evaluator, so a chart file can
never run code.
"""

from __future__ import annotations

import json
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


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
}
_GUARD = re.compile(r"^\s*(?P<path>\S+?)\s*(?P<op>==|!=|<=|>=|<|>)\s*(?P<lit>.+?)\s*$")


@dataclass(frozen=True)
class Guard:
    """``PATH OP LITERAL``, e.g. ``$.amountDue == 0``. Called with the payload, returns a bool.

    A missing path, or a value that can't be compared with the literal, makes the guard false.
    Booleans never compare equal to numbers (``true == 1`` is false), as in JSON.
    """

    text: str
    steps: tuple[Step, ...]
    op: str
    literal: Any

    @classmethod
    def parse(cls, text: str) -> Guard:
        m = _GUARD.match(text)
        if m is None:
            raise ValueError(
                f"not a guard: {text!r}; write PATH OP VALUE, e.g. '$.amountDue == 0', "
                f"with OP one of {', '.join(_OPS)}"
            )
        try:
            literal = json.loads(m["lit"])
        except json.JSONDecodeError:
            raise ValueError(
                f"not a JSON value in guard {text!r}: {m['lit']!r} "
                '(strings need double quotes: "paid")'
            ) from None
        if isinstance(literal, dict | list):
            raise ValueError(f"guard {text!r} compares with an object or list; use a scalar")
        return cls(text=text.strip(), steps=parse_path(m["path"]), op=m["op"], literal=literal)

    def value(self, payload: Any) -> Any:
        return read_path(payload, self.steps)

    def __call__(self, payload: Any = None, *_: Any, **__: Any) -> bool:
        value = read_path(payload, self.steps)
        if value is _MISSING:
            return False
        if isinstance(value, bool) != isinstance(self.literal, bool) and self.literal is not None:
            return False
        try:
            return bool(_OPS[self.op](value, self.literal))
        except TypeError:
            return False

    def __str__(self) -> str:
        return self.text
