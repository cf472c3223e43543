"""innodb_recovery and mysql_service against a private mariadbd the tests crash with kill -9, through the CLI."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path

from tests.cliutil import cli as _cli
from tests.cliutil import out_of
from tests.recovery_server import COMMITTED, PrivateServer, private_server  # noqa: F401

WATCH = """name: watch
stages:
  - name: start
    steps:
      - name: Start the crashed server
        mysql_service: {state: started, wait: false}
  - name: recover
    steps:
      - name: Watch crash recovery
        innodb_recovery: {timeout: 5m}
        register: rec
"""
WATCH_ONLY = """name: watch
stages:
  - name: recover
    steps:
      - name: Watch crash recovery
        innodb_recovery: {timeout: 5m}
        register: rec
"""


def cli(*args: str, cwd: Path, timeout: float = 60):  # type: ignore[no-untyped-def]
    try:
        return _cli(*args, cwd=cwd, home=cwd / "home", timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"runbook {' '.join(args)} ran past {timeout}s:\n{(exc.stdout or b'').decode(errors='replace')}") from None


def registered(report: Path, step: str) -> dict:  # type: ignore[type-arg]
    data = json.loads(report.read_text())
    rows = [s for s in data["steps"] if s["step"] == step]
    assert rows, [s["step"] for s in data["steps"]]
    return rows[-1]["registered"]


def counts(srv: PrivateServer) -> tuple[int, int, int]:
    conn = srv.connect()
    with conn.cursor() as cur:
        cur.execute("SELECT (SELECT COUNT(*) FROM t.committed), (SELECT COUNT(*) FROM t.committed WHERE v = 'changed'),"
                    " (SELECT COUNT(*) FROM t.uncommitted)")
        row = cur.fetchone()
    conn.close()
    return int(row[0]), int(row[1]), int(row[2])


def test_watch_a_crash_recovery_phase_by_phase(private_server: PrivateServer, tmp_path: Path) -> None:  # noqa: F811
    srv = private_server
    srv.crash()
    (tmp_path / "rb.yml").write_text(WATCH)
    inv = srv.inventory(tmp_path / "inv.yml")
    res = cli("play", "rb.yml", "-i", str(inv), "--report", "r.json", cwd=tmp_path)
    out = out_of(res)
    assert res.returncode == 0, out
    assert "crash recovery finished" in out
    rec = registered(tmp_path / "r.json", "Watch crash recovery")
    assert rec["crashed"] is True and rec["ready"] is True and rec["fatal"] is None
    assert [p["name"] for p in rec["phases"]] == ["analysis", "redo", "undo"]
    starts = [p["started"] for p in rec["phases"]]
    assert starts == sorted(starts) and all(p["ended"] is not None for p in rec["phases"])
    assert 0 < rec["checkpoint_lsn"] < rec["recovered_to_lsn"]
    assert rec["rolled_back_transactions"] >= 1 and rec["rows_to_undo"] > 0
    assert rec["error_log"] == str(srv.error_log) and rec["error_log_found_by"] == "inventory mysql_error_log"
    # Committed rows survived whole; the open transaction (new rows and its update) is gone.
    assert counts(srv) == (COMMITTED, 0, 0)
    # The report shows the phases.
    md = cli("report", json.loads((tmp_path / "r.json").read_text())["run"]["run_id"], "--format", "md", cwd=tmp_path)
    assert "## Crash recovery" in md.stdout and "| undo |" in md.stdout


def test_a_fatal_line_fails_the_watch_with_its_diagnosis(private_server: PrivateServer, tmp_path: Path) -> None:  # noqa: F811
    srv = private_server
    srv.crash()
    (srv.datadir / "ib_logfile0").unlink()  # the redo log of the crashed server is gone
    srv.start(wait=0)
    assert srv.wait_exit(60) is not None  # InnoDB refuses to start
    (tmp_path / "rb.yml").write_text(WATCH_ONLY)
    inv = srv.inventory(tmp_path / "inv.yml")
    res = cli("play", "rb.yml", "-i", str(inv), "--report", "r.json", cwd=tmp_path)
    out = out_of(res)
    assert res.returncode == 1, out
    assert "missing redo log file" in out and "File ./ib_logfile0 was not found" in out
    assert "put the redo log files back" in out  # the next step
    rec = registered(tmp_path / "r.json", "Watch crash recovery")
    assert rec["fatal"]["kind"] == "missing_redo_log" and rec["ready"] is False
    # Started by mysql_service: whether the start sees the server exit or the watch reads the
    # log first, the run fails with the same diagnosis.
    (tmp_path / "start.yml").write_text(WATCH)
    res = cli("play", "start.yml", "-i", str(inv), cwd=tmp_path)
    out = out_of(res)
    assert res.returncode == 1 and "missing redo log file" in out and "ib_logfile0 was not found" in out, out


def test_estimate_on_a_running_server(private_server: PrivateServer, tmp_path: Path) -> None:  # noqa: F811
    srv = private_server
    (tmp_path / "rb.yml").write_text("""name: estimate
stages:
  - name: s
    steps:
      - name: Estimate
        innodb_recovery: {mode: estimate, sample: 1s}
        register: e
""")
    inv = srv.inventory(tmp_path / "inv.yml")
    conn = srv.connect(autocommit=False)
    with conn.cursor() as cur:  # an open transaction: rows a crash now would roll back
        cur.execute("CREATE DATABASE IF NOT EXISTS t")
        cur.execute("CREATE TABLE t.e (id INT PRIMARY KEY)")
        cur.execute("START TRANSACTION")
        cur.execute("INSERT INTO t.e SELECT seq FROM t.seq_1_to_1000")
    for check in ([], ["--check"]):
        res = cli("play", "rb.yml", "-i", str(inv), "--report", "r.json", *check, cwd=tmp_path)
        assert res.returncode == 0, out_of(res)
        e = registered(tmp_path / "r.json", "Estimate")
        assert e["lsn"] >= e["checkpoint_lsn"] > 0 and e["checkpoint_age"] >= 0
        assert e["redo_capacity"] > 0 and e["dirty_pages"] is not None
        assert e["rows_to_undo"] == 1000 and e["open_transactions"] == 1
        assert e["estimated_seconds"] >= e["undo_seconds"] > 0
        assert e["formula"].startswith("estimated_seconds = checkpoint_age / apply_speed + rows_to_undo / undo_rows_per_s")
        assert e["apply_speed_source"]
    conn.rollback()
    conn.close()


SERVICE = """name: service
stages:
  - name: s
    steps:
      - {name: stop, mysql_service: {state: stopped}}
      - {name: stop again, mysql_service: {state: stopped}}
      - {name: status stopped, mysql_service: {state: status}, register: down}
      - {name: start, mysql_service: {state: started}}
      - {name: start again, mysql_service: {state: started}}
      - {name: status started, mysql_service: {state: status}, register: up}
"""


def test_mysql_service_stop_and_start_twice(private_server: PrivateServer, tmp_path: Path) -> None:  # noqa: F811
    srv = private_server
    (tmp_path / "rb.yml").write_text(SERVICE)
    inv = srv.inventory(tmp_path / "inv.yml")
    res = cli("play", "rb.yml", "-i", str(inv), "--report", "r.json", cwd=tmp_path)
    assert res.returncode == 0, out_of(res)
    steps = {s["step"]: s for s in json.loads((tmp_path / "r.json").read_text())["steps"]}
    assert [steps[n]["status"] for n in ("stop", "stop again", "start", "start again")] == ["changed", "ok", "changed", "ok"]
    down, up = steps["status stopped"]["registered"], steps["status started"]["registered"]
    assert down["running"] is False and down["accepting"] is False and down["method"] == "command"
    assert up["running"] is True and up["accepting"] is True and up["pid"] == int(srv.pid_file.read_text())
    srv.connect().close()  # it really runs
    # Check mode on a running server: nothing to do, nothing done.
    res = cli("play", "rb.yml", "-i", str(inv), "--check", cwd=tmp_path)
    assert res.returncode == 0 and "would stop the server" in out_of(res)
    srv.connect().close()


def test_where_the_error_log_is_found(private_server: PrivateServer, tmp_path: Path) -> None:  # noqa: F811
    srv = private_server
    (tmp_path / "rb.yml").write_text(WATCH_ONLY)
    inv = srv.inventory(tmp_path / "inv.yml", error_log=False)
    # A running server answers: @@log_error; a clean start has no crash recovery.
    res = cli("play", "rb.yml", "-i", str(inv), "--report", "r.json", cwd=tmp_path)
    assert res.returncode == 0, out_of(res)
    rec = registered(tmp_path / "r.json", "Watch crash recovery")
    assert rec["error_log_found_by"] == "@@log_error" and rec["error_log"] == str(srv.error_log)
    assert rec["crashed"] is False and rec["phases"] == [] and rec["ready"] is True
    # A crashed server cannot answer and logs outside its datadir: the step says what to give.
    srv.kill()
    res = cli("play", "rb.yml", "-i", str(inv), cwd=tmp_path)
    out = out_of(res)
    assert res.returncode == 1 and "failed" in out and "unreachable" not in out.split("RECAP")[0], out
    assert "cannot tell where the server's error log is" in out and "mysql_error_log" in out


def test_the_watch_waits_for_a_server_started_after_it(private_server: PrivateServer, tmp_path: Path) -> None:  # noqa: F811
    """The log's last run is the one that crashed (it says "ready for connections"), and the server
    refuses connections: the watch waits for the new start instead of believing the old run or
    marking the host unreachable, then follows the recovery."""
    srv = private_server
    srv.crash()
    (tmp_path / "rb.yml").write_text(WATCH_ONLY)
    inv = srv.inventory(tmp_path / "inv.yml")
    timer = threading.Timer(3.0, srv.start, kwargs={"wait": 0})
    timer.start()
    try:
        res = cli("play", "rb.yml", "-i", str(inv), "--report", "r.json", cwd=tmp_path)
    finally:
        timer.join()
    out = out_of(res)
    assert res.returncode == 0 and "unreachable  db1" not in out, out
    rec = registered(tmp_path / "r.json", "Watch crash recovery")
    assert rec["crashed"] is True and rec["ready"] is True
    assert [p["name"] for p in rec["phases"]] == ["analysis", "redo", "undo"]
    assert counts(srv) == (COMMITTED, 0, 0)
