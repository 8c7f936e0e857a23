"""Threads sharing one Engine: each delivery is still one whole transaction."""

from __future__ import annotations

import threading

import _db

import engine


def test_threads_sharing_an_engine_lose_nothing(make_db: _db.Databases) -> None:
    eng = engine.Engine(make_db())
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            for i in range(150):
                body = {
                    "id": f"evt_{k}_{i % 100}",  # a third are redeliveries
                    "type": "invoice.created",
                    "created": 1_700_000_000,
                    "data": {"object": {"id": f"in_{k}_{i % 100}", "status": "draft"}},
                }
                eng.apply("stripe", body)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert eng.counts() == {"applied": 400, "duplicate": 200}
    assert len(list(eng.invoices("stripe"))) == 400
    assert eng.replay().ok
