"""Row images of rows events: where each image lies (to count, drop, swap or convert rows
without touching their bytes) and, when asked, its values (for conflict checks and flashback).

A rows event carries, after its header, one image per row (two for an update: before, after):
a NULL bitmap over the columns present in the image, then each non-NULL value in the binlog's
own encoding, whose width follows from the column's type and the Table_map's metadata. Walking
images only needs those widths; decoding a value needs the signedness too, which the Table_map
has only with ``binlog_row_metadata=MINIMAL|FULL`` — otherwise it comes from the live table.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from engine.mysql.binlog.events import UPDATE, BinlogError, Event, FormatDescription
from engine.mysql.binlog.tablemap import RowsHeader, TableMap, parse_rows_header

DIG2BYTES = (0, 1, 1, 2, 2, 3, 3, 4, 4, 4)
_FIXED = {1: 1, 2: 2, 3: 4, 4: 4, 5: 8, 6: 0, 7: 4, 8: 8, 9: 3, 10: 3, 11: 3, 12: 8, 13: 1, 14: 3}
_TEMPORAL2 = {17: 4, 18: 5, 19: 3}  # TIMESTAMP2 DATETIME2 TIME2: bytes before the fraction
_PREFIXED = {249: 1, 250: 3, 251: 4}  # old blob codes, should a Table_map ever carry them
ENUM, SET, STRING, BIT, NEWDECIMAL = 247, 248, 254, 16, 246

#: how a column is compared on the server against a decoded value (see conflicts)
NUM, BYTES, INT_OF, EPOCH, TEMPORAL, NONE = "num", "bytes", "int", "epoch", "temporal", "none"


class Absent:
    """A column the image does not carry (binlog_row_image=MINIMAL/NOBLOB)."""

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT = Absent()


def decimal_size(precision: int, scale: int) -> int:
    intg = precision - scale
    return (intg // 9) * 4 + DIG2BYTES[intg % 9] + (scale // 9) * 4 + DIG2BYTES[scale % 9]


@dataclass(frozen=True)
class Column:
    """One column as the binlog encodes it: a fixed width, or a length prefix of ``prefix`` bytes."""

    type: int  # the real type (STRING's metadata resolved: ENUM, SET or STRING)
    meta: int
    fixed: int
    prefix: int
    compare: str  # NUM | BYTES | INT_OF | EPOCH | TEMPORAL | NONE


def _column(typ: int, meta: int) -> Column:
    if typ in _FIXED:
        kind = {7: EPOCH, 10: TEMPORAL, 11: TEMPORAL, 12: TEMPORAL, 14: TEMPORAL, 6: NONE}.get(typ, NUM)
        return Column(typ, meta, _FIXED[typ], 0, kind)
    if typ in (15, 253):  # VARCHAR, VAR_STRING
        return Column(typ, meta, 0, 1 if meta < 256 else 2, BYTES)
    if typ in (252, 255, 245) or typ in _PREFIXED:  # BLOB, GEOMETRY, JSON
        return Column(typ, meta, 0, _PREFIXED.get(typ, meta), NONE if typ == 245 else BYTES)
    if typ in _TEMPORAL2:
        return Column(typ, meta, _TEMPORAL2[typ] + (meta + 1) // 2, 0, EPOCH if typ == 17 else TEMPORAL)
    if typ == NEWDECIMAL:
        return Column(typ, meta, decimal_size(meta >> 8, meta & 0xFF), 0, NUM)
    if typ == BIT:
        return Column(typ, meta, (meta >> 8) + (1 if meta & 0xFF else 0), 0, INT_OF)
    if typ in (STRING, ENUM, SET):
        b0, b1 = meta >> 8, meta & 0xFF
        if b0 in (ENUM, SET):
            return Column(b0, meta, b1, 0, INT_OF)
        length = b1
        if b0 & 0x30 != 0x30:
            length |= ((b0 & 0x30) ^ 0x30) << 4
            b0 |= 0x30
        if b0 in (ENUM, SET):
            return Column(b0, meta, b1, 0, INT_OF)
        return Column(STRING, meta, 0, 2 if length > 255 else 1, BYTES)
    raise BinlogError(f"column type {typ} is not supported by this reader")


@dataclass
class Layout:
    """The columns of a Table_map, ready to walk and decode images."""

    table: TableMap
    columns: list[Column]
    signed: list[bool]
    _present: dict[bytes, list[int]] = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, tm: TableMap, unsigned: set[int] | None = None) -> Layout:
        try:
            cols = [_column(t, m) for t, m in zip(tm.types, tm.meta)]
        except BinlogError as exc:
            raise BinlogError(f"{tm.name}: {exc.message}") from None
        if tm.signed is not None:
            signed = list(tm.signed)
        else:
            signed = [i not in (unsigned or set()) for i in range(len(cols))]
        return cls(tm, cols, signed)

    def present(self, bitmap: bytes) -> list[int]:
        """The columns a bitmap says an image holds (memoised: a table's images share a few bitmaps)."""
        hit = self._present.get(bitmap)
        if hit is None:
            hit = self._present[bitmap] = [i for i in range(len(self.columns)) if bitmap[i >> 3] & (1 << (i & 7))]
        return hit

    def walk(self, d: bytes, off: int, present: list[int]) -> int:
        """The offset after the image that starts at ``off``."""
        cols = self.columns
        nb = (len(present) + 7) >> 3
        nulls = d[off:off + nb]
        off += nb
        for j, ci in enumerate(present):
            if nulls[j >> 3] & (1 << (j & 7)):
                continue
            c = cols[ci]
            if c.fixed:
                off += c.fixed
            elif c.prefix:
                off += c.prefix + int.from_bytes(d[off:off + c.prefix], "little")
        return off

    def cells(self, d: bytes, off: int, present: list[int]) -> Iterator[tuple[int, int, int]]:
        """``(column, start, end)`` of each value in the image at ``off``, in order; a NULL is
        ``(column, -1, -1)``. (``walk`` keeps its own loop: it runs on every image of every
        event read, and through this generator it takes half as long again.)"""
        cols = self.columns
        nb = (len(present) + 7) >> 3
        nulls = d[off:off + nb]
        off += nb
        for j, ci in enumerate(present):
            if nulls[j >> 3] & (1 << (j & 7)):
                yield ci, -1, -1
                continue
            c = cols[ci]
            if c.fixed:
                yield ci, off, off + c.fixed
                off += c.fixed
            else:
                n = int.from_bytes(d[off:off + c.prefix], "little")
                yield ci, off + c.prefix, off + c.prefix + n
                off += c.prefix + n

    def _value(self, ci: int, raw: bytes) -> Any:
        c = self.columns[ci]
        try:
            return value(c, raw, self.signed[ci])
        except (ValueError, IndexError, struct.error) as exc:
            raise BinlogError(f"{self.table.name} column {ci + 1}: cannot decode {raw.hex()} as type {c.type}: {exc}") from None

    def decode_some(self, d: bytes, off: int, present: list[int], wanted: list[int]) -> tuple[Any, ...]:
        """The values of the ``wanted`` columns of the image at ``off`` (ABSENT when not in it)."""
        want = set(wanted)
        got: dict[int, Any] = {}
        for ci, start, end in self.cells(d, off, present):
            if ci in want:
                got[ci] = None if start < 0 else self._value(ci, bytes(d[start:end]))
                if len(got) == len(want):
                    break
        return tuple(got.get(i, ABSENT) for i in wanted)

    def decode(self, d: bytes, off: int, present: list[int]) -> list[Any]:
        """Every column's value in the image at ``off`` (None: NULL, ABSENT: not in the image)."""
        out: list[Any] = [ABSENT] * len(self.columns)
        for ci, start, end in self.cells(d, off, present):
            out[ci] = None if start < 0 else self._value(ci, bytes(d[start:end]))
        return out


def value(c: Column, raw: bytes, signed: bool) -> Any:
    """A value in the binlog's encoding as Python: int, Decimal, float, bytes, or for temporal
    types the server's own text (``YYYY-MM-DD hh:mm:ss.ffffff``); TIMESTAMP as Decimal epoch."""
    t = c.type
    if t in (1, 2, 3, 8, 9):
        return int.from_bytes(raw, "little", signed=signed)
    if t == 4:
        return struct.unpack("<f", raw)[0]
    if t == 5:
        return struct.unpack("<d", raw)[0]
    if t == 13:
        return 0 if raw[0] == 0 else 1900 + raw[0]
    if t == NEWDECIMAL:
        return _decimal(raw, c.meta >> 8, c.meta & 0xFF)
    if t in (ENUM, SET):
        return int.from_bytes(raw, "little")
    if t == BIT:
        return int.from_bytes(raw, "big")
    if t in (10, 14):
        v = int.from_bytes(raw, "little")
        return f"{v >> 9:04d}-{(v >> 5) & 15:02d}-{v & 31:02d}"
    if t == 7:
        return Decimal(int.from_bytes(raw, "little"))
    if t == 17:
        secs = int.from_bytes(raw[:4], "big")
        us = _frac(raw[4:], c.meta, signed_frac=False)
        return Decimal(secs) + Decimal(us) / Decimal(1_000_000) if c.meta else Decimal(secs)
    if t == 18:
        return _datetime2(raw, c.meta)
    if t == 19:
        return _time2(raw, c.meta)
    if t == 12:
        v = int.from_bytes(raw, "little")
        d, s = divmod(v, 1_000_000)
        return f"{d // 10000:04d}-{d // 100 % 100:02d}-{d % 100:02d} {s // 10000:02d}:{s // 100 % 100:02d}:{s % 100:02d}"
    if t == 11:
        v = int.from_bytes(raw, "little", signed=True)
        sign, v = ("-", -v) if v < 0 else ("", v)
        return f"{sign}{v // 10000:02d}:{v // 100 % 100:02d}:{v % 100:02d}"
    return raw


def _frac(b: bytes, fsp: int, *, signed_frac: bool) -> int:
    if fsp in (1, 2):
        return int.from_bytes(b[:1], "big", signed=signed_frac) * 10000
    if fsp in (3, 4):
        return int.from_bytes(b[:2], "big", signed=signed_frac) * 100
    if fsp in (5, 6):
        return int.from_bytes(b[:3], "big", signed=signed_frac)
    return 0


def _decimal(raw: bytes, precision: int, scale: int) -> Decimal:
    b = bytearray(raw[:decimal_size(precision, scale)])
    negative = not b[0] & 0x80
    b[0] ^= 0x80
    if negative:
        b = bytearray(x ^ 0xFF for x in b)
    intg, off, digits = precision - scale, 0, ""
    if intg % 9:
        n = DIG2BYTES[intg % 9]
        digits += str(int.from_bytes(b[off:off + n], "big"))
        off += n
    for _ in range(intg // 9):
        digits += f"{int.from_bytes(b[off:off + 4], 'big'):09d}"
        off += 4
    frac = ""
    for _ in range(scale // 9):
        frac += f"{int.from_bytes(b[off:off + 4], 'big'):09d}"
        off += 4
    if scale % 9:
        n = DIG2BYTES[scale % 9]
        frac += str(int.from_bytes(b[off:off + n], "big")).zfill(scale % 9)
    text = (digits.lstrip("0") or "0") + (f".{frac}" if scale else "")
    return Decimal(("-" if negative else "") + text)


def _fraction_text(us: int, fsp: int) -> str:
    return f".{us:06d}"[:fsp + 1] if fsp else ""


def _datetime2(raw: bytes, fsp: int) -> str:
    intpart = int.from_bytes(raw[:5], "big") - 0x8000000000
    us = _frac(raw[5:], fsp, signed_frac=True)
    ymd, hms = intpart >> 17, intpart % (1 << 17)
    ym = ymd >> 5
    return (f"{ym // 13:04d}-{ym % 13:02d}-{ymd % 32:02d} {hms >> 12:02d}:{(hms >> 6) % 64:02d}:{hms % 64:02d}"
            + _fraction_text(us, fsp))


def _time2(raw: bytes, fsp: int) -> str:
    if fsp in (5, 6):
        packed = int.from_bytes(raw[:6], "big") - 0x800000000000
    else:
        intpart = int.from_bytes(raw[:3], "big") - 0x800000
        frac = 0
        if fsp in (1, 2):
            frac = raw[3]
            if intpart < 0 and frac:
                intpart, frac = intpart + 1, frac - 0x100
            frac *= 10000
        elif fsp in (3, 4):
            frac = int.from_bytes(raw[3:5], "big")
            if intpart < 0 and frac:
                intpart, frac = intpart + 1, frac - 0x10000
            frac *= 100
        packed = (intpart << 24) + frac
    sign = "-" if packed < 0 else ""
    packed = abs(packed)
    hms, us = packed >> 24, packed % (1 << 24)
    return f"{sign}{(hms >> 12) % 1024:02d}:{(hms >> 6) % 64:02d}:{hms % 64:02d}" + _fraction_text(us, fsp)


@dataclass
class RowsEvent:
    """A rows event with its Table_map: its images, located once, decoded on demand.

    ``images`` holds ``(before, after)`` spans per row (offsets in ``event.data``); an insert
    has no before image, a delete no after image."""

    event: Event
    head: RowsHeader
    table: TableMap
    layout: Layout
    _images: list[tuple[tuple[int, int] | None, tuple[int, int] | None]] | None = None
    #: the source's statement ended with a rows event of a table left out: this one must say so
    end_statement: bool = False

    @classmethod
    def of(cls, ev: Event, fde: FormatDescription, tm: TableMap, layout: Layout) -> RowsEvent:
        return cls(ev, parse_rows_header(ev, fde), tm, layout)

    @property
    def kind(self) -> str:
        return self.head.kind

    @property
    def images(self) -> list[tuple[tuple[int, int] | None, tuple[int, int] | None]]:
        if self._images is None:
            h, d, lay = self.head, self.event.data, self.layout
            if h.ncols != len(lay.columns):
                raise BinlogError(f"{self.event.file}:{self.event.pos}: a rows event of {self.table.name} has {h.ncols} columns, "
                                  f"its Table_map {len(lay.columns)}")
            before = lay.present(h.present)
            after = lay.present(h.present_after) if h.present_after is not None else before
            out: list[tuple[tuple[int, int] | None, tuple[int, int] | None]] = []
            off = h.start
            while off < h.end:
                if h.kind == UPDATE:
                    mid = lay.walk(d, off, before)
                    end = lay.walk(d, mid, after)
                    out.append(((off, mid), (mid, end)))
                else:
                    end = lay.walk(d, off, before)
                    out.append(((off, end), None) if h.kind == "delete" else (None, (off, end)))
                off = end
            if off != h.end:
                raise BinlogError(f"{self.event.file}:{self.event.pos}: the row images of {self.table.name} overrun the event "
                                  "(the Table_map does not describe these rows)")
            self._images = out
        return self._images

    def __len__(self) -> int:
        return len(self.images)

    def values(self, span: tuple[int, int], *, after: bool = False) -> list[Any]:
        h = self.head
        bitmap = h.present_after if after and h.present_after is not None else h.present
        return self.layout.decode(self.event.data, span[0], self.layout.present(bitmap))

    def key_values(self, span: tuple[int, int], key: list[int], *, after: bool = False) -> tuple[Any, ...]:
        """The values of the ``key`` columns of one image (the others are walked over, not decoded)."""
        h = self.head
        bitmap = h.present_after if after and h.present_after is not None else h.present
        return self.layout.decode_some(self.event.data, span[0], self.layout.present(bitmap), key)

    def full_image(self, *, after: bool = False) -> bool:
        """Every column is in the image (binlog_row_image=FULL)."""
        bitmap = self.head.present_after if after and self.head.present_after is not None else self.head.present
        return len(self.layout.present(bitmap)) == len(self.layout.columns)
