"""The mysqldump / mariadb-dump reader: statements of a dump, classified, in file order.

Shared by ``restore`` (which loads them) and ``verify`` (which counts rows from them)::

    reader = DumpReader("/backups/shop.sql.gz")     # or DumpReader(fileobj=sftp_file)
    reader.header.charset                            # 'utf8mb4', from SET NAMES
    for st in reader.statements():
        if st.kind is Kind.DATA:
            print(st.table, st.ordinal, count_rows(st))

    scan = scan_dump("/backups/shop.sql.gz", tables=["users"])   # the whole-file check

The reader never decodes the dump (binary column data is not UTF-8): statements are bytes,
split by :mod:`engine.mysql.dumpsplit`. Which statement is what follows restore-anchors A4:

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

import enum
import io
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import BinaryIO

from engine.mysql.dumpsplit import ByteSource, DumpError, RawStatement, Splitter

__all__ = [
    "ColumnDef", "DumpError", "DumpHeader", "DumpReader", "DumpScan", "DumpSize", "ForeignKey", "Kind", "Statement",
    "TableDef", "TableScan", "count_rows", "iter_rows", "measure_dump", "parse_create_table", "scan_dump",
]

SNIFF = 64 * 1024
# Multi-byte charsets whose trail bytes can be 0x5C ("\"): a byte-level tokenizer would take
# half a character for an escape and split in the middle of a string.
UNSAFE_CHARSETS = frozenset({"big5", "cp932", "gbk", "sjis", "gb18030"})


class Kind(enum.Enum):
    DATA = "data"
    TABLE_DDL = "table_ddl"
    SESSION = "session"
    SKIP = "skip"
    POST = "post"
    SCHEMA = "schema"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class Statement:
    """One statement of the dump, classified (see the module's table).

    ``scope`` (SESSION only): ``header`` (before the first table: the settings every loader
    connection replays), ``table`` (around a CREATE TABLE), ``post`` (around a view, trigger,
    routine or event: run them with it, in file order), ``footer`` (restores the ``@OLD_``
    values: never replay on a loader connection), ``body`` (anything else).
    """

    kind: Kind
    text: bytes  # the statement without its delimiter (version-comment wrapper kept)
    offset: int  # byte offset of the statement in the decompressed stream
    length: int  # bytes it spans in the stream (incl. delimiter)
    table: str | None  # table it belongs to (DATA, TABLE_DDL, triggers, LOCK/ALTER KEYS, views), unqualified
    schema: str | None  # schema in effect (USE / CREATE DATABASE), or the statement's own qualifier
    ordinal: int = -1  # DATA: 0, 1, 2, … per (schema, table) in file order
    verb: str = ""  # DATA: 'INSERT' | 'INSERT IGNORE' | 'REPLACE' | 'INSERT DELAYED' (| 'REPLACE DELAYED' …)
    columns: tuple[str, ...] | None = None  # DATA with --complete-insert: the column list
    values_at: int = -1  # DATA: index in ``text`` of the "(" of the first row
    post_kind: str = ""  # POST: 'view' | 'standin_view' | 'trigger' | 'routine' | 'event'
    delimiter: bytes = b";"  # the delimiter it was written with (";;" inside DELIMITER blocks)
    scope: str = ""  # SESSION: 'header' | 'table' | 'post' | 'footer' | 'body'
    name: str | None = None  # POST: the object's name (view, trigger, routine, event)
    client_command: bool = False  # OTHER: a mysql-client command (\g, source, …): not loadable
    rows: int = -1  # DATA: its rows when the reader's fast path already knows them (then also LOAD DATA safe); see count_rows


@dataclass
class DumpHeader:
    """What the first 64 KiB say about the dump."""

    tool: str | None = None  # 'mariadb-dump' | 'mysqldump' | None (not written by a dump tool)
    tool_version: str | None = None  # e.g. '10.19'
    distrib: str | None = None  # e.g. '10.11.19-MariaDB'
    server_version: str | None = None  # e.g. '10.11.19-MariaDB-0+deb12u1'
    host: str | None = None
    charset: str | None = None  # from SET NAMES
    databases: list[str] = field(default_factory=list)  # "-- Host: … Database: x", CREATE DATABASE, USE
    has_sandbox_line: bool = False
    gtid: list[str] = field(default_factory=list)  # GTID/binlog statements seen (skipped by a restore)
    gzip: bool = False
    first_statement: bytes = b""  # the first bytes of the first statement (foreign-file evidence)
    looks_like_sql: bool = False  # a dump header, or a first statement that is recognisable SQL


# ------------------------------------------------------------------------ classification

_IDENT = rb"(?:`(?:[^`]|``)+`|[A-Za-z0-9_$\x80-\xff]+)"
_QNAME = rb"(?P<q1>" + _IDENT + rb")(?:\s*\.\s*(?P<q2>" + _IDENT + rb"))?"
_DATA = re.compile(
    rb"(?P<verb>INSERT|REPLACE)\s++(?:(?P<prio>LOW_PRIORITY|DELAYED|HIGH_PRIORITY)\s++)?(?P<ign>IGNORE\s++)?"
    rb"INTO\s++" + _QNAME + rb"\s*+(?:\((?P<cols>[^)]*)\)\s*+)?VALUES?\s*+(?=\()", re.I)
_VERSION_MARK = re.compile(rb"/\*M?!\d*|\*/")
_LEADING = re.compile(rb"(?:\s++|--[^\n]*+\n|#[^\n]*+\n|/\*(?!!|M!)(?:[^*]++|\*(?!/))*+\*/)*+")
_KW = re.compile(rb"[A-Za-z_]+")
_DEFINER = rb"(?:DEFINER\s*=\s*(?:`(?:[^`]|``)*`|'[^']*'|[^\s@]+)(?:\s*@\s*(?:`(?:[^`]|``)*`|'[^']*'|[^\s]+))?\s+)?"
_CREATE_POST = re.compile(
    rb"CREATE\s+(?:OR\s+REPLACE\s+)?(?:ALGORITHM\s*=\s*\w+\s+)?" + _DEFINER + rb"(?:SQL\s+SECURITY\s+\w+\s+)?"
    rb"(?P<what>VIEW|TRIGGER|PROCEDURE|FUNCTION|EVENT|AGGREGATE\s+FUNCTION|PACKAGE(?:\s+BODY)?)\s+"
    rb"(?:IF\s+NOT\s+EXISTS\s+)?" + _QNAME, re.I)
_TRIGGER_ON = re.compile(rb"\s+(?:BEFORE|AFTER)\s+(?:INSERT|UPDATE|DELETE)\s+ON\s+" + _QNAME.replace(b"q1", b"t1").replace(b"q2", b"t2"), re.I)
_DROP = re.compile(rb"DROP\s+(?P<what>TABLE|VIEW|TRIGGER|PROCEDURE|FUNCTION|EVENT|DATABASE|SCHEMA|PACKAGE(?:\s+BODY)?)\s+"
                   rb"(?:IF\s+EXISTS\s+)?" + _QNAME, re.I)
_CREATE_TABLE = re.compile(rb"CREATE\s+(?:OR\s+REPLACE\s+)?(?:TEMPORARY\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?" + _QNAME, re.I)
_CREATE_DB = re.compile(rb"(?:CREATE|ALTER)\s+(?:DATABASE|SCHEMA)\s+(?:IF\s+NOT\s+EXISTS\s+)?" + _QNAME, re.I)
_USE = re.compile(rb"USE\s+" + _QNAME, re.I)
_LOCK = re.compile(rb"LOCK\s+TABLES?\s+" + _QNAME, re.I)
_ALTER_KEYS = re.compile(rb"ALTER\s+TABLE\s+" + _QNAME + rb"\s+(?:DISABLE|ENABLE)\s+KEYS", re.I)
_SET_SKIP = re.compile(rb"SET\s+(?:GLOBAL\s+gtid_|@@GLOBAL\s*\.\s*GTID_PURGED|@@SESSION\s*\.\s*SQL_LOG_BIN|@@SQL_LOG_BIN"
                       rb"|SQL_LOG_BIN|@MYSQLDUMP_TEMP_LOG_BIN|@@GLOBAL\s*\.\s*gtid_)", re.I)
_SET_NAMES = re.compile(rb"SET\s+(?:NAMES|CHARACTER\s+SET|(?:SESSION\s+|@@(?:SESSION\s*\.)?)?character_set_client\s*=)\s*"
                        rb"'?(?P<cs>[A-Za-z0-9_]+)", re.I)
_POST_SET_VERSIONS = (b"/*!50001", b"/*!50003", b"/*!50106", b"/*!50117")
_STANDIN_COMMENT = re.compile(rb"Temporary (?:table|view) structure for view `(?P<n>(?:[^`]|``)+)`")
_CLIENT_COMMANDS = frozenset({
    b"source", b"system", b"connect", b"charset", b"pager", b"nopager", b"tee", b"notee", b"prompt", b"rehash",
    b"status", b"warnings", b"nowarning", b"quit", b"exit", b"ego", b"go", b"print", b"help", b"edit", b"clear"})
_BACKSLASH_OUTSIDE = re.compile(
    rb"(?s)'(?:[^'\\]|\\.|'')*'|\"(?:[^\"\\]|\\.|\"\")*\"|`(?:[^`]|``)*`|/\*(?!!|M!).*?\*/|(?P<bs>\\.)")


def unquote(ident: bytes) -> str:
    """``name`` from `` `na``me` `` or a bare word (utf-8; invalid bytes escaped)."""
    if ident[:1] == b"`":
        ident = ident[1:-1].replace(b"``", b"`")
    return ident.decode("utf-8", "surrogateescape")


def _qname(m: re.Match[bytes], a: str = "q1", b: str = "q2") -> tuple[str | None, str]:
    """(schema or None, name) of a possibly qualified name."""
    if m.group(b):
        return unquote(m.group(a)), unquote(m.group(b))
    return None, unquote(m.group(a))


def head_of(text: bytes, limit: int = 1024) -> bytes:
    """The statement's beginning with version-comment markers and leading comments removed:
    ``/*!50003 CREATE*/ /*!50017 DEFINER=…*/ /*!50003 TRIGGER`` reads ``CREATE DEFINER=… TRIGGER``."""
    head = text[:limit]
    if b"/*" in head:
        head = _VERSION_MARK.sub(b" ", head)
    return head[_LEADING.match(head).end():]  # type: ignore[union-attr]


def has_client_command(text: bytes) -> bool:
    """A backslash command (``\\g``, ``\\G``, ``\\.``…) outside quotes, or a named client command."""
    kw = _KW.match(head_of(text, 64))
    if kw and kw.group().lower() in _CLIENT_COMMANDS:
        return True
    if b"\\" not in text:
        return False
    return any(m.group("bs") for m in _BACKSLASH_OUTSIDE.finditer(text))


class _NoPath(DumpError):
    """A classification refusal; the reader re-raises it as a DumpError naming the file."""

    def __init__(self, message: str, *, offset: int, snippet: bytes, hint: str) -> None:
        super().__init__(message, offset=offset, snippet=snippet, hint=hint)
        self.message = message


class _Classifier:
    """Turns raw statements into :class:`Statement` s, tracking schema, ordinals and context."""

    def __init__(self) -> None:
        self.schema: str | None = None
        self.ordinals: dict[tuple[str | None, str], int] = {}
        self.seen_table = False  # a TABLE_DDL/DATA/POST statement was seen: SETs are no longer 'header'
        self.standin: str | None = None  # the view whose stand-in is being written
        self.standin_tail = False  # just after a stand-in's CREATE: its closing SETs still belong to it
        self.unsafe_charset: str | None = None

    def classify(self, r: RawStatement) -> Statement:
        st = self._classify(r)
        if st.kind is not Kind.SESSION:
            self.standin_tail = False
        if st.kind is Kind.POST and st.post_kind == "standin_view" and head_of(st.text)[:6].upper() == b"CREATE":
            self.standin, self.standin_tail = None, True  # the stand-in is complete; the final view comes later
        return st

    def _classify(self, r: RawStatement) -> Statement:
        if r.what == "sandbox":
            return Statement(Kind.SKIP, r.text, r.offset, r.length, None, self.schema, delimiter=r.delimiter)
        if r.what == "delimiter":
            return Statement(Kind.SKIP, r.text, r.offset, r.length, None, self.schema, delimiter=r.delimiter)
        text = r.text
        if b"--" in r.gap:  # a section comment: "Temporary table structure for view `v`" starts a stand-in
            m = _STANDIN_COMMENT.search(r.gap)
            self.standin = m.group("n").replace(b"``", b"`").decode("utf-8", "surrogateescape") if m else None
        first = text[:1]
        if first in (b"I", b"R", b"i", b"r"):  # fast path: the bulk of a dump is INSERTs
            m = _DATA.match(text)
            if m:
                return self._data(r, m)
        head = head_of(text)
        kw_m = _KW.match(head)
        kw = kw_m.group().upper() if kw_m else b""
        st = Statement(Kind.OTHER, text, r.offset, r.length, None, self.schema, delimiter=r.delimiter)
        if kw == b"SET":
            return self._set(st, head)
        if kw in (b"LOCK", b"UNLOCK"):
            m = _LOCK.match(head)
            return replace(st, kind=Kind.SKIP, table=_qname(m)[1] if m else None)
        if kw == b"ALTER":
            m = _ALTER_KEYS.match(head)
            if m:
                return replace(st, kind=Kind.SKIP, table=_qname(m)[1])
            m = _CREATE_DB.match(head)
            if m:
                return replace(st, kind=Kind.SCHEMA, schema=_qname(m)[1])
            return st
        if kw == b"USE":
            m = _USE.match(head)
            if m:
                self.schema = _qname(m)[1]
                return replace(st, kind=Kind.SCHEMA, schema=self.schema)
        if kw == b"CHANGE":
            return replace(st, kind=Kind.SKIP)
        if kw == b"DROP":
            return self._drop(st, head)
        if kw == b"CREATE":
            return self._create(st, head)
        if not kw or kw.lower() in _CLIENT_COMMANDS or (b"\\" in text and has_client_command(text)):
            return replace(st, client_command=bool(kw) or has_client_command(text))
        return st

    def _data(self, r: RawStatement, m: re.Match[bytes]) -> Statement:
        qs, table = _qname(m)
        schema = qs or self.schema
        key = (schema, table)
        ordinal = self.ordinals.get(key, 0)
        self.ordinals[key] = ordinal + 1
        self.seen_table = True
        verb = m.group("verb").upper().decode()
        if m.group("prio") and m.group("prio").upper() == b"DELAYED":
            verb += " DELAYED"
        if m.group("ign"):
            verb += " IGNORE"
        cols = m.group("cols")
        columns = tuple(unquote(c.strip()) for c in re.findall(_IDENT, cols)) if cols is not None else None
        return Statement(Kind.DATA, r.text, r.offset, r.length, table, schema, ordinal, verb, columns, m.end(),
                         delimiter=r.delimiter, rows=r.rows)

    def _set(self, st: Statement, head: bytes) -> Statement:
        text = st.text
        if _SET_SKIP.match(head):
            return replace(st, kind=Kind.SKIP)
        m = _SET_NAMES.match(head)
        if m and m.group("cs").decode().lower() in UNSAFE_CHARSETS:
            self.unsafe_charset = m.group("cs").decode()
            raise _NoPath(
                f"the dump is in the {self.unsafe_charset} character set, whose multi-byte characters can contain the byte of"
                " a backslash: this reader cannot split it safely", offset=st.offset, snippet=text[:60],
                hint="re-dump with --default-character-set=utf8mb4")
        if not self.seen_table:
            scope = "header"
        elif b"@OLD_" in text:
            scope = "footer"
        elif st.delimiter != b";" or text.startswith(_POST_SET_VERSIONS) or self.standin is not None or self.standin_tail:
            scope = "post"
        elif text.startswith(b"/*!40101 SET") and b"character_set_client" in text:
            scope = "table"
        else:
            scope = "body"
        return replace(st, kind=Kind.SESSION, scope=scope)

    def _drop(self, st: Statement, head: bytes) -> Statement:
        m = _DROP.match(head)
        if not m:
            return st
        what = m.group("what").upper().split()[0]
        qs, name = _qname(m)
        if what in (b"DATABASE", b"SCHEMA"):
            return replace(st, kind=Kind.SCHEMA, schema=name)
        self.seen_table = True
        schema = qs or self.schema
        if what == b"TABLE":
            if self.standin == name:
                return replace(st, kind=Kind.POST, post_kind="standin_view", table=name, name=name, schema=schema)
            self.standin = None
            return replace(st, kind=Kind.TABLE_DDL, table=name, schema=schema)
        if what == b"VIEW":
            kind = "standin_view" if self.standin == name else "view"
            return replace(st, kind=Kind.POST, post_kind=kind, table=name, name=name, schema=schema)
        kind = {b"TRIGGER": "trigger", b"EVENT": "event"}.get(what, "routine")
        return replace(st, kind=Kind.POST, post_kind=kind, name=name, schema=schema)

    def _create(self, st: Statement, head: bytes) -> Statement:
        m = _CREATE_TABLE.match(head)
        if m:
            qs, name = _qname(m)
            self.seen_table = True
            schema = qs or self.schema
            if self.standin == name:  # MySQL 5.x / older MariaDB stand-in: a MyISAM table in /*!50001 */
                return replace(st, kind=Kind.POST, post_kind="standin_view", table=name, name=name, schema=schema)
            self.standin = None
            return replace(st, kind=Kind.TABLE_DDL, table=name, schema=schema)
        m = _CREATE_DB.match(head)
        if m:
            self.schema = _qname(m)[1]
            return replace(st, kind=Kind.SCHEMA, schema=self.schema)
        m = _CREATE_POST.match(head)
        if not m:
            return st
        self.seen_table = True
        what = m.group("what").upper().split()[-1]
        qs, name = _qname(m)
        schema = qs or self.schema
        if what == b"VIEW":
            if self.standin == name:
                return replace(st, kind=Kind.POST, post_kind="standin_view", table=name, name=name, schema=schema)
            return replace(st, kind=Kind.POST, post_kind="view", table=name, name=name, schema=schema)
        if what == b"TRIGGER":
            on = _TRIGGER_ON.match(head, m.end())
            table = _qname(on, "t1", "t2")[1] if on else None
            return replace(st, kind=Kind.POST, post_kind="trigger", table=table, name=name, schema=schema)
        kind = "event" if what == b"EVENT" else "routine"
        return replace(st, kind=Kind.POST, post_kind=kind, name=name, schema=schema)


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


class DumpReader:
    """Streams the classified statements of a mysqldump/mariadb-dump file (plain or gzip).

    ``DumpReader(path)`` can be iterated several times (each :meth:`statements` call reads the
    file again); ``DumpReader(fileobj=f)`` once, unless ``f`` is seekable. ``header`` is read at
    construction from the first 64 KiB.

    In a runbook the reader is behind ``restore`` and ``disk_space``::

        - disk_space: {path: /var/lib/mysql, need_for_restore: /backups/shop.sql.gz}
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *, fileobj: BinaryIO | None = None,
                 chunk: int | None = None) -> None:
        self.path = path
        self._fileobj = fileobj
        self._used = False
        self.chunk = chunk
        self.source: ByteSource | None = None  # the byte source of the latest pass (sizes, sha256)
        self.splitter: Splitter | None = None
        self.header = self._sniff()

    @property
    def name(self) -> str:
        return str(self.path or getattr(self._fileobj, "name", None) or "dump")

    def _raw(self) -> tuple[BinaryIO, bool]:
        if self._fileobj is None:
            f, _, owned = _open(self.path, None)
            return f, owned
        if self._used:
            try:
                self._fileobj.seek(0)
            except (OSError, AttributeError, io.UnsupportedOperation) as exc:
                raise DumpError("the dump stream cannot be read twice (not seekable)", path=self.name) from exc
        self._used = True
        return self._fileobj, False

    def _sniff(self) -> DumpHeader:
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
        return parse_header(data, gzip=src.gzip, complete=len(data) < SNIFF)

    def statements(self, *, hash_file: bool = False) -> Iterator[Statement]:
        """Every statement in file order (``hash_file``: also compute the file's sha256 into
        ``self.source.sha256``). Raises :class:`DumpError` on a corrupt or truncated file."""
        f, owned = self._raw()
        try:
            src = self.source = ByteSource(f, self.name, hash_file=hash_file)
            sp = self.splitter = Splitter(src, **({"chunk": self.chunk} if self.chunk else {}))
            cl = _Classifier()
            pending: Statement | None = None
            try:
                for raw in sp:
                    st = cl.classify(raw)
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
                    if st.kind is Kind.TABLE_DDL and head_of(st.text)[:4].upper() == b"DROP":
                        pending = st
                    else:
                        yield st
                if pending is not None:
                    yield pending
            except _NoPath as exc:
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
    cl = _Classifier()
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
            cs = _SET_NAMES.match(head)
            h.charset = cs.group("cs").decode() if cs else None
        elif st.kind is Kind.SKIP and (_SET_SKIP.match(head) or head[:6].upper() == b"CHANGE"):
            h.gtid.append(st.text[:300].decode("utf-8", "replace"))
        elif st.kind is Kind.SCHEMA and st.schema and st.schema not in h.databases:
            h.databases.append(st.schema)
    if h.tool is None and h.has_sandbox_line:  # only mariadb-dump writes it (--skip-comments drops the rest)
        h.tool = "mariadb-dump"
    if h.tool:
        h.looks_like_sql = True
    return h


from engine.mysql.ddl import ColumnDef, ForeignKey, TableDef, parse_create_table  # noqa: E402
from engine.mysql.dumprows import count_rows, iter_rows  # noqa: E402
from engine.mysql.dumpscan import DumpScan, DumpSize, TableScan, measure_dump, scan_dump  # noqa: E402
