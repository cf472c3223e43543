"""What the restore planner decides from, read from the target before any write (and read
again on a resume: what an earlier attempt of the step did is in ``_runbook``)."""

from __future__ import annotations

from typing import Any

from engine.actions.restore import progress as prog
from engine.actions.restore.index import DumpIndex
from engine.actions.restore.plan import DumpTrigger, LiveTrigger
from engine.mysql.snapshots import MANIFEST, manifest_rows, snapshot_schema
from engine.mysql.sqlutil import qualified
from engine.mysql.target import TRANSACTIONAL, TargetTable, has_rows
from engine.mysql.values import plain
from engine.transport.base import Sql


def snapshotted(sql: Sql, run_id: str, schema: str) -> set[str]:
    """The tables of ``schema`` this run's snapshot holds (complete, or already swapped back)."""
    snap = snapshot_schema(run_id)
    if not sql.query("SELECT 1 AS x FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
                     [snap, MANIFEST]).rows:
        return set()
    return {m["source_table"] for m in manifest_rows(sql, snap)
            if m["source_schema"] == schema and m["status"] in ("complete", "restored")}


def with_rows(sql: Sql, schema: str, names: list[str], target: dict[str, TargetTable]) -> set[str]:
    return {n for n in names if n in target and target[n].kind.upper() == "BASE TABLE" and has_rows(sql, schema, n)}


def live_triggers(sql: Sql, schema: str, names: list[str], sid: str) -> list[LiveTrigger]:
    """The target's triggers on the restored tables, and those an earlier attempt of this step
    set aside and has not put back yet."""
    wanted = set(names)
    out: dict[str, LiveTrigger] = {}
    for r in prog.saved_triggers(sql, sid):
        if not r["restored"] and r["tbl"] in wanted:
            out[r["name"]] = LiveTrigger(r["tbl"], r["name"], r["statement"], r["sql_mode"])
    rows = sql.query("SELECT TRIGGER_NAME AS n, EVENT_OBJECT_TABLE AS t, DEFINER AS d FROM information_schema.TRIGGERS"
                     " WHERE TRIGGER_SCHEMA = %s ORDER BY EVENT_OBJECT_TABLE, ACTION_TIMING, EVENT_MANIPULATION, ACTION_ORDER",
                     [schema]).rows
    for r in rows:
        name, table = str(plain(r["n"])), str(plain(r["t"]))
        if table in wanted:
            row = sql.query(f"SHOW CREATE TRIGGER {qualified(schema, name)}").rows[0]
            out[name] = LiveTrigger(table, name, str(plain(row["SQL Original Statement"])), str(plain(row["sql_mode"])),
                                    str(plain(r["d"]) or ""))
    return list(out.values())


def account(sql: Sql) -> tuple[str, bool]:
    """CURRENT_USER() and whether it may create objects for another definer (a trigger set
    aside for the load is put back with its own DEFINER)."""
    me = str(plain(sql.query("SELECT CURRENT_USER() AS u").rows[0]["u"]))
    user, _, host = me.rpartition("@")
    grantee = f"'{user}'@'{host}'"
    n = sql.query("SELECT COUNT(*) AS n FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = %s"
                  " AND PRIVILEGE_TYPE IN ('SUPER', 'SET USER', 'SET_USER_ID')", [grantee]).rows[0]["n"]
    return me, int(n) > 0


def dump_triggers(index: DumpIndex) -> list[DumpTrigger]:
    return [DumpTrigger(st.table, st.name, st.text) for st in index.control
            if st.kind == "post" and st.post_kind == "trigger" and st.verb == "create" and st.table and st.name]


def partial_loads(sql: Sql, schema: str, sid: str, index: DumpIndex, target: dict[str, TargetTable],
                  done: dict[tuple[str, int, int], prog.Done]) -> dict[str, str]:
    """Non-transactional tables an earlier attempt of this step began to load and left with rows
    no committed batch accounts for (a batch's rows stay when its progress row does not)."""
    out: dict[str, str] = {}
    for name, ti in index.tables.items():
        t = target.get(name)
        if t is None or t.engine.lower() in TRANSACTIONAL or (name, prog.PREPARED, 0) not in done:
            continue
        batches = [done[b.key] for b in ti.batches if b.key in done]
        if len(batches) == len(ti.batches):
            continue
        have = int(sql.query(f"SELECT COUNT(*) AS n FROM {qualified(schema, name)}").rows[0]["n"])
        committed = sum(d.rows for d in batches)
        if have != committed:
            out[name] = (f"an interrupted load left {have:,} row(s) in it where its {len(batches)} committed batch(es)"
                         f" hold {committed:,} (partial)")
    return out


def alter_tables(index: DumpIndex) -> set[str]:
    return {st.table for st in index.control if st.kind == "alter" and st.table}


def prior_flag(prior: dict[str, Any] | None, key: str) -> bool | None:
    """A decision the first attempt of this step recorded with its options (a resume keeps it)."""
    if prior is None or key not in (prior.get("options") or {}):
        return None
    return bool(prior["options"][key])
