"""Checksums: a table compared with its other copy, primary-key chunk by chunk.

The chunk boundaries come from this side (``LIMIT 1 OFFSET chunk_rows-1`` on the primary key,
as pt-table-checksum nibbles); the same ``WHERE`` runs on both sides, so a row that exists on
only one side falls in the same chunk on both, and the last chunk is open above. Each chunk is
summed as ``COUNT(*)`` and ``BIT_XOR`` of the row CRCs, plus their ``SUM`` in a table without a
primary key, where equal rows would cancel out (:mod:`engine.mysql.checksum`).
The result names the differing chunks by their key range, first one first.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from engine.actions.verify.model import SAMPLE, Check, Sessions, Task
from engine.mysql.checksum import Chunk, digest_of, digest_sql, key_chunks
from engine.mysql.introspect import TableShape
from engine.mysql.values import plain
from engine.transport.base import Sql


@dataclass(frozen=True)
class Copy:
    """Where the other copy of a table is: a schema and table, on this server or another host."""

    schema: str
    table: str
    host: str | None  # None: the verified host itself
    label: str  # how messages name it: "shop_copy", "snapshot", "replica1"


def _value(v: object) -> str:
    """A key value as SQL would spell it: numbers bare, everything else (dates too) quoted."""
    if isinstance(v, (int, float, Decimal)):
        return str(v)
    return repr(str(plain(v)))


def _range(chunk: Chunk, pk: tuple[str, ...]) -> str:
    if not pk:
        return "the whole table (no primary key)"
    def tup(v: tuple[object, ...] | None) -> str:
        return "…" if v is None else (_value(v[0]) if len(v) == 1 else "(" + ", ".join(map(_value, v)) + ")")
    key = pk[0] if len(pk) == 1 else "(" + ", ".join(pk) + ")"
    return f"{key} in ({tup(chunk.lower)}, {tup(chunk.upper)}]"


def checksum_task(shape: TableShape, copy: Copy, chunk_rows: int, weight: int) -> Task:
    check = Check(name=f"checksum {shape.table} vs {copy.label}", kind="checksum", table=shape.table, expected=0)

    def run(s: Sessions, checks: list[Check]) -> None:
        c = checks[0]
        here: Sql = s.main
        there: Sql = s.other() if copy.host is not None else s.main
        differing: list[tuple[Chunk, int, int]] = []
        chunks = rows_here = rows_there = 0
        summed = not shape.pk
        for chunk in key_chunks(here, shape, chunk_rows):
            a = digest_of(here.query(digest_sql(shape.schema, shape.table, shape.columns, chunk.cond, summed=summed),
                                     list(chunk.params)).rows[0])
            b = digest_of(there.query(digest_sql(copy.schema, copy.table, shape.columns, chunk.cond, summed=summed),
                                      list(chunk.params)).rows[0])
            chunks, rows_here, rows_there = chunks + 1, rows_here + a.rows, rows_there + b.rows
            if a != b:
                differing.append((chunk, a.rows, b.rows))
        c.rows = rows_here + rows_there
        c.count = len(differing)
        c.sample = [plain(dict(ch.describe(shape.pk), rows=na, other_rows=nb)) for ch, na, nb in differing[:SAMPLE]]
        if differing:
            first, na, nb = differing[0]
            c.detail = (f"{len(differing)} of {chunks} chunk(s) differ from {copy.label}; first: {_range(first, shape.pk)}"
                        f" ({na} row(s) here, {nb} there)")
        else:
            c.detail = f"{chunks} chunk(s), {rows_here} row(s) identical to {copy.label}"
        c.verdict(bool(differing))

    return Task([check], run, weight)


def mismatch_check(table: str, copy: Copy, why: str) -> Check:
    """A checksum that cannot run (the copy is missing, or its columns differ): a failure."""
    c = Check(name=f"checksum {table} vs {copy.label}", kind="checksum", table=table, expected=0, count=None, detail=why)
    c.verdict(True)
    return c
