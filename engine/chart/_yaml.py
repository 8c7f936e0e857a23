"""Reading chart YAML safely, and noting where each value is written.

The loader keeps ``on``/``off``/``yes``/``no`` as strings (YAML 1.1 would turn them into
booleans, silently changing a state called ``on`` into ``True``), refuses duplicate keys
(PyYAML would otherwise keep the last one without a word) and constructs only plain data (no
Python tags). :class:`Marks` remembers the line and column of every value and key, by path, so
that a problem found in the parsed chart can be given its line in the file.
"""

from __future__ import annotations

import re
from collections.abc import Hashable
from typing import Any

import yaml

from ..errors import ChartError
from ._messages import Path

__all__ = ["Marks", "load_yaml", "parse_yaml"]


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
        if not isinstance(key, Hashable):
            raise yaml.constructor.ConstructorError(
                None, None, f"a key can't be a {type(key).__name__}", key_node.start_mark
            )
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


class Marks:
    """Where each value of a YAML document starts, and each mapping key, by path.

    A path is the keys and indexes leading to a value (``('states', 6, 'final')``). A node
    reached again through an alias keeps the place it was first written at.
    """

    __slots__ = ("collections", "keys", "values")

    def __init__(self, root: yaml.Node | None, loader: _Loader) -> None:
        self.values: dict[Path, yaml.Mark] = {}
        self.keys: dict[Path, yaml.Mark] = {}
        self.collections: set[Path] = set()
        seen: set[int] = set()
        todo: list[tuple[Path, yaml.Node]] = [] if root is None else [((), root)]
        while todo:  # not recursive: a deep document can't exhaust the stack
            path, node = todo.pop()
            self.values.setdefault(path, node.start_mark)
            if id(node) in seen:
                continue
            seen.add(id(node))
            if isinstance(node, yaml.CollectionNode):
                self.collections.add(path)
            if isinstance(node, yaml.MappingNode):
                for key_node, value_node in node.value:
                    key = loader.construct_object(key_node, deep=True)
                    self.keys.setdefault((*path, key), key_node.start_mark)
                    todo.append(((*path, key), value_node))
            elif isinstance(node, yaml.SequenceNode):
                todo.extend(((*path, i), item) for i, item in enumerate(node.value))

    def find(self, path: Path, *, key: bool = False) -> tuple[int, int] | None:
        """The line and column (1-based) of the value at ``path``; of its key with ``key``, or
        when the value is a mapping or a list (``delivery:`` rather than its first line); for a
        path the file doesn't have (a missing key), of the nearest value that holds it.
        """
        mark = self.keys.get(path) if key or path in self.collections else None
        if mark is None:
            mark = next(
                (m for n in range(len(path), -1, -1) if (m := self.values.get(path[:n]))), None
            )
        if mark is None and path in self.keys:
            mark = self.keys[path]
        return None if mark is None else (mark.line + 1, mark.column + 1)


def _yaml_error(exc: yaml.YAMLError, source: str) -> ChartError:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context, start = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if context and start is not None and start is not mark:
        # The mistake is often where the construct began (an unclosed bracket), not here.
        problem += f" ({context} at line {start.line + 1})"
    line, column = (mark.line + 1, mark.column + 1) if mark is not None else (None, None)
    return ChartError(source, "", f"not valid YAML: {problem}", line=line, column=column)


def parse_yaml(text: str, source: str) -> tuple[Any, Marks]:
    """The document, and where each of its values starts."""
    try:
        loader = _Loader(text)  # reads the first characters: an unprintable one is an error
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, source) from None
    try:
        root = loader.get_single_node()
        data = None if root is None else loader.construct_document(root)
        return data, Marks(root, loader)
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, source) from None
    finally:
        loader.dispose()


def load_yaml(text: str, source: str = "<string>") -> Any:
    """YAML to Python, safely; a YAML error becomes a :class:`ChartError` with the line."""
    return parse_yaml(text, source)[0]
