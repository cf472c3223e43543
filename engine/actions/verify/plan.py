"""From the rendered arguments (and suites) to the list of checks to run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.actions.verify.checks import auto_required, fk_task, required_task, row_count_task, rule_task
from engine.actions.verify.compare import Copy, checksum_task, mismatch_check
from engine.actions.verify.model import Check, Task
from engine.actions.verify.suites import Suite
from engine.errors import ActionError, SqlError
from engine.mysql.introspect import Column, TableShape, columns, schema_foreign_keys
from engine.mysql.snapshots import MANIFEST, manifest_rows, snapshot_schema
from engine.templating.render import ENGINE
from engine.transport.base import Sql

DEFAULT_CHUNK_ROWS = 10000


class NotYet(ActionError):
    """What a check compares with is made by an earlier step (a snapshot, a restore's result)
    that has not run: in check mode, an honest "cannot tell yet"."""


@dataclass
class Plan:
    tasks: list[Task] = field(default_factory=list)
    findings: list[Check] = field(default_factory=list)  # settled before any query (a missing table)
    other_host: str | None = None
    other_schema: str | None = None

    def checks(self) -> list[Check]:
        return [c for t in self.tasks for c in t.checks] + self.findings


def missing_table(table: str, kind: str, what: str) -> Check:
    c = Check(name=f"{kind.replace('_', ' ')} {table}", kind=kind, table=table, count=None,  # type: ignore[arg-type]
              detail=f"table {table} does not exist ({what})")
    c.verdict(True)
    return c


def _primary_keys(sql: Sql, schema: str) -> dict[str, tuple[str, ...]]:
    res = sql.query("SELECT TABLE_NAME AS t, COLUMN_NAME AS c FROM information_schema.KEY_COLUMN_USAGE"
                    " WHERE TABLE_SCHEMA = %s AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY TABLE_NAME, ORDINAL_POSITION", [schema])
    out: dict[str, list[str]] = {}
    for r in res.rows:
        out.setdefault(str(r["t"]), []).append(str(r["c"]))
    return {t: tuple(c) for t, c in out.items()}


class Planner:
    """Reads the schema once (columns, keys, sizes) and turns each requested check into tasks."""

    def __init__(self, sql: Sql, schema: str, tables: list[str], sizes: dict[str, int], run_id: str,
                 check_mode: bool = False):
        self.sql, self.schema, self.tables, self.sizes, self.run_id = sql, schema, tables, sizes, run_id
        self.check_mode = check_mode
        self.cols: dict[str, list[Column]] = columns(sql, schema)
        self.pks = _primary_keys(sql, schema)
        self.plan = Plan()

    def shape(self, table: str) -> TableShape:
        stored = [c for c in self.cols[table] if not c.generated]
        return TableShape(self.schema, table, tuple(c.name for c in stored), self.pks.get(table, ()),
                          tuple(c.data_type for c in stored))

    def foreign_keys(self) -> None:
        for fk in schema_foreign_keys(self.sql, self.schema):
            if fk.table in self.tables:
                self.plan.tasks.append(fk_task(fk, self.pks.get(fk.table, ()), self.sizes.get(fk.table, 0)))

    def required(self, spec: Any, severity: str) -> None:
        if spec == "auto":
            for table in self.tables:
                wanted = auto_required(self.cols.get(table, []))
                if wanted:
                    self.plan.tasks.append(required_task(self.schema, table, wanted, self.pks.get(table, ()), severity,
                                                         self.sizes.get(table, 0)))
            return
        for table, names in (spec or {}).items():
            if table not in self.cols:
                self.plan.findings.append(missing_table(table, "required", "required columns"))
                continue
            by_name = {c.name: c for c in self.cols[table]}
            wanted = []
            for n in names:
                if n in by_name:
                    wanted.append((by_name[n], "missing"))
                else:
                    c = Check(name=f"required {table}.{n}", kind="required", table=table, count=None,
                              detail=f"{table} has no column {n}")
                    c.verdict(True)
                    self.plan.findings.append(c)
            if wanted:
                self.plan.tasks.append(required_task(self.schema, table, wanted, self.pks.get(table, ()), severity,
                                                     self.sizes.get(table, 0)))

    def row_counts(self, spec: dict[str, Any], dump_counts: dict[str, int] | None = None,
                   listed: bool = False) -> None:
        compare = str(spec.get("compare", "equal"))
        expected: dict[str, int] = {}
        source = "given"
        if dump_counts is not None:
            # With tables: only those (a listed table that is missing is already a finding);
            # without: every table of the dump, so one the schema lost is reported missing.
            source = "dump"
            expected = {t: n for t, n in dump_counts.items() if not listed or t in self.tables}
        elif "from" in spec:
            found = spec["from"]
            tables = found.get("tables") if isinstance(found, dict) else None
            if not isinstance(tables, dict):
                raise NotYet("row_counts.from: not a restore result (it has no tables: {name: {rows, status}})",
                                  hint='register the restore step and give its name: from: "{{ r }}"')
            source = "restore"
            for name, info in tables.items():
                if not isinstance(info, dict):
                    continue
                status = str(info.get("status", "loaded"))
                if status == "skipped":
                    continue
                if status not in ("loaded", "failed") and self.check_mode:
                    raise NotYet(f"row_counts.from: {name} is {status!r} in the restore's plan, not loaded yet")
                if status != "loaded":
                    c = Check(name=f"rows {name}", kind="row_count", table=str(name), count=None,
                              detail=f"the restore reported {name} as {status}")
                    c.verdict(True)
                    self.plan.findings.append(c)
                    continue
                expected[str(name)] = int(info.get("rows") or 0)
        elif spec.get("from_snapshot"):
            source = "snapshot"
            for m in self.snapshot_entries().values():
                if m.get("rows") is not None:
                    expected[str(m["source_table"])] = int(m["rows"])
        else:
            expected = {str(k): int(v) for k, v in spec.items()
                        if k not in ("compare", "from", "from_snapshot", "from_dump", "file_on")}
        for table, n in expected.items():
            if table not in self.cols:
                self.plan.findings.append(missing_table(table, "row_count", f"{n} row(s) expected"))
            else:
                self.plan.tasks.append(row_count_task(self.schema, table, n, compare, source, self.sizes.get(table, 0)))

    def snapshot_entries(self) -> dict[str, dict[str, Any]]:
        """This run's snapshot of the schema's tables: the latest complete copy of each."""
        snap = snapshot_schema(self.run_id)
        try:
            rows = manifest_rows(self.sql, snap)
        except SqlError as exc:
            if exc.errno in (1049, 1146):
                raise NotYet(f"this run took no snapshot ({snap}.{MANIFEST} does not exist)",
                                  hint="run a snapshot step before verify, or compare with against_schema") from None
            raise
        out: dict[str, dict[str, Any]] = {}
        for m in rows:
            if m["source_schema"] == self.schema and m["status"] in ("complete", "restored") and m["method"] == "server":
                out[str(m["source_table"])] = m
        return out

    def checksums(self, spec: dict[str, Any], other: Sql | None) -> None:
        chunk_rows = int(spec.get("chunk_rows", DEFAULT_CHUNK_ROWS))
        tables = list(spec.get("tables") or self.tables)
        copies: dict[str, Copy] = {}
        if spec.get("against_snapshot"):
            entries = self.snapshot_entries()
            snap = snapshot_schema(self.run_id)
            if not spec.get("tables"):
                tables = [t for t in tables if t in entries]
            for t in tables:
                if t in entries:
                    copies[t] = Copy(snap, str(entries[t]["snap_table"]), None, "snapshot")
                else:
                    self.plan.findings.append(mismatch_check(t, Copy(snap, t, None, "snapshot"), f"{t} is not in this run's snapshot"))
        else:
            host = spec.get("against_host")
            schema = str(spec.get("against_schema") or self.schema)
            label = f"{host}:{schema}" if host and schema != self.schema else (host or schema)
            for t in tables:
                copies[t] = Copy(schema, t, host, label)
            self.plan.other_host, self.plan.other_schema = host, schema
        if not copies:
            return
        first = next(iter(copies.values()))
        there = other if first.host is not None else self.sql
        assert there is not None
        their_cols = columns(there, first.schema)
        for t, copy in copies.items():
            if t not in self.cols:
                self.plan.findings.append(missing_table(t, "checksum", "to checksum"))
                continue
            shape = self.shape(t)
            theirs = tuple(c.name for c in their_cols.get(copy.table, []) if not c.generated)
            if not theirs:
                self.plan.findings.append(mismatch_check(t, copy, f"{copy.label} has no table {copy.table}"))
            elif theirs != shape.columns:
                self.plan.findings.append(mismatch_check(t, copy, f"columns differ: {', '.join(shape.columns)} here, "
                                                                  f"{', '.join(theirs)} in {copy.label}"))
            else:
                self.plan.tasks.append(checksum_task(shape, copy, chunk_rows, self.sizes.get(t, 0)))

    def rules(self, rules: list[dict[str, Any]], variables: dict[str, Any]) -> None:
        for rule in rules:
            sql, params = ENGINE.render_sql(str(rule["sql"]).strip().rstrip(";"), variables)
            self.plan.tasks.append(rule_task(str(rule["name"]), sql, params, str(rule.get("severity", "fail")), rule.get("table")))


def merged_required(step: Any, suites: list[Suite]) -> tuple[Any, Any]:
    """(auto or None, explicit {table: [columns]}) from the step and its suites."""
    auto = "auto" if step == "auto" or any(s.required == "auto" for s in suites) else None
    explicit: dict[str, list[str]] = {}
    for spec in [step, *(s.required for s in suites)]:
        if isinstance(spec, dict):
            for t, cols in spec.items():
                explicit.setdefault(str(t), [])
                explicit[str(t)] += [str(c) for c in cols if str(c) not in explicit[str(t)]]
    return auto, explicit
