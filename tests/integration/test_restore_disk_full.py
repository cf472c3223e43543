"""A private mariadbd whose datadir is a small tmpfs: the restore fills the disk half way,
stops cleanly with the 1114 diagnosis (which filesystem, how much is free, what to do), and the
snapshot taken before it puts the tables back exactly."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest

from engine.actions.restore import Restore
from engine.actions.snapshot import Snapshot
from engine.model import Status
from engine.mysql.instance import MariadbInstance
from tests.integration.restore_helpers import dump, execute
from tests.integration.test_dr_actions import make_ctx

pytestmark = [pytest.mark.integration, pytest.mark.slow]
INNODB = ["--innodb-log-file-size=4M", "--innodb-data-file-path=ibdata1:12M:autoextend", "--innodb-undo-tablespaces=0"]


@pytest.fixture
def tiny_server() -> Iterator[int]:
    """mariadbd on a 48 MiB tmpfs (the tests run as root); yields its port."""
    d = tempfile.mkdtemp(prefix="rbt_tiny_")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", d], check=True)
    srv = MariadbInstance(Path(d), binlog=False, buffer_pool="32M", extra=["--local-infile=1", *INNODB])
    try:
        srv.start(wait=30)
        yield srv.port
    finally:
        srv.kill()
        subprocess.run(["umount", d], check=False)
        shutil.rmtree(d, ignore_errors=True)


def _q(port: int, sql: str) -> list[tuple[object, ...]]:
    conn = pymysql.connect(host="127.0.0.1", port=port, user="root", autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return list(cur.fetchall())
    finally:
        conn.close()


def test_disk_fills_mid_restore(tiny_server: int, tmp_path: str) -> None:
    port = tiny_server
    src = "rbt_big_src"
    execute(None, f"DROP DATABASE IF EXISTS {src}; CREATE DATABASE {src}")
    try:
        execute(src, "CREATE TABLE items (id INT PRIMARY KEY, pad VARCHAR(255));"
                     "INSERT INTO items SELECT seq, REPEAT(CHAR(65 + seq % 26), 200) FROM seq_1_to_150000")
        path = dump(src, os.path.join(tmp_path, "big.sql"))
    finally:
        execute(None, f"DROP DATABASE IF EXISTS {src}")
    _q(port, "CREATE DATABASE shop")
    _q(port, "CREATE TABLE shop.items (id INT PRIMARY KEY, pad VARCHAR(255)) DEFAULT CHARSET=utf8mb4")  # as the dump's
    _q(port, "INSERT INTO shop.items VALUES (1, 'before'), (2, 'the'), (3, 'restore')")
    before = _q(port, "CHECKSUM TABLE shop.items")[0][1]
    run_state: dict[str, object] = {}
    ctx = make_ctx({"mysql_port": port}, run_state=run_state)
    snap = Snapshot({"schema": "shop", "tables": ["items"], "margin": "0%"}, ctx).apply()
    assert snap.status is Status.CHANGED, snap.msg
    ctx2 = make_ctx({"mysql_port": port}, run_state=run_state, step_key="restore/load")
    ctx2.run_id = ctx.run_id
    res = Restore({"file": path, "schema": "shop", "truncate": True, "file_on": "control"}, ctx2).apply()
    print(res.msg)
    assert res.status is Status.FAILED
    assert "1114" in res.msg and "is full" in res.msg
    assert "tmpfs mounted on" in res.msg and "bytes free" in res.msg and "runbook resume" in res.msg
    # the binary logs are the point-in-time recovery source: never a bare "PURGE BINARY LOGS" hint
    assert "PURGE BINARY LOGS destroys the point-in-time recovery source" in res.msg and "replica" in res.msg
    assert "never this run's" in res.msg
    assert 0 < res.data["rows"] < 150000  # it stopped half way, cleanly
    undo = Snapshot({"schema": "shop", "tables": ["items"]}, ctx).undo(snap.undo)
    assert undo.status is Status.CHANGED, undo.msg
    assert _q(port, "CHECKSUM TABLE shop.items")[0][1] == before
