"""The live tables a replay writes into: their columns (signedness, generated), their key, and
whether a binlog's Table_map still describes them.

The binlog says each column's type and width, not its name, signedness or key (unless
``binlog_row_metadata=FULL``): those come from ``information_schema`` here, and a Table_map
whose columns do not match the live table (a DDL outside the window) is refused by name before
anything is applied.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from engine.errors import ActionError
from engine.mysql.binlog.tablemap import TableMap
from engine.mysql.binlog.rows import BYTES, EPOCH, INT_OF, NONE, NUM, TEMPORAL, Layout
from engine.mysql.introspect import base_tables, primary_key
from engine.mysql.sqlutil import quote_ident
from engine.transport.base import Sql

#: binlog type codes each live DATA_TYPE may be logged as
_FAMILY = {
    "tinyint": {1}, "smallint": {2}, "mediumint": {9}, "int": {3}, "integer": {3}, "bigint": {8}, "float": {4},
    "double": {5}, "decimal": {246}, "numeric": {246}, "year": {13}, "date": {10, 14}, "time": {11, 19},
    "datetime": {12, 18}, "timestamp": {7, 17}, "bit": {16}, "enum": {247}, "set": {248},
    "char": {254}, "binary": {254}, "varchar": {15, 253}, "varbinary": {15, 253}, "json": {245, 252},
    "uuid": {254}, "inet6": {254}, "inet4": {254},
}
_BLOBS = {"tinyblob", "blob", "mediumblob", "longblob", "tinytext", "text", "mediumtext", "longtext", "json"}
_GEOMETRY = {"geometry", "point", "linestring", "polygon", "multipoint", "multilinestring", "multipolygon",
             "geometrycollection"}
_FIXED_BINARY = {"uuid": 16, "inet6": 16, "inet4": 4}
_CAST_KEY = {"uuid": "UUID", "inet6": "INET6", "inet4": "INET4"}


@dataclass
class LiveTable:
    """A table of the target as the replay sees it."""

    schema: str
    table: str
    columns: list[str]
    data_types: list[str]
    column_types: list[str]
    unsigned: set[int] = field(default_factory=set)
    virtual: set[int] = field(default_factory=set)  # VIRTUAL generated: the binlog carries no value
    key: list[int] = field(default_factory=list)  # primary key column indexes (empty: rows are matched whole)

    @property
    def name(self) -> str:
        return f"{self.schema}.{self.table}"

    def pad(self, i: int) -> int:
        """Bytes a fixed-length binary column holds (the binlog drops its trailing zero bytes)."""
        dt = self.data_types[i]
        if dt in _FIXED_BINARY:
            return _FIXED_BINARY[dt]
        if dt == "binary":
            m = re.search(r"\((\d+)\)", self.column_types[i])
            return int(m.group(1)) if m else 0
        return 0


def live_tables(sql: Sql, schema: str, tables: list[str] | None) -> dict[str, LiveTable]:
    """Every listed base table of ``schema`` (all of them when ``tables`` is None). One
    information_schema table per query, never COLUMNS ⋈ TABLES (see engine/mysql/introspect.py)."""
    base = set(base_tables(sql, schema))
    rows = sql.query(
        "SELECT TABLE_NAME AS t, COLUMN_NAME AS c, DATA_TYPE AS dt, COLUMN_TYPE AS ct, EXTRA AS e"
        " FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s ORDER BY TABLE_NAME, ORDINAL_POSITION", [schema]).rows
    out: dict[str, LiveTable] = {}
    for r in rows:
        name = _s(r["t"])
        if name not in base or (tables is not None and name not in tables):
            continue
        lt = out.setdefault(name, LiveTable(schema, name, [], [], []))
        i = len(lt.columns)
        lt.columns.append(_s(r["c"]))
        lt.data_types.append(_s(r["dt"]).lower())
        ct = _s(r["ct"]).lower()
        lt.column_types.append(ct)
        if "unsigned" in ct:
            lt.unsigned.add(i)
        if "VIRTUAL" in _s(r["e"]).upper():
            lt.virtual.add(i)
    for lt in out.values():
        lt.key = [lt.columns.index(c) for c in primary_key(sql, schema, lt.table) if c in lt.columns]
    return out


def check_map(tm: TableMap, lt: LiveTable) -> str | None:
    """Why ``tm`` does not describe ``lt`` (None when it does)."""
    if len(tm.types) != len(lt.columns):
        return (f"{lt.name} has {len(lt.columns)} columns, the binlog's rows for it {len(tm.types)}: its definition changed "
                "outside the window")
    for i, (code, dt) in enumerate(zip(tm.types, lt.data_types)):
        allowed = _FAMILY.get(dt)
        if allowed is None:
            allowed = {252} if dt in _BLOBS else {255} if dt in _GEOMETRY else None
        if allowed is None:
            continue  # a type this check does not know: the server's own check (1677) still applies
        real = code
        if code == 254:  # STRING's metadata says ENUM/SET/STRING
            b0 = tm.meta[i] >> 8
            real = b0 if b0 in (247, 248) else (b0 | 0x30 if b0 & 0x30 != 0x30 else b0)
            real = real if real in (247, 248) else 254
        if real not in allowed and not (dt in ("json", "longtext") and real in (245, 252)):
            return f"{lt.name} column {quote_ident(lt.columns[i])} is {lt.column_types[i]} now, the binlog logs type {code} for it"
    if tm.names and [n.lower() for n in tm.names] != [c.lower() for c in lt.columns]:
        return f"{lt.name}'s columns are ({', '.join(lt.columns)}) now, the binlog names ({', '.join(tm.names)})"
    return None


@dataclass(frozen=True)
class Compare:
    """How one column is looked up (``key``) and compared (``same``) against a decoded value."""

    key: str  # SQL with one %s
    same: str  # SQL with one %s
    pad: int = 0  # a bytes value is padded with zero bytes to this length


def comparators(layout: Layout, lt: LiveTable) -> list[Compare | None]:
    """One :class:`Compare` per column (None: not comparable — a VIRTUAL column, MySQL's binary JSON)."""
    out: list[Compare | None] = []
    for i, c in enumerate(layout.columns):
        col = quote_ident(lt.columns[i]).replace("%", "%%")  # the SQL is formatted with parameters
        kind = c.compare
        if i in lt.virtual or kind == NONE:
            out.append(None)
        elif kind == NUM:
            out.append(Compare(f"{col} = %s", f"{col} <=> %s"))
        elif kind == INT_OF:
            out.append(Compare(f"{col} = %s", f"{col}+0 <=> %s"))
        elif kind == EPOCH:
            out.append(Compare(f"{col} = FROM_UNIXTIME(%s)", f"UNIX_TIMESTAMP({col}) <=> %s"))
        elif kind == TEMPORAL:
            out.append(Compare(f"{col} = %s", f"{col} <=> %s"))
        elif kind == BYTES:
            dt = lt.data_types[i]
            key = f"{col} = CAST(%s AS {_CAST_KEY[dt]})" if dt in _CAST_KEY else f"{col} = %s"
            out.append(Compare(key, f"CAST({col} AS BINARY) <=> %s", lt.pad(i)))
        else:
            out.append(None)
    return out


def require_tables(found: dict[str, LiveTable], wanted: list[str] | None, schema: str) -> None:
    missing = [t for t in (wanted or []) if t not in found]
    if missing:
        raise ActionError(f"no table {', '.join(quote_ident(schema) + '.' + quote_ident(t) for t in missing)} on the target",
                          hint="restore the tables first (the dump the window starts from), or fix tables:")


def _s(v: object) -> str:
    return v.decode() if isinstance(v, (bytes, bytearray)) else str(v if v is not None else "")
