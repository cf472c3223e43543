"""The ``replication`` action on the lab's real replicas (MariaDB, GTID), through `runbook play`:
every state twice (the second run changes nothing), check mode, `runbook rollback` back to the
previous topology, and the refusals that keep data safe."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cliutil import cli as _cli
from tests.cliutil import out_of, run_id_of
from tests.integration.lab_topology import Topology

pytestmark = [pytest.mark.integration]

STATES = """name: replication states
targets: db3
stages:
  - name: s
    steps:
      - {name: stop sql, replication: {state: stopped, threads: sql}}
      - {name: stop sql again, replication: {state: stopped, threads: sql}}
      - {name: caught up with db1, replication: {state: caught_up, source: db1, timeout: 30s}}
      - {name: follow db2, replication: {state: following, source: db2}}
      - {name: follow db2 again, replication: {state: following, source: db2}}
      - {name: look, replication: {state: status}, register: look}
  - name: primary
    targets: db1
    steps:
      - {name: look at the primary, replication: {state: status}, register: prim}
"""


def play(topo: Topology, tmp: Path, text: str, *extra: str):  # type: ignore[no-untyped-def]
    (tmp / "rb.yml").write_text(text)
    return _cli("play", "rb.yml", "-i", str(topo.inventory), "--report", "r.json", *extra, cwd=tmp, home=topo.home, timeout=120)


def steps(tmp: Path) -> dict[str, dict]:  # type: ignore[type-arg]
    return {s["step"]: s for s in json.loads((tmp / "r.json").read_text())["steps"]}


def test_every_state_twice_check_mode_and_rollback(topo: Topology, tmp_path: Path) -> None:
    topo.reset()
    topo.sql("db1", "CREATE DATABASE r", "CREATE TABLE r.t (id INT PRIMARY KEY, v VARCHAR(10))",
             "INSERT INTO r.t VALUES (1, 'a'), (2, 'b')")
    topo.wait_applied("db3", topo.gtid("db1"))
    # Check mode: the plan, nothing changed.
    res = play(topo, tmp_path, STATES, "--check")
    out = out_of(res)
    assert res.returncode == 0, out
    assert "would stop SQL thread" in out and "would CHANGE MASTER TO db2" in out
    assert topo.slave_status("db3")["Slave_SQL_Running"] == "Yes"  # type: ignore[index]

    # db3's SQL thread stops; db1 writes; caught_up with db1 starts it again and waits.
    res = play(topo, tmp_path, STATES.replace("      - {name: caught up", "      - {name: write, sql: \"SELECT 1\"}\n      - {name: caught up"))
    out = out_of(res)
    assert res.returncode == 0, out
    s = steps(tmp_path)
    assert [s[n]["status"] for n in ("stop sql", "stop sql again", "follow db2", "follow db2 again")] == ["changed", "ok", "changed", "ok"]
    look = s["look"]["registered"]
    assert (look["role"], look["source"], look["io_running"], look["sql_running"], look["read_only"]) == ("replica", "db2", "Yes", "Yes", True)
    assert look["gtid"] == topo.gtid("db1") and look["seconds_behind"] == 0 and look["last_error"] is None
    prim = s["look at the primary"]["registered"]
    # As db1 registers them: db3, which just left, may be listed until its dump thread ends.
    assert prim["role"] == "primary" and prim["source"] is None and "db2" in {r["host"] for r in prim["replicas"]}
    assert topo.slave_status("db3")["Master_Port"] == topo.ports["db2"]  # type: ignore[index]

    # rollback: db3 follows db1 again, its SQL thread as it was (running).
    rb = _cli("rollback", run_id_of(res), "--yes", cwd=tmp_path, home=topo.home, timeout=120)
    assert rb.returncode == 0, out_of(rb)
    st = topo.slave_status("db3")
    assert st is not None and st["Master_Port"] == topo.ports["db1"] and st["Slave_SQL_Running"] == "Yes" and st["Slave_IO_Running"] == "Yes"
    topo.sql("db1", "INSERT INTO r.t VALUES (3, 'c')")
    topo.wait_applied("db3", topo.gtid("db1"))


CAUGHT_UP = """name: wait
targets: db3
stages:
  - name: s
    steps:
      - {name: caught up, replication: {state: caught_up, source: db1, timeout: 30s}, register: c}
"""


def test_caught_up_starts_a_stopped_replica_and_rollback_stops_it_again(topo: Topology, tmp_path: Path) -> None:
    topo.reset()
    topo.sql("db3", "STOP SLAVE")
    topo.sql("db1", "CREATE DATABASE w", "CREATE TABLE w.t (id INT PRIMARY KEY)", "INSERT INTO w.t VALUES (1), (2), (3)")
    res = play(topo, tmp_path, CAUGHT_UP)
    out = out_of(res)
    assert res.returncode == 0 and "caught up with db1: applied 3 transaction(s)" in out, out
    assert topo.one("db3", "SELECT COUNT(*) FROM w.t") == 3
    assert _cli("rollback", run_id_of(res), "--yes", cwd=tmp_path, home=topo.home, timeout=120).returncode == 0
    st = topo.slave_status("db3")
    assert st is not None and (st["Slave_IO_Running"], st["Slave_SQL_Running"]) == ("No", "No")


PROMOTE = """name: promote
targets: db3
stages:
  - name: s
    steps:
      - {name: promote, replication: {state: promoted}, register: p}
"""
FOLLOW_DB1 = """name: back
targets: db3
stages:
  - name: s
    steps:
      - {name: follow db1, replication: {state: following, source: db1}}
"""


def test_promotion_refuses_unapplied_transactions_and_following_refuses_divergence(topo: Topology, tmp_path: Path) -> None:
    topo.reset()
    topo.sql("db3", "STOP SLAVE SQL_THREAD")
    topo.sql("db1", "CREATE DATABASE p", "CREATE TABLE p.t (id INT PRIMARY KEY)", "INSERT INTO p.t VALUES (1)")
    topo.wait_received("db3", topo.gtid("db1"))
    res = play(topo, tmp_path, PROMOTE)
    out = out_of(res)
    assert res.returncode == 1 and "has received 3 transaction(s) it has not applied yet" in out and "promoting now would lose them" in out, out
    assert topo.one("db3", "SELECT @@read_only") == 1 and topo.slave_status("db3") is not None  # nothing changed
    topo.sql("db3", "START SLAVE SQL_THREAD")
    topo.wait_applied("db3", topo.gtid("db1"))
    res = play(topo, tmp_path, PROMOTE)
    out = out_of(res)
    assert res.returncode == 0 and "promoted: a primary, writable" in out, out
    assert topo.one("db3", "SELECT @@read_only") == 0 and topo.slave_status("db3") is None
    assert play(topo, tmp_path, PROMOTE).returncode == 0 and steps(tmp_path)["promote"]["status"] == "ok"
    # db3 takes a write of its own: it can no longer follow db1 (GitHub 2018: never across diverged GTIDs).
    topo.sql("db3", "INSERT INTO p.t VALUES (99)")
    res = play(topo, tmp_path, FOLLOW_DB1)
    out = out_of(res)
    assert res.returncode == 1 and "db3 has transactions db1 lacks (0-3-" in out and "it would diverge" in out, out
    assert topo.slave_status("db3") is None and topo.one("db3", "SELECT @@read_only") == 0
