"""The ``verify`` action (see :mod:`engine.actions.verify.action`): foreign-key orphans,
required columns, row counts, chunk checksums, business rules and check suites, read-only."""

from engine.actions.verify.action import Verify

__all__ = ["Verify"]
