"""The index pass: one read of the (plain, local) dump that cuts each table's rows into batches
and keeps the statements the control connection runs (header SETs, table DDL, triggers, views,
routines, events) in file order.

A batch is a row list — ``(…),\\n(…)`` — made of byte ranges inside the dump itself (extended
INSERTs, the common case: mysqldump caps them near 1 MB, so a batch of several MiB joins several
of them) or in a side file where small statements were merged (``--skip-extended-insert``: one
row per statement) and statements larger than a batch were cut by rows. Batches are identified by ``(table, first ordinal, part)``
and cut the same way on every attempt (the sizes are stored with the run), so the progress
table means the same thing after a resume.

The loader reads each batch again (``pread`` at its ranges) — from a dump that is often the
user's own file, read in place, which a backup job may rewrite while the restore runs. So every
range carries the sha256 of the bytes the check read there, and :meth:`Batch.read` refuses other
bytes (:class:`DumpChanged`) before any of them is sent: what is loaded is what was checked.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any, BinaryIO

from engine.actions.restore.convert import strip_body
from engine.mysql.dump.classify import head_of
from engine.mysql.dump.safety import REFUSE, SKIP, judge_other, judge_set, strip_qualifier
from engine.errors import RunbookError
from engine.mysql.dump.source import spool_file


#: a statement of at least 1/SEGMENTS of a batch joins it as a range of the dump (smaller ones are
#: copied into the side file: a batch of one-row statements would be thousands of reads)
SEGMENTS = 16


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
    #: merged statements: the row lists ``(side, offset, length)`` joined by ",\n" (``offset`` is
    #: then unused, ``length`` the joined size); empty for one range
    segments: tuple[tuple[bool, int, int], ...] = ()
    #: the sha256 of each range as the check read it (one per segment, else one)
    sums: tuple[bytes, ...] = ()

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.table, self.first, self.part)

    def read(self, fds: dict[bool, int]) -> bytes:
        """The batch's row list, read from the dump (``fds[False]``) or the side file (``fds[True]``),
        each range compared with the check's sha256 of it (:class:`DumpChanged`)."""
        ranges = self.segments or ((self.side, self.offset, self.length),)
        if len(self.sums) != len(ranges):
            raise RunbookError(f"batch at statement {self.first} of {self.table} has no digest of its bytes: not loaded")
        pieces = [self._pread(fds, side, at, n, want) for (side, at, n), want in zip(ranges, self.sums)]
        return pieces[0] if len(pieces) == 1 else b",\n".join(pieces)

    def _pread(self, fds: dict[bool, int], side: bool, at: int, n: int, want: bytes) -> bytes:
        data = os.pread(fds[side], n, at)
        if len(data) != n or hashlib.sha256(data).digest() != want:
            raise DumpChanged(self, side, at, n, short=len(data) != n)
        return data


class DumpChanged(RunbookError):
    """A batch's bytes are not those the check read (the file was rewritten since): nothing of
    this batch is sent. The loader names the file and stops the restore."""

    def __init__(self, batch: Batch, side: bool, at: int, n: int, *, short: bool) -> None:
        super().__init__(f"it ends before byte {at + n:,}" if short
                         else f"its bytes {at:,}..{at + n:,} differ from those the check read")
        self.batch = batch
        self.side = side  # in the restore's own side file, not the dump


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
        # pending small statements of one table, merged into one batch: their row lists in the
        # dump itself (or, for MySQL's one-line layout, re-cut one row per line into the side file)
        self.pend_table: str | None = None
        self.pend: list[tuple[bool, int, int]] = []
        self.pend_sums: list[Any] = []  # each range's sha256 (a hash object while a side range grows)
        self.pend_bytes = 0
        #: offset -> (row list length, sha256) of statements already hashed (the prover's guesses)
        self.known: dict[int, tuple[int, bytes]] = {}
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
        length = sum(n for _, _, n in self.pend) + 2 * (len(self.pend) - 1)
        sums = tuple(h if isinstance(h, bytes) else h.digest() for h in self.pend_sums)
        if len(self.pend) == 1:
            side, at, _ = self.pend[0]
            batch = Batch(self.pend_table, self.pend_first, self.pend_last, 0, side, at, length, True, (), sums)
        else:
            batch = Batch(self.pend_table, self.pend_first, self.pend_last, 0, False, -1, length, True, tuple(self.pend), sums)
        self.tables[self.pend_table].batches.append(batch)
        self.pend_table, self.pend, self.pend_sums, self.pend_bytes = None, [], [], 0

    def _sum(self, st: Any, body: memoryview) -> bytes:
        """The sha256 of a statement's row list as read by the check (hashed once: a big INSERT
        the prover was given is already)."""
        known = self.known.pop(st.offset, None)
        if known is not None and known[0] == len(body):
            return known[1]
        return hashlib.sha256(body).digest()

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
                    ti.batches.append(Batch(table, st.ordinal, st.ordinal, part, True, self._side_write(data), len(data), True,
                                            (), (hashlib.sha256(data).digest(),)))
                    part, chunk, size = part + 1, [], 0
            if chunk:
                data = b",\n".join(chunk)
                ti.batches.append(Batch(table, st.ordinal, st.ordinal, part, True, self._side_write(data), len(data), True,
                                        (), (hashlib.sha256(data).digest(),)))
        elif n * 2 >= self.batch_bytes:
            self._flush()
            ti.batches.append(Batch(table, st.ordinal, st.ordinal, 0, False, st.offset + st.values_at, n, newline, (),
                                    (self._sum(st, body),)))
        else:
            if self.pend_table != table or self.pend_bytes + n > self.batch_bytes:
                self._flush()
                self.pend_table, self.pend_first = table, st.ordinal
            if newline and n * SEGMENTS >= self.batch_bytes:  # read from the dump itself: not copied
                self.pend.append((False, st.offset + st.values_at, n))
                self.pend_sums.append(self._sum(st, body))
            else:
                # small statements (--skip-extended-insert: one row each) are copied into one
                # side-file range; MySQL's one-line layout gets each row on its own line
                data = body.tobytes() if newline else b",\n".join(bytes(r) for r in iter_rows(st))
                if self.pend and self.pend[-1][0] and sum(self.pend[-1][1:]) == self.side_pos:
                    _, at, size = self.pend[-1]
                    joined = b",\n" + data
                    self._side_write(joined)
                    self.pend[-1] = (True, at, size + len(joined))
                    self.pend_sums[-1].update(joined)
                else:
                    self.pend.append((True, self._side_write(data), len(data)))
                    self.pend_sums.append(hashlib.sha256(data))
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
