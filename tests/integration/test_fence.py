"""``stop_writes`` / ``resume_writes`` through ``runbook play`` and ``runbook rollback``, on a
private MariaDB (``engine/mysql/instance.py``, binlog on): the machine's shared server is
never fenced, and no test here kills a session or locks an account on it.

Issue 15 item 5 (a failure after the fence keeps its undo), item 16 (resume_writes puts back
exactly the state before the fence), SPEC §3 (lock_accounts; registered binlog, killed,
locked), issue 17 item 4 (freeze a delayed replica).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.mysql.instance import MariadbInstance
from tests.cliutil import cli_in as cli
from tests.cliutil import only_run
from tests.integration.fence_helpers import Db

pytestmark = pytest.mark.integration


def inventory(path: Path, inst: MariadbInstance, user: str = "root", password: str = "") -> Path:
    pw = f", mysql_password: {password}" if password else ""
    path.write_text("all:\n  hosts:\n"
                    f"    db1: {{connection: local, mysql_host: 127.0.0.1, mysql_port: {inst.port}, mysql_user: {user}{pw}}}\n")
    return path


def runbook(path: Path, *steps: str, on_failure: str = "abort") -> Path:
    body = "".join(f"      - {s}\n" for s in steps)
    path.write_text(f"name: fence\ntargets: db1\nstages:\n  - name: fence\n    on_failure: {on_failure}\n    steps:\n{body}")
    return path


# --------------------------------------------------------------------------- issue 15 item 5


def test_prove_with_login_failure_after_the_fence_keeps_its_undo(tmp_path: Path, fence_db: Db) -> None:
    """The fence is up when ``prove_with`` cannot log in: the step fails, and `runbook rollback`
    must still reopen the server (it used to find no undo record and leave it read-only)."""
    db = fence_db
    inv = inventory(tmp_path / "inv.yml", db.inst)
    runbook(tmp_path / "rb.yml", "{name: Fence, stop_writes: {prove_with: {user: no_such_app, password: x}}}")
    res = cli("play", "rb.yml", "-i", str(inv), cwd=tmp_path)
    assert res.returncode == 1, res.stdout
    assert "cannot prove the fence" in res.stdout, res.stdout
    assert db.read_only() == 1  # the fence is up: the failure came after it
    back = cli("rollback", only_run(tmp_path), "--yes", cwd=tmp_path)
    assert back.returncode == 0, back.stdout + back.stderr
    assert "nothing to undo" not in back.stdout
    assert db.read_only() == 0, back.stdout


def test_prove_with_failure_rolls_back_the_stage(tmp_path: Path, fence_db: Db) -> None:
    """The same failure in a stage with ``on_failure: rollback``: the stage's rollback reopens."""
    db = fence_db
    inv = inventory(tmp_path / "inv.yml", db.inst)
    runbook(tmp_path / "rb.yml", "{name: Fence, stop_writes: {prove_with: {user: no_such_app, password: x}}}",
            on_failure="rollback")
    res = cli("play", "rb.yml", "-i", str(inv), cwd=tmp_path)
    assert res.returncode == 1, res.stdout
    assert "rolled back" in res.stdout, res.stdout
    assert db.read_only() == 0, res.stdout


def test_kill_error_after_the_fence_keeps_its_undo(tmp_path: Path, fence_db: Db) -> None:
    """The engine's account gets its rights through a role without CONNECTION ADMIN (nothing
    before the change can prove what a role holds): read_only goes up, then KILL of the
    application's session fails with 1095. Rollback must reopen the server."""
    db = fence_db
    db.sql("CREATE ROLE fencer_role")
    db.sql("GRANT SELECT, PROCESS, READ_ONLY ADMIN, BINLOG MONITOR ON *.* TO fencer_role")
    eng = db.user("eng")
    db.sql(f"GRANT fencer_role TO '{eng}'@'%'")
    db.sql(f"SET DEFAULT ROLE fencer_role FOR '{eng}'@'%'")
    app = db.user("app", "GRANT SELECT, INSERT ON shop.* TO {user}")
    conn = db.login(app, database="shop")
    try:
        inv = inventory(tmp_path / "inv.yml", db.inst, user=eng, password="pw")
        runbook(tmp_path / "rb.yml", f"{{name: Fence, stop_writes: {{kill_connections: true, only_users: [{app}]}}}}")
        res = cli("play", "rb.yml", "-i", str(inv), cwd=tmp_path)
        assert res.returncode == 1, res.stdout
        assert "1095" in res.stdout, res.stdout
        assert db.read_only() == 1
        back = cli("rollback", only_run(tmp_path), "--yes", cwd=tmp_path)
        assert back.returncode == 0, back.stdout + back.stderr
        assert db.read_only() == 0, back.stdout
    finally:
        conn.close()


# --------------------------------------------------------------------------- issue 15 item 16


def test_resume_writes_leaves_a_read_only_server_read_only(tmp_path: Path, fence_db: Db) -> None:
    """A server read-only before the fence (a replica, a standby) stays read-only after
    resume_writes: it used to be opened for writes (split brain)."""
    db = fence_db
    db.sql("SET GLOBAL read_only = ON")
    inv = inventory(tmp_path / "inv.yml", db.inst)
    runbook(tmp_path / "rb.yml", "{name: Fence, stop_writes: {}}", "{name: Reopen, resume_writes: {}}")
    res = cli("play", "rb.yml", "-i", str(inv), cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert db.read_only() == 1, res.stdout


def test_resume_writes_reopens_what_the_run_fenced(tmp_path: Path, fence_db: Db) -> None:
    db = fence_db
    inv = inventory(tmp_path / "inv.yml", db.inst)
    runbook(tmp_path / "rb.yml", "{name: Fence, stop_writes: {}}", "{name: Reopen, resume_writes: {}}")
    res = cli("play", "rb.yml", "-i", str(inv), cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert db.read_only() == 0, res.stdout


def test_resume_writes_unlocks_only_the_accounts_the_run_locked(tmp_path: Path, fence_db: Db) -> None:
    db = fence_db
    app1 = db.user("app")
    app2 = db.user("app")
    db.sql(f"ALTER USER '{app2}'@'%' ACCOUNT LOCK")  # locked by the DBA before the incident
    inv = inventory(tmp_path / "inv.yml", db.inst)
    runbook(tmp_path / "rb.yml", f"{{name: Fence, stop_writes: {{lock_accounts: ['{app1}', '{app2}@%']}}, register: fence}}",
            "{name: Locked?, assert: {that: [\"fence.locked | length == 1\"]}}",
            "{name: Reopen, resume_writes: {}}")
    res = cli("play", "rb.yml", "-i", str(inv), cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert not db.locked(app1) and db.locked(app2), res.stdout  # only what the run locked
    assert db.read_only() == 0


def test_rollback_unlocks_only_the_accounts_the_fence_locked(tmp_path: Path, fence_db: Db) -> None:
    db = fence_db
    app1 = db.user("app")
    app2 = db.user("app")
    db.sql(f"ALTER USER '{app2}'@'%' ACCOUNT LOCK")
    inv = inventory(tmp_path / "inv.yml", db.inst)
    runbook(tmp_path / "rb.yml", f"{{name: Fence, stop_writes: {{lock_accounts: ['{app1}', '{app2}@%']}}}}")
    res = cli("play", "rb.yml", "-i", str(inv), cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert db.locked(app1) and db.locked(app2)
    assert db.read_only() == 1
    back = cli("rollback", only_run(tmp_path), "--yes", cwd=tmp_path)
    assert back.returncode == 0, back.stdout + back.stderr
    assert not db.locked(app1) and db.locked(app2), back.stdout
    assert db.read_only() == 0


def test_kill_after_the_fence_before_its_kills_then_rollback_reopens(tmp_path: Path, fence_db: Db) -> None:
    """kill -9 once read_only is on but before the sessions are killed: the step is in doubt
    and its probe says *not done* (a session is left to kill). Rollback must still undo the
    part that was made (it used to say "nothing to undo" and leave the server read-only)."""
    import json
    import signal

    db = fence_db
    app = db.user("app")
    inv = inventory(tmp_path / "inv.yml", db.inst)
    runbook(tmp_path / "rb.yml", f"{{name: Fence, stop_writes: {{kill_connections: true, only_users: [{app}]}}}}")
    # A first run finds the journal record that notes the kill mark (right after read_only=ON).
    dry = tmp_path / "dry"
    dry.mkdir()
    (dry / "rb.yml").write_text((tmp_path / "rb.yml").read_text())
    conn = db.login(app)
    assert cli("play", "rb.yml", "-i", str(inv), cwd=dry).returncode == 0
    journal = next((dry / "home").glob("*/journal.jsonl"))
    seq = next(r["seq"] for r in map(json.loads, journal.read_text().splitlines())
               if r.get("kind") == "step_note" and "mark" in (r.get("data") or {}))
    assert cli("rollback", only_run(dry), "--yes", cwd=dry).returncode == 0
    conn.close()
    assert db.read_only() == 0

    conn = db.login(app)
    try:
        res = cli("play", "rb.yml", "-i", str(inv), cwd=tmp_path, env_extra={"RUNBOOK_FAULT_KILL_AT_SEQ": str(seq)})
        assert res.returncode == -signal.SIGKILL, res.stdout
        assert db.read_only() == 1
        with conn.cursor() as cur:  # not killed yet
            cur.execute("SELECT 1")
        back = cli("rollback", only_run(tmp_path), "--yes", cwd=tmp_path)
        assert back.returncode == 0, back.stdout + back.stderr
        assert "nothing to undo" not in back.stdout, back.stdout
        assert db.read_only() == 0, back.stdout
    finally:
        conn.close()
