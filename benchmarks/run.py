"""invoice-engine benchmarks: every figure beside its peer, measured in one run.

Run from the repository root::

    .venv/bin/python benchmarks/run.py [--quick] [--out benchmarks/results/latest.json]

``--quick`` is a smoke run (small sizes, under a minute) that CI executes; it asserts no times.
The table goes to stdout, the JSON (figures, ratios to peers, targets, versions) to ``--out``.
A ratio that misses its target is flagged, never fatal: ``✗ target <= 3`` in the table, a line
under it, and ``missed_targets`` in the JSON (timings on a shared CI machine are not a test).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from scale import bench_workers  # noqa: E402
from workload import stripe_lifecycles, stripe_stream  # noqa: E402

from engine import Engine, load_chart  # noqa: E402
from engine.store._statements import UPSERT_INVOICE, qmark  # noqa: E402
from engine.store.base import EventRow  # noqa: E402
from engine.store.sqlite import SqliteStore  # noqa: E402

Row = dict[str, Any]


def _rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def _best(fn: Callable[[], float], repeat: int) -> float:
    """The fastest of ``repeat`` timings (seconds): the least disturbed by the machine."""
    return min(fn() for _ in range(repeat))


# --------------------------------------------------------------------------- validator


def bench_validator(quick: bool) -> list[Row]:
    """chart.next_state vs a bare dict lookup vs one transitions model per invoice, on a flat,
    a nested and a parallel chart."""
    n_inv = 300 if quick else 3000
    stripe = stripe_lifecycles(n_inv, 10)
    # ChargeOver: overdue and back a few times, then paid or void.
    chargeover = [
        ["become_overdue", "extend_due_date"] * (i % 4) + ["pay" if i % 9 else "void"]
        for i in range(n_inv)
    ]
    # Lago (parallel: payment x overdue x dispute): overdue, failed attempts, then paid or void.
    lago = [
        ["finalize", "become_overdue"] * 1
        + ["fail_payment", "retry_payment"] * (i % 3)
        + (["pay"] if i % 7 else ["lose_dispute", "void"])
        for i in range(n_inv)
    ]
    return [
        _validator("stripe", stripe, quick, "flat"),
        _validator("chargeover", chargeover, quick, "nested"),
        _validator("lago", lago, quick, "parallel"),
    ]


def _validator(name: str, lives: list[list[str]], quick: bool, kind: str) -> Row:
    chart = load_chart(name)
    start = chart.initial_states[0]
    steps = sum(len(life) for life in lives)
    legal = [(s, t) for s in chart.states for t in chart.allowed_triggers(s)]
    table = {(s, t): chart.next_state(s, t) for s, t in legal}

    def run_chart() -> float:
        next_state = chart.next_state
        t0 = time.perf_counter()
        for life in lives:
            state = start
            for trig in life:
                state = next_state(state, trig)
        return time.perf_counter() - t0

    def run_dict() -> float:
        t0 = time.perf_counter()
        for life in lives:
            state = start
            for trig in life:
                state = table[(state, trig)]
        return time.perf_counter() - t0

    def run_naive() -> float:
        # The textbook way: one machine-backed model per invoice, fire its triggers. The
        # machine class is the chart's own (transitions' Machine, or its nested one with ".").
        m = type(chart.machine)(
            model=None,
            states=_nested(chart),
            transitions=_plain_transitions(chart),
            initial=start,
            auto_transitions=False,
        )
        models = []
        for _ in lives:
            model = type("Invoice", (), {})()
            m.add_model(model, initial=start)
            models.append(model)
        t0 = time.perf_counter()
        for model, life in zip(models, lives, strict=True):
            for trig in life:
                model.trigger(trig)
        return time.perf_counter() - t0

    t_chart = _best(run_chart, 5)
    t_dict = _best(run_dict, 5)
    t_naive = _best(run_naive, 1 if quick else 2)
    return {
        "name": f"validator {name} ({kind}): chart.next_state",
        "value": _rate(steps, t_chart),
        "unit": "steps/s",
        "peers": {
            "dict lookup": _rate(steps, t_dict),
            "transitions model per invoice": _rate(steps, t_naive),
        },
        "ratios": {
            "dict / chart (target <= 3)": t_chart / t_dict,
            "chart / naive (target >= 20)": t_naive / t_chart,
        },
    }


def _nested(chart: Any) -> list[Any]:
    from engine.chart._machine import machine_states

    return machine_states(chart.tree, chart.tree.roots)


def _plain_transitions(chart: Any) -> list[dict[str, Any]]:
    return [
        {
            "trigger": t.trigger,
            "source": list(chart.tree.non_final_leaves) if t.source == ["*"] else list(t.source),
            "dest": t.dest,
        }
        for t in chart.spec.transitions
    ]


# ------------------------------------------------------------------------ engine, batch


def _fresh_db(folder: str, name: str) -> str:
    path = os.path.join(folder, name)
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    return path


#: Deliveries per transaction, on both sides of the comparison (the issue's figure).
BATCH = 1_000


def _raw_db(folder: str, name: str) -> sqlite3.Connection:
    """A fresh file with the engine's own schema (same tables, same indexes), then a bare
    ``sqlite3`` connection to it as the engine opens one: WAL, ``synchronous=NORMAL``."""
    path = _fresh_db(folder, name)
    SqliteStore(path).close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


def _insert_sql() -> str:
    names = EventRow._fields
    return f"INSERT INTO events ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"


def bench_batch(quick: bool, folder: str) -> list[Row]:
    """apply_many over a realistic stream vs raw executemany of the same event rows."""
    n, n_inv = (20_000, 2_000) if quick else (200_000, 20_000)
    bodies = list(stripe_stream(n, n_inv))
    path = _fresh_db(folder, "batch.db")
    with Engine(path, batch_size=BATCH) as eng:
        t0 = time.perf_counter()
        outs = eng.apply_many("stripe", bodies)
        t_engine = time.perf_counter() - t0
        statuses: dict[str, int] = {}
        for o in outs:
            statuses[o.status] = statuses.get(o.status, 0) + 1
        with eng.store.read() as tx:
            revised = sum(1 for _ in tx.revision_rows())
            rows = list(tx.event_rows())

    # The storage limit: the rows the engine wrote (same columns, same body bytes) into the
    # same table with the same indexes, BATCH per transaction, by sqlite3 alone: one
    # executemany of the INSERT per transaction.
    conn = _raw_db(folder, "raw.db")
    insert = _insert_sql()
    t0 = time.perf_counter()
    for i in range(0, len(rows), BATCH):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(insert, rows[i : i + BATCH])
        conn.execute("COMMIT")
    t_raw = time.perf_counter() - t0
    conn.close()
    engine_rate, raw_rate = _rate(n, t_engine), _rate(n, t_raw)
    return [
        {
            "name": f"engine apply_many ({n:,} deliveries, {n_inv:,} invoices, {BATCH:,} per"
            " transaction)",
            "value": engine_rate,
            "unit": "deliveries/s",
            "peers": {"raw sqlite3 executemany, same rows": raw_rate},
            "ratios": {"engine / raw (target >= 0.35)": engine_rate / raw_rate},
            "outcomes": statuses,
            "revisions": revised,
        }
    ]


# ----------------------------------------------------------------------- one at a time


def bench_latency(quick: bool, folder: str) -> list[Row]:
    """apply, one durable (WAL, synchronous=NORMAL) transaction per delivery, vs sqlite3
    inserting the same event rows one transaction each."""
    n = 1_000 if quick else 10_000
    bodies = list(stripe_stream(n, max(1, n // 10), seed=2))
    path = _fresh_db(folder, "latency.db")
    times: list[float] = []
    with Engine(path) as eng:
        for body in bodies:
            t0 = time.perf_counter()
            eng.apply("stripe", body)
            times.append(time.perf_counter() - t0)
        with eng.store.read() as tx:
            rows = list(tx.event_rows())
            invoices = {r.invoice_id: r for r in tx.invoice_rows()}
            changes = {c.cause_seq: c for page in tx.feed.pages() for c in page}
    raw = _raw_latency(folder, rows)
    same = _raw_statements(folder, rows, invoices, changes)
    p50, p99 = _percentiles(times)
    return [
        {
            "name": "engine apply p50 (one transaction each)",
            "value": p50 * 1e6,
            "unit": "µs",
            "peers": {
                "raw sqlite3 insert+commit of the same row, p50": raw[0] * 1e6,
                "raw sqlite3, the engine's statements for it, p50": same[0] * 1e6,
            },
            "ratios": {"p50 / 60 µs target": p50 / 60e-6},
        },
        {
            "name": "engine apply p99 (one transaction each)",
            "value": p99 * 1e6,
            "unit": "µs",
            "peers": {
                "raw sqlite3 insert+commit of the same row, p99": raw[1] * 1e6,
                "raw sqlite3, the engine's statements for it, p99": same[1] * 1e6,
            },
            "ratios": {"p99 / 1 ms target": p99 / 1e-3},
        },
    ]


def _percentiles(times: list[float]) -> tuple[float, float]:
    times = sorted(times)
    return times[len(times) // 2], times[int(len(times) * 0.99)]


def _raw_latency(folder: str, rows: list[EventRow]) -> tuple[float, float]:
    """p50, p99 of sqlite3 alone writing each row in its own transaction, into the same
    table and indexes: what one durable delivery costs the storage."""
    conn = _raw_db(folder, "raw_latency.db")
    insert = _insert_sql()
    times = []
    for row in rows:
        t0 = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(insert, row)
        conn.execute("COMMIT")
        times.append(time.perf_counter() - t0)
    conn.close()
    return _percentiles(times)


def _raw_statements(
    folder: str,
    rows: list[EventRow],
    invoices: Mapping[Any, Any],
    changes: Mapping[Any, Any],
) -> tuple[float, float]:
    """p50, p99 of sqlite3 alone running, per delivery, the statements the engine runs for
    it (same tables, same rows): take the write lock, number it, look its event and invoice
    up, insert the event, upsert the invoice, and when its state moved, read the feed's head
    and insert the change; commit. The floor of one durable ``apply`` in this store."""
    conn = _raw_db(folder, "raw_statements.db")
    insert = _insert_sql()
    upsert = qmark(UPSERT_INVOICE)  # the engine's own statement
    change = f"INSERT INTO changes VALUES ({', '.join('?' * 12)})"
    times = []
    for row in rows:
        inv, moved = invoices.get(row.invoice_id), changes.get(row.seq)
        t0 = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM events").fetchone()
        conn.execute(
            "SELECT seq, outcome, retryable FROM events"
            " WHERE provider = ? AND event_id = ? AND in_fold = 1",
            (row.provider, row.event_id),
        ).fetchone()
        conn.execute(
            "SELECT * FROM invoices WHERE provider = ? AND invoice_id = ?",
            (row.provider, row.invoice_id),
        ).fetchone()
        conn.execute(insert, row)
        if inv is not None:
            conn.execute(upsert, inv)
        if moved is not None:
            conn.execute("SELECT MAX(cursor) FROM changes").fetchone()
            conn.execute(change, moved)
        conn.execute("COMMIT")
        times.append(time.perf_counter() - t0)
    conn.close()
    return _percentiles(times)


# ------------------------------------------------------------------------------ memory


def _memory_child(db: str, n: int, n_inv: int) -> None:
    """In a subprocess: stream ``n`` deliveries through iter_apply; print peak RSS in MB."""
    with Engine(db) as eng:
        count = 0
        for _ in eng.iter_apply("stripe", stripe_stream(n, n_inv, seed=3)):
            count += 1
    # On Linux ru_maxrss survives exec: it would report the benchmark parent's own peak (the
    # batch run's 200,000 bodies). The kernel's VmHWM is this process image's own peak.
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                peak_kb = int(line.split()[1])
    print(json.dumps({"deliveries": count, "peak_mb": peak_kb / 1024}))


def bench_memory(quick: bool, folder: str) -> list[Row]:
    n = 50_000 if quick else 1_000_000
    sizes = (n // 50, n // 5)
    peaks: dict[int, float] = {}
    for n_inv in sizes:
        db = _fresh_db(folder, f"memory_{n_inv}.db")
        out = subprocess.run(
            [sys.executable, __file__, "--memory-child", db, str(n), str(n_inv)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        peaks[n_inv] = json.loads(out)["peak_mb"]
        os.remove(db)
    small, large = peaks[sizes[0]], peaks[sizes[1]]
    return [
        {
            "name": f"peak RSS, {n:,} deliveries over {sizes[1]:,} invoices",
            "value": large,
            "unit": "MB",
            "peers": {f"same stream over {sizes[0]:,} invoices": small},
            "ratios": {
                "peak / 150 MB target": large / 150,
                f"growth with 10x invoices ({sizes[0]:,} -> {sizes[1]:,})": large / small,
            },
        }
    ]


# ---------------------------------------------------------------------------- late events


def _late_body(event_id: str, invoice: str, created: int, etype: str, status: str) -> bytes:
    doc = {
        "id": event_id,
        "type": etype,
        "created": created,
        "data": {"object": {"id": invoice, "status": status}},
    }
    return json.dumps(doc).encode()


def bench_late(quick: bool, folder: str) -> list[Row]:
    """The cost of one out-of-order arrival against the length of the invoice's history."""
    lengths = (10, 100, 1000) if quick else (10, 100, 1000, 10_000)
    background = 2_000 if quick else 50_000
    path = _fresh_db(folder, "late.db")
    peers: dict[str, float] = {}
    per_event: dict[str, float] = {}
    t = 1_704_067_200
    with Engine(path) as eng:
        eng.apply_many("stripe", stripe_stream(background, background // 10, seed=4))

        def history(iid: str, k: int) -> Iterator[bytes]:
            yield _late_body(f"h_{iid}_c", iid, t, "invoice.created", "draft")
            yield _late_body(f"h_{iid}_f", iid, t + 1, "invoice.finalized", "open")
            for i in range(k - 2):
                yield _late_body(f"h_{iid}_{i}", iid, t + 10 + i, "invoice.sent", "open")

        for k in lengths:
            iid = f"late_{k}"
            eng.apply_many("stripe", history(iid, k))
            tries = []
            for j in range(5):  # each arrives before everything but the creation
                late = _late_body(f"late_{k}_{j}", iid, t + 5, "invoice.overdue", "open")
                t0 = time.perf_counter()
                out = eng.apply("stripe", late)
                tries.append(time.perf_counter() - t0)
                assert out.status == "unchanged", out
            in_order = _late_body(f"tail_{k}", iid, t + 10 + k, "invoice.sent", "open")
            t0 = time.perf_counter()
            eng.apply("stripe", in_order)
            peers[f"history {k}: in order"] = (time.perf_counter() - t0) * 1e3
            cost = statistics.median(tries)
            peers[f"history {k}: late"] = cost * 1e3
            per_event[f"history {k}"] = cost / (k + 1) * 1e6
        # A late event re-reads one invoice's events through an index, never the whole table.
        assert isinstance(eng.store, SqliteStore)
        plan_text = "; ".join(eng.store.explain_fold())
    return [
        {
            "name": f"late event (table holds {background:,} other deliveries)",
            "value": peers[f"history {lengths[-1]}: late"],
            "unit": "ms",
            "peers": peers,
            "ratios": {f"µs per event of history, {k}": v for k, v in per_event.items()},
            "query_plan": plan_text,
        }
    ]


# -------------------------------------------------------------------------------- startup


def bench_startup(quick: bool) -> list[Row]:
    """Wall time of a CLI invocation a user types, against a bare ``python -c pass``."""
    exe = Path(sys.executable).with_name("invoice-engine")
    cmd = [str(exe), "check", "stripe", "finalize"]
    if subprocess.run([*cmd[:2], "--help"], capture_output=True).returncode != 0:
        cmd = [str(exe), "charts"]  # `check` not available in this checkout

    def timed(argv: list[str]) -> tuple[float, float]:
        """(wall, CPU) seconds; CPU time does not depend on what else the machine runs."""
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, argv
        return time.perf_counter() - t0, usage.ru_utime + usage.ru_stime

    repeat = 3 if quick else 10
    runs = [timed(cmd) for _ in range(repeat)]
    cli = statistics.median(w for w, _ in runs)
    cli_cpu = statistics.median(c for _, c in runs)
    bare = statistics.median(timed([sys.executable, "-c", "pass"])[0] for _ in range(repeat))
    return [
        {
            "name": "CLI start-up: " + " ".join(["invoice-engine", *cmd[1:]]),
            "value": cli * 1e3,
            "unit": "ms",
            "peers": {"its CPU time (user+sys)": cli_cpu * 1e3, "python -c pass": bare * 1e3},
            "ratios": {"wall / 250 ms target": cli / 0.25},
        }
    ]


# --------------------------------------------------------------------------------- server


def _bench_server(quick: bool, folder: str) -> list[Row]:
    """``invoice-engine serve`` vs a hand-written endpoint under wrk (see server.py)."""
    from server import bench_server  # imported here: server.py imports this module's table

    return bench_server(quick, folder)


# --------------------------------------------------------------------------------- report


# A ratio's target is in its name: "dict / chart (target <= 3)", or "p50 / 100 µs target"
# (the figure over its target: at most 1).
_TARGET = re.compile(r"\(target ([<>]=) ([0-9.]+)\)|( target)$")


def target_of(ratio: str) -> tuple[str, float] | None:
    """The target a ratio's name states, as (``"<="`` or ``">="``, bound); ``None``: none."""
    m = _TARGET.search(ratio)
    if m is None:
        return None
    if m.group(3):
        return ("<=", 1.0)
    return (m.group(1), float(m.group(2)))


def missed(ratio: str, value: float) -> str | None:
    """``"target <= 3"`` when ``value`` misses the target in the ratio's name, else ``None``."""
    target = target_of(ratio)
    if target is None:
        return None
    op, bound = target
    ok = value <= bound if op == "<=" else value >= bound
    return None if ok else f"target {op} {bound:g}"


def flag_targets(rows: list[Row]) -> list[str]:
    """Mark each row's missed targets (``row["missed"]``: ratio -> target) and list them."""
    out = []
    for r in rows:
        misses = {k: t for k, v in r["ratios"].items() if (t := missed(k, v)) is not None}
        r["missed"] = misses
        out += [
            f"{r['name']}: {k} = {r['ratios'][k]:.2f}" + ("" if t in k else f" ({t})")
            for k, t in misses.items()
        ]
    return out


def _fmt(value: float, unit: str) -> str:
    if unit.endswith("/s"):
        return f"{value:,.0f} {unit}"
    return f"{value:,.1f} {unit}"


def table(rows: list[Row]) -> str:
    """A Markdown table: each figure beside its peers and ratios."""
    lines = ["| measurement | value | peers | ratios |", "|---|---|---|---|"]
    for r in rows:
        peers = "; ".join(f"{k}: {_fmt(v, r['unit'])}" for k, v in r["peers"].items())
        ratios = "; ".join(
            f"{k}: {v:.2f}" + (f" ✗ {t}" if (t := missed(k, v)) else "")
            for k, v in r["ratios"].items()
        )
        lines.append(f"| {r['name']} | {_fmt(r['value'], r['unit'])} | {peers} | {ratios} |")
    return "\n".join(lines)


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "sqlite": sqlite3.sqlite_version}
    for pkg in ("invoice-engine", "transitions", "pydantic", "sqlite-utils", "click", "PyYAML",
                "psycopg", "psycopg-pool"):  # fmt: skip
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--out", type=Path, default=None, help="write the JSON results here")
    parser.add_argument("--only", default=None, help="comma-separated: validator,batch,...")
    parser.add_argument("--memory-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        db, n, n_inv = args.memory_child
        _memory_child(db, int(n), int(n_inv))
        return 0
    wanted = set(args.only.split(",")) if args.only else None
    load_before = os.getloadavg()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="invoice-bench-") as folder:
        suites: dict[str, Callable[[], list[Row]]] = {
            "validator": lambda: bench_validator(args.quick),
            "batch": lambda: bench_batch(args.quick, folder),
            "latency": lambda: bench_latency(args.quick, folder),
            "memory": lambda: bench_memory(args.quick, folder),
            "late": lambda: bench_late(args.quick, folder),
            "startup": lambda: bench_startup(args.quick),
            "workers": lambda: bench_workers(args.quick, folder),
            "server": lambda: _bench_server(args.quick, folder),
        }
        for name, suite in suites.items():
            if wanted is None or name in wanted:
                t0 = time.perf_counter()
                rows += suite()
                print(f"[{name}: {time.perf_counter() - t0:.1f} s]", file=sys.stderr)
    misses = flag_targets(rows)
    print(table(rows))
    if misses:
        why = " (a --quick run: small sizes, a smoke test)" if args.quick else ""
        print(f"\n✗ {len(misses)} missed target{'s' if len(misses) != 1 else ''}{why}:")
        print("\n".join(f"  ✗ {m}" for m in misses))
    busy = max(load_before[0], os.getloadavg()[0])
    if busy > 1:
        print(f"\nnote: load average {busy:.1f} during the run; figures may be pessimistic")
    result = {
        "quick": args.quick,
        "missed_targets": misses,
        "cpus": os.cpu_count(),
        # Other processes on the machine skew every figure; a load above the CPU count
        # means the run shared its cores.
        "load_average": {"before": load_before[0], "after": os.getloadavg()[0]},
        "platform": platform.platform(),
        "versions": _versions(),
        "results": rows,
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
