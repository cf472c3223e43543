"""JSON Schemas for runbooks and inventories.

The schemas are built here from the action registry (each action carries its own params
schema) and published as files next to this module, so editors can use them through
``# yaml-language-server: $schema=…``. ``python -m engine.language.schema`` rewrites the files; a test
checks that they are up to date.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
RUNBOOK_SCHEMA_FILE = HERE / "runbook.schema.json"
INVENTORY_SCHEMA_FILE = HERE / "inventory.schema.json"
SUITE_SCHEMA_FILE = HERE / "check-suite.schema.json"

DURATION: dict[str, Any] = {
    "description": "seconds, or a duration such as 30s, 5m, 1h30m",
    "anyOf": [{"type": "number", "minimum": 0}, {"type": "string"}],
}
CONDITION: dict[str, Any] = {
    "description": "a Jinja2 expression (without braces), a boolean, or a list of them (all must hold)",
    "anyOf": [{"type": "string"}, {"type": "boolean"}, {"type": "array", "items": {"type": ["string", "boolean"]}}],
}
TAGS: dict[str, Any] = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
IDENT = {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"}

STEP_KEYWORDS: dict[str, Any] = {
    "name": {"type": "string", "minLength": 1, "description": "unique in its stage"},
    "when": CONDITION,
    "register": {**IDENT, "description": "store the result in this variable"},
    "loop": {"description": "a list, or a template giving one; each element is `item`", "anyOf": [{"type": "array"}, {"type": "string"}]},
    "loop_control": {"type": "object", "properties": {"loop_var": IDENT}, "additionalProperties": False},
    "retries": {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "string"}], "description": "with until: attempts after the first"},
    "delay": DURATION,
    "until": CONDITION,
    "failed_when": CONDITION,
    "changed_when": CONDITION,
    "ignore_errors": {"type": ["boolean", "string"]},
    "timeout": DURATION,
    "tags": TAGS,
    "run_once": {"type": "boolean"},
    "unless": {
        "description": "probe: true means the step is already done (sql: first column of first row; shell: exit 0)",
        "anyOf": [
            {"type": "string"},
            {"type": "object", "properties": {"sql": {"type": "string"}}, "required": ["sql"], "additionalProperties": False},
            {"type": "object", "properties": {"shell": {"type": "string"}}, "required": ["shell"], "additionalProperties": False},
        ],
    },
    "idempotent": {"type": "boolean", "description": "safe to run again: resume may re-run it when a crash left it in doubt"},
    "creates": {"type": "string", "description": "a path on the host: when it exists, the step is done"},
    "undo": {"type": "object", "description": "an action mapping run on rollback, e.g. {sql: 'DROP TABLE t'}"},
}

STAGE_KEYWORDS: dict[str, Any] = {
    "name": {"type": "string", "minLength": 1, "description": "unique in the runbook"},
    "budget": DURATION,
    "confirm": {"type": "string", "description": "typed confirmation before the stage (skipped with --yes)"},
    "on_failure": {"enum": ["abort", "rollback", "continue"]},
    "when": CONDITION,
    "targets": {"type": "string"},
    "tags": TAGS,
    "steps": {"type": "array", "items": {"$ref": "#/$defs/step"}},
    "import": {"type": "string", "description": "a file whose stages are inserted here"},
}

RUNBOOK_KEYWORDS: dict[str, Any] = {
    "name": {"type": "string", "minLength": 1},
    "description": {"type": "string"},
    "targets": {"type": "string", "description": "inventory host, group or pattern (default: all)"},
    "vars": {"type": "object", "propertyNames": IDENT},
    "budget": DURATION,
    "stages": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/stage"}},
}


def channel_schema(cls: Any) -> dict[str, Any]:
    """The schema of a runbook-level channel key (``notify:``): the action's arguments but the
    message, which the engine writes (each stage's start and end, the final line)."""
    schema = dict(cls.params_schema)
    schema["properties"] = {k: v for k, v in schema.get("properties", {}).items() if k != cls.channel_message}
    required = [k for k in schema.get("required", []) if k != cls.channel_message]
    schema.pop("required", None)
    if required:
        schema["required"] = required
    schema["description"] = (f"the run's incident channel: the arguments of a {cls.name} step but {cls.channel_message}; "
                             "it gets each stage's start and end and the run's final line (failed, interrupted, rolled back too)")
    return schema


def runbook_schema(params: bool = True) -> dict[str, Any]:
    """The runbook's JSON Schema; ``params=False``: each action's params left open ({}),
    the structure only (the loader checks params per action, importing only those used)."""
    from engine.actions.registry import REGISTRY, RUN_KEYS, action_names

    step_props = dict(STEP_KEYWORDS)
    for name in action_names():
        if not params:
            step_props[name] = {}
            continue
        cls = REGISTRY[name]
        schema = dict(cls.params_schema)
        if cls.__doc__:
            schema.setdefault("description", cls.__doc__.strip().splitlines()[0])
        step_props[name] = schema
    top = dict(RUNBOOK_KEYWORDS)
    for key, action in RUN_KEYS.items():
        top[key] = channel_schema(REGISTRY[action]) if params else {}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://runbook-engine.dev/schema/runbook.schema.json",
        "title": "runbook",
        "type": "object",
        "required": ["name", "stages"],
        "properties": top,
        "additionalProperties": False,
        "$defs": {
            "stage": {
                "type": "object",
                "properties": STAGE_KEYWORDS,
                "additionalProperties": False,
            },
            "step": {
                "type": "object",
                "properties": step_props,
                "additionalProperties": False,
            },
        },
    }


HOST_VARS: dict[str, Any] = {
    "type": ["object", "null"],
    "properties": {
        "connection": {"type": "string", "description": "ssh (also paramiko, ansible.builtin.ssh) or local; others are refused on a targeted host"},
        "ansible_connection": {"type": "string"},
        "ansible_host": {"type": "string"},
        "ansible_port": {"type": ["integer", "string"]},
        "ansible_user": {"type": "string"},
        "ansible_group_priority": {"type": ["integer", "string"]},
        "ssh_host": {"type": "string"},
        "ssh_port": {"type": ["integer", "string"]},
        "ssh_user": {"type": "string"},
        "ssh_key": {"type": "string"},
        "ssh_password": {"type": "string"},
        "ssh_host_key_checking": {"enum": ["strict", "accept-new", "off", True, False]},
        "ssh_known_hosts": {"type": "string"},
        "ssh_config": {"type": "string"},
        "mysql_host": {"type": "string"},
        "mysql_port": {"type": ["integer", "string"]},
        "mysql_user": {"type": "string"},
        "mysql_password": {"type": "string"},
        "mysql_socket": {"type": "string"},
        "mysql_option_file": {"type": "string"},
        "mysql_via": {"enum": ["direct", "tunnel"]},
        "mysql_identity": {"type": "string"},
        # the server's process and files, for mysql_service and innodb_recovery
        "datadir": {"type": "string", "description": "the server's datadir on the host"},
        "mysql_error_log": {"type": "string", "description": "the server's error log on the host"},
        "mysql_pid_file": {"type": "string", "description": "the server's pid file on the host"},
        "mysql_start_cmd": {"type": "string", "description": "command that starts the server (no systemd unit)"},
        "mysql_stop_cmd": {"type": "string", "description": "command that stops the server (default: SIGTERM)"},
        "mysql_service_name": {"type": "string", "description": "systemd unit of the server"},
    },
}


def inventory_schema() -> dict[str, Any]:
    group = {
        "type": ["object", "null"],
        "properties": {
            "hosts": {"type": ["object", "string", "null"], "additionalProperties": {"$ref": "#/$defs/hostvars"},
                      "description": "host names (ranges like db[01:20] and host:port allowed) with their variables"},
            "vars": {"$ref": "#/$defs/hostvars"},
            "children": {"type": ["object", "string", "null"], "additionalProperties": {"$ref": "#/$defs/group"}},
        },
        "additionalProperties": False,
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://runbook-engine.dev/schema/inventory.schema.json",
        "title": "runbook inventory (Ansible YAML inventory; INI is read too)",
        "type": "object",
        "additionalProperties": {"$ref": "#/$defs/group"},
        "$defs": {"group": group, "hostvars": HOST_VARS},
    }


def suite_schema() -> dict[str, Any]:
    """The check suites of ``checks/`` (``verify``'s ``suite:``), for editors."""
    from engine.actions.verify.suites import SUITE_SCHEMA

    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://runbook-engine.dev/schema/check-suite.schema.json",
        "title": "runbook check suite (verify: suite:)",
        **SUITE_SCHEMA,
    }


def write_files() -> None:
    from engine.actions.registry import DECLARATIONS_FILE, declarations

    DECLARATIONS_FILE.write_text(json.dumps(declarations(), indent=2) + "\n")  # key order kept: jsonschema reports in it
    RUNBOOK_SCHEMA_FILE.write_text(json.dumps(runbook_schema(), indent=2, sort_keys=True) + "\n")
    INVENTORY_SCHEMA_FILE.write_text(json.dumps(inventory_schema(), indent=2, sort_keys=True) + "\n")
    SUITE_SCHEMA_FILE.write_text(json.dumps(suite_schema(), indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    write_files()
