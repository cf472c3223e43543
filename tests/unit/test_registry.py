"""The action registry imports an action's module only when the action is asked for; its
table of modules names every action there is."""

from __future__ import annotations

import subprocess
import sys

from engine.actions.base import REGISTRY as registered
from engine.actions.registry import MODULES, REGISTRY, action_names, load_all


def test_the_table_names_every_registered_action_and_its_module() -> None:
    load_all()
    assert sorted(registered) == action_names() == sorted(REGISTRY)
    for name, cls in registered.items():
        assert cls.__module__ == MODULES[name] or cls.__module__.startswith(MODULES[name] + "."), name


def test_asking_for_one_action_imports_only_its_module() -> None:
    code = ("import sys; from engine.actions.registry import get_action; get_action('shell'); "
            "print(sorted(m for m in sys.modules if m.startswith('engine.actions.') and m != 'engine.actions.registry'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = eval(out)
    assert "engine.actions.shell" in loaded
    assert not any(m.startswith(("engine.actions.restore", "engine.actions.verify", "engine.actions.snapshot")) for m in loaded), loaded


def test_every_run_key_names_an_action_that_can_be_the_run_channel() -> None:
    from engine.actions.registry import RUN_KEYS

    for key, action in RUN_KEYS.items():
        cls = REGISTRY[action]
        assert cls.channel_message, f"runbook key {key!r}: {action} declares no channel_message"
        assert cls.channel_message in cls.params_schema["properties"], key
