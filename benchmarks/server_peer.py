"""The peer of ``invoice-engine serve``: the Stripe webhook endpoint a team writes by hand.

Same stack (Starlette under uvicorn, one worker, uvicorn's defaults otherwise), the same
durability (SQLite in WAL mode, ``synchronous=FULL``: an fsync per commit), and what such an
endpoint does: check the ``Stripe-Signature`` (HMAC-SHA256 of ``"{t}.{body}"``, 300 s), parse
the JSON, one ``INSERT`` + ``COMMIT`` per request, answer 200. It decides nothing — no
lifecycle, no order, no state — so it is a floor on the work per request, not a rival design.

Run: ``python benchmarks/server_peer.py --port 8001 --db peer.db`` with the secret in
``INVOICE_ENGINE_SECRET_STRIPE``; ``POST /webhooks/stripe``, ``GET /healthz``.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import sqlite3
import threading
import time

import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

TOLERANCE = 300

SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    event_id TEXT PRIMARY KEY,
    event_type TEXT,
    invoice_id TEXT,
    received_at REAL NOT NULL,
    body BLOB NOT NULL
)
"""


def _verified(body: bytes, header: str | None, secret: bytes) -> bool:
    if not header:
        return False
    parts = [p.split("=", 1) for p in header.split(",") if "=" in p]
    stamps = [v for k, v in parts if k == "t"]
    if len(stamps) != 1 or not stamps[0].isdigit():
        return False
    if abs(time.time() - int(stamps[0])) > TOLERANCE:
        return False
    expected = hmac.new(secret, stamps[0].encode() + b"." + body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, v) for k, v in parts if k == "v1")


def create_peer(db: str, secret: str, offload: bool = False) -> Starlette:
    """The hand-written endpoint as an app (one connection, used on the event loop)."""
    conn = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute(SCHEMA)
    key = secret.encode()
    lock = threading.Lock()

    def write(row: tuple[object, ...]) -> None:
        with lock:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT OR IGNORE INTO deliveries VALUES (?, ?, ?, ?, ?)", row)
            conn.execute("COMMIT")

    async def webhook(request: Request) -> Response:
        body = await request.body()
        if not _verified(body, request.headers.get("stripe-signature"), key):
            return JSONResponse({"error": "signature"}, status_code=401)
        try:
            event = json.loads(body)
            event_id = str(event["id"])
            invoice = event.get("data", {}).get("object", {}).get("id")
        except (ValueError, KeyError, AttributeError):
            return JSONResponse({"error": "unreadable"}, status_code=400)
        row = (event_id, event.get("type"), invoice, time.time(), body)
        if offload:  # the commit (its fsync) in a worker thread: the event loop keeps serving
            await anyio.to_thread.run_sync(write, row)
        else:
            write(row)
        return JSONResponse({"received": True, "event_id": event_id})

    async def healthz(request: Request) -> Response:
        conn.execute("SELECT 1").fetchone()
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/webhooks/stripe", webhook, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--db", default="peer.db")
    parser.add_argument(
        "--offload",
        action="store_true",
        help="commit in a worker thread instead of on the event loop",
    )
    args = parser.parse_args()
    secret = os.environ["INVOICE_ENGINE_SECRET_STRIPE"].split(",")[0]
    app = create_peer(args.db, secret, args.offload)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
