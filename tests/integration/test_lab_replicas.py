"""`runbook lab up --replicas 2`, `lab load shop`, `lab status`, restart of a killed replica, `lab down`,
through the CLI (issue 17 item 1, issue 20 item 4)."""

from __future__ import annotations

import gzip
import json
import os
import signal
from pathlib import Path

import pymysql
import yaml

from tests.cliutil import cli as _cli
from tests.cliutil import out_of


def cli(*args: str, cwd: Path):  # type: ignore[no-untyped-def]
    return _cli(*args, cwd=cwd, home=cwd / "home", timeout=300)


def one(port: int, sql: str) -> object:
    conn = pymysql.connect(host="127.0.0.1", port=port, user="root", autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            row = cur.fetchone()
            return row[0] if row else None
    finally:
        conn.close()


def test_lab_with_replicas_load_shop_status_restart_down(tmp_path: Path) -> None:
    up = cli("lab", "up", "--replicas", "2", cwd=tmp_path)
    out = out_of(up)
    lab = tmp_path / "home" / "lab"  # RUNBOOK_HOME/lab: the journal directory's, not the current one
    try:
        assert up.returncode == 0, out
        assert f"inventory: {lab / 'inventory.yml'}" in out
        inv = yaml.safe_load((lab / "inventory.yml").read_text())
        assert set(inv["all"]["children"]["primary"]["hosts"]) == {"db1"}
        assert set(inv["all"]["children"]["replicas"]["hosts"]) == {"db2", "db3"}
        ports = {}
        for name in ("db1", "db2", "db3"):
            h = inv["all"]["hosts"][name]
            assert {"mysql_port", "datadir", "mysql_binlog_dir", "mysql_pid_file", "mysql_error_log", "mysql_start_cmd"} <= set(h)
            ports[name] = h["mysql_port"]
        assert inv["all"]["vars"]["replication_user"] == "repl" and inv["all"]["vars"]["mysql_via"] == "tunnel"
        assert one(ports["db2"], "SELECT @@read_only") == 1 and one(ports["db1"], "SELECT @@read_only") == 0

        load = cli("lab", "load", "shop", cwd=tmp_path)
        out = out_of(load)
        assert load.returncode == 0, out
        backup = Path(next(ln.split("backup: ", 1)[1] for ln in out.splitlines() if ln.startswith("backup: ")))
        assert backup == lab / "backups" / "shop-full.sql.gz" and backup.is_file()
        with gzip.open(backup, "rt") as f:
            head = f.read()
        assert "-- CHANGE MASTER TO MASTER_LOG_FILE=" in head and "gtid_slave_pos=" in head  # --master-data=2 --gtid
        assert "replicas caught up: db2, db3" in out
        for name in ("db1", "db2", "db3"):
            assert one(ports[name], "SELECT COUNT(*) FROM shop.orders") == 10000

        status = cli("lab", "status", cwd=tmp_path)
        out = out_of(status)
        assert status.returncode == 0, out
        assert "db1  MariaDB running" in out and "primary, writable" in out and "replicas: db2, db3" in out
        assert out.count("replica of db1 (io Yes, sql Yes, lag 0 s), read-only") == 2 and "behind db1: nothing" in out

        # A replica killed with -9: status says so (exit 1); `lab up` restarts only it, and it
        # resumes replicating from its crash-safe position.
        pid = int(Path(inv["all"]["hosts"]["db3"]["mysql_pid_file"]).read_text())
        os.kill(pid, signal.SIGKILL)
        status = cli("lab", "status", cwd=tmp_path)
        assert status.returncode == 1 and "db3  MariaDB STOPPED" in status.stdout, out_of(status)
        one(ports["db1"], "INSERT INTO shop.events (at, kind, detail) VALUES (NOW(), 'x', 'after the crash')")
        again = cli("lab", "up", cwd=tmp_path)
        out = out_of(again)
        assert again.returncode == 0 and "db3: MariaDB restarted on its datadir" in out and "db1:" not in out, out
        refused = cli("lab", "up", "--replicas", "1", cwd=tmp_path)
        assert refused.returncode != 0 and "has 2 replica(s), not 1" in out_of(refused)
        conn = pymysql.connect(host="127.0.0.1", port=ports["db3"], user="root", autocommit=True)
        with conn.cursor() as cur:
            cur.execute("SELECT MASTER_GTID_WAIT(%s, 60)", [one(ports["db1"], "SELECT @@gtid_binlog_pos")])
            assert cur.fetchone()[0] == 0
            cur.execute("SELECT COUNT(*) FROM shop.events WHERE detail = 'after the crash'")
            assert cur.fetchone()[0] == 1
        conn.close()
        assert json.loads((lab / "lab.json").read_text())["mysql_port"] == ports["db1"]
    finally:
        down = cli("lab", "down", cwd=tmp_path)
    assert down.returncode == 0 and "db3 mariadbd" in down.stdout
    assert not lab.exists()


def test_lab_arguments_are_checked(tmp_path: Path) -> None:
    res = cli("lab", "status", "shop", cwd=tmp_path)
    assert res.returncode == 2 and "only `load` takes a data set" in out_of(res)
    res = cli("lab", "load", cwd=tmp_path)
    assert res.returncode == 2 and "runbook lab load shop" in out_of(res)
    res = cli("lab", "down", "--replicas", "2", cwd=tmp_path)
    assert res.returncode == 2 and "--replicas is an option of `runbook lab up`" in out_of(res)
    res = cli("lab", "load", "shop", cwd=tmp_path)
    assert res.returncode == 1 and "db1 is not running" in out_of(res)
