"""Building trusted pydantic records quickly, for the engine's per-delivery path.

``BaseModel.model_construct`` walks every field's aliases on every call: about 12 µs for an
:class:`~engine.models.Outcome` on the 2-core benchmark machine, which made the two records
built per delivery (an ``Event`` and an ``Outcome``) a quarter of ``apply_many``'s time. The
engine always passes every field, from values it has already checked, so :func:`construct`
does only what ``model_construct`` does in that case: set ``__dict__`` (in field order) and the
set of fields (one shared by every record of a frozen model). A model with aliases, private
attributes, extras or a post-init hook, or a call that does not name every field exactly, goes
through ``model_construct`` itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, NoReturn, TypeVar

from pydantic import BaseModel

__all__ = ["builder", "construct"]

_M = TypeVar("_M", bound=BaseModel)
_plain: dict[type[BaseModel], tuple[str, ...] | None] = {}


def _plain_fields(cls: type[BaseModel]) -> tuple[str, ...] | None:
    """The field names if ``model_construct`` would just store the values, else ``None``."""
    fields = cls.__pydantic_fields__
    if (
        cls.__pydantic_post_init__
        or cls.__pydantic_root_model__
        or cls.__private_attributes__
        or cls.model_config.get("extra") == "allow"
        or any(f.alias is not None or f.validation_alias is not None for f in fields.values())
    ):
        return None
    return tuple(fields)


def construct(cls: type[_M], **values: Any) -> _M:
    """``cls.model_construct(**values)``, without its per-field work when it is not needed:
    the values put in field order, then made into a record as :func:`builder` makes them."""
    if cls not in _plain:
        _plain[cls] = _plain_fields(cls)
    names = _plain[cls]
    if names is None or len(values) != len(names):
        return cls.model_construct(**values)
    if tuple(values) != names:  # in field order, the keywords' own dict will do
        try:
            values = {name: values[name] for name in names}  # all present: the same
        except KeyError:
            return cls.model_construct(**values)
    build = _builders.get(cls)
    if build is None:
        build = _builders[cls] = builder(cls)
    model: _M = build(values)
    return model


_builders: dict[type[BaseModel], Callable[[dict[str, Any]], Any]] = {}


class _SharedFields(set[str]):
    """The set of fields of every record :func:`builder` makes for one model: all of them,
    so one set serves them all (a set of 18 names is 1.2 KB, three times the record's own
    ``__dict__``, and ``apply_many`` keeps one record per delivery). pydantic only reads it,
    and copies it before it adds to it (``model_copy(update=...)``): a copy is a plain set,
    and changing this one in place is refused."""

    __slots__ = ()

    def __init__(self, names: Iterable[str] = ()) -> None:
        if self:  # set.__init__ again would empty it
            self._refuse()
        super().__init__(names)

    def _refuse(self, *args: object) -> NoReturn:
        raise TypeError("this set of fields is shared by many records: copy it to change it")

    add = discard = remove = pop = clear = update = _refuse
    difference_update = intersection_update = symmetric_difference_update = _refuse
    __ior__ = __iand__ = __isub__ = __ixor__ = _refuse

    def __copy__(self) -> set[str]:
        return set(self)

    def __deepcopy__(self, memo: object) -> set[str]:
        return set(self)

    def __reduce__(self) -> tuple[type[_SharedFields], tuple[list[str]]]:
        return _SharedFields, (list(self),)  # records unpickled together share it too


def builder(cls: type[_M]) -> Callable[[dict[str, Any]], _M]:
    """A function making ``cls`` from a dict of all its fields, in field order (a dict
    display at the call site, which becomes the model's ``__dict__`` as it is): what
    :func:`construct` does, without keywords to match up, for a record made per delivery.
    The tests check every such call site's fields and order against the model."""
    if _plain_fields(cls) is None:
        return lambda values: cls.model_construct(**values)
    if not cls.model_config.get("frozen"):  # pydantic adds to the set of a field assigned
        return lambda values: cls.model_construct(_fields_set=set(values), **values)
    new, every = cls.__new__, _SharedFields(cls.__pydantic_fields__)
    # the slots' own setters: what object.__setattr__ would find, without looking
    slots = BaseModel.__dict__
    set_dict = slots["__dict__"].__set__
    set_fields = slots["__pydantic_fields_set__"].__set__
    set_extra = slots["__pydantic_extra__"].__set__
    set_private = slots["__pydantic_private__"].__set__

    def build(values: dict[str, Any]) -> _M:
        model = new(cls)
        set_dict(model, values)
        set_fields(model, every)
        set_extra(model, None)
        set_private(model, None)
        return model

    return build
