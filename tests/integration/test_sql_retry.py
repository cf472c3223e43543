"""A lock wait timeout inside an `sql` step is retried (the statement was rolled back, so
running it again is what the runbook meant); a non-retryable error is not."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import mysql_root

pytestmark = pytest.mark.integration


def _play(tmp_path: Path, runbook: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "rb.yml").write_text(runbook)
    (tmp_path / "inv.yml").write_text("all:\n  vars: {mysql_user: root, mysql_host: 127.0.0.1}\n  hosts:\n    h: {connection: local}\n")
    env = dict(os.environ, NO_COLOR="1", RUNBOOK_HOME=str(tmp_path / ".runbook"))
    return subprocess.run([sys.executable, "-m", "engine.cli", "play", str(tmp_path / "rb.yml"), "-i", str(tmp_path / "inv.yml")],
                          env=env, capture_output=True, text=True, timeout=60)


def test_lock_wait_timeout_is_retried(tmp_path: Path, db, schema: str) -> None:
    with db.cursor() as cur:
        cur.execute(f"CREATE TABLE `{schema}`.t (id INT PRIMARY KEY, v INT) ENGINE=InnoDB")
        cur.execute(f"INSERT INTO `{schema}`.t VALUES (1, 1)")
    holder = mysql_root()
    holder.autocommit(False)
    with holder.cursor() as cur:
        cur.execute(f"SELECT * FROM `{schema}`.t WHERE id = 1 FOR UPDATE")  # hold the row lock

    def release() -> None:
        # Deterministic, not timed: wait until the engine's UPDATE has waited for the lock and
        # timed out (it leaves the processlist while the engine sleeps before its retry), then
        # let the retry through.
        watcher = mysql_root()
        seen = False
        deadline = time.monotonic() + 60
        try:
            while time.monotonic() < deadline:
                with watcher.cursor() as cur:
                    cur.execute("SELECT COUNT(*) FROM information_schema.PROCESSLIST "
                                "WHERE INFO LIKE '%rbt-retry-tag%' AND INFO NOT LIKE '%PROCESSLIST%'")
                    running = cur.fetchone()[0]
                if running:
                    seen = True
                elif seen:
                    break
                time.sleep(0.01)
        finally:
            watcher.close()
            holder.commit()

    t = threading.Thread(target=release)
    t.start()
    try:
        res = _play(tmp_path, f"""
name: retry
stages:
  - name: s
    steps:
      - name: Update under a held lock
        sql: "SET SESSION innodb_lock_wait_timeout = 1; UPDATE `{schema}`.t SET v = 2 WHERE id = 1 /* rbt-retry-tag */"
""")
    finally:
        t.join()
        holder.close()
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert "1205" in out and "retrying" in out
    with db.cursor() as cur:
        cur.execute(f"SELECT v FROM `{schema}`.t WHERE id = 1")
        assert cur.fetchone()[0] == 2


def test_duplicate_key_is_not_retried(tmp_path: Path, db, schema: str) -> None:
    with db.cursor() as cur:
        cur.execute(f"CREATE TABLE `{schema}`.t (id INT PRIMARY KEY)")
        cur.execute(f"INSERT INTO `{schema}`.t VALUES (1)")
    res = _play(tmp_path, f"""
name: no retry
stages:
  - name: s
    steps:
      - name: Duplicate
        sql: INSERT INTO `{schema}`.t VALUES (1)
""")
    out = res.stdout + res.stderr
    assert res.returncode == 1
    assert "ERROR 1062" in out and "on_conflict" in out  # the diagnosis says what to do
    assert "retrying" not in out
