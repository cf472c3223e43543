"""The restore planner: small decisions over one typed :class:`~engine.actions.restore.plan.Plan`,
each adding to it or refusing (every refusal is collected; nothing is written when one exists).

==============================  ====================================================================
decision                        what it settles
==============================  ====================================================================
``_fk_edges``                   parents and children from the dump's and the target's foreign keys
``_refuse_unsnapshotted``       truncate / recreate of live tables need this run's snapshot
``_refuse_replace_cascade``     REPLACE over an ON DELETE CASCADE / SET NULL parent
``_ddl``                        keep, create or recreate, per ``schema_mismatch`` (an empty target creates)
``_columns``                    the columns the data statements carry (their own list), skipped ones
``_emptiness``                  whether the table starts empty (created, truncated, found empty)
``_keys``                       the identity upsert matches by; key-less tables and allow_duplicates
``_non_transactional``          MyISAM/Aria: empty first; a partial earlier load reloaded or refused
``_triggers``                   the target's triggers against the dump's: kept, reported
``_orphan_checks``              foreign keys inside cycle groups
==============================  ====================================================================
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from engine.actions.restore.convert import Shape, types_allow_load_data
from engine.actions.restore.order import order_tables
from engine.actions.restore.plan import Facts, OrphanCheck, Plan, TablePlan
from engine.mysql.dump import TableDef, head_of
from engine.mysql.target import TRANSACTIONAL, Difference, TargetTable, compare_table


def make_plan(f: Facts) -> Plan:
    """Decide everything before a write; raise :class:`ActionError` for what must be refused."""
    plan = Plan(tables=[])
    edges, referenced = _fk_edges(f)
    sizes = {n: int(f.scan.tables[n].data_bytes) for n in f.names}
    order, level, group, parents = order_tables(f.names, edges, sizes)
    _refuse_unsnapshotted(f, plan)
    _refuse_replace_cascade(f, plan)
    for n in order:
        t = _table(f, plan, n)
        t.level, t.group, t.parents, t.referenced = level[n], group[n], parents[n], referenced[n]
        t.fk_checks = group[n] is None
        plan.tables.append(t)
    _triggers(f, plan)
    plan.orphan_checks = _orphan_checks(f, group)
    if f.check_mode and (f.options.truncate or f.options.schema_mismatch == "recreate") and not f.options.allow_without_snapshot:
        plan.notes.append(f"{'truncate' if f.options.truncate else 'recreate'}: refused when it runs unless a snapshot step"
                          " of this run copied the tables first")
    plan.raise_refusals()
    plan.relax_fk_checks()
    return plan


def _fk_edges(f: Facts) -> tuple[list[tuple[str, str, str]], dict[str, set[str]]]:
    """``(child, parent, constraint)`` among the restored tables, and every parent of each
    (restored or not; ``other.t`` outside the schema)."""
    edges: list[tuple[str, str, str]] = []
    referenced: dict[str, set[str]] = {n: set() for n in f.names}
    for n in f.names:
        for fk in f.defs[n].foreign_keys:
            if fk.ref_schema in (None, "", getattr(f.scan.tables[n], "schema", None), f.schema):
                edges.append((n, fk.ref_table, fk.name or ""))
                referenced[n].add(fk.ref_table)
            else:
                referenced[n].add(f"{fk.ref_schema}.{fk.ref_table}")
    for tfk in f.target_fks:
        if tfk.schema == f.schema and tfk.table in referenced:
            referenced[tfk.table].add(tfk.ref_table if tfk.ref_schema == f.schema else f"{tfk.ref_schema}.{tfk.ref_table}")
        if tfk.schema == f.schema and tfk.ref_schema == f.schema:
            edges.append((tfk.table, tfk.ref_table, tfk.name))
    return edges, referenced


def _refuse_unsnapshotted(f: Facts, plan: Plan) -> None:
    """``truncate`` empties and ``recreate`` drops live tables: only over this run's snapshot."""
    o = f.options
    if o.allow_without_snapshot:
        return
    for flag, verb in ((o.truncate, "truncate: true empties"), (o.schema_mismatch == "recreate", "schema_mismatch: recreate drops")):
        if not flag:
            continue
        live = [n for n in f.names if n in f.target and n not in f.snapshotted and n not in f.created_by_step]
        if live:
            plan.refuse(f"{verb} {', '.join(live)}, but this run took no snapshot of "
                        f"{'it' if len(live) == 1 else 'them'} — add a snapshot step before the restore "
                        "(or allow_without_snapshot: true)")


def _refuse_replace_cascade(f: Facts, plan: Plan) -> None:
    if f.options.on_conflict != "replace":
        return
    for fk in f.target_fks:
        if fk.ref_schema == f.schema and fk.ref_table in f.names and fk.on_delete.upper() in ("CASCADE", "SET NULL"):
            plan.refuse(f"on_conflict: replace would {'delete' if fk.on_delete.upper() == 'CASCADE' else 'null out'} "
                        f"child rows: {fk.schema}.{fk.table} has FOREIGN KEY {fk.name} ON DELETE {fk.on_delete.upper()} "
                        f"referencing {fk.ref_table} (REPLACE deletes the old row first) — use on_conflict: upsert")


def _table(f: Facts, plan: Plan, n: str) -> TablePlan:
    d, ts, tgt = f.defs[n], f.scan.tables[n], f.target.get(n)
    diffs = compare_table(d, tgt, n, f.default_collations)
    plan.findings.extend(diffs)
    ddl = _ddl(f, plan, n, tgt, diffs)
    kept = tgt if ddl == "keep" else None
    cols = _columns(f, plan, n, d, kept)
    engine = (kept.engine or "InnoDB") if kept is not None else (d.engine or "InnoDB")
    load_data = types_allow_load_data([c.type for c in d.columns]) and _load_data_safe(f.scan, n)
    # upsert loads by INSERT: into an empty table directly, else through a temporary copy (staged)
    conflict = "error" if f.options.on_conflict == "upsert" else f.options.on_conflict
    shape = Shape(n, cols.columns, frozenset(cols.skip), cols.explicit, conflict, f.options.charset, load_data,
                  verify_literals=getattr(f.scan, "load_data_safe", None) is None and getattr(ts, "load_data_safe", None) is None,
                  has_generated=bool(cols.generated))
    t = TablePlan(name=n, rows=int(ts.rows), bytes=int(ts.data_bytes), ddl=ddl, truncate=f.options.truncate and kept is not None,
                  shape=shape, via_temp=cols.via_temp, fk_checks=True, group=None, level=0, parents=set(),
                  transactional=engine.lower() in TRANSACTIONAL, empty=_emptiness(f, n, tgt, ddl), findings=diffs,
                  has_triggers=bool(getattr(ts, "has_triggers", False)), create_sql=_create_text(ts, d),
                  dump_columns=cols.columns, created=ddl in ("create", "recreate") or n in f.created_by_step,
                  conflict=f.options.on_conflict)
    _keys(f, plan, t, d, kept)
    if cols.via_temp and (not load_data or t.staged):
        plan.refuse(f"{n}: the target lacks dump column(s) {', '.join(sorted(cols.absent))} and the rows hold values only"
                    " INSERT can load (hex, bit, spatial) or on_conflict is upsert — add the columns to the target, or"
                    " schema_mismatch: recreate")
    t.keep_counter = tgt is not None and (t.truncate or ddl == "recreate") and any(c.auto_increment for c in tgt.columns)
    _non_transactional(f, plan, t, engine)
    if n in f.alter_tables and not t.created:
        plan.notes.append(f"{n}: the dump's ALTER TABLE (keys, constraints, AUTO_INCREMENT) of it is not replayed: the"
                          " target's table is kept as it is")
    return t


def _ddl(f: Facts, plan: Plan, n: str, tgt: TargetTable | None, diffs: list[Difference]) -> str:
    """keep | create | recreate. A target schema that held no table when the step first ran is
    no mismatch: everything is created (a missing table beside existing ones still is)."""
    mismatch = f.options.schema_mismatch
    if tgt is None:
        if mismatch == "error" and not f.target_was_empty:
            plan.refuse(f"table {n} is missing on the target — schema_mismatch: create_missing creates it from the dump")
        return "create"
    if mismatch == "recreate" and n not in f.created_by_step:
        return "recreate"
    if diffs and mismatch in ("error", "create_missing") and not (f.target_was_empty and n in f.created_by_step):
        for x in diffs:
            plan.refuse(f"{x} (schema_mismatch: {mismatch})")
    elif diffs and mismatch == "common_columns":
        for x in diffs:
            if x.what == "not_a_table":
                plan.refuse(f"{x} (schema_mismatch: common_columns cannot load into it)")
    return "keep"


def _fmt(cols: tuple[str, ...] | None, d: TableDef) -> str:
    return "(" + ", ".join(cols if cols is not None else [c.name for c in d.columns]) + ")" + \
        (" (no column list: CREATE TABLE order)" if cols is None else "")


@dataclass(frozen=True)
class _Columns:
    columns: tuple[str, ...]  # what the rows carry, in their order
    skip: set[str]  # values dropped: generated (dump or target), or absent on the target (common_columns)
    generated: set[str]
    absent: set[str]
    explicit: bool  # name the columns in the INSERT / LOAD DATA
    via_temp: bool


def _columns(f: Facts, plan: Plan, n: str, d: TableDef, tgt: TargetTable | None) -> _Columns:
    """Each data statement's own column list decides which value goes where (MySQL's mysqldump
    leaves generated columns out); statements that disagree with each other or with the CREATE
    TABLE are refused, naming both lists."""
    lists = list(getattr(f.scan.tables[n], "column_lists", {}) or {None: 0})
    create = tuple(c.name for c in d.columns)
    if len(lists) > 1:
        plan.refuse(f"table {n}: its data statements name different columns: {' and '.join(_fmt(c, d) for c in lists[:2])}"
                    " — a dump's rows of one table must all carry the same columns")
    own = lists[0]
    if own is not None:
        unknown = [c for c in own if d.column(c) is None]
        dup = sorted({c for c in own if [x.lower() for x in own].count(c.lower()) > 1})
        if unknown or dup:
            plan.refuse(f"table {n}: its data statements name {_fmt(own, d)}, its CREATE TABLE has {_fmt(create, d)}"
                        f" — {'no column ' + ', '.join(unknown) if unknown else 'column ' + ', '.join(dup) + ' twice'}")
    columns = tuple(own) if own is not None else create
    generated = {c for c in columns if (col := d.column(c)) is not None and col.generated}
    absent: set[str] = set()
    explicit = own is not None and own != create
    if tgt is not None:
        tcols = {c.name.lower(): c for c in tgt.columns}
        generated |= {c for c in columns if c.lower() in tcols and tcols[c.lower()].generated}
        absent = {c for c in columns if c.lower() not in tcols}
        loaded = [c.lower() for c in columns if c.lower() in tcols]
        if loaded != [c.name.lower() for c in tgt.columns if c.name.lower() in set(loaded)] or len(tgt.columns) != len(columns):
            explicit = True
    return _Columns(columns, generated | absent, generated, absent, explicit, bool(absent))


def _emptiness(f: Facts, n: str, tgt: TargetTable | None, ddl: str) -> bool:
    """Known empty before the load: created, re-created, truncated, found empty now, or found or
    made empty by an earlier attempt of this step (its rows since are this step's own)."""
    if ddl in ("create", "recreate") or tgt is None:
        return True
    if f.options.truncate or n in f.prepared_empty:
        return True
    return n not in f.with_rows


def _keys(f: Facts, plan: Plan, t: TablePlan, d: TableDef, tgt: TargetTable | None) -> None:
    """The key rows are matched by. Any strategy into a table holding rows without a primary or
    unique key would add every row again (nothing collides): refused unless ``allow_duplicates``. Upsert
    matches by the primary key (else a NOT NULL unique key) only; the other unique keys are where
    a backup row may collide with a *different* live row (a conflict, never an overwrite)."""
    conflict = f.options.on_conflict
    pk = tgt.primary_key if tgt is not None else d.primary_key
    uniques: list[tuple[str, tuple[str, ...]]] = list(tgt.unique_keys) if tgt is not None else list(d.unique_key_names.items())
    notnull = {c.name.lower() for c in (tgt.columns if tgt is not None else [])
               if not c.nullable} if tgt is not None else {c.name.lower() for c in d.columns if not c.nullable}
    identity = tuple(pk) or next((cols for _, cols in uniques if all(c.lower() in notnull for c in cols)), ())
    t.identity = identity
    t.unique_keys = tuple((k, cols) for k, cols in uniques if tuple(c.lower() for c in cols) != tuple(c.lower() for c in identity))
    if t.empty:
        return
    keyed = bool(identity) if conflict == "upsert" else bool(pk or uniques)
    if not keyed and not f.options.allow_duplicates:
        what = "no primary or unique key" if not (pk or uniques) else "no primary key or NOT NULL unique key to match rows by"
        plan.refuse(f"table {t.name} has {what} and holds rows: on_conflict: {conflict} would add every row of the dump"
                    " again beside them — allow_duplicates: true if that is what you want (or truncate: true after a snapshot)")
    if conflict == "upsert" and keyed:
        t.staged = True


def _non_transactional(f: Facts, plan: Plan, t: TablePlan, engine: str) -> None:
    """MyISAM/Aria cannot commit a batch with its progress row: loaded only into an empty table,
    one batch at a time, never retried in-process. A load an earlier attempt left partial is
    emptied and reloaded whole when this step created the table or this run's snapshot holds it;
    otherwise no one can tell the interrupted batch's rows from the others: refused, in doubt."""
    if t.transactional:
        return
    if not t.empty:
        plan.refuse(f"{t.name} uses {engine}, which cannot commit a batch with its progress row: exactly-once needs "
                    "the table empty first (truncate: true after a snapshot, or schema_mismatch: recreate)")
    partial = f.partial.get(t.name)
    if partial is None:
        plan.notes.append(f"{t.name} ({engine}) is not transactional: an interrupted load of it is emptied and reloaded whole"
                          " when this step created it or this run's snapshot holds it, else it is in doubt")
        return
    if t.created or t.name in f.snapshotted:
        t.reload = True
        plan.warnings.append(f"{t.name} ({engine}): {partial}; emptied and reloaded whole "
                             f"({'this step created it' if t.created else 'this run snapshot holds its rows from before'})")
        return
    plan.refuse(f"{t.name} ({engine}) is in doubt: {partial}, and which of its rows the interrupted batch wrote cannot be "
                "told (no transaction rolled them back); this step did not create it and no snapshot of this run holds it "
                f"— empty it yourself (TRUNCATE {t.name}) and resume, or restore it from a snapshot")


_TRIGGER_DEF = re.compile(rb"(?is)\bTRIGGER\s+(?:`(?:[^`]|``)+`|\S+)\s+(.*)")


def trigger_definition(text: bytes | str) -> str:
    """A trigger's timing, event, table and body, comparable across SHOW CREATE TRIGGER and a dump
    (definer, version comments, identifier quoting and spacing aside; both come from SHOW CREATE
    TRIGGER, which keeps the text as it was written)."""
    raw = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
    head = head_of(raw, len(raw))
    m = _TRIGGER_DEF.search(head)
    body = (m.group(1) if m else head).decode("utf-8", "replace")
    body = re.sub(r"`([^`]*)`", r"\1", body)
    return re.sub(r"\s+", " ", body).strip().rstrip(";").strip()


def _triggers(f: Facts, plan: Plan) -> None:
    """The target's triggers on the restored tables are set aside for the load and put back
    after it, whatever happens; the dump's version of a trigger the target also has is not
    created, and a difference between the two is reported. A trigger only the dump has is
    created after its table's rows."""
    tables = plan.by_name()
    plan.live_triggers = [t for t in f.live_triggers if t.table in tables]
    live = {t.name: t for t in plan.live_triggers}
    for t in plan.live_triggers:
        if t.definer and not f.can_set_definer and t.definer.lower() != f.account.lower():
            plan.refuse(f"trigger {t.name} on {t.table} is defined by {t.definer}: a load sets the target's triggers aside,"
                        f" and this account ({f.account}) could not put it back as {t.definer} (it needs SET USER or SUPER)"
                        " — restore with an account that can")
    for d in f.dump_triggers:
        if d.table not in tables:
            continue
        mine = live.get(d.name)
        if mine is None:
            if tables[d.table].ddl == "keep" and not tables[d.table].created:
                plan.notes.append(f"trigger {d.name} on {d.table}: in the dump, not on the target — created after the load")
            continue
        plan.skip_dump_triggers.add(d.name)
        if trigger_definition(mine.statement) != trigger_definition(d.text):
            plan.warnings.append(f"trigger {d.name} on {d.table} differs between the target and the dump: the target's version"
                                 f" is kept (target: {trigger_definition(mine.statement)[:160]}; dump: "
                                 f"{trigger_definition(d.text)[:160]})")


def _orphan_checks(f: Facts, group: dict[str, int | None]) -> list[OrphanCheck]:
    out = []
    for n in f.names:
        if group[n] is None:
            continue
        for fk in f.defs[n].foreign_keys:
            if fk.ref_table in f.names and group.get(fk.ref_table) == group[n]:
                out.append(OrphanCheck(n, fk.name, tuple(fk.columns), fk.ref_table, tuple(fk.ref_columns)))
    return out


def _load_data_safe(scan: Any, name: str) -> bool:
    safe = getattr(scan, "load_data_safe", None)
    if isinstance(safe, dict):
        return bool(safe.get(name, False))
    v = getattr(scan.tables[name], "load_data_safe", None)
    return True if v is None else bool(v)


def _create_text(ts: object, d: TableDef) -> bytes:
    if d.create_sql:
        return d.create_sql.encode("utf-8", "surrogateescape")
    create = getattr(ts, "create", None)
    text = getattr(create, "text", create)
    return text.encode() if isinstance(text, str) else bytes(text or b"")
