"""What the receiver counts, in the Prometheus text format (``GET /metrics``).

Counters and one latency histogram, kept in plain dictionaries: the receiver's request handlers
run on one event loop, so they update them without locks; the writer thread counts group
commits under a lock of its own.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable

__all__ = ["Metrics"]

#: Upper bounds (seconds) of the request-latency histogram's buckets.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Upper bounds of the histogram of deliveries per group commit.
GROUP_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


def _label(value: str) -> str:
    """A label value, escaped as the text format asks (backslash, quote, new line)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**labels: str) -> str:
    return ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())


class _Histogram:
    def __init__(self, bounds: Iterable[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * len(self.bounds)
        self.total = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        for n, bound in enumerate(self.bounds):
            if value <= bound:
                self.counts[n] += 1
                break
        self.total += 1
        self.sum += value

    def lines(self, name: str, labels: str) -> Iterable[str]:
        sep = "," if labels else ""
        running = 0
        for bound, count in zip(self.bounds, self.counts, strict=True):
            running += count
            yield f'{name}_bucket{{{labels}{sep}le="{bound:g}"}} {running}'
        yield f'{name}_bucket{{{labels}{sep}le="+Inf"}} {self.total}'
        yield f"{name}_sum{{{labels}}} {self.sum:.6f}" if labels else f"{name}_sum {self.sum:.6f}"
        yield f"{name}_count{{{labels}}} {self.total}" if labels else f"{name}_count {self.total}"


class Metrics:
    """The receiver's counters, rendered on demand."""

    def __init__(self) -> None:
        self.deliveries: Counter[tuple[str, str, int]] = Counter()
        self.refused: Counter[tuple[str, str, int]] = Counter()
        self.signature_failures: Counter[tuple[str, str]] = Counter()
        self.latency: dict[str, _Histogram] = {}
        self._groups = _Histogram(GROUP_BUCKETS)
        self._groups_lock = threading.Lock()

    def delivery(self, provider: str, outcome: str, code: int, seconds: float) -> None:
        """A delivery the engine decided (whatever its outcome), answered with ``code``."""
        self.deliveries[provider, outcome, code] += 1
        self._observe(provider, seconds)

    def refusal(self, provider: str, error: str, code: int, seconds: float) -> None:
        """A request answered without recording anything (bad signature, too large, …)."""
        self.refused[provider, error, code] += 1
        self._observe(provider, seconds)

    def signature_failure(self, provider: str, reason: str) -> None:
        self.signature_failures[provider, reason] += 1

    def group(self, size: int) -> None:
        """One write transaction of ``size`` deliveries (called from the writer thread)."""
        with self._groups_lock:
            self._groups.observe(size)

    def _observe(self, provider: str, seconds: float) -> None:
        hist = self.latency.get(provider)
        if hist is None:
            hist = self.latency[provider] = _Histogram(LATENCY_BUCKETS)
        hist.observe(seconds)

    def render(self) -> str:
        """Every metric in the Prometheus text exposition format (version 0.0.4)."""
        counters = (
            ("deliveries_total", "Deliveries recorded, by outcome and answer.",
             ("provider", "outcome", "code"), self.deliveries),
            ("refused_total", "Requests answered without recording anything.",
             ("provider", "error", "code"), self.refused),
            ("signature_failures_total", "Deliveries whose signature failed.",
             ("provider", "reason"), self.signature_failures),
        )  # fmt: skip
        out: list[str] = []
        for name, help_text, names, counts in counters:
            out += [f"# HELP invoice_engine_{name} {help_text}",
                    f"# TYPE invoice_engine_{name} counter"]  # fmt: skip
            for key, n in sorted(counts.items()):
                labels = _labels(**{k: str(v) for k, v in zip(names, key, strict=True)})
                out.append(f"invoice_engine_{name}{{{labels}}} {n}")
        out += [
            "# HELP invoice_engine_request_seconds Time from request to answer, by provider.",
            "# TYPE invoice_engine_request_seconds histogram",
        ]
        for provider, hist in sorted(self.latency.items()):
            out += hist.lines("invoice_engine_request_seconds", _labels(provider=provider))
        out += [
            "# HELP invoice_engine_commit_deliveries Deliveries per write transaction.",
            "# TYPE invoice_engine_commit_deliveries histogram",
        ]
        with self._groups_lock:
            out += self._groups.lines("invoice_engine_commit_deliveries", "")
        return "\n".join(out) + "\n"
