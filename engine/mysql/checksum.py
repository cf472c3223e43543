"""Chunk checksums in pt-table-checksum's form, and primary-key chunking.

A chunk is a primary-key range; its sum is
``COUNT(*)`` and ``BIT_XOR(CAST(CRC32(CONCAT_WS('#', c1, c2, ..., CONCAT(ISNULL(c1), ISNULL(c2), ...))) AS UNSIGNED))``.
The ``ISNULL`` markers tell ``NULL`` from ``''`` (``CONCAT_WS`` skips NULLs). BIT_XOR is
associative, so chunk values XOR into one table value whatever the chunking — unlike
``CHECKSUM TABLE``, which depends on the row format and server version (mydumper #860).

XOR has one blind spot: two equal rows cancel out. With a primary key they cannot exist; in a
table without one, ``{a, b, b}`` and ``{a, c, c}`` have the same COUNT and BIT_XOR. For such a
table :func:`digest_sql` also sums the CRCs (``SUM`` does not cancel). Only there: the server
does not share the CRC between the two aggregates, and the CRC of every row is the cost.

```python
for chunk in key_chunks(sql, table_shape(sql, "shop", "orders"), 50000):
    here = digest_of(sql.query(digest_sql("shop", "orders", columns, chunk.cond, summed=False), chunk.params).rows[0])
```
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from engine.mysql.introspect import TableShape
from engine.mysql.sqlutil import qualified, quote_ident
from engine.transport.base import Sql


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


@dataclass(frozen=True)
class Chunk:
    """A primary-key range ``(lower, upper]``; ``None`` bounds are open (first and last chunk)."""

    index: int
    cond: str
    params: tuple[Any, ...]
    lower: tuple[Any, ...] | None
    upper: tuple[Any, ...] | None

    def describe(self, pk: tuple[str, ...]) -> dict[str, Any]:
        """The range for people: ``{chunk: 3, lower: {id: 100}, upper: {id: 150}}`` (lower exclusive)."""
        def named(values: tuple[Any, ...] | None) -> dict[str, Any] | None:
            return None if values is None else dict(zip(pk, values, strict=True))
        return {"chunk": self.index, "lower": named(self.lower), "upper": named(self.upper)}


def key_chunks(sql: Sql, shape: TableShape, chunk_rows: int) -> Iterator[Chunk]:
    """Consecutive primary-key ranges of ~chunk_rows rows of ``shape``; the last one is open
    above, so rows another copy has beyond this table's last key still fall in a chunk. A table
    without a primary key is one chunk."""
    if not shape.pk:
        yield Chunk(0, "1 = 1", (), None, None)
        return
    tbl = qualified(shape.schema, shape.table)
    order = ", ".join(quote_ident(c) for c in shape.pk)
    lower: tuple[Any, ...] | None = None
    index = 0
    while True:
        cond, params = ("1 = 1", []) if lower is None else (_keyset(shape.pk, ">"), _keyset_params(lower))
        res = sql.query(f"SELECT {order} FROM {tbl} WHERE {cond} ORDER BY {order} LIMIT 1 OFFSET %s",
                        [*params, chunk_rows - 1])
        if not res.rows:
            yield Chunk(index, cond, tuple(params), lower, None)
            return
        upper = tuple(res.rows[0].values())
        yield Chunk(index, f"{cond} AND {_keyset(shape.pk, '<=')}", (*params, *_keyset_params(upper)), lower, upper)
        lower, index = upper, index + 1


def pk_chunks(sql: Sql, shape: TableShape, chunk_rows: int) -> Iterator[tuple[str, list[Any]]]:
    """``(WHERE condition, params)`` for consecutive primary-key ranges of ~chunk_rows rows."""
    for chunk in key_chunks(sql, shape, chunk_rows):
        yield chunk.cond, list(chunk.params)


def row_crc(columns: tuple[str, ...]) -> str:
    """``CRC32(CONCAT_WS('#', cols..., CONCAT(ISNULL(col)...)))`` as an unsigned integer."""
    q = [quote_ident(c) for c in columns]
    nulls = "CONCAT(" + ", ".join(f"ISNULL({c})" for c in q) + ")"
    return f"CAST(CRC32(CONCAT_WS('#', {', '.join(q)}, {nulls})) AS UNSIGNED)"


def checksum_expr(columns: tuple[str, ...]) -> str:
    return f"COALESCE(BIT_XOR({row_crc(columns)}), 0)"


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


@dataclass(frozen=True)
class Digest:
    """COUNT, BIT_XOR and SUM of the row CRCs of one chunk."""

    rows: int
    xor: int
    total: int


def digest_sql(schema: str, table: str, columns: tuple[str, ...], cond: str, *, summed: bool) -> str:
    """One chunk's COUNT and BIT_XOR (pt-table-checksum's query), plus the SUM when ``summed``
    (a table without a primary key, where equal rows would cancel out in the XOR)."""
    crc = row_crc(columns)
    total = f"COALESCE(SUM({crc}), 0)" if summed else "0"
    return (f"SELECT COUNT(*) AS n, COALESCE(BIT_XOR({crc}), 0) AS x, {total} AS s"
            f" FROM {qualified(schema, table)} WHERE {cond}")


def digest_of(row: dict[str, Any]) -> Digest:
    return Digest(int(row["n"]), int(row["x"]), int(row["s"]))
