"""The field types of a chart file's models (:mod:`.spec`): locators and guards read from
text, one-or-many name lists, and YAML's own booleans."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, Strict, WithJsonSchema

from .expr import Guard, Locator

__all__ = [
    "LOCATOR_SCHEMA",
    "Bool",
    "GuardField",
    "LocatorField",
    "Names",
    "as_list",
    "one_or_many",
    "single_value",
]


def as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def _to_locator(value: Any) -> Any:
    if isinstance(value, Locator):
        return value
    if not isinstance(value, str):
        raise ValueError(f"a locator is a string like '$.data.id' or 'header:X-Id', got {value!r}")
    return Locator.parse(value)


def _to_guard(value: Any) -> Any:
    if isinstance(value, Guard) or value is None:
        return value
    if not isinstance(value, str):
        raise ValueError(f"a guard is a string like '$.amountDue == 0', got {value!r}")
    try:
        return Guard.parse(value)
    except ValueError as exc:
        if value in str(exc):
            raise
        # e.g. a path that doesn't parse: say which guard it came from, and what guards are.
        raise ValueError(
            f"guard {value!r}: {exc}; a guard is PATH OP VALUE, a comparison, never code"
        ) from None


def single_value(loc: Locator) -> Locator:
    """Refuse a locator that can never give one text value: ``[*]`` (a list) or ``$`` (the
    whole body, always an object). Every delivery would then be invalid."""
    if "*" in loc.steps:
        raise ValueError(
            f"{loc} reads a list with [*], which is never one value, so every delivery would "
            "be invalid: name one item ([0], [-1])"
        )
    if loc.header is None and not loc.steps:
        raise ValueError(
            f"{loc} is the whole body, which is always an object, so every delivery would be "
            "invalid: name a field ($.id)"
        )
    return loc


LOCATOR_SCHEMA = {
    "type": "string",
    "description": "A body path ($.data.object.id) or a header (header:X-Webhook-ID)",
}


def one_or_many(item: dict[str, Any]) -> WithJsonSchema:
    """The schema of a field that takes one value or a list (so editors accept both)."""
    return WithJsonSchema({"anyOf": [item, {"type": "array", "items": item}]})


LocatorField = Annotated[
    Locator,
    BeforeValidator(_to_locator),
    PlainSerializer(str, return_type=str),
    WithJsonSchema(LOCATOR_SCHEMA),
]
GuardField = Annotated[
    Guard,
    BeforeValidator(_to_guard),
    PlainSerializer(str, return_type=str),
    WithJsonSchema(
        {"type": "string", "description": "PATH OP JSON-VALUE, e.g. '$.amountDue == 0'"}
    ),
]
Names = Annotated[list[str], BeforeValidator(as_list), one_or_many({"type": "string"})]
#: A chart's booleans are YAML's ``true`` and ``false`` only: not ``"yes"``, ``1`` or ``"off"``,
#: which pydantic would otherwise read as booleans while refusing ``yes please``.
Bool = Annotated[bool, Strict()]
