"""A private MariaDB for tests that kill it: own datadir, port, socket, pid file and error log.

``mariadb-install-db`` initialises it; ``/usr/sbin/mariadbd --no-defaults`` runs it, so nothing
of the machine's MariaDB (port 3306) is touched. ``crash()`` loads committed rows, leaves a
large transaction open and kills the server with SIGKILL.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pymysql
import pytest

MARIADBD = "/usr/sbin/mariadbd"
COMMITTED = 20000
UNCOMMITTED = 150000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PrivateServer:
    dir: Path
    port: int
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def datadir(self) -> Path:
        return self.dir / "data"

    @property
    def error_log(self) -> Path:
        return self.dir / "mysqld.err"

    @property
    def pid_file(self) -> Path:
        return self.dir / "mysqld.pid"

    def cmd(self) -> list[str]:
        return [MARIADBD, "--no-defaults", f"--datadir={self.datadir}", f"--socket={self.dir / 'mysqld.sock'}",
                f"--port={self.port}", "--bind-address=127.0.0.1", f"--pid-file={self.pid_file}",
                f"--log-error={self.error_log}", "--user=root", "--innodb-buffer-pool-size=64M", "--skip-name-resolve"]

    def start(self, wait: bool = True) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(self.cmd(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        self.procs.append(proc)
        if wait:
            end = time.monotonic() + 120
            while time.monotonic() < end:
                try:
                    self.connect().close()
                    return proc
                except pymysql.err.OperationalError:
                    assert proc.poll() is None, self.error_log.read_text()[-2000:]
                    time.sleep(0.1)
            raise AssertionError("the private mariadbd did not start")
        return proc

    def connect(self, autocommit: bool = True) -> pymysql.connections.Connection:
        return pymysql.connect(host="127.0.0.1", port=self.port, user="root", autocommit=autocommit, connect_timeout=2)

    def pids(self) -> list[int]:
        res = subprocess.run(["pgrep", "-f", f"[d]atadir={re.escape(str(self.datadir))}( |$)"], capture_output=True, text=True)
        return [int(p) for p in res.stdout.split()]

    def kill(self, sig: int = signal.SIGKILL) -> None:
        for pid in self.pids():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        end = time.monotonic() + 60
        while self.pids() and time.monotonic() < end:
            time.sleep(0.1)
        assert not self.pids()
        for proc in self.procs:  # reap them: a zombie would still answer kill -0
            proc.wait(10)

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
    srv = PrivateServer(tmp_path / "srv", _free_port())
    srv.dir.mkdir()
    subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={srv.datadir}", "--user=root",
                    "--auth-root-authentication-method=normal", "--skip-test-db",
                    f"--tmpdir={srv.dir}"], check=True, capture_output=True)
    srv.start()
    try:
        yield srv
    finally:
        srv.kill()
