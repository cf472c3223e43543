"""Checksums: a table compared with its other copy, primary-key chunk by chunk, then row by
row inside the chunks that differ, to name the keys.

The chunk boundaries come from this side (``LIMIT 1 OFFSET chunk_rows-1`` on the primary key,
as pt-table-checksum nibbles); the same ``WHERE`` runs on both sides, so a row that exists on
only one side falls in the same chunk on both, and the last chunk is open above. Each chunk is
summed as ``COUNT(*)`` and the exact ``SUM`` of 64-bit row hashes, a digest in which no change
cancels another (:mod:`engine.mysql.checksum`). A chunk that differs is then read as
``{key: row hash}`` on both sides, which names each differing key: ``differs``, ``missing from
<copy>`` or ``only in <copy>``. A table without a primary key is one chunk; its rows are
compared as a multiset (``GROUP BY`` row hash), so a duplicate too many is found and shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from engine.actions.verify.model import SAMPLE, Check, Sessions, Task
from engine.mysql.checksum import Chunk, chunk_digest, hash_groups, key_chunks, row_hashes
from engine.mysql.introspect import TableShape
from engine.mysql.values import plain
from engine.transport.base import Sql

#: differing chunks read row by row; past this many, the count of differing rows is a lower bound
ROW_LEVEL_CHUNKS = 100
#: a table without a primary key is compared row by row only up to this many rows a side
ROW_LEVEL_ROWS = 200_000


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


def _key_text(pk: tuple[str, ...], key: tuple[Any, ...]) -> str:
    return " ".join(f"{c} {_value(v)}" for c, v in zip(pk, key, strict=True))


def _differing_keys(here: dict[tuple[Any, ...], str], there: dict[tuple[Any, ...], str],
                    label: str) -> list[tuple[tuple[Any, ...], str]]:
    """The keys of one chunk whose rows differ, in key order, with how."""
    out = []
    for key in sorted(here.keys() | there.keys(), key=_sort_key):
        a, b = here.get(key), there.get(key)
        if a == b:
            continue
        out.append((key, "differs" if a is not None and b is not None else
                    (f"missing from {label}" if b is None else f"only in {label}")))
    return out


def _sort_key(key: tuple[Any, ...]) -> tuple[Any, ...]:
    # Keys of one table share their types; None cannot occur in a primary key.
    return tuple((0, v) if isinstance(v, (int, float, Decimal)) else (1, str(plain(v))) for v in key)


def _multiset_diff(shape: TableShape, here: dict[str, tuple[int, dict[str, Any]]],
                   there: dict[str, tuple[int, dict[str, Any]]], label: str) -> tuple[int, list[dict[str, Any]]]:
    """(rows that have no equal on the other side, a sample of them with their numbers)."""
    count, sample = 0, list[dict[str, Any]]()
    for h in sorted(here.keys() | there.keys()):
        n_here, row = here.get(h, (0, {}))
        n_there, other = there.get(h, (0, {}))
        if n_here == n_there:
            continue
        count += abs(n_here - n_there)
        if len(sample) < SAMPLE:
            sample.append(plain({**(row or other), "diff": f"{n_here} here, {n_there} in {label}"}))
    return count, sample


def checksum_task(shape: TableShape, copy: Copy, chunk_rows: int, weight: int) -> Task:
    check = Check(name=f"checksum {shape.table} vs {copy.label}", kind="checksum", table=shape.table, expected=0)

    def run(s: Sessions, checks: list[Check]) -> None:
        c = checks[0]
        here: Sql = s.main
        there: Sql = s.other() if copy.host is not None else s.main
        differing: list[tuple[Chunk, int, int]] = []
        chunks = rows_here = rows_there = 0
        for chunk in key_chunks(here, shape, chunk_rows):
            a = chunk_digest(here, shape, chunk.cond, list(chunk.params))
            b = chunk_digest(there, shape, chunk.cond, list(chunk.params), schema=copy.schema, table=copy.table)
            chunks, rows_here, rows_there = chunks + 1, rows_here + a.rows, rows_there + b.rows
            if a != b:
                differing.append((chunk, a.rows, b.rows))
        c.rows = rows_here + rows_there
        if not differing:
            c.count = 0
            c.detail = f"{chunks} chunk(s), {rows_here} row(s) identical to {copy.label}"
            c.verdict(False)
            return
        c.verdict(True)
        where = f"{len(differing)} of {chunks} chunk(s) differ from {copy.label}"
        if not shape.pk:
            _name_rows_without_key(c, here, there, shape, copy, rows_here, rows_there, where)
            return
        keys: list[tuple[tuple[Any, ...], str]] = []
        for chunk, _, _ in differing[:ROW_LEVEL_CHUNKS]:
            params = list(chunk.params)
            mine = row_hashes(here, shape, chunk.cond, params)
            theirs = row_hashes(there, shape, chunk.cond, params, schema=copy.schema, table=copy.table)
            c.rows += len(mine) + len(theirs)
            found = _differing_keys(mine, theirs, copy.label)
            if not found:  # the digests differ, the rows compare equal: say so rather than pass it by
                where_ = chunk.upper or chunk.lower or tuple(None for _ in shape.pk)
                found = [(where_, "the chunk differs, no row could be named")]
            keys += found
        c.count = len(keys)
        c.sample = [plain({**dict(zip(shape.pk, key, strict=True)), "diff": how}) for key, how in keys[:SAMPLE]]
        named = ", ".join(f"{_key_text(shape.pk, key)} ({how})" for key, how in keys[:3])
        more = f" and {len(keys) - 3} more" if len(keys) > 3 else ""
        bound = "" if len(differing) <= ROW_LEVEL_CHUNKS else \
            f" (rows compared in the first {ROW_LEVEL_CHUNKS} differing chunks only: at least this many differ)"
        first = differing[0][0]
        c.detail = f"{where}; {len(keys)} row(s): {named}{more}{bound}; first chunk: {_range(first, shape.pk)}"

    return Task([check], run, weight)


def _name_rows_without_key(c: Check, here: Sql, there: Sql, shape: TableShape, copy: Copy, rows_here: int,
                           rows_there: int, where: str) -> None:
    """A table without a key differs: count (and show) the rows that have no equal there."""
    summary = f"{where} ({rows_here} row(s) here, {rows_there} there; no primary key)"
    mine = theirs = None
    if max(rows_here, rows_there) <= ROW_LEVEL_ROWS:
        mine = hash_groups(here, shape, limit=ROW_LEVEL_ROWS)
        theirs = hash_groups(there, shape, schema=copy.schema, table=copy.table, limit=ROW_LEVEL_ROWS)
    if mine is None or theirs is None:
        c.count = None
        c.sample = [{"rows": rows_here, "other_rows": rows_there}]
        c.detail = f"{summary}; more than {ROW_LEVEL_ROWS} rows: the differing rows are not listed"
        return
    c.rows += rows_here + rows_there
    c.count, c.sample = _multiset_diff(shape, mine, theirs, copy.label)
    c.detail = f"{summary}; {c.count} row(s) without an equal on the other side"


def mismatch_check(table: str, copy: Copy, why: str) -> Check:
    """A checksum that cannot run (the copy is missing, or its columns differ): a failure."""
    c = Check(name=f"checksum {table} vs {copy.label}", kind="checksum", table=table, expected=0, count=None, detail=why)
    c.verdict(True)
    return c
