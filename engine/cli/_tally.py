"""What a run of deliveries finally came to: outcomes as they stand after the run, not as first
decided.

A late delivery can re-fold its invoice and revise the outcome of one applied earlier in the
same run (a payment first ``rejected`` becomes ``applied`` once the missing creation arrives).
So ``apply`` and ``demo`` count from the database after the run: :class:`RunTally` remembers
only the run's ``seq`` ranges and where its line numbers skip (blank lines), and reads the
outcomes back in chunks, so memory stays flat however long the stream.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..models import Outcome

if TYPE_CHECKING:
    from ..runtime.engine import Engine

__all__ = ["PROBLEMS", "Final", "RunTally"]

#: The outcomes that ``--strict`` fails on, and that summaries list by line.
PROBLEMS = ("rejected", "invalid")
_CHUNK = 1_000  # outcomes read back per query (fewer than a batch: not the peak)


@dataclass
class Final:
    """A run's outcomes as they stand now."""

    counts: Counter[str] = field(default_factory=Counter)
    #: How many of the run's outcomes later deliveries revised (``Outcome.revisions > 0``).
    revised: int = 0
    #: How many outcomes (of this run or earlier ones) the run's late deliveries revised.
    caused: int = 0
    #: The first ``shown`` rejected or invalid deliveries, with their line numbers.
    problems: list[tuple[int, Outcome]] = field(default_factory=list)
    #: How many more there were beyond ``problems``.
    more: int = 0

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def failed(self) -> int:
        """Deliveries that ended rejected or invalid."""
        return sum(self.counts[s] for s in PROBLEMS)


class RunTally:
    """The deliveries of one run, by ``seq``, paired with the lines they came from."""

    def __init__(self) -> None:
        self.ranges: list[list[int]] = []  # [first, last] seq ranges, ascending
        self._seqs: list[int] = []  # where line - seq changes (a blank line, a new range) …
        self._offsets: list[int] = []  # … and to what
        self._untracked: list[tuple[int, Outcome]] = []  # outcomes without a seq (none today)

    def add(self, line: int, outcome: Outcome) -> None:
        """Remember one delivery of the run (in the order they were applied)."""
        seq = outcome.seq
        if seq is None:
            self._untracked.append((line, outcome))
            return
        if self.ranges and self.ranges[-1][1] + 1 == seq:
            self.ranges[-1][1] = seq
        else:  # the first, or another writer's deliveries came in between
            self.ranges.append([seq, seq])
        if not self._offsets or self._offsets[-1] != line - seq:
            self._seqs.append(seq)
            self._offsets.append(line - seq)

    def line_of(self, seq: int) -> int:
        """The line number of the run's delivery ``seq``."""
        return seq + self._offsets[bisect_right(self._seqs, seq) - 1]

    def outcomes(self, eng: Engine) -> Iterator[tuple[int, Outcome]]:
        """Each delivery's line and outcome as it stands now, in order, read in chunks."""
        for first, last in self.ranges:
            for start in range(first, last + 1, _CHUNK):
                for o in eng.outcomes(start, min(start + _CHUNK - 1, last)):
                    assert o.seq is not None
                    yield self.line_of(o.seq), o
        yield from self._untracked

    def final(
        self,
        eng: Engine,
        *,
        shown: int,
        on_revised: Callable[[int, Outcome], None] | None = None,
    ) -> Final:
        """Count the run's final outcomes; keep the first ``shown`` problems; call
        ``on_revised`` with each outcome a later delivery revised."""
        result = Final()
        for line, o in self.outcomes(eng):
            result.counts[o.status] += 1
            result.caused += o.caused_revisions
            if o.revisions:
                result.revised += 1
                if on_revised is not None:
                    on_revised(line, o)
            if o.status in PROBLEMS:
                if len(result.problems) < shown:
                    result.problems.append((line, o))
                else:
                    result.more += 1
        return result
