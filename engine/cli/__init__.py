"""``invoice-engine``: a thin click shell over the library.

Each module below adds its commands to :data:`main`; importing them is what registers them.
"""

from . import (
    _charts,  # noqa: F401  (registers charts, show, lint)
    _check,  # noqa: F401  (registers schema, check)
    _copy,  # noqa: F401  (registers copy)
    _diagram,  # noqa: F401  (registers diagram)
    _feed,  # noqa: F401  (registers changes, consume)
    _read,  # noqa: F401  (registers state, history, replay)
    _run,  # noqa: F401  (registers apply, demo)
    _serve,  # noqa: F401  (registers serve)
    _views,  # noqa: F401  (registers invoices, dead-letters, drift)
)
from ._base import main

__all__ = ["main"]
