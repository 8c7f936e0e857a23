"""The runtime: a delivery in, a decision recorded.

:mod:`.verify` checks a delivery's signature on its raw bytes, as its chart's ``signature:``
says, with secrets from :class:`~engine.Secrets`; :mod:`.delivery` reads bytes and headers
into an :class:`~engine.Event` (outside any lock; :mod:`._receive` does it per delivery,
through the chart's compiled reader in :mod:`._reader` when the delivery is plainly good),
:mod:`.decide` holds the rules as a pure function, :mod:`.fold` folds an invoice's stored
events through them, and :mod:`.engine` drives it all over a :mod:`engine.store`
(:mod:`._batch` is its write path).
"""
