"""How chart errors say *where* and *what*: locations in a chart file, pydantic errors in words.

A location reads like the YAML it points at: ``transitions[3].dest``, ``states[1].states[0]``,
and ``events['invoice.paid'].trigger`` for keys that contain dots (provider event types do),
which would otherwise be mistaken for nesting. :func:`parse_location` reads one back into the
keys and indexes it is made of, so the loader can find its line in the file, and
:func:`subject` names the state or transition it points into (``states[6]`` is
``state 'deleted'``). Pydantic's messages speak Python ("Input should be a valid dictionary or
instance of EventSpec"); :func:`pydantic_problem` says it in terms of the chart file, with the
value found and, for a typo'd key or name, the one that was probably meant.
"""

from __future__ import annotations

import ast
import difflib
import re
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel

__all__ = [
    "Path",
    "clean_loc",
    "close_to",
    "error_loc",
    "key_path",
    "locate",
    "location_of",
    "meant_key",
    "parse_location",
    "pydantic_problem",
    "shown",
    "subject",
    "unknown",
]

#: A place in a chart as the keys and list indexes that lead there: ``('states', 6, 'final')``.
Path = tuple[str | int, ...]

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LOCATION_PART = re.compile(
    r"""\.?([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\[('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")\]"""
)


def key_path(prefix: str, key: str) -> str:
    """``prefix.key``, or ``prefix['key']`` for keys a dot would make ambiguous (invoice.paid)."""
    if _IDENTIFIER.match(key):
        return f"{prefix}.{key}" if prefix else key
    return f"{prefix}[{key!r}]"


def close_to(name: str, valid: list[str]) -> str | None:
    """The name in ``valid`` that ``name`` probably meant: the same but for case, the full name
    of a nested state given by its own name (``paid`` for ``closed.paid``), or a close spelling.
    """
    for v in valid:
        if v.lower() == name.lower() or v.rsplit(".", 1)[-1] == name:
            return v
    close = difflib.get_close_matches(name, valid, n=1, cutoff=0.6)
    return close[0] if close else None


def unknown(kind: str, name: str, valid: list[str]) -> str:
    """``unknown state 'x' (did you mean 'y'?); states are: a, b, …``: the choices (15)."""
    listed = ", ".join(valid[:15]) + (", …" if len(valid) > 15 else "")
    meant = close_to(name, valid)
    hint = f" (did you mean {meant!r}?)" if meant is not None else ""
    return f"unknown {kind} {name!r}{hint}; {kind}s are: {listed or '(none)'}"


def _pydantic_step(part: int | str) -> bool:
    return isinstance(part, str) and (
        part in ("function-after", "function-before", "function-plain") or "[" in part
    )


def clean_loc(loc: tuple[int | str, ...], root: type[BaseModel] | None = None) -> Path:
    """A pydantic error location without its validator steps: only the chart's keys and
    indexes (``function-after``, ``[key]`` and the like are pydantic's own). With the ``root``
    model, a tagged union's tag goes too (``signature.stripe.header`` is
    ``signature.header``: ``stripe`` is the value of its ``scheme``, not a key)."""
    if root is not None:
        return _walk(root, loc)[0]
    return tuple(part for part in loc if not _pydantic_step(part))


def locate(loc: tuple[int | str, ...], root: type[BaseModel] | None = None) -> str:
    """A pydantic error location as the chart file spells it (``transitions[3].dest``)."""
    return location_of(clean_loc(loc, root))


def error_loc(error: Any) -> tuple[int | str, ...]:
    """Where a pydantic error is, as a location in the chart: a tagged union's missing or
    unknown tag is at its key (``signature.scheme``), not at the union (``signature``)."""
    loc = tuple(error["loc"])
    if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
        loc = (*loc, str(error["ctx"]["discriminator"]).strip("'"))
    return loc


def location_of(path: tuple[object, ...]) -> str:
    """A path of keys and indexes as the chart file spells it (``transitions[3].dest``); a
    key that is not text (``1: x``, ``null: x``) as YAML would write it."""
    out = ""
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            out = f"{out}[{part}]"
        else:
            out = key_path(out, part if isinstance(part, str) else shown(part))
    return out


def parse_location(location: str) -> Path | None:
    """The keys and indexes a location is made of: ``events['a.b'].states[1]`` is
    ``('events', 'a.b', 'states', 1)``; ``None`` for text that is not a location."""
    path: list[str | int] = []
    pos = 0
    while pos < len(location):
        m = _LOCATION_PART.match(location, pos)
        if m is None or (m.group(1) and pos > 0 and location[pos] != "."):
            return None
        name, index, quoted = m.groups()
        path.append(name if name else int(index) if index else ast.literal_eval(quoted))
        pos = m.end()
    return tuple(path)


def _child(node: Any, part: str | int) -> Any:
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    if isinstance(node, dict):
        return node.get(part)
    return None


def subject(path: Path, data: Any) -> str:
    """The state or transition ``path`` points into, by name, read from the chart's ``data``:
    ``state 'closed.paid'`` for ``states[1].states[0].final``, ``transition 'pay'`` for
    ``transitions[3].dest``; empty when it points elsewhere or the name isn't a string."""
    node = data
    names: list[str] = []
    for i, part in enumerate(path):
        node = _child(node, part)
        if node is None:
            break
        if not (isinstance(part, int) and isinstance(node, dict)):
            continue
        within, name, trigger = path[i - 1] if i else None, node.get("name"), node.get("trigger")
        if within == "states" and (i == 1 or names) and isinstance(name, str) and name:
            names.append(name)
        elif within == "transitions" and i == 1 and isinstance(trigger, str) and trigger:
            return f"transition {trigger!r}"
    # A state's own name is the value at .name: saying it again would only repeat it.
    return f"state {'.'.join(names)!r}" if names and path[-1] != "name" else ""


def shown(value: Any) -> str:
    """A value as the chart file would write it (``true``, ``null``, ``'text'``), kept short."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "…"


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]


def _tags(annotation: Any) -> dict[str, type[BaseModel]]:
    """The members of a tagged union of models by tag (each one's single-value ``Literal``
    field: ``{'stripe': StripeSignature, …}``); empty for any other annotation."""
    models = _models_in(annotation)
    if len(models) < 2:
        return {}
    tags = {}
    for model in models:
        for field in model.model_fields.values():
            if get_origin(field.annotation) is Literal and len(get_args(field.annotation)) == 1:
                tags[str(get_args(field.annotation)[0])] = model
                break
    return tags


def _walk(
    root: type[BaseModel], loc: tuple[int | str, ...]
) -> tuple[Path, type[BaseModel] | None, dict[str, type[BaseModel]]]:
    """Follow a pydantic error location through the chart models: the location as the chart
    spells it (no validator steps, no union tags), the model it points into (for listing its
    keys) and, when it points at a tagged union, the union's members by tag."""
    model: type[BaseModel] | None = root
    path: list[str | int] = []
    tags: dict[str, type[BaseModel]] = {}
    dict_key_next = False
    for part in loc:
        if _pydantic_step(part):
            continue
        if isinstance(part, str) and part in tags:  # the member a tagged union chose
            model, tags = tags[part], {}
            continue
        tags = {}
        path.append(part)
        if model is None:
            continue
        if dict_key_next or isinstance(part, int):
            dict_key_next = False
            continue
        field = model.model_fields.get(str(part))
        if field is None:
            model = None
            continue
        dict_key_next = get_origin(field.annotation) is dict
        tags = _tags(field.annotation)
        models = _models_in(field.annotation)
        model = models[0] if models else None
    return tuple(path), model, tags


def _model_at(root: type[BaseModel], loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The chart model a validation error's location points into (for listing its keys)."""
    return _walk(root, loc)[1]


def _unexpected_key(root: type[BaseModel], loc: tuple[int | str, ...]) -> str:
    key = str(loc[-1])
    model = _model_at(root, loc[:-1])
    if model is None:
        return f"unexpected key {key!r}"
    keys = list(model.model_fields)
    close = meant_key(key, keys)
    hint = f" (did you mean {close!r}?)" if close else ""
    return f"unexpected key {key!r}{hint}; keys here are: {', '.join(keys)}"


def meant_key(key: str, keys: list[str]) -> str | None:
    """The key of ``keys`` a misspelled ``key`` probably meant, if any."""
    # A prefix (destination -> dest) is the likeliest typo; otherwise only a close spelling.
    close = [k for k in keys if key.startswith(k) or k.startswith(key)] or (
        difflib.get_close_matches(key, keys, n=1, cutoff=0.8)
    )
    return close[0] if close else None


#: What a chart file calls the types pydantic expected, by pydantic error type.
_EXPECTED = {
    "string_type": "expected a string",
    "list_type": "expected a list",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "int_type": "expected a whole number",
    "int_parsing": "expected a whole number",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
}


#: How a chart file says a number's bound, by pydantic error type.
_BOUNDS = {
    "greater_than": "more than",
    "greater_than_equal": "at least",
    "less_than": "less than",
    "less_than_equal": "at most",
}

_TRUE_WORDS = ("true", "yes", "y", "on", "1")
_FALSE_WORDS = ("false", "no", "n", "off", "0")


def _meant_bool(value: Any) -> str | None:
    """``true`` or ``false`` when ``value`` is another way of writing one (``"yes"``, ``1``,
    ``"off"``), which a chart doesn't accept: its booleans are YAML's true and false only."""
    if isinstance(value, int | float) and value in (0, 1):
        return "true" if value else "false"
    if isinstance(value, str):
        word = value.strip().lower()
        return "true" if word in _TRUE_WORDS else "false" if word in _FALSE_WORDS else None
    return None


def pydantic_problem(error: Any, root: type[BaseModel]) -> str:
    """One pydantic error in the words of a chart file (YAML types, not Python's), naming the
    value found."""
    kind, value = error["type"], error.get("input")
    if kind == "missing":
        return "missing (required)"
    if kind == "extra_forbidden":
        return _unexpected_key(root, tuple(error["loc"]))
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        # `scheme: strip` in a signature block: which scheme was probably meant, and which exist.
        key = str(error["ctx"]["discriminator"]).strip("'")
        names = list(_walk(root, tuple(error["loc"]))[2])
        if kind == "union_tag_not_found":
            return f"missing (required); {key}s are: {', '.join(names)}"
        return unknown(key, str(error["ctx"]["tag"]), names)
    if kind == "literal_error":
        choices = re.findall(r"'((?:[^'\\]|\\.)*)'", str(error["ctx"]["expected"]))
        shown_value = value if isinstance(value, str) else shown(value)
        return unknown("value", shown_value, choices)
    msg: str = _EXPECTED.get(kind) or error["msg"].removeprefix("Value error, ")
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        is_event = len(error["loc"]) == 2 and error["loc"][0] == "events"
        msg = "expected a trigger name or a mapping" if is_event else "expected a mapping"
    if kind in (*_EXPECTED, "model_type", "model_attributes_type", "dict_type"):
        msg += f", got {shown(value)}"
        tags = _walk(root, tuple(error["loc"]))[2]
        if isinstance(value, str) and value in tags:  # `signature: stripe`
            key = next(k for k, f in tags[value].model_fields.items() if f.is_required())
            msg += f" (did you mean {{{key}: {value}}}?)"
        if kind in ("bool_type", "bool_parsing") and (meant := _meant_bool(value)) is not None:
            msg += f" (did you mean {meant}?)"
        if kind == "string_type" and isinstance(value, bool | int | float):
            written = str(value).lower() if isinstance(value, bool) else str(value)
            kind_name = {"bool": "a boolean", "int": "an integer", "float": "a number"}
            msg += f" (YAML reads it as {kind_name[type(value).__name__]}: quote it, '{written}')"
    elif kind in _BOUNDS:
        msg = f"must be {_BOUNDS[kind]} {next(iter(error['ctx'].values()))}, got {shown(value)}"
    elif kind == "too_short":
        n = error["ctx"]["min_length"]
        msg = f"needs at least {n} {'entry' if n == 1 else 'entries'}, got none"
    elif kind == "string_too_short":
        msg = f"must not be empty, got {shown(value)}"
    elif kind == "string_pattern_mismatch":
        msg = f"{value!r} doesn't match {error['ctx']['pattern']}"
    elif (
        kind != "value_error"
        and isinstance(value, str | int | float | bool)
        and shown(value) not in msg
    ):
        msg += f" (got {shown(value)})"
    return msg
