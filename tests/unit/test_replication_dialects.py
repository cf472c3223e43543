"""The ``replication`` action against recorded server answers: MySQL 8.4 and 8.0.20 (transcribed
from the reference manual: MySQL does not run here) and MariaDB 10.11 (recorded from the lab).
The MySQL path — SHOW REPLICA STATUS, CHANGE REPLICATION SOURCE TO … SOURCE_AUTO_POSITION = 1,
START/STOP REPLICA, RESET REPLICA ALL, super_read_only — is proved statement by statement."""

from __future__ import annotations

from typing import Any

import pytest

from engine.actions.replication import Replication
from engine.errors import ActionError
from engine.model import Status
from engine.mysql.gtid import MysqlGtidSet
from engine.mysql.replication import Dialect, read_link, read_state
from tests.unit.replication_fake import FakeServer, context, recorded

MYSQL = recorded("mysql.json")
MARIA = recorded("mariadb-10.11.json")
U1 = "73f86016-978b-11ee-ade5-8d2a2a562feb"
U2 = "8a94f357-aab4-11df-86ab-c80aa9429562"


def mysql84(**changes: Any) -> FakeServer:
    row = dict(MYSQL["mysql-8.4"]["show_replica_status"])
    row.update(changes.pop("row", {}))
    return FakeServer(dict(MYSQL["mysql-8.4"]["variables"], **changes), row)


def mysql84_source(gtids: str) -> FakeServer:
    return FakeServer(dict(MYSQL["mysql-8.4"]["variables"], server_id="3", read_only="OFF", super_read_only="OFF",
                           gtid_executed=gtids), None)


def run(action: Replication) -> Any:
    """As the executor does: probe; done → nothing; else apply, then the probe must be done."""
    before = action.probe()
    if before is not None and before.done:
        return None
    res = action.apply()
    if not res.failed:
        after = Replication(action.args, action.ctx).probe()
        assert after is None or after.done, after
    return res


def changes(srv: FakeServer) -> list[str]:
    return [s for s, _ in srv.statements if not s.upper().startswith(("SHOW", "SELECT"))]


def test_statements_per_flavor_and_version() -> None:
    m84, m8020, m57, maria = (Dialect("mysql", (8, 4, 3)), Dialect("mysql", (8, 0, 20)), Dialect("mysql", (5, 7, 44)),
                              Dialect("mariadb", (10, 11, 19)))
    assert m84.change_source("h", 1, "u", True) == ("CHANGE REPLICATION SOURCE TO SOURCE_HOST = %s, SOURCE_PORT = %s, SOURCE_USER = %s, "
                                                     "SOURCE_PASSWORD = %s, SOURCE_AUTO_POSITION = 1, GET_SOURCE_PUBLIC_KEY = 1")
    assert m8020.change_source("h", 1, "u", True) == ("CHANGE MASTER TO MASTER_HOST = %s, MASTER_PORT = %s, MASTER_USER = %s, "
                                                       "MASTER_PASSWORD = %s, MASTER_AUTO_POSITION = 1, GET_MASTER_PUBLIC_KEY = 1")
    assert m57.change_source("h", 1, None, False) == "CHANGE MASTER TO MASTER_HOST = %s, MASTER_PORT = %s, MASTER_AUTO_POSITION = 1"
    assert maria.change_source("h", 1, "u", True) == ("CHANGE MASTER TO MASTER_HOST = %s, MASTER_PORT = %s, MASTER_USER = %s, "
                                                       "MASTER_PASSWORD = %s, MASTER_USE_GTID = slave_pos")
    assert maria.change_source("h", 1, None, False, gtid=False, log_pos=4) == (
        "CHANGE MASTER TO MASTER_HOST = %s, MASTER_PORT = %s, MASTER_USE_GTID = no, MASTER_LOG_FILE = %s, MASTER_LOG_POS = 4")
    assert (m84.show_status(), m84.threads("STOP", "sql"), m84.reset_all(), m84.show_replicas()) == (
        "SHOW REPLICA STATUS", "STOP REPLICA SQL_THREAD", "RESET REPLICA ALL", "SHOW REPLICAS")
    assert (m8020.show_status(), m8020.threads("START"), m8020.reset_all()) == ("SHOW SLAVE STATUS", "START SLAVE", "RESET SLAVE ALL")
    assert (maria.show_status(), maria.threads("START", "io")) == ("SHOW SLAVE STATUS", "START SLAVE IO_THREAD")


@pytest.mark.parametrize("version", ["mysql-8.4", "mysql-8.0.20"])
def test_mysql_replica_status_from_recorded_answers(version: str) -> None:
    rec = MYSQL[version]
    srv = FakeServer(rec["variables"], rec.get("show_replica_status") or rec["show_slave_status"])
    st = read_state(srv)
    assert st.flavor == "mysql" and st.role == "replica" and st.read_only
    assert st.link is not None and (st.link.io_running, st.link.sql_running, st.link.seconds_behind) == ("Yes", "Yes", 0)
    assert (st.link.source_host, st.link.source_port, st.link.uses_gtid) == ("127.0.0.1", 13000, True)
    assert st.link.exec_log.file == "master-bin.000001" and st.link.exec_log.pos == 927
    assert st.link.applied == f"{U1}:1-3"  # Executed_Gtid_Set
    assert isinstance(st.gtids(), MysqlGtidSet) and str(st.gtids()) == f"{U1}:1-3" and st.unapplied() == 0
    assert st.log_replica_updates


def test_mariadb_replica_whose_source_died_recorded_from_the_lab() -> None:
    rec = MARIA["replica_source_down"]
    st = read_state(FakeServer(rec["variables"], rec["show_slave_status"][0]))
    assert st.flavor == "mariadb" and st.link is not None
    assert st.link.io_running == "Connecting" and st.link.io and st.link.sql and st.link.seconds_behind is None
    assert st.link.io_error is not None and st.link.io_error.startswith("IO thread error 2003: error reconnecting to master")
    assert st.link.gtid_mode == "Slave_Pos" and st.link.uses_gtid and st.link.received == "0-1-5"
    assert st.executed == "0-1-5" and st.unapplied() == 0
    # What it has applied (a frozen replica's copy): MariaDB's SHOW SLAVE STATUS has no applied
    # GTIDs, @@gtid_slave_pos says; the same from the link alone (stop_writes' freeze_replica).
    assert st.link.applied == rec["variables"]["gtid_slave_pos"] == "0-1-5"
    link = read_link(FakeServer(rec["variables"], rec["show_slave_status"][0]))
    assert link is not None and link.applied_position() == st.link.applied_position()
    assert link.applied_position().to_dict() == {"file": st.link.exec_log.file, "pos": st.link.exec_log.pos, "gtid": "0-1-5"}
    primary = MARIA["primary"]
    assert read_state(FakeServer(primary["variables"], None)).role == "primary"


def test_following_a_new_source_on_mysql_84_then_undo() -> None:
    replica = mysql84(row={"Source_User": "repl"})
    db2 = mysql84_source(f"{U1}:1-9")
    hosts = {"db3": (replica, {"replication_user": "repl", "replication_password": "s3cret"}),
             "db2": (db2, {"replication_host": "10.0.0.6", "mysql_port": 3306})}
    ctx = context(hosts, "db3")
    res = run(Replication({"state": "following", "source": "db2"}, ctx))
    assert res.status is Status.CHANGED and "following db2 (10.0.0.6:3306" in res.msg, res.msg
    assert changes(replica) == ["STOP REPLICA",
                                "CHANGE REPLICATION SOURCE TO SOURCE_HOST = %s, SOURCE_PORT = %s, SOURCE_USER = %s, "
                                "SOURCE_PASSWORD = %s, SOURCE_AUTO_POSITION = 1, GET_SOURCE_PUBLIC_KEY = 1",
                                "START REPLICA"]
    change = next(p for s, p in replica.statements if s.startswith("CHANGE"))
    assert change == ["10.0.0.6", 3306, "repl", "s3cret"]
    assert res.undo["link"] == {"host": "127.0.0.1", "port": 13000, "user": "repl", "gtid": True,
                                "file": "master-bin.000001", "pos": 927}
    assert "s3cret" not in repr(res.undo) and res.data["source"] == "db2"
    # Again: nothing to do.
    assert run(Replication({"state": "following", "source": "db2"}, context(hosts, "db3"))) is None
    # Undo: back to the recorded source, same account (no password needed), threads on.
    replica.statements.clear()
    undo = Replication(None, context(hosts, "db3")).undo(res.undo)
    assert undo.status is Status.CHANGED
    assert changes(replica) == ["STOP REPLICA", "CHANGE REPLICATION SOURCE TO SOURCE_HOST = %s, SOURCE_PORT = %s, "
                                "SOURCE_AUTO_POSITION = 1", "START REPLICA IO_THREAD", "START REPLICA SQL_THREAD"]
    assert read_state(replica).link.source_port == 13000  # type: ignore[union-attr]


def test_following_on_mysql_8020_uses_the_old_spelling() -> None:
    rec = MYSQL["mysql-8.0.20"]
    replica = FakeServer(rec["variables"], rec["show_slave_status"])
    db2 = FakeServer(dict(rec["variables"], server_id="3", gtid_executed=f"{U1}:1-4"), None)
    hosts = {"db3": (replica, {"replication_user": "repl", "replication_password": "pw"}), "db2": (db2, {"mysql_host": "10.0.0.6"})}
    run(Replication({"state": "following", "source": "db2"}, context(hosts, "db3")))
    assert changes(replica) == ["STOP SLAVE", "CHANGE MASTER TO MASTER_HOST = %s, MASTER_PORT = %s, MASTER_USER = %s, "
                                "MASTER_PASSWORD = %s, MASTER_AUTO_POSITION = 1, GET_MASTER_PUBLIC_KEY = 1", "START SLAVE"]


def test_following_is_refused_across_diverged_gtid_sets() -> None:
    replica = mysql84(gtid_executed=f"{U1}:1-3,{U2}:1-2")  # two transactions written on the replica itself
    db2 = mysql84_source(f"{U1}:1-9")
    hosts = {"db3": (replica, {"replication_user": "repl", "replication_password": "pw"}), "db2": (db2, {"mysql_host": "10.0.0.6"})}
    with pytest.raises(ActionError, match=f"db3 has transactions db2 lacks \\({U2}:1-2 \\(2 transactions\\)\\)"):
        Replication({"state": "following", "source": "db2"}, context(hosts, "db3")).apply()
    assert changes(replica) == []


def test_promoting_a_mysql_replica() -> None:
    replica = mysql84()
    ctx = context({"db2": (replica, {})}, "db2")
    res = run(Replication({"state": "promoted"}, ctx))
    assert res.status is Status.CHANGED and res.undo is None
    assert changes(replica) == ["STOP REPLICA", "RESET REPLICA ALL", "SET GLOBAL super_read_only = OFF", "SET GLOBAL read_only = OFF"]
    st = read_state(replica)
    assert st.role == "primary" and not st.read_only and st.super_read_only is False


def test_promotion_with_unapplied_transactions_is_refused() -> None:
    replica = mysql84(row={"Retrieved_Gtid_Set": f"{U1}:1-5", "Replica_SQL_Running": "No"})
    with pytest.raises(ActionError, match=f"received 2 transaction\\(s\\) it has not applied yet \\({U1}:4-5"):
        Replication({"state": "promoted"}, context({"db2": (replica, {})}, "db2")).apply()
    assert changes(replica) == []


def test_stopped_then_started_on_mysql() -> None:
    replica = mysql84()
    ctx = context({"db2": (replica, {})}, "db2")
    res = run(Replication({"state": "stopped", "threads": "sql"}, ctx))
    assert changes(replica) == ["STOP REPLICA SQL_THREAD"] and res.undo["threads"] == {"io": True, "sql": True}
    assert run(Replication({"state": "stopped", "threads": "sql"}, context({"db2": (replica, {})}, "db2"))) is None
    replica.statements.clear()
    run(Replication({"state": "started"}, context({"db2": (replica, {})}, "db2")))
    assert changes(replica) == ["START REPLICA SQL_THREAD"]


def test_arguments_are_checked_before_the_run() -> None:
    assert Replication.static_problems({"state": "following"}) == [
        ("source", "state: following needs source: (the inventory host to replicate from)")]
    assert Replication.static_problems({"state": "promoted", "source": "db1"}) == [
        ("source", "source is not an option of state: promoted (it takes discard_unapplied)")]
    assert Replication.static_problems({"state": "caught_up", "timeout": "soon"})[0][0] == "timeout"
