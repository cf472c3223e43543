"""The values of the mysqldump reader: what a statement is (:class:`Kind`), a classified
:class:`Statement`, and the dump's :class:`DumpHeader`. See :mod:`engine.mysql.dump.reader`."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any


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
    rows: int = -1  # DATA: its rows when the reader's fast path already knows them, else -1; see count_rows
    load_data_safe: bool | None = None  # DATA, fast path: no 0x/X/b literal or word among its values (None: unknown); bit and spatial columns are judged by scan_dump from the table
    qualifier: str | None = None  # the schema its object's name is qualified with (`prod`.`t`), None when unqualified


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


def _compile_maker() -> Callable[..., Statement]:
    """``Statement(*fields)`` without the frozen dataclass ``__init__``'s per-field
    ``object.__setattr__`` calls: the slots are set through their descriptors directly. Same
    object (frozen, equal, hashable); about a third faster, which matters for the millions of
    one-row statements of a ``--skip-extended-insert`` dump."""
    names = [f.name for f in fields(Statement)]
    env: dict[str, Any] = {"_new": object.__new__, "_cls": Statement}
    env.update({f"_s_{n}": getattr(Statement, n).__set__ for n in names})
    args = ", ".join(names)
    body = "".join(f"    _s_{n}(o, {n})\n" for n in names)
    exec(f"def make({args}):\n    o = _new(_cls)\n{body}    return o\n", env)
    return env["make"]  # type: ignore[no-any-return]


make_statement = _compile_maker()
