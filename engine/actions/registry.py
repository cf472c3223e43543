"""Every built-in action by name; its module is imported the first time the action is asked for.

A runbook that uses ``shell`` and ``sql`` does not import the restore, verify or binlog actions
(and the dump parser, PyMySQL, ... they import): start-up pays for what the runbook uses.
Validation (:func:`declaration`) does not even import the actions a runbook uses when all it
needs of them is their params schema and capabilities, kept in ``declarations.json``.
``tests/unit/test_registry.py`` proves the table below names every registered action.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

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


#: what validation reads of each action without importing it, written from the classes by
#: ``python -m engine.language.schema`` (``tests/unit/test_schema_files.py`` checks it is current)
DECLARATIONS_FILE = Path(__file__).with_name("declarations.json")
#: class methods validation calls; an action that defines one of its own is imported to validate
STATIC_HOOKS = ("static_problems", "file_problems", "local_names", "var_reads")
_DECLARED: dict[str, Any] = {}
_STAND_INS: dict[str, type[Action]] = {}


def declarations() -> dict[str, Any]:
    """Every action's params schema, ``free_form`` and ``condition_params``, and which static
    hooks of its own it has (``own``: then validation imports it). A schema that would not come
    back from JSON as it is (a tuple) counts as its own too."""
    load_all()
    out: dict[str, Any] = {}
    for name in action_names():
        cls = REGISTRY[name]
        own = [h for h in STATIC_HOOKS if getattr(cls, h).__func__ is not getattr(Action, h).__func__]
        if json.loads(json.dumps(cls.params_schema)) != cls.params_schema:
            own.append("params_schema")
        out[name] = {"params_schema": cls.params_schema, "free_form": cls.free_form,
                     "condition_params": list(cls.condition_params), "own": own}
    return out


def declaration(name: str) -> type[Action]:
    """What validation needs of action ``name``: the class itself when it is imported already
    or has static checks of its own; otherwise a stand-in with the class's params schema and
    capabilities from ``declarations.json`` and the base class's (empty) static checks, so that
    validating a ``restore`` step does not import the dump reader. Run time uses :func:`get_action`."""
    cls = _REGISTERED.get(name)
    if cls is not None:
        return cls
    if name not in _STAND_INS:
        if not _DECLARED:
            _DECLARED.update(json.loads(DECLARATIONS_FILE.read_text()))
        found = _DECLARED.get(name)
        if found is None or found["own"]:
            return REGISTRY[name]
        _STAND_INS[name] = type(f"Declared_{name}", (Action,), {
            "name": name, "params_schema": found["params_schema"], "free_form": found["free_form"],
            "condition_params": tuple(found["condition_params"]), "__doc__": f"the declaration of {name} (validation only)"})
    return _STAND_INS[name]
