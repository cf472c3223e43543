"""The mysqldump / mariadb-dump reader: statements of a dump, classified, in file order.

Shared by ``restore`` (which loads them) and ``verify`` (which counts rows from them)::

    reader = DumpReader("/backups/shop.sql.gz")     # or DumpReader(fileobj=sftp_file)
    reader.header.charset                            # 'utf8mb4', from SET NAMES
    for st in reader.statements():
        if st.kind is Kind.DATA:
            print(st.table, st.ordinal, count_rows(st))

    scan = scan_dump("/backups/shop.sql.gz", tables=["users"])   # the whole-file check

The reader never decodes the dump (binary column data is not UTF-8): statements are bytes,
split by :mod:`engine.mysql.dump.split`. Which statement is what follows restore-anchors A4:

==========  ===================================================================================
DATA        ``INSERT``/``REPLACE`` [``IGNORE``/``DELAYED``] ``INTO t … VALUES (…),(…)``
TABLE_DDL   ``DROP TABLE`` / ``CREATE TABLE`` of a real table
SESSION     ``SET …`` (the header's ``/*!40101 SET NAMES … */`` etc.); ``scope`` says where
SKIP        ``LOCK``/``UNLOCK TABLES``, ``ALTER TABLE … DISABLE/ENABLE KEYS``, the sandbox line,
            GTID and binlog statements (``SET GLOBAL gtid_slave_pos``, ``SET @@GLOBAL.GTID_PURGED``,
            ``SET @@SESSION.SQL_LOG_BIN``, ``SET @MYSQLDUMP_TEMP_LOG_BIN``, ``CHANGE MASTER``),
            ``DELIMITER`` lines (the reader applies them)
POST        views (and their stand-in tables: ``standin_view``), triggers, routines, events
SCHEMA      ``CREATE DATABASE`` / ``DROP DATABASE`` / ``ALTER DATABASE`` / ``USE``
OTHER       anything else (``client_command`` set when the ``mysql`` client, not the server,
            would run it: the reader cannot load those)
==========  ===================================================================================
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterator
from dataclasses import replace
from typing import Any, BinaryIO

from engine.mysql.dump.classify import (
    SET_NAMES,
    SET_SKIP,
    Classifier,
    NoPathError,
    head_of,
)
from engine.mysql.dump.split import ByteSource, DumpError, Splitter
from engine.mysql.dump.types import DumpHeader, Kind, Statement


SNIFF = 64 * 1024


# ------------------------------------------------------------------------------- the reader


def _open(path: str | os.PathLike[str] | None, fileobj: BinaryIO | None) -> tuple[BinaryIO, str, bool]:
    if fileobj is not None:
        return fileobj, str(path or getattr(fileobj, "name", None) or "dump"), False
    if path is None:
        raise TypeError("DumpReader needs a path or a fileobj")
    try:
        return open(path, "rb"), str(path), True
    except OSError as exc:
        raise DumpError(f"cannot open the dump: {exc.strerror}", path=str(path),
                        hint="check the path (and that the file is readable by this user)") from exc


class _Recorder:
    """Reads a stream and keeps what it read (the header sniff of a non-seekable stream)."""

    def __init__(self, inner: BinaryIO) -> None:
        self.inner = inner
        self.taken = bytearray()
        self.name = getattr(inner, "name", None)

    def read(self, n: int = -1) -> bytes:
        data = self.inner.read(n)
        self.taken += data
        return data


class _Replay:
    """The bytes a sniff took, then the rest of the stream."""

    def __init__(self, head: bytes, inner: BinaryIO) -> None:
        self.head = head
        self.inner = inner
        self.name = getattr(inner, "name", None)

    def read(self, n: int = -1) -> bytes:
        if self.head:
            data, self.head = (self.head, b"") if n < 0 else (self.head[:n], self.head[n:])
            return data
        return self.inner.read(n)


class DumpReader:
    """Streams the classified statements of a mysqldump/mariadb-dump file (plain or gzip).

    ``DumpReader(path)`` can be iterated several times (each :meth:`statements` call reads the
    file again); ``DumpReader(fileobj=f)`` once (a pipe, a socket), or again when ``f`` can seek.
    ``header`` is read at construction from the first 64 KiB.

    In a runbook the reader is behind ``restore`` and ``disk_space``::

        - disk_space: {path: /var/lib/mysql, need_for_restore: /backups/shop.sql.gz}
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *, fileobj: BinaryIO | None = None,
                 chunk: int | None = None) -> None:
        self.path = path
        self._fileobj = fileobj
        self._passes = 0  # passes started over fileobj
        self._sniffed = b""  # raw bytes the header sniff took from a stream, handed to the first pass
        self._start = 0
        self.chunk = chunk
        self.source: ByteSource | None = None  # the byte source of the latest pass (sizes, sha256)
        self.splitter: Splitter | None = None
        #: an :class:`engine.mysql.dump.prove.Prover` of this (plain) file: big INSERTs are guessed
        #: and proven by its helpers; its ``wait()`` must return before the pass is trusted
        self.prover: Any = None
        self.header = self._sniff()

    @property
    def name(self) -> str:
        return str(self.path or getattr(self._fileobj, "name", None) or "dump")

    def _raw(self) -> tuple[BinaryIO, bool]:
        """The file for a new pass (and whether to close it): a path is opened again; a stream's
        first pass gets back the bytes the sniff read, later passes need it to seek."""
        if self._fileobj is None:
            f, _, owned = _open(self.path, None)
            return f, owned
        self._passes += 1
        if self._passes == 1:
            return _Replay(self._sniffed, self._fileobj), False  # type: ignore[return-value]
        try:
            self._fileobj.seek(self._start)
        except (OSError, AttributeError, io.UnsupportedOperation) as exc:
            raise DumpError("the dump stream cannot be read twice (not seekable)", path=self.name) from exc
        return self._fileobj, False

    def _sniff(self) -> DumpHeader:
        if self._fileobj is not None:
            try:
                self._start = self._fileobj.tell()
            except (OSError, AttributeError, io.UnsupportedOperation):
                self._start = 0
            f: BinaryIO = _Recorder(self._fileobj)  # type: ignore[assignment]
            owned = False
        else:
            f, owned = self._raw()
        try:
            src = ByteSource(f, self.name)
            data = b""
            while len(data) < SNIFF:
                more = src.read(SNIFF - len(data))
                if not more:
                    break
                data += more
        finally:
            if owned:
                f.close()
        if isinstance(f, _Recorder):
            self._sniffed = bytes(f.taken)
        try:
            return parse_header(data, gzip=src.gzip, complete=len(data) < SNIFF)
        except NoPathError as exc:
            raise DumpError(exc.message, path=self.name, offset=exc.offset, snippet=exc.snippet, hint=exc.hint) from exc

    def statements(self, *, hash_file: bool = False) -> Iterator[Statement]:
        """Every statement in file order (``hash_file``: also compute the file's sha256 into
        ``self.source.sha256``). Raises :class:`DumpError` on a corrupt or truncated file."""
        f, owned = self._raw()
        try:
            src = self.source = ByteSource(f, self.name, hash_file=hash_file)
            sp = self.splitter = Splitter(src, **({"chunk": self.chunk} if self.chunk else {}),
                                          prover=self.prover if self._fileobj is None else None)
            cl = Classifier()
            pending: Statement | None = None
            classify, ddl = cl.classify, Kind.TABLE_DDL
            try:
                for raw in sp:
                    st = classify(raw)
                    if pending is not None:
                        # A stand-in without the comment (--skip-comments): DROP TABLE v then DROP VIEW v.
                        if (st.kind is Kind.POST and st.post_kind == "view" and pending.kind is Kind.TABLE_DDL
                                and pending.table == st.table and head_of(st.text)[:9].upper() == b"DROP VIEW"
                                and head_of(pending.text)[:4].upper() == b"DROP"):
                            pending = replace(pending, kind=Kind.POST, post_kind="standin_view", name=pending.table)
                            st = replace(st, post_kind="standin_view")
                            cl.standin = st.table
                        yield pending
                        pending = None
                    if st.kind is ddl and head_of(st.text)[:4].upper() == b"DROP":
                        pending = st
                    else:
                        yield st
                if pending is not None:
                    yield pending
            except NoPathError as exc:
                raise DumpError(exc.message, path=self.name, offset=exc.offset, snippet=exc.snippet, hint=exc.hint) from exc
        finally:
            if owned:
                f.close()

    @property
    def tail(self) -> bytes:
        """The comments after the last statement (after a full pass): the trailer lives there."""
        return self.splitter.tail if self.splitter else b""


_TOOL = re.compile(rb"^-- (?P<tool>MariaDB|MySQL) dump (?P<ver>[0-9.]+)\s+Distrib (?P<distrib>\S+?),?(?:\s|$)", re.M)
_SERVER = re.compile(rb"^-- Server version\s+(?P<v>\S+)", re.M)
_HOST = re.compile(rb"^-- Host: (?P<h>\S+)\s+Database: (?P<d>[^\r\n]+)", re.M)
_SQL_START = re.compile(
    rb"(?i)(?:/\*M?!|SET\b|CREATE\b|DROP\b|INSERT\b|REPLACE\b|USE\b|LOCK\b|UNLOCK\b|DELIMITER\b|SELECT\b|ALTER\b|START\b|BEGIN\b"
    rb"|COMMIT\b|FLUSH\b|GRANT\b|TRUNCATE\b|DELETE\b|UPDATE\b|CHANGE\b|RENAME\b|ANALYZE\b|OPTIMIZE\b|DO\b|CALL\b)")


def parse_header(data: bytes, *, gzip: bool = False, complete: bool = False) -> DumpHeader:
    """A :class:`DumpHeader` from the first bytes of a dump."""
    h = DumpHeader(gzip=gzip)
    m = _TOOL.search(data[:4096])
    if m:
        distrib = m.group("distrib").decode("latin-1")
        h.tool = "mariadb-dump" if m.group("tool") == b"MariaDB" or "MariaDB" in distrib else "mysqldump"
        h.tool_version, h.distrib = m.group("ver").decode(), distrib
    m = _SERVER.search(data[:4096])
    if m:
        h.server_version = m.group("v").decode("latin-1")
    m = _HOST.search(data[:4096])
    if m:
        h.host = m.group("h").decode("latin-1")
        db = m.group("d").strip().decode("utf-8", "surrogateescape")
        if db and not db.startswith("--"):
            h.databases.append(db)
    cl = Classifier()
    it = iter(Splitter(ByteSource(io.BytesIO(data), "header")))
    while True:
        try:
            raw = next(it)
        except (DumpError, StopIteration):
            break  # the sniff window ends mid-statement (or the file is foreign): judged by the full pass
        if not h.first_statement and raw.what != "delimiter":
            h.first_statement = raw.text[:64]
            h.looks_like_sql = raw.what == "sandbox" or bool(_SQL_START.match(raw.text))
        if raw.what == "sandbox":
            h.has_sandbox_line = True
            continue
        st = cl.classify(raw)  # raises on a charset this reader cannot split
        head = head_of(st.text)
        if st.kind is Kind.SESSION and h.charset is None and head[:9].upper() == b"SET NAMES":
            cs = SET_NAMES.match(head)
            h.charset = cs.group("cs").decode() if cs else None
        elif st.kind is Kind.SKIP and (SET_SKIP.match(head) or head[:6].upper() == b"CHANGE"):
            h.gtid.append(st.text[:300].decode("utf-8", "replace"))
        elif st.kind is Kind.SCHEMA and st.schema and st.schema not in h.databases:
            h.databases.append(st.schema)
    if h.tool is None and h.has_sandbox_line:  # only mariadb-dump writes it (--skip-comments drops the rest)
        h.tool = "mariadb-dump"
    if h.tool:
        h.looks_like_sql = True
    return h

