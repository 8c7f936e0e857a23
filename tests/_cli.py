"""Reading what the CLI prints: ``apply --json``'s JSON lines."""

from __future__ import annotations

import json
from typing import Any, NamedTuple


class ApplyJson(NamedTuple):
    """``apply --json`` parsed: its records by kind, and each line's final outcome."""

    decided: list[dict[str, Any]]  #: ``kind: outcome``, one per delivery, in line order
    revised: list[dict[str, Any]]  #: ``kind: revised``, after the run
    summary: dict[str, Any]  #: ``kind: summary``, the last line

    def final(self) -> dict[int, dict[str, Any]]:
        """Each line's final outcome: its last record."""
        return {r["line"]: r for r in [*self.decided, *self.revised]}


def apply_json(stdout: str | bytes) -> ApplyJson:
    """Parse ``apply --json`` output; every line must be one JSON object, the summary last."""
    text = stdout.decode() if isinstance(stdout, bytes) else stdout
    records = [json.loads(line) for line in text.splitlines()]
    assert records, "no output"
    assert records[-1]["kind"] == "summary", records[-1]
    kinds = [r["kind"] for r in records]
    assert kinds == sorted(kinds, key=["outcome", "revised", "summary"].index), kinds
    return ApplyJson(
        decided=[r for r in records if r["kind"] == "outcome"],
        revised=[r for r in records if r["kind"] == "revised"],
        summary=records[-1],
    )
