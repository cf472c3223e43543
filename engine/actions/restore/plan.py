"""The restore plan: which tables, in what order, created or kept how, loaded how — decided
before anything is written (:mod:`engine.actions.restore.decide`), and printed as it is in
check mode.

Order: parents before children, from the foreign keys of the dump *and* of the target. Tables
of a cycle (or a self-reference) form one group loaded with ``foreign_key_checks=0`` and checked
for orphans afterwards; every other table is loaded with checks on, after its parents.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field
from typing import Any

from engine.actions.restore.convert import Shape
from engine.actions.restore.order import order_tables
from engine.errors import ActionError
from engine.mysql.dump import TableDef
from engine.mysql.introspect import ForeignKey
from engine.mysql.target import Difference, TargetTable

__all__ = ["DumpTrigger", "Facts", "LiveTrigger", "OrphanCheck", "Plan", "RestoreOptions", "TablePlan", "order_tables"]


@dataclass(frozen=True)
class RestoreOptions:
    """The step's policies (``restore:`` arguments), typed."""

    schema_mismatch: str = "error"  # error | create_missing | recreate | common_columns
    on_conflict: str = "error"  # error | ignore | replace | upsert
    truncate: bool = False
    allow_without_snapshot: bool = False
    allow_duplicates: bool = False  # ignore/upsert/replace into a key-less table with rows
    allow_warnings: bool = False  # a data warning (truncated, converted, rejected) does not fail the table
    charset: str = "utf8mb4"  # the dump's SET NAMES


@dataclass(frozen=True)
class LiveTrigger:
    """A trigger of the target, set aside for the load and put back after it."""

    table: str
    name: str
    statement: str  # SHOW CREATE TRIGGER
    sql_mode: str
    definer: str = ""  # user@host


@dataclass(frozen=True)
class DumpTrigger:
    table: str
    name: str
    text: bytes


@dataclass(frozen=True)
class OrphanCheck:
    """A foreign key inside a cycle group (loaded with checks off): counted for orphans after."""

    table: str
    name: str | None
    columns: tuple[str, ...]
    ref_table: str
    ref_columns: tuple[str, ...]


@dataclass
class Facts:
    """Everything the planner decides from, read before any write (read again on a resume)."""

    scan: Any  # DumpScan
    defs: dict[str, TableDef]
    names: list[str]  # tables to restore, in the step's order
    schema: str
    options: RestoreOptions
    target: dict[str, TargetTable]
    target_fks: list[ForeignKey] = field(default_factory=list)
    target_was_empty: bool = False  # the schema held no table when this step first ran (item 15)
    with_rows: set[str] = field(default_factory=set)  # target tables holding rows now
    snapshotted: set[str] = field(default_factory=set)  # tables this run's snapshot holds
    prepared_empty: set[str] = field(default_factory=set)  # an earlier attempt found or made them empty
    created_by_step: set[str] = field(default_factory=set)  # an earlier attempt created or re-created them
    partial: dict[str, str] = field(default_factory=dict)  # non-transactional tables an attempt left partial
    live_triggers: list[LiveTrigger] = field(default_factory=list)
    dump_triggers: list[DumpTrigger] = field(default_factory=list)
    alter_tables: set[str] = field(default_factory=set)  # tables the dump ALTERs (keys, constraints, AUTO_INCREMENT)
    default_collations: dict[str, str] = field(default_factory=dict)
    account: str = ""  # CURRENT_USER() of the restore's connection
    can_set_definer: bool = True  # it may create a trigger for another definer (SET USER / SUPER)
    check_mode: bool = False


@dataclass
class TablePlan:
    name: str
    rows: int
    bytes: int
    ddl: str  # keep | create | recreate
    truncate: bool
    shape: Shape
    via_temp: bool  # common_columns where the dump has columns the target lacks
    fk_checks: bool
    group: int | None  # cycle group
    level: int  # topological level: parents have lower levels
    parents: set[str]
    transactional: bool
    empty: bool  # known empty before the load (created, re-created, truncated, or found empty)
    findings: list[Difference] = field(default_factory=list)
    has_triggers: bool = False
    referenced: set[str] = field(default_factory=set)  # every table its FKs point to (outside the restore too)
    create_sql: builtins.bytes = b""
    dump_columns: tuple[str, ...] = ()  # the columns its data statements carry, in their order
    identity: tuple[str, ...] = ()  # the key upsert matches rows by (primary key, else a NOT NULL unique key)
    unique_keys: tuple[tuple[str, tuple[str, ...]], ...] = ()  # the target's other unique keys (upsert conflicts)
    staged: bool = False  # upsert into a table with rows: each batch through a temporary copy, applied by identity
    keep_counter: bool = False  # AUTO_INCREMENT read before truncate/recreate and kept at least there after
    reload: bool = False  # non-transactional, left partial by an earlier attempt: emptied and loaded whole
    created: bool = False  # this step creates it (or did in an earlier attempt): its rows are all the dump's
    conflict: str = "error"  # the step's on_conflict (shape.conflict is how rows are written: upsert writes by INSERT)

    def strategy(self) -> str:
        conflict = self.conflict
        if self.staged:
            how = "through a temporary copy, applied by " + ", ".join(self.identity)
        elif self.via_temp:
            how = "LOAD DATA skipping the columns the target lacks (common columns)"
        else:
            how = "LOAD DATA where exact, else INSERT" if self.shape.load_data else "INSERT"
        parts = [self.ddl + (" + truncate" if self.truncate else ""), f"on_conflict {conflict}", how,
                 "FK checks on" if self.fk_checks else (f"FK checks off (cycle group {self.group}; orphan check after)"
                                                        if self.group else "FK checks off (it and its parents start empty)")]
        if self.keep_counter:
            parts.append("AUTO_INCREMENT kept above the live counter")
        if not self.transactional:
            parts.append("not transactional: one batch at a time, never retried in-process"
                         + ("; emptied and reloaded whole (an interrupted load left it partial)" if self.reload else ""))
        return ", ".join(parts)


@dataclass
class Plan:
    tables: list[TablePlan]  # in load order
    findings: list[Difference] = field(default_factory=list)
    orphan_checks: list[OrphanCheck] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # printed with the plan
    warnings: list[str] = field(default_factory=list)  # also reported in the step's result (trigger differences…)
    refusals: list[str] = field(default_factory=list)
    skip_dump_triggers: set[str] = field(default_factory=set)  # the target's version is kept
    live_triggers: list[LiveTrigger] = field(default_factory=list)  # set aside for the load, put back after

    def by_name(self) -> dict[str, TablePlan]:
        return {t.name: t for t in self.tables}

    def refuse(self, why: str) -> None:
        if why not in self.refusals:
            self.refusals.append(why)

    def raise_refusals(self) -> None:
        if self.refusals:
            raise ActionError("refusing to restore, nothing was written:\n  " + "\n  ".join(self.refusals),
                              hint="fix the target or choose the policy (schema_mismatch, on_conflict, truncate) that fits")

    def relax_fk_checks(self) -> None:
        """A table loaded empty whose every parent is also loaded empty from this dump gets
        nothing from FK checks but their cost: its rows and its parents' rows are the dump's
        (one consistent snapshot). It still comes after its parents; checks stay on for any
        table that meets rows it did not bring (a live target, a parent outside the restore)."""
        tables = self.by_name()
        for t in self.tables:
            if t.group is None and t.empty and all(p in tables and tables[p].empty for p in t.referenced):
                t.fk_checks = False

    def lines(self) -> list[str]:
        out = []
        for i, t in enumerate(self.tables, 1):
            out.append(f"{i:>3}. {t.name}: {t.rows:,} rows, {t.bytes / 1e6:.1f} MB — {t.strategy()}")
            out.extend(f"       mismatch: {d.detail}" for d in t.findings)
        out.extend(f"     note: {n}" for n in self.notes + self.warnings)
        return out
