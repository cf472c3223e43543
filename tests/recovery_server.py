"""A private MariaDB for tests that kill it (``engine/mysql/instance.py``: own datadir, port,
socket, pid file and error log; nothing of the machine's server on port 3306 is touched).
``crash()`` loads committed rows, leaves a large transaction open and kills the server with SIGKILL.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.mysql.instance import MariadbInstance

COMMITTED = 20000
UNCOMMITTED = 150000


class PrivateServer(MariadbInstance):
    """A private mariadbd without a binary log (crash recovery is what these tests watch)."""

    def __init__(self, path: Path):
        super().__init__(path, binlog=False, buffer_pool="64M")

    def crash(self) -> None:
        """Committed rows, then a large open transaction (new rows, changed committed rows), then kill -9."""
        conn = self.connect()
        with conn.cursor() as cur:
            cur.execute("CREATE DATABASE IF NOT EXISTS t")
            cur.execute("CREATE TABLE t.committed (id INT PRIMARY KEY AUTO_INCREMENT, v VARCHAR(200) NOT NULL)")
            cur.execute("CREATE TABLE t.uncommitted (id INT PRIMARY KEY AUTO_INCREMENT, v VARCHAR(200) NOT NULL)")
            cur.execute(f"INSERT INTO t.committed (v) SELECT REPEAT('c', 200) FROM t.seq_1_to_{COMMITTED}")
        open_trx = self.connect(autocommit=False)
        with open_trx.cursor() as cur:
            cur.execute("START TRANSACTION")
            cur.execute(f"INSERT INTO t.uncommitted (v) SELECT REPEAT('u', 200) FROM t.seq_1_to_{UNCOMMITTED}")
            cur.execute("UPDATE t.committed SET v = 'changed'")
        self.kill()
        conn.close()
        open_trx.close()

    def inventory(self, path: Path, *, error_log: bool = True) -> Path:
        """A local inventory for this server; ``error_log=False`` leaves mysql_error_log out."""
        log_line = f"      mysql_error_log: {self.error_log}\n" if error_log else ""
        path.write_text(f"""all:
  hosts:
    db1:
      connection: local
      mysql_host: 127.0.0.1
      mysql_port: {self.port}
      mysql_user: root
      datadir: {self.datadir}
      mysql_pid_file: {self.pid_file}
{log_line}      mysql_start_cmd: "{shlex.join(self.cmd())}"
  children:
    primary: {{hosts: {{db1: {{}}}}}}
""")
        return path


@pytest.fixture
def private_server(tmp_path: Path) -> Iterator[PrivateServer]:
    """An initialised, running private mariadbd; killed and removed afterwards."""
    srv = PrivateServer(tmp_path / "srv")
    srv.start()
    try:
        yield srv
    finally:
        srv.kill()
