"""A 2xx means recorded: clients post a stream concurrently while the server is SIGKILLed and
restarted on the same database, again and again.

Afterwards every delivery that got a 2xx is in the database exactly once, the file is intact,
the stored states agree with the stored events, and re-sending the whole stream (as providers
retry) ends in exactly the states of one clean in-process run of it.
"""

from __future__ import annotations

import json
import random
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from _db import doubled_live_events, events, integrity
from _server import SECRETS, Delivery, Server, clean_run, post, secret_env, sign, states

from engine import Engine

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from workload import stripe_stream

SECRET = SECRETS["stripe"][0]


@dataclass
class Tally:
    """What the clients saw, by delivery index."""

    acked: dict[int, list[str]] = field(default_factory=dict)  # index -> outcomes of its 2xx
    codes: dict[int, int] = field(default_factory=dict)  # status code -> count
    transport_errors: int = 0
    taken: int = 0  # how many deliveries the clients have started on
    lock: threading.Lock = field(default_factory=threading.Lock)


def _send_all(
    server: Server, deliveries: list[Delivery], clients: int, tally: Tally, attempts: int
) -> None:
    """``clients`` threads share the deliveries in order; each delivery is tried up to
    ``attempts`` times (a provider's retries) while it fails at the transport or with a 5xx."""
    cursor = iter(range(len(deliveries)))
    take = threading.Lock()

    def work() -> None:
        with httpx.Client(base_url=server.base, timeout=10) as c:
            while True:
                with take:
                    i = next(cursor, None)
                    tally.taken += 1
                if i is None:
                    return
                d = deliveries[i]
                for _ in range(attempts):
                    try:
                        r = post(c, d, sign(d, SECRET))
                    except httpx.TransportError:
                        with tally.lock:
                            tally.transport_errors += 1
                        time.sleep(0.05)
                        continue
                    with tally.lock:
                        tally.codes[r.status_code] = tally.codes.get(r.status_code, 0) + 1
                        if 200 <= r.status_code < 300:
                            tally.acked.setdefault(i, []).append(r.json()["outcome"])
                    if r.status_code < 500:
                        break
                    time.sleep(0.05)

    threads = [threading.Thread(target=work) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def run_kill_restart(
    tmp_path: Path, *, n: int, n_invoices: int, clients: int, kills: int, seed: int
) -> None:
    bodies = list(stripe_stream(n, n_invoices, seed=seed))  # with duplicates, illegal, shuffled
    deliveries = [Delivery("stripe", b, {"Content-Type": "application/json"}) for b in bodies]
    server = Server(tmp_path, env=secret_env(["stripe"]))
    server.start()
    rng = random.Random(seed)
    tally = Tally()
    sender = threading.Thread(target=_send_all, args=(server, deliveries, clients, tally, 3))
    sender.start()
    killed = 0
    try:
        # Kill at evenly spaced points of the stream, a little randomly, whatever the speed.
        for k in range(1, kills + 1):
            mark = n * k // (kills + 1) + rng.randrange(-n // 20, n // 20)
            while tally.taken < mark and sender.is_alive():
                time.sleep(0.002)
            if not sender.is_alive():
                break
            server.kill()
            killed += 1
            time.sleep(rng.uniform(0.0, 0.2))
            server.start()
        sender.join(300)
        assert not sender.is_alive()
        assert killed == kills, f"the stream finished after {killed} kills"

        # Every acknowledged delivery is there, exactly once.
        rows = events(server.db)
        in_fold = {r.event_id for r in rows if r.in_fold}
        assert doubled_live_events(server.db) == []
        missing = sorted({json.loads(deliveries[i].body)["id"] for i in tally.acked} - in_fold)
        assert missing == [], f"acknowledged but not recorded: {missing[:10]} ({tally})"
        assert integrity(server.db) == "ok"
        with Engine(server.db, readonly=True) as eng:
            report = eng.replay()
        assert report.ok, [str(m) for m in report.mismatches][:10]

        # The providers retry everything: the end state is one clean run's.
        again = Tally()
        _send_all(server, deliveries, clients, again, 3)
        assert set(again.codes) <= {200, 409}, again.codes
        _, clean_states = clean_run(deliveries)
        assert states(server.db, "stripe") == clean_states
        assert doubled_live_events(server.db) == []
        ids = {json.loads(d.body)["id"] for d in deliveries}
        assert {r.event_id for r in events(server.db) if r.in_fold} == ids
    finally:
        sender.join(60)
        server.stop()
    print(
        f"{killed} kills; first pass: {len(tally.acked)}/{n} acknowledged, codes {tally.codes}, "
        f"{tally.transport_errors} transport errors"
    )


def test_sigkill_while_posting_loses_no_acknowledged_delivery(tmp_path: Path) -> None:
    run_kill_restart(tmp_path, n=800, n_invoices=80, clients=4, kills=3, seed=11)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [21, 22, 23])
def test_sigkill_many_times_under_load(tmp_path: Path, seed: int) -> None:
    run_kill_restart(tmp_path, n=6000, n_invoices=400, clients=12, kills=8, seed=seed)
