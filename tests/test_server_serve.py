"""``invoice-engine serve``: what it serves and how, as configured (secrets file, environment,
the loudly named unsigned opening), and its refusals to start."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from _db import count_rows_read_only, events
from _server import (
    SECRETS,
    Server,
    env_name,
    free_port,
    post,
    run_serve,
    sign,
    stream,
    stripe_delivery,
)
from conftest import CHART_NAMES

from engine import Engine


def test_nothing_configured_refuses_to_start_and_says_how(tmp_path: Path) -> None:
    res = run_serve(tmp_path, ["--port", str(free_port()), "--db", str(tmp_path / "x.db")])
    assert res.returncode == 1, res
    assert res.stderr.startswith("Error: "), res.stderr
    assert "INVOICE_ENGINE_SECRET_" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr


def test_without_the_server_extra_it_says_what_to_install(tmp_path: Path) -> None:
    """starlette and uvicorn made unimportable, as in an install without the extra."""
    code = (
        "import sys; sys.modules['starlette'] = None; sys.modules['uvicorn'] = None\n"
        "from engine.cli import main\n"
        "main(['serve', '--db', 'x.db'], prog_name='invoice-engine')\n"
    )
    env = {env_name("stripe"): SECRETS["stripe"][0]}
    res = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={**_base_env(), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 1, res
    assert res.stderr.startswith("Error: "), res.stderr
    assert "pip install 'invoice-engine[server]'" in res.stderr
    assert "Traceback" not in res.stderr


def _base_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("INVOICE_ENGINE_")}


def test_unknown_provider_to_open_unsigned_refuses_to_start(tmp_path: Path) -> None:
    res = run_serve(
        tmp_path,
        [
            "--port",
            str(free_port()),
            "--db",
            str(tmp_path / "x.db"),
            "--insecure-accept-unsigned",
            "strpe",
        ],
    )
    assert res.returncode == 1, res
    assert res.stderr.startswith("Error: ")
    assert "strpe" in res.stderr
    assert "stripe" in res.stderr  # the choices are listed


# ------------------------------------------------- secrets file + an unsigned opening


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Stripe's secret from a secrets file only (one secret, no rotation), Modern Treasury's
    from the environment, Moxie opened unsigned; every other bundled provider not served."""
    work = tmp_path_factory.mktemp("mixed")
    secrets_file = work / "secrets.env"
    secrets_file.write_text(
        f"# comments and blank lines are fine\n\n{env_name('stripe')}={SECRETS['stripe'][0]}\n"
    )
    secrets_file.chmod(0o600)
    srv = Server(
        work,
        env={env_name("modern_treasury"): SECRETS["modern_treasury"][1]},
        args=["--secrets-file", str(secrets_file), "--insecure-accept-unsigned", "moxie"],
    )
    with srv:
        yield srv


@pytest.fixture
def client(mixed: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=mixed.base, timeout=30) as c:
        yield c


def test_start_up_log_says_what_is_served_and_how(mixed: Server) -> None:
    lines = mixed.log().splitlines()

    def naming(provider: str) -> list[str]:
        return [ln for ln in lines if provider in ln and "serv" in ln.lower()]

    assert naming("stripe"), lines
    assert naming("modern_treasury"), lines
    unsigned = naming("moxie")
    assert unsigned, lines
    assert any("unsigned" in ln.lower() or "insecure" in ln.lower() for ln in unsigned), unsigned
    for provider in set(CHART_NAMES) - {"stripe", "modern_treasury", "moxie"}:
        assert not naming(provider), (provider, lines)
    assert SECRETS["stripe"][0] not in mixed.log()


def test_secret_from_the_file_verifies(mixed: Server, client: httpx.Client) -> None:
    d = stripe_delivery("evt_file_1", "in_file_1", "invoice.created", "draft")
    r = post(client, d, sign(d, SECRETS["stripe"][0]))
    assert r.status_code == 200, r.text
    assert r.json()["outcome"] == "applied"
    r = post(client, d, sign(d, SECRETS["stripe"][1]))  # not configured here
    assert r.status_code == 401, r.text


def test_secret_from_the_environment_verifies(mixed: Server, client: httpx.Client) -> None:
    d = stream("modern_treasury")[0]
    assert post(client, d, sign(d, SECRETS["modern_treasury"][0])).status_code == 401
    r = post(client, d, sign(d, SECRETS["modern_treasury"][1]))
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    "provider", sorted(set(CHART_NAMES) - {"stripe", "modern_treasury", "moxie"})
)
def test_bundled_provider_without_a_secret_is_403_and_nothing_stored(
    mixed: Server, client: httpx.Client, provider: str
) -> None:
    before = count_rows_read_only(mixed.db) or 0
    d = stream(provider)[0]
    r = post(client, d, sign(d, SECRETS[provider][0]))  # even correctly signed
    assert r.status_code == 403, r.text
    doc = r.json()
    assert set(doc) >= {"error", "reason"}
    assert provider in doc["reason"]
    assert (count_rows_read_only(mixed.db) or 0) == before


def test_unknown_provider_is_404(client: httpx.Client) -> None:
    r = client.post("/webhooks/paypal", content=b"{}", headers={"Content-Type": "application/json"})
    assert r.status_code == 404, r.text


def test_unsigned_opening_takes_deliveries_and_records_them_as_unverified(
    mixed: Server, client: httpx.Client
) -> None:
    deliveries = stream("moxie")
    for d in deliveries:
        r = post(client, d)  # no Authorization at all
        assert r.status_code in (200, 409, 422), r.text
    moxie = [r for r in events(mixed.db) if r.provider == "moxie"]
    assert len(moxie) == len(deliveries)
    assert {r.verified for r in moxie} == {0}
    stripe_rows = [r for r in events(mixed.db) if r.provider == "stripe"]
    assert stripe_rows
    assert {r.verified for r in stripe_rows} == {1}
    iid = json.loads(deliveries[0].body)["id"]
    with Engine(mixed.db, readonly=True) as eng:
        assert {o.verified for o in eng.history("moxie", iid)} == {False}


def test_the_cli_and_library_record_not_checked(tmp_path: Path) -> None:
    """``verified`` is NULL for deliveries nobody checked (``apply``, ``Engine.apply``)."""
    d = stream("stripe")[0]
    with Engine(tmp_path / "lib.db") as eng:
        out = eng.apply("stripe", d.body, d.headers)
        assert out.verified is None
    assert {r.verified for r in events(tmp_path / "lib.db")} == {None}


def test_sigterm_stops_cleanly(tmp_path: Path) -> None:
    srv = Server(tmp_path, env={env_name("stripe"): SECRETS["stripe"][0]})
    srv.start()
    d = stripe_delivery("evt_term", "in_term", "invoice.created", "draft")
    with httpx.Client(base_url=srv.base, timeout=30) as c:
        assert post(c, d, sign(d, SECRETS["stripe"][0])).status_code == 200
    # uvicorn shuts down gracefully, then re-raises the signal (exit by SIGTERM), as it should
    assert srv.stop() in (0, -15), srv.log()
    assert "Application shutdown complete" in srv.log()
    assert "Traceback" not in srv.log()
    assert [r.event_id for r in events(srv.db)] == ["evt_term"]
