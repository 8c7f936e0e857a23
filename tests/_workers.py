"""Worker processes writing mixed streams into one database, and what a run must end as.

The concurrency and fault tests start several ``python -c WORKER`` processes at once, each
applying its own stream of (provider, JSONL line) pairs through ``Engine.prepare``/``commit``
(one transaction per batch, deliveries of several providers mixed). The streams are built so
that *any* interleaving must end exactly as one process applying them one after the other:

- providers whose charts fold by occurrence time get every line in at least one stream, many
  lines in two or three (duplicates racing between processes), each stream shuffled its own
  way;
- providers that keep arrival order get their example stream whole, in order, in one stream
  each (their outcomes depend on the order, which only one writer per invoice keeps).

A worker (this module run as a script) prints ``committed N`` after each commit, so a test can
kill it mid-run.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import _db

from engine import Engine, load_chart
from engine.cli._run import read_jsonl
from engine.store.base import InvoiceRow

ROOT = Path(__file__).resolve().parent.parent
STREAMS = ROOT / "examples" / "streams"
PROVIDERS = sorted(p.stem for p in STREAMS.glob("*.jsonl"))
TIMED = [p for p in PROVIDERS if load_chart(p).spec.delivery.occurred_at is not None]

sys.path.insert(0, str(ROOT / "benchmarks"))
from workload import stripe_stream  # noqa: E402

Item = tuple[str, bytes]


def streams(writers: int, generated: int, seed: int) -> list[list[Item]]:
    """``writers`` streams over every example stream and ``generated`` Stripe deliveries."""
    rng = random.Random(seed)
    timed: list[Item] = []
    out: list[list[Item]] = [[] for _ in range(writers)]
    for n, provider in enumerate(PROVIDERS):
        lines = [ln for ln in (STREAMS / f"{provider}.jsonl").read_bytes().splitlines() if ln]
        if provider in TIMED:
            timed += [(provider, ln) for ln in lines]
        else:
            out[n % writers] += [(provider, ln) for ln in lines]
    per_invoice = 8
    timed += [("stripe", b) for b in stripe_stream(generated, max(1, generated // per_invoice),
                                                    seed=seed, window=60)]  # fmt: skip
    for i, item in enumerate(timed):
        for w in range(writers):
            if w == i % writers or rng.random() < 0.35:
                out[w].append(item)
    for w, s in enumerate(out):  # each shuffled its own way; untimed lines keep their order
        untimed = [it for it in s if it[0] not in TIMED]
        shuffled = [it for it in s if it[0] in TIMED]
        rng.shuffle(shuffled)
        merged: list[Item] = []
        while untimed or shuffled:
            share = len(untimed) / (len(untimed) + len(shuffled))
            merged.append(untimed.pop(0) if rng.random() < share else shuffled.pop())
        out[w] = merged
    return out


def write(folder: Path, streams: list[list[Item]]) -> list[Path]:
    files = []
    for w, s in enumerate(streams):
        path = folder / f"stream{w}.jsonl"
        path.write_text(
            "".join(json.dumps({"provider": p, "line": ln.decode()}) + "\n" for p, ln in s),
            encoding="utf-8",
        )
        files.append(path)
    return files


def main(db: str, path: str, batch: str) -> None:
    """A worker: apply the stream at ``path`` to ``db``, ``batch`` deliveries a transaction."""
    items = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]
    size = int(batch)
    with Engine(db) as eng:
        for first in range(0, len(items), size):
            chunk = items[first : first + size]
            prepared = []
            for item in chunk:
                (delivery,) = read_jsonl([item["line"].encode()])
                body, headers = delivery if isinstance(delivery, tuple) else (delivery, None)
                prepared.append(eng.prepare(item["provider"], body, headers))
            eng.commit(prepared)
            print("committed", first + len(chunk), flush=True)


def start(db: str, path: Path, batch: int) -> subprocess.Popen[str]:
    """A worker process (this module run as a script)."""
    return subprocess.Popen(
        [sys.executable, __file__, db, str(path), str(batch)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(procs: list[subprocess.Popen[str]], timeout: float = 300) -> list[str]:
    """Wait for every worker; what went wrong (nothing, when all went well). The pool's log
    lines about connections it dropped or could not make (a server restart) are not errors."""
    errors = []
    for p in procs:
        _, err = p.communicate(timeout=timeout)
        if p.returncode != 0 or "Traceback" in err or "Error" in err:
            errors.append(f"exit {p.returncode}: {err.strip()[-2000:]}")
    return errors


def sequential(streams: list[list[Item]]) -> dict[str, Any]:
    """The reference: the streams applied one after the other by one process (SQLite)."""
    with Engine(":memory:") as eng:
        for s in streams:
            for provider, line in s:
                (delivery,) = read_jsonl([line])
                body, headers = delivery if isinstance(delivery, tuple) else (delivery, None)
                eng.apply(provider, body, headers)
        return snapshot(eng)


def snapshot(db: Engine | str) -> dict[str, Any]:
    """What must not depend on the interleaving: every invoice's state and fold position,
    every event's standing outcome, one live row per event id, a replay that agrees, and
    revisions that account for every outcome rewritten."""
    invoices = sorted(  # the fold position: arrival numbers (untimed charts) differ, not the event
        (i.provider, i.invoice_id, i.state, i.canonical, _position(i))
        for i in _db.invoices(db)
        if i.state is not None
    )
    rows = _db.events(db)
    live = sorted(
        (r.provider, r.event_id or "", r.invoice_id, r.outcome, r.from_state, r.to_state,
         r.reason, r.retryable, r.adopted, r.inferred)
        for r in rows if r.in_fold
    )  # fmt: skip
    revisions = _db.revisions(db)
    last_revision = {v.seq: v.new_outcome for v in revisions}
    counted = {r.seq: r.revisions for r in rows if r.revisions}
    per_seq: dict[int, int] = {}
    for v in revisions:
        if v.seq != v.cause_seq:
            per_seq[v.seq] = per_seq.get(v.seq, 0) + 1
    by_seq = {r.seq: r.outcome for r in rows}
    eng = db if isinstance(db, Engine) else Engine(db, readonly=True)
    try:
        ok = eng.replay().ok
    finally:
        if eng is not db:
            eng.close()
    return {
        "invoices": invoices,
        "live": live,
        "doubled": _db.doubled_live_events(db),
        "replay_ok": ok,
        "revisions_account": per_seq == counted
        and all(by_seq[s] == o for s, o in last_revision.items()),
        "rows": len(rows),
    }


def _position(invoice: InvoiceRow) -> tuple[int | None, int, str]:
    """Where the invoice's fold stands: for untimed charts, which event, not its number."""
    time, rank, event_id = invoice.key
    return (time if invoice.provider in TIMED else None, rank, event_id)


def check(found: dict[str, Any], reference: dict[str, Any], *, rows: int | None) -> None:
    assert found["doubled"] == []
    assert found["replay_ok"]
    assert found["revisions_account"]
    assert found["invoices"] == reference["invoices"]
    assert found["live"] == reference["live"]
    if rows is not None:
        assert found["rows"] == rows


if __name__ == "__main__":
    main(*sys.argv[1:])
