"""The ``snapshot`` action (a package: the copy in ``action``, putting it back in ``swap``).
Importing it registers the action."""

from engine.actions.snapshot.action import Snapshot

__all__ = ["Snapshot"]
