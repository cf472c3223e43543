"""Rollback never repeats a non-idempotent undo, undoes a failed loop step's changed items,
survives a crash inside the snapshot swap; the identity guard covers sql and shell steps
(issue 7, items 6 and 7)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pymysql
import pytest

from engine.actions.snapshot import Snapshot
from engine.model import Host, Status
from engine.run.context import ActionContext, Connections
from tests.cliutil import rows, run_id_of

pytestmark = pytest.mark.integration

INVENTORY = """
all:
  vars: {mysql_user: root, mysql_host: 127.0.0.1, mysql_port: 3306}
  hosts:
    ctl: {connection: local}
"""


def cli(*args: str, cwd: Path, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, NO_COLOR="1", RUNBOOK_HOME=str(cwd / "home"))
    env.pop("RUNBOOK_FAULT_KILL_AT_SEQ", None)
    env.pop("RUNBOOK_FAULT_KILL_BEFORE_OUTCOME", None)
    env.update(env_extra or {})
    res = subprocess.run([sys.executable, "-m", "engine.cli", *args], cwd=cwd, env=env, capture_output=True, text=True,
                         timeout=120, stdin=subprocess.DEVNULL)
    assert "Traceback" not in res.stdout + res.stderr, res.stdout + res.stderr
    return res


@pytest.fixture
def lab(tmp_path: Path, db: pymysql.connections.Connection, schema: str) -> Path:
    with db.cursor() as cur:
        cur.execute(f"CREATE TABLE `{schema}`.undo_log (id INT AUTO_INCREMENT PRIMARY KEY, what VARCHAR(64) NOT NULL)")
        cur.execute(f"CREATE TABLE `{schema}`.t (id INT PRIMARY KEY)")
    (tmp_path / "inv.yml").write_text(INVENTORY)
    return tmp_path


def log(db: pymysql.connections.Connection, schema: str) -> list[str]:
    return [r[0] for r in rows(db, f"SELECT what FROM `{schema}`.undo_log ORDER BY id")]


def test_killed_rollback_never_repeats_a_non_idempotent_undo(lab: Path, db, schema: str) -> None:
    (lab / "rb.yml").write_text(f"""
name: undo once
targets: ctl
stages:
  - name: s
    steps:
      - name: A
        sql: INSERT INTO `{schema}`.undo_log (what) VALUES ('do A')
        undo: {{sql: "INSERT INTO `{schema}`.undo_log (what) VALUES ('undo A')"}}
""")
    res = cli("play", "rb.yml", "-i", "inv.yml", cwd=lab)
    assert res.returncode == 0, res.stdout
    run_id = run_id_of(res)
    # kill -9 of `runbook rollback` after the undo ran, before its outcome was journaled
    killed = cli("rollback", run_id, "--yes", cwd=lab, env_extra={"RUNBOOK_FAULT_KILL_BEFORE_OUTCOME": "undo:s/A"})
    assert killed.returncode == -signal.SIGKILL
    assert log(db, schema) == ["do A", "undo A"]
    # Again: the undo is in doubt, has no probe and is not idempotent: asked, not repeated.
    again = cli("rollback", run_id, "--yes", cwd=lab)
    assert again.returncode == 1, again.stdout
    assert "--decide 's/A@ctl=done'" in again.stdout, again.stdout
    assert log(db, schema) == ["do A", "undo A"]
    done = cli("rollback", run_id, "--yes", "--decide", "s/A@ctl=done", cwd=lab)
    assert done.returncode == 0, done.stdout
    assert log(db, schema) == ["do A", "undo A"]
    assert "nothing to undo" in cli("rollback", run_id, "--yes", cwd=lab).stdout


def test_rollback_undoes_the_changed_items_of_a_failed_loop_step(lab: Path, db, schema: str) -> None:
    with db.cursor() as cur:
        cur.execute(f"INSERT INTO `{schema}`.t VALUES (3)")  # item 3 fails on its duplicate key
    (lab / "rb.yml").write_text(f"""
name: loop
targets: ctl
stages:
  - name: s
    on_failure: rollback
    steps:
      - name: Rows
        loop: [1, 2, 3, 4]
        sql: INSERT INTO `{schema}`.t VALUES ({{{{ item }}}})
        undo: {{sql: "DELETE FROM `{schema}`.t WHERE id = {{{{ item }}}}"}}
""")
    res = cli("play", "rb.yml", "-i", "inv.yml", cwd=lab)
    assert res.returncode == 1, res.stdout
    assert "undo: Rows" in res.stdout, res.stdout
    assert rows(db, f"SELECT id FROM `{schema}`.t ORDER BY id") == [(3,)], res.stdout


def test_rollback_command_undoes_a_failed_loop_step(lab: Path, db, schema: str) -> None:
    with db.cursor() as cur:
        cur.execute(f"INSERT INTO `{schema}`.t VALUES (2)")
    (lab / "rb.yml").write_text(f"""
name: loop
targets: ctl
stages:
  - name: s
    steps:
      - name: Rows
        loop: [1, 2]
        sql: INSERT INTO `{schema}`.t VALUES ({{{{ item }}}})
        undo: {{sql: "DELETE FROM `{schema}`.t WHERE id = {{{{ item }}}}"}}
""")
    res = cli("play", "rb.yml", "-i", "inv.yml", cwd=lab)
    assert res.returncode == 1
    back = cli("rollback", run_id_of(res), "--yes", cwd=lab)
    assert back.returncode == 0, back.stdout
    assert rows(db, f"SELECT id FROM `{schema}`.t ORDER BY id") == [(2,)], back.stdout


def test_identity_guard_covers_sql_and_shell_steps(lab: Path, db, schema: str) -> None:
    """`mysql_identity` pins another server: the DELETE and the shell command are refused by
    the executor; a read-only SELECT still runs. (They used to run on the wrong server.)"""
    with db.cursor() as cur:
        cur.execute(f"INSERT INTO `{schema}`.t VALUES (1)")
    (lab / "inv.yml").write_text(INVENTORY.replace("{connection: local}", "{connection: local, mysql_identity: db9.elsewhere}"))
    marker = lab / "marker"
    (lab / "rb.yml").write_text(f"""
name: wrong server
targets: ctl
stages:
  - name: s
    on_failure: continue
    steps:
      - name: Look
        sql: SELECT COUNT(*) AS n FROM `{schema}`.t
      - name: Delete
        sql: DELETE FROM `{schema}`.t
      - name: Touch
        shell: touch {marker}
""")
    res = cli("play", "rb.yml", "-i", "inv.yml", cwd=lab)
    assert res.returncode == 1, res.stdout
    assert rows(db, f"SELECT id FROM `{schema}`.t") == [(1,)], res.stdout
    assert not marker.exists(), res.stdout
    assert res.stdout.count("refusing to run") == 2, res.stdout
    assert re.search(r"^ok\s+ctl\s+Look", res.stdout, re.M), res.stdout  # read-only: not refused


# --------------------------------------------------------------------------- the snapshot swap


def _faulty(session: Any, fail_on: str, after_rename: bool = False) -> None:
    """Make one statement of ``session`` fail (by its start), as a crash at that instant would."""
    inner = session.query
    state = {"renamed": False}

    def query(sql: str, params: Any = None, **kw: Any) -> Any:
        if sql.startswith("RENAME TABLE"):
            if fail_on == "RENAME":
                raise RuntimeError("crash before the RENAME")
            state["renamed"] = True
        elif sql.startswith(fail_on) and "restored" in sql and (state["renamed"] or not after_rename):
            raise RuntimeError("crash after the RENAME")
        return inner(sql, params, **kw)

    session.query = query
    session._restore_query = lambda: setattr(session, "query", inner)


def _ctx(schema: str) -> ActionContext:
    host = Host(name="h", vars={"mysql_user": "root", "mysql_host": "127.0.0.1", "mysql_port": 3306}, groups=("all",),
                connection="local")
    return ActionContext(host=host, conns=Connections(host), vars={}, run_id="t" + uuid.uuid4().hex[:10],
                         check_mode=False, step_key="s/snap", source=None)


def _snapshot(db: pymysql.connections.Connection, schema: str) -> tuple[ActionContext, Any]:
    with db.cursor() as cur:
        cur.execute(f"INSERT INTO `{schema}`.t VALUES (1), (2)")
        cur.execute(f"CREATE TRIGGER `{schema}`.t_ins BEFORE INSERT ON `{schema}`.t FOR EACH ROW SET NEW.id = NEW.id")
    ctx = _ctx(schema)
    res = Snapshot({"schema": schema, "tables": ["t"]}, ctx).apply()
    assert res.status is Status.CHANGED, res.msg
    with db.cursor() as cur:
        cur.execute(f"DELETE FROM `{schema}`.t")
    return ctx, res.undo


def _drop_snapshot(db: pymysql.connections.Connection, ctx: ActionContext) -> None:
    ctx.conns.close()
    with db.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `_rb_snap_{ctx.run_id}`")


def test_crash_between_rename_and_manifest_update_does_not_break_the_next_undo(lab: Path, db, schema: str) -> None:
    ctx, record = _snapshot(db, schema)
    try:
        real = ctx.conns.sql()
        _faulty(real, "UPDATE", after_rename=True)
        with pytest.raises(RuntimeError):
            Snapshot(None, ctx).undo(record)
        real._restore_query()  # type: ignore[attr-defined]
        res = Snapshot(None, ctx).undo(record)  # the undo again, as rollback would
        assert not res.failed, res.msg
        assert rows(db, f"SELECT id FROM `{schema}`.t ORDER BY id") == [(1,), (2,)]
        assert [r[0] for r in rows(db, f"SHOW TRIGGERS FROM `{schema}`")] == ["t_ins"]
    finally:
        _drop_snapshot(db, ctx)


def test_a_failed_rename_leaves_the_live_table_with_its_triggers(lab: Path, db, schema: str) -> None:
    ctx, record = _snapshot(db, schema)
    try:
        real = ctx.conns.sql()
        _faulty(real, "RENAME")
        with pytest.raises(RuntimeError):
            Snapshot(None, ctx).undo(record)
        real._restore_query()  # type: ignore[attr-defined]
        assert [r[0] for r in rows(db, f"SHOW TRIGGERS FROM `{schema}`")] == ["t_ins"]
        assert not Snapshot(None, ctx).undo(record).failed
        assert rows(db, f"SELECT id FROM `{schema}`.t ORDER BY id") == [(1,), (2,)]
    finally:
        _drop_snapshot(db, ctx)
