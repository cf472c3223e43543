"""A lab with replicas for integration tests: `runbook lab up --replicas N`'s own code, driven
from the test process (no CLI round trip), and small SQL helpers against its servers."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest

from engine.cli.lab import Lab, down, up
from engine.cli.lab_topology import replicate
from engine.errors import RunbookError
from tests.cliutil import rows_on


class Topology:
    """db1 (primary) and db2.. (replicas) of a lab in ``home/lab``; ``reset()`` builds it anew."""

    def __init__(self, home: Path, replicas: int = 2):
        self.home, self.replicas = home, replicas
        self.lab = Lab(home / "lab")
        down(self.lab, quiet=True)
        try:
            up(self.lab, self.replicas)
        except RunbookError:  # a start-up slower than the lab's patience on a loaded machine: once more
            down(self.lab, quiet=True)
            up(self.lab, self.replicas)
        st = json.loads(self.lab.state_file.read_text())
        self.ports: dict[str, int] = {n: int(h["port"]) for n, h in st["hosts"].items()}

    def reset(self) -> None:
        """The lab as `lab up --replicas N` built it, in a second: what is down is started again,
        every server forgets its replication, binlogs and databases, and the replicas follow db1
        from an empty history (no new datadirs: `mariadb-install-db` three times is slow)."""
        up(self.lab)  # restarts what a test killed
        servers = self.lab.servers()
        for name in servers:
            c = self.conn(name)
            try:
                with c.cursor() as cur:
                    cur.execute("STOP SLAVE")
                    cur.execute("RESET SLAVE ALL")
                    cur.execute("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME NOT IN "
                                "('mysql', 'information_schema', 'performance_schema', 'sys')")
                    for (db,) in cur.fetchall():
                        cur.execute("SET SESSION sql_log_bin = 0")
                        cur.execute(f"DROP DATABASE `{db}`")
                    cur.execute("RESET MASTER")
                    cur.execute("SET GLOBAL gtid_slave_pos = ''")
                    cur.execute(f"SET GLOBAL read_only = {'OFF' if name == 'db1' else 'ON'}")
            finally:
                c.close()
        st = json.loads(self.lab.state_file.read_text())
        names = list(servers)
        replicate(servers[names[0]], [servers[n] for n in names[1:]], st["replication"]["user"], st["replication"]["password"])

    @property
    def inventory(self) -> Path:
        return self.lab.inventory

    def close(self) -> None:
        down(self.lab, quiet=True)

    # -- SQL ------------------------------------------------------------------------------------
    def conn(self, name: str) -> pymysql.connections.Connection:
        return pymysql.connect(host="127.0.0.1", port=self.ports[name], user="root", autocommit=True, connect_timeout=5,
                               ssl_disabled=True)  # PyMySQL builds an SSL context per connection otherwise (~50 ms)

    def sql(self, name: str, *statements: str) -> list[tuple[Any, ...]]:
        """Run the statements on ``name``; the rows of the last one."""
        return rows_on(self.conn(name), *statements)

    def one(self, name: str, statement: str) -> Any:
        rows = self.sql(name, statement)
        return rows[0][0] if rows else None

    def gtid(self, name: str) -> str:
        return str(self.one(name, "SELECT @@gtid_binlog_pos"))

    def wait_applied(self, name: str, gtid: str, limit: int = 60) -> None:
        """Until ``name`` has applied ``gtid`` (MASTER_GTID_WAIT: the server waits, no sleep here)."""
        assert self.one(name, f"SELECT MASTER_GTID_WAIT('{gtid}', {limit})") == 0, f"{name} did not apply {gtid}"

    def wait_received(self, name: str, gtid: str, limit: float = 60) -> None:
        """Until ``name``'s IO thread has received ``gtid`` (its SQL thread may be stopped)."""
        end = time.monotonic() + limit
        c = self.conn(name)
        try:
            with c.cursor(pymysql.cursors.DictCursor) as cur:
                while True:
                    cur.execute("SHOW SLAVE STATUS")
                    row = cur.fetchone()
                    if row and row["Gtid_IO_Pos"] == gtid:
                        return
                    assert time.monotonic() < end, f"{name} did not receive {gtid}: {row}"
                    time.sleep(0.05)
        finally:
            c.close()

    def slave_status(self, name: str) -> dict[str, Any] | None:
        c = self.conn(name)
        try:
            with c.cursor(pymysql.cursors.DictCursor) as cur:
                cur.execute("SHOW SLAVE STATUS")
                return cur.fetchone()
        finally:
            c.close()

    def checksum(self, name: str, table: str) -> tuple[int, Any]:
        row = self.sql(name, f"SELECT COUNT(*), BIT_XOR(CRC32(CONCAT_WS('#', id, v))) FROM {table}")[0]
        return int(row[0]), row[1]


@pytest.fixture(scope="module")
def topo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    """One lab with two replicas for the whole test module, taken down afterwards."""
    t = Topology(tmp_path_factory.mktemp("topology") / "home")
    try:
        yield t
    finally:
        t.close()
