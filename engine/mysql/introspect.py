"""What a schema holds, from ``information_schema``: base tables, columns, primary keys and
foreign keys (composite ones as one constraint with its columns in order).

Each information_schema query here reads ONE table, filtered by a literal schema (and table)
name, and the rows are joined here. MariaDB fills an information_schema table before any join,
looking up only what constants of its own WHERE name: the second table of a join
(KEY_COLUMN_USAGE ⋈ REFERENTIAL_CONSTRAINTS, COLUMNS ⋈ TABLES) is filled for EVERY schema of the
server — each table opened, each view's structure too (``sys``'s views read information_schema:
~80 temporary tables, a dozen of them Aria files on disk, per lookup; 35–400 ms on a test server,
the metadata of every table on a DBA's). One table at a time: one temporary table, ~1 ms.

Never ``TABLE_ROWS``: it is an estimate (InnoDB samples pages) and MySQL 8 even caches it for
a day (``information_schema_stats_expiry``). Counts come from ``COUNT(*)``.

```python
for fk in schema_foreign_keys(sql, "shop"):
    print(fk.table, fk.name, fk.columns, "->", fk.ref_table, fk.ref_columns)
```
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.errors import ActionError
from engine.mysql.sqlutil import qualified
from engine.transport.base import Sql

#: data types whose empty string ``''`` means "no value" to a required-field check
TEXT_TYPES = frozenset({"char", "varchar", "tinytext", "text", "mediumtext", "longtext"})
DATE_TYPES = frozenset({"date", "datetime", "timestamp"})


@dataclass(frozen=True)
class TableShape:
    schema: str
    table: str
    columns: tuple[str, ...]  # stored columns in ordinal order (generated ones are excluded)
    pk: tuple[str, ...]  # empty: no primary key (copied and summed in one chunk)
    #: the columns' DATA_TYPEs (lower case), same order; the row digest needs them (FLOAT, TIMESTAMP)
    types: tuple[str, ...] = ()


@dataclass(frozen=True)
class Column:
    name: str
    data_type: str  # lower case: varchar, int, datetime, ...
    nullable: bool
    generated: bool

    @property
    def is_text(self) -> bool:
        return self.data_type in TEXT_TYPES

    @property
    def is_date(self) -> bool:
        return self.data_type in DATE_TYPES


@dataclass(frozen=True)
class ForeignKey:
    """One constraint: ``table(columns) REFERENCES ref_schema.ref_table(ref_columns)``."""

    schema: str
    table: str
    name: str
    columns: tuple[str, ...]
    ref_schema: str
    ref_table: str
    ref_columns: tuple[str, ...]
    on_update: str
    on_delete: str


def table_shape(sql: Sql, schema: str, table: str) -> TableShape:
    res = sql.query(
        "SELECT COLUMN_NAME AS c, DATA_TYPE AS dt, EXTRA AS e FROM information_schema.COLUMNS"
        " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION", [schema, table])
    if not res.rows:
        raise ActionError(f"no table {qualified(schema, table)}", hint="check the schema and table names")
    # Generated columns cannot be inserted into; they follow from the others anyway.
    stored = [r for r in res.rows if "GENERATED" not in str(r["e"] or "").upper()]
    return TableShape(schema, table, tuple(str(r["c"]) for r in stored), primary_key(sql, schema, table),
                      tuple(str(r["dt"]).lower() for r in stored))


def primary_key(sql: Sql, schema: str, table: str) -> tuple[str, ...]:
    pk = sql.query(
        "SELECT COLUMN_NAME AS c FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = %s"
        " AND TABLE_NAME = %s AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY ORDINAL_POSITION", [schema, table])
    return tuple(str(r["c"]) for r in pk.rows)


def base_tables(sql: Sql, schema: str) -> list[str]:
    res = sql.query("SELECT TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s"
                    " AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME", [schema])
    return [str(r["t"]) for r in res.rows]


def schema_exists(sql: Sql, schema: str) -> bool:
    return bool(sql.query("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", [schema]).rows)


def table_sizes(sql: Sql, schema: str) -> dict[str, int]:
    """Data + index bytes per base table: only to schedule big tables first, never as a count."""
    res = sql.query("SELECT TABLE_NAME AS t, COALESCE(DATA_LENGTH + INDEX_LENGTH, 0) AS b FROM information_schema.TABLES"
                    " WHERE TABLE_SCHEMA = %s AND TABLE_TYPE = 'BASE TABLE'", [schema])
    return {str(r["t"]): int(r["b"] or 0) for r in res.rows}


def columns(sql: Sql, schema: str, tables: list[str] | None = None) -> dict[str, list[Column]]:
    """The columns of every base table of ``schema`` (or of ``tables``), in ordinal order.

    Two one-table queries (module docstring), never COLUMNS ⋈ TABLES."""
    base = set(base_tables(sql, schema))
    res = sql.query("SELECT TABLE_NAME AS t, COLUMN_NAME AS c, DATA_TYPE AS dt, IS_NULLABLE AS n, EXTRA AS e"
                    " FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s ORDER BY TABLE_NAME, ORDINAL_POSITION",
                    [schema])
    out: dict[str, list[Column]] = {}
    for r in res.rows:
        name = str(r["t"])
        if name not in base or (tables is not None and name not in tables):
            continue
        out.setdefault(name, []).append(Column(str(r["c"]), str(r["dt"]).lower(), str(r["n"]).upper() == "YES",
                                               "GENERATED" in str(r["e"] or "").upper()))
    return out


_KCU_SQL = ("SELECT TABLE_SCHEMA AS s, TABLE_NAME AS t, CONSTRAINT_NAME AS name, COLUMN_NAME AS col,"
            " REFERENCED_TABLE_SCHEMA AS rs, REFERENCED_TABLE_NAME AS rt, REFERENCED_COLUMN_NAME AS rc"
            " FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = %s{table}"
            " AND REFERENCED_TABLE_NAME IS NOT NULL ORDER BY TABLE_NAME, CONSTRAINT_NAME, ORDINAL_POSITION")
_RC_SQL = ("SELECT TABLE_NAME AS t, CONSTRAINT_NAME AS name, UPDATE_RULE AS upd, DELETE_RULE AS del"
           " FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = %s{table}")


def schema_foreign_keys(sql: Sql, schema: str, table: str | None = None) -> list[ForeignKey]:
    """Every FK whose child table is in ``schema`` (or is ``schema.table``), composite keys as
    one constraint, self-references included (two one-table queries: module docstring)."""
    params: list[Any] = [schema] if table is None else [schema, table]
    cond = "" if table is None else " AND TABLE_NAME = %s"
    rules = {(str(r["t"]), str(r["name"])): (str(r["upd"]), str(r["del"]))
             for r in sql.query(_RC_SQL.format(table=cond), params).rows}
    acc: dict[tuple[str, str], dict[str, Any]] = {}
    for r in sql.query(_KCU_SQL.format(table=cond), params).rows:
        key = (str(r["t"]), str(r["name"]))
        if key not in rules:  # a FK dropped between the two reads
            continue
        fk = acc.setdefault(key, {
            "schema": str(r["s"]), "table": key[0], "name": key[1], "columns": [],
            "ref_schema": str(r["rs"]), "ref_table": str(r["rt"]), "ref_columns": [],
            "on_update": rules[key][0], "on_delete": rules[key][1]})
        fk["columns"].append(str(r["col"]))
        fk["ref_columns"].append(str(r["rc"]))
    return [ForeignKey(**{**f, "columns": tuple(f["columns"]), "ref_columns": tuple(f["ref_columns"])}) for f in acc.values()]


def foreign_keys_touching(sql: Sql, schema: str) -> list[ForeignKey]:
    """Every FK whose child or parent is in ``schema`` (children in other schemas included:
    a REPLACE into a parent cascades into them too). Finding the children elsewhere reads
    REFERENTIAL_CONSTRAINTS of every schema once (no index on the parent's schema); their
    columns are then read schema by schema."""
    fks = schema_foreign_keys(sql, schema)
    outside = sql.query("SELECT DISTINCT CONSTRAINT_SCHEMA AS s FROM information_schema.REFERENTIAL_CONSTRAINTS"
                        " WHERE UNIQUE_CONSTRAINT_SCHEMA = %s AND CONSTRAINT_SCHEMA <> %s ORDER BY 1", [schema, schema])
    for r in outside.rows:
        fks += [fk for fk in schema_foreign_keys(sql, str(r["s"])) if fk.ref_schema == schema]
    return fks


def foreign_keys(sql: Sql, schema: str, table: str) -> list[dict[str, Any]]:
    """The FKs *of* ``schema.table`` (as the child), one dict per constraint (the snapshot
    manifest's JSON form)."""
    return [{"name": fk.name, "columns": list(fk.columns), "ref_schema": fk.ref_schema, "ref_table": fk.ref_table,
             "ref_columns": list(fk.ref_columns), "on_update": fk.on_update, "on_delete": fk.on_delete}
            for fk in schema_foreign_keys(sql, schema, table)]


def table_exists(sql: Sql, schema: str, table: str) -> bool:
    """A base table or view ``schema.table`` exists (one indexed lookup of information_schema)."""
    return bool(sql.query("SELECT 1 AS x FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
                          [schema, table]).rows)


def step_run_row(sql: Sql, schema: str, table: str, step_id: str) -> dict[str, Any] | None:
    """The row of a resumable step (restore, binlog replay) in its runs table: text columns
    decoded and ``result`` parsed; None when there is none, also when the table does not exist
    yet (a read-only probe creates nothing)."""
    import json

    if not table_exists(sql, schema, table):
        return None
    rows = sql.query(f"SELECT * FROM {qualified(schema, table)} WHERE step_id = %s", [step_id]).rows
    if not rows:
        return None
    out = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in rows[0].items()}
    out["result"] = json.loads(out["result"]) if out.get("result") else None
    return out
