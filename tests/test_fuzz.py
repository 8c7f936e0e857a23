"""Fuzzing the two doors input comes in by: ``Engine.apply`` and the chart loader.

Deliveries are structure-aware: realistic deliveries from :func:`engine.testing.deliveries`,
then mutated where the chart's delivery map reads (event type, invoice id, event id, status,
occurrence time, idempotency-key fields), with arbitrary JSON values, deleted fields, headers in
other cases or with odd values, and raw bytes truncated or flipped. Charts are mutated from the
bundled ones (subtrees replaced, keys dropped or added) and also fed as arbitrary text.

The default "ci" hypothesis profile runs a short pass; ``HYPOTHESIS_PROFILE=thorough pytest
tests/test_fuzz.py`` the long one (2,000 examples per test).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import _db
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine import Engine
from engine.chart import Chart, bundled_chart_dir, load_chart
from engine.chart.expr import Locator
from engine.chart.load import load_yaml, read_chart_file
from engine.errors import ChartError
from engine.testing import deliveries

CHART_NAMES = sorted(p.stem for p in bundled_chart_dir().glob("*.yaml"))
STATUSES = {"applied", "unchanged", "duplicate", "ignored", "rejected", "invalid"}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=10**300, max_value=10**400)
    | st.floats()
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def _locators(chart: Chart) -> list[Locator]:
    dm = chart.spec.delivery
    found = [*dm.event_type, dm.invoice_id, *(dm.idempotency_key or ())]
    found += [loc for loc in (dm.event_id, dm.status) if loc is not None]
    if dm.occurred_at is not None:
        found.append(dm.occurred_at.at)
    return found


def _put(body: dict[str, Any], headers: dict[str, str], loc: Locator, value: Any) -> None:
    """Set (value) or delete (``...``) what ``loc`` points at, where the path exists as keys."""
    if loc.header is not None:
        if value is ...:
            headers.pop(next((k for k in headers if k.lower() == loc.header), ""), None)
        else:
            headers[loc.header] = value if isinstance(value, str) else json.dumps(value)
        return
    cur: Any = body
    for step in loc.steps[:-1]:
        if not isinstance(step, str) or step == "*" or not isinstance(cur, dict):
            return
        cur = cur.setdefault(step, {})
    last = loc.steps[-1] if loc.steps else None
    if isinstance(cur, dict) and isinstance(last, str) and last != "*":
        if value is ...:
            cur.pop(last, None)
        else:
            cur[last] = value


@st.composite
def hostile_deliveries(draw: st.DrawFn, provider: str) -> list[tuple[bytes, dict[str, str]]]:
    chart = load_chart(provider)
    items = draw(deliveries(chart, max_invoices=2, max_events=4, duplicates=True, shuffle=True))
    locs = _locators(chart)
    out: list[tuple[bytes, dict[str, str]]] = []
    for d in items:
        body = json.loads(json.dumps(d.body))
        headers = dict(d.headers)
        for _ in range(draw(st.integers(0, 2))):
            loc = draw(st.sampled_from(locs))
            _put(body, headers, loc, draw(st.just(...) | json_values))
        if draw(st.booleans()):
            headers = {(k.swapcase() if draw(st.booleans()) else k): v for k, v in headers.items()}
        if draw(st.integers(0, 9)) == 0:
            headers[draw(st.text(min_size=1, max_size=10))] = draw(st.text(max_size=10))
        raw = json.dumps(body, ensure_ascii=draw(st.booleans())).encode()
        cut = draw(st.integers(0, 19))
        if cut == 0:
            raw = raw[: draw(st.integers(0, len(raw)))]
        elif cut == 1 and raw:
            i = draw(st.integers(0, len(raw) - 1))
            raw = raw[:i] + bytes([draw(st.integers(0, 255))]) + raw[i + 1 :]
        out.append((raw, headers))
    return out


@pytest.mark.parametrize("provider", CHART_NAMES)
@given(data=st.data())
def test_apply_never_raises_on_mutated_deliveries(
    make_db: _db.Databases, provider: str, data: st.DataObject
) -> None:
    """Whatever arrives: one row per delivery, a known outcome, a reason for every invalid
    one, raw bytes kept, and a replay that agrees with what was stored."""
    items = data.draw(hostile_deliveries(provider))
    with Engine(make_db()) as eng:
        outs = [eng.apply(provider, raw, headers) for raw, headers in items]
        assert all(o.status in STATUSES for o in outs)
        assert all(o.reason for o in outs if o.status in ("invalid", "rejected"))
        stored = _db.bodies(eng)
        assert stored == [raw for raw, _ in items]
        assert eng.replay().mismatches == []
    with Engine(make_db()) as batched:  # the batched path says the same
        assert [o.status for o in batched.apply_many(provider, items)] == [o.status for o in outs]


# ------------------------------------------------------------------------------ charts


def _bundled(name: str) -> Any:
    path = bundled_chart_dir() / f"{name}.yaml"
    return load_yaml(path.read_text(), str(path))


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


@st.composite
def mutated_charts(draw: st.DrawFn) -> Any:
    doc = _bundled(draw(st.sampled_from(CHART_NAMES)))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(doc)))
        if not path:
            continue
        parent = doc
        for step in path[:-1]:
            parent = parent[step]
        key = path[-1]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "delete":
            del parent[key]
        elif action == "replace":
            parent[key] = draw(json_values | st.text(max_size=30))
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=10))] = draw(json_values)
        else:
            parent.insert(key, draw(json_values))
    return doc


def _load(tmp_path: Path, text: str | bytes, name: str = "fuzzed") -> None:
    """Load ``text`` as the chart file ``NAME.yaml``: a chart file is named after its provider,
    so a mutated chart keeps its own name and is refused for the mutation, not for the name."""
    path = tmp_path / f"{name}.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        Chart(read_chart_file(path), path)
    except ChartError as exc:  # anything else propagates and fails the test
        message = str(exc)
    else:
        return
    assert message.startswith(str(path)), message  # names the file, then where and what


@given(doc=mutated_charts())
def test_mutated_charts_fail_only_with_chart_error(tmp_path_factory: Any, doc: Any) -> None:
    provider = doc.get("provider") if isinstance(doc, dict) else None
    name = (
        provider
        if isinstance(provider, str) and re.fullmatch(r"[a-z][a-z0-9_]*", provider)
        else "fuzzed"
    )
    _load(tmp_path_factory.mktemp("c"), json.dumps(doc, default=str), name)


@given(text=st.text(max_size=300) | st.binary(max_size=300))
def test_arbitrary_text_fails_only_with_chart_error(
    tmp_path_factory: Any, text: str | bytes
) -> None:
    _load(tmp_path_factory.mktemp("c"), text)


@given(
    name=st.sampled_from(CHART_NAMES),
    at=st.integers(0, 10_000),
    cut=st.integers(0, 40),
    insert=st.text(max_size=12),
)
def test_spliced_chart_yaml_fails_only_with_chart_error(
    tmp_path_factory: Any, name: str, at: int, cut: int, insert: str
) -> None:
    """The YAML text itself damaged: a slice cut out and replaced by arbitrary characters."""
    text = (bundled_chart_dir() / f"{name}.yaml").read_text()
    at %= len(text)
    _load(tmp_path_factory.mktemp("c"), text[:at] + insert + text[at + cut :], name)
