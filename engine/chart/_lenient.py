"""Reading a chart whose shape is wrong, as far as it can be read.

The pydantic models (:mod:`.spec`) read a chart all or nothing. To report every problem in one
run, the loader also reads a chart they refuse part by part: each state, transition, event and
the delivery map that is right as it is, and of the others what the meaning check needs (their
names). What can't be read at all is noted (:class:`Gaps`), and the checks that would need it
are skipped rather than guess.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter, ValidationError

from ._fields import Names
from ._signature import SignatureSpec
from .expr import Locator
from .spec import _NAME as _STATE_NAME
from .spec import (
    ChartSpec,
    DeliveryMap,
    EventSpec,
    LintException,
    StateSpec,
    TransitionSpec,
)

__all__ = ["UNREADABLE", "Gaps", "lenient"]


@dataclass
class Gaps:
    """What of a chart with a wrong shape could not be read, so the checks that would need it
    are skipped (rather than guess): a state's name, a transition's trigger, …"""

    names: bool = False  # some state's name: an "unknown" state might be that one
    triggers: bool = False  # some transition's trigger
    initial: bool = False  # `initial:` itself
    event_type: bool = False  # delivery.event_type: how many values it joins
    status: bool = False  # delivery: whether it has a status
    strict: bool = True  # states, transitions and initial read as they are (not in part)
    unread: set[int] = field(default_factory=set)  # id() of stand-ins for unreadable states


def _valid(adapter: TypeAdapter[Any], value: Any) -> Any:
    try:
        return adapter.validate_python(value)
    except ValidationError:
        return None


_STATE: TypeAdapter[StateSpec] = TypeAdapter(StateSpec)
_TRANSITION: TypeAdapter[TransitionSpec] = TypeAdapter(TransitionSpec)
_STATES: TypeAdapter[list[StateSpec]] = TypeAdapter(list[StateSpec])
_TRANSITIONS: TypeAdapter[list[TransitionSpec]] = TypeAdapter(list[TransitionSpec])
_INITIAL: TypeAdapter[list[str]] = TypeAdapter(Names)
_DELIVERY: TypeAdapter[DeliveryMap] = TypeAdapter(DeliveryMap)
_EVENT: TypeAdapter[EventSpec] = TypeAdapter(EventSpec)
_EXCEPTION: TypeAdapter[LintException] = TypeAdapter(LintException)
_SIGNATURE: TypeAdapter[SignatureSpec] = TypeAdapter(SignatureSpec)


_ANY_LOCATOR = Locator.parse("$.id")  # a stand-in where only "some locator" matters


#: Stands for an item of a list of names that is not text, so the others keep their index.
UNREADABLE = "\0unreadable"


def _texts(value: Any) -> list[str] | None:
    """One name or a list of them, as far as they are text (the others as
    :data:`UNREADABLE`); ``None``: neither."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v if isinstance(v, str) else UNREADABLE for v in value]
    return None


def _lenient_states(raw: Any, gaps: Gaps) -> list[StateSpec]:
    """The states as far as they can be read: each that is valid as it is, the others with
    what of them is (their name and children; a wrong ``canonical`` counts as given, so its
    leaves are not also said to lack one). A state without a readable name keeps its place
    (the locations of the next ones) as a stand-in, listed in ``gaps.unread``."""
    if not isinstance(raw, list):
        gaps.names = True
        return []
    out: list[StateSpec] = []
    for i, item in enumerate(raw):
        valid = _valid(_STATE, item)
        if valid is not None:
            out.append(valid)
            continue
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str) or not _STATE_NAME.match(name):
            gaps.names = True
            stand_in = StateSpec.model_construct(
                name=f"\0{i}",
                canonical="?",
                final=False,
                initial=None,
                parallel=False,
                description="",
                states=[],
            )
            gaps.unread.add(id(stand_in))
            out.append(stand_in)
            continue
        assert isinstance(item, dict)
        canonical = item.get("canonical")
        children = item.get("states", [])
        out.append(
            StateSpec.model_construct(
                name=name,
                canonical=canonical if isinstance(canonical, str | None) else "?",
                final=item.get("final") is True,
                initial=item.get("initial") if isinstance(item.get("initial"), str) else None,
                parallel=item.get("parallel") is True,
                description="",
                states=_lenient_states(children, gaps) if children is not None else [],
            )
        )
    return out


def _lenient_transitions(raw: Any, gaps: Gaps) -> list[TransitionSpec]:
    """The transitions as far as they can be read, each at its index: trigger, sources and
    dest where they are text (the rest of a wrong one is left out)."""
    if not isinstance(raw, list):
        gaps.triggers = True
        return []
    out: list[TransitionSpec] = []
    for item in raw:
        valid = _valid(_TRANSITION, item)
        if valid is not None:
            out.append(valid)
            continue
        fields = item if isinstance(item, dict) else {}
        trigger, dest = fields.get("trigger"), fields.get("dest")
        if not isinstance(trigger, str) or not trigger:
            gaps.triggers = True
        out.append(
            TransitionSpec.model_construct(
                trigger=trigger if isinstance(trigger, str) else "",
                source=_texts(fields.get("source")) or [],
                dest=dest if isinstance(dest, str) else None,
                internal=fields.get("internal") is True,
                guard=None,
                description="",
            )
        )
    return out


def _lenient_delivery(raw: Any, gaps: Gaps) -> DeliveryMap:
    """What the meaning check reads of a wrong delivery map: how many values event_type
    joins, whether there is a status, and the status values named."""
    fields = raw if isinstance(raw, dict) else {}
    joined = fields.get("event_type")
    if isinstance(joined, str):
        joined = [joined]
    if not isinstance(joined, list) or not joined:
        gaps.event_type = True
        joined = []
    gaps.status = not isinstance(raw, dict)
    statuses = fields.get("statuses")
    return DeliveryMap.model_construct(
        event_type=[_ANY_LOCATOR] * len(joined),
        event_id=None,
        idempotency_key=None,
        invoice_id=_ANY_LOCATOR,
        occurred_at=None,
        status=None if fields.get("status") is None else _ANY_LOCATOR,
        statuses={
            k: v
            for k, v in (statuses.items() if isinstance(statuses, dict) else ())
            if isinstance(k, str) and isinstance(v, str)
        },
    )


def _lenient_event(raw: Any) -> EventSpec | None:
    """What the meaning check reads of a wrong event: its trigger, states, follow_status."""
    if isinstance(raw, str):
        return EventSpec.model_construct(trigger=raw)
    if not isinstance(raw, dict):
        return None
    trigger = raw.get("trigger")
    follow = raw.get("follow_status")
    return EventSpec.model_construct(
        trigger=trigger if isinstance(trigger, str) else None,
        follow_status=follow if follow is True or isinstance(follow, str) else False,
        states=_texts(raw.get("states")),
    )


def lenient(data: dict[Any, Any]) -> tuple[ChartSpec, Gaps]:
    """A chart whose shape is wrong, as far as it can be read: every part that is right as it
    is, and of the others what the meaning check needs (names), so that one run reports the
    unknown names, the file name and the lint errors with the shape's problems. What can't be
    read is noted in the gaps, and the checks that need it skipped."""
    gaps = Gaps()
    initial = _valid(_INITIAL, data.get("initial"))
    if initial is None:
        gaps.strict = False
        initial = _texts(data.get("initial"))
        gaps.initial = initial is None
    states = _valid(_STATES, data.get("states"))
    if states is None:
        gaps.strict = False
        states = _lenient_states(data.get("states"), gaps)
    gaps.names |= not states  # no states: every name would be "unknown", which says nothing
    transitions = _valid(_TRANSITIONS, data.get("transitions"))
    if transitions is None:
        gaps.strict = False
        transitions = _lenient_transitions(data.get("transitions"), gaps)
    delivery = _valid(_DELIVERY, data.get("delivery"))
    if delivery is None:
        delivery = _lenient_delivery(data.get("delivery"), gaps)
    raw_events = data.get("events")
    events = {}
    for event_type, raw in raw_events.items() if isinstance(raw_events, dict) else ():
        ev = _valid(_EVENT, raw) or _lenient_event(raw)
        if isinstance(event_type, str) and ev is not None:
            events[event_type] = ev
    raw_exceptions = data.get("lint_exceptions")
    exceptions = [
        e
        for raw in (raw_exceptions if isinstance(raw_exceptions, list) else [])
        if (e := _valid(_EXCEPTION, raw)) is not None
    ]
    provider = data.get("provider")
    spec = ChartSpec.model_construct(
        provider=provider if isinstance(provider, str) else "",
        title="",
        sources=[],
        initial=initial or [],
        states=states,
        transitions=transitions,
        delivery=delivery,
        signature=_valid(_SIGNATURE, data.get("signature")),
        events=events,
        lint_exceptions=exceptions,
    )
    return spec, gaps
