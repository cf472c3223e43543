"""Every built-in action by name; its module is imported the first time the action is asked for.

A runbook that uses ``shell`` and ``sql`` does not import the restore, verify or binlog actions
(and the dump parser, PyMySQL, ... they import): start-up pays for what the runbook uses.
``tests/unit/test_registry.py`` proves the table below names every registered action.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping

from engine.actions.base import REGISTRY as _REGISTERED
from engine.actions.base import Action

#: action name -> the module whose import registers it
MODULES: dict[str, str] = {
    "assert": "engine.actions.assert_",
    "binlog_find": "engine.actions.binlog_find",
    "binlog_flashback": "engine.actions.binlog_flashback",
    "binlog_replay": "engine.actions.binlog_replay",
    "disk_space": "engine.actions.disk_space",
    "fail": "engine.actions.assert_",
    "innodb_recovery": "engine.actions.innodb_recovery",
    "mysql_facts": "engine.actions.mysql_facts",
    "mysql_service": "engine.actions.mysql_service",
    "notify": "engine.actions.notify",
    "pause": "engine.actions.pause",
    "replication": "engine.actions.replication",
    "restore": "engine.actions.restore",
    "resume_writes": "engine.actions.resume_writes",
    "set_fact": "engine.actions.set_fact",
    "shell": "engine.actions.shell",
    "snapshot": "engine.actions.snapshot",
    "sql": "engine.actions.sql",
    "stop_writes": "engine.actions.stop_writes",
    "verify": "engine.actions.verify",
    "wait_for": "engine.actions.wait_for",
}


#: runbook-level keys that make an action the run's channel: key -> the action whose arguments
#: (but its message) the key takes. The action declares ``channel_message`` (the argument that
#: carries the line); the engine gives it each stage's start and end and the run's final line
#: (engine.run.channel). tests/unit/test_registry.py proves each one declares it.
RUN_KEYS: dict[str, str] = {
    "notify": "notify",
}


class _Registry(Mapping[str, type[Action]]):
    """Name -> action class, importing the action's module on first use."""

    def __getitem__(self, name: str) -> type[Action]:
        cls = _REGISTERED.get(name)
        if cls is None:
            module = MODULES[name]  # KeyError for an unknown name, as a dict would
            importlib.import_module(module)
            cls = _REGISTERED[name]
        return cls

    def __contains__(self, name: object) -> bool:
        return name in MODULES

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(MODULES))

    def __len__(self) -> int:
        return len(MODULES)


REGISTRY: Mapping[str, type[Action]] = _Registry()


def action_names() -> list[str]:
    return sorted(MODULES)


def get_action(name: str) -> type[Action]:
    return REGISTRY[name]


def load_all() -> None:
    """Import every action module (the JSON Schema for editors, the docs' drift tests)."""
    for module in sorted(set(MODULES.values())):
        importlib.import_module(module)
