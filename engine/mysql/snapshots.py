"""Rollback snapshots on the server: naming, the manifest, checksums, listing and dropping.

A snapshot lives in its own schema, ``_rb_snap_<run id>``, next to a ``_manifest`` table that
says what each copy is (source table, rows, checksum, host identity, foreign keys and triggers
at snapshot time). The manifest is in the database, not on the control machine, so a DBA can
see and drop snapshots from any machine: ``runbook snapshots list`` / ``drop RUN_ID``.

Checksums are per primary-key chunk digests that cannot cancel out (:mod:`engine.mysql.checksum`);
table shapes and foreign keys come from :mod:`engine.mysql.introspect`.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from engine.mysql.values import plain
from engine.errors import ActionError, SqlError
from engine.mysql.checksum import (  # noqa: F401  (re-exported: snapshot and its tests use them from here)
    _keyset,
    _keyset_params,
    pk_chunks,
    table_checksum,
)
from engine.mysql.introspect import TableShape, base_tables, foreign_keys, table_shape  # noqa: F401
from engine.mysql.sqlutil import qualified, quote_ident
from engine.transport.base import Sql

PREFIX = "_rb_snap_"
MANIFEST = "_manifest"
MAX_IDENT = 64

MANIFEST_DDL = """CREATE TABLE IF NOT EXISTS {table} (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  run_id VARCHAR(128) NOT NULL,
  step_key VARCHAR(255) NOT NULL,
  host VARCHAR(255) NOT NULL,
  method VARCHAR(16) NOT NULL,
  source_schema VARCHAR(64) NOT NULL,
  source_table VARCHAR(64) NOT NULL,
  snap_table VARCHAR(64) NOT NULL,
  dump_path VARCHAR(1024) NULL,
  status VARCHAR(16) NOT NULL COMMENT 'copying | complete | swapping | restored',
  `rows` BIGINT NULL,
  checksum VARCHAR(16) NULL,
  definition LONGTEXT NULL COMMENT 'JSON: foreign keys and triggers at snapshot time',
  hostname VARCHAR(255) NULL,
  server_uuid VARCHAR(64) NULL,
  server_id BIGINT NULL,
  displaced_table VARCHAR(64) NULL,
  created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  completed_at DATETIME(6) NULL,
  restored_at DATETIME(6) NULL,
  UNIQUE KEY one_copy (step_key, source_schema, source_table)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"""


# --------------------------------------------------------------------------- names


def fit(name: str, limit: int = MAX_IDENT) -> str:
    """``name`` cut to MySQL's 64-character limit, with a hash suffix so cut names stay unique."""
    if len(name) <= limit:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    return name[: limit - 9] + "_" + digest


def snapshot_schema(run_id: str) -> str:
    """``_rb_snap_<run id>``: run ids with characters other than ``[A-Za-z0-9_]`` become ``_``."""
    return fit(PREFIX + re.sub(r"[^A-Za-z0-9_]", "_", run_id))


def snap_table_name(schema: str, table: str, taken: set[str], step_key: str) -> str:
    """``<schema>__<table>``; a second step of the run snapshotting the same table gets a step tag."""
    name = fit(f"{schema}__{table}")
    if name in taken:
        name = fit(f"{schema}__{table}__{hashlib.sha1(step_key.encode()).hexdigest()[:6]}")
    return name


def fk_clause(fk: dict[str, Any], ref_schema: str | None = None, ref_table: str | None = None) -> str:
    cols = ", ".join(quote_ident(c) for c in fk["columns"])
    refs = ", ".join(quote_ident(c) for c in fk["ref_columns"])
    rules = {"CASCADE", "SET NULL", "RESTRICT", "NO ACTION", "SET DEFAULT"}
    upd = fk["on_update"] if fk["on_update"] in rules else "RESTRICT"
    dele = fk["on_delete"] if fk["on_delete"] in rules else "RESTRICT"
    target = qualified(ref_schema or fk["ref_schema"], ref_table or fk["ref_table"])
    return (f"CONSTRAINT {quote_ident(fk['name'])} FOREIGN KEY ({cols}) REFERENCES {target} ({refs})"
            f" ON DELETE {dele} ON UPDATE {upd}")


def triggers(sql: Sql, schema: str, table: str) -> list[dict[str, Any]]:
    """The triggers on ``schema.table`` as re-runnable statements (with their sql_mode)."""
    names = sql.query("SELECT TRIGGER_NAME AS n FROM information_schema.TRIGGERS WHERE EVENT_OBJECT_SCHEMA = %s"
                      " AND EVENT_OBJECT_TABLE = %s ORDER BY ACTION_TIMING, EVENT_MANIPULATION, ACTION_ORDER", [schema, table])
    out = []
    for r in names.rows:
        row = sql.query(f"SHOW CREATE TRIGGER {qualified(schema, str(r['n']))}").rows[0]
        out.append({"name": str(r["n"]), "statement": plain(row["SQL Original Statement"]), "sql_mode": plain(row["sql_mode"])})
    return out


# --------------------------------------------------------------------------- list / drop


@dataclass(frozen=True)
class SnapshotTable:
    source_schema: str
    source_table: str
    snap_table: str
    method: str
    status: str
    rows: int | None
    checksum: str | None
    step_key: str
    dump_path: str | None
    displaced_table: str | None
    created_at: str | None
    restored_at: str | None


@dataclass(frozen=True)
class SnapshotInfo:
    run_id: str
    schema: str
    host: str
    hostname: str | None
    server_uuid: str | None
    server_id: int | None
    created_at: str | None
    bytes: int  # data + index of everything in the snapshot schema (copies and displaced tables)
    tables: tuple[SnapshotTable, ...]

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["tables"] = [dict(t.__dict__) for t in self.tables]
        return d


def manifest_rows(sql: Sql, schema: str) -> list[dict[str, Any]]:
    res = sql.query(f"SELECT * FROM {qualified(schema, MANIFEST)} ORDER BY id")
    return [plain(r) for r in res.rows]


def list_snapshots(sql: Sql) -> list[SnapshotInfo]:
    """Every snapshot schema on the server with its manifest, oldest first."""
    res = sql.query("SELECT s.SCHEMA_NAME AS s, COALESCE(SUM(t.DATA_LENGTH + t.INDEX_LENGTH), 0) AS b"
                    " FROM information_schema.SCHEMATA s LEFT JOIN information_schema.TABLES t ON t.TABLE_SCHEMA = s.SCHEMA_NAME"
                    " WHERE s.SCHEMA_NAME LIKE %s GROUP BY s.SCHEMA_NAME", [PREFIX.replace("_", "\\_") + "%"])
    out = []
    for r in res.rows:
        schema = str(r["s"])
        try:
            rows = manifest_rows(sql, schema)
        except SqlError:  # a schema with our prefix but no manifest: not ours, or half made
            rows = []
        if not rows:
            continue
        first = rows[0]
        tables = tuple(SnapshotTable(
            source_schema=m["source_schema"], source_table=m["source_table"], snap_table=m["snap_table"],
            method=m["method"], status=m["status"], rows=m["rows"], checksum=m["checksum"], step_key=m["step_key"],
            dump_path=m["dump_path"], displaced_table=m["displaced_table"], created_at=m["created_at"],
            restored_at=m["restored_at"]) for m in rows)
        out.append(SnapshotInfo(run_id=first["run_id"], schema=schema, host=first["host"], hostname=first["hostname"],
                                server_uuid=first["server_uuid"], server_id=first["server_id"],
                                created_at=first["created_at"], bytes=int(r["b"]), tables=tables))
    return sorted(out, key=lambda s: s.created_at or "")


def drop_snapshot(sql: Sql, run_id: str) -> SnapshotInfo:
    """Drop the snapshot of ``run_id`` (copies and displaced tables). Refuses when a table
    outside the snapshot still has a foreign key into it (dropping would orphan that FK)."""
    found = [s for s in list_snapshots(sql) if s.run_id == run_id]
    if not found:
        raise ActionError(f"no snapshot for run {run_id}", hint="`runbook snapshots list` shows the snapshots on this server")
    snap = found[0]
    refs = sql.query("SELECT CONSTRAINT_SCHEMA AS s, TABLE_NAME AS t, CONSTRAINT_NAME AS c FROM information_schema.REFERENTIAL_CONSTRAINTS"
                     " WHERE UNIQUE_CONSTRAINT_SCHEMA = %s AND CONSTRAINT_SCHEMA <> %s", [snap.schema, snap.schema])
    if refs.rows:
        names = ", ".join(f"{r['s']}.{r['t']} ({r['c']})" for r in refs.rows)
        raise ActionError(f"refusing to drop {snap.schema}: foreign keys of {names} point into it",
                          hint="re-point or drop those constraints first")
    sql.query(f"DROP DATABASE {quote_ident(snap.schema)}")
    return snap


#: the checksum recorded for a table that did not exist when the snapshot was taken
ABSENT = "absent"


def definition_json(fks: list[dict[str, Any]], trgs: list[dict[str, Any]], absent: bool = False) -> str:
    return json.dumps({"foreign_keys": fks, "triggers": trgs, **({"absent": True} if absent else {})}, sort_keys=True)


def is_absent(entry: dict[str, Any]) -> bool:
    """A manifest entry of a table that did not exist at snapshot time (nothing was copied)."""
    return bool(json.loads(entry.get("definition") or "{}").get("absent"))
