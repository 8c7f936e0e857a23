"""Identifiers for states in each diagram format, where the chart's own names can't be used.

Chart state names may hold spaces, quotes, dots and words a format reserves (Mermaid's
``state``, ``end``, ``class``…); each format gets one identifier per state, unique, and as close
to the chart's name as the format allows.
"""

from __future__ import annotations

import re

from ._model import Graph

__all__ = ["ncname_ids", "word_ids"]


_NOT_WORD = re.compile(r"[^A-Za-z0-9_]")
_NCNAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
# Words that Mermaid's state-diagram lexer reads as keywords wherever an id may stand (checked
# against mermaid 11 by the tests), plus a few more that are keywords elsewhere in Mermaid.
_MERMAID_KEYWORDS = frozenset(
    [
        "state",
        "note",
        "class",
        "classdef",
        "style",
        "click",
        "href",
        "default",
        "scale",
        "statediagram",
        "end",
        "as",
        "left",
        "right",
        "of",
        "direction",
        "hide",
        "acctitle",
        "accdescr",
        "call",
        "callback",
        "link",
    ]
)


def _unique(ids: dict[str, str]) -> dict[str, str]:
    """Make identifiers unique; names already equal to their identifier keep it."""
    taken: set[str] = set()
    out: dict[str, str] = {}
    kept_first = sorted(ids, key=lambda n: ids[n] != n)  # stable: real names first
    for name in kept_first:
        ident = ids[name]
        candidate, n = ident, 2
        while candidate in taken or (candidate != ident and candidate in ids.values()):
            candidate, n = f"{ident}_{n}", n + 1
        taken.add(candidate)
        out[name] = candidate
    return {name: out[name] for name in ids}


def word_ids(graph: Graph) -> dict[str, str]:
    """Identifiers made of ``[A-Za-z0-9_]`` only, for Mermaid and XState: one per state.

    ``open.unpaid`` becomes ``open_unpaid``, ``open-overdue`` becomes ``open_overdue``; a name
    that starts with a digit or is a Mermaid keyword (``state``, ``end``, ``class``…) gets an
    ``s_`` prefix; one that ends in ``_start``/``_end`` (Mermaid's own ids for a composite
    state's ``[*]``) gets a trailing ``_``. Clashes get ``_2``, ``_3``….
    """
    ids: dict[str, str] = {}
    for name in graph.nodes:
        ident = _NOT_WORD.sub("_", name.replace(".", "_"))
        if not ident or ident[0].isdigit() or ident.lower() in _MERMAID_KEYWORDS:
            ident = "s_" + ident
        if ident.endswith(("_start", "_end")):
            ident += "_"
        ids[name] = ident
    return _unique(ids)


def ncname_ids(graph: Graph) -> dict[str, str]:
    """SCXML ids (XML NCNames): the chart's own name whenever it is one (``open.unpaid``).

    Otherwise every character outside ``[A-Za-z0-9_.-]`` becomes ``_`` and a name that does not
    start with a letter or ``_`` gets an ``s_`` prefix. Clashes get ``_2``, ``_3``….
    """
    ids: dict[str, str] = {}
    for name in graph.nodes:
        ident = name if _NCNAME.match(name) else re.sub(r"[^A-Za-z0-9_.\-]", "_", name)
        if not _NCNAME.match(ident):
            ident = "s_" + ident
        ids[name] = ident
    return _unique(ids)
