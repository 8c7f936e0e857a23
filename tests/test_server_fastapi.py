"""examples/fastapi_app.py: the receiver mounted in a user's FastAPI app, run under uvicorn the
way its docstring says, takes a delivery signed by stripe-python and serves the app's own routes
beside it."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
from _server import ROOT, SECRETS, clean_env, env_name, free_port, sign, stripe_delivery


def test_fastapi_app_mounts_the_receiver(tmp_path: Path) -> None:
    port = free_port()
    db = tmp_path / "billing.db"
    env = clean_env({env_name("stripe"): ",".join(SECRETS["stripe"]), "INVOICE_ENGINE_DB": str(db)})
    log = (tmp_path / "uvicorn.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "fastapi_app:app",
            "--app-dir",
            str(ROOT / "examples"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, (tmp_path / "uvicorn.log").read_text()
            try:
                if httpx.get(base + "/billing/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "uvicorn.log").read_text()
            time.sleep(0.05)
        with httpx.Client(base_url=base, timeout=30) as c:
            d = stripe_delivery("evt_fa_1", "in_fa_1", "invoice.created", "draft")
            r = c.post(
                "/billing/webhooks/stripe", content=d.body, headers=sign(d, SECRETS["stripe"][1])
            )
            assert r.status_code == 200, r.text
            assert r.json()["outcome"] == "applied"
            forged = c.post("/billing/webhooks/stripe", content=d.body, headers=dict(d.headers))
            assert forged.status_code == 401
            r = c.get("/invoices/stripe/in_fa_1")
            assert r.status_code == 200, r.text
            assert r.json()["state"] == "draft"
            assert c.get("/invoices/stripe/in_nobody").status_code == 404
            assert c.get("/billing/metrics").status_code == 200
            # The mount is the receiver's only door: the same path outside it is the app's 404.
            outside = c.post(
                "/webhooks/stripe", content=d.body, headers=sign(d, SECRETS["stripe"][0])
            )
            assert outside.status_code == 404
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
    # uvicorn shuts down gracefully, then exits by the signal it got (-15)
    assert proc.returncode in (0, -15), (tmp_path / "uvicorn.log").read_text()
    assert "Application shutdown complete" in (tmp_path / "uvicorn.log").read_text()
    text = (tmp_path / "uvicorn.log").read_text()
    assert "Traceback" not in text, text
