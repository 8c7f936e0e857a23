"""The chart file: pydantic models for ``statecharts/*.yaml``, and loading them with real errors.

A chart is validated twice. First its *structure*, by the pydantic models below (the same models
give ``invoice-engine schema``). Then its *meaning*, by :func:`_check_meaning`: the initial
states, every source and dest, every trigger named by the delivery map and every status mapping
must exist; every state must have a canonical lifecycle state. Either way a broken chart raises
:class:`~engine.errors.ChartError` naming the file, the place inside it and what was wrong.

YAML is read with a safe loader that keeps ``on``/``off``/``yes``/``no`` as strings (YAML 1.1
would turn them into booleans, silently changing a state called ``on`` into ``True``) and that
refuses duplicate keys (PyYAML would otherwise keep the last one without a word).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    PlainSerializer,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from ._chart_messages import key_path, locate, pydantic_problem
from ._expr import Guard, Locator
from .errors import ChartError

__all__ = [
    "CANONICAL_STATES",
    "ChartSpec",
    "DeliveryMap",
    "EventSpec",
    "LintException",
    "StateSpec",
    "TimeSpec",
    "TransitionSpec",
    "parse_chart",
    "read_chart_file",
]

#: The canonical lifecycle every provider's states map to. A provider may add its own
#: (``refunded``, ``credited``); lint warns about canonical names outside this list.
CANONICAL_STATES = ("draft", "open", "paid", "void", "uncollectible", "refunded", "credited")

_NAME = re.compile(r"^[^.\s][^.]*$")  # anything without a dot (the nesting separator)


def _as_list(value: Any) -> Any:
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


_LOCATOR_SCHEMA = {
    "type": "string",
    "description": "A body path ($.data.object.id) or a header (header:X-Webhook-ID)",
}


def _one_or_many(item: dict[str, Any]) -> WithJsonSchema:
    """The schema of a field that takes one value or a list (so editors accept both)."""
    return WithJsonSchema({"anyOf": [item, {"type": "array", "items": item}]})


LocatorField = Annotated[
    Locator,
    BeforeValidator(_to_locator),
    PlainSerializer(str, return_type=str),
    WithJsonSchema(_LOCATOR_SCHEMA),
]
GuardField = Annotated[
    Guard,
    BeforeValidator(_to_guard),
    PlainSerializer(str, return_type=str),
    WithJsonSchema(
        {"type": "string", "description": "PATH OP JSON-VALUE, e.g. '$.amountDue == 0'"}
    ),
]
Names = Annotated[list[str], BeforeValidator(_as_list), _one_or_many({"type": "string"})]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StateSpec(_Model):
    """A state. With ``states`` it is a compound state whose children nest under it."""

    name: str = Field(description="No dots: nested states are addressed as parent.child")
    canonical: str | None = Field(
        None, description="The canonical lifecycle state; children inherit it"
    )
    final: bool = Field(False, description="Nothing leaves a final state")
    initial: str | None = Field(
        None, description="Compound states: the child entered by default (the first one if unset)"
    )
    parallel: bool = Field(False, description="Reserved for orthogonal regions (not supported yet)")
    description: str = ""
    states: list[StateSpec] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _name_has_no_dot(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(f"state name {v!r} must be non-empty and contain no '.'")
        return v


class TransitionSpec(_Model):
    """``trigger`` moves an invoice from any of ``source`` to ``dest`` (if ``guard`` holds)."""

    trigger: str = Field(min_length=1)
    source: Names = Field(description="One state, a list of states, or '*' (every non-final state)")
    dest: str | None = Field(None, description="Leave out (with internal: true) for a no-op")
    internal: bool = Field(False, description="Legal, but changes nothing")
    guard: GuardField | None = None
    description: str = ""

    @model_validator(mode="after")
    def _dest_or_internal(self) -> TransitionSpec:
        if self.internal and self.dest is not None:
            raise ValueError("an internal transition has no dest")
        if not self.internal and self.dest is None:
            raise ValueError("dest is required (or write internal: true for a no-op)")
        if not self.source:
            raise ValueError("source is empty")
        return self


class TimeSpec(_Model):
    """Where a delivery's occurrence time lives and how it is written."""

    at: LocatorField
    format: str = Field(
        "iso8601",
        description="unix, unix_ms, iso8601, or a strptime format such as '%Y-%m-%d %H:%M:%S'",
    )
    timezone: str = Field("UTC", description="For times written without a zone (only UTC)")

    @field_validator("timezone")
    @classmethod
    def _utc_only(cls, v: str) -> str:
        if v.upper() != "UTC":
            raise ValueError(f"timezone {v!r} is not supported; only UTC")
        return "UTC"


class DeliveryMap(_Model):
    """How to read one delivery: where each field lives in the body or the headers."""

    event_type: Annotated[
        list[LocatorField], BeforeValidator(_as_list), _one_or_many(_LOCATOR_SCHEMA)
    ] = Field(description="One locator, or several whose values are joined with '.'")
    event_id: LocatorField | None = Field(None, description="Unset: derive idempotency_key")
    idempotency_key: list[LocatorField] | None = Field(
        None, description="Fields hashed into a key, for providers that send no event id"
    )
    invoice_id: LocatorField
    occurred_at: TimeSpec | None = Field(
        None, description="Unset: deliveries are ordered by arrival"
    )
    status: LocatorField | None = Field(None, description="The invoice's status snapshot")
    statuses: dict[str, str] = Field(
        default_factory=dict,
        description="Provider status value -> state (a state's own name maps to itself)",
    )

    @model_validator(mode="after")
    def _some_identity(self) -> DeliveryMap:
        if self.event_id is None and not self.idempotency_key:
            raise ValueError("give event_id, or idempotency_key for a provider without event ids")
        return self


class EventSpec(_Model):
    """What one provider event means. Exactly one of trigger, create, follow_status, info."""

    trigger: str | None = Field(None, description="Fire this trigger")
    create: bool = Field(
        False, description="Creates the invoice in the snapshot's state (an initial state)"
    )
    follow_status: bool = Field(
        False, description="Go to the state named by the status snapshot, by any legal transition"
    )
    info: bool = Field(False, description="Recorded; legal in `states`; changes nothing")
    states: Names | None = Field(None, description="info: the states it is legal in (default all)")
    invoice_optional: bool = Field(
        False, description="May come without an invoice id (previews); recorded, changes nothing"
    )
    description: str = ""

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"trigger": data} if isinstance(data, str) else data

    @model_validator(mode="after")
    def _exactly_one(self) -> EventSpec:
        kinds = {
            "trigger": self.trigger is not None,
            "create": self.create,
            "follow_status": self.follow_status,
            "info": self.info,
        }
        given = [k for k, v in kinds.items() if v]
        if len(given) != 1:
            got = f"got {' and '.join(given)}" if given else "got none"
            raise ValueError(f"give exactly one of trigger, create, follow_status, info ({got})")
        if self.states is not None and not self.info:
            raise ValueError("states only goes with info")
        return self

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        # The YAML shorthand `invoice.paid: pay` means {trigger: pay}; editors must accept it.
        shorthand = {"type": "string", "description": "Shorthand for {trigger: NAME}"}
        return {"anyOf": [shorthand, handler(core_schema)]}

    @property
    def kind(self) -> Literal["trigger", "create", "follow_status", "info"]:
        if self.trigger is not None:
            return "trigger"
        if self.create:
            return "create"
        return "follow_status" if self.follow_status else "info"


class LintException(_Model):
    """A lint finding the chart's author accepts on purpose, and why."""

    rule: str
    target: str
    why: str = Field(min_length=1)


class ChartSpec(_Model):
    """One provider's invoice lifecycle, and how to read its webhooks."""

    model_config = ConfigDict(
        json_schema_extra={"$schema": "https://json-schema.org/draft/2020-12/schema"}
    )

    provider: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    title: str = ""
    sources: list[str] = Field(default_factory=list, description="The documents followed")
    initial: Names = Field(description="Where an invoice may be born; the first is the default")
    states: list[StateSpec] = Field(min_length=1)
    transitions: list[TransitionSpec]
    delivery: DeliveryMap
    events: dict[str, EventSpec]
    lint_exceptions: list[LintException] = Field(default_factory=list)


# --------------------------------------------------------------------------------------- YAML


class _Loader(yaml.SafeLoader):
    """Safe, YAML-1.2-ish booleans (only true/false), and no duplicate keys."""


_Loader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def _mapping_without_duplicates(loader: _Loader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: dict[Any, yaml.Node] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            first = seen[key].start_mark
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {key!r} (first at line {first.line + 1}); YAML would keep "
                "only the last one",
                key_node.start_mark,
            )
        seen[key] = key_node
    loader.flatten_mapping(node)
    return dict(loader.construct_pairs(node))


_Loader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _mapping_without_duplicates,
)


def load_yaml(text: str, source: str = "<string>") -> Any:
    """YAML to Python, safely; a YAML error becomes a :class:`ChartError` with the line."""
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        context, start = getattr(exc, "context", None), getattr(exc, "context_mark", None)
        if context and start is not None and start is not mark:
            # The mistake is often where the construct began (an unclosed bracket), not here.
            problem += f" ({context} at line {start.line + 1})"
        raise ChartError(source, where, f"not valid YAML: {problem}") from None


# --------------------------------------------------------------------------------- meaning


def _leaf_names(states: list[StateSpec], prefix: str = "") -> list[str]:
    out: list[str] = []
    for s in states:
        full = prefix + s.name
        out.extend(_leaf_names(s.states, full + ".") if s.states else [full])
    return out


def _all_names(states: list[StateSpec], prefix: str = "") -> dict[str, StateSpec]:
    out: dict[str, StateSpec] = {}
    for s in states:
        full = prefix + s.name
        out[full] = s
        out.update(_all_names(s.states, full + "."))
    return out


def _unknown(kind: str, name: str, valid: list[str]) -> str:
    shown = ", ".join(valid[:15]) + (", …" if len(valid) > 15 else "")
    return f"unknown {kind} {name!r}; {kind}s are: {shown}"


def _check_states(spec: ChartSpec, source: str) -> None:
    def walk(states: list[StateSpec], where: str, inherited: str | None) -> None:
        names = [s.name for s in states]
        for i, s in enumerate(states):
            loc = f"{where}[{i}]"
            if names.count(s.name) > 1:
                raise ChartError(source, f"{loc}.name", f"state {s.name!r} is defined twice")
            if s.parallel:
                raise ChartError(
                    source, f"{loc}.parallel", "parallel regions are not supported yet"
                )
            canonical = s.canonical or inherited
            if not s.states:
                if canonical is None:
                    raise ChartError(
                        source,
                        loc,
                        f"state {s.name!r} has no canonical lifecycle state: add canonical: "
                        f"one of {', '.join(CANONICAL_STATES)} (here or on its parent)",
                    )
                if s.initial is not None:
                    raise ChartError(source, f"{loc}.initial", "only compound states have initial")
            else:
                if s.final:
                    raise ChartError(source, f"{loc}.final", "a compound state can't be final")
                if s.initial is not None and s.initial not in [c.name for c in s.states]:
                    raise ChartError(
                        source,
                        f"{loc}.initial",
                        _unknown("state", s.initial, [c.name for c in s.states]),
                    )
                walk(s.states, f"{loc}.states", canonical)

    walk(spec.states, "states", None)


def _check_meaning(spec: ChartSpec, source: str) -> None:
    _check_states(spec, source)
    names = list(_all_names(spec.states))
    leaves = _leaf_names(spec.states)

    def state(name: str, loc: str) -> None:
        if name not in names:
            raise ChartError(source, loc, _unknown("state", name, names))

    for i, name in enumerate(spec.initial):
        state(name, f"initial[{i}]" if len(spec.initial) > 1 else "initial")
    triggers: list[str] = []
    for i, t in enumerate(spec.transitions):
        for j, src in enumerate(t.source):
            if src != "*":
                state(src, f"transitions[{i}].source" + (f"[{j}]" if len(t.source) > 1 else ""))
        if t.dest is not None:
            state(t.dest, f"transitions[{i}].dest")
        if t.trigger not in triggers:
            triggers.append(t.trigger)
    for event_type, ev in spec.events.items():
        loc = key_path("events", event_type)
        if ev.trigger is not None and ev.trigger not in triggers:
            raise ChartError(source, f"{loc}.trigger", _unknown("trigger", ev.trigger, triggers))
        for j, s in enumerate(ev.states or []):
            state(s, f"{loc}.states[{j}]")
        if ev.follow_status and spec.delivery.status is None:
            raise ChartError(source, loc, "follow_status needs delivery.status")
    for value, target in spec.delivery.statuses.items():
        if target not in leaves:
            raise ChartError(
                source, key_path("delivery.statuses", value), _unknown("state", target, leaves)
            )


def parse_chart(data: Any, source: str = "<string>") -> ChartSpec:
    """Validate already-loaded YAML data as a chart: structure, then meaning.

    Raises:
        ChartError: naming ``source``, the location inside it and the problem.
    """
    if data is None:
        raise ChartError(source, "", "the chart is empty; it needs provider, initial, states, …")
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else f"a {type(data).__name__}"
        raise ChartError(source, "", f"a chart is a mapping (provider: …, states: …), got {kind}")
    try:
        spec = ChartSpec.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        msg = pydantic_problem(first, ChartSpec)
        more = f" (and {exc.error_count() - 1} more problems)" if exc.error_count() > 1 else ""
        raise ChartError(source, locate(first["loc"]), msg + more) from None
    _check_meaning(spec, source)
    return spec


def read_chart_file(path: str | Path) -> ChartSpec:
    """Read, parse and check a chart file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ChartError(str(p), "", f"can't read the file: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ChartError(str(p), "", f"not UTF-8 text: {exc.reason}") from None
    return parse_chart(load_yaml(text, str(p)), str(p))
