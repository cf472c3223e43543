"""Exactly once across kills: SIGKILL the replay before and after every commit of a small
replay (one source transaction per commit), then run the step again as ``runbook resume`` does:
the tables equal an uninterrupted replay's, each transaction once. And the whole PITR runbook —
fence, find, snapshot, restore, replay to the fence — killed mid-replay and finished by
``runbook resume``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from engine.actions.binlog_replay import BinlogReplay
from engine.model import Status
from tests.integration.binlog_helpers import TABLES, Server, checksums, ctx_for, disaster, make_incident
from tests.integration.test_dr_actions import run_step

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]

CHILD = """
import json, sys
sys.path.insert(0, {root!r})
from engine.actions.binlog_replay import BinlogReplay
from tests.integration.binlog_helpers import ctx_for, Server
from tests.integration.test_dr_actions import run_step
class _I: port = {port}
srv = Server.__new__(Server); srv.inst = _I()
ctx = ctx_for(srv); ctx.run_id = {run_id!r}
r = run_step(BinlogReplay, json.loads({args!r}), ctx)
print(json.dumps({{"status": r.status.value, "msg": r.msg}}))
"""


def _child(srv: Server, args: dict[str, Any], run_id: str, fault: str) -> subprocess.CompletedProcess[str]:
    code = CHILD.format(root=str(ROOT), port=srv.port, run_id=run_id, args=json.dumps(args))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "RUNBOOK_FAULT_BINLOG_KILL": fault})


def _groups(srv: Server, run_id: str) -> list[tuple[Any, ...]]:
    try:
        return srv.query("SELECT start_file, start_pos, transactions FROM _runbook.binlog_progress WHERE run_id = %s", [run_id])
    except Exception:  # the table may not exist yet
        return []


def test_kill_at_every_commit_boundary(binlog_server: Server, bschema: str, tmp_path: Path) -> None:
    inc = make_incident(binlog_server, bschema, tmp_path / "dump.sql", before=3, after=3)
    args = {"schema": inc.schema, "tables": TABLES, "from_dump": inc.dump, "skip": [{"gtid": inc.gtid}],
            "stop_before": {"file": inc.end[0], "pos": inc.end[1]}, "batch": 1}
    want = checksums(binlog_server, inc.ref)
    disaster(binlog_server, inc)
    ref_ctx = ctx_for(binlog_server)
    ref = run_step(BinlogReplay, args, ref_ctx)
    assert ref.status is Status.CHANGED, ref.msg
    n = len(_groups(binlog_server, ref_ctx.run_id))
    assert n == ref.data["transactions"] == 7
    for k in range(1, n + 1):
        for when in ("before_commit", "after_commit"):
            disaster(binlog_server, inc)
            run_id = f"t{k}{when[0]}{os.urandom(4).hex()}"
            child = _child(binlog_server, args, run_id, f"{when}:{k}")
            assert child.returncode == -signal.SIGKILL, (when, k, child.stdout, child.stderr[-2000:])
            committed = len(_groups(binlog_server, run_id))
            assert committed == (k if when == "after_commit" else k - 1), (when, k)
            ctx = ctx_for(binlog_server)
            ctx.run_id = run_id
            res = run_step(BinlogReplay, args, ctx)  # what `runbook resume` does with this idempotent step
            assert res.status is Status.CHANGED, (when, k, res.msg)
            assert checksums(binlog_server, inc.schema) == want, (when, k)
            groups = _groups(binlog_server, run_id)
            assert len(groups) == n and sum(int(g[2]) for g in groups) == n
            assert res.data["resumed_transactions"] == committed and res.data["transactions"] == n


RUNBOOK = """
name: PITR drill
targets: db1
vars:
  schema: {schema}
  dump: {dump}
  core: [customers, orders, items]
stages:
  - name: fence
    steps:
      - name: Fence
        stop_writes: {{}}
        register: fence
  - name: find
    steps:
      - name: Find the incident
        binlog_find: {{schema: "{{{{ schema }}}}", tables: "{{{{ core }}}}", from_dump: "{{{{ dump }}}}", rows: 20}}
        register: incident
      - name: One incident
        assert: {{that: ["incident.first.kind == 'delete'", "incident.first.table == 'items'"]}}
  - name: recover
    steps:
      - name: Snapshot
        snapshot: {{schema: "{{{{ schema }}}}", tables: "{{{{ core }}}}"}}
      - name: Restore the backup
        restore: {{file: "{{{{ dump }}}}", schema: "{{{{ schema }}}}", tables: "{{{{ core }}}}", truncate: true}}
        register: restored
      - name: Replay since the backup but the incident
        binlog_replay:
          schema: "{{{{ schema }}}}"
          tables: "{{{{ core }}}}"
          start: "{{{{ restored.binlog_start }}}}"
          skip: ["{{{{ incident.first }}}}"]
          batch: 2
        register: replayed
  - name: reopen
    steps:
      - name: Unfence
        resume_writes: {{}}
"""


def test_pitr_runbook_killed_mid_replay_then_resume(binlog_server: Server, bschema: str, tmp_path: Path) -> None:
    inc = make_incident(binlog_server, bschema, tmp_path / "dump.sql", before=6, after=6)
    want = checksums(binlog_server, inc.ref)
    (tmp_path / "rb.yml").write_text(RUNBOOK.format(schema=inc.schema, dump=inc.dump))
    (tmp_path / "inv.yml").write_text(f"all:\n  hosts:\n    db1:\n      connection: local\n      mysql_host: 127.0.0.1\n"
                                      f"      mysql_port: {binlog_server.port}\n      mysql_user: root\n")
    home = tmp_path / "home"
    env = dict(os.environ, NO_COLOR="1", RUNBOOK_HOME=str(home), PYTHONPATH=str(ROOT))
    try:
        killed = subprocess.run([sys.executable, "-m", "engine.cli", "play", "rb.yml", "-i", "inv.yml", "--yes"], cwd=tmp_path,
                                env={**env, "RUNBOOK_FAULT_BINLOG_KILL": "after_commit:2"}, capture_output=True, text=True,
                                timeout=300)
        assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
        run_id = next(d.name for d in home.iterdir() if d.is_dir())
        assert len(_groups(binlog_server, run_id)) == 2
        resumed = subprocess.run([sys.executable, "-m", "engine.cli", "resume", run_id, "--yes"], cwd=tmp_path, env=env,
                                 capture_output=True, text=True, timeout=300)
        out = resumed.stdout + resumed.stderr
        assert resumed.returncode == 0, out
        assert "Traceback" not in out
    finally:
        binlog_server.execute("SET GLOBAL read_only = OFF")
    assert checksums(binlog_server, inc.schema) == want
    groups = _groups(binlog_server, run_id)
    assert sum(int(g[2]) for g in groups) == inc.before + inc.after + 1  # each transaction once, none of the run's own
