"""Hostile input: the corpus in ``tests/hostile/`` through ``Engine.apply`` and the CLI.

Every hostile delivery must end ``invalid`` (or, where the chart defines the input, with the
chart's outcome), with a reason that names what was wrong; its raw bytes are stored; no
exception escapes ``apply``; the CLI never prints a traceback; and the good deliveries around
the hostile ones are applied exactly as if the hostile ones were not there.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import _db
import pytest
from _cli import ApplyJson, apply_json

from engine import Engine
from engine.chart import bundled_chart_dir, load_chart
from engine.runtime.delivery import MAX_BODY_BYTES

ROOT = Path(__file__).resolve().parent.parent
CHART_NAMES = sorted(p.stem for p in bundled_chart_dir().glob("*.yaml"))
CORPUS = ROOT / "tests" / "hostile"
STREAMS = ROOT / "examples" / "streams"
CLI = Path(sys.executable).with_name("invoice-engine")

#: Provider-independent raw bodies, and the words their reason must contain.
COMMON: dict[str, str] = {
    "empty.json": r"body is empty",
    "whitespace.json": r"body is empty",
    "null.json": r"JSON null, expected an object",
    "array.json": r"JSON array, expected an object",
    "string.json": r"JSON str, expected an object",
    "number.json": r"JSON int, expected an object",
    "true.json": r"JSON bool, expected an object",
    "truncated.json": r"not JSON: Unterminated string",
    "invalid_utf8.json": r"not UTF-8 \(byte 37: 0xe9\)",
    "nul_byte.json": r"not JSON: Invalid control character",
    "nul_outside_string.json": r"not JSON: Extra data",
    "deep_object.json": r"nested too deeply",
    "deep_array.json": r"nested too deeply",
    "huge_integer.json": r"not JSON: Exceeds the limit \(4300 digits\)",
    "trailing_garbage.json": r"not JSON: Extra data",
    "bom.json": r"not JSON: Unexpected UTF-8 BOM",
    # NaN is accepted by Python's json; it is then not a string or an integer.
    "nan.json": r"event type at \S+ is nan|missing event type",
}

#: Per-provider mutations: the field the reason must name. ``None``: reads like good.json.
PROVIDER: dict[str, str | None] = {
    "good.json": None,
    "header_names_swapcase.json": None,
    "duplicate_keys.json": None,
    "no_headers.json": None,
    "invoice_id_missing.json": r"missing invoice id at ",
    "invoice_id_null.json": r"missing invoice id at ",
    "invoice_id_object.json": r"invoice id at \S+ is \{'id': 'in_1'\}, expected a string",
    "invoice_id_list.json": r"invoice id at \S+ is \['in_1'\], expected a string",
    "invoice_id_bool.json": r"invoice id at \S+ is True, expected a string",
    "invoice_id_float.json": r"invoice id at \S+ is 1.5, expected a string",
    "invoice_id_empty.json": r"invoice id at \S+ is empty",
    "invoice_id_huge_integer.json": r"invoice id at \S+ is 401 characters long",
    "invoice_id_too_long.json": r"invoice id at \S+ is 1000 characters long",
    "event_type_unknown.json": r"unknown event type '[\w.]*exploded' at \S+; known: ",
    "event_type_wrong_case.json": r"unknown event type '[^']+' at \S+; known: ",
    "event_type_missing.json": r"missing event type at ",
    "event_type_number.json": r"event type .*7.25",
    "event_id_missing.json": r"missing event id at ",
    "event_id_object.json": r"event id at \S+ is \{'id': 1\}, expected a string",
    "event_id_blank.json": r"event id at header:\S+ is empty",
    "status_unknown.json": r"unknown status 'exploded' at \S+; statuses are: ",
    "status_list.json": r"status at \S+ is \['paid'\], expected a string",
    "status_wrong_case.json": r"unknown status '[^']+' at \S+; statuses are: ",
    "time_wrong_format.json": r"occurrence time at \S+ is \S+, expected ",
    "time_wrong_text.json": r"occurrence time at \S+ is '2024-13-45 99:99:99', expected ",
    "time_far_future.json": r"occurrence time at \S+ is in the future",
    "time_missing.json": r"missing occurrence time at ",
    "time_huge.json": r"occurrence time at \S+ is \S+, expected ",
}


def _envelope(path: Path) -> tuple[str, dict[str, str] | None]:
    doc = json.loads(path.read_bytes())
    return doc["body"], doc.get("headers")


def _stored(eng: Engine, seq: int | None) -> tuple[bytes, str | None]:
    assert seq is not None
    row = next(r for r in _db.events(eng) if r.seq == seq)
    return bytes(row.body), row.headers


def _provider_cases(provider: str) -> list[Path]:
    return sorted((CORPUS / provider).glob("*.json"))


def _expected(provider: str, name: str) -> tuple[str, str | None]:
    """(status, reason pattern) for one provider file; status "good" means as good.json."""
    chart = load_chart(provider)
    dm = chart.spec.delivery
    if name == "no_headers.json":
        where = [str(loc) for loc in (dm.event_id, *dm.event_type) if loc is not None]
        header = next((w for w in where if w.startswith("header:")), None)
        return ("invalid", rf"missing [\w ]+ at {header}") if header else ("good", None)
    if name == "status_wrong_case.json":
        doc = json.loads(_envelope(CORPUS / provider / name)[0])
        value = dm.status.read(doc, {}) if dm.status else None
        if chart.state_for_status(str(value)) is not None:
            return "good", None  # the chart maps both spellings (Moxie)
    pattern = PROVIDER[name]
    in_header = all(loc.header for loc in dm.event_type)  # a header's 7.25 is text
    if name in ("event_type_unknown.json", "event_type_wrong_case.json") or (
        name == "event_type_number.json" and in_header
    ):
        return "ignored", pattern  # readable, but no event this chart maps
    return ("good", None) if pattern is None else ("invalid", pattern)


def test_corpus_is_complete() -> None:
    """Every corpus file has an expectation here, and every chart has its folder."""
    assert {p.name for p in (CORPUS / "common").iterdir()} == set(COMMON)
    for provider in CHART_NAMES:
        names = {p.name for p in _provider_cases(provider)}
        assert names, f"no hostile corpus for {provider}: run tests/hostile/make_corpus.py"
        assert names <= set(PROVIDER), names - set(PROVIDER)


@pytest.mark.parametrize("case", sorted(COMMON))
def test_common_corpus(make_db: _db.Databases, chart_name: str, case: str) -> None:
    data = (CORPUS / "common" / case).read_bytes()
    with Engine(make_db()) as eng:
        out = eng.apply(chart_name, data, {"Authorization": "Bearer s3cret"})
        assert out.status == "invalid", out
        assert out.reason is not None
        assert re.search(COMMON[case], out.reason), out.reason
        body, headers = _stored(eng, out.seq)
        assert body == data
        assert headers is not None
        assert "s3cret" not in headers


def test_provider_corpus(make_db: _db.Databases, chart_name: str) -> None:
    good_body, good_headers = _envelope(CORPUS / chart_name / "good.json")
    with Engine(make_db()) as ref:
        good = ref.apply(chart_name, good_body, good_headers)
    assert good.status == "applied", good
    for path in _provider_cases(chart_name):
        body, headers = _envelope(path)
        status, pattern = _expected(chart_name, path.name)
        with Engine(make_db()) as eng:
            out = eng.apply(chart_name, body, headers)
            assert _stored(eng, out.seq)[0] == body.encode()
        if status == "good":
            same = (out.status, out.invoice_id, out.to_state)
            assert same == (good.status, good.invoice_id, good.to_state), path
            if path.name != "status_wrong_case.json":  # (Moxie's key is derived from the status)
                assert out.event_id == good.event_id
        else:
            assert out.status == status, (path.name, out)
            assert out.reason is not None
            assert pattern is not None
            assert re.search(pattern, out.reason), (path.name, out.reason)


def test_ten_megabyte_body(make_db: _db.Databases, chart_name: str) -> None:
    """Built here rather than checked in: 10 MB of JSON, over the 2 MiB body limit."""
    data = b'{"type": "invoice.paid", "pad": "' + b"x" * 10_000_000 + b'"}'
    with Engine(make_db()) as eng:
        out = eng.apply(chart_name, data)
        assert out.status == "invalid"
        digest = hashlib.sha256(data).hexdigest()
        assert out.reason == (
            f"body is {len(data):,} bytes (sha256 {digest}); the limit is {MAX_BODY_BYTES:,},"
            " and only that much of it is stored"
        )
        assert _stored(eng, out.seq)[0] == data[:MAX_BODY_BYTES]  # not all 10 MB


_DEEP_LINE = b'{"body": ' + b'{"a":' * 10_000 + b"1" + b"}" * 10_000 + b"}"


def _hostile_lines(provider: str) -> list[bytes]:
    """One JSONL line per hostile delivery (plus a 10 MB one and an envelope without a body)."""
    lines = [
        p.read_bytes().rstrip(b"\n")
        for p in _provider_cases(provider)
        if _expected(provider, p.name)[0] == "invalid"
    ]
    lines += [
        data
        for name in sorted(COMMON)
        if (data := (CORPUS / "common" / name).read_bytes()).strip() and b"\n" not in data
    ]
    headers = json.loads(lines[0])["headers"] if lines[0].startswith(b'{"headers"') else {}
    lines.append(json.dumps({"headers": headers}).encode())  # an envelope without a body
    lines.append(_DEEP_LINE)
    lines.append(b'{"body": "' + b"x" * 10_000_000 + b'"}')
    return lines


def _interleave(provider: str) -> tuple[list[bytes], list[bytes]]:
    """The provider's example stream with every hostile line spread between its lines."""
    good = [ln for ln in (STREAMS / f"{provider}.jsonl").read_bytes().splitlines() if ln.strip()]
    hostile = _hostile_lines(provider)
    mixed: list[bytes] = []
    for i, line in enumerate(good):
        mixed.append(line)
        mixed.extend(hostile[i :: len(good)])
    return good, mixed


def _states(eng: Engine, provider: str) -> dict[str, str]:
    return {s.invoice_id: s.state for s in eng.invoices(provider)}


def _run_cli(provider: str, lines: list[bytes], tmp_path: Path, db: str) -> ApplyJson:
    stream = tmp_path / f"{provider}.jsonl"
    stream.write_bytes(b"\n".join(lines) + b"\n")
    proc = subprocess.run(
        [str(CLI), "apply", provider, str(stream), "--db", db, "--json"],
        capture_output=True,
        check=False,
    )
    assert b"Traceback" not in proc.stderr, proc.stderr.decode(errors="replace")
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return apply_json(proc.stdout)


def test_good_lines_around_hostile_ones(
    make_db: _db.Databases, chart_name: str, tmp_path: Path
) -> None:
    """Engine and CLI: hostile lines are all invalid, the good ones apply as if alone."""
    from engine.cli._run import read_jsonl

    good, mixed = _interleave(chart_name)
    with Engine(make_db()) as alone:
        alone.apply_many(chart_name, read_jsonl(good))
        expected = _states(alone, chart_name)
        expected_counts = alone.counts(chart_name)
    hostile = len(mixed) - len(good)

    with Engine(make_db()) as eng:
        outs = eng.apply_many(chart_name, read_jsonl(mixed))
        assert _states(eng, chart_name) == expected
        counts = eng.counts(chart_name)
    assert counts.pop("invalid") == expected_counts.pop("invalid", 0) + hostile
    assert counts == expected_counts
    assert all(o.reason for o in outs if o.status == "invalid")

    db = make_db(shared=True)
    result = _run_cli(chart_name, mixed, tmp_path, db)
    assert [o["status"] for o in result.decided] == [o.status for o in outs]
    # A line too long to hold (the 10 MB envelope) is judged as the line, not its body.
    from engine.cli._run import MAX_LINE_BYTES

    held = [len(line) <= MAX_LINE_BYTES for line in mixed]
    reasons = [o["reason"] for o in result.decided]
    kept = [r for r, h in zip(reasons, held, strict=True) if h]
    assert kept == [o.reason for o, h in zip(outs, held, strict=True) if h]
    cut = [r for r, h in zip(reasons, held, strict=True) if not h]
    assert cut
    assert all("only that much of it is stored" in (r or "") for r in cut)
    with Engine(db) as stored:
        assert _states(stored, chart_name) == expected
        raws = _db.bodies(stored)
    assert len(raws) == len(mixed)
    assert mixed[0] != raws[0]  # a stored envelope is its body, not the line
    assert _DEEP_LINE in raws  # not an envelope for json (too deep): the line, as received
    assert any(b"x" * (MAX_BODY_BYTES - 100) in r for r in raws)  # the 10 MB body, cut
    assert max(map(len, raws)) <= MAX_BODY_BYTES
