"""The restore plan: which tables, in what order, created or kept how, loaded how — decided
before anything is written, and printed as it is in check mode.

Order: parents before children, from the foreign keys of the dump *and* of the target. Tables
of a cycle (or a self-reference) form one group loaded with ``foreign_key_checks=0`` and checked
for orphans afterwards; every other table is loaded with checks on, after its parents.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field
from typing import Any

from engine.actions.restore.convert import Shape, types_allow_load_data
from engine.errors import ActionError
from engine.mysql.introspect import ForeignKey
from engine.mysql.target import TRANSACTIONAL, Difference, TargetTable, compare_table


@dataclass
class TablePlan:
    name: str
    rows: int
    bytes: int
    ddl: str  # keep | create | recreate
    truncate: bool
    shape: Shape
    via_temp: bool  # common_columns where the dump has columns the target lacks: load through a temporary copy
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
    dump_columns: tuple[str, ...] = ()

    def strategy(self) -> str:
        how = "LOAD DATA where exact, else INSERT" if self.shape.load_data and self.shape.conflict != "upsert" else "INSERT"
        if self.via_temp:
            how = "INSERT through a temporary copy (common columns)"
        parts = [self.ddl + (" + truncate" if self.truncate else ""), f"on_conflict {self.shape.conflict}", how,
                 "FK checks on" if self.fk_checks else (f"FK checks off (cycle group {self.group}; orphan check after)"
                                                        if self.group else "FK checks off (it and its parents start empty)")]
        if not self.transactional:
            parts.append("not transactional: reloaded whole if interrupted")
        return ", ".join(parts)


@dataclass
class Plan:
    tables: list[TablePlan]  # in load order
    findings: list[Difference]
    orphan_checks: list[dict[str, Any]]  # FKs inside cycle groups: checked after the load
    notes: list[str]

    def by_name(self) -> dict[str, TablePlan]:
        return {t.name: t for t in self.tables}

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
        out.extend(f"     note: {n}" for n in self.notes)
        return out


def _cycle_groups(nodes: list[str], edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components (Tarjan, iterative), parents→children edges."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            nxt = next(it, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on.add(nxt)
                    work.append((nxt, iter(sorted(edges.get(nxt, ())))))
                elif nxt in on:
                    low[v] = min(low[v], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                out.append(sorted(comp))
    return out


def order_tables(names: list[str], fks: list[tuple[str, str, str]], sizes: dict[str, int]) -> tuple[list[str], dict[str, int], dict[str, int | None], dict[str, set[str]]]:
    """(load order, level, cycle group or None, parents) from ``(child, parent, constraint)``
    edges among ``names``: parents first; among equals, the larger table first."""
    edges: dict[str, set[str]] = {n: set() for n in names}
    selfref: set[str] = set()
    for child, parent, _ in fks:
        if child in edges and parent in edges:
            if child == parent:
                selfref.add(child)
            else:
                edges[parent].add(child)
    comps = _cycle_groups(sorted(names), edges)
    comp_of = {n: i for i, c in enumerate(comps) for n in c}
    group: dict[str, int | None] = {}
    gid = 0
    for c in comps:
        if len(c) > 1 or c[0] in selfref:
            gid += 1
            for n in c:
                group[n] = gid
        else:
            group[c[0]] = None
    # levels over the condensed DAG
    parents_c: dict[int, set[int]] = {i: set() for i in range(len(comps))}
    for p, children in edges.items():
        for ch in children:
            if comp_of[p] != comp_of[ch]:
                parents_c[comp_of[ch]].add(comp_of[p])
    level_c: dict[int, int] = {}

    def lvl(i: int) -> int:
        if i not in level_c:
            level_c[i] = 0
            level_c[i] = 1 + max((lvl(p) for p in parents_c[i]), default=-1)
        return level_c[i]

    level = {n: lvl(comp_of[n]) for n in names}
    # a cycle group waits for the parents of any of its members
    ext: dict[int, set[str]] = {i: set() for i in range(len(comps))}
    for p, children in edges.items():
        for ch in children:
            if comp_of[p] != comp_of[ch]:
                ext[comp_of[ch]].add(p)
    parents = {n: set(ext[comp_of[n]]) for n in names}
    order = sorted(names, key=lambda n: (level[n], -sizes.get(n, 0), n))
    return order, level, group, parents


def make_plan(*, scan: Any, defs: dict[str, Any], names: list[str], target: dict[str, TargetTable], target_fks: list[ForeignKey],
              schema: str, opts: dict[str, Any], snapshotted: set[str], prepared_empty: set[str] | None = None) -> Plan:
    """Decide everything before a write; raise :class:`ActionError` for what must be refused."""
    mismatch = opts.get("schema_mismatch", "error")
    conflict = opts.get("on_conflict", "error")
    truncate = bool(opts.get("truncate", False))
    charset = opts.get("charset") or "utf8mb4"
    tables: list[TablePlan] = []
    findings: list[Difference] = []
    refusals: list[str] = []
    notes: list[str] = []
    fk_edges: list[tuple[str, str, str]] = []
    referenced: dict[str, set[str]] = {n: set() for n in names}  # every parent, restored or not ("other.t" outside)
    for n in names:
        for fk in defs[n].foreign_keys:
            if fk.ref_schema in (None, "", getattr(scan.tables[n], "schema", None), schema):
                fk_edges.append((n, fk.ref_table, fk.name))
                referenced[n].add(fk.ref_table)
            else:
                referenced[n].add(f"{fk.ref_schema}.{fk.ref_table}")
    for fk in target_fks:
        if fk.schema == schema and fk.table in referenced:
            referenced[fk.table].add(fk.ref_table if fk.ref_schema == schema else f"{fk.ref_schema}.{fk.ref_table}")
        if fk.schema == schema and fk.ref_schema == schema:
            fk_edges.append((fk.table, fk.ref_table, fk.name))
    sizes = {n: int(scan.tables[n].data_bytes) for n in names}
    order, level, group, parents = order_tables(names, fk_edges, sizes)

    if truncate and not opts.get("allow_without_snapshot"):
        missing = [n for n in names if n in target and n not in snapshotted]
        if missing:
            refusals.append(f"truncate: true empties {', '.join(missing)}, but this run took no snapshot of "
                            f"{'it' if len(missing) == 1 else 'them'} — add a snapshot step before the restore "
                            "(or allow_without_snapshot: true)")
    if conflict == "replace":
        for fk in target_fks:
            if fk.ref_schema == schema and fk.ref_table in names and fk.on_delete.upper() in ("CASCADE", "SET NULL"):
                refusals.append(f"on_conflict: replace would {'delete' if fk.on_delete.upper() == 'CASCADE' else 'null out'} "
                                f"child rows: {fk.schema}.{fk.table} has FOREIGN KEY {fk.name} ON DELETE {fk.on_delete.upper()} "
                                f"referencing {fk.ref_table} (REPLACE deletes the old row first) — use on_conflict: upsert")

    for n in order:
        d = defs[n]
        ts = scan.tables[n]
        tgt = target.get(n)
        diffs = compare_table(d, tgt, n)
        missing_table = tgt is None
        ddl = "keep"
        if missing_table:
            if mismatch == "error":
                refusals.append(f"table {n} is missing on the target — schema_mismatch: create_missing creates it from the dump")
            ddl = "create"
        elif mismatch == "recreate":
            ddl = "recreate"
        elif diffs and mismatch in ("error", "create_missing"):
            refusals.extend(f"{x} (schema_mismatch: {mismatch})" for x in diffs)
        elif diffs and mismatch == "common_columns":
            bad = [x for x in diffs if x.what in ("not_a_table",)]
            refusals.extend(f"{x} (schema_mismatch: common_columns cannot load into it)" for x in bad)
        findings.extend(diffs)

        dump_cols = tuple(c.name for c in d.columns)
        generated = {c.name for c in d.columns if c.generated}
        skip: set[str] = set(generated)
        explicit = False
        via_temp = False
        if ddl == "keep" and tgt is not None:
            tcols = {c.name.lower(): c for c in tgt.columns}
            skip |= {c for c in dump_cols if c.lower() in tcols and tcols[c.lower()].generated}
            absent = [c for c in dump_cols if c.lower() not in tcols]
            if absent:
                skip |= set(absent)
                via_temp = True
            if [c.lower() for c in dump_cols if c.lower() in tcols] != [c.name.lower() for c in tgt.columns if c.name.lower() in {x.lower() for x in dump_cols}] \
                    or len(tgt.columns) != len(dump_cols):
                explicit = True
        engine = (d.engine or "InnoDB") if ddl != "keep" or tgt is None else (tgt.engine or "InnoDB")
        transactional = engine.lower() in TRANSACTIONAL
        key_cols = {c.lower() for c in d.primary_key} | {c.lower() for k in d.unique_keys for c in (k if isinstance(k, (list, tuple)) else getattr(k, "columns", ()))}
        upsert_cols = tuple(c for c in dump_cols if c not in skip and c.lower() not in key_cols)
        types = [c.type for c in d.columns]
        load_data_ok = types_allow_load_data(types) and _load_data_safe(scan, n)
        if via_temp and (not load_data_ok or conflict == "upsert"):
            refusals.append(f"{n}: the target lacks dump column(s) {', '.join(c for c in dump_cols if c in skip and c not in generated)}"
                            " and the rows hold values only INSERT can load (hex, bit, spatial) or on_conflict is upsert"
                            " — add the columns to the target, or schema_mismatch: recreate")
        # prepared_empty: an earlier attempt of this step found or made it empty (its rows are ours)
        empty = ddl in ("create", "recreate") or (truncate and tgt is not None) or n in (prepared_empty or set())
        if not transactional and not empty:
            refusals.append(f"{n} uses {engine}, which cannot commit a batch with its progress row: exactly-once needs "
                            "the table empty first (truncate: true after a snapshot, or schema_mismatch: recreate)")
        if not transactional:
            notes.append(f"{n} ({engine}) is not transactional: an interrupted load of it is truncated and reloaded whole")
        shape = Shape(table=n, columns=dump_cols, skip=frozenset(skip), explicit=explicit, upsert_columns=upsert_cols,
                      conflict=conflict, charset=charset, load_data=load_data_ok,
                      verify_literals=getattr(scan, "load_data_safe", None) is None and getattr(ts, "load_data_safe", None) is None)
        tables.append(TablePlan(
            name=n, rows=int(ts.rows), bytes=int(ts.data_bytes), ddl=ddl, truncate=truncate and tgt is not None and ddl == "keep",
            shape=shape, via_temp=via_temp, fk_checks=group[n] is None, group=group[n], level=level[n], parents=parents[n],
            referenced=referenced[n],
            transactional=transactional, empty=empty, findings=diffs, has_triggers=bool(getattr(ts, "has_triggers", False)),
            create_sql=_create_text(ts, d), dump_columns=dump_cols))
    if refusals:
        raise ActionError("refusing to restore, nothing was written:\n  " + "\n  ".join(dict.fromkeys(refusals)),
                          hint="fix the target or choose the policy (schema_mismatch, on_conflict, truncate) that fits")
    orphan_checks = []
    for n in names:
        if group[n] is None:
            continue
        for fk in defs[n].foreign_keys:
            if fk.ref_table in names and group.get(fk.ref_table) == group[n]:
                orphan_checks.append({"table": n, "name": fk.name, "columns": list(fk.columns), "ref_table": fk.ref_table,
                                      "ref_columns": list(fk.ref_columns)})
    return Plan(tables, findings, orphan_checks, notes)


def _load_data_safe(scan: Any, name: str) -> bool:
    safe = getattr(scan, "load_data_safe", None)
    if isinstance(safe, dict):
        return bool(safe.get(name, False))
    ts = scan.tables[name]
    v = getattr(ts, "load_data_safe", None)
    return True if v is None else bool(v)


def _create_text(ts: Any, d: Any) -> bytes:
    sql = getattr(d, "create_sql", None)
    if sql:
        return sql.encode() if isinstance(sql, str) else bytes(sql)
    create = getattr(ts, "create", None)
    text = getattr(create, "text", create)
    return text.encode() if isinstance(text, str) else bytes(text or b"")
