"""engine.language.schema_check: the compiled check says "valid" exactly when jsonschema does,
on every schema the engine ships, so validation reports the same problems without importing
jsonschema for a valid runbook."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.actions.registry import REGISTRY, load_all
from engine.actions.verify.suites import SUITE_SCHEMA
from engine.errors import InputError, ValidationFailed
from engine.language.loader import _stage_validator, _validator
from engine.language.schema import INVENTORY_SCHEMA_FILE, RUNBOOK_SCHEMA_FILE
from engine.language.schema_check import checker, compile_check
from engine.language.schema_messages import templated
from engine.language.yamlio import load_yaml_text
from tests.fuzz.mutate import ODD_SCALARS, corpus, make_case

ROOT = Path(__file__).resolve().parents[2]


def _schemas() -> dict[str, Any]:
    load_all()
    out: dict[str, Any] = {f"params of {name}": REGISTRY[name].params_schema for name in REGISTRY}
    out["runbook (top level)"] = _validator().schema
    out["stage"] = _stage_validator().schema
    out["check suite"] = SUITE_SCHEMA
    out["published runbook schema"] = json.loads(RUNBOOK_SCHEMA_FILE.read_text())
    out["published inventory schema"] = json.loads(INVENTORY_SCHEMA_FILE.read_text())
    return out


SCHEMAS = _schemas()


def _agree(schema: Any, doc: Any) -> None:
    """Both modes: every error counts; errors on a template are dropped (as validation does)."""
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(doc))
    for skip in (None, templated):
        fast = compile_check(schema, skip)
        assert fast is not None
        valid = not [e for e in errors if skip is None or not skip(e.instance)]
        assert fast(doc) == valid, f"skip={skip}: compiled check says {fast(doc)}, jsonschema {valid}, for {doc!r}"[:2000]


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_every_shipped_schema_compiles(name: str) -> None:
    # a keyword the compiler does not know would send every document of it to jsonschema
    assert compile_check(SCHEMAS[name]) is not None, name


def _steps_and_stages(doc: Any) -> tuple[list[Any], list[Any]]:
    stages = doc.get("stages") if isinstance(doc, dict) else None
    stages = stages if isinstance(stages, list) else []
    steps = [s for st_ in stages if isinstance(st_, dict) and isinstance(st_.get("steps"), list) for s in st_["steps"]]
    return stages, steps


def test_agrees_with_jsonschema_on_shipped_and_fuzzed_runbooks() -> None:
    seeds = corpus("runbook")
    docs = []
    for text in [s.encode() for s in seeds] + [make_case(seeds, seed).data for seed in range(1000)]:
        try:  # the engine's loader: MDict/MList, as validation sees them
            doc = load_yaml_text(text.decode(), "case.yml", what="runbook")
        except (InputError, ValidationFailed, UnicodeDecodeError):
            continue
        docs.append(doc)
    assert len(docs) > 300  # the rest are refused before any schema (YAML, encoding)
    top, stage = SCHEMAS["runbook (top level)"], SCHEMAS["stage"]
    for doc in docs:
        _agree(SCHEMAS["published runbook schema"], doc)
        if isinstance(doc, dict):
            _agree(top, {k: v for k, v in doc.items() if k != "stages"} | {"stages": []})
        stages, steps = _steps_and_stages(doc)
        for s in stages:
            _agree(stage, s)
        for step in steps:
            for key in step if isinstance(step, dict) else ():
                if key in REGISTRY:
                    _agree(REGISTRY[key].params_schema, step[key])


def _words(schema: Any, out: set[Any]) -> set[Any]:
    """Property names, enum values and constants of a schema: what a generated document
    needs to reach its deeper keywords."""
    if isinstance(schema, dict):
        for k, v in schema.items():
            if k == "properties" and isinstance(v, dict):
                out.update(v)
            if k in ("enum",) and isinstance(v, list):
                out.update(x for x in v if not isinstance(x, (list, dict)))
            if k == "const" and not isinstance(v, (list, dict)):
                out.add(v)
            _words(v, out)
    elif isinstance(schema, list):
        for v in schema:
            _words(v, out)
    return out


SCALARS = [x for x in ODD_SCALARS if not isinstance(x, (list, dict))] + [
    1, 2.0, 3.5, -2, 100, "20%", "150%", "512M", "1.5T", "20G", "30s", "5m", "abc", "x_1", "1x", "shop", "SELECT 1",
    "{{ n }}", "{% if a %}b{% endif %}"]


def _values(words: list[Any]) -> st.SearchStrategy[Any]:
    scalar = st.sampled_from(SCALARS + words) | st.integers(-5, 5) | st.text(max_size=4)
    keys = st.sampled_from([w for w in words if isinstance(w, str)] + ["zzz", "~"]) if words else st.text(max_size=3)
    return st.recursive(scalar, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=4),
                        max_leaves=12)


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_agrees_with_jsonschema_on_generated_documents(name: str) -> None:
    schema = SCHEMAS[name]
    words = sorted(_words(schema, set()), key=repr)

    @settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(_values(words))
    def check(doc: Any) -> None:
        _agree(schema, doc)

    check()


def test_an_invalid_document_gets_jsonschema_errors() -> None:
    c = checker({"type": "object", "properties": {"n": {"type": "integer", "minimum": 1}}, "additionalProperties": False})
    assert list(c.iter_errors({"n": 3})) == []
    assert sorted(e.message for e in c.iter_errors({"n": 0, "x": 1})) == [
        "0 is less than the minimum of 1", "Additional properties are not allowed ('x' was unexpected)"]


def test_a_template_passes_where_its_error_would_be_dropped_not_inside_an_anyof() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"},
                                               "m": {"anyOf": [{"type": "object", "properties": {"k": {"type": "integer"}}},
                                                               {"type": "integer"}]}}}
    c = checker(schema, templated)
    assert list(c.iter_errors({"n": "{{ n }}"})) == []
    # the error is the anyOf's, on the mapping: it is not one on the template, and is reported
    assert [e.validator for e in c.iter_errors({"m": {"k": "{{ k }}"}})] == ["anyOf"]


def test_an_unknown_keyword_leaves_the_schema_to_jsonschema() -> None:
    schema = {"type": "array", "uniqueItems": True}
    assert compile_check(schema) is None
    assert [e.validator for e in checker(schema).iter_errors([1, 1])] == ["uniqueItems"]


def test_validating_the_shipped_sop_imports_no_jsonschema_nor_a_client_library() -> None:
    # structural: a valid runbook is checked without jsonschema, and without the SSH and MySQL
    # client libraries that only a run needs
    code = ("import sys; from engine.cli.main import main; sys.argv = ['runbook', 'validate', 'runbooks/emergency.yml', "
            "'-i', 'inventory/local.yml']\ntry:\n    main()\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'jsonschema', 'paramiko', 'pymysql', 'rich', 'cryptography'}), "
            "file=sys.stderr)")
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert res.stderr.strip().splitlines()[-1] == "[]", res.stderr
