"""Human output, in one place: what a hostile value can't forge, counted words, aligned tables.

Invoice ids, event types and reasons come from webhooks, so from whoever sends them. Printed
raw, a newline in one would start a line of the sender's choosing in an operator's terminal or
log, an ESC or a C1 control (``\\x9b``) would move the cursor or recolour what follows. Every
human (non-JSON) output passes such values through :func:`visible`, which shows each control
character as its escape (``\\n``, ``\\x1b``, ``\\u2028``); :func:`table` does it for every
cell. JSON output stays exact: :func:`json_text` writes such characters as JSON escapes
(``\\u2028``), which decode to the very same text, so a JSON line is one line to any reader.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

__all__ = ["clip", "json_text", "plural", "table", "visible"]

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
#: Control (Cc: C0, DEL, C1), format (Cf: bidi overrides, zero-width), surrogate, line and
#: paragraph separators: none prints as itself, each can hide or fake what follows it.
_HIDDEN = {"Cc", "Cf", "Cs", "Zl", "Zp"}


def _escape(ch: str) -> str:
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def visible(text: object) -> str:
    """``text`` as one line that shows every control character as its escape.

    >>> visible("in_1\\nzebrapay/in_2: paid")
    'in_1\\\\nzebrapay/in_2: paid'
    """
    s = str(text)
    if s.isprintable() and "\\" not in s:  # the common case: nothing to do
        return s
    # a backslash is escaped too, so an id holding a real newline and one holding backslash-n
    # never print the same
    return "".join(
        "\\\\" if c == "\\" else _escape(c) if unicodedata.category(c) in _HIDDEN else c for c in s
    )


def plural(n: int, word: str, words: str | None = None) -> str:
    """``1 invoice``, ``2 invoices``, ``1 delivery``, ``3 deliveries``.

    >>> plural(1, "delivery"), plural(2, "delivery"), plural(1, "mismatch", "mismatches")
    ('1 delivery', '2 deliveries', '1 mismatch')
    """
    if n == 1:
        return f"{n:,} {word}"
    if words is None:
        if word.endswith("y") and word[-2:-1] not in tuple("aeiou"):
            words = word[:-1] + "ies"
        elif word.endswith(("s", "x", "ch", "sh")):
            words = word + "es"
        else:
            words = word + "s"
    return f"{n:,} {words}"


def clip(text: str | None, width: int = 110) -> str:
    """``text`` in at most ``width`` characters, cut at a word boundary with an ellipsis.

    >>> clip("an event for an invoice that does not exist yet", 30)
    'an event for an invoice that…'
    """
    text = text or ""
    if len(text) <= width:
        return text
    head = text[: width - 1]  # room for the ellipsis
    if not text[width - 1].isspace():  # the cut falls inside a word: go back to its start
        cut = head.rfind(" ")
        if cut > width // 2:  # not too far back; else cut the (very long) word itself
            head = head[:cut]
    return head.rstrip(" ,;:—-") + "…"


def table(rows: list[list[str]], headers: list[str]) -> str:
    """A plain aligned text table (no dependency; rows are short); every cell :func:`visible`."""
    rows = [[visible(c) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [line.format(*headers).rstrip(), line.format(*("-" * w for w in widths)).rstrip()]
    out.extend(line.format(*row).rstrip() for row in rows)
    return "\n".join(out)


#: Characters JSON may hold raw but that a reader splits lines at (``str.splitlines`` at NEL,
#: U+2028/2029 and the FS/GS/RS controls) or a terminal obeys (DEL, C1, bidi controls).
_JSON_HIDDEN = re.compile("[\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def json_text(data: Any, *, indent: int | None = None) -> str:
    """``data`` as JSON text (UTF-8 kept readable), with every character that could split a
    line or drive a terminal written as its ``\\uXXXX`` escape: the same value to a parser."""
    separators = None if indent else (",", ":")
    text = json.dumps(data, indent=indent, default=str, ensure_ascii=False, separators=separators)
    return _JSON_HIDDEN.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
