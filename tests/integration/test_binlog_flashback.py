"""binlog_flashback on a private mariadbd: one bad transaction (deletes, updates, an insert)
reverted from its own before images, with later writes kept; refused with every conflict listed
when a row changed since (nothing written), or overwritten when asked; exactly once across a
kill; its undo re-applies the transaction."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from engine.actions.binlog_find import BinlogFind
from engine.actions.binlog_flashback import BinlogFlashback
from engine.model import Status
from tests.integration.binlog_helpers import Server, ctx_for
from tests.integration.test_dr_actions import run_step

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]

SETUP = """CREATE TABLE acct (id INT PRIMARY KEY, v DECIMAL(10,2), note VARCHAR(30) CHARACTER SET utf8mb4, at DATETIME(6));
CREATE TABLE other (id INT PRIMARY KEY, w INT);
INSERT INTO acct SELECT seq, seq * 1.5, CONCAT('row ', seq, ' é'), '2024-01-01 00:00:00.000001' FROM seq_1_to_30;
INSERT INTO other VALUES (1, 1)"""
BAD = ("BEGIN; DELETE FROM acct WHERE id BETWEEN 5 AND 9; UPDATE acct SET v = 0, note = NULL WHERE id IN (10, 11, 12);"
       " INSERT INTO acct VALUES (100, 1, 'bad', NULL); UPDATE other SET w = w + 1; COMMIT")
LATER = "UPDATE acct SET v = v + 1 WHERE id IN (20, 21); INSERT INTO acct VALUES (101, 2, 'later', NULL); UPDATE other SET w = 7"


def _state(srv: Server, schema: str) -> list[tuple[Any, ...]]:
    return srv.query(f"SELECT id, v, note, at FROM `{schema}`.acct ORDER BY id")


def _scenario(srv: Server, schema: str) -> tuple[dict[str, Any], list[tuple[Any, ...]]]:
    srv.execute(SETUP, schema)
    start = srv.position()
    srv.execute(f"CREATE TABLE `{schema}`.acct_ref LIKE `{schema}`.acct; INSERT INTO `{schema}`.acct_ref SELECT * FROM `{schema}`.acct")
    srv.execute(BAD, schema)
    srv.execute(LATER, schema)
    # the same history without the bad transaction, for the comparison
    srv.execute(LATER.replace("acct", "acct_ref").replace("UPDATE other SET w = 7", "DO 0"), schema)
    expected = srv.query(f"SELECT id, v, note, at FROM `{schema}`.acct_ref ORDER BY id")
    found = run_step(BinlogFind, {"schema": schema, "tables": ["acct"], "start": {"file": start[0], "pos": start[1]}, "rows": 5},
                     ctx_for(srv))
    assert found.status is Status.OK and found.data["first"] is not None, found.msg
    return found.data["first"], expected


def test_revert_check_undo(binlog_server: Server, bschema: str) -> None:
    event, expected = _scenario(binlog_server, bschema)
    assert (event["kind"], event["rows"]) == ("delete", 5)
    before = _state(binlog_server, bschema)
    ctx = ctx_for(binlog_server)
    ctx.check_mode = True
    plan = BinlogFlashback({"event": event, "tables": ["acct"]}, ctx).check()
    assert plan.status is Status.CHANGED and plan.data["rows"] == 9 and plan.data["conflicts"] == [], plan.msg
    assert _state(binlog_server, bschema) == before  # check mode wrote nothing
    ctx = ctx_for(binlog_server)
    res = run_step(BinlogFlashback, {"event": event, "tables": ["acct"]}, ctx)
    assert res.status is Status.CHANGED, res.msg
    assert _state(binlog_server, bschema) == expected  # reverted, the later writes kept
    assert binlog_server.query(f"SELECT w FROM `{bschema}`.other") == [(7,)]  # not a listed table: untouched
    again = run_step(BinlogFlashback, {"event": event, "tables": ["acct"]}, ctx)
    assert again.status is Status.OK  # exactly once: the progress row says it is done
    undone = BinlogFlashback({"event": event}, ctx).undo(res.undo)
    assert undone.status is Status.CHANGED, undone.msg
    assert _state(binlog_server, bschema) == before  # the transaction applied again
    assert BinlogFlashback({"event": event}, ctx).undo(res.undo).status is Status.OK  # the undo once too


def test_conflicts_listed_then_overwritten(binlog_server: Server, bschema: str) -> None:
    event, _ = _scenario(binlog_server, bschema)
    binlog_server.execute("UPDATE acct SET note = 'touched since' WHERE id = 11; INSERT INTO acct VALUES (7, 7, 'reborn', NULL);"
                          "DELETE FROM acct WHERE id = 100", bschema)
    before = _state(binlog_server, bschema)
    res = run_step(BinlogFlashback, {"event": event, "tables": ["acct"]}, ctx_for(binlog_server))
    assert res.status is Status.FAILED and "nothing was written" in res.msg
    got = sorted((c["op"], c["state"], c["key"]) for c in res.data["conflicts"])
    assert got == [("delete", "missing", "(id)=(100)"), ("insert", "exists", "(id)=(7)"), ("update", "differs", "(id)=(11)")]
    assert _state(binlog_server, bschema) == before
    res = run_step(BinlogFlashback, {"event": event, "tables": ["acct"], "on_conflict": "overwrite"}, ctx_for(binlog_server))
    assert res.status is Status.CHANGED, res.msg
    rows = {r[0]: r for r in _state(binlog_server, bschema)}
    assert rows[7][2] == "row 7 é" and rows[11][2] == "row 11 é" and 100 not in rows  # the before images won


CHILD = """
import json, sys
sys.path.insert(0, {root!r})
from engine.actions.binlog_flashback import BinlogFlashback
from tests.integration.binlog_helpers import ctx_for, Server
from tests.integration.test_dr_actions import run_step
class _I: port = {port}
srv = Server.__new__(Server); srv.inst = _I()
ctx = ctx_for(srv); ctx.run_id = {run_id!r}
run_step(BinlogFlashback, json.loads({args!r}), ctx)
"""


@pytest.mark.parametrize("when", ["before_commit", "after_commit"])
def test_killed_then_resumed_once(binlog_server: Server, bschema: str, when: str) -> None:
    event, expected = _scenario(binlog_server, bschema)
    args = {"event": event, "tables": ["acct"]}
    run_id = "tf" + os.urandom(5).hex()
    code = CHILD.format(root=str(ROOT), port=binlog_server.port, run_id=run_id, args=json.dumps(args))
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                           env={**os.environ, "RUNBOOK_FAULT_BINLOG_KILL": f"{when}:1"})
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    ctx = ctx_for(binlog_server)
    ctx.run_id = run_id
    action = BinlogFlashback(args, ctx)
    probe = action.probe()
    assert probe.done is (when == "after_commit")
    if when == "after_commit":
        assert action.undo_of_found(probe)["event"]["pos"] == event["pos"]  # the undo is not lost
    else:
        assert run_step(BinlogFlashback, args, ctx).status is Status.CHANGED
    assert _state(binlog_server, bschema) == expected
