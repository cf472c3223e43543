"""binlog_find on a private mariadbd: DDL that drops, empties, renames or alters a listed table,
mass UPDATE/DELETE over ``rows``, ``match`` on the statement text; other tables and small
changes stay quiet; the window ends where this run fenced the host (its own writes are never
the user's history)."""

from __future__ import annotations

from typing import Any

import pytest

from engine.actions.base import MARKS
from engine.actions.binlog_find import BinlogFind
from engine.model import Status
from tests.integration.binlog_helpers import Server, ctx_for
from tests.integration.test_dr_actions import run_step

pytestmark = pytest.mark.integration


def _find(srv: Server, args: dict[str, Any], run_state: dict[str, Any] | None = None) -> dict[str, Any]:
    res = run_step(BinlogFind, args, ctx_for(srv, run_state=run_state))
    assert res.status is Status.OK, res.msg
    return res.data


def test_what_is_flagged(binlog_server: Server, bschema: str) -> None:
    srv = binlog_server
    srv.execute("CREATE TABLE t (id INT PRIMARY KEY, v INT); CREATE TABLE u (id INT PRIMARY KEY); CREATE TABLE quiet (id INT);"
                "INSERT INTO t SELECT seq, seq FROM seq_1_to_50; INSERT INTO u SELECT seq FROM seq_1_to_5", bschema)
    start = srv.position()
    srv.execute("UPDATE t SET v = v + 1 WHERE id <= 3;"  # small: quiet
                "UPDATE t SET v = v + 1;"  # 50 rows
                "INSERT INTO t VALUES (999, 0);"
                "DELETE FROM quiet; ALTER TABLE quiet ADD COLUMN x INT; DROP TABLE quiet;"  # not listed
                "TRUNCATE TABLE u; ALTER TABLE t ADD COLUMN w INT; RENAME TABLE u TO u_old; DROP TABLE u_old", bschema)
    end = srv.position()
    data = _find(srv, {"schema": bschema, "tables": ["t", "u"], "start": {"file": start[0], "pos": start[1]}, "rows": 40,
                       "match": "(?i)insert into t values \\(999", "stop_before": {"file": end[0], "pos": end[1]}})
    got = [(e["kind"], e["table"], e["rows"]) for e in data["events"]]
    # the small UPDATE and everything of `quiet` are not flagged; DROP TABLE u_old is no longer a listed name
    assert got == [("update", "t", 50), ("insert", "t", 1), ("truncate", "u", None), ("alter", "t", None), ("rename", "u", None)]
    first = data["first"]
    assert first["statement"] == "UPDATE t SET v = v + 1" and first["gtid"] and first["end_pos"] > first["pos"]
    assert first["time"].endswith("Z") and data["end"] == {"file": end[0], "pos": end[1], "gtid": None}
    assert data["transactions"] == 9  # every transaction of the window was read (DELETE FROM an empty table logs none)
    only_u = _find(srv, {"schema": bschema, "tables": ["u"], "start": {"file": start[0], "pos": start[1]},
                         "stop_before": {"file": end[0], "pos": end[1]}})
    assert [e["kind"] for e in only_u["events"]] == ["truncate", "rename"]
    assert "TRUNCATE TABLE u" in only_u["events"][0]["statement"]


def test_the_window_ends_at_this_runs_fence(binlog_server: Server, bschema: str) -> None:
    srv = binlog_server
    srv.execute("CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t SELECT seq FROM seq_1_to_30", bschema)
    start = srv.position()
    srv.execute("DELETE FROM t WHERE id > 20", bschema)
    fence = srv.position()
    srv.execute("TRUNCATE TABLE t", bschema)  # the run's own restore, after the fence
    marks = {MARKS: {"fence": {"db1": {"file": fence[0], "pos": fence[1], "gtid": None}}}}
    data = _find(srv, {"schema": bschema, "start": {"file": start[0], "pos": start[1]}, "rows": 5}, run_state=marks)
    assert [e["kind"] for e in data["events"]] == ["delete"] and data["end"]["pos"] == fence[1]
    unfenced = _find(srv, {"schema": bschema, "start": {"file": start[0], "pos": start[1]}, "rows": 5})
    assert [e["kind"] for e in unfenced["events"]] == ["delete", "truncate"]  # up to the binlogs' end at the step's start
