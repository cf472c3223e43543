"""The window of a point-in-time recovery: where reading starts, where it stops, which
transactions are left out — from the points a runbook names.

A *point* names a place or a transaction::

    {gtid: 0-1-57}                 the transaction with this GTID
    {file: binlog.000042, pos: 1425}   the position (a transaction when it lies inside one)
    {datetime: "2026-03-01 14:02:00"}  the first transaction at or after this time
    an event binlog_find registered    its transaction (file/pos, GTID)
    a BinlogPosition (fence, restore)  its file/pos

The start is a position (file/pos) or a GTID state (a dump's ``--gtid``): reading then begins in
the last binlog file whose header state the GTID state covers, and transactions it covers are
left out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, UTC
from typing import Any

from engine.errors import ActionError
from engine.mysql.binlog import events as E
from engine.mysql.binlog.covered import Covered, is_single_gtid
from engine.mysql.binlog.position import BinlogPosition
from engine.mysql.binlog.reader import EndAt, Transaction
from engine.mysql.binlog.sources import BinlogSource, file_key


@dataclass(frozen=True)
class Point:
    """A place or a transaction the runbook names (see the module docstring)."""

    gtid: str | None = None
    file: str | None = None
    pos: int | None = None
    time: float | None = None  # epoch seconds
    text: str = ""

    def matches(self, txn: Transaction) -> bool:
        """Does this point name ``txn``?"""
        if self.gtid is not None:
            return txn.gtid == self.gtid
        if self.file is not None and self.pos is not None:
            return txn.file == self.file and txn.pos <= self.pos < max(txn.end_pos, txn.pos + 1)
        return False

    def __str__(self) -> str:
        return self.text


def parse_point(value: Any, what: str, *, to_epoch: Callable[[str], float] | None = None) -> Point:
    """A point from a runbook value (mapping, or a string: a GTID or ``file:pos``)."""
    if isinstance(value, str):
        v = value.strip()
        if is_single_gtid(v):
            return Point(gtid=v, text=f"GTID {v}")
        f, _, p = v.rpartition(":")
        if f and p.isdigit():
            return Point(file=f, pos=int(p), text=f"{f}:{p}")
        raise ActionError(f"{what}: {value!r} names no transaction or position",
                          hint="give an event binlog_find registered, {gtid: …}, {file: …, pos: …} or {datetime: …}")
    if not isinstance(value, dict) or not value:
        raise ActionError(f"{what}: {value!r} is not a point", hint="give {gtid: …}, {file: …, pos: …} or {datetime: …}")
    gtid = value.get("gtid")
    file, pos = value.get("file"), value.get("pos")
    if file and pos not in (None, ""):
        text = f"{file}:{pos}" + (f" (GTID {gtid})" if gtid and is_single_gtid(str(gtid)) else "")
        return Point(gtid=None, file=str(file), pos=int(pos), text=text)
    if gtid:
        g = str(gtid).strip()
        if not is_single_gtid(g):
            raise ActionError(f"{what}: {g!r} is a GTID state, not one transaction's GTID",
                              hint="name one transaction (0-1-57 or uuid:57), or a position {file, pos}")
        return Point(gtid=g, text=f"GTID {g}")
    if value.get("datetime"):
        if to_epoch is None:
            raise ActionError(f"{what}: a datetime cannot name a transaction here", hint="use its GTID or file/pos")
        return Point(time=to_epoch(str(value["datetime"])), text=f"{value['datetime']}")
    raise ActionError(f"{what}: {value!r} has no gtid, file/pos or datetime",
                      hint="give an event binlog_find registered, {gtid: …}, {file: …, pos: …} or {datetime: …}")


def epoch_of(text: str, server_epoch: Callable[[str], float]) -> float:
    """A datetime: with an offset (``…Z``, ``…+02:00``) exactly; without one in the server's time zone."""
    t = text.strip().replace("T", " ")
    try:
        dt = datetime.fromisoformat(t.replace("Z", "+00:00"))
    except ValueError:
        raise ActionError(f"{text!r} is not a datetime", hint="write 2026-03-01 14:02:00 (server time) or 2026-03-01T13:02:00Z") from None
    if dt.tzinfo is not None:
        return dt.timestamp()
    return server_epoch(dt.isoformat(sep=" "))


def iso(ts: int | float) -> str:
    """A binlog timestamp as the time it names (UTC, ISO 8601)."""
    return datetime.fromtimestamp(ts, tz=UTC).isoformat().replace("+00:00", "Z")


@dataclass
class Start:
    """Where reading begins: a file and position, and the GTID state whose transactions are out."""

    file: str
    pos: int
    covered: Covered | None
    position: BinlogPosition  # as named (registered as ``start``)


def header_state(source: BinlogSource, file: str) -> list[tuple[int, int, int]] | str:
    """The GTID state at the start of ``file``: MariaDB's Gtid_list, or MySQL's Previous_gtids."""
    fde = None
    for ev in source.events(file, 4):
        if ev.file != file:
            break
        if ev.type == E.FORMAT_DESCRIPTION:
            fde = E.parse_fde(ev)
        elif fde is not None and ev.type == E.GTID_LIST:
            return E.parse_gtid_list(ev, fde)
        elif fde is not None and ev.type == E.PREVIOUS_GTIDS:
            return E.parse_previous_gtids(ev, fde)
        elif ev.type not in (E.ROTATE, E.BINLOG_CHECKPOINT):
            break
    return []


def resolve_start(source: BinlogSource, position: BinlogPosition, what: str = "start") -> Start:
    """Where to begin reading for ``position`` (file/pos, or a GTID state)."""
    files = source.files()
    names = [f.name for f in files]
    if not files:
        raise ActionError(f"{source.description}: no binlog files", hint="check binlogs: (server, or a directory on the host)")
    if position.file and position.pos is not None:
        if position.file not in names:
            first = names[0]
            purged = file_key(position.file) < file_key(first)
            raise ActionError(f"{what} {position.file}:{position.pos} is not in {source.description} (they hold {first} … {names[-1]})"
                              + (": it was purged" if purged else ""),
                              hint="point binlogs: at a directory with every binlog from the dump's on" if purged else
                              "are these the binlogs of the server the dump was taken on?")
        return Start(position.file, max(position.pos, 4), None, position)
    if not position.gtid:
        raise ActionError(f"{what}: no file/pos and no GTID", hint="give start: {file, pos} or {gtid}, or from_dump:")
    state = Covered(position.gtid)
    for f in reversed(files):
        if state.covers_header(header_state(source, f.name)):
            return Start(f.name, 4, state, position)
    raise ActionError(f"{what}: the binlogs of {source.description} begin after GTID {position.gtid}: the transactions "
                      "between are gone (purged)", hint="point binlogs: at a directory with the older binlogs archived")


def end_of_binlogs(source: BinlogSource, sql: Any | None, flavor: str = "mariadb") -> EndAt | None:
    """The end of the binlogs now (the server's, through ``sql``; an archive's last file size)."""
    if sql is not None:
        from engine.mysql.binlog.status import server_position

        pos = server_position(sql, flavor)
        return EndAt(pos.file, pos.pos) if pos is not None and pos.file and pos.pos is not None else None
    files = source.files()
    if files and files[-1].size is not None:
        return EndAt(files[-1].name, files[-1].size)
    return None


def window_bytes(source: BinlogSource, start: tuple[str, int], end: EndAt | None) -> int | None:
    """About how many bytes of binlog the window holds (None when a file's size is unknown)."""
    total = 0
    for f in source.files():
        k = file_key(f.name)
        if k < file_key(start[0]) or (end is not None and k > file_key(end.file)):
            continue
        if f.size is None:
            return None
        hi = end.pos if end is not None and f.name == end.file else f.size
        lo = start[1] if f.name == start[0] else 0
        total += max(0, min(hi, f.size) - lo)
    return total


class ReadProgress:
    """A progress line while a window is read (at most one a second): bytes, transactions, ETA."""

    def __init__(self, report: Callable[[int, int | None, str], None], what: str, total: int | None):
        import time

        self.report, self.what, self.total = report, what, total
        self.t0 = self.last = time.monotonic()
        self.n = 0

    def __call__(self, reader: Any) -> None:
        import time

        self.n += 1
        now = time.monotonic()
        if now - self.last < 1.0:
            return
        self.last = now
        done = reader.bytes_read
        rate = done / max(now - self.t0, 1e-6)
        eta = f", ETA {(self.total - done) / rate:.0f}s" if self.total and rate > 0 and self.total > done else ""
        size = f"{done / 1e6:.1f}/{self.total / 1e6:.1f} MB" if self.total else f"{done / 1e6:.1f} MB"
        self.report(done, self.total, f"{self.what} | {self.n:,} transactions, {size}, {rate / 1e6:.1f} MB/s{eta}")


def earlier(a: EndAt | None, b: EndAt | None) -> EndAt | None:
    if a is None or b is None:
        return a or b
    return a if (file_key(a.file), a.pos) <= (file_key(b.file), b.pos) else b
