"""The ``verify`` arguments: their JSON Schema and the checks a schema cannot express."""

from __future__ import annotations

import re
from typing import Any

from engine.mysql.sqlutil import is_read_only, split_statements
from engine.templating.render import has_template

_TEMPLATE = {"type": "string", "pattern": r"\{\{"}
_NAMES = {"anyOf": [{"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1}, _TEMPLATE]}

RULE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "sql"],
    "properties": {
        "name": {"type": "string", "minLength": 1, "description": "what the rule checks, as reports show it"},
        "sql": {"type": "string", "minLength": 1,
                "description": "a read-only query whose first column counts the violations; {{ x }} is a bound value, {{ x | ident }} a name"},
        "severity": {"enum": ["fail", "warn"], "description": "fail (default): a violation fails the step; warn: reported only"},
        "table": {"type": "string", "description": "the table the rule is about (for reports)"},
    },
}

REQUIRED_SCHEMA: dict[str, Any] = {
    "description": "auto (NOT NULL text columns holding '', zero dates) or {table: [columns]} (NULL or '' is missing)",
    "anyOf": [
        {"const": "auto"},
        {"type": "object", "additionalProperties": {"anyOf": [{"type": "array", "items": {"type": "string", "minLength": 1},
                                                               "minItems": 1}, _TEMPLATE]}},
        _TEMPLATE,
    ],
}

SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["schema"],
    "properties": {
        "schema": {"type": "string", "minLength": 1, "description": "the schema to verify"},
        "tables": dict(_NAMES, description="tables to verify (default: every base table of the schema)"),
        "foreign_keys": {"anyOf": [{"type": "boolean"}, _TEMPLATE],
                         "description": "orphans of every foreign key of the tables (composite and self-references too)"},
        "required": REQUIRED_SCHEMA,
        "row_counts": {
            "description": "{table: rows (0 or more)}, {from: <registered restore result>}, {from_snapshot: true} or {from_dump: PATH}",
            "anyOf": [
                {"type": "object",
                 "properties": {
                     "from": {"anyOf": [{"type": "object"}, _TEMPLATE], "description": "a registered restore result: its tables' rows"},
                     "from_snapshot": {"type": "boolean", "description": "the rows this run's snapshot recorded"},
                     "from_dump": {"type": "string", "minLength": 1,
                                   "description": "a dump file on the host (plain or .gz): the rows of each of its tables, read without writing"},
                     "file_on": {"enum": ["host", "control"], "description": "where from_dump is: host (default) or control"},
                     "compare": {"anyOf": [{"enum": ["equal", "at_least"]}, _TEMPLATE],
                                 "description": "equal (default) or at_least (a merge into live tables)"},
                 },
                 "additionalProperties": {"anyOf": [{"type": "integer", "minimum": 0}, _TEMPLATE]}},
                _TEMPLATE,
                {"const": "from_dump"},  # SPEC §2's shorthand: refused by static_problems with the way to say it
            ],
        },
        "checksums": {
            "description": "compare every table chunk by chunk with another copy",
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "against_schema": {"type": "string", "minLength": 1, "description": "another schema (on this server, or on against_host)"},
                "against_snapshot": {"type": "boolean", "description": "this run's snapshot copies"},
                "against_host": {"type": "string", "minLength": 1, "description": "an inventory host (a replica): the same schema there"},
                "chunk_rows": {"anyOf": [{"type": "integer", "minimum": 1}, _TEMPLATE], "description": "rows per chunk (default 10000)"},
                "tables": dict(_NAMES, description="tables to checksum (default: the verified tables)"),
            },
        },
        # A list, or a template giving one ("{{ verify_rules }}"): items apply to the list and
        # the pattern to the string, so a bad rule is named precisely.
        "rules": {"type": ["array", "string"], "items": RULE_SCHEMA, "pattern": r"\{\{",
                  "description": "business rules: queries counting violations"},
        "suite": {"anyOf": [{"type": "string", "minLength": 1}, {"type": "array", "items": {"type": "string", "minLength": 1}}],
                  "description": "check suites (YAML): relative to the runbook's directory, then the project's checks/"},
        "vars": {"type": "object", "description": "values for the suites' and rules' templates (over a suite's own vars:)"},
        "record_to": {"type": "string", "minLength": 1,
                      "description": "schema.table to write the verdicts into with the run id (created if missing); skipped in check mode"},
        "parallel": {"anyOf": [{"type": "integer", "minimum": 1, "maximum": 16}, _TEMPLATE],
                     "description": "a number of sessions from 1 to 16 running checks at once (default 2)"},
    },
}

_QUALIFIED = re.compile(r"^(`[^`]+`|[A-Za-z0-9_$]+)\.(`[^`]+`|[A-Za-z0-9_$]+)$")
CHECK_KEYS = ("foreign_keys", "required", "row_counts", "checksums", "rules", "suite")


def split_qualified(name: str) -> tuple[str, str] | None:
    """``ops.results`` / ```my db`.`t` `` → (schema, table); None when not of that form."""
    m = _QUALIFIED.match(name.strip())
    if not m:
        return None
    return m.group(1).strip("`"), m.group(2).strip("`")


def rule_problems(rules: Any, prefix: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if not isinstance(rules, list):
        return out
    seen: set[str] = set()
    for i, rule in enumerate(rules):
        if not isinstance(rule, dict):
            continue
        name, sql = rule.get("name"), rule.get("sql")
        if isinstance(name, str):
            if name in seen:
                out.append((f"{prefix}{i}.name", f"two rules are named {name!r}: give each its own name"))
            seen.add(name)
        if isinstance(sql, str):
            stmts = split_statements(sql)
            if len(stmts) != 1:
                out.append((f"{prefix}{i}.sql", f"a rule is one query, this holds {len(stmts)} statement(s)"))
            elif not is_read_only(stmts[0]):
                out.append((f"{prefix}{i}.sql", "a rule must be a read-only query (SELECT …): verify never writes to the data it checks"))
    return out


def static_problems(args: Any) -> list[tuple[str, str]]:
    if not isinstance(args, dict):
        return []
    out: list[tuple[str, str]] = []
    if not any(k in args for k in CHECK_KEYS):
        out.append(("", "nothing to verify: give foreign_keys, required, row_counts, checksums, rules or suite"))
    rc = args.get("row_counts")
    if rc == "from_dump":
        out.append(("row_counts", 'from_dump needs a file: write row_counts: {from_dump: /path/to/backup.sql.gz} '
                                  '(the rows of each table of that dump), or register the restore step (register: r) '
                                  'and write row_counts: {from: "{{ r }}"}'))
    if isinstance(rc, dict):
        sources = [k for k in ("from", "from_snapshot", "from_dump") if k in rc]
        explicit = [k for k in rc if k not in ("from", "from_snapshot", "from_dump", "file_on", "compare")]
        if len(sources) > 1 or (sources and explicit):
            out.append(("row_counts", "give either {table: rows}, {from: <restore result>}, {from_snapshot: true} or {from_dump: PATH}, not several"))
        if "file_on" in rc and "from_dump" not in rc:
            out.append(("row_counts.file_on", "file_on says where from_dump's file is: give from_dump too"))
        if rc.get("from_snapshot") is False and not explicit:
            out.append(("row_counts.from_snapshot", "from_snapshot: false checks nothing: remove row_counts or give counts"))
    cs = args.get("checksums")
    if isinstance(cs, dict):
        if cs.get("against_snapshot") is True and ("against_schema" in cs or "against_host" in cs):
            out.append(("checksums", "against_snapshot compares with this run's snapshot: it cannot be combined with against_schema/against_host"))
        elif not (cs.get("against_snapshot") is True or "against_schema" in cs or "against_host" in cs):
            out.append(("checksums", "say what to compare with: against_schema, against_snapshot: true or against_host"))
        if (isinstance(cs.get("against_schema"), str) and not has_template(cs["against_schema"])
                and "against_host" not in cs and cs["against_schema"] == args.get("schema")):
            out.append(("checksums.against_schema", "a schema compared with itself always matches: name the other copy"))
    out += rule_problems(args.get("rules"), "rules.")
    rt = args.get("record_to")
    if isinstance(rt, str) and not has_template(rt) and split_qualified(rt) is None:
        out.append(("record_to", f"{rt!r} is not schema.table (e.g. ops.consistency_check_results)"))
    return out
