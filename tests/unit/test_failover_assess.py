"""Which replica a failover promotes (engine/mysql/failover.py): the most advanced by what it has
received, ties by failover_priority, never one that cannot serve as a primary."""

from __future__ import annotations

from typing import Any

from engine.mysql.failover import Candidate, assess
from engine.mysql.replication import ReplicationState, read_state
from tests.unit.replication_fake import FakeServer, recorded

MARIA = recorded("mariadb-10.11.json")["replica_source_down"]


def replica(executed: str, received: str | None = None, **row: Any) -> ReplicationState:
    variables = dict(MARIA["variables"], gtid_slave_pos=executed, gtid_binlog_pos=executed)
    variables.update({k: v for k, v in row.items() if k in ("log_bin", "log_slave_updates")})
    status = dict(MARIA["show_slave_status"][0], Gtid_IO_Pos=received or executed)
    status.update({k: v for k, v in row.items() if k not in ("log_bin", "log_slave_updates")})
    return read_state(FakeServer(variables, status))


def test_the_most_advanced_by_what_it_received_wins() -> None:
    # db3 has applied less than db2 but its relay log holds more: it will apply it before promotion.
    res = assess([Candidate("db2", replica("0-1-50")), Candidate("db3", replica("0-1-40", received="0-1-55"))])
    assert res.chosen == "db3" and [c.host for c in res.candidates] == ["db3", "db2"]
    d = res.to_dict()
    assert d["candidates"][1]["lacks"] == 5 and d["candidates"][1]["lacks_gtids"] == "0-1-51..0-1-55 (5 transactions)"
    assert d["candidates"][0]["unapplied"] == 15 and d["others"] == ["db2"]


def test_a_tie_goes_to_failover_priority_then_to_inventory_order() -> None:
    tie = [Candidate("db2", replica("0-1-50")), Candidate("db3", replica("0-1-50"), priority=10), Candidate("db4", replica("0-1-50"))]
    assert assess(tie).chosen == "db3"
    assert assess([Candidate("db2", replica("0-1-50")), Candidate("db4", replica("0-1-50"))]).chosen == "db2"


def test_candidates_that_cannot_be_a_primary_are_never_chosen() -> None:
    res = assess([Candidate("db2", None, error="Can't connect"),
                  Candidate("db3", replica("0-1-90", log_bin="OFF")),
                  Candidate("db4", replica("0-1-80", Last_SQL_Errno=1062, Last_SQL_Error="Duplicate entry '1'")),
                  Candidate("db5", replica("0-1-60"))])
    assert res.chosen == "db5"
    why = {c.host: c.to_dict()["why"] for c in res.candidates}
    assert "does not answer (Can't connect)" in why["db2"]
    assert "writes no binary log" in why["db3"] and "SQL thread stopped on an error" in why["db4"]
    assert any("db3 is not eligible" in w for w in res.warnings)
    assert assess([Candidate("db2", None)]).chosen is None


def test_incomparable_positions_are_said() -> None:
    res = assess([Candidate("db2", replica("0-1-50,1-4-7")), Candidate("db3", replica("0-1-52,1-4-5"))])
    assert res.chosen == "db2"  # lacks 2 (0-1-51..52) against db3's 2 (1-4-6..7): the tie goes to inventory order
    assert "lacks 0-1-51..0-1-52 (2 transactions)" in res.warnings[0]
