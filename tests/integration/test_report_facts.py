"""Issue 20 item 5: the report shows what the journal has — the command line (limit, -e values,
secrets masked), the sessions the fence killed (user@host), and how many rows written after
the backup now live only in the snapshot (counted by the restore on the server, by primary key,
right after its load; the report says how). On the lab's private MariaDB: the fence kills."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest

pytestmark = pytest.mark.integration

SECRET = "Zq7-report-secret"

RUNBOOK = """
name: report facts
targets: db1
vars:
  schema: op_report
  backup: /nowhere.sql
stages:
  - name: fence
    steps:
      - name: Fence
        stop_writes: {{kill_connections: true}}
        register: fence
  - name: restore
    steps:
      - name: Snapshot
        snapshot: {{schema: "{{{{ schema }}}}", tables: [orders]}}
      - name: Restore
        restore: {{file: "{{{{ backup }}}}", file_on: control, schema: "{{{{ schema }}}}", tables: [orders], truncate: true}}
        register: restored
  - name: reopen
    steps:
      - name: Reopen
        resume_writes: {{}}
      - name: Uses the secret
        shell: "test -n '{{{{ app_password }}}}'"
"""


@pytest.fixture
def lab(lab_server: tuple[str, int], tmp_path: Path) -> Iterator[tuple[Path, int, pymysql.connections.Connection]]:
    _, port = lab_server
    root = pymysql.connect(host="127.0.0.1", port=port, user="root", autocommit=True)
    with root.cursor() as cur:
        cur.execute("SET GLOBAL read_only = OFF")
        cur.execute("DROP DATABASE IF EXISTS op_report")
        cur.execute("CREATE DATABASE op_report")
        cur.execute("CREATE TABLE op_report.orders (id INT PRIMARY KEY, status VARCHAR(20) NOT NULL)")
        cur.execute("INSERT INTO op_report.orders SELECT seq, 'paid' FROM op_report.seq_1_to_50")
        cur.execute("CREATE USER IF NOT EXISTS 'opapp'@'127.0.0.1' IDENTIFIED BY 'opapp'")
        cur.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON op_report.* TO 'opapp'@'127.0.0.1'")
    backup = tmp_path / "op_report.sql"
    backup.write_bytes(subprocess.run(["mariadb-dump", "-uroot", "-h127.0.0.1", f"-P{port}", "op_report"], check=True,
                                      capture_output=True).stdout)
    with root.cursor() as cur:  # after the backup: the application writes, then the incident
        cur.execute("INSERT INTO op_report.orders VALUES (51, 'new'), (52, 'new')")
        cur.execute("UPDATE op_report.orders SET status = 'shipped' WHERE id = 7")
        cur.execute("DELETE FROM op_report.orders WHERE id BETWEEN 40 AND 50")
    (tmp_path / "rb.yml").write_text(RUNBOOK.format())
    yield tmp_path, port, root
    root.close()  # the fence killed it
    root = pymysql.connect(host="127.0.0.1", port=port, user="root", autocommit=True)
    with root.cursor() as cur:
        cur.execute("SET GLOBAL read_only = OFF")
        cur.execute("DROP DATABASE IF EXISTS op_report")
        cur.execute("DROP USER IF EXISTS 'opapp'@'127.0.0.1'")
    root.close()


def test_the_report_shows_the_command_the_killed_sessions_and_the_rows_left_in_the_snapshot(
        lab: tuple[Path, int, pymysql.connections.Connection], lab_server: tuple[str, int]) -> None:
    work, port, _ = lab
    inv, _ = lab_server
    app = pymysql.connect(host="127.0.0.1", port=port, user="opapp", password="opapp", autocommit=True)  # a live client
    env = dict(os.environ, NO_COLOR="1", RUNBOOK_HOME=str(work / "home"))
    for k in ("RUNBOOK_FAULT_KILL_AT_SEQ", "RUNBOOK_FAULT_KILL_BEFORE_OUTCOME"):
        env.pop(k, None)
    res = subprocess.run([sys.executable, "-m", "engine.cli", "play", "rb.yml", "-i", inv, "--limit", "db1",
                          "-e", f"backup={work / 'op_report.sql'}", "-e", "schema=op_report", "-e", f"app_password={SECRET}",
                          "--yes", "--report", str(work / "r.json")],
                         cwd=work, env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    app.close()
    data = json.loads((work / "r.json").read_text())
    play = data["commands"][0]
    assert play.startswith("runbook play rb.yml -i ") and "--limit db1" in play and "-e schema=op_report" in play, play
    assert SECRET not in play and "app_password=" in play, play
    assert any(k["who"].startswith("opapp@") for k in data["sessions_killed"]), data["sessions_killed"]
    left = data["rows_only_in_snapshot"]
    (orders,) = left["tables"]
    # 41 rows in the snapshot (50 + 2 new - 11 deleted); the backup brings 50 back: ids 51 and 52
    # are not restored, id 7's 'shipped' was replaced by the backup's 'paid'
    assert (orders["table"], orders["snapshot_rows"], orders["keys_not_restored"], orders["versions_replaced"],
            orders["rows"]) == ("orders", 41, 2, 1, 3), orders
    assert left["rows"] == 3 and "primary key" in left["how"]
    # no binlog replay brought those writes back: the snapshot is their only copy, never "drop it"
    (snap,) = [t for t in data["todo"] if "_rb_snap_" in t]
    assert "holds the only copy of the writes made since the backup" in snap and "3 row(s) counted" in snap, snap
    assert "snapshots drop" not in snap, snap
    for fmt in ("md", "html"):
        text = subprocess.run([sys.executable, "-m", "engine.cli", "report", data["run"]["run_id"], "--format", fmt],
                              cwd=work, env=env, capture_output=True, text=True, timeout=60).stdout
        assert "--limit db1" in text and SECRET not in text
        assert "opapp@" in text and "only in the snapshot" in text, text[:2000]
