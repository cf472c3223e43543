"""The index pass: one read of the (plain, local) dump that cuts each table's rows into batches
and keeps the statements the control connection runs (header SETs, table DDL, triggers, views,
routines, events) in file order.

A batch is a byte range of a row list — ``(…),\\n(…)`` — either inside the dump itself (one
extended INSERT, the common case: mysqldump caps them near 1 MB) or in a side file where small
statements were merged (``--skip-extended-insert``: one row per statement) and statements
larger than a batch were cut by rows. Batches are identified by ``(table, first ordinal, part)``
and cut the same way on every attempt (the sizes are stored with the run), so the progress
table means the same thing after a resume.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from engine.actions.restore.convert import strip_body


@dataclass(frozen=True, slots=True)
class Batch:
    table: str
    first: int  # ordinal of its first data statement (per table)
    last: int
    part: int  # row-split part of one statement (0 when whole)
    side: bool  # the body lives in the side file (merged or split), else in the dump
    offset: int
    length: int
    newline_layout: bool  # rows separated by ",\n" (mariadb-dump) rather than "," (MySQL)

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.table, self.first, self.part)


@dataclass
class TableIndex:
    name: str
    batches: list[Batch] = field(default_factory=list)
    bytes: int = 0
    columns: tuple[str, ...] | None = None  # --complete-insert column list


@dataclass
class ControlStatement:
    """A statement the control connection runs: kind is session | ddl | post."""

    kind: str
    text: bytes
    table: str | None
    post_kind: str = ""
    verb: str = ""  # ddl: drop | create | other


@dataclass
class DumpIndex:
    tables: dict[str, TableIndex]
    control: list[ControlStatement]
    header: list[bytes]  # the SETs before the first table: replayed on every worker connection
    side_path: str | None

    def close(self) -> None:
        if self.side_path:
            try:
                os.unlink(self.side_path)
            except OSError:
                pass
            self.side_path = None


def _kind(stmt: Any) -> str:
    k = stmt.kind
    return str(getattr(k, "name", k)).upper()


def _ddl_verb(text: bytes) -> str:
    head = text.lstrip()[:200].upper()
    while head.startswith(b"/*!"):
        head = head[3:].lstrip(b"0123456789 ")
    if head.startswith(b"DROP"):
        return "drop"
    if head.startswith(b"CREATE"):
        return "create"
    return "other"


def build_index(statements: Iterable[Any], wanted: set[str], *, batch_bytes: int, split_bytes: int,
                tmpdir: str | None = None) -> DumpIndex:
    """Cut the data statements of ``wanted`` tables into batches of about ``batch_bytes``;
    a statement over ``split_bytes`` (≈ half of max_allowed_packet) is cut by rows."""
    from engine.mysql.dumpfile import iter_rows

    tables: dict[str, TableIndex] = {t: TableIndex(t) for t in wanted}
    control: list[ControlStatement] = []
    header: list[bytes] = []
    seen_table = False
    side: BinaryIO | None = None
    side_path: str | None = None
    side_pos = 0
    # pending small statements of one table, merged into one side-file batch
    pend_table: str | None = None
    pend: list[bytes] = []
    pend_bytes = 0
    pend_first = pend_last = 0

    def side_write(data: bytes) -> int:
        nonlocal side, side_path, side_pos
        if side is None:
            fd, side_path = tempfile.mkstemp(prefix="runbook-restore-", suffix=".rows", dir=tmpdir)
            side = os.fdopen(fd, "wb")
        at = side_pos
        side.write(data)
        side_pos += len(data)
        return at

    def flush() -> None:
        nonlocal pend_table, pend, pend_bytes
        if pend_table is None:
            return
        body = b",\n".join(pend)
        at = side_write(body)
        ti = tables[pend_table]
        ti.batches.append(Batch(pend_table, pend_first, pend_last, 0, True, at, len(body), True))
        pend_table, pend, pend_bytes = None, [], 0

    for st in statements:
        kind = _kind(st)
        if kind == "DATA":
            seen_table = True
            table = st.table
            if table not in tables:
                continue
            ti = tables[table]
            if ti.columns is None and st.columns:
                ti.columns = tuple(st.columns)
            body = strip_body(st.text, st.values_at)
            n = len(body)
            ti.bytes += n
            newline = b"),\n(" in body[: min(n, 65536)].tobytes() if n > 4 else True
            if n > split_bytes:
                flush()
                part, chunk, size = 0, [], 0
                for row in iter_rows(st):
                    chunk.append(bytes(row))
                    size += len(row) + 2
                    if size >= batch_bytes:
                        data = b",\n".join(chunk)
                        ti.batches.append(Batch(table, st.ordinal, st.ordinal, part, True, side_write(data), len(data), True))
                        part, chunk, size = part + 1, [], 0
                if chunk:
                    data = b",\n".join(chunk)
                    ti.batches.append(Batch(table, st.ordinal, st.ordinal, part, True, side_write(data), len(data), True))
            elif n * 2 >= batch_bytes:
                flush()
                ti.batches.append(Batch(table, st.ordinal, st.ordinal, 0, False, st.offset + st.values_at, n, newline))
            else:
                if pend_table != table or pend_bytes + n > batch_bytes:
                    flush()
                    pend_table, pend_first = table, st.ordinal
                if newline:
                    pend.append(body.tobytes())
                else:  # MySQL's one-line layout: put each row on its own line, as mariadb-dump does
                    pend.append(b",\n".join(bytes(r) for r in iter_rows(st)))
                pend_bytes += n
                pend_last = st.ordinal
            continue
        flush()
        if kind == "SESSION":
            scope = getattr(st, "scope", "")
            if (scope == "header") if scope else not seen_table:
                header.append(st.text)
            control.append(ControlStatement("session", st.text, None))
        elif kind == "TABLE_DDL":
            seen_table = True
            control.append(ControlStatement("ddl", st.text, st.table, verb=_ddl_verb(st.text)))
        elif kind == "POST":
            control.append(ControlStatement("post", st.text, st.table, post_kind=str(getattr(st, "post_kind", "") or "")))
        # SKIP (LOCK TABLES, DISABLE KEYS, GTID), SCHEMA (CREATE DATABASE, USE), OTHER: not replayed
    flush()
    if side is not None:
        side.close()
    return DumpIndex(tables, control, header, side_path)
