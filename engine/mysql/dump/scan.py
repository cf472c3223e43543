"""``scan_dump``: the whole-file check a restore runs before its first write.

One pass over the dump (plain or gzip) that proves it is whole and loadable and says what it
holds::

    scan = scan_dump("/backups/shop.sql.gz", tables=["users", "orders"])
    scan.tables["users"].rows            # rows in the dump
    scan.tables["users"].create          # TableDef: columns, keys, foreign keys
    scan.sha256                          # identity of the file, for resume

Refused with :class:`DumpError` (one line, with the offset and first bytes as evidence): a
corrupt or truncated gzip, a dump without its completion trailer (``-- Dump completed``), a
file that is not a dump, a statement the reader cannot load (unterminated quote or comment,
a ``mysql`` client command), a requested table the dump does not have (with the tables it has
and a did-you-mean).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import BinaryIO

from engine.mysql.dump.ddl import TableDef, parse_create_table
from engine.mysql.dump.classify import CREATE_SEQUENCE
from engine.mysql.dump.classify import head_of
from engine.mysql.dump.reader import DumpReader
from engine.mysql.dump.types import DumpHeader, Kind
from engine.mysql.dump.rows import row_stats
from engine.mysql.dump.split import CHUNK, ByteSource, DumpError

TRAILER = b"-- Dump completed"
# Column types a LOAD DATA stream cannot carry exactly (mysqldump writes them as binary strings
# or b'…'): such a table stays on the INSERT path.
_NOT_LOAD_DATA_TYPES = ("bit", "geometry", "point", "linestring", "polygon", "multipoint", "multilinestring",
                        "multipolygon", "geometrycollection")


@dataclass
class TableScan:
    """What the dump holds for one table (or view: ``is_view``)."""

    name: str
    schema: str | None = None
    create: TableDef | None = None
    data_statements: int = 0
    rows: int = 0
    data_bytes: int = 0  # bytes of its DATA statements in the (decompressed) stream
    has_triggers: bool = False
    is_view: bool = False
    is_sequence: bool = False  # a MariaDB sequence: CREATE SEQUENCE + DO SETVAL, no data statements
    load_data_safe: bool = True  # no 0x…, _binary, b'…', X'…', bit or spatial value: LOAD DATA is exact
    first_offset: int = -1  # offset of its first statement (DDL or data)
    #: each distinct column list of its data statements (None: no list, values in CREATE order) and
    #: the offset of the first statement that has it
    column_lists: dict[tuple[str, ...] | None, int] = field(default_factory=dict)


@dataclass
class DumpScan:
    """The result of :func:`scan_dump`.

    ``tables`` is keyed by table name; when the dump holds several schemas (``--databases a b``)
    the keys are ``schema.table``.
    """

    path: str
    header: DumpHeader
    tables: dict[str, TableScan] = field(default_factory=dict)
    views: list[str] = field(default_factory=list)
    routines: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    triggers: dict[str, str] = field(default_factory=dict)  # trigger -> table
    databases: list[str] = field(default_factory=list)
    total_bytes: int = 0  # decompressed
    compressed_bytes: int = 0  # the file's own size
    sha256: str = ""
    largest_statement_bytes: int = 0
    statements: int = 0
    has_trailer: bool = False
    other: list[str] = field(default_factory=list)  # OTHER statements (first bytes), loadable by a server
    notes: list[str] = field(default_factory=list)  # what the scan could not learn (e.g. a CREATE TABLE … LIKE)
    qualifiers: dict[str, int] = field(default_factory=dict)  # schema names statements are qualified with → first offset

    @property
    def load_data_safe(self) -> dict[str, bool]:
        return {k: t.load_data_safe for k, t in self.tables.items()}

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables.values())

    @property
    def data_bytes(self) -> int:
        return sum(t.data_bytes for t in self.tables.values())


def _reader(path_or_fileobj: str | os.PathLike[str] | BinaryIO | DumpReader) -> DumpReader:
    if isinstance(path_or_fileobj, DumpReader):
        return path_or_fileobj
    if isinstance(path_or_fileobj, (str, os.PathLike)):
        return DumpReader(path_or_fileobj)
    return DumpReader(fileobj=path_or_fileobj)


def check_foreign(reader: DumpReader) -> None:
    """Refuse a file that is not SQL at all (an image, a YAML file, a tarball) before reading it whole."""
    h = reader.header
    if not h.looks_like_sql:
        raise DumpError("not a mysqldump/mariadb-dump file: no dump header and no SQL statement at its start",
                        path=reader.name, offset=0, snippet=h.first_statement or None,
                        hint="check the path (is it the .sql or .sql.gz the backup job wrote?)")


def scan_dump(path_or_fileobj: str | os.PathLike[str] | BinaryIO | DumpReader, tables: Iterable[str] | None = None,
              *, require_trailer: bool = True) -> DumpScan:
    """Read the whole dump once and check it (see the module docstring).

    ``require_trailer=False`` accepts a file without ``-- Dump completed`` (a dump written with
    ``--skip-comments``, or a hand-written SQL script); everything else is still checked.
    """
    reader = _reader(path_or_fileobj)
    check_foreign(reader)
    scan = DumpScan(path=reader.name, header=reader.header)
    by_key: dict[tuple[str | None, str], TableScan] = {}
    unsafe_types: dict[tuple[str | None, str], bool] = {}

    def entry(schema: str | None, name: str) -> TableScan:
        t = by_key.get((schema, name))
        if t is None:
            t = by_key[(schema, name)] = TableScan(name=name, schema=schema)
        return t

    count = largest = 0
    data_kind = Kind.DATA
    last_key: tuple[str | None, str] | None = None
    last_cols: tuple[str, ...] | bool | None = False
    quals = scan.qualifiers
    t = TableScan(name="")
    for st in reader.statements(hash_file=True):
        count += 1
        if st.length > largest:
            largest = st.length
        kind = st.kind
        if kind is data_kind:  # the hot loop of a --skip-extended-insert dump: keep it lean
            key = (st.schema, st.table or "")
            if key != last_key:
                t, last_key, last_cols = entry(*key), key, False
                if t.first_offset < 0:
                    t.first_offset = st.offset
            if st.columns is not last_cols:
                last_cols = st.columns
                t.column_lists.setdefault(last_cols, st.offset)
            if st.qualifier is not None and st.qualifier not in quals:
                quals[st.qualifier] = st.offset
            if st.rows >= 0 and st.load_data_safe is not None:
                t.rows += st.rows
                if not st.load_data_safe:
                    t.load_data_safe = False
            else:
                rows, safe = row_stats(st)
                t.rows += rows
                t.load_data_safe = t.load_data_safe and safe
            t.data_statements += 1
            t.data_bytes += st.length
            continue
        last_key = None
        if st.qualifier is not None and st.qualifier not in quals:
            quals[st.qualifier] = st.offset
        if kind is Kind.TABLE_DDL and st.table:
            t = entry(st.schema, st.table)
            if t.first_offset < 0:
                t.first_offset = st.offset
            head = head_of(st.text)
            if CREATE_SEQUENCE.match(head):
                t.is_sequence = True
            elif head[:6].upper() == b"CREATE":
                try:
                    t.create = parse_create_table(st.text)
                except DumpError as exc:  # CREATE TABLE … LIKE / … AS SELECT: loadable, but not a definition
                    t.create = None
                    unsafe_types[(st.schema, st.table)] = True  # column types unknown: keep it on the INSERT path
                    scan.notes.append(f"{st.table}: no column definition read ({exc.message.split(': ', 1)[-1]})")
                    continue
                t.is_view = False
                unsafe_types[(st.schema, st.table)] = any(
                    c.base_type in _NOT_LOAD_DATA_TYPES for c in t.create.columns)
        elif kind is Kind.POST:
            if st.post_kind in ("view", "standin_view") and st.table:
                if (st.schema, st.table) not in by_key or by_key[(st.schema, st.table)].create is None:
                    entry(st.schema, st.table).is_view = True
                if st.name and st.name not in scan.views:
                    scan.views.append(st.name)
            elif st.post_kind == "trigger" and st.name and head_of(st.text)[:6].upper() == b"CREATE":
                scan.triggers[st.name] = st.table or ""
                if st.table:
                    entry(st.schema, st.table).has_triggers = True
            elif st.post_kind == "routine" and st.name and st.name not in scan.routines:
                scan.routines.append(st.name)
            elif st.post_kind == "event" and st.name and st.name not in scan.events:
                scan.events.append(st.name)
        elif kind is Kind.SCHEMA:
            if st.schema and st.schema not in scan.databases:
                scan.databases.append(st.schema)
        elif kind is Kind.OTHER:
            if st.client_command:
                raise DumpError("a mysql client command this reader cannot load (only DELIMITER is supported)",
                                path=reader.name, offset=st.offset, snippet=st.text[:60])
            scan.other.append(st.text[:80].decode("utf-8", "replace"))
    scan.statements, scan.largest_statement_bytes = count, largest
    src = reader.source
    assert src is not None
    scan.total_bytes, scan.compressed_bytes, scan.sha256 = src.total_bytes, src.compressed_bytes, src.sha256
    scan.has_trailer = TRAILER in reader.tail
    if require_trailer and not scan.has_trailer:
        raise DumpError("the dump has no completion trailer ('-- Dump completed'): it was cut short or is still being written",
                        path=reader.name, offset=scan.total_bytes, snippet=reader.tail[-60:] or None,
                        hint="use a complete dump (or, for a dump made with --skip-comments, require_trailer: false)")
    for key, unsafe in unsafe_types.items():
        if unsafe and key in by_key:
            by_key[key].load_data_safe = False
    schemas = {k[0] for k in by_key if k[0] is not None}
    for (schema, name), t in by_key.items():
        scan.tables[f"{schema}.{name}" if len(schemas) > 1 and schema else name] = t
    for db in reader.header.databases:
        if db not in scan.databases:
            scan.databases.append(db)
    if tables is not None:
        _check_requested(scan, list(tables))
    return scan


@dataclass(frozen=True)
class DumpSize:
    """The result of :func:`measure_dump`: sizes only, no statements."""

    path: str
    total_bytes: int  # SQL bytes (decompressed), exact
    compressed_bytes: int  # the file's own size
    gzip: bool
    header: DumpHeader


def measure_dump(path_or_fileobj: str | os.PathLike[str] | BinaryIO) -> DumpSize:
    """The cheap sizing pass (``disk_space need_for_restore``): refuses a foreign file, then
    decompresses without tokenizing (exact size whatever the file's size: gzip's own ISIZE
    field wraps at 4 GiB; CRC and truncation checked). A plain file is not read past its header."""
    reader = _reader(path_or_fileobj)
    check_foreign(reader)
    f, owned = reader._raw()
    try:
        src = ByteSource(f, reader.name)
        if not src.gzip:
            try:
                size = os.fstat(f.fileno()).st_size
                return DumpSize(reader.name, size, size, False, reader.header)
            except (OSError, AttributeError, ValueError):
                pass  # not a real file (a stream): count it
        while src.read(CHUNK):
            pass
        return DumpSize(reader.name, src.total_bytes, src.compressed_bytes, src.gzip, reader.header)
    finally:
        if owned:
            f.close()


def _check_requested(scan: DumpScan, wanted: list[str]) -> None:
    have = list(scan.tables)
    missing = [t for t in wanted if t not in scan.tables]
    if not missing:
        return
    hints = []
    for t in missing:
        close = difflib.get_close_matches(t, have, n=1) or [h for h in have if h.lower() == t.lower()]
        if close:
            hints.append(f"{t!r}: did you mean {close[0]!r}?")
    listing = ", ".join(have[:30]) + (f", … ({len(have)} in all)" if len(have) > 30 else "") if have else "none"
    raise DumpError(f"table{'s' if len(missing) > 1 else ''} {', '.join(missing)} not in the dump (it has: {listing})",
                    path=scan.path, hint="; ".join(hints) or "check the table names against the dump")
