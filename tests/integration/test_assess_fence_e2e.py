"""runbooks/assess-and-fence.yml over a real sshd and SQL on the private lab server (the fence
sets read_only, kills and locks the accounts of client sessions: never on the machine's server,
shared by everyone's tests), then `runbook rollback`: the server is writable again and the core
tables are as they were. Also `runbook lab up|status|down`, the drill's disposable lab."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest

from tests.sshd import SshdServer

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CORE = ("users", "products", "orders", "order_items")


def cli(*args: str, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, NO_COLOR="1", RUNBOOK_HOME=str(cwd / ".runbook"))
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def load_shop(db: pymysql.connections.Connection, schema: str) -> None:
    text = (ROOT / "scripts" / "lab-shop.sql").read_text()
    text = text.replace("CREATE DATABASE IF NOT EXISTS shop;", "").replace("USE shop;", f"USE `{schema}`;")
    with db.cursor() as cur:
        for stmt in [s.strip() for s in text.split(";")]:
            lines = [ln for ln in stmt.splitlines() if not ln.strip().startswith("--")]
            if "\n".join(lines).strip():
                cur.execute("\n".join(lines))


def checksums(db: pymysql.connections.Connection, schema: str) -> dict[str, object]:
    with db.cursor() as cur:
        cur.execute("CHECKSUM TABLE " + ", ".join(f"`{schema}`.`{t}`" for t in CORE))
        return {row[0]: row[1] for row in cur.fetchall()}


def read_only(db: pymysql.connections.Connection) -> int:
    with db.cursor() as cur:
        cur.execute("SELECT @@global.read_only")
        return int(cur.fetchone()[0])


@pytest.fixture
def lab_db(lab_server: tuple[str, int]) -> Iterator[tuple[pymysql.connections.Connection, str, int]]:
    """A fresh schema on the lab server; the server writable again afterwards, whatever happened."""
    _, port = lab_server
    db = pymysql.connect(host="127.0.0.1", port=port, user="root", autocommit=True)
    schema = f"rbt_{uuid.uuid4().hex[:10]}"
    with db.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{schema}`")
    try:
        yield db, schema, port
    finally:
        with db.cursor() as cur:
            cur.execute("SET GLOBAL read_only = OFF")
            cur.execute("SET SESSION foreign_key_checks = 0")
            cur.execute(f"DROP DATABASE IF EXISTS `{schema}`")
        db.close()


def test_assess_fence_then_rollback_over_ssh(tmp_path: Path, sshd: SshdServer, lab_db) -> None:
    db, schema, port = lab_db
    load_shop(db, schema)
    before = checksums(db, schema)
    inv = tmp_path / "inv.yml"
    inv.write_text(f"""
all:
  vars: {{mysql_user: root, mysql_port: {port}, mysql_via: tunnel}}
  hosts:
    db1:
{sshd.host_vars_yaml()}
  children:
    primary: {{hosts: {{db1: {{}}}}}}
""")
    rb = str(ROOT / "runbooks" / "assess-and-fence.yml")
    extra = ["-e", f"schema={schema}", "-e", '{"keep_users": ["root"]}']
    res = cli("play", rb, "-i", str(inv), *extra, "--yes", cwd=tmp_path)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert "Traceback" not in out
    assert read_only(db) == 1
    run_id = next(p.name for p in (tmp_path / ".runbook").iterdir() if p.is_dir() and p.name[0].isdigit())

    # The incident: rows deleted and rewritten (root writes through read_only on MariaDB).
    with db.cursor() as cur:
        cur.execute(f"DELETE FROM `{schema}`.order_items WHERE order_id <= 500")
        cur.execute(f"UPDATE `{schema}`.users SET email = CONCAT('x', id)")
    assert checksums(db, schema) != before

    res = cli("rollback", run_id, "--yes", cwd=tmp_path)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert "checksums match" in out
    assert read_only(db) == 0
    assert checksums(db, schema) == before
    # The journal tells the same story: both undos recorded after their steps.
    show = cli("show", run_id, cwd=tmp_path).stdout
    assert "Fence the server [undo]" in show and "Snapshot the core tables [undo]" in show
    # Nothing left to undo.
    again = cli("rollback", run_id, "--yes", cwd=tmp_path)
    assert again.returncode == 0 and "nothing to undo" in again.stdout
    with db.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `_rb_snap_{run_id.replace('-', '_')}`")


def test_lab_up_status_down(tmp_path: Path) -> None:
    up = cli("lab", "up", cwd=tmp_path)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        state = json.loads((tmp_path / ".runbook" / "lab" / "lab.json").read_text())
        status = cli("lab", "status", cwd=tmp_path)
        assert "MariaDB running" in status.stdout and "sshd    running" in status.stdout
        res = cli("play", str(ROOT / "runbooks" / "hello.yml"), "-i", str(tmp_path / ".runbook" / "lab" / "inventory.yml"), cwd=tmp_path)
        assert res.returncode == 0, res.stdout + res.stderr
        conn = pymysql.connect(host="127.0.0.1", port=state["mysql_port"], user="root")
        with conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM runbook_hello.greetings")
            assert cur.fetchone()[0] == 1  # the hello runbook wrote into the lab, not the machine's server
        conn.close()
    finally:
        down = cli("lab", "down", cwd=tmp_path)
    assert down.returncode == 0
    assert "lab down" in down.stdout
    assert not (tmp_path / ".runbook" / "lab").exists()
    assert "lab is down" in cli("lab", "status", cwd=tmp_path).stdout
