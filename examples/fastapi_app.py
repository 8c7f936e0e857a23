"""Your own FastAPI service, with invoice-engine's webhook receiver mounted inside it.

The receiver answers ``POST /billing/webhooks/<provider>`` (verified, recorded, a 2xx only once
committed), ``GET /billing/healthz`` and ``GET /billing/metrics``; the rest of the app is yours —
here one route that reads an invoice's state back. Point Stripe's webhook endpoint at
``https://<your host>/billing/webhooks/stripe`` and run::

    pip install 'invoice-engine[server]' fastapi
    INVOICE_ENGINE_SECRET_STRIPE=whsec_... uvicorn fastapi_app:app --app-dir examples

Run as a script (``python examples/fastapi_app.py``) it shows itself working: it starts under
uvicorn on a free port with a demo secret, posts one delivery signed as Stripe signs, and prints
the answers.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import socket
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException

from engine import Engine
from engine.server import create_app

DB = os.environ.get("INVOICE_ENGINE_DB", "invoices.db")
DEMO_SECRET = "whsec_demo_stripe"
if __name__ == "__main__":  # the self-demonstration at the bottom: a demo secret, if none is set
    os.environ.setdefault("INVOICE_ENGINE_SECRET_STRIPE", DEMO_SECRET)

# Secrets come from INVOICE_ENGINE_SECRET_<PROVIDER> (comma-separated while rotating);
# pass secrets={"stripe": [...]} to create_app to take them from somewhere else.
billing = create_app(DB)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # A mounted app's own start-up and shutdown don't run by themselves: run them here, so that
    # on shutdown the receiver commits what it holds and closes its database.
    async with billing.router.lifespan_context(billing):
        yield


app = FastAPI(title="My billing service", lifespan=lifespan)
app.mount("/billing", billing)


@app.get("/invoices/{provider}/{invoice_id}")
def invoice(provider: str, invoice_id: str) -> dict[str, Any]:
    """An invoice's state as the receiver recorded it."""
    with Engine(DB, readonly=True) as eng:
        state = eng.state(provider, invoice_id)
    if state is None:
        raise HTTPException(404, f"no {provider} invoice {invoice_id!r}")
    return {"invoice_id": state.invoice_id, "state": state.state, "canonical": state.canonical}


# ------------------------------------------------------------------ the self-demonstration


def _stripe_signature(body: bytes, secret: str) -> str:
    """Stripe-Signature as Stripe makes it: t=<unix>,v1=hex HMAC-SHA256 of "{t}.{body}"."""
    t = int(time.time())
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def _demo() -> None:
    import httpx
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise SystemExit("the app did not start")
            time.sleep(0.05)
        body = json.dumps(
            {
                "id": "evt_demo_fastapi_1",
                "object": "event",
                "type": "invoice.finalized",
                "created": int(time.time()) - 5,
                "data": {
                    "object": {"id": "in_demo_fastapi", "object": "invoice", "status": "open"}
                },
            },
            separators=(",", ":"),
        ).encode()
        headers = {
            "Content-Type": "application/json",
            "Stripe-Signature": _stripe_signature(body, os.environ["INVOICE_ENGINE_SECRET_STRIPE"]),
        }
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            r = client.post("/billing/webhooks/stripe", content=body, headers=headers)
            print("POST /billing/webhooks/stripe ->", r.status_code, r.text)
            r = client.post("/billing/webhooks/stripe", content=body + b" ", headers=headers)
            print("the same, tampered ->", r.status_code, r.json()["error"])
            r = client.get("/invoices/stripe/in_demo_fastapi")
            print("GET /invoices/stripe/in_demo_fastapi ->", r.status_code, r.text)
    finally:
        server.should_exit = True
        thread.join(30)


if __name__ == "__main__":
    _demo()
