"""Classification of a dump's statements (restore-anchors A4): which statement is data, table
DDL, session setting, skipped, post-data object or schema, and which table it belongs to.

Works on the statement's head with version-comment markers removed (``head_of``), so that
``/*!50003 CREATE*/ /*!50017 DEFINER=…*/ /*!50003 TRIGGER t … ON x`` reads as a trigger on
``x``; tracks the schema in effect (``USE``), per-table ordinals of data statements, and the
view stand-in context of mysqldump's "Temporary table structure for view" sections.
"""

from __future__ import annotations

import re
from dataclasses import replace

from engine.mysql.dump.split import DumpError, RawStatement
from engine.mysql.dump.types import Kind, Statement, make_statement

# Multi-byte charsets whose trail bytes can be 0x5C ("\"): a byte-level tokenizer would take
# half a character for an escape and split in the middle of a string.
UNSAFE_CHARSETS = frozenset({"big5", "cp932", "gbk", "sjis", "gb18030"})


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
_DROP = re.compile(rb"DROP\s+(?P<what>TABLE|SEQUENCE|VIEW|TRIGGER|PROCEDURE|FUNCTION|EVENT|DATABASE|SCHEMA|PACKAGE(?:\s+BODY)?)\s+"
                   rb"(?:IF\s+EXISTS\s+)?" + _QNAME, re.I)
_CREATE_TABLE = re.compile(rb"CREATE\s+(?:OR\s+REPLACE\s+)?(?:TEMPORARY\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?" + _QNAME, re.I)
CREATE_SEQUENCE = re.compile(rb"CREATE\s+(?:OR\s+REPLACE\s+)?(?:TEMPORARY\s+)?SEQUENCE\s+(?:IF\s+NOT\s+EXISTS\s+)?" + _QNAME, re.I)
_SETVAL = re.compile(rb"(?:DO|SELECT)\s+SETVAL\s*\(\s*" + _QNAME, re.I)
_CREATE_DB = re.compile(rb"(?:CREATE|ALTER)\s+(?:DATABASE|SCHEMA)\s+(?:IF\s+NOT\s+EXISTS\s+)?" + _QNAME, re.I)
_USE = re.compile(rb"USE\s+" + _QNAME, re.I)
_LOCK = re.compile(rb"LOCK\s+TABLES?\s+" + _QNAME, re.I)
_ALTER_KEYS = re.compile(rb"ALTER\s+TABLE\s+" + _QNAME + rb"\s+(?:DISABLE|ENABLE)\s+KEYS", re.I)
SET_SKIP = re.compile(rb"SET\s+(?:GLOBAL\s+gtid_|@@GLOBAL\s*\.\s*GTID_PURGED|@@SESSION\s*\.\s*SQL_LOG_BIN|@@SQL_LOG_BIN"
                       rb"|SQL_LOG_BIN|@MYSQLDUMP_TEMP_LOG_BIN|@@GLOBAL\s*\.\s*gtid_)", re.I)
SET_NAMES = re.compile(rb"SET\s+(?:NAMES|CHARACTER\s+SET|(?:SESSION\s+|@@(?:SESSION\s*\.)?)?character_set_client\s*=)\s*"
                        rb"'?(?P<cs>[A-Za-z0-9_]+)", re.I)
_POST_SET_VERSIONS = (b"/*!50001", b"/*!50003", b"/*!50106", b"/*!50117")
_STANDIN_COMMENT = re.compile(rb"Temporary (?:table|view) structure for view `(?P<n>(?:[^`]|``)+)`")
_CLIENT_COMMANDS = frozenset({
    b"source", b"system", b"connect", b"charset", b"pager", b"nopager", b"tee", b"notee", b"prompt", b"rehash",
    b"status", b"warnings", b"nowarning", b"quit", b"exit", b"ego", b"go", b"print", b"edit", b"clear"})
_BACKSLASH_OUTSIDE = re.compile(
    rb"(?s)'(?:[^'\\]++|\\.|'')*+'|\"(?:[^\"\\]++|\\.|\"\")*+\"|`(?:[^`]++|``)*+`|/\*(?!!|M!).*?\*/|(?P<bs>\\.)")


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


def _verb_columns(m: re.Match[bytes]) -> tuple[str, tuple[str, ...] | None]:
    """A data statement's verb (``INSERT``, ``INSERT DELAYED``, ``INSERT IGNORE``, ``REPLACE``)
    and its ``--complete-insert`` column list, from the head regex's groups."""
    verb = m.group("verb").upper().decode()
    if m.group("prio") and m.group("prio").upper() == b"DELAYED":
        verb += " DELAYED"
    if m.group("ign"):
        verb += " IGNORE"
    cols = m.group("cols")
    return verb, (tuple(unquote(c.strip()) for c in re.findall(_IDENT, cols)) if cols is not None else None)


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


class NoPathError(DumpError):
    """A classification refusal; the reader re-raises it as a DumpError naming the file."""

    def __init__(self, message: str, *, offset: int, snippet: bytes, hint: str) -> None:
        super().__init__(message, offset=offset, snippet=snippet, hint=hint)
        self.message = message


class Classifier:
    """Turns raw statements into :class:`Statement` s, tracking schema, ordinals and context."""

    def __init__(self) -> None:
        self.schema: str | None = None
        self.ordinals: dict[tuple[str | None, str], int] = {}
        self.seen_table = False  # a TABLE_DDL/DATA/POST statement was seen: SETs are no longer 'header'
        self.standin: str | None = None  # the view whose stand-in is being written
        self.standin_tail = False  # just after a stand-in's CREATE: its closing SETs still belong to it
        self._heads: dict[bytes, tuple[str | None, str, str, tuple[str, ...] | None]] = {}
        self.unsafe_charset: str | None = None

    def classify(self, r: RawStatement) -> Statement:
        if r.values_at >= 0:  # the splitter's fast path: an extended INSERT, the bulk of a dump
            if b"--" in r.gap:
                self.standin = None
            self.standin_tail = False
            fast = self._data_fast(r)
            if fast is not None:
                return fast
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
            return replace(st, kind=Kind.SKIP, table=_qname(m)[1] if m else None, qualifier=_qname(m)[0] if m else None)
        if kw == b"ALTER":
            m = _ALTER_KEYS.match(head)
            if m:
                return replace(st, kind=Kind.SKIP, table=_qname(m)[1], qualifier=_qname(m)[0])
            m = _CREATE_DB.match(head)
            if m:
                return replace(st, kind=Kind.SCHEMA, schema=_qname(m)[1])
            return st
        if kw == b"USE":
            m = _USE.match(head)
            if m:
                self.schema = _qname(m)[1]
                return replace(st, kind=Kind.SCHEMA, schema=self.schema)
        if kw in (b"DO", b"SELECT"):  # mariadb-dump restores a sequence's position with DO SETVAL(`s`, n, 0)
            m = _SETVAL.match(head)
            if m:
                qs, name = _qname(m)
                return replace(st, kind=Kind.TABLE_DDL, table=name, schema=qs or self.schema, qualifier=qs)
        if kw == b"CHANGE":
            return replace(st, kind=Kind.SKIP)
        if kw == b"DROP":
            return self._drop(st, head)
        if kw == b"CREATE":
            return self._create(st, head)
        if not kw or kw.lower() in _CLIENT_COMMANDS or (b"\\" in text and has_client_command(text)):
            return replace(st, client_command=bool(kw) or has_client_command(text))
        return st

    def _data_fast(self, r: RawStatement) -> Statement | None:
        """A DATA statement from the fast path: its head (``INSERT INTO `t` VALUES``) is parsed
        once per distinct head, then looked up (a --skip-extended-insert dump has millions)."""
        head = r.text[:r.values_at]
        info = self._heads.get(head)
        if info is None:
            m = _DATA.match(r.text)
            if m is None or m.end() != r.values_at:
                return None
            qs, table = _qname(m)
            verb, columns = _verb_columns(m)
            if len(self._heads) > 10000:
                self._heads.clear()
            info = self._heads[head] = (qs, table, verb, columns)
        qs, table, verb, columns = info
        schema = qs or self.schema
        key = (schema, table)
        ordinal = self.ordinals.get(key, 0)
        self.ordinals[key] = ordinal + 1
        self.seen_table = True
        return make_statement(Kind.DATA, r.text, r.offset, r.length, table, schema, ordinal, verb, columns, r.values_at,
                              "", r.delimiter, "", None, False, r.rows, r.safe, qs)

    def _data(self, r: RawStatement, m: re.Match[bytes]) -> Statement:
        qs, table = _qname(m)
        schema = qs or self.schema
        key = (schema, table)
        ordinal = self.ordinals.get(key, 0)
        self.ordinals[key] = ordinal + 1
        self.seen_table = True
        verb, columns = _verb_columns(m)
        return Statement(Kind.DATA, r.text, r.offset, r.length, table, schema, ordinal, verb, columns, m.end(),
                         delimiter=r.delimiter, rows=r.rows, qualifier=qs)

    def _set(self, st: Statement, head: bytes) -> Statement:
        text = st.text
        if SET_SKIP.match(head):
            return replace(st, kind=Kind.SKIP)
        m = SET_NAMES.match(head)
        if m and m.group("cs").decode().lower() in UNSAFE_CHARSETS:
            self.unsafe_charset = m.group("cs").decode()
            raise NoPathError(
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
        if what == b"SEQUENCE":  # a sequence is a table to MariaDB: DROP/CREATE SEQUENCE + DO SETVAL are its DDL
            return replace(st, kind=Kind.TABLE_DDL, table=name, schema=schema, qualifier=qs)
        if what == b"TABLE":
            if self.standin == name:
                return replace(st, kind=Kind.POST, post_kind="standin_view", table=name, name=name, schema=schema, qualifier=qs)
            self.standin = None
            return replace(st, kind=Kind.TABLE_DDL, table=name, schema=schema, qualifier=qs)
        if what == b"VIEW":
            kind = "standin_view" if self.standin == name else "view"
            return replace(st, kind=Kind.POST, post_kind=kind, table=name, name=name, schema=schema, qualifier=qs)
        kind = {b"TRIGGER": "trigger", b"EVENT": "event"}.get(what, "routine")
        return replace(st, kind=Kind.POST, post_kind=kind, name=name, schema=schema, qualifier=qs)

    def _create(self, st: Statement, head: bytes) -> Statement:
        m = _CREATE_TABLE.match(head)
        if m:
            qs, name = _qname(m)
            self.seen_table = True
            schema = qs or self.schema
            if self.standin == name:  # MySQL 5.x / older MariaDB stand-in: a MyISAM table in /*!50001 */
                return replace(st, kind=Kind.POST, post_kind="standin_view", table=name, name=name, schema=schema, qualifier=qs)
            self.standin = None
            return replace(st, kind=Kind.TABLE_DDL, table=name, schema=schema, qualifier=qs)
        m = CREATE_SEQUENCE.match(head)
        if m:
            qs, name = _qname(m)
            self.seen_table = True
            return replace(st, kind=Kind.TABLE_DDL, table=name, schema=qs or self.schema, qualifier=qs)
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
                return replace(st, kind=Kind.POST, post_kind="standin_view", table=name, name=name, schema=schema, qualifier=qs)
            return replace(st, kind=Kind.POST, post_kind="view", table=name, name=name, schema=schema, qualifier=qs)
        if what == b"TRIGGER":
            on = _TRIGGER_ON.match(head, m.end())
            on_qs, table = _qname(on, "t1", "t2") if on else (None, None)
            return replace(st, kind=Kind.POST, post_kind="trigger", table=table, name=name, schema=schema,
                           qualifier=qs if qs is not None else on_qs)
        kind = "event" if what == b"EVENT" else "routine"
        return replace(st, kind=Kind.POST, post_kind=kind, name=name, schema=schema, qualifier=qs)
