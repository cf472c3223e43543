"""Check suites: reusable checks (YAML + SQL) a runbook names with ``suite: checks/<name>.yml``.

A suite holds the same check keys as the step (``foreign_keys``, ``required``, ``rules``) and
``vars:``, defaults for its templates that the step's ``vars:`` override::

    description: Orders must not be negative
    vars: {orders_table: orders, total_column: total}
    rules:
      - name: no negative totals
        sql: SELECT COUNT(*) FROM {{ orders_table | ident }} WHERE {{ total_column | ident }} < 0
        severity: fail

A path is looked up relative to the runbook's directory, then in the project's ``checks/``
(``suite: referential`` is short for ``checks/referential.yml``). Errors in a suite name the
suite file's own line and column.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.actions.verify.params import REQUIRED_SCHEMA, RULE_SCHEMA, rule_problems
from engine.errors import InputError, Problem, ValidationFailed
from engine.language.schema_check import checker
from engine.language.schema_messages import path_str, schema_problems, templated
from engine.language.yamlio import load_yaml, source_at

#: the project's own suites, shipped next to the engine
PROJECT_CHECKS = Path(__file__).resolve().parents[3] / "checks"

SUITE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "description": {"type": "string"},
        "vars": {"type": "object", "description": "defaults for the suite's templates; the step's vars: override them"},
        "foreign_keys": {"type": "boolean"},
        "required": REQUIRED_SCHEMA,
        "rules": {"type": "array", "items": RULE_SCHEMA},
    },
}
_VALIDATOR = checker(SUITE_SCHEMA, templated)


@dataclass
class Suite:
    path: str
    description: str = ""
    vars: dict[str, Any] = field(default_factory=dict)
    foreign_keys: bool = False
    required: Any = None
    rules: list[dict[str, Any]] = field(default_factory=list)


def find_suite(name: str, base_dir: str | None) -> Path:
    """The suite file for ``name``: relative to ``base_dir`` (the runbook's directory), then the
    project's ``checks/``; a bare name gets ``.yml``."""
    rel = Path(name if name.endswith((".yml", ".yaml")) else name + ".yml")
    candidates = [rel] if rel.is_absolute() else []
    if not rel.is_absolute():
        if base_dir:
            candidates.append(Path(base_dir) / rel)
            if rel.parent == Path("."):
                candidates.append(Path(base_dir) / "checks" / rel)
        if rel.parent != Path("."):
            candidates.append(PROJECT_CHECKS.parent / rel)
        candidates.append(PROJECT_CHECKS / rel.name)
    for c in candidates:
        if c.is_file():
            return c
    tried = ", ".join(dict.fromkeys(str(c) for c in candidates))
    raise InputError(f"check suite {name!r} not found (looked at {tried})",
                     hint=f"suites shipped with runbook: {', '.join(sorted(p.stem for p in PROJECT_CHECKS.glob('*.yml')))}")


def suite_problems(path: Path) -> list[Problem]:
    """Every problem of a suite file, each at its file:line:col (empty: the suite is valid)."""
    try:
        doc = load_yaml(path, what="check suite")
    except ValidationFailed as exc:
        return list(exc.problems)
    except InputError as exc:
        return [Problem(exc.source or source_at(None, [], str(path)), "", exc.message, exc.hint)]
    file = str(path)
    problems = schema_problems(_VALIDATOR, doc, doc, [], file)
    if not problems and isinstance(doc, dict):
        for suffix, message in rule_problems(doc.get("rules"), "rules."):
            full: list[Any] = [int(p) if p.isdigit() else p for p in suffix.split(".")]
            problems.append(Problem(source_at(doc, full, file), path_str(full), message))
        if not any(k in doc for k in ("foreign_keys", "required", "rules")):
            problems.append(Problem(source_at(doc, [], file), "", "the suite checks nothing",
                                    "give foreign_keys, required or rules"))
    return problems


def load_suite(name: str, base_dir: str | None) -> Suite:
    path = find_suite(name, base_dir)
    problems = suite_problems(path)
    if problems:
        raise ValidationFailed(problems)
    doc = load_yaml(path, what="check suite")
    return Suite(path=str(path), description=str(doc.get("description", "")), vars=dict(doc.get("vars") or {}),
                 foreign_keys=bool(doc.get("foreign_keys", False)), required=doc.get("required"),
                 rules=[dict(r) for r in doc.get("rules") or []])
