"""Row digests that cannot cancel out, summed per primary-key chunk; primary-key chunking.

What "identical" means here (verify's ``checksums``, the snapshot's own check): both copies
have the same number of rows and the same **sum of their rows' 64-bit hashes**, chunk by
chunk. Each part of that is chosen so that no difference can hide:

* **Row text** (:func:`row_text`): an encoding of the row that two different rows never share.
  ``CONCAT_WS('#', <markers>, v1, v2, ...)`` where ``<markers>`` is one entry per column:
  ``ISNULL(c)`` for a column whose text cannot hold a ``#`` (numbers, dates and times), else
  the value's byte length (``N`` for NULL). So NULL, ``''`` and ``'NULL'`` differ, and
  ``('a#', 'b')`` is not ``('a', '#b')``. Values are exact: a FLOAT goes through
  ``CAST(c AS DOUBLE)`` (``CONCAT`` prints a FLOAT with 6 digits; a DOUBLE prints as its
  shortest round-trip text, checked on MariaDB 10.11), a TIMESTAMP through
  ``UNIX_TIMESTAMP`` (the session time zone and the repeated hour of a DST change do not
  matter), every other value as its bytes (``CAST(c AS BINARY)``: text in its own charset,
  BIT, INET6, UUID, geometry).
* **Row hash** (:func:`row_hash`): the first 64 bits of ``SHA1(row text)``. Not CRC32: a CRC
  is linear, so the same change made to two rows of the same length changes both CRCs by the
  same XOR — pt-table-checksum's ``BIT_XOR(CRC32(…))`` then cancels it exactly (status 1→3 on
  two orders passed as identical), and even a ``SUM`` of CRCs cancels often (one pair in
  2^16). A hash without that structure makes any difference survive a sum but for a 2^-64
  chance.
* **Aggregate**: ``COUNT(*)`` and ``SUM`` of the row hashes (an exact DECIMAL on the server;
  the ``CAST … AS UNSIGNED`` matters: a SUM of a string is a DOUBLE). A SUM does not cancel
  equal rows the way a XOR does, so duplicates in a table without a key count too, and chunk
  sums add up to the table's whatever order they are computed in (parallel workers).

Costs (``bench/verify_speed.py``): SHA1 and CONV make the digest 2-2.7x the CPU of
``BIT_XOR(CRC32)`` per row.

```python
for chunk in key_chunks(sql, shape, 50000):
    d = chunk_digest(sql, shape, chunk.cond, list(chunk.params))
rows, hex16 = table_checksum(sql, shape)
```
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from engine.mysql.introspect import TableShape
from engine.mysql.sqlutil import qualified, quote_ident
from engine.transport.base import Sql

#: types whose text is digits, signs, ``.``, ``e``, ``:``, ``-`` and spaces: never a ``#``
_PLAIN_TYPES = frozenset({"tinyint", "smallint", "mediumint", "int", "integer", "bigint", "decimal", "numeric",
                          "date", "datetime", "time", "year"})
_FLOAT_TYPES = frozenset({"float", "double", "real", "double precision"})
#: how a table digest is written (the manifest's ``checksum``): 16 hex digits
DIGEST_HEX_LEN = 16


def _value(col: str, data_type: str) -> tuple[str, str]:
    """(value expression, marker expression) of one column in the row text."""
    c = quote_ident(col)
    if data_type in _FLOAT_TYPES:
        return f"CAST({c} AS DOUBLE)", f"ISNULL({c})"
    if data_type == "timestamp":
        return f"UNIX_TIMESTAMP({c})", f"ISNULL({c})"
    if data_type in _PLAIN_TYPES:
        return c, f"ISNULL({c})"
    v = f"CAST({c} AS BINARY)"
    return v, f"IFNULL(LENGTH({v}), 'N')"


def row_text(shape: TableShape) -> str:
    """The row as a string no other row shares (see the module doc)."""
    if len(shape.types) != len(shape.columns):
        raise ValueError(f"the digest of {shape.table} needs its column types")  # a bug, not a user error
    parts = [_value(c, t) for c, t in zip(shape.columns, shape.types, strict=True)]
    markers = "CONCAT_WS(',', " + ", ".join(m for _, m in parts) + ")"
    return "CONCAT_WS('#', " + ", ".join([markers, *(v for v, _ in parts)]) + ")"


def row_hash_hex(shape: TableShape) -> str:
    """The row's 64-bit hash as 16 hex digits (row-level comparisons)."""
    return f"LEFT(SHA1({row_text(shape)}), 16)"


def row_hash(shape: TableShape) -> str:
    """The row's 64-bit hash as an unsigned integer (summed per chunk)."""
    return f"CAST(CONV({row_hash_hex(shape)}, 16, 10) AS UNSIGNED)"


@dataclass(frozen=True)
class Digest:
    """COUNT and exact SUM of the row hashes of a chunk or a table; digests of disjoint
    chunks add up."""

    rows: int
    total: int

    def __add__(self, other: Digest) -> Digest:
        return Digest(self.rows + other.rows, self.total + other.total)

    @property
    def hex(self) -> str:
        """The sum modulo 2^64 as 16 hex digits (with ``rows``, what a manifest records)."""
        return f"{self.total % (1 << 64):0{DIGEST_HEX_LEN}x}"


NO_ROWS = Digest(0, 0)


def digest_sql(shape: TableShape, cond: str, *, schema: str | None = None, table: str | None = None) -> str:
    """``SELECT n, s`` (COUNT, SUM of row hashes) of the rows of ``shape`` matching ``cond``;
    ``schema``/``table`` read another copy with the same columns."""
    where = qualified(schema or shape.schema, table or shape.table)
    return f"SELECT COUNT(*) AS n, COALESCE(SUM({row_hash(shape)}), 0) AS s FROM {where} WHERE {cond}"


def chunk_digest(sql: Sql, shape: TableShape, cond: str, params: list[Any], *, schema: str | None = None,
                 table: str | None = None) -> Digest:
    row = sql.query(digest_sql(shape, cond, schema=schema, table=table), params).rows[0]
    return Digest(int(row["n"]), int(row["s"]))


def row_hashes(sql: Sql, shape: TableShape, cond: str, params: list[Any], *, schema: str | None = None,
               table: str | None = None) -> dict[tuple[Any, ...], str]:
    """``{primary key: row hash}`` of the rows matching ``cond`` (a chunk), to name the rows
    that differ. A copy whose "key" is not unique there gives its rows' hashes joined by ``,``
    (never equal to one row's hash)."""
    where = qualified(schema or shape.schema, table or shape.table)
    keys = ", ".join(quote_ident(c) for c in shape.pk)
    res = sql.query(f"SELECT {keys}, {row_hash_hex(shape)} AS `_rb_h` FROM {where} WHERE {cond}", params)
    out: dict[tuple[Any, ...], str] = {}
    for r in res.rows:
        key, h = tuple(r[c] for c in shape.pk), str(r["_rb_h"])
        out[key] = f"{out[key]},{h}" if key in out else h
    return out


def hash_groups(sql: Sql, shape: TableShape, *, schema: str | None = None, table: str | None = None,
                limit: int) -> dict[str, tuple[int, dict[str, Any]]] | None:
    """``{row hash: (how many rows, the row)}`` of a whole table (a table without a key,
    where equal rows are told apart only by their number); None when it has more than
    ``limit`` distinct rows."""
    where = qualified(schema or shape.schema, table or shape.table)
    cols = ", ".join(f"MIN({quote_ident(c)}) AS {quote_ident(c)}" for c in shape.columns)
    res = sql.query(f"SELECT {row_hash_hex(shape)} AS `_rb_h`, COUNT(*) AS `_rb_n`, {cols} FROM {where}"
                    f" GROUP BY `_rb_h` LIMIT %s", [limit + 1])
    if len(res.rows) > limit:
        return None
    return {str(r["_rb_h"]): (int(r["_rb_n"]), {c: r[c] for c in shape.columns}) for r in res.rows}


def table_digest(sql: Sql, shape: TableShape, chunk_rows: int = 50000, *, schema: str | None = None,
                 table: str | None = None) -> Digest:
    """The digest of a whole table, chunked by its primary key."""
    total = NO_ROWS
    for chunk in key_chunks(sql, shape, chunk_rows):
        total += chunk_digest(sql, shape, chunk.cond, list(chunk.params), schema=schema, table=table)
    return total


def table_checksum(sql: Sql, shape: TableShape, chunk_rows: int = 50000, table: str | None = None,
                   schema: str | None = None) -> tuple[int, str]:
    """(rows, digest hex) of a table; ``schema``/``table`` override where to read (a copy
    with the same shape)."""
    d = table_digest(sql, shape, chunk_rows, schema=schema, table=table)
    return d.rows, d.hex


# -- chunking ------------------------------------------------------------------------------
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
