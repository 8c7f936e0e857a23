"""Security basics: charts can't run code, SQL is parameterized, files are private, secrets
are redacted.

- A chart is data: YAML through a safe loader (no ``!!python/...`` tags) and guards from a
  regular-expression grammar whose literal is read by ``json.loads``; no module of the engine
  calls ``eval``/``exec``/``compile``/``__import__``.
- Every value from a delivery reaches SQLite as a bound parameter, never in the SQL text: the
  test records every statement the engine sends while it applies and looks up deliveries full
  of SQL metacharacters.
- Database files (and SQLite's -wal/-shm side files) are created 0600, whatever the umask:
  raw bodies carry names, e-mail addresses and, for ChargeOver, a ``security_token``.
- Header credentials (a chart's shared-secret header, and secret, token, password, key,
  authorization and cookie headers) are stored as ``[redacted]``; signature headers are kept
  (an HMAC reveals no key; a stored delivery can be verified again). ``--json`` output and
  ``history`` never show headers or bodies. Bodies are stored exactly as received (a
  signature check needs the exact bytes), so ChargeOver's
  ``security_token`` inside the body stays in the (private) file — see the README.
"""

from __future__ import annotations

import ast
import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import _db
import pytest
from _cli import apply_json
from hypothesis import given
from hypothesis import strategies as st

import engine
from engine import Engine
from engine.chart.expr import Guard
from engine.chart.load import load_yaml
from engine.errors import ChartError

ENGINE_DIR = Path(engine.__file__).resolve().parent
CLI = Path(sys.executable).with_name("invoice-engine")
SQLI = "x'); DROP TABLE events; --\"MARK"


# ----------------------------------------------------------------- no code from charts


def _engine_sources() -> Iterator[tuple[Path, ast.Module]]:
    for path in sorted(ENGINE_DIR.rglob("*.py")):
        yield path, ast.parse(path.read_text(), str(path))


def test_no_module_calls_an_evaluator() -> None:
    forbidden = {"eval", "exec", "compile", "__import__"}
    found = []
    for path, tree in _engine_sources():
        for node in ast.walk(tree):
            name = (
                node.func.id
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                else ""
            )
            if name in forbidden:
                found.append(f"{path.name}:{getattr(node, 'lineno', 0)} {name}")
            if isinstance(node, ast.Attribute) and node.attr in ("unsafe_load", "full_load"):
                found.append(f"{path.name}:{node.lineno} yaml.{node.attr}")
    assert found == []


@pytest.mark.parametrize(
    "tag",
    [
        '!!python/object/apply:os.system ["touch {marker}"]',
        '!!python/object/new:subprocess.Popen [["touch", "{marker}"]]',
        "!!python/name:os.system",
    ],
)
def test_yaml_tags_cannot_build_objects(tmp_path: Path, tag: str) -> None:
    marker = tmp_path / "pwned"
    with pytest.raises(ChartError, match="could not determine a constructor"):
        load_yaml(f"name: x\nguard: {tag.format(marker=marker)}\n")
    assert not marker.exists()


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os').system('id') == 0",
        "$.a == __import__('os')",
        "$.a == open('/etc/passwd')",
        "$.a == (1).__class__",
        "$.a == [].__class__.__base__",
        "$.a; import os == 1",
        '$.a == {"__class__": 1}',
        "$.a == lambda: 1",
    ],
)
def test_guard_grammar_refuses_code(text: str) -> None:
    with pytest.raises(ValueError, match=r"not a|an object or list"):
        Guard.parse(text)


class _Trap:
    """A payload object that fails the test if anything touches its attributes."""

    def __getattribute__(self, name: str) -> Any:
        raise AssertionError(f"guard touched attribute {name!r}")


@given(text=st.text(max_size=40))
def test_any_guard_is_a_path_and_a_json_scalar(text: str) -> None:
    """Whatever the text, a guard that parses is plain data: key/index steps and a JSON
    scalar; evaluating it only indexes dicts and lists, never an attribute."""
    try:
        guard = Guard.parse(text)
    except ValueError:
        return
    assert all(isinstance(s, str | int) for s in guard.steps)
    assert guard.literal is None or isinstance(guard.literal, bool | int | float | str)
    assert guard({"a": {"__class__": 1}}) in (True, False)
    assert guard(_Trap()) is False or guard.steps == ()


# --------------------------------------------------------------- parameterized SQL only


def test_delivery_values_never_reach_sql_text(tmp_path: Path) -> None:
    body = {
        "id": "evt_" + SQLI,
        "type": "invoice.created",
        "created": 1_717_200_000,
        "data": {"object": {"id": "in_" + SQLI, "status": "draft", "note": SQLI}},
    }
    late = dict(body, id="evt_2" + SQLI, created=1_717_100_000, type="invoice.finalized")
    with Engine(tmp_path / "t.db") as eng:
        sql = _db.record_sql(eng)
        outs = [eng.apply("stripe", json.dumps(b)) for b in (body, body, late)]
        outs += eng.apply_many("stripe", [json.dumps(body), (SQLI, {"X-" + SQLI: SQLI})])
        assert eng.state("stripe", "in_" + SQLI) is not None
        assert len(eng.history("stripe", "in_" + SQLI)) == 4
        assert eng.state("stripe", SQLI) is None
        assert eng.replay("stripe").mismatches == []
        assert list(eng.invoices("stripe"))
    tables = _db.tables(tmp_path / "t.db")
    assert [o.status for o in outs] == ["applied", "duplicate", "applied", "duplicate", "invalid"]
    assert {"events", "invoices"} <= tables
    assert sql
    assert [s for s in sql if "MARK" in s] == []


# ----------------------------------------------------------------------- private files


@pytest.fixture
def open_umask() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def _modes(folder: Path) -> dict[str, int]:
    return {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()}


@pytest.mark.usefixtures("open_umask")
def test_engine_creates_owner_only_files(tmp_path: Path) -> None:
    db = tmp_path / "invoices.db"
    with Engine(db) as eng:
        eng.apply("stripe", b'{"not": "a stripe event"}')
        modes = _modes(db.parent)  # while open: the -wal and -shm files exist too
    assert {"invoices.db", "invoices.db-wal", "invoices.db-shm"} <= set(modes)
    assert set(modes.values()) == {0o600}, {k: oct(v) for k, v in modes.items()}


def test_cli_creates_owner_only_database(tmp_path: Path) -> None:
    stream = tmp_path / "s.jsonl"
    stream.write_bytes(b'{"type": "invoice.created"}\n')
    db = tmp_path / "cli.db"
    subprocess.run(
        [str(CLI), "apply", "stripe", str(stream), "--db", str(db)],
        check=True,
        capture_output=True,
        preexec_fn=lambda: os.umask(0),
    )
    assert stat.S_IMODE(db.stat().st_mode) == 0o600


# ----------------------------------------------------------------------------- secrets

#: Credentials: stored as [redacted], shown nowhere.
_SECRETS = {
    "X-ChargeOver-Key": "KEYSECRET2",  # the chargeover chart's shared_secret header
    "Authorization": "Bearer TOKENSECRET3",
    "X-Webhook-Token": "TOKENSECRET4",
    "Cookie": "session=COOKIESECRET5",
    "X-Api-Key": "APIKEYSECRET8",
}
#: Signatures are not secrets (an HMAC reveals nothing of its key): stored as they came, so a
#: stored delivery can be verified again; still never printed.
_SIGNATURES = {
    "Stripe-Signature": "t=1,v1=SIGVALUE1",
    "X-Pelcro-Hmac-SHA256": "HMACVALUE6",
}


def _chargeover_line(token: str) -> bytes:
    line = Path(__file__).resolve().parent.parent / "examples" / "streams" / "chargeover.jsonl"
    doc = json.loads(line.read_text().splitlines()[0])
    doc["headers"] = {**doc["headers"], **_SECRETS, **_SIGNATURES}
    doc["body"]["security_token"] = token
    return json.dumps(doc).encode() + b"\n"


def test_header_secrets_are_redacted_everywhere(tmp_path: Path) -> None:
    stream = tmp_path / "s.jsonl"
    stream.write_bytes(_chargeover_line("BODYSECRET7"))
    db = tmp_path / "co.db"
    applied = subprocess.run(
        [str(CLI), "apply", "chargeover", str(stream), "--db", str(db), "--json"],
        check=True,
        capture_output=True,
    )
    result = apply_json(applied.stdout)
    assert result.summary["counts"] == {"applied": 1}
    invoice = result.decided[0]["invoice_id"]
    history = subprocess.run(
        [str(CLI), "history", "chargeover", invoice, "--db", str(db), "--json"],
        check=True,
        capture_output=True,
    )
    shown = applied.stdout + applied.stderr + history.stdout + history.stderr
    for secret in [*_SECRETS.values(), *_SIGNATURES.values(), "BODYSECRET7"]:
        assert secret.encode() not in shown, secret

    row = _db.events(db)[0]
    headers, body = row.headers, row.body
    assert headers is not None
    stored = json.loads(headers)
    assert {k: stored[k.lower()] for k in _SECRETS} == dict.fromkeys(_SECRETS, "[redacted]")
    assert {k: stored[k.lower()] for k in _SIGNATURES} == _SIGNATURES
    assert stored["content-type"] == "application/json"
    # The body is kept exactly as received (signatures are over these bytes); the file is 0600.
    assert b"BODYSECRET7" in body
    everything = b"".join(p.read_bytes() for p in tmp_path.glob("co.db*"))
    for secret in _SECRETS.values():
        assert secret.encode() not in everything, secret


def test_what_is_redacted_follows_the_chart(tmp_path: Path) -> None:
    """A chart's shared-secret header is redacted whatever its name; the headers its signature
    scheme and its delivery map read are kept, whatever theirs; others go by their name."""
    from datetime import UTC, datetime

    from engine.chart import bundled_chart_dir
    from engine.runtime._receive import receive

    text = (bundled_chart_dir() / "stripe.yaml").read_text(encoding="utf-8")
    head, _, rest = text.partition("\nsignature:\n")
    text = (
        head
        + "\nsignature: {scheme: shared_secret, header: X-Pass}\n"
        + rest[rest.index("\nevents:") :]
    )
    text = text.replace("provider: stripe", "provider: acme")
    # (a header the signature doesn't cover can't be the event id: the invoice id, here)
    text = text.replace("  invoice_id: $.data.object.id\n", "  invoice_id: header:X-Unique-Key\n")
    path = tmp_path / "acme.yaml"
    path.write_text(text, encoding="utf-8")
    chart = engine.load_chart(path)
    headers = {
        "X-Pass": "PASSVALUE1",  # the chart's shared secret: no secret word in its name
        "X-Unique-Key": "in_kept_1",  # the invoice id the chart reads: "key" in its name
        "Stripe-Signature": "t=1,v1=abc",  # a signature: kept
        "Authorization": "Bearer TOKEN2",
        "Idempotency-Key": "idem-3",  # not read by the chart: an identifier by its name
        "X-Api-Key": "key-6",  # not read by the chart: a credential by its name
        "X-Secret-Unique-Key": "s-7",  # an identifier's ending, but it says secret
        "Set-Cookie": "s=4",
        "X-Client-Password": "pw5",
        "Content-Type": "application/json",
    }
    body = b'{"id": "evt_1", "type": "invoice.created", "created": 1717200000, "data": {}}'
    received = receive(chart, body, headers, datetime(2024, 6, 1, tzinfo=UTC))
    assert received.headers is not None
    stored = json.loads(received.headers)
    assert stored == {
        "x-pass": "[redacted]",
        "x-unique-key": "in_kept_1",
        "stripe-signature": "t=1,v1=abc",
        "authorization": "[redacted]",
        "idempotency-key": "idem-3",
        "x-api-key": "[redacted]",
        "x-secret-unique-key": "[redacted]",
        "set-cookie": "[redacted]",
        "x-client-password": "[redacted]",
        "content-type": "application/json",
    }
    assert not isinstance(received.event, Exception)
    assert received.event.invoice_id == "in_kept_1"


@pytest.mark.parametrize(
    ("provider", "secret_header", "kept"),
    [
        ("chargeover", "x-chargeover-key", []),
        ("moxie", "authorization", ["x-event-type"]),
        ("stripe", None, ["stripe-signature"]),
        ("modern_treasury", None, ["x-signature", "x-webhook-id"]),
        ("upmind", None, ["x-webhook-signature"]),
        ("pelcro", None, ["x-pelcro-hmac-sha256"]),
        # the webhook's id: "key" in its name, an identifier all the same
        ("lago", None, ["x-lago-signature", "x-lago-signature-algorithm", "x-lago-unique-key"]),
    ],
)
def test_bundled_charts_redact_their_keys_and_keep_their_signatures(
    provider: str, secret_header: str | None, kept: list[str]
) -> None:
    from engine.runtime._redact import redact_headers

    chart = engine.load_chart(provider)
    headers = {name: f"value of {name}" for name in [*kept, "x-ignored"]}
    if secret_header is not None:
        headers[secret_header] = "SHARED-KEY"
    stored = redact_headers(headers, chart)
    for name in kept:
        assert stored[name] == headers[name]
    if secret_header is not None:
        assert stored[secret_header] == "[redacted]"
