"""The chart file's structure: pydantic models for ``statecharts/*.yaml``.

These models are the first of a chart's two validations (structure; :mod:`engine.chart.load`
checks meaning) and give ``invoice-engine schema`` its JSON Schema.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from ._fields import (
    LOCATOR_SCHEMA,
    Bool,
    GuardField,
    LocatorField,
    Names,
    as_list,
    one_or_many,
    single_value,
)
from ._signature import SignatureSpec
from ._time_format import NUMERIC_TIME_FORMATS, TIME_FORMATS, check_time_format
from .expr import Locator

__all__ = [
    "CANONICAL_STATES",
    "TIME_FORMATS",
    "CanonicalRule",
    "ChartSpec",
    "DeliveryMap",
    "EventSpec",
    "LintException",
    "StateSpec",
    "TimeSpec",
    "TransitionSpec",
    "check_time_format",
]

#: The canonical lifecycle every provider's states map to. A provider may add its own
#: (``refunded``, ``credited``); lint warns about canonical names outside this list.
CANONICAL_STATES = ("draft", "open", "paid", "void", "uncollectible", "refunded", "credited")

#: What a provider's name (and so its chart file's name) may be.
PROVIDER_NAME = r"^[a-z][a-z0-9_]*$"
#: Anything without a dot (the nesting separator) or a ``+`` (which joins the leaves of a
#: configuration's text form, ``finalized.payment.pending+finalized.overdue.no``).
_NAME = re.compile(r"^[^.+\s][^.+]*$")


#: Words YAML 1.1 reads as booleans, which the chart loader keeps as text (state names).
_YAML_BOOLEANS = frozenset({"yes", "no", "on", "off", "y", "n", "true", "false"})


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CanonicalRule(_Model):
    """One row of a parallel state's canonical table: when every named region is in one of
    the given states, the configuration's canonical state is ``canonical``. Rows are tried in
    order; the first that matches decides (a row without ``when`` matches everything)."""

    when: dict[str, Names] = Field(
        default_factory=dict,
        description="Region name -> its state (or states) this row needs; names are relative "
        "to the region (payment: succeeded)",
    )
    canonical: str = Field(min_length=1)


class StateSpec(_Model):
    """A state. With ``states`` it is a compound state whose children nest under it; with
    ``parallel: true`` as well, its children are regions, all active at once."""

    name: str = Field(description="No dots or '+': nested states are addressed as parent.child")
    canonical: str | list[CanonicalRule] | None = Field(
        None,
        description="The canonical lifecycle state; children inherit it. On a parallel state, "
        "also an ordered table of rules over its regions' states (the first match decides)",
    )
    final: Bool = Field(False, description="Nothing leaves a final state")
    initial: str | None = Field(
        None, description="Compound states: the child entered by default (the first one if unset)"
    )
    parallel: Bool = Field(
        False,
        description="Its children are regions (each a compound state with its own initial "
        "child), all active at once; entering it enters every region",
    )
    description: str = ""
    states: list[StateSpec] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _name_has_no_dot(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(f"state name {v!r} must be non-empty and contain no '.' or '+'")
        return v

    @model_validator(mode="after")
    def _rules_only_on_parallel(self) -> StateSpec:
        if isinstance(self.canonical, list) and not self.parallel:
            raise ValueError(
                f"state {self.name!r}: a table of canonical rules only goes on a parallel state; "
                "give one canonical state"
            )
        return self


class TransitionSpec(_Model):
    """``trigger`` moves an invoice from any of ``source`` to ``dest`` (if ``guard`` holds)."""

    trigger: str = Field(min_length=1)
    source: Names = Field(
        description="One state, a list of states, or '*' alone (every non-final state)"
    )
    dest: str | None = Field(None, description="Leave out (with internal: true) for a no-op")
    internal: Bool = Field(False, description="Legal, but changes nothing")
    guard: GuardField | None = None
    description: str = ""

    @field_validator("source")
    @classmethod
    def _star_stands_alone(cls, v: list[str]) -> list[str]:
        if "*" in v and len(v) > 1:
            raise ValueError(
                f"'*' means every non-final state and must stand alone, got {v!r}: write "
                "source: '*', or list the states"
            )
        return v

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

    @field_validator("at")
    @classmethod
    def _one_value(cls, v: Locator) -> Locator:
        return single_value(v)

    @field_validator("format")
    @classmethod
    def _known_format(cls, v: str) -> str:
        return check_time_format(v)

    @model_validator(mode="after")
    def _numbers_are_not_in_headers(self) -> TimeSpec:
        if self.at.header is not None and self.format in NUMERIC_TIME_FORMATS:
            raise ValueError(
                f"format {self.format} reads a JSON number, but {self.at} is a header, whose "
                "value is always text: use a body path, or a text format (iso8601, or a "
                "strptime format)"
            )
        return self

    @field_validator("timezone")
    @classmethod
    def _utc_only(cls, v: str) -> str:
        if v.upper() != "UTC":
            raise ValueError(f"timezone {v!r} is not supported; only UTC")
        return "UTC"


class DeliveryMap(_Model):
    """How to read one delivery: where each field lives in the body or the headers."""

    event_type: Annotated[
        list[LocatorField], BeforeValidator(as_list), one_or_many(LOCATOR_SCHEMA)
    ] = Field(min_length=1, description="One locator, or several whose values are joined with '.'")
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

    @field_validator("event_type")
    @classmethod
    def _each_one_value(cls, v: list[Locator]) -> list[Locator]:
        return [single_value(loc) for loc in v]

    @field_validator("event_id", "invoice_id", "status")
    @classmethod
    def _one_value(cls, v: Locator | None) -> Locator | None:
        return None if v is None else single_value(v)

    @model_validator(mode="after")
    def _some_identity(self) -> DeliveryMap:
        if self.event_id is None and not self.idempotency_key:
            raise ValueError("give event_id, or idempotency_key for a provider without event ids")
        return self


class EventSpec(_Model):
    """What one provider event means. Exactly one of trigger, create, follow_status, info."""

    trigger: str | None = Field(None, description="Fire this trigger")
    create: Bool = Field(
        False, description="Creates the invoice in the snapshot's state (an initial state)"
    )
    follow_status: Bool | str = Field(
        False,
        description="Go to the state named by the status snapshot, by any legal transition; "
        "a region's name (finalized.payment) follows that region only: the status names one "
        "of its states",
    )
    info: Bool = Field(False, description="Recorded; legal in `states`; changes nothing")
    states: Names | None = Field(None, description="info: the states it is legal in (default all)")
    invoice_optional: Bool = Field(
        False, description="May come without an invoice id (previews); recorded, changes nothing"
    )
    invoice_id: LocatorField | None = Field(
        None, description="Where this event's invoice id lives, if not at delivery.invoice_id"
    )
    status: LocatorField | None = Field(
        None, description="Where this event's status snapshot lives, if not at delivery.status"
    )
    description: str = ""

    @field_validator("invoice_id", "status")
    @classmethod
    def _one_value(cls, v: Locator | None) -> Locator | None:
        return None if v is None else single_value(v)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"trigger": data} if isinstance(data, str) else data

    @field_validator("follow_status", mode="before")
    @classmethod
    def _not_a_yaml_boolean(cls, v: Any) -> Any:
        if isinstance(v, str) and v.lower() in _YAML_BOOLEANS:  # the loader keeps these text
            raise ValueError(
                f"follow_status is true, or a region's name; got {v!r}: write true (YAML's "
                "own true, not a word that some YAML readers take for one)"
            )
        return v

    @model_validator(mode="after")
    def _exactly_one(self) -> EventSpec:
        kinds = {
            "trigger": self.trigger is not None,
            "create": self.create,
            "follow_status": self.follow_status is not False,
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
        return "info" if self.follow_status is False else "follow_status"

    @property
    def region(self) -> str | None:
        """The region a ``follow_status`` event follows (``finalized.payment``), or ``None``:
        the status names a state of the whole chart."""
        return self.follow_status if isinstance(self.follow_status, str) else None


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

    provider: str = Field(pattern=PROVIDER_NAME)
    title: str = ""
    sources: list[str] = Field(default_factory=list, description="The documents followed")
    initial: Names = Field(description="Where an invoice may be born; the first is the default")
    states: list[StateSpec] = Field(min_length=1)
    transitions: list[TransitionSpec]
    delivery: DeliveryMap
    signature: SignatureSpec | None = Field(
        None, description="How deliveries are authenticated (never a secret); unset: unverifiable"
    )
    events: dict[str, EventSpec] = Field(
        min_length=1, description="Provider event type -> what it means"
    )
    lint_exceptions: list[LintException] = Field(default_factory=list)
