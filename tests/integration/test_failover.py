"""runbooks/failover.yml on the lab (issue 17): db3 lags, then db2 stops receiving, the primary
commits rows only it has; then the failover — db2 is promoted with every committed row, db3
follows it, a new write on db2 reaches db3."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest

from tests.cliutil import cli as _cli
from tests.cliutil import out_of
from tests.integration.lab_topology import Topology

pytestmark = [pytest.mark.integration]
ROOT = Path(__file__).resolve().parents[2]
FAILOVER = str(ROOT / "runbooks" / "failover.yml")
TABLES = ("shop.orders", "shop.items")


@pytest.fixture(scope="module")
def topo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    t = Topology(tmp_path_factory.mktemp("failover") / "home")
    try:
        yield t
    finally:
        t.close()


def scenario(topo: Topology) -> dict[str, Any]:
    """The issue's story. Returns what db1 had committed (per table: count, checksum) and its GTID."""
    topo.reset()
    topo.sql("db1", "CREATE DATABASE shop",
             "CREATE TABLE shop.orders (id INT PRIMARY KEY, v VARCHAR(40) NOT NULL)",
             "CREATE TABLE shop.items (id INT PRIMARY KEY, v VARCHAR(40) NOT NULL)",
             "INSERT INTO shop.orders SELECT seq, CONCAT('a', seq) FROM shop.seq_1_to_100",
             "INSERT INTO shop.items SELECT seq, CONCAT('a', seq) FROM shop.seq_1_to_300")
    a = topo.gtid("db1")
    topo.wait_applied("db2", a)
    topo.wait_applied("db3", a)
    topo.sql("db3", "STOP SLAVE")  # db3 lags
    for i in range(101, 111):  # B: ten transactions db2 gets, db3 does not
        topo.sql("db1", f"INSERT INTO shop.orders VALUES ({i}, 'b{i}')")
    topo.sql("db1", "UPDATE shop.items SET v = 'b' WHERE id <= 50")
    topo.wait_applied("db2", topo.gtid("db1"))
    topo.sql("db2", "STOP SLAVE IO_THREAD")  # db2 stops receiving
    for i in range(111, 121):  # C: only the primary has them
        topo.sql("db1", f"INSERT INTO shop.orders VALUES ({i}, 'c{i}')")
    topo.sql("db1", "UPDATE shop.orders SET v = 'c-updated' WHERE id = 5", "DELETE FROM shop.orders WHERE id = 6",
             "DELETE FROM shop.items WHERE id > 290")
    return {"sums": {t: topo.checksum("db1", t) for t in TABLES}, "gtid": topo.gtid("db1"), "b_end": topo.gtid("db2")}


def kill_primary(topo: Topology) -> None:
    pid = int((topo.lab.dir / "db1" / "mysqld.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    for srv in topo.lab.servers().values():
        if srv.dir.name == "db1":
            srv.kill()  # waits until it is gone


def failover(topo: Topology, tmp: Path, *extra: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    args = ["play", FAILOVER, "-i", str(topo.inventory), "-e", "old_primary=db1", "-e", "candidates=replicas",
            "-e", "schema=shop", "--yes", "--report", str(tmp / "failover.json"), *extra]
    return _cli(*args, cwd=tmp, home=topo.home, timeout=300)


def assert_failed_over(topo: Topology, committed: dict[str, Any]) -> None:
    """db2 primary and writable with every committed row; db3 read-only, following db2; a new
    write on db2 reaches db3."""
    assert topo.slave_status("db2") is None and topo.one("db2", "SELECT @@read_only") == 0
    st = topo.slave_status("db3")
    assert st is not None and st["Master_Port"] == topo.ports["db2"] and st["Slave_IO_Running"] == "Yes"
    assert topo.one("db3", "SELECT @@read_only") == 1
    for t in TABLES:
        assert topo.checksum("db2", t) == committed["sums"][t], t
    topo.sql("db2", "INSERT INTO shop.orders VALUES (1000, 'after the failover')")
    topo.wait_applied("db3", topo.gtid("db2"))
    assert topo.one("db3", "SELECT v FROM shop.orders WHERE id = 1000") == "after the failover"
    for t in TABLES:
        assert topo.checksum("db3", t) == topo.checksum("db2", t), t


def test_failover_from_a_primary_that_still_answers(topo: Topology, tmp_path: Path) -> None:
    """The old primary cannot be trusted but answers: it is fenced first, and db2 gets what it
    lacks through replication."""
    committed = scenario(topo)
    topo.sql("db1", "CREATE USER app@'127.0.0.1' IDENTIFIED BY 'app'", "GRANT SELECT, INSERT ON shop.* TO app@'127.0.0.1'")
    committed["gtid"] = topo.gtid("db1")
    app = pymysql.connect(host="127.0.0.1", port=topo.ports["db1"], user="app", password="app", autocommit=True, ssl_disabled=True)
    res = failover(topo, tmp_path)
    out = out_of(res)
    assert res.returncode == 0, out
    assert "promote db2;" in out and "old primary db1 ANSWERS (it will be fenced)" in out
    assert "Fence the old primary" in out and "caught up with db1: applied 15 transaction(s)" in out, out
    assert_failed_over(topo, committed)
    # db1: fenced (read_only, the application's account locked, its session killed), and not
    # made a replica of db2.
    assert topo.one("db1", "SELECT @@read_only") == 1 and topo.slave_status("db1") is None
    assert "ACCOUNT LOCK" in topo.one("db1", "SHOW CREATE USER app@'127.0.0.1'")
    # The lock is db1's alone (not binlogged): the application may write on the new primary.
    assert "ACCOUNT LOCK" not in topo.one("db2", "SHOW CREATE USER app@'127.0.0.1'")
    with pytest.raises(pymysql.err.OperationalError), app.cursor() as cur:
        cur.execute("INSERT INTO shop.orders VALUES (5000, 'late')")
    app.close()
