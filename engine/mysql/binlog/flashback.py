"""Flashback: one transaction found in the binlogs, and the transaction that undoes it.

The inverse is made of the source's own row images (``build.inverse``): its inserts deleted,
its deletes inserted, its updates swapped, events and rows in reverse order — so the server
applies exact values. Before it is applied, every row it touches must still be as the
transaction left it (the inverse's before images; a deleted row's key still free): the
conflicts are listed, all of them, and nothing is written while there is one (unless
overwrite). The undo of a flashback is the original transaction applied again, checked the same
way against what the flashback left.
"""

from __future__ import annotations

from typing import Any

from engine.errors import ActionError
from engine.mysql.binlog import build, conflicts
from engine.mysql.binlog.conflicts import SAME, Conflict, RowCheck
from engine.mysql.binlog.events import WRITE, frame
from engine.mysql.binlog.reader import BinlogReader, EndAt, Transaction
from engine.mysql.binlog.rows import RowsEvent
from engine.mysql.binlog.sources import BinlogSource, file_key
from engine.mysql.binlog.tables import LiveTable, comparators
from engine.mysql.binlog.window import Point, header_state
from engine.mysql.binlog.covered import Covered


def locate(source: BinlogSource, point: Point, schema: str | None, tables: set[str] | None,
           unsigned: Any = None) -> Transaction:
    """The transaction ``point`` names, with the rows events of ``schema``'s ``tables`` kept."""
    files = [f.name for f in source.files()]
    if point.file is not None:
        if point.file not in files:
            raise ActionError(f"{point.file} is not in {source.description}", hint="point binlogs: at where that file is")
        candidates = [point.file]
    elif point.gtid is not None:
        candidates = _files_for(source, files, point.gtid)
    else:
        raise ActionError("event: names no transaction (a time does not)", hint="give the event binlog_find registered, or {gtid}")
    for f in candidates:
        nxt = files.index(f) + 1
        end = EndAt(files[nxt], 4) if nxt < len(files) else None
        reader = BinlogReader(source, schema=schema, tables=tables, start=(f, 4), end=end, unsigned=unsigned)
        for txn in reader.transactions():
            if point.matches(txn):
                return txn
            if point.file is not None and point.pos is not None and (file_key(txn.file), txn.pos) > (file_key(point.file), point.pos):
                break
    raise ActionError(f"no transaction {point} in {source.description}", hint="was it purged? point binlogs: at the archive")


def _files_for(source: BinlogSource, files: list[str], gtid: str) -> list[str]:
    """The file that holds ``gtid``: the one before the first whose header state covers it."""
    for i, f in enumerate(files):
        if _header_covers(source, f, gtid):
            return [files[i - 1]] if i > 0 else []  # covered before the first file: purged
    return files[-1:]


def _header_covers(source: BinlogSource, file: str, gtid: str) -> bool:
    head = header_state(source, file)
    if isinstance(head, str):
        return bool(head) and Covered(head).covers(gtid)
    return bool(head) and Covered(",".join(f"{d}-{s}-{n}" for d, s, n in head)).covers(gtid)


def inverse(txn: Transaction) -> Transaction:
    """A transaction of the inverse events of ``txn`` (each with its Table_map)."""
    assert txn.fde is not None
    fde = txn.fde
    out = Transaction(txn.file, txn.pos, txn.time, gtid=txn.gtid, server_id=txn.server_id, end_pos=txn.end_pos, fde=fde)
    last = len(txn.rows) - 1
    for i, rev in enumerate(reversed(txn.rows)):
        # Only the statement's last event ends it: the server releases the table maps at an
        # end-of-statement flag, and the rows events after it would be dropped without a word
        # (a 2000-row UPDATE spans several events: only the first of the inverse ones applied).
        data = build.inverse(rev, fde, stmt_end=i == last)
        ev = frame(data, rev.event.file, rev.event.pos)
        out.rows.append(RowsEvent.of(ev, fde, rev.table, rev.layout))
    return out


def check(sql: Any, txn: Transaction, live: dict[str, LiveTable]) -> list[Conflict]:
    """Every row ``txn`` (an inverse, or a transaction to re-apply) would touch that is not as
    it expects: the first touch of each key decides (later ones follow from the transaction)."""
    seen: set[tuple[str, tuple[Any, ...]]] = set()
    checks: list[RowCheck] = []
    meta: list[tuple[RowsEvent, str]] = []
    for rev in txn.rows:
        lt = live[rev.table.table]
        cmp = comparators(rev.layout, lt)
        for b, a in rev.images:
            span, after = (a, True) if rev.kind == WRITE else (b, False)
            assert span is not None
            image = rev.values(span, after=after)
            if lt.key:
                k = (lt.table, tuple(image[i] for i in lt.key))
                if k in seen:
                    continue
                seen.add(k)
                if rev.kind != WRITE and a is not None:
                    seen.add((lt.table, rev.key_values(a, lt.key, after=True)))
            elif rev.kind == WRITE:
                continue  # a row without a key can always be inserted
            checks.append(RowCheck(lt, cmp, image))
            meta.append((rev, lt.name))
    out: list[Conflict] = []
    for chk, st, (rev, name) in zip(checks, conflicts.states(sql, checks) if checks else [], meta):
        if rev.kind == WRITE and st != conflicts.MISSING:
            out.append(Conflict("exists", rev.kind, name, chk.key_text(), rev.event.file, rev.event.pos, txn.gtid))
        elif rev.kind != WRITE and st != SAME:
            out.append(Conflict(st, rev.kind, name, chk.key_text(), rev.event.file, rev.event.pos, txn.gtid))
    return out
