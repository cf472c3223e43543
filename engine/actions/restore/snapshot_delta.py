"""What a restore left only in the run's snapshot: the rows written after the backup.

A restore that empties a table (``truncate``, ``schema_mismatch: recreate``) or overwrites rows
with the backup's (``on_conflict: upsert|replace``) leaves the table as the backup had it: a
row written after the backup — a new order, a changed status — now lives only in the snapshot
copy this run took before the restore. The operator must know how many, per table, before
dropping that snapshot.

Counted on the server, by primary key, right after the load: each row of the snapshot copy with
no *identical* live row (same key, every common column equal, NULL-safe) is one whose version
exists only in the snapshot — ``keys_not_restored`` (its key is not live any more: written after
the backup, or by the incident) plus ``versions_replaced`` (its key is live with the backup's
values). A table without a primary key, or that no snapshot step of this run copied, is not
counted. An ``ignore`` restore never removes a live row: nothing is counted.
"""

from __future__ import annotations

from typing import Any

from engine.errors import RunbookError
from engine.mysql.introspect import table_shape
from engine.mysql.snapshots import MANIFEST, manifest_rows, snapshot_schema
from engine.mysql.sqlutil import qualified, quote_ident
from engine.transport.base import Sql

HOW = ("rows of the snapshot copy taken before the restore that have no identical row in the live table after it "
       "(same primary key, every common column equal): keys not restored + versions replaced by the backup's")


def _copies(sql: Sql, run_id: str, schema: str) -> dict[str, str]:
    """Live table -> its complete snapshot copy in this run's snapshot schema."""
    snap = snapshot_schema(run_id)
    if not sql.query("SELECT 1 AS x FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
                     [snap, MANIFEST]).rows:
        return {}
    out = {}
    for m in manifest_rows(sql, snap):
        if m["source_schema"] == schema and m["status"] == "complete" and m.get("snap_table"):
            out[str(m["source_table"])] = str(m["snap_table"])
    return out


def left_in_snapshot(sql: Sql, run_id: str, schema: str, tables: list[Any]) -> dict[str, Any] | None:
    """``{snapshot_schema, tables: {t: {snapshot_rows, keys_not_restored, versions_replaced,
    rows}}, rows, how}`` for the restored tables (``TablePlan``) this restore may have taken
    rows away from; None when there is none to count."""
    counted = [t for t in tables if t.truncate or t.ddl == "recreate" or t.conflict in ("upsert", "replace")]
    if not counted:
        return None
    copies = _copies(sql, run_id, schema)
    snap = snapshot_schema(run_id)
    out: dict[str, Any] = {}
    for t in counted:
        copy = copies.get(t.name)
        if copy is None:
            continue
        try:
            live, kept = table_shape(sql, schema, t.name), table_shape(sql, snap, copy)
        except RunbookError:
            continue
        if not live.pk or not set(live.pk) <= set(kept.columns):
            continue
        common = [c for c in kept.columns if c in live.columns]
        on = " AND ".join(f"s.{quote_ident(k)} = l.{quote_ident(k)}" for k in live.pk)
        same = " AND ".join(f"s.{quote_ident(c)} <=> l.{quote_ident(c)}" for c in common)
        first = quote_ident(live.pk[0])
        try:
            row = sql.query(f"SELECT COUNT(*) AS n, COALESCE(SUM(l.{first} IS NULL), 0) AS gone,"
                            f" COALESCE(SUM(l.{first} IS NOT NULL AND NOT ({same})), 0) AS replaced"
                            f" FROM {qualified(snap, copy)} s LEFT JOIN {qualified(schema, t.name)} l ON {on}").rows[0]
        except RunbookError:
            continue
        gone, replaced = int(row["gone"] or 0), int(row["replaced"] or 0)
        out[t.name] = {"snapshot_rows": int(row["n"] or 0), "keys_not_restored": gone, "versions_replaced": replaced,
                       "rows": gone + replaced}
    if not out:
        return None
    return {"snapshot_schema": snap, "tables": out, "rows": sum(v["rows"] for v in out.values()), "how": HOW}
