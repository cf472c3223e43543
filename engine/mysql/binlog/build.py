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
from collections.abc import Iterable

from engine.mysql.binlog.events import (
    DELETE, HEADER_LEN, ROWS_TYPE, STMT_END_F, TABLE_MAP, UPDATE, WRITE, FormatDescription, body, packed_int, rebuild,
)
from engine.mysql.binlog.rows import RowsEvent

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
