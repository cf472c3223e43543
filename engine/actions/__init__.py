"""The built-in actions. Importing this package registers every one of them."""

from engine.actions import assert_, pause, set_fact, shell, sql, wait_for  # noqa: F401
