"""runbooks/failover.yml on the lab (issue 17): db3 lags, then db2 stops receiving, the primary
commits rows only it has; then the failover — db2 is promoted with every committed row, db3
follows it, a new write on db2 reaches db3."""

from __future__ import annotations

import json
import os
import re
import signal
from pathlib import Path
from typing import Any

import pymysql
import pytest

from tests.cliutil import cli as _cli
from tests.cliutil import out_of, run_id_of
from tests.integration.lab_topology import Topology

pytestmark = [pytest.mark.integration]
ROOT = Path(__file__).resolve().parents[2]
FAILOVER = str(ROOT / "runbooks" / "failover.yml")
TABLES = ("shop.orders", "shop.items")


def scenario(topo: Topology) -> dict[str, Any]:
    """The issue's story. Returns what db1 had committed (per table: count, checksum) and its GTID."""
    topo.reset()
    topo.sql("db1", "CREATE DATABASE shop",
             "CREATE TABLE shop.orders (id INT PRIMARY KEY, v VARCHAR(40) NOT NULL)",
             "CREATE TABLE shop.items (id INT PRIMARY KEY, v VARCHAR(40) NOT NULL)",
             "INSERT INTO shop.orders SELECT seq, CONCAT('a', seq) FROM shop.seq_1_to_100",
             "INSERT INTO shop.items SELECT seq, CONCAT('a', seq) FROM shop.seq_1_to_300")
    a = topo.gtid("db1")
    topo.wait_applied("db2", a)
    topo.wait_applied("db3", a)
    topo.sql("db3", "STOP SLAVE")  # db3 lags
    for i in range(101, 111):  # B: ten transactions db2 gets, db3 does not
        topo.sql("db1", f"INSERT INTO shop.orders VALUES ({i}, 'b{i}')")
    topo.sql("db1", "UPDATE shop.items SET v = 'b' WHERE id <= 50")
    topo.wait_applied("db2", topo.gtid("db1"))
    topo.sql("db2", "STOP SLAVE IO_THREAD")  # db2 stops receiving
    for i in range(111, 121):  # C: only the primary has them
        topo.sql("db1", f"INSERT INTO shop.orders VALUES ({i}, 'c{i}')")
    topo.sql("db1", "UPDATE shop.orders SET v = 'c-updated' WHERE id = 5", "DELETE FROM shop.orders WHERE id = 6",
             "DELETE FROM shop.items WHERE id > 290")
    return {"sums": {t: topo.checksum("db1", t) for t in TABLES}, "gtid": topo.gtid("db1"), "b_end": topo.gtid("db2")}


def kill_primary(topo: Topology) -> None:
    pid = int((topo.lab.dir / "db1" / "mysqld.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    for srv in topo.lab.servers().values():
        if srv.dir.name == "db1":
            srv.kill()  # waits until it is gone


def failover(topo: Topology, tmp: Path, *extra: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    args = ["play", FAILOVER, "-i", str(topo.inventory), "-e", "old_primary=db1", "-e", "candidates=replicas",
            "-e", "schema=shop", "--yes", "--report", str(tmp / "failover.json"), *extra]
    if env:
        import subprocess
        import sys

        from tests.cliutil import cli_env

        return subprocess.run([sys.executable, "-m", "engine.cli", *args], cwd=tmp, env={**cli_env(topo.home), **env},
                              capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    return _cli(*args, cwd=tmp, home=topo.home, timeout=300)


def assert_failed_over(topo: Topology, committed: dict[str, Any]) -> None:
    """db2 primary and writable with every committed row; db3 read-only, following db2; a new
    write on db2 reaches db3."""
    assert topo.slave_status("db2") is None and topo.one("db2", "SELECT @@read_only") == 0
    st = topo.slave_status("db3")
    assert st is not None and st["Master_Port"] == topo.ports["db2"] and st["Slave_IO_Running"] == "Yes"
    assert topo.one("db3", "SELECT @@read_only") == 1
    for t in TABLES:
        assert topo.checksum("db2", t) == committed["sums"][t], t
    topo.sql("db2", "INSERT INTO shop.orders VALUES (1000, 'after the failover')")
    topo.wait_applied("db3", topo.gtid("db2"))
    assert topo.one("db3", "SELECT v FROM shop.orders WHERE id = 1000") == "after the failover"
    for t in TABLES:
        assert topo.checksum("db3", t) == topo.checksum("db2", t), t


def test_failover_from_a_primary_that_still_answers(topo: Topology, tmp_path: Path) -> None:
    """The old primary cannot be trusted but answers: it is fenced first, and db2 gets what it
    lacks through replication."""
    committed = scenario(topo)
    topo.sql("db1", "CREATE USER app@'127.0.0.1' IDENTIFIED BY 'app'", "GRANT SELECT, INSERT ON shop.* TO app@'127.0.0.1'")
    committed["gtid"] = topo.gtid("db1")
    app = pymysql.connect(host="127.0.0.1", port=topo.ports["db1"], user="app", password="app", autocommit=True, ssl_disabled=True)
    res = failover(topo, tmp_path)
    out = out_of(res)
    assert res.returncode == 0, out
    assert "promote db2;" in out and "old primary db1 ANSWERS (it will be fenced)" in out
    assert "Fence the old primary" in out and "caught up with db1: applied 15 transaction(s)" in out, out
    assert_failed_over(topo, committed)
    # db1: fenced (read_only, the application's account locked, its session killed), and not
    # made a replica of db2.
    assert topo.one("db1", "SELECT @@read_only") == 1 and topo.slave_status("db1") is None
    assert "ACCOUNT LOCK" in topo.one("db1", "SHOW CREATE USER app@'127.0.0.1'")
    # The lock is db1's alone (not binlogged): the application may write on the new primary.
    assert "ACCOUNT LOCK" not in topo.one("db2", "SHOW CREATE USER app@'127.0.0.1'")
    with pytest.raises(pymysql.err.OperationalError), app.cursor() as cur:
        cur.execute("INSERT INTO shop.orders VALUES (5000, 'late')")
    app.close()



def test_failover_after_kill_9_of_the_primary_recovers_its_rows_from_its_binlog_files(topo: Topology, tmp_path: Path) -> None:
    """Issue 17's test: the rows only db1 committed come from its binlog files, with their GTIDs."""
    committed = scenario(topo)
    kill_primary(topo)
    # --check: the plan, nothing changed.
    res = failover(topo, tmp_path, "--check")
    out = out_of(res)
    assert res.returncode == 0, out
    assert "check mode: would apply 13 transaction(s) only db1 has, from its binlog files" in out
    assert "would CHANGE MASTER TO db2" in out and topo.gtid("db2") == committed["b_end"]
    res = failover(topo, tmp_path)
    out = out_of(res)
    assert res.returncode == 0, out
    assert "old primary db1 does not answer" in out and "promote db2;" in out
    assert "applied 13 transaction(s) only db1 had (0-1-" in out and "from its binlog files, with their GTIDs" in out
    # Their original GTIDs: db2 stands exactly where db1 stopped (db1 may rejoin without a clash).
    assert topo.gtid("db2") == committed["gtid"]
    assert_failed_over(topo, committed)
    caught = next(s for s in json.loads((tmp_path / "failover.json").read_text())["steps"]
                  if s["step"] == "Everything the old primary committed, from its binlog files")["registered"]
    assert caught["applied"] == 13 and caught["lost"] is None and caught["gtids"][1] == committed["gtid"]


def test_failover_when_the_old_primarys_binlogs_cannot_be_read_names_what_is_lost(topo: Topology, tmp_path: Path) -> None:
    committed = scenario(topo)
    kill_primary(topo)
    binlogs = topo.lab.dir / "db1" / "binlogs"
    binlogs.rename(binlogs.with_name("binlogs.lost"))  # the old primary's disk is gone
    try:
        res = failover(topo, tmp_path)
    finally:
        binlogs.with_name("binlogs.lost").rename(binlogs)
    out = out_of(res)
    assert res.returncode == 0, out
    b_end = committed["b_end"]  # the last transaction db2 has
    first_lost = f"0-1-{int(b_end.rsplit('-', 1)[1]) + 1}"
    assert f"LOST: what db1 committed after {b_end} (that one committed 20" in out
    assert f"from {first_lost} on, until it stopped (found not answering at 20" in out
    assert "db1's binlog files cannot be read: cannot list" in out
    # Said again in the promotion's confirmation and in the report's last line.
    assert "confirmed by --yes: Promote db2 to primary" in out and out.count(f"from {first_lost} on") >= 3
    report = json.loads((tmp_path / "failover.json").read_text())
    lost = next(s for s in report["steps"] if s["step"] == "Everything the old primary committed, from its binlog files")
    assert lost["registered"]["lost"]["first_lost"] == [first_lost] and lost["registered"]["lost"]["after_gtid"] == b_end
    assert lost["registered"]["lost"]["after_time"] and lost["registered"]["lost"]["source_down_at"]
    # The promotion went on without them: db2 has A and B, not C; db3 follows it.
    assert topo.slave_status("db2") is None and topo.one("db2", "SELECT @@read_only") == 0
    assert topo.one("db2", "SELECT COUNT(*) FROM shop.orders WHERE id > 110") == 0
    assert topo.slave_status("db3")["Master_Port"] == topo.ports["db2"]  # type: ignore[index]



def test_a_statement_in_the_old_primarys_last_writes_stops_the_failover_before_promotion(topo: Topology, tmp_path: Path) -> None:
    """Nothing a binlog says is executed: DDL among the transactions only db1 has is refused by
    name, nothing is applied, nobody is promoted (the operator applies it, then resumes)."""
    committed = scenario(topo)
    topo.sql("db1", "ALTER TABLE shop.items ADD COLUMN note VARCHAR(10) NULL", "UPDATE shop.items SET note = 'x' WHERE id = 1")
    kill_primary(topo)
    res = failover(topo, tmp_path)
    out = out_of(res)
    assert res.returncode == 1, out
    assert "catching up from db1's binlog files is refused, nothing was applied" in out
    assert "is a statement, not row events (ALTER TABLE shop.items ADD COLUMN note VARCHAR(10) NULL)" in out
    assert topo.gtid("db2") == committed["b_end"] and topo.one("db2", "SELECT @@read_only") == 1
    assert "STAGE [promote]" not in out


def resume_until_done(topo: Topology, tmp: Path, run_id: str) -> str:
    transcript = ""
    for _ in range(3):
        res = _cli("resume", run_id, "--yes", cwd=tmp, home=topo.home, timeout=300)
        transcript += out_of(res)
        if res.returncode == 0:
            return transcript
    pytest.fail(f"resume did not finish:\n{transcript}")


def effect_records(topo: Topology, run_id: str) -> list[int]:
    """Journal records right before or around a change: the intents and write-ahead notes of
    the steps that change something (the catch-up, the promotion, the repointing)."""
    changing = ("from its binlog files", "Promote the new primary", "Follow the new primary", "Catch up with the new primary")
    out = []
    for line in (topo.home / run_id / "journal.jsonl").read_text().splitlines():
        e = json.loads(line)
        if any(c in str(e.get("step") or "") for c in changing) and (e.get("type") == "intent" or e.get("kind") == "step_note"):
            out.append(int(e["seq"]))
    return out


def test_a_failover_killed_at_seeded_journal_records_then_resumed(topo: Topology, tmp_path: Path) -> None:
    """kill -9 of the failover at seeded journal records among those around its changes, and once
    in the middle of the catch-up (after its 5th transaction's COMMIT), then `runbook resume`:
    the same end as an uninterrupted run, each of db1's transactions applied exactly once."""
    import random

    committed = scenario(topo)
    kill_primary(topo)
    res = failover(topo, tmp_path)
    assert res.returncode == 0, out_of(res)
    records = effect_records(topo, run_id_of(res))
    assert len(records) >= 6, records
    rng = random.Random(int(os.environ.get("RUNBOOK_FAULT_SEED", "20261207")))  # fixed: a failure repeats
    kills = [{"RUNBOOK_FAULT_KILL_AT_SEQ": str(seq)} for seq in sorted(rng.sample(records, 3))]
    kills.append({"RUNBOOK_FAULT_BINLOG_KILL": "after_commit:5"})
    for env in kills:
        committed = scenario(topo)
        kill_primary(topo)
        res = failover(topo, tmp_path, env=env)
        assert res.returncode == -signal.SIGKILL, f"{env}: expected a kill, got {res.returncode}\n{out_of(res)}"
        m = re.search(r"RUN (\S+) ·", res.stdout)
        assert m, res.stdout
        transcript = resume_until_done(topo, tmp_path, m.group(1))
        try:
            assert topo.gtid("db2") == committed["gtid"]  # nothing applied twice (a second copy would take a new seq)
            assert_failed_over(topo, committed)
        except AssertionError as exc:
            raise AssertionError(f"after a kill at {env}: {exc}\n{transcript}") from None
