"""runbooks/crash-recovery.yml end to end on a private MariaDB (engine/mysql/instance.py) that the
test crashes: the server comes back READ-ONLY until CHECK TABLE and verify have passed, reopen
is off by default and the run says why; and when InnoDB will not start at all (a damaged redo
log), the rescue stage starts a COPY of the datadir with innodb_force_recovery 1 upwards, dumps
what it reads, leaves the live datadir byte for byte as it was, and fails with the rebuild steps."""

from __future__ import annotations

import gzip
import hashlib
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.mysql.instance import MariadbInstance, free_port

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
CORE = "shop.users, shop.products, shop.orders, shop.order_items"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[MariadbInstance]:
    inst = MariadbInstance(tmp_path / "db1", port=free_port(), binlog=False, buffer_pool="64M")
    inst.initialize()
    inst.start()
    with open(ROOT / "scripts" / "lab-shop.sql", "rb") as f:
        subprocess.run(["mysql", "-uroot", "-h127.0.0.1", f"-P{inst.port}"], stdin=f, check=True)
    try:
        yield inst
    finally:
        inst.kill()


def inventory(inst: MariadbInstance, tmp_path: Path) -> Path:
    path = tmp_path / "inv.yml"
    path.write_text(f"""all:
  children:
    primary:
      hosts:
        db1:
          connection: local
          mysql_host: 127.0.0.1
          mysql_port: {inst.port}
          mysql_user: root
          mysql_start_cmd: {shlex.quote(shlex.join(inst.cmd()))}
          mysql_pid_file: {inst.pid_file}
          mysql_error_log: {inst.error_log}
          datadir: {inst.datadir}
""")
    return path


def play(tmp_path: Path, inv: Path, *extra: str) -> tuple[int, str]:
    env = dict(os.environ, NO_COLOR="1", RUNBOOK_HOME=str(tmp_path / "home"))
    res = subprocess.run([sys.executable, "-m", "engine.cli", "play", str(ROOT / "runbooks" / "crash-recovery.yml"),
                          "-i", str(inv), "-e", "schema=shop", "--yes", *extra],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    out = res.stdout + res.stderr
    assert "Traceback" not in out, out
    return res.returncode, out


def test_a_crashed_server_comes_back_read_only_until_verified(server: MariadbInstance, tmp_path: Path) -> None:
    sums = server.sql(f"CHECKSUM TABLE {CORE}")
    server.kill()  # the crash
    inv = inventory(server, tmp_path)
    rc, out = play(tmp_path, inv)
    assert rc == 0, out
    assert "CHECK TABLE: users, products, orders, order_items OK" in out
    assert server.sql("SELECT @@global.read_only") == [(1,)], "the server must stay fenced: reopen is off by default"
    assert "writes stay FENCED (read_only=ON): reopen is off by default so that a person decides" in out
    assert server.sql(f"CHECKSUM TABLE {CORE}") == sums
    # The decision: play again with reopen=true: the server is found up, verified again, reopened.
    rc, out = play(tmp_path, inv, "-e", "reopen=true")
    assert rc == 0, out
    assert "writes reopened" in out
    assert server.sql("SELECT @@global.read_only") == [(0,)]


def _digest(datadir: Path) -> dict[str, str]:
    """InnoDB's files (what innodb_force_recovery would write). The server's own failed start
    attempt in the start stage rewrites Aria's control file: that is the normal start, not the
    rescue."""
    out = {}
    for p in sorted(datadir.rglob("*")):
        if p.is_file() and (p.name.startswith(("ibdata", "ib_logfile", "undo", "ibtmp")) or p.suffix in (".ibd", ".frm")):
            out[str(p.relative_to(datadir))] = hashlib.sha1(p.read_bytes()).hexdigest()
    return out


def test_innodb_will_not_start_the_rescue_dumps_a_copy_and_never_touches_the_live_datadir(
        server: MariadbInstance, tmp_path: Path) -> None:
    orders = server.sql("SELECT COUNT(*) FROM shop.orders")[0][0]
    server.stop()  # clean shutdown: the data files hold everything ...
    with open(server.datadir / "ib_logfile0", "r+b") as f:  # ... but the redo log header is damaged
        f.write(b"\xde\xad" * 256)
    live = _digest(server.datadir)
    inv = inventory(server, tmp_path)
    rc, out = play(tmp_path, inv)
    assert rc == 1, out  # the server is not back: the run must not say it succeeded
    assert "InnoDB will not start" in out or "rescue" in out
    assert "innodb_force_recovery=6" in out and "Rebuild: (1) move the broken datadir aside" in out
    assert _digest(server.datadir) == live, "the live datadir was changed"
    copies = list(tmp_path.glob("db1/data.rescue-*"))
    assert len(copies) == 1, copies
    dump = gzip.decompress((copies[0] / "rescue.sql.gz").read_bytes()).decode()
    assert "CREATE DATABASE /*!32312 IF NOT EXISTS*/ `shop`" in dump and "-- Dump completed" in dump
    assert dump.count("INSERT INTO `orders` VALUES") >= 1
    assert f"({orders},1" in dump or f"({orders}," in dump  # the last order is in the dump
    assert not list(copies[0].glob("rescue.pid")) or not server.pids()  # the rescue server was stopped
