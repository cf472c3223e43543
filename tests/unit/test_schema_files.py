"""The published JSON Schemas are what the code generates (a new action forces
``python -m engine.language.schema``), they are valid Draft 2020-12, and they accept what we ship."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from engine.language.schema import (
    INVENTORY_SCHEMA_FILE,
    RUNBOOK_SCHEMA_FILE,
    SUITE_SCHEMA_FILE,
    inventory_schema,
    runbook_schema,
    suite_schema,
)

ROOT = Path(__file__).resolve().parents[2]
FIX = "published schema is stale: run `python -m engine.language.schema`"


def _published(path: Path) -> dict:  # type: ignore[type-arg]
    return json.loads(path.read_text())


def test_runbook_schema_file_is_up_to_date() -> None:
    assert _published(RUNBOOK_SCHEMA_FILE) == json.loads(json.dumps(runbook_schema())), FIX


def test_inventory_schema_file_is_up_to_date() -> None:
    assert _published(INVENTORY_SCHEMA_FILE) == json.loads(json.dumps(inventory_schema())), FIX


def test_suite_schema_file_is_up_to_date() -> None:
    assert _published(SUITE_SCHEMA_FILE) == json.loads(json.dumps(suite_schema())), FIX


@pytest.mark.parametrize("path", [RUNBOOK_SCHEMA_FILE, INVENTORY_SCHEMA_FILE, SUITE_SCHEMA_FILE], ids=["runbook", "inventory", "suite"])
def test_schema_is_valid_draft_2020_12(path: Path) -> None:
    schema = _published(path)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


def test_every_registered_action_is_in_the_runbook_schema() -> None:
    from engine.actions.registry import action_names

    step = _published(RUNBOOK_SCHEMA_FILE)["$defs"]["step"]["properties"]
    assert set(action_names()) <= set(step), FIX


def test_hello_validates_against_the_published_schema() -> None:
    validator = jsonschema.Draft202012Validator(_published(RUNBOOK_SCHEMA_FILE))
    doc = yaml.safe_load((ROOT / "runbooks" / "hello.yml").read_text())
    assert [e.message for e in validator.iter_errors(doc)] == []


def test_local_inventory_validates_against_the_published_schema() -> None:
    validator = jsonschema.Draft202012Validator(_published(INVENTORY_SCHEMA_FILE))
    doc = yaml.safe_load((ROOT / "inventory" / "local.yml").read_text())
    assert [e.message for e in validator.iter_errors(doc)] == []


def test_published_schema_rejects_a_misspelt_key() -> None:
    validator = jsonschema.Draft202012Validator(_published(RUNBOOK_SCHEMA_FILE))
    doc = {"name": "x", "stages": [{"name": "a", "steps": [{"name": "s", "shel": "echo"}]}]}
    errors = list(validator.iter_errors(doc))
    assert errors and any("shel" in e.message for e in errors)


def test_runbook_schema_header_tells_editors_where_it_is() -> None:
    first = (ROOT / "runbooks" / "hello.yml").read_text().splitlines()[0]
    assert first == "# yaml-language-server: $schema=../engine/language/schema/runbook.schema.json"


@pytest.mark.parametrize("path", sorted((ROOT / "checks").glob("*.yml")), ids=lambda p: p.name)
def test_shipped_suites_validate_against_the_published_schema(path: Path) -> None:
    jsonschema.validate(yaml.safe_load(path.read_text()), _published(SUITE_SCHEMA_FILE))


def test_action_declarations_file_is_up_to_date() -> None:
    from engine.actions.registry import DECLARATIONS_FILE, declarations

    # compared as text: key order is part of it (jsonschema reports errors in that order)
    assert DECLARATIONS_FILE.read_text() == json.dumps(declarations(), indent=2) + "\n", FIX
