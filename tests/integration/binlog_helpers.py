"""Shared helpers of the binlog tests: one private mariadbd with ROW binlogs for the session
(engine/mysql/instance.py; the shared 3306 server has no binlog), a fresh schema per test,
SQL on it, and readers over its binlogs (as archived files or over the replication protocol)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest

from engine.model import MysqlSettings
from engine.mysql.binlog.reader import BinlogReader, EndAt
from engine.mysql.binlog.sources import ArchiveSource, ServerSource
from engine.mysql.instance import MariadbInstance
from engine.transport.binlog_dump import BinlogDump
from engine.transport.local import LocalShell
from engine.transport.mysql import MysqlSession


class Server:
    """A private MariaDB with binlogs, and SQL helpers on it."""

    def __init__(self, inst: MariadbInstance):
        self.inst = inst

    @property
    def port(self) -> int:
        return self.inst.port

    @property
    def binlog_dir(self) -> str:
        return str(self.inst.binlog_dir)

    def settings(self) -> MysqlSettings:
        return MysqlSettings(host="127.0.0.1", port=self.inst.port, user="root")

    def execute(self, script: str, schema: str | None = None) -> None:
        conn = pymysql.connect(host="127.0.0.1", port=self.inst.port, user="root", database=schema, autocommit=True,
                               client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS)
        try:
            with conn.cursor() as cur:
                cur.execute(script)
                while cur.nextset():
                    pass
        finally:
            conn.close()

    def query(self, sql: str, args: Any = None, schema: str | None = None) -> list[tuple[Any, ...]]:
        conn = pymysql.connect(host="127.0.0.1", port=self.inst.port, user="root", database=schema, autocommit=True)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, args)
                return list(cur.fetchall())
        finally:
            conn.close()

    def position(self) -> tuple[str, int]:
        """Where the binlog ends now (SHOW MASTER STATUS)."""
        row = self.query("SHOW MASTER STATUS")[0]
        return str(row[0]), int(row[1])

    def gtid(self) -> str:
        return str(self.query("SELECT @@gtid_binlog_pos")[0][0])

    def checksum(self, schema: str, table: str) -> int:
        return int(self.query(f"CHECKSUM TABLE `{schema}`.`{table}`")[0][1] or 0)

    def archive(self) -> ArchiveSource:
        return ArchiveSource(LocalShell(), self.binlog_dir, local=True)

    def server_source(self) -> ServerSource:
        st = self.settings()
        return ServerSource(MysqlSession(st), lambda: BinlogDump(st))

    def reader(self, source: Any, schema: str, tables: set[str] | None, start: tuple[str, int],
               end: tuple[str, int] | None = None, **kw: Any) -> BinlogReader:
        return BinlogReader(source, schema=schema, tables=tables, start=start, end=EndAt(*end) if end else None, **kw)


@pytest.fixture(scope="session")
def binlog_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    inst = MariadbInstance(Path(tmp_path_factory.mktemp("binlog")) / "db", server_id=11)
    inst.start()
    try:
        yield Server(inst)
    finally:
        inst.stop()


@pytest.fixture
def bschema(binlog_server: Server) -> Iterator[str]:
    """A fresh schema on the private server."""
    name = f"rbb_{uuid.uuid4().hex[:10]}"
    binlog_server.execute(f"CREATE DATABASE `{name}`")
    yield name
    binlog_server.execute(f"SET SESSION foreign_key_checks = 0; DROP DATABASE IF EXISTS `{name}`")
