"""``stop_writes: {freeze_replica: true}`` on a real replica (issue 17 item 4): two private
MariaDB instances (engine/mysql/instance.py) set up as primary and replica by hand. The frozen
replica stops applying (it keeps its copy) but keeps receiving; rollback starts it again."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.mysql.instance import MariadbInstance
from tests.cliutil import cli_in as cli
from tests.cliutil import only_run

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[MariadbInstance, MariadbInstance]]:
    base = tmp_path_factory.mktemp("fence-replica")
    primary = MariadbInstance(base / "db1", server_id=1)
    replica = MariadbInstance(base / "db2", server_id=2, replica=True)
    primary.start()
    replica.start()
    try:
        primary.sql("CREATE DATABASE shop")
        primary.sql("CREATE TABLE shop.t (id INT PRIMARY KEY)")
        replica.sql(f"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={primary.port}, MASTER_USER='root', "
                    "MASTER_USE_GTID=slave_pos")
        replica.sql("START SLAVE")
        caught_up(primary, replica)
        yield primary, replica
    finally:
        replica.stop()
        primary.stop()


def caught_up(primary: MariadbInstance, replica: MariadbInstance) -> None:
    gtid = primary.sql("SELECT @@gtid_binlog_pos")[0][0]
    assert replica.sql("SELECT MASTER_GTID_WAIT(%s, 60)", (gtid,))[0][0] == 0, replica.sql("SHOW SLAVE STATUS")


def status(replica: MariadbInstance) -> dict[str, object]:
    conn = replica.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW SLAVE STATUS")
            names = [d[0] for d in cur.description]
            return dict(zip(names, cur.fetchone()))
    finally:
        conn.close()


def received(primary: MariadbInstance, replica: MariadbInstance) -> None:
    """Until the replica's IO thread has the primary's last transaction (bounded)."""
    want = str(primary.sql("SELECT @@gtid_binlog_pos")[0][0])
    end = time.monotonic() + 60
    while status(replica)["Gtid_IO_Pos"] != want:
        assert time.monotonic() < end, status(replica)
        time.sleep(0.05)


def test_freeze_replica_keeps_its_copy_and_rollback_resumes_it(tmp_path: Path,
                                                              pair: tuple[MariadbInstance, MariadbInstance]) -> None:
    primary, replica = pair
    (tmp_path / "inv.yml").write_text(
        "all:\n  vars: {connection: local, mysql_host: 127.0.0.1, mysql_user: root}\n  hosts:\n"
        f"    db1: {{mysql_port: {primary.port}}}\n    db2: {{mysql_port: {replica.port}}}\n"
        "  children:\n    replicas:\n      hosts:\n        db2: {}\n")
    (tmp_path / "rb.yml").write_text(
        "name: freeze\ntargets: replicas\nstages:\n  - name: freeze\n    steps:\n"
        "      - {name: Freeze the delayed replica, stop_writes: {freeze_replica: true}, register: frozen}\n"
        "      - name: Where it stopped\n"
        "        assert: {that: [\"frozen.replica.executed.gtid is not none\", \"not frozen.replica.sql_running\"]}\n")
    res = cli("play", "rb.yml", "-i", str(tmp_path / "inv.yml"), cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    st = status(replica)
    assert st["Slave_SQL_Running"] == "No" and st["Slave_IO_Running"] == "Yes", st

    primary.sql("INSERT INTO shop.t VALUES (1)")  # the incident, say
    received(primary, replica)
    assert replica.sql("SELECT COUNT(*) FROM shop.t")[0][0] == 0  # frozen: the pre-incident copy

    back = cli("rollback", only_run(tmp_path), "--yes", cwd=tmp_path)
    assert back.returncode == 0, back.stdout + back.stderr
    caught_up(primary, replica)
    assert replica.sql("SELECT COUNT(*) FROM shop.t")[0][0] == 1
    assert replica.sql("SELECT @@read_only")[0][0] == 1  # read-only before the fence: still


def test_freeze_replica_on_a_primary_is_refused(tmp_path: Path, pair: tuple[MariadbInstance, MariadbInstance]) -> None:
    primary, _ = pair
    (tmp_path / "inv.yml").write_text("all:\n  hosts:\n"
                                      f"    db1: {{connection: local, mysql_host: 127.0.0.1, mysql_user: root, mysql_port: {primary.port}}}\n")
    (tmp_path / "rb.yml").write_text("name: f\ntargets: db1\nstages:\n  - name: s\n    steps:\n"
                                     "      - {name: Freeze, stop_writes: {freeze_replica: true}}\n")
    res = cli("play", "rb.yml", "-i", str(tmp_path / "inv.yml"), cwd=tmp_path)
    assert res.returncode == 1 and "freeze_replica: db1 is not a replica" in res.stdout, res.stdout
    assert primary.sql("SELECT @@read_only")[0][0] == 0
