"""The fence's MySQL/Percona path (issue 18 item 3), against a fake MySQL 8.0 (tests/unit/mysql80.py:
its answers are MySQL 8.0's, transcribed; no MySQL server runs here). Never super_read_only:
read_only + lock_accounts + kill sessions, and the engine's account must still write."""

from __future__ import annotations

from typing import Any

import pytest

from engine.actions.resume_writes import ResumeWrites
from engine.actions.stop_writes import StopWrites
from engine.errors import ActionError
from engine.model import Host, Status
from engine.mysql.fence_privileges import parse_grants
from engine.run.context import ActionContext, Connections
from tests.unit.mysql80 import DYNAMIC_ROOT, STATIC_ROOT, UUID, Mysql80


def ctx_on(server: Mysql80, run_state: dict[str, Any] | None = None) -> ActionContext:
    host = Host(name="db1", vars={}, groups=(), connection="local")
    conns = Connections(host)
    conns._sql = server  # type: ignore[assignment]
    return ActionContext(host=host, conns=conns, vars={}, run_id="t1", check_mode=False, step_key="s/fence", source=None,
                         run_state={} if run_state is None else run_state)


def changes(server: Mysql80) -> list[str]:
    return [s for s in server.sent if s.split()[0] in ("SET", "KILL", "ALTER", "STOP", "START") and "sql_log_bin" not in s]


def test_fence_is_read_only_and_kills_never_super_read_only() -> None:
    server = Mysql80()
    ctx = ctx_on(server)
    res = StopWrites({"kill_connections": True, "except_users": ["repl"]}, ctx).apply()
    assert res.status is Status.CHANGED, res.msg
    assert changes(server) == ["SET SESSION lock_wait_timeout = 10", "SET GLOBAL read_only = ON",
                               "KILL CONNECTION 20", "KILL CONNECTION 21", "KILL CONNECTION 22"]
    assert not any("super_read_only" in s for s in changes(server))
    assert server.read_only and not server.super_read_only
    # replication (Binlog Dump GTID, system user) and the event scheduler are not clients
    assert [p.id for p in server.procs] == [5, 7, 11]
    assert res.data["killed"] == ["app@10.0.0.5", "app@10.0.0.6", "root@localhost"]
    # the position is read once the fence has taken effect: after read_only and the kills
    assert server.sent.index("SHOW MASTER STATUS") > server.sent.index("KILL CONNECTION 22")
    assert res.data["binlog"] == {"file": "binlog.000042", "pos": 1187, "gtid": f"{UUID}:1-5031"}
    assert res.data["state"] == {"read_only": True, "super_read_only": False}
    # the engine still writes under the fence (CONNECTION_ADMIN): its probe got 1146, not 1290
    assert any(s.startswith("DELETE FROM `_rb_fence_probe_") for s in server.sent)
    assert res.data["can_still_write"] == ["'root'@'localhost'"]
    undone = StopWrites({}, ctx).undo(res.undo)
    assert undone.status is Status.CHANGED and not server.read_only
    assert changes(server)[-1] == "SET GLOBAL read_only = OFF"


def test_a_gtid_set_wrapped_over_lines_is_registered_whole() -> None:
    server = Mysql80(gtid_executed=f"{UUID}:1-5031,9f2b0c1e-71ca-11e1-9e33-c80aa9429562:1-7")
    res = StopWrites({}, ctx_on(server)).apply()
    assert res.data["binlog"]["gtid"] == f"{UUID}:1-5031,9f2b0c1e-71ca-11e1-9e33-c80aa9429562:1-7"


def test_refuses_before_any_change_without_connection_admin() -> None:
    """SYSTEM_VARIABLES_ADMIN sets read_only, but only CONNECTION_ADMIN (or SUPER) writes under
    it: such an engine account would fence, then fail its own snapshot with 1290."""
    server = Mysql80(static="PROCESS, REPLICATION CLIENT, CREATE USER", dynamic="SYSTEM_VARIABLES_ADMIN")
    with pytest.raises(ActionError) as err:
        StopWrites({}, ctx_on(server)).apply()
    assert "write under read_only" in err.value.message
    assert "GRANT CONNECTION_ADMIN ON *.* TO 'runbook'@'%'" in err.value.message
    assert changes(server) == [] and not server.read_only


def test_refuses_before_any_change_without_process() -> None:
    """Without PROCESS the processlist shows only the engine's own sessions: the fence would
    kill nothing and say it was done."""
    server = Mysql80(static="REPLICATION CLIENT", dynamic="SYSTEM_VARIABLES_ADMIN,CONNECTION_ADMIN")
    StopWrites({}, ctx_on(server)).apply()  # no kill asked: PROCESS is not needed
    assert server.read_only
    server = Mysql80(static="REPLICATION CLIENT", dynamic="SYSTEM_VARIABLES_ADMIN,CONNECTION_ADMIN")
    with pytest.raises(ActionError, match=r"to see every session it needs PROCESS \(GRANT PROCESS ON \*\.\* TO 'runbook'@'%'\)"):
        StopWrites({"kill_connections": True}, ctx_on(server)).apply()
    assert changes(server) == []


def test_super_read_only_already_on_is_diagnosed_and_left_as_it_was() -> None:
    """A MySQL replica with super_read_only=ON: nobody writes, not even the engine. The step
    says so (and how to get out) instead of failing later at the snapshot with a bare 1290."""
    server = Mysql80(read_only=True, super_read_only=True)
    res = StopWrites({}, ctx_on(server)).apply()
    assert res.status is Status.FAILED
    assert "super_read_only is ON" in res.msg and "resume_writes" in res.msg
    assert changes(server) == [] and server.super_read_only  # nothing was touched
    assert res.undo is None  # nothing to undo: it was like this before the run


def test_lock_accounts_on_mysql_user_and_unlock_only_those() -> None:
    server = Mysql80()
    state: dict[str, Any] = {}
    ctx = ctx_on(server, state)
    res = StopWrites({"lock_accounts": ["app", "report", "runbook"]}, ctx).apply()
    assert res.status is Status.CHANGED, res.msg
    # report was locked before the run; runbook is the engine's own account: neither is touched
    assert res.data["locked"] == ["app@%", "app@10.0.0.%"]
    assert changes(server)[:2] == ["ALTER USER 'app'@'%' ACCOUNT LOCK", "ALTER USER 'app'@'10.0.0.%' ACCOUNT LOCK"]
    # This server's lock alone: not binlogged, or it would lock the application out of the replicas.
    lock = server.sent.index("ALTER USER 'app'@'%' ACCOUNT LOCK")
    assert server.sent[lock - 1:lock + 2] == ["SET SESSION sql_log_bin = 0", "ALTER USER 'app'@'%' ACCOUNT LOCK", "SET SESSION sql_log_bin = 1"]
    assert server.sent.index("ALTER USER 'app'@'%' ACCOUNT LOCK") < server.sent.index("SET GLOBAL read_only = ON")
    reopen = ResumeWrites({}, ctx).apply()
    assert reopen.status is Status.CHANGED
    assert server.accounts[("app", "%")] is False and server.accounts[("app", "10.0.0.%")] is False
    assert server.accounts[("report", "%")] is True and not server.read_only
    # the undo of the reopen is the fence again
    ResumeWrites({}, ctx).undo(reopen.undo)
    assert server.accounts[("app", "%")] is True and server.read_only


def test_resume_writes_keeps_a_super_read_only_replica_as_it_was() -> None:
    server = Mysql80(read_only=True, super_read_only=True)
    state: dict[str, Any] = {}
    ctx = ctx_on(server, state)
    StopWrites({"engine_must_write": False}, ctx).apply()
    assert ResumeWrites({}, ctx).probe().done  # the state before the fence is the state now
    assert server.read_only and server.super_read_only


def test_freeze_replica_stops_only_the_sql_thread_and_undo_starts_it() -> None:
    server = Mysql80(read_only=True, replica={
        "Replica_IO_State": "Waiting for source to send event", "Source_Host": "db1", "Source_Port": 3306,
        "Replica_IO_Running": "Yes", "Replica_SQL_Running": "Yes", "Relay_Source_Log_File": "binlog.000042",
        "Exec_Source_Log_Pos": 900, "SQL_Delay": 3600, "Executed_Gtid_Set": f"{UUID}:1-4000"})
    ctx = ctx_on(server)
    res = StopWrites({"freeze_replica": True}, ctx).apply()
    assert res.status is Status.CHANGED, res.msg
    assert "STOP REPLICA SQL_THREAD" in changes(server)
    assert server.replica is not None and server.replica["Replica_SQL_Running"] == "No"
    assert server.replica["Replica_IO_Running"] == "Yes"  # still receiving the primary's binlog
    assert res.data["replica"]["executed"] == {"file": "binlog.000042", "pos": 900, "gtid": f"{UUID}:1-4000"}
    assert res.data["replica"]["delay"] == 3600
    StopWrites({}, ctx).undo(res.undo)
    assert server.replica["Replica_SQL_Running"] == "Yes" and server.read_only  # read-only before: stays


def test_parse_mysql80_grants() -> None:
    g = parse_grants([f"GRANT {STATIC_ROOT} ON *.* TO `root`@`localhost` WITH GRANT OPTION",
                      f"GRANT {DYNAMIC_ROOT} ON *.* TO `root`@`localhost` WITH GRANT OPTION",
                      "GRANT PROXY ON ``@`` TO `root`@`localhost` WITH GRANT OPTION"])
    assert {"SUPER", "CONNECTION_ADMIN", "SYSTEM_VARIABLES_ADMIN", "PROCESS", "CREATE USER"} <= g.privileges
    assert not g.has_roles and not g.all_privileges
    roles = parse_grants(["GRANT USAGE ON *.* TO `runbook`@`%`", "GRANT `dba_role`@`%` TO `runbook`@`%`"])
    assert roles.has_roles and roles.privileges == {"USAGE"}
    maria = parse_grants(["GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION"])
    assert maria.all_privileges
