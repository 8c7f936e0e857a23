"""How chart errors say *where* and *what*: locations in a chart file, pydantic errors in words.

A location reads like the YAML it points at: ``transitions[3].dest``, ``states[1].states[0]``,
and ``events['invoice.paid'].trigger`` for keys that contain dots (provider event types do),
which would otherwise be mistaken for nesting. Pydantic's messages speak Python ("Input should
be a valid dictionary or instance of EventSpec"); :func:`pydantic_problem` says it in terms of
the chart file, with the value found and, for a typo'd key, the key that was probably meant.
"""

from __future__ import annotations

import difflib
import re
from typing import Any, get_args, get_origin

from pydantic import BaseModel

__all__ = ["key_path", "locate", "pydantic_problem", "unknown"]

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def key_path(prefix: str, key: str) -> str:
    """``prefix.key``, or ``prefix['key']`` for keys a dot would make ambiguous (invoice.paid)."""
    if _IDENTIFIER.match(key):
        return f"{prefix}.{key}" if prefix else key
    return f"{prefix}[{key!r}]"


def unknown(kind: str, name: str, valid: list[str]) -> str:
    """``unknown state 'x'; states are: a, b, …``: a misspelled name, and the choices (15)."""
    shown = ", ".join(valid[:15]) + (", …" if len(valid) > 15 else "")
    return f"unknown {kind} {name!r}; {kind}s are: {shown}"


def locate(loc: tuple[int | str, ...]) -> str:
    """A pydantic error location as the chart file spells it (``transitions[3].dest``)."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("function-after", "function-before", "function-plain") or "[" in str(part):
            continue
        else:
            out = key_path(out, str(part))
    return out


def _model_at(root: type[BaseModel], loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The chart model a validation error's location points into (for listing its keys)."""

    def model_in(annotation: Any) -> type[BaseModel] | None:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            return annotation
        for arg in get_args(annotation):
            found = model_in(arg)
            if found is not None:
                return found
        return None

    model: type[BaseModel] | None = root
    dict_key_next = False
    for part in loc:
        if model is None:
            return None
        if dict_key_next or isinstance(part, int):
            dict_key_next = False
            continue
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        dict_key_next = get_origin(field.annotation) is dict
        model = model_in(field.annotation)
    return model


def _unexpected_key(root: type[BaseModel], loc: tuple[int | str, ...]) -> str:
    key = str(loc[-1])
    model = _model_at(root, loc[:-1])
    if model is None:
        return f"unexpected key {key!r}"
    keys = list(model.model_fields)
    # A prefix (destination -> dest) is the likeliest typo; otherwise only a close spelling.
    close = [k for k in keys if key.startswith(k) or k.startswith(key)] or (
        difflib.get_close_matches(key, keys, n=1, cutoff=0.8)
    )
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unexpected key {key!r}{hint}; keys here are: {', '.join(keys)}"


def pydantic_problem(error: Any, root: type[BaseModel]) -> str:
    """One pydantic error in the words of a chart file (YAML types, not Python's)."""
    kind, value = error["type"], error.get("input")
    if kind == "missing":
        return "missing (required)"
    if kind == "extra_forbidden":
        return _unexpected_key(root, tuple(error["loc"]))
    msg: str = error["msg"].removeprefix("Value error, ")
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        is_event = len(error["loc"]) == 2 and error["loc"][0] == "events"
        msg = "expected a trigger name or a mapping" if is_event else "expected a mapping"
    if kind in ("string_type", "list_type", "model_type", "model_attributes_type", "dict_type"):
        shown = "null" if value is None else repr(value)
        msg += f", got {shown}"
        if kind == "string_type" and isinstance(value, bool | int | float):
            written = str(value).lower() if isinstance(value, bool) else str(value)
            kind_name = {"bool": "a boolean", "int": "an integer", "float": "a number"}
            msg += f" (YAML reads it as {kind_name[type(value).__name__]}: quote it, '{written}')"
    elif kind == "too_short":
        n = error["ctx"]["min_length"]
        msg = f"needs at least {n} {'entry' if n == 1 else 'entries'}, got none"
    elif kind == "string_pattern_mismatch":
        msg = f"{value!r} doesn't match {error['ctx']['pattern']}"
    return msg
