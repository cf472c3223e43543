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


def test_validating_a_restore_step_does_not_import_the_restore_action() -> None:
    # its params schema and capabilities are declared (declarations.json): validation needs no more
    code = ("import sys; from engine.language.loader import load_runbook; "
            "rb = load_runbook('runbooks/emergency.yml'); assert any(s.action == 'restore' for st in rb.runbook.stages for s in st.steps); "
            "print(sorted(m for m in sys.modules if m.startswith(('engine.actions.restore', 'engine.actions.snapshot', 'engine.mysql.dump'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=__import__("pathlib").Path(__file__).resolve().parents[2]).stdout
    assert out.strip() == "[]", out


def test_a_declaration_stands_in_only_for_an_action_without_static_checks_of_its_own() -> None:
    from engine.actions.base import Action
    from engine.actions.registry import STATIC_HOOKS, declaration, declarations

    for name, found in declarations().items():
        cls = REGISTRY[name]
        decl = declaration(name)  # all imported by now: the class itself
        assert decl is cls
        own = [h for h in STATIC_HOOKS if getattr(cls, h).__func__ is not getattr(Action, h).__func__]
        assert found["own"] == own, name
        assert (found["params_schema"], found["free_form"], tuple(found["condition_params"])) == (
            cls.params_schema, cls.free_form, cls.condition_params), name


def test_every_run_key_names_an_action_that_can_be_the_run_channel() -> None:
    from engine.actions.registry import RUN_KEYS

    for key, action in RUN_KEYS.items():
        cls = REGISTRY[action]
        assert cls.channel_message, f"runbook key {key!r}: {action} declares no channel_message"
        assert cls.channel_message in cls.params_schema["properties"], key
