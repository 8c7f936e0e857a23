"""Reading JSONL streams of deliveries, and finding the bundled example streams.

A line is a bare body or ``{"headers": {...}, "body": ...}``. An envelope's body object is
passed on as the exact text it was written as (``0.10`` stays ``0.10``, ``1e400`` stays what it
was), so the bytes stored are the bytes the provider sent; a line that is not JSON is passed on
as raw bytes, to be stored as ``invalid`` with the exact bytes received. A UTF-8 byte order
mark at the start of the file is not part of the first line.
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from collections.abc import Iterable, Iterator
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import IO, TYPE_CHECKING

from ..runtime.delivery import MAX_BODY_BYTES, Oversized

if TYPE_CHECKING:
    from ..runtime.engine import Delivery

__all__ = ["MAX_LINE_BYTES", "bounded_lines", "example_streams", "read_jsonl"]

_BOM = b"\xef\xbb\xbf"
_DECODER = json.JSONDecoder()
_SPACE = frozenset(" \t\n\r")  # JSON's whitespace


def _skip(text: str, i: int) -> int:
    while text[i : i + 1] in _SPACE:
        i += 1
    return i


def example_streams() -> dict[str, Traversable]:
    """The bundled example streams by provider (``stripe`` → its ``stripe.jsonl``).

    Found as package data (``engine/examples`` in an installed wheel) through
    :mod:`importlib.resources`; in a source checkout (and an editable install), where that
    package does not exist, they are the repository's ``examples/streams/``.
    """
    folder: Traversable
    try:
        folder = resources.files("engine.examples")
    except ModuleNotFoundError:
        folder = Path(__file__).resolve().parent.parent.parent / "examples" / "streams"
    found = {
        f.name.removesuffix(".jsonl"): f
        for f in folder.iterdir()
        if f.name.endswith(".jsonl") and f.is_file()
    }
    return dict(sorted(found.items()))


def _body_text(text: str) -> str | None:
    """The exact text of an envelope's ``body`` value (the last one, as ``json.loads`` keeps),
    found by reading the top-level object key by key; ``None`` if it can't be found."""
    i = _skip(text, 0)
    if text[i : i + 1] != "{":
        return None
    found = None
    while True:
        key, i = _DECODER.raw_decode(text, _skip(text, i + 1))
        i = _skip(text, i)
        if text[i : i + 1] != ":":
            return None
        start = _skip(text, i + 1)
        _, i = _DECODER.raw_decode(text, start)
        if key == "body":
            found = text[start:i]
        i = _skip(text, i)
        if text[i : i + 1] == "}":
            return found
        if text[i : i + 1] != ",":
            return None


def _delivery(line: bytes) -> Delivery:
    """One JSONL line as a delivery; anything not an envelope is the body, bytes as received."""
    try:
        doc = json.loads(line)
    except (ValueError, RecursionError):  # not JSON, or nested too deep: the engine says which
        return line
    if isinstance(doc, dict) and "body" in doc and set(doc) <= {"headers", "body"}:
        headers = doc.get("headers")
        body = doc["body"]
        if isinstance(body, str | dict) and (headers is None or isinstance(headers, dict)):
            if isinstance(body, dict):
                try:
                    exact = _body_text(line.decode("utf-8"))
                except (ValueError, RecursionError):
                    exact = None
                if exact is not None:
                    return (exact.encode("utf-8", "surrogatepass"), headers)
            return (body, headers)
    return line


def read_jsonl(
    stream: Iterable[bytes | Oversized], lines: deque[int] | None = None
) -> Iterator[Delivery]:
    """Deliveries from a JSONL byte stream, skipping blank lines.

    Args:
        stream: the open file.
        lines: if given, each yielded delivery's 1-based line number is appended to it, so the
            caller can pair outcomes with lines without holding the whole file.
    """
    for number, raw in enumerate(stream, 1):
        if isinstance(raw, Oversized):  # a line too long to hold: its head, size and hash
            if lines is not None:
                lines.append(number)
            yield raw
            continue
        line = raw.rstrip(b"\r\n")
        if number == 1:
            line = line.removeprefix(_BOM)  # an editor's byte order mark, not a bad first line
        if not line.strip():
            continue
        if lines is not None:
            lines.append(number)
        yield _delivery(line)


#: The longest JSONL line held in memory: a body at the limit, escaped in an envelope.
MAX_LINE_BYTES = 2 * MAX_BODY_BYTES + 64 * 1024


def bounded_lines(stream: IO[bytes]) -> Iterator[bytes | Oversized]:
    """The stream's lines, never holding more than ``MAX_LINE_BYTES`` of one: a longer line is
    read through in chunks and given as :class:`Oversized` (its head, size and SHA-256)."""
    while True:
        line = stream.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        if len(line) <= MAX_LINE_BYTES or line.endswith(b"\n"):
            yield line
            continue
        digest = hashlib.sha256(line)
        head, size = line[:MAX_BODY_BYTES], len(line)
        while not line.endswith(b"\n"):
            line = stream.readline(1024 * 1024)
            if not line:
                break
            digest.update(line)
            size += len(line)
        yield Oversized(head, size, digest.hexdigest())
