"""Table_map events and the head of rows events: which table a table id means, its columns'
types and metadata as the source wrote them, and where a rows event's images begin."""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.mysql.binlog.events import (
    DELETE_ROWS_V2, HEADER_LEN, ROWS_KIND, TABLE_MAP, UPDATE, UPDATE_ROWS_V2, WRITE_ROWS_V2, Event, FormatDescription, body,
)


def packed_int(b: bytes | memoryview, off: int) -> tuple[int, int]:
    """A length-encoded integer at ``off``: (value, offset after it)."""
    first = b[off]
    if first < 251:
        return first, off + 1
    if first == 252:
        return b[off + 1] | b[off + 2] << 8, off + 3
    if first == 253:
        return b[off + 1] | b[off + 2] << 8 | b[off + 3] << 16, off + 4
    return int.from_bytes(b[off + 1:off + 9], "little"), off + 9


@dataclass
class TableMap:
    """A Table_map event: which table a table id means in the rows events that follow, and
    the type and metadata of each of its columns as the source wrote them."""

    table_id: int
    schema: str
    table: str
    types: bytes
    meta: list[int]
    nullable: bytes
    signed: list[bool] | None = None  # binlog_row_metadata MINIMAL/FULL
    names: list[str] | None = None  # binlog_row_metadata FULL
    event: Event | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return f"{self.schema}.{self.table}"


_NUMERIC = frozenset({1, 2, 3, 4, 5, 8, 9, 246})  # TINY SHORT LONG FLOAT DOUBLE LONGLONG INT24 NEWDECIMAL


def table_id_of(ev: Event, fde: FormatDescription) -> int:
    """The table id of a Table_map or rows event (6 bytes; 4 in very old binlogs)."""
    d = ev.data
    if fde.post_header_len(ev.type) == 6:
        return int.from_bytes(d[HEADER_LEN:HEADER_LEN + 4], "little")
    return int.from_bytes(d[HEADER_LEN:HEADER_LEN + 6], "little")


def parse_table_map(ev: Event, fde: FormatDescription) -> TableMap:
    b = body(ev, fde)
    ph = fde.post_header_len(TABLE_MAP) or 8
    tid = table_id_of(ev, fde)
    off = ph
    n = b[off]
    schema = b[off + 1:off + 1 + n].decode("utf-8", "replace")
    off += 2 + n
    n = b[off]
    table = b[off + 1:off + 1 + n].decode("utf-8", "replace")
    off += 2 + n
    ncols, off = packed_int(b, off)
    types = bytes(b[off:off + ncols])
    off += ncols
    meta_len, off = packed_int(b, off)
    meta_end = off + meta_len
    meta: list[int] = []
    for t in types:
        if t in (4, 5, 252, 255, 245, 17, 18, 19):  # FLOAT DOUBLE BLOB GEOMETRY JSON TIMESTAMP2 DATETIME2 TIME2
            meta.append(b[off])
            off += 1
        elif t in (15, 253, 16):  # VARCHAR VAR_STRING: max length LE; BIT: (bits % 8, bytes) LE
            meta.append(b[off] | b[off + 1] << 8)
            off += 2
        elif t in (246, 254, 247, 248):  # NEWDECIMAL (precision, scale), STRING/ENUM/SET (real type, length): big endian
            meta.append(b[off] << 8 | b[off + 1])
            off += 2
        else:
            meta.append(0)
    off = meta_end
    nb = (ncols + 7) // 8
    nullable = bytes(b[off:off + nb])
    off += nb
    tm = TableMap(tid, schema, table, types, meta, nullable, event=ev)
    _optional_metadata(tm, b, off)
    return tm


def _optional_metadata(tm: TableMap, b: bytes, off: int) -> None:
    """binlog_row_metadata=MINIMAL/FULL: SIGNEDNESS (1) and COLUMN_NAME (4) are read."""
    while off < len(b):
        kind = b[off]
        length, off = packed_int(b, off + 1)
        val = b[off:off + length]
        off += length
        if kind == 1:
            numeric = [i for i, t in enumerate(tm.types) if t in _NUMERIC]
            bits = [bool(val[j // 8] & (0x80 >> (j % 8))) for j in range(len(numeric))]
            signed = [True] * len(tm.types)
            for i, unsigned in zip(numeric, bits):
                signed[i] = not unsigned
            tm.signed = signed
        elif kind == 4:
            names, p = [], 0
            while p < len(val):
                n, p = packed_int(val, p)
                names.append(bytes(val[p:p + n]).decode("utf-8", "replace"))
                p += n
            tm.names = names


@dataclass
class RowsHeader:
    """A rows event up to its row images: ``data[start:]`` holds the images."""

    table_id: int
    flags: int
    kind: str  # insert | update | delete
    version: int
    ncols: int
    present: bytes  # columns in the (before) image
    present_after: bytes | None  # update: columns in the after image
    start: int  # offset of the first row image in the event's data
    end: int  # offset after the last image (before the checksum)
    cols_off: int  # offset of the column count: data[HEADER_LEN:cols_off] is the post-header (and v2 extra data)
    flags_off: int  # offset of the flags in the event's data


def parse_rows_header(ev: Event, fde: FormatDescription) -> RowsHeader:
    d = ev.data
    ph = fde.post_header_len(ev.type)
    tid = table_id_of(ev, fde)
    flags_off = HEADER_LEN + (4 if ph == 6 else 6)
    flags = d[flags_off] | d[flags_off + 1] << 8
    off = HEADER_LEN + ph
    version = 1
    if ev.type in (WRITE_ROWS_V2, UPDATE_ROWS_V2, DELETE_ROWS_V2):
        version = 2
        extra = d[HEADER_LEN + ph - 2] | d[HEADER_LEN + ph - 1] << 8
        off += max(extra - 2, 0)
    cols_off = off
    ncols, off = packed_int(d, off)
    nb = (ncols + 7) // 8
    present = d[off:off + nb]
    off += nb
    after = None
    kind = ROWS_KIND[ev.type]
    if kind == UPDATE:
        after = d[off:off + nb]
        off += nb
    return RowsHeader(tid, flags, kind, version, ncols, present, after, off, len(d) - fde.tail, cols_off, flags_off)
