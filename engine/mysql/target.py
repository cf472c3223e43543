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
    charset: str | None = None  # CHARACTER_SET_NAME (None: not a character column)
    collation: str | None = None
    auto_increment: bool = False


@dataclass(frozen=True)
class TargetTable:
    name: str
    columns: tuple[TargetColumn, ...]
    primary_key: tuple[str, ...]
    engine: str
    kind: str  # BASE TABLE | VIEW
    unique_keys: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (index name, columns), primary key excluded
    auto_increment: int | None = None  # the table's next AUTO_INCREMENT value (None: no such column)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def transactional(self) -> bool:
        return self.engine.lower() in TRANSACTIONAL


def describe_schema(sql: Sql, schema: str) -> dict[str, TargetTable]:
    """Every table and view of ``schema`` with its columns, primary key and engine."""
    tables = sql.query("SELECT TABLE_NAME AS t, TABLE_TYPE AS k, ENGINE AS e, AUTO_INCREMENT AS ai FROM information_schema.TABLES"
                       " WHERE TABLE_SCHEMA = %s", [schema]).rows
    cols = sql.query("SELECT TABLE_NAME AS t, COLUMN_NAME AS c, COLUMN_TYPE AS y, IS_NULLABLE AS n, EXTRA AS x,"
                     " GENERATION_EXPRESSION AS g, CHARACTER_SET_NAME AS cs, COLLATION_NAME AS co"
                     " FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s"
                     " ORDER BY TABLE_NAME, ORDINAL_POSITION", [schema]).rows
    keys = sql.query("SELECT TABLE_NAME AS t, INDEX_NAME AS i, COLUMN_NAME AS c FROM information_schema.STATISTICS"
                     " WHERE TABLE_SCHEMA = %s AND NON_UNIQUE = 0 ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX", [schema]).rows
    by_table: dict[str, list[TargetColumn]] = {}
    for r in cols:
        extra = str(r["x"] or "").upper()
        generated = "GENERATED" in extra or "VIRTUAL" in extra or "PERSISTENT" in extra or "STORED" in extra
        by_table.setdefault(_s(r["t"]), []).append(
            TargetColumn(_s(r["c"]), _s(r["y"]).lower(), _s(r["n"]) == "YES", generated, _s(r["cs"]) or None,
                         _s(r["co"]) or None, "AUTO_INCREMENT" in extra))
    uniq: dict[str, dict[str, list[str]]] = {}
    for r in keys:
        uniq.setdefault(_s(r["t"]), {}).setdefault(_s(r["i"]), []).append(_s(r["c"]))
    out = {}
    for r in tables:
        name = _s(r["t"])
        found = uniq.get(name, {})
        out[name] = TargetTable(name, tuple(by_table.get(name, [])), tuple(found.get("PRIMARY", [])), _s(r["e"] or ""),
                                _s(r["k"]), tuple((k, tuple(c)) for k, c in found.items() if k != "PRIMARY"),
                                int(r["ai"]) if r["ai"] is not None else None)
    return out


def default_collations(sql: Sql) -> dict[str, str]:
    """Each character set's default collation on this server (what a column without COLLATE gets)."""
    rows = sql.query("SELECT CHARACTER_SET_NAME AS cs, COLLATION_NAME AS co FROM information_schema.COLLATIONS"
                     " WHERE IS_DEFAULT = 'Yes'").rows
    return {_s(r["cs"]).lower(): _s(r["co"]).lower() for r in rows}




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
    what: str  # missing_table | missing_column | extra_column | type | nullability | charset | collation | order | primary_key | not_a_table
    detail: str

    def __str__(self) -> str:
        return f"{self.table}: {self.detail}"


_TEXT_TYPES = frozenset({"char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set"})


def _cs(name: str | None) -> str | None:
    """utf8 is utf8mb3 (MariaDB >= 10.6 and MySQL 8 say so in information_schema)."""
    if not name:
        return None
    name = name.lower()
    if name == "utf8" or name.startswith("utf8_"):
        return "utf8mb3" + name[4:]
    return name


def dump_charset(dump: Any, column: Any, defaults: dict[str, str] | None) -> tuple[str | None, str | None]:
    """(character set, collation) a dump's column gets when its CREATE TABLE runs here: its own
    CHARACTER SET/COLLATE, else the table's DEFAULT CHARSET/COLLATE, else the charset's default
    collation on this server. (None, None) for a non-character column or where the dump is silent."""
    if column.base_type not in _TEXT_TYPES:
        return None, None
    col_cs, col_co = _cs(column.charset), _cs(column.collation)
    tab_cs, tab_co = _cs(getattr(dump, "default_charset", None)), _cs(getattr(dump, "default_collation", None))
    cs = col_cs or (col_co.split("_", 1)[0] if col_co else None) or tab_cs or (tab_co.split("_", 1)[0] if tab_co else None)
    if cs is None:
        return None, None
    if col_co:
        return cs, col_co
    if tab_co and tab_co.split("_", 1)[0] == cs and (col_cs is None or col_cs == tab_cs):
        return cs, tab_co
    return cs, _cs((defaults or {}).get(cs))


def compare_table(dump: Any, target: TargetTable | None, table: str,
                  default_collations: dict[str, str] | None = None) -> list[Difference]:
    """How ``target`` differs from ``dump`` (a ``TableDef`` of the dump reader). Character
    columns are compared by character set and collation too: a latin1 column takes no emoji."""
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
        cs, co = dump_charset(dump, c, default_collations)
        if cs and t.charset and cs != _cs(t.charset):
            out.append(Difference(table, "charset", f"column {c.name} is CHARACTER SET {t.charset} on the target, {cs} in the dump"))
        elif co and t.collation and co != _cs(t.collation):
            out.append(Difference(table, "collation", f"column {c.name} is COLLATE {t.collation} on the target, {co} in the dump"))
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
