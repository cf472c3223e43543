"""The ``restore`` action (a package: plan, index pass, progress table, loader, conversion,
results). Importing it registers the action."""

from engine.actions.restore.action import Restore

__all__ = ["Restore"]
