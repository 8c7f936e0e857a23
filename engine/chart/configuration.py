"""A configuration: the active leaves of an invoice's state, one per region.

In a chart without parallel states an invoice is in exactly one leaf (``open.unpaid``), and its
configuration is that leaf. Inside a parallel state every region is active at once, so an
invoice is in one leaf per region: Lago's finalized invoice is in ``finalized.payment.pending``
*and* ``finalized.overdue.no`` *and* ``finalized.dispute.none``.

:class:`Configuration` is a ``str`` whose text is the stable form the database, the CLI and
``--json`` use: the active leaves' full names in chart order, joined by ``+``
(``finalized.payment.pending+finalized.overdue.no+finalized.dispute.none``). A one-leaf
configuration's text is the leaf's name, so databases written before parallel states existed
read as they are, and a configuration compares equal to its text. State names may not contain
``+`` or ``.``, so the text splits back into its leaves unambiguously.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["SEPARATOR", "Configuration"]

#: What joins the leaves of a configuration's text form.
SEPARATOR = "+"


class Configuration(str):
    """The active leaves of one invoice, as text (``draft``, or ``a.x+a.y`` in a parallel
    state). Build one with :meth:`of`; a chart gives them in chart order
    (:meth:`Chart.configuration <engine.chart.Chart.configuration>` parses and checks text)."""

    __slots__ = ()

    def __new__(cls, text: str) -> Configuration:
        if not isinstance(text, str):  # str() of a list would make a "configuration" of it
            raise TypeError(
                f"a configuration is text, its leaves joined by '+'; got {text!r} (for a list "
                "of leaves, use Configuration.of)"
            )
        return super().__new__(cls, text)

    @classmethod
    def of(cls, leaves: Iterable[str]) -> Configuration:
        """The configuration of ``leaves``, in the order given (a chart's are in chart order)."""
        return cls(SEPARATOR.join(leaves))

    @property
    def leaves(self) -> tuple[str, ...]:
        """The active leaves' full names (one, outside parallel states)."""
        return tuple(self.split(SEPARATOR))

    def within(self, state: str) -> bool:
        """Whether some active leaf is ``state`` or nested in it: a configuration of Lago's is
        within ``finalized``, ``finalized.payment`` and ``finalized.payment.pending`` alike."""
        prefix = state + "."
        return any(leaf == state or leaf.startswith(prefix) for leaf in self.split(SEPARATOR))
