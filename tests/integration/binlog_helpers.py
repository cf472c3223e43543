"""Shared helpers of the binlog tests: one private mariadbd with ROW binlogs for the session
(engine/mysql/instance.py; the shared 3306 server has no binlog), a fresh schema per test,
SQL on it, and readers over its binlogs (as archived files or over the replication protocol)."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
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
from tests.cliutil import rows_on, run_script


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
        run_script(script, host="127.0.0.1", port=self.inst.port, user="root", database=schema)

    def query(self, sql: str, args: Any = None, schema: str | None = None) -> list[tuple[Any, ...]]:
        return rows_on(pymysql.connect(host="127.0.0.1", port=self.inst.port, user="root", database=schema, autocommit=True),
                       sql, args=args)

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

    def copy_binlogs(self, dest: Path) -> Path:
        """The binlog files as an archive holds them: copied into ``dest`` (made), the server
        writing on in its own."""
        dest.mkdir()
        for name in os.listdir(self.binlog_dir):
            if name.startswith("binlog.0"):
                shutil.copy(os.path.join(self.binlog_dir, name), dest / name)
        return dest

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


# -- a history with an incident -----------------------------------------------------------------
TABLES = ["customers", "orders", "items"]
SCHEMA_SQL = """
CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(40) CHARACTER SET utf8mb4, balance DECIMAL(12,2) NOT NULL,
  seen DATETIME(3) NULL, flags SET('vip','late') NULL);
CREATE TABLE orders (id INT PRIMARY KEY AUTO_INCREMENT, customer_id INT NOT NULL, total DECIMAL(12,2), note TEXT,
  CONSTRAINT fk_oc FOREIGN KEY (customer_id) REFERENCES customers (id));
CREATE TABLE items (id INT PRIMARY KEY, order_id INT NOT NULL, sku VARBINARY(16), qty SMALLINT UNSIGNED, price DOUBLE,
  CONSTRAINT fk_io FOREIGN KEY (order_id) REFERENCES orders (id) ON DELETE CASCADE);
CREATE TABLE audit (at INT, what VARCHAR(80));
INSERT INTO customers SELECT seq, CONCAT('customer ', seq, ' ü'), 1000, '2024-01-01 00:00:00.5', IF(seq % 3 = 0, 'vip', NULL)
  FROM seq_1_to_40;
INSERT INTO orders (customer_id, total, note) SELECT 1 + seq % 40, seq * 1.25, CONCAT('first ', seq) FROM seq_1_to_20;
INSERT INTO items SELECT seq, 1 + seq % 20, UNHEX(LPAD(HEX(seq), 8, '0')), 1 + seq % 4, seq / 3 FROM seq_1_to_60;
"""


def order_txn(i: int) -> str:
    """One small transaction of the shop: an order, 1-4 items, a customer update (and an audit row)."""
    c = 1 + i * 7 % 40
    items = ", ".join(f"({1000 + i * 4 + k}, LAST_INSERT_ID(), 0x{i:04x}{k:02x}, {1 + k}, {i % 9}.25)" for k in range(1 + i % 4))
    return (f"BEGIN; INSERT INTO orders (customer_id, total, note) VALUES ({c}, {i}.75, 'order {i}');"
            f" INSERT INTO items VALUES {items};"
            f" UPDATE customers SET balance = balance - {i % 13 + 1}, seen = '2024-02-{1 + i % 28:02d} 10:00:{i % 60:02d}.125' WHERE id = {c};"
            f" INSERT INTO audit (at, what) VALUES ({i}, 'order {i}'); COMMIT")


@dataclass
class Incident:
    """A history: a dump, writes, a mass DELETE (the incident), more writes; and a reference
    schema holding the same history without the incident."""

    schema: str
    ref: str
    dump: str
    gtid: str  # the incident's GTID
    end: tuple[str, int]  # where the history ends (before any restore or replay)
    before: int  # transactions before the incident (after the dump)
    after: int


def make_incident(srv: Server, schema: str, dump_path: Path, *, before: int = 12, after: int = 12,
                  ddl_of_listed: bool = False) -> Incident:
    import subprocess

    srv.execute(SCHEMA_SQL, schema)
    out = subprocess.run(["mariadb-dump", "-h127.0.0.1", f"-P{srv.port}", "-uroot", "--single-transaction", "--master-data=2",
                          "--gtid", schema], check=True, capture_output=True).stdout
    dump_path.write_bytes(out)
    ref = f"{schema}_ref"
    srv.execute(f"CREATE DATABASE `{ref}`")
    srv.execute(out.decode(), ref)
    w1 = [order_txn(i) for i in range(before)] + ["ALTER TABLE audit ADD COLUMN extra INT"]
    w2 = [order_txn(i) for i in range(before, before + after)] + ["UPDATE customers SET flags = 'late' WHERE id IN (3, 5)"]
    if ddl_of_listed:
        w2.insert(2, "ALTER TABLE customers ADD INDEX (name)")
    for stmt in w1:
        srv.execute(stmt, schema)
    srv.execute("DELETE FROM items WHERE qty >= 2 AND id < 1000", schema)  # the incident: the first 60 items' multi-unit rows
    gtid = srv.gtid()
    for stmt in w2:
        srv.execute(stmt, schema)
    end = srv.position()
    for stmt in w1 + w2:
        srv.execute(stmt, ref)
    return Incident(schema, ref, str(dump_path), gtid, end, before, after)


def disaster(srv: Server, inc: Incident) -> None:
    """The tables are lost and the dump is restored into the same schema (as the mariadb client would)."""
    srv.execute(f"SET SESSION foreign_key_checks = 0; DROP DATABASE `{inc.schema}`; CREATE DATABASE `{inc.schema}`")
    srv.execute(Path(inc.dump).read_text(), inc.schema)


def checksums(srv: Server, schema: str) -> dict[str, int]:
    return {t: srv.checksum(schema, t) for t in TABLES}


def ctx_for(srv: Server, **kw: Any) -> Any:
    from tests.integration.test_dr_actions import make_ctx

    return make_ctx(host_vars={"mysql_host": "127.0.0.1", "mysql_port": srv.port, "mysql_user": "root"}, **kw)
