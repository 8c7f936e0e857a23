"""Persistence: the only place SQL is written. :mod:`.sqlite` is the embedded default."""
