"""Printing for the operator, shared by every command module (kept apart from ``main`` so
that the command modules ``main`` registers do not import it back)."""

from __future__ import annotations

import click

from engine.visible import visible


def say(text: str) -> None:
    """Print for the operator: names and messages from runbooks, journals and other hosts
    may hold escape sequences, shown as ``\\x1b`` rather than obeyed by the terminal."""
    click.echo(visible(text))
