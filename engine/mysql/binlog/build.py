"""Events made for the server to apply, from the source's own bytes.

Replay and flashback let the server apply row events itself with ``BINLOG '…'`` statements (what
``mariadb-binlog`` prints): exact (the server decodes its own format, no value passes through
Python), fast, and triggers do not fire (a ROW binlog already holds what they did). What a
replay changes is which events it sends, never a value:

* a rows event with some of its rows (conflicts skipped), or of another kind (an update's after
  image written as an insert, an insert written as an update of the same key: ``overwrite``);
* the inverse of a rows event (flashback): inserts deleted, deletes inserted, updates swapped;
* a Table_map naming another schema.

Each is the source event's header with a new body, type and CRC32.
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Iterable

from engine.mysql.binlog.events import (
    DELETE, HEADER_LEN, ROWS_TYPE, STMT_END_F, TABLE_MAP, UPDATE, WRITE, FormatDescription, body, rebuild,
)
from engine.mysql.binlog.rows import RowsEvent
from engine.mysql.binlog.tablemap import packed_int

Span = tuple[int, int]


def rows_event(rev: RowsEvent, fde: FormatDescription, kind: str, rows: list[tuple[Span, ...]],
               bitmaps: tuple[bytes, bytes | None], *, stmt_end: bool) -> bytes:
    """A rows event of ``kind`` (insert | update | delete) holding ``rows`` (images of ``rev``:
    one span per row, two for an update) described by ``bitmaps`` (columns present before, after)."""
    d, h = rev.event.data, rev.head
    prefix = bytearray(d[HEADER_LEN:h.cols_off])
    flags = (h.flags & ~STMT_END_F) | (STMT_END_F if stmt_end else 0)
    at = h.flags_off - HEADER_LEN
    prefix[at:at + 2] = flags.to_bytes(2, "little")
    _, after_count = packed_int(d, h.cols_off)
    parts = [bytes(prefix), d[h.cols_off:after_count], bitmaps[0]]
    if kind == UPDATE:
        parts.append(bitmaps[1] if bitmaps[1] is not None else bitmaps[0])
    parts.extend(d[a:b] for row in rows for a, b in row)
    return rebuild(rev.event, b"".join(parts), fde, typ=ROWS_TYPE[(h.version, kind)])


def before_bitmap(rev: RowsEvent) -> bytes:
    return rev.head.present


def after_bitmap(rev: RowsEvent) -> bytes:
    return rev.head.present_after if rev.head.present_after is not None else rev.head.present


def inverse(rev: RowsEvent, fde: FormatDescription, *, stmt_end: bool = True) -> bytes:
    """The event that undoes ``rev``, its rows in reverse order (flashback)."""
    imgs = list(reversed(rev.images))
    if rev.kind == WRITE:
        return rows_event(rev, fde, DELETE, [(a,) for _, a in imgs if a], (before_bitmap(rev), None), stmt_end=stmt_end)
    if rev.kind == DELETE:
        return rows_event(rev, fde, WRITE, [(b,) for b, _ in imgs if b], (before_bitmap(rev), None), stmt_end=stmt_end)
    return rows_event(rev, fde, UPDATE, [(a, b) for b, a in imgs if a and b], (after_bitmap(rev), before_bitmap(rev)),
                      stmt_end=stmt_end)


def retarget(table_map: bytes, fde: FormatDescription, schema: str) -> bytes:
    """A Table_map event naming ``schema`` instead of the source's schema."""
    from engine.mysql.binlog.events import frame

    ev = frame(table_map, "", None)
    assert ev.type == TABLE_MAP
    b = body(ev, fde)
    ph = fde.post_header_len(TABLE_MAP) or 8
    n = b[ph]
    name = schema.encode()
    return rebuild(ev, b[:ph] + bytes([len(name)]) + name + b[ph + 1 + n:], fde)


def binlog_statement(events: Iterable[bytes]) -> str:
    """``BINLOG '…'`` for events (base64 per event, as mariadb-binlog prints them)."""
    return "BINLOG '\n" + "\n".join(base64.b64encode(e).decode("ascii") for e in events) + "\n'"


def encoded_size(n: int) -> int:
    """Characters a BINLOG statement needs for ``n`` bytes of events."""
    return (n + 2) // 3 * 4 + 16


def with_stmt_end(data: bytes, rev: RowsEvent, fde: FormatDescription, on: bool) -> bytes:
    """A rows event (``rev``'s, or one made from it) with STMT_END_F set or cleared."""
    at = rev.head.flags_off
    flags = data[at] | data[at + 1] << 8
    want = (flags | STMT_END_F) if on else (flags & ~STMT_END_F)
    if want == flags:
        return data
    out = bytearray(data)
    out[at:at + 2] = want.to_bytes(2, "little")
    if fde.tail:
        out[-4:] = zlib.crc32(memoryview(out)[:-4]).to_bytes(4, "little")
    return bytes(out)


def statements(items: list[tuple[RowsEvent, list[bytes] | None]], fde: FormatDescription, *, target_schema: str | None,
           limit: int) -> list[str]:
    """BINLOG statements for rows events, cut to fit a packet. Each is one statement for the
    server, as a multi-table statement is logged: every Table_map it needs first, then the
    rows events, only the last flagged STMT_END_F. (The server opens the tables of a
    statement at its first rows event — a Table_map after that is never opened and the
    rows of its table are silently left out — and closes them at STMT_END_F: once per
    BINLOG statement instead of once per source statement is what makes a replay fast.)"""
    out: list[str] = []
    maps: dict[int, tuple[bytes, bytes]] = {}  # table id -> (body, event) in this statement
    rows: list[tuple[RowsEvent, bytes]] = []
    size = 0

    def flush() -> None:
        nonlocal maps, rows, size
        if rows:
            last = len(rows) - 1
            evs = [tm for _, tm in maps.values()] + [with_stmt_end(ev, rev, fde, i == last) for i, (rev, ev) in enumerate(rows)]
            out.append(binlog_statement(evs))
        maps, rows, size = {}, [], 0

    for rev, events in items:
        tm = rev.table.event.data if rev.table.event is not None else b""
        if target_schema:
            tm = retarget(tm, fde, target_schema)
        body = tm[HEADER_LEN:len(tm) - fde.tail]  # not the header's time and position, nor the CRC over them
        tid = rev.table.table_id
        evs = [rev.event.data] if events is None else events
        if not evs:
            continue
        need = sum(map(len, evs)) + (len(tm) if tid not in maps else 0)
        if rows and (size + need > limit or (tid in maps and maps[tid][0] != body)):
            flush()
        if tid not in maps:
            maps[tid] = (body, tm)
            size += len(tm)
        rows.extend((rev, ev) for ev in evs)
        size += sum(map(len, evs))
    flush()
    return out
