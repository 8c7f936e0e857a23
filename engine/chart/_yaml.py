"""Reading chart YAML safely, and noting where each value is written.

The loader keeps ``on``/``off``/``yes``/``no`` as strings (YAML 1.1 would turn them into
booleans, silently changing a state called ``on`` into ``True``), constructs only plain data (no
Python tags), and reads merge keys (``<<: *defaults``: the keys written out win over the merged
ones). A duplicate key is a problem, not the end of reading: PyYAML would silently keep the
last value; this loader keeps the first, notes the problem (at the duplicate, naming the first)
and reads on, so that one run reports it with every other problem of the chart. :class:`Marks`
remembers the line and column of every value and key, by path, so that a problem found in the
parsed chart can be given its line in the file.
"""

from __future__ import annotations

import re
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import yaml

from ..errors import ChartError, ChartProblem
from ._messages import Path, location_of

__all__ = ["Marks", "load_yaml", "parse_yaml"]

_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True)
class _KeyProblem:
    """A key the loader dropped: repeated in its mapping, or not a possible key."""

    mapping: yaml.MappingNode
    key: Any
    mark: yaml.Mark
    problem: str


class _Loader(yaml.SafeLoader):
    """Safe, YAML-1.2-ish booleans (only true/false); duplicate keys noted, the first kept."""

    def construct_yaml_str(self, node: yaml.Node) -> str:
        """A string, refused when a ``\\ud800`` escape left a lone surrogate in it: no file,
        terminal or database can hold one."""
        value = str(self.construct_scalar(node))  # type: ignore[arg-type]
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise yaml.constructor.ConstructorError(
                    None, None, f"{value!r} is not valid Unicode text", node.start_mark
                ) from None
        return value

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.key_problems: list[_KeyProblem] = []
        self._checked: set[int] = set()

    def _key(self, node: yaml.MappingNode, key_node: yaml.Node) -> tuple[bool, Any]:
        """The key ``key_node`` says, and whether it can be one (a list or mapping can't)."""
        key = self.construct_object(key_node, deep=True)
        if isinstance(key, Hashable):
            return True, key
        kind = "list" if isinstance(key, list) else "mapping"
        self.key_problems.append(
            _KeyProblem(node, None, key_node.start_mark, f"a key can't be a {kind}: write text")
        )
        return False, key

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        """Drop (and note) repeated and impossible keys, then merge ``<<`` keys in: the keys
        written out win over merged ones, and an earlier merged mapping over a later one.
        Also called by PyYAML for each merged mapping, before or after its own construction:
        each mapping is checked once."""
        if id(node) not in self._checked:
            self._checked.add(id(node))
            seen: dict[Any, yaml.Node] = {}
            kept: list[tuple[yaml.Node, yaml.Node]] = []
            for key_node, value_node in node.value:
                if key_node.tag == _MERGE_TAG:
                    kept.append((key_node, value_node))
                    continue
                ok, key = self._key(node, key_node)
                if not ok:
                    continue
                if key in seen:
                    first = seen[key].start_mark
                    self.key_problems.append(
                        _KeyProblem(
                            node,
                            key,
                            key_node.start_mark,
                            f"duplicate key {key!r}: it is already given at line {first.line + 1}"
                            f", column {first.column + 1} (whose value counts): remove one",
                        )
                    )
                    continue
                seen[key] = key_node
                kept.append((key_node, value_node))
            node.value = kept
        written = [pair for pair in node.value if pair[0].tag != _MERGE_TAG]
        super().flatten_mapping(node)
        merged = node.value[: len(node.value) - len(written)]
        if merged:
            keys = {self.construct_object(k, deep=True) for k, _ in written}
            kept = []
            for key_node, value_node in merged:
                key = self.construct_object(key_node, deep=True)
                if isinstance(key, Hashable) and key not in keys:
                    keys.add(key)
                    kept.append((key_node, value_node))
            node.value = kept + written


_Loader.add_constructor("tag:yaml.org,2002:str", _Loader.construct_yaml_str)


_Loader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


class Marks:
    """Where each value of a YAML document starts, and each mapping key, by path.

    A path is the keys and indexes leading to a value (``('states', 6, 'final')``). A node
    reached again through an alias keeps the place it was first written at.
    """

    __slots__ = ("collections", "keys", "paths", "values")

    def __init__(self, root: yaml.Node | None, loader: _Loader) -> None:
        self.values: dict[Path, yaml.Mark] = {}
        self.keys: dict[Path, yaml.Mark] = {}
        self.collections: set[Path] = set()
        #: The path of each mapping, by ``id`` of its node (for the loader's key problems).
        self.paths: dict[int, Path] = {}
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
                self.paths[id(node)] = path
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


def _key_problems(loader: _Loader, marks: Marks, source: str) -> list[ChartProblem]:
    problems = []
    for p in loader.key_problems:
        within = marks.paths.get(id(p.mapping))
        path = None if within is None or p.key is None else (*within, p.key)
        problems.append(
            ChartProblem(
                source=source,
                line=p.mark.line + 1,
                column=p.mark.column + 1,
                location="" if path is None else location_of(path),
                problem=p.problem,
            )
        )
    return problems


def parse_yaml(text: str, source: str) -> tuple[Any, Marks, list[ChartProblem]]:
    """The document, where each of its values starts, and the keys dropped on the way
    (repeated ones, of which the first is kept; lists or mappings as keys).

    Raises:
        ChartError: the text is not YAML (a syntax error, a Python tag), at its line.
    """
    try:
        loader = _Loader(text)  # reads the first characters: an unprintable one is an error
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, source) from None
    try:
        root = loader.get_single_node()
        data = None if root is None else loader.construct_document(root)
        marks = Marks(root, loader)
        return data, marks, _key_problems(loader, marks, source)
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, source) from None
    finally:
        loader.dispose()


def load_yaml(text: str, source: str = "<string>") -> Any:
    """YAML to Python, safely.

    Raises:
        ChartError: a YAML error, or a duplicate key, with its line.
    """
    data, _, problems = parse_yaml(text, source)
    if problems:
        raise ChartError.of(problems)
    return data
