"""Regenerate the hostile-input corpus: ``python tests/hostile/make_corpus.py``.

The corpus is checked in (tests read files, not inline strings); this script documents how each
file was made. ``common/`` holds raw bodies that are hostile whatever the provider (empty, null,
truncated, not UTF-8, nested 10,000 deep, ...). ``<provider>/`` holds JSONL-style envelopes
(``{"headers": ..., "body": "<raw JSON text>"}``) made by mutating the provider's first good
delivery in ``examples/streams/`` at the places its chart's delivery map reads: the invoice id,
the event id, the event type, the status and the occurrence time. The 10 MB body is not checked
in; the test builds it (see ``tests/test_hostile.py``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from engine.chart.load import load_yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent

COMMON: dict[str, bytes] = {
    "empty.json": b"",
    "whitespace.json": b" \r\n\t ",
    "null.json": b"null",
    "array.json": b'[{"type": "invoice.paid"}]',
    "string.json": b'"invoice.paid"',
    "number.json": b"42",
    "true.json": b"true",
    "truncated.json": b'{"type": "invoice.paid", "data": {"object": {"id": "in_1',
    "invalid_utf8.json": b'{"type": "invoice.paid", "note": "caf\xe9 \xff\xfe"}',
    "nul_byte.json": b'{"type": "invoice.paid", "note": "a\x00b"}',
    "nul_outside_string.json": b'{"type": "invoice.paid"}\x00',
    "deep_object.json": b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
    "deep_array.json": b'{"type": ' + b"[" * 10_000 + b"]" * 10_000 + b"}",
    "huge_integer.json": b'{"type": "invoice.paid", "amount": ' + b"9" * 5_000 + b"}",
    "trailing_garbage.json": b'{"type": "invoice.paid"} {"type": "invoice.voided"}',
    "bom.json": b'\xef\xbb\xbf{"type": "invoice.paid"}',
    "nan.json": b'{"type": NaN}',
}


def _first(provider: str) -> tuple[dict[str, str], dict[str, Any]]:
    line = (ROOT / "examples" / "streams" / f"{provider}.jsonl").read_text().splitlines()[0]
    doc = json.loads(line)
    body = doc["body"]
    return dict(doc.get("headers") or {}), json.loads(body) if isinstance(body, str) else body


def _set(
    headers: dict[str, str], body: dict[str, Any], where: str, value: Any, *, delete: bool = False
) -> None:
    """Set (or delete) the value a ``$.a.b`` path or ``header:Name`` locator points at."""
    if where.startswith("header:"):
        name = where[len("header:") :].lower()
        for k in [k for k in headers if k.lower() == name]:
            del headers[k]
        if not delete:
            headers[where[len("header:") :]] = value
        return
    keys = where.removeprefix("$.").split(".")
    cur = body
    for k in keys[:-1]:
        cur = cur[k]
    if delete:
        cur.pop(keys[-1], None)
    else:
        cur[keys[-1]] = value


def _get(headers: dict[str, str], body: dict[str, Any], where: str) -> Any:
    if where.startswith("header:"):
        name = where[len("header:") :].lower()
        return next(v for k, v in headers.items() if k.lower() == name)
    cur: Any = body
    for k in where.removeprefix("$.").split("."):
        cur = cur[k]
    return cur


def _envelope(headers: dict[str, str], body: dict[str, Any] | str) -> bytes:
    text = body if isinstance(body, str) else json.dumps(body)
    return json.dumps({"headers": headers, "body": text}).encode() + b"\n"


def provider_cases(provider: str) -> dict[str, bytes]:
    """The mutated deliveries of one provider, by file name."""
    path = ROOT / "statecharts" / f"{provider}.yaml"
    chart = load_yaml(path.read_text(), str(path))  # the delivery map says where fields live
    dm = chart["delivery"]
    types = dm["event_type"] if isinstance(dm["event_type"], list) else [dm["event_type"]]
    out: dict[str, bytes] = {}

    def case(name: str, where: str | None, value: Any = None, *, delete: bool = False) -> None:
        headers, body = _first(provider)
        if where is not None:
            _set(headers, body, where, value, delete=delete)
        out[name] = _envelope(headers, body)

    case("good.json", None)
    inv = dm["invoice_id"]
    case("invoice_id_missing.json", inv, delete=True)
    case("invoice_id_null.json", inv, None)
    case("invoice_id_object.json", inv, {"id": "in_1"})
    case("invoice_id_list.json", inv, ["in_1"])
    case("invoice_id_bool.json", inv, True)
    case("invoice_id_float.json", inv, 1.5)
    case("invoice_id_empty.json", inv, "  ")
    case("invoice_id_huge_integer.json", inv, 10**400)
    case("invoice_id_too_long.json", inv, "x" * 1_000)
    case("event_type_unknown.json", types[-1], "invoice.exploded")
    headers, body = _first(provider)
    original = _get(headers, body, types[-1])
    case("event_type_wrong_case.json", types[-1], str(original).swapcase())
    case("event_type_missing.json", types[-1], delete=True)
    case("event_type_number.json", types[-1], 7.25)
    if "event_id" in dm:
        case("event_id_missing.json", dm["event_id"], delete=True)
        if dm["event_id"].startswith("header:"):  # headers are text on the wire
            case("event_id_blank.json", dm["event_id"], "  ")
        else:
            case("event_id_object.json", dm["event_id"], {"id": 1})
    if "status" in dm:
        case("status_unknown.json", dm["status"], "exploded")
        case("status_list.json", dm["status"], ["paid"])
        headers, body = _first(provider)
        case(
            "status_wrong_case.json",
            dm["status"],
            str(_get(headers, body, dm["status"])).swapcase(),
        )
    if "occurred_at" in dm:
        at = dm["occurred_at"]["at"]
        fmt = dm["occurred_at"]["format"]
        numeric = fmt in ("unix", "unix_ms")
        case("time_wrong_format.json", at, "yesterday" if numeric else 1717200000)
        case("time_wrong_text.json", at, "2024-13-45 99:99:99")
        case("time_far_future.json", at, 32_503_680_000 if numeric else "3000-01-01 00:00:00")
        case("time_missing.json", at, delete=True)
        case("time_huge.json", at, 10**30 if numeric else "9" * 40)
    # Header names in a different case than the provider sends them: still read.
    headers, body = _first(provider)
    flipped = {k.swapcase(): v for k, v in headers.items()}
    out["header_names_swapcase.json"] = _envelope(flipped, body)
    # Duplicate keys: the last one wins (as in Python, JavaScript, Go): see the README. The
    # decoy comes first, so the delivery must read exactly as good.json does.
    headers, body = _first(provider)
    first_key = next(iter(body))
    decoy = json.dumps({first_key: "decoy"})[:-1] + ", "
    out["duplicate_keys.json"] = _envelope(headers, decoy + json.dumps(body)[1:])
    # A body with no headers at all.
    out["no_headers.json"] = json.dumps({"body": json.dumps(body)}).encode() + b"\n"
    return out


def main() -> None:
    (HERE / "common").mkdir(exist_ok=True)
    for name, data in COMMON.items():
        (HERE / "common" / name).write_bytes(data)
    for chart in sorted((ROOT / "statecharts").glob("*.yaml")):
        folder = HERE / chart.stem
        folder.mkdir(exist_ok=True)
        for name, data in provider_cases(chart.stem).items():
            (folder / name).write_bytes(data)


if __name__ == "__main__":
    main()
