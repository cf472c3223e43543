"""The slow path of a replay: one rows event, each of its rows checked against the live table,
and the events that carry out ``on_conflict`` (rows left out, or written as their after image)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.errors import ActionError
from engine.mysql.binlog import build, conflicts
from engine.mysql.binlog.conflicts import SAME, Conflict, ConflictError, RowCheck
from engine.mysql.binlog.events import DELETE, STMT_END_F, UPDATE, WRITE, FormatDescription
from engine.mysql.binlog.reader import Transaction
from engine.mysql.binlog.rows import RowsEvent
from engine.mysql.binlog.tables import Compare, LiveTable


def resolve(sql: Any, txn: Transaction, rev: RowsEvent, lt: LiveTable, cmp: list[Compare | None], fde: FormatDescription,
        on_conflict: str, record: Callable[[Conflict], None]) -> tuple[list[bytes], dict[str, int]]:
    """The events to send for ``rev`` after checking each of its rows, and their row count."""
    imgs = rev.images
    checks: list[RowCheck] = []
    idx: list[int] = []
    for i, (b, a) in enumerate(imgs):
        if rev.kind == WRITE:
            if lt.key:
                checks.append(RowCheck(lt, cmp, rev.values(a, after=True)))  # type: ignore[arg-type]
                idx.append(i)
        else:
            checks.append(RowCheck(lt, cmp, rev.values(b)))  # type: ignore[arg-type]
            idx.append(i)
    state = dict(zip(idx, conflicts.states(sql, checks))) if checks else {}
    out: list[tuple[str, tuple[tuple[int, int], ...], tuple[bytes, bytes | None]]] = []
    for i, (b, a) in enumerate(imgs):
        st = state.get(i, SAME if rev.kind != WRITE else conflicts.MISSING)
        ok = st == conflicts.MISSING if rev.kind == WRITE else st == SAME
        if ok:
            out.append((rev.kind, _orig_row(rev, b, a), _bitmaps(rev)))
            continue
        c = Conflict("exists" if rev.kind == WRITE else st, rev.kind, lt.name, checks[idx.index(i)].key_text(),
                     rev.event.file, rev.event.pos, txn.gtid, on_conflict)
        record(c)
        if on_conflict == "error":
            raise ConflictError(c)
        if on_conflict == "skip":
            continue
        out.extend(_overwrite(rev, lt, st, b, a))
    events: list[bytes] = []
    merged: list[tuple[str, list[tuple[tuple[int, int], ...]], tuple[bytes, bytes | None]]] = []
    for kind, row, bm in out:
        if merged and merged[-1][0] == kind and merged[-1][2] == bm:
            merged[-1][1].append(row)
        else:
            merged.append((kind, [row], bm))
    end = bool(rev.head.flags & STMT_END_F) or rev.end_statement
    for j, (kind, rows, bm) in enumerate(merged):
        events.append(build.rows_event(rev, fde, kind, list(rows), bm, stmt_end=end and j == len(merged) - 1))
    counts = {WRITE: 0, UPDATE: 0, DELETE: 0}
    for kind, rows, _ in merged:
        counts[kind] += len(rows)
    return events, counts

def _overwrite(rev: RowsEvent, lt: LiveTable, st: str, b: Any, a: Any) -> list[Any]:
    """``on_conflict: overwrite``: what makes the row the event's after image."""
    if rev.kind == DELETE:
        return [] if st == conflicts.MISSING else [(DELETE, (b,), _bitmaps(rev))]
    if rev.kind == WRITE:  # the key is taken: update that row to the image
        return [(UPDATE, (a, a), (rev.head.present, rev.head.present))]
    if st == conflicts.MISSING:  # an update of a missing row: insert its after image
        if not rev.full_image(after=True):
            raise ActionError(f"on_conflict: overwrite needs the whole after image of {lt.name} (binlog_row_image=FULL)")
        return [(WRITE, (a,), (build.after_bitmap(rev), None))]
    if not lt.key:
        raise ActionError(f"on_conflict: overwrite cannot tell which row of {lt.name} to overwrite: it has no primary key")
    return [(UPDATE, (b, a), _bitmaps(rev))]


def _orig_row(rev: RowsEvent, b: Any, a: Any) -> tuple[tuple[int, int], ...]:
    if rev.kind == UPDATE:
        return (b, a)
    return (a,) if rev.kind == WRITE else (b,)


def _bitmaps(rev: RowsEvent) -> tuple[bytes, bytes | None]:
    return rev.head.present, rev.head.present_after
