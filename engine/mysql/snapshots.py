"""Rollback snapshots on the server: naming, the manifest, checksums, listing and dropping.

A snapshot lives in its own schema, ``_rb_snap_<run id>``, next to a ``_manifest`` table that
says what each copy is (source table, rows, checksum, host identity, foreign keys and triggers
at snapshot time). The manifest is in the database, not on the control machine, so a DBA can
see and drop snapshots from any machine: ``runbook snapshots list`` / ``drop RUN_ID``.

Checksums are pt-table-checksum's: per primary-key chunk,
``BIT_XOR(CAST(CRC32(CONCAT_WS('#', c1, c2, ..., CONCAT(ISNULL(c1), ISNULL(c2), ...))) AS UNSIGNED))``.
BIT_XOR is associative, so the chunk values XOR into one table value whatever the chunking —
unlike ``CHECKSUM TABLE``, which depends on the row format (mydumper #860).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from engine.mysql.values import plain
from engine.errors import ActionError, SqlError
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


# --------------------------------------------------------------------------- table shape


@dataclass(frozen=True)
class TableShape:
    schema: str
    table: str
    columns: tuple[str, ...]  # stored columns in ordinal order (generated ones are excluded)
    pk: tuple[str, ...]  # empty: no primary key (copied and summed in one chunk)


def table_shape(sql: Sql, schema: str, table: str) -> TableShape:
    res = sql.query(
        "SELECT COLUMN_NAME AS c, COLUMN_KEY AS k, EXTRA AS e FROM information_schema.COLUMNS"
        " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION", [schema, table])
    if not res.rows:
        raise ActionError(f"no table {qualified(schema, table)}", hint="check the schema and table names")
    # Generated columns cannot be inserted into; they follow from the others anyway.
    cols = tuple(str(r["c"]) for r in res.rows if "GENERATED" not in str(r["e"] or "").upper())
    pk = sql.query(
        "SELECT COLUMN_NAME AS c FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = %s"
        " AND TABLE_NAME = %s AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY ORDINAL_POSITION", [schema, table])
    return TableShape(schema, table, cols, tuple(str(r["c"]) for r in pk.rows))


def base_tables(sql: Sql, schema: str) -> list[str]:
    res = sql.query("SELECT TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s"
                    " AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME", [schema])
    return [str(r["t"]) for r in res.rows]


def _keyset(cols: tuple[str, ...], op: str) -> str:
    """``(a, b) op (x, y)`` spelled out so MariaDB can use the PK range: ``a > %s OR (a = %s AND b > %s)``."""
    strict = op.rstrip("=")
    head = quote_ident(cols[0])
    if len(cols) == 1:
        return f"{head} {op} %s"
    return f"({head} {strict} %s OR ({head} = %s AND {_keyset(cols[1:], op)}))"


def _keyset_params(values: tuple[Any, ...]) -> list[Any]:
    if len(values) == 1:
        return [values[0]]
    return [values[0], values[0], *_keyset_params(values[1:])]


def pk_chunks(sql: Sql, shape: TableShape, chunk_rows: int) -> Iterator[tuple[str, list[Any]]]:
    """``(WHERE condition, params)`` for consecutive primary-key ranges of ~chunk_rows rows."""
    if not shape.pk:
        yield "1 = 1", []
        return
    tbl = qualified(shape.schema, shape.table)
    order = ", ".join(quote_ident(c) for c in shape.pk)
    lower: tuple[Any, ...] | None = None
    while True:
        cond, params = ("1 = 1", []) if lower is None else (_keyset(shape.pk, ">"), _keyset_params(lower))
        res = sql.query(f"SELECT {order} FROM {tbl} WHERE {cond} ORDER BY {order} LIMIT 1 OFFSET %s",
                        [*params, chunk_rows - 1])
        if not res.rows:
            yield cond, params
            return
        upper = tuple(res.rows[0].values())
        yield f"{cond} AND {_keyset(shape.pk, '<=')}", [*params, *_keyset_params(upper)]
        lower = upper


def checksum_expr(columns: tuple[str, ...]) -> str:
    q = [quote_ident(c) for c in columns]
    nulls = "CONCAT(" + ", ".join(f"ISNULL({c})" for c in q) + ")"
    return f"COALESCE(BIT_XOR(CAST(CRC32(CONCAT_WS('#', {', '.join(q)}, {nulls})) AS UNSIGNED)), 0)"


def chunk_sum(sql: Sql, schema: str, table: str, columns: tuple[str, ...], cond: str, params: list[Any]) -> tuple[int, int]:
    """(rows, BIT_XOR) of one chunk of ``schema.table``."""
    res = sql.query(f"SELECT COUNT(*) AS n, {checksum_expr(columns)} AS x FROM {qualified(schema, table)} WHERE {cond}", params)
    row = res.rows[0]
    return int(row["n"]), int(row["x"])


def table_checksum(sql: Sql, shape: TableShape, chunk_rows: int = 50000, table: str | None = None,
                   schema: str | None = None) -> tuple[int, str]:
    """(rows, checksum hex) of a table, chunked by its primary key; ``schema``/``table``
    override where to read (a copy with the same shape)."""
    rows, xor = 0, 0
    for cond, params in pk_chunks(sql, shape, chunk_rows):
        n, x = chunk_sum(sql, schema or shape.schema, table or shape.table, shape.columns, cond, params)
        rows, xor = rows + n, xor ^ x
    return rows, f"{xor:08x}"


# --------------------------------------------------------------------------- definitions


def foreign_keys(sql: Sql, schema: str, table: str) -> list[dict[str, Any]]:
    """The FKs *of* ``schema.table`` (as the child), one dict per constraint."""
    res = sql.query(
        "SELECT k.CONSTRAINT_NAME AS name, k.COLUMN_NAME AS col, k.REFERENCED_TABLE_SCHEMA AS rs,"
        " k.REFERENCED_TABLE_NAME AS rt, k.REFERENCED_COLUMN_NAME AS rc, r.UPDATE_RULE AS upd, r.DELETE_RULE AS del"
        " FROM information_schema.KEY_COLUMN_USAGE k JOIN information_schema.REFERENTIAL_CONSTRAINTS r"
        "   ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME AND r.TABLE_NAME = k.TABLE_NAME"
        " WHERE k.TABLE_SCHEMA = %s AND k.TABLE_NAME = %s AND k.REFERENCED_TABLE_NAME IS NOT NULL"
        " ORDER BY k.CONSTRAINT_NAME, k.ORDINAL_POSITION", [schema, table])
    out: dict[str, dict[str, Any]] = {}
    for r in res.rows:
        fk = out.setdefault(str(r["name"]), {"name": str(r["name"]), "columns": [], "ref_schema": str(r["rs"]),
                                            "ref_table": str(r["rt"]), "ref_columns": [],
                                            "on_update": str(r["upd"]), "on_delete": str(r["del"])})
        fk["columns"].append(str(r["col"]))
        fk["ref_columns"].append(str(r["rc"]))
    return list(out.values())


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


def definition_json(fks: list[dict[str, Any]], trgs: list[dict[str, Any]]) -> str:
    return json.dumps({"foreign_keys": fks, "triggers": trgs}, sort_keys=True)
