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
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any, BinaryIO

from engine.actions.restore.convert import strip_body
from engine.mysql.dump.classify import head_of
from engine.mysql.dump.safety import REFUSE, SKIP, judge_other, judge_set, strip_qualifier
from engine.mysql.dump.source import spool_file


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
    """A statement the control connection runs: kind is session | ddl | post | alter (keys and
    constraints of a table the dump creates: ``ALTER TABLE … ADD KEY``, ``CREATE INDEX``)."""

    kind: str
    text: bytes  # the dump's own schema qualifier already rewritten away
    table: str | None
    post_kind: str = ""
    verb: str = ""  # ddl: drop | create | other
    name: str | None = None  # post: the object's name
    before_data: bool = False  # alter: before the table's first rows (run with its DDL), else after its load
    ordinal: int = -1  # alter: its place among the control statements (its progress row)


@dataclass(frozen=True)
class Refused:
    """A statement of the dump a restore will not run (the whole restore is refused)."""

    offset: int
    reason: str


@dataclass
class DumpIndex:
    tables: dict[str, TableIndex]
    control: list[ControlStatement]
    header: list[bytes]  # the SETs before the first table: replayed on every worker connection
    side_path: str | None
    refused: list[Refused] = field(default_factory=list)
    own_schema: str | None = None  # the schema the dump was taken of (qualifiers equal to it are rewritten)

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


class IndexBuilder:
    """Cuts the data statements of ``wanted`` tables (None: every table) into batches of about
    ``batch_bytes`` as statements are fed to it; a statement over ``split_bytes`` (≈ half of
    max_allowed_packet) is cut by rows. Fed by the whole-file check's own pass (one read)."""

    def __init__(self, wanted: set[str] | None, *, batch_bytes: int, split_bytes: int, tmpdir: str | None = None,
                 own_schema: str | None = None):
        self.wanted = wanted
        self.own_schema = own_schema
        self.refused: list[Refused] = []
        self.created: set[str] = set()  # tables (and sequences) the dump has DDL for, so far
        self.with_data: set[str] = set()  # tables whose rows have begun
        self.batch_bytes, self.split_bytes, self.tmpdir = batch_bytes, split_bytes, tmpdir
        self.tables: dict[str, TableIndex] = {t: TableIndex(t) for t in wanted or ()}
        self.control: list[ControlStatement] = []
        self.header: list[bytes] = []
        self.seen_table = False
        self.side: BinaryIO | None = None
        self.side_path: str | None = None
        self.side_pos = 0
        # pending small statements of one table, merged into one side-file batch
        self.pend_table: str | None = None
        self.pend: list[bytes] = []
        self.pend_bytes = 0
        self.pend_first = self.pend_last = 0

    def _side_write(self, data: bytes) -> int:
        if self.side is None:
            fd, self.side_path = spool_file("restore", ".rows", self.tmpdir)
            self.side = os.fdopen(fd, "wb")
        at = self.side_pos
        self.side.write(data)
        self.side_pos += len(data)
        return at

    def _flush(self) -> None:
        if self.pend_table is None:
            return
        body = b",\n".join(self.pend)
        at = self._side_write(body)
        self.tables[self.pend_table].batches.append(Batch(self.pend_table, self.pend_first, self.pend_last, 0, True, at,
                                                          len(body), True))
        self.pend_table, self.pend, self.pend_bytes = None, [], 0

    def _refuse(self, st: Any, reason: str) -> None:
        if len(self.refused) < 20:
            self.refused.append(Refused(st.offset, reason))

    def _qualified(self, st: Any) -> bool:
        """The statement's own qualifier is the dump's schema (rewritten onto the target) or it
        is refused: a restore never acts on a schema it was not pointed at."""
        q = getattr(st, "qualifier", None)
        if q is None:
            return True
        if self.own_schema is None:
            self.own_schema = q
        if q == self.own_schema:
            return True
        head = head_of(st.text, 120).split(b"(", 1)[0].decode("utf-8", "replace").strip()
        self._refuse(st, f"{head}: names schema {q}, not the dump's own ({self.own_schema}) — a restore acts on its"
                         " target schema only")
        return False

    def _text(self, st: Any) -> bytes:
        return strip_qualifier(st.text, self.own_schema) if self.own_schema else bytes(st.text)

    def feed(self, st: Any) -> None:
        kind = _kind(st)
        if kind == "DATA":
            if self._qualified(st):
                self._data(st)
            return
        self._flush()
        if kind in ("SESSION", "SKIP") and head_of(st.text, 64)[:3].upper() == b"SET":
            verdict = judge_set(st.text)
            if verdict.action == REFUSE:
                self._refuse(st, verdict.reason)
                return
            if verdict.action == SKIP or kind == "SKIP":
                return
        if kind == "SESSION":
            scope = getattr(st, "scope", "")
            if (scope == "header") if scope else not self.seen_table:
                self.header.append(st.text)
            self.control.append(ControlStatement("session", st.text, None))
        elif kind == "TABLE_DDL":
            self.seen_table = True
            if self._qualified(st):
                self.created.add(st.table)
                self.control.append(ControlStatement("ddl", self._text(st), st.table, verb=_ddl_verb(st.text)))
        elif kind == "POST":
            if self._qualified(st):
                self.control.append(ControlStatement("post", self._text(st), st.table,
                                                     post_kind=str(getattr(st, "post_kind", "") or ""), name=st.name,
                                                     verb=_ddl_verb(st.text)))
        elif kind == "SCHEMA":
            if self.own_schema is None and st.schema:
                self.own_schema = st.schema  # USE / CREATE DATABASE: mapped onto the target, never run
        elif kind == "OTHER":
            self._other(st)
        # SKIP (LOCK TABLES, DISABLE KEYS, GTID, CHANGE MASTER): the loader does its own locking and keys

    def _other(self, st: Any) -> None:
        verdict = judge_other(st.text)
        if verdict.action == SKIP:
            return
        if verdict.action == REFUSE:
            self._refuse(st, verdict.reason)
            return
        table = verdict.table or ""
        if verdict.qualifier is not None and not self._qualified(replace(st, qualifier=verdict.qualifier)):
            return
        if table not in self.created:
            self._refuse(st, f"ALTER of {table}: not a table this dump creates (a restore changes only the tables it restores)")
            return
        self.control.append(ControlStatement("alter", self._text(st), table, before_data=table not in self.with_data,
                                             ordinal=len(self.control)))

    def _data(self, st: Any) -> None:
        from engine.mysql.dump import iter_rows

        self.seen_table = True
        table = st.table
        self.with_data.add(table)
        if table not in self.tables:
            if self.wanted is not None:
                return
            self.tables[table] = TableIndex(table)
        ti = self.tables[table]
        if ti.columns is None and st.columns:
            ti.columns = tuple(st.columns)
        body = strip_body(st.text, st.values_at)
        n = len(body)
        ti.bytes += n
        newline = b"),\n(" in body[: min(n, 65536)].tobytes() if n > 4 else True
        if n > self.split_bytes:
            self._flush()
            part, chunk, size = 0, [], 0
            for row in iter_rows(st):
                chunk.append(bytes(row))
                size += len(row) + 2
                if size >= self.batch_bytes:
                    data = b",\n".join(chunk)
                    ti.batches.append(Batch(table, st.ordinal, st.ordinal, part, True, self._side_write(data), len(data), True))
                    part, chunk, size = part + 1, [], 0
            if chunk:
                data = b",\n".join(chunk)
                ti.batches.append(Batch(table, st.ordinal, st.ordinal, part, True, self._side_write(data), len(data), True))
        elif n * 2 >= self.batch_bytes:
            self._flush()
            ti.batches.append(Batch(table, st.ordinal, st.ordinal, 0, False, st.offset + st.values_at, n, newline))
        else:
            if self.pend_table != table or self.pend_bytes + n > self.batch_bytes:
                self._flush()
                self.pend_table, self.pend_first = table, st.ordinal
            if newline:
                self.pend.append(body.tobytes())
            else:  # MySQL's one-line layout: put each row on its own line, as mariadb-dump does
                self.pend.append(b",\n".join(bytes(r) for r in iter_rows(st)))
            self.pend_bytes += n
            self.pend_last = st.ordinal

    def finish(self) -> DumpIndex:
        self._flush()
        if self.side is not None:
            self.side.close()
            self.side = None
        return DumpIndex(self.tables, self.control, self.header, self.side_path, self.refused, self.own_schema)

    def discard(self) -> None:
        if self.side is not None:
            self.side.close()
            self.side = None
        if self.side_path:
            try:
                os.unlink(self.side_path)
            except OSError:
                pass


def build_index(statements: Iterable[Any], wanted: set[str] | None, *, batch_bytes: int, split_bytes: int,
                tmpdir: str | None = None) -> DumpIndex:
    """The index of ``statements`` (a second pass; :class:`IndexBuilder` rides on the check's)."""
    b = IndexBuilder(wanted, batch_bytes=batch_bytes, split_bytes=split_bytes, tmpdir=tmpdir)
    for st in statements:
        b.feed(st)
    return b.finish()
