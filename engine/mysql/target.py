"""What a target schema holds, read from ``information_schema``, and how it differs from a
dump's ``CREATE TABLE``.

Used by ``restore`` before any write: the comparison decides, per ``schema_mismatch``, whether
a table is loaded as it is, created, re-created, loaded by common columns, or refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from engine.transport.base import Sql

#: engines whose writes commit with the progress row (exactly-once needs it)
TRANSACTIONAL = {"innodb", "xtradb", "rocksdb", "tokudb", "ndbcluster"}


@dataclass(frozen=True)
class TargetColumn:
    name: str
    type: str  # COLUMN_TYPE, lower case: ``int(11)``, ``varchar(50)``, ``enum('a','b')``
    nullable: bool
    generated: bool


@dataclass(frozen=True)
class TargetTable:
    name: str
    columns: tuple[TargetColumn, ...]
    primary_key: tuple[str, ...]
    engine: str
    kind: str  # BASE TABLE | VIEW

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def transactional(self) -> bool:
        return self.engine.lower() in TRANSACTIONAL


def describe_schema(sql: Sql, schema: str) -> dict[str, TargetTable]:
    """Every table and view of ``schema`` with its columns, primary key and engine."""
    tables = sql.query("SELECT TABLE_NAME AS t, TABLE_TYPE AS k, ENGINE AS e FROM information_schema.TABLES"
                       " WHERE TABLE_SCHEMA = %s", [schema]).rows
    cols = sql.query("SELECT TABLE_NAME AS t, COLUMN_NAME AS c, COLUMN_TYPE AS y, IS_NULLABLE AS n, EXTRA AS x,"
                     " GENERATION_EXPRESSION AS g FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s"
                     " ORDER BY TABLE_NAME, ORDINAL_POSITION", [schema]).rows
    pks = sql.query("SELECT TABLE_NAME AS t, COLUMN_NAME AS c FROM information_schema.KEY_COLUMN_USAGE"
                    " WHERE TABLE_SCHEMA = %s AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY TABLE_NAME, ORDINAL_POSITION",
                    [schema]).rows
    by_table: dict[str, list[TargetColumn]] = {}
    for r in cols:
        extra = str(r["x"] or "").upper()
        generated = "GENERATED" in extra or "VIRTUAL" in extra or "PERSISTENT" in extra or "STORED" in extra
        by_table.setdefault(_s(r["t"]), []).append(
            TargetColumn(_s(r["c"]), _s(r["y"]).lower(), _s(r["n"]) == "YES", generated))
    pk: dict[str, list[str]] = {}
    for r in pks:
        pk.setdefault(_s(r["t"]), []).append(_s(r["c"]))
    return {_s(r["t"]): TargetTable(_s(r["t"]), tuple(by_table.get(_s(r["t"]), [])), tuple(pk.get(_s(r["t"]), [])),
                                    _s(r["e"] or ""), _s(r["k"])) for r in tables}




def has_rows(sql: Sql, schema: str, table: str) -> bool:
    from engine.mysql.sqlutil import qualified

    return bool(sql.query(f"SELECT 1 AS x FROM {qualified(schema, table)} LIMIT 1").rows)


# --------------------------------------------------------------------------- comparison

_CHARSET = re.compile(r"\s+(character set|charset|collate)\s+\w+", re.I)
_INT_WIDTH = re.compile(r"\b(tinyint|smallint|mediumint|int|integer|bigint)\(\d+\)")


def normalize_type(text: str) -> str:
    """A column type as comparable text: lower case, no charset/collation clause, no integer
    display width (MySQL 8 drops it, MariaDB keeps it), single spaces."""
    t = _CHARSET.sub("", text.strip().lower())
    t = _INT_WIDTH.sub(lambda m: m.group(1).replace("integer", "int"), t)
    t = t.replace("integer", "int")
    return re.sub(r"\s+", " ", t).strip()


@dataclass(frozen=True)
class Difference:
    """One way a target table differs from the dump's definition."""

    table: str
    what: str  # missing_table | missing_column | extra_column | type | nullability | order | primary_key | not_a_table
    detail: str

    def __str__(self) -> str:
        return f"{self.table}: {self.detail}"


def compare_table(dump: Any, target: TargetTable | None, table: str) -> list[Difference]:
    """How ``target`` differs from ``dump`` (a ``TableDef`` of the dump reader)."""
    if target is None:
        return [Difference(table, "missing_table", "table missing on the target")]
    if target.kind.upper() != "BASE TABLE":
        return [Difference(table, "not_a_table", f"is a {target.kind.lower()} on the target, a table in the dump")]
    out: list[Difference] = []
    dcols = {c.name.lower(): c for c in dump.columns}
    tcols = {c.name.lower(): c for c in target.columns}
    for c in dump.columns:
        t = tcols.get(c.name.lower())
        if t is None:
            out.append(Difference(table, "missing_column", f"column {c.name} of the dump is missing on the target"))
            continue
        if normalize_type(c.type) != normalize_type(t.type):
            out.append(Difference(table, "type", f"column {c.name} is {t.type} on the target, {c.type} in the dump"))
        elif bool(c.nullable) != t.nullable:
            out.append(Difference(table, "nullability", f"column {c.name} is {'NULL' if t.nullable else 'NOT NULL'} on the target, "
                                                       f"{'NULL' if c.nullable else 'NOT NULL'} in the dump"))
    for t in target.columns:
        if t.name.lower() not in dcols:
            out.append(Difference(table, "extra_column", f"column {t.name} exists on the target only"))
    common_dump = [c.name.lower() for c in dump.columns if c.name.lower() in tcols]
    common_target = [c.name.lower() for c in target.columns if c.name.lower() in dcols]
    if common_dump != common_target:
        out.append(Difference(table, "order", "columns are in a different order on the target"))
    if tuple(x.lower() for x in dump.primary_key) != tuple(x.lower() for x in target.primary_key):
        out.append(Difference(table, "primary_key", f"primary key is ({', '.join(target.primary_key) or 'none'}) on the target, "
                                                    f"({', '.join(dump.primary_key) or 'none'}) in the dump"))
    return out


def _s(v: Any) -> str:
    if isinstance(v, (bytes, bytearray)):
        return v.decode("utf-8", "replace")
    return "" if v is None else str(v)
