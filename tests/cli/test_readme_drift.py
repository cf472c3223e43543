"""The README documents every built-in action and every command: a new one cannot ship unseen."""

from __future__ import annotations

import re
from pathlib import Path

import click

from engine.actions.registry import action_names
from engine.cli.main import main

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def _section(title: str) -> str:
    start = README.index(title)
    nxt = re.search(r"^#{2,3} ", README[start + len(title):], re.M)
    return README[start:start + len(title) + (nxt.start() if nxt else len(README))]


def test_every_action_is_in_the_readme_actions_table() -> None:
    table = _section("### Actions")
    rows = {m for line in table.splitlines() if line.startswith("| `") for m in re.findall(r"`([a-z_]+)`", line.split("|")[1])}
    missing = [a for a in action_names() if a not in rows]
    assert not missing, f"actions missing from the README's Actions table: {missing}"


def _commands(group: click.Group, prefix: str = "runbook") -> list[str]:
    out = []
    for name, cmd in sorted(group.commands.items()):
        if cmd.hidden:
            continue
        out.append(f"{prefix} {name}")
        if isinstance(cmd, click.Group):
            out += _commands(cmd, f"{prefix} {name}")
    return out


def test_every_command_is_in_the_readme_commands_block() -> None:
    block = _section("## Commands")
    lines = [re.sub(r"\s+", " ", ln) for ln in block.splitlines()]
    missing = []
    for cmd in _commands(main):
        head, _, sub = cmd.rpartition(" ")
        # a group's subcommands are written as `runbook snapshots list|drop ...`
        found = any(ln.startswith(cmd + " ") or ln == cmd for ln in lines) or any(
            ln.startswith(head + " ") and sub in ln.split(" ")[2].split("|") for ln in lines if head.count(" ") >= 1
            and len(ln.split(" ")) > 2)
        if not found:
            missing.append(cmd)
    assert not missing, f"commands missing from the README's Commands block: {missing}"


def test_every_lab_subcommand_is_documented() -> None:
    choices = main.commands["lab"].params[0].type.choices  # type: ignore[attr-defined]
    assert "runbook lab " + "|".join(choices) in README
