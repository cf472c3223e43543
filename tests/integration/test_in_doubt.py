"""Outcome unknown is in doubt (issue 7 item 3), through the real CLI and a real MariaDB.

A statement or command that was sent and whose fate is unknown — it ran past `timeout:`, its
connection was lost, a later statement of the step failed after earlier ones committed — is
journaled `unknown` (in doubt), never plain `failed`: resume probes it or asks, and never runs
a non-idempotent step a second time blindly.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pymysql
import pytest

from tests.cliutil import cli, cli_env, out_of, rows, run_id_of
from tests.conftest import mysql_root

pytestmark = pytest.mark.integration

INVENTORY = "all:\n  vars: {mysql_user: root, mysql_host: 127.0.0.1}\n  hosts:\n    h: {connection: local}\n"


def _setup(tmp_path: Path, runbook: str) -> None:
    (tmp_path / "rb.yml").write_text(runbook)
    (tmp_path / "inv.yml").write_text(INVENTORY)


def _play(tmp_path: Path, *extra: str) -> tuple[int, str, str]:
    res = cli("play", "rb.yml", "-i", "inv.yml", *extra, cwd=tmp_path, home=tmp_path / "home")
    return res.returncode, out_of(res), run_id_of(res)


def _outcomes(tmp_path: Path, run_id: str) -> list[dict]:
    path = tmp_path / "home" / run_id / "journal.jsonl"
    return [r for r in map(json.loads, path.read_text().splitlines()) if r["type"] == "outcome"]


def _processlist(db: pymysql.connections.Connection, needle: str) -> list[tuple]:
    return rows(db, "SELECT ID, INFO FROM information_schema.PROCESSLIST "
                    f"WHERE INFO LIKE '%{needle}%' AND INFO NOT LIKE '%PROCESSLIST%'")


def test_sql_past_its_timeout_is_stopped_on_the_server_and_in_doubt(tmp_path: Path, db, schema: str) -> None:
    """Was: journaled `failed`, the INSERT kept running on the server and resume ran it again
    (two rows). Now: KILL QUERY stops it, the step is in doubt, resume asks."""
    with db.cursor() as cur:
        cur.execute(f"CREATE TABLE `{schema}`.t (id INT AUTO_INCREMENT PRIMARY KEY, v INT) ENGINE=InnoDB")
    _setup(tmp_path, f"""
name: slow insert
stages:
  - name: s
    steps:
      - name: Slow insert
        timeout: 1
        sql: INSERT INTO `{schema}`.t (v) SELECT SLEEP(4) /* rbt-slow-{schema} */
""")
    code, out, run_id = _play(tmp_path)
    assert code == 1, out
    assert "past its timeout" in out and "KILL QUERY" in out, out
    # Gone from the server the moment the step ends, not still running behind our back.
    assert _processlist(db, f"rbt-slow-{schema}") == []
    assert [o["status"] for o in _outcomes(tmp_path, run_id)] == ["unknown"]
    show = cli("show", run_id, cwd=tmp_path, home=tmp_path / "home")
    assert "IN DOUBT" in show.stdout, show.stdout

    res = cli("resume", run_id, cwd=tmp_path, home=tmp_path / "home")
    rout = out_of(res)
    assert res.returncode == 1 and "in doubt" in rout and "--decide" in rout, rout
    time.sleep(0.1)
    assert rows(db, f"SELECT COUNT(*) FROM `{schema}`.t") == [(0,)]


def test_sql_timeout_with_a_probe_resumes_exactly_once(tmp_path: Path, db, schema: str) -> None:
    with db.cursor() as cur:
        cur.execute(f"CREATE TABLE `{schema}`.t (id INT PRIMARY KEY, v INT) ENGINE=InnoDB")
    with db.cursor() as cur:  # the delay lives on the server: the step's arguments stay the same
        cur.execute(f"CREATE TABLE `{schema}`.delay (d DOUBLE)")
        cur.execute(f"INSERT INTO `{schema}`.delay VALUES (3)")
    _setup(tmp_path, f"""
name: slow insert
stages:
  - name: s
    steps:
      - name: Slow insert
        timeout: 1
        sql: INSERT INTO `{schema}`.t VALUES (1, SLEEP((SELECT d FROM `{schema}`.delay)))
        unless: SELECT COUNT(*) FROM `{schema}`.t WHERE id = 1
""")
    code, out, run_id = _play(tmp_path)
    assert code == 1, out
    with db.cursor() as cur:
        cur.execute(f"UPDATE `{schema}`.delay SET d = 0")
    res = cli("resume", run_id, cwd=tmp_path, home=tmp_path / "home")
    assert res.returncode == 0, out_of(res)
    assert rows(db, f"SELECT COUNT(*) FROM `{schema}`.t") == [(1,)]


def test_local_command_past_its_timeout_kills_its_whole_process_group(tmp_path: Path) -> None:
    """Was: only /bin/sh was killed; a grandchild kept running (and writing) after the step
    was journaled `failed`."""
    pidfile = tmp_path / "child.pid"
    _setup(tmp_path, f"""
name: slow command
stages:
  - name: s
    steps:
      - name: Slow
        timeout: 1
        shell: "sleep 30 & echo $! > {pidfile}; wait"
""")
    code, out, run_id = _play(tmp_path)
    assert code == 1, out
    pid = int(pidfile.read_text())
    for _ in range(100):
        if not os.path.exists(f"/proc/{pid}") or Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"the timed-out command's child {pid} is still running")
    assert [o["status"] for o in _outcomes(tmp_path, run_id)] == ["unknown"]


def test_multi_statement_step_failing_on_its_third_statement(tmp_path: Path, db, schema: str) -> None:
    """Was: `failed`, and resume ran all three again (duplicate rows from the first two).
    Now: the outcome says 2 of 3 completed and the step is in doubt."""
    with db.cursor() as cur:
        cur.execute(f"CREATE TABLE `{schema}`.t (id INT PRIMARY KEY)")
        cur.execute(f"CREATE TABLE `{schema}`.log (n INT)")
        cur.execute(f"INSERT INTO `{schema}`.t VALUES (3)")
    _setup(tmp_path, f"""
name: three statements
stages:
  - name: s
    steps:
      - name: Three
        sql: "INSERT INTO `{schema}`.log VALUES (1); INSERT INTO `{schema}`.log VALUES (2); INSERT INTO `{schema}`.t VALUES (3)"
""")
    code, out, run_id = _play(tmp_path)
    assert code == 1, out
    assert "statement 3 of 3 failed (2 of 3 statements completed" in out, out
    [outcome] = _outcomes(tmp_path, run_id)
    assert outcome["status"] == "unknown"
    assert outcome["registered"]["statements_done"] == 2
    assert "INSERT INTO" in outcome["evidence"] and "VALUES (3)" in outcome["evidence"]
    res = cli("resume", run_id, cwd=tmp_path, home=tmp_path / "home")
    assert res.returncode == 1 and "--decide" in out_of(res)
    assert rows(db, f"SELECT COUNT(*) FROM `{schema}`.log") == [(2,)]


def test_a_failed_statement_inside_a_transaction_rolls_it_back_and_is_plain_failed(tmp_path: Path, db, schema: str) -> None:
    with db.cursor() as cur:
        cur.execute(f"CREATE TABLE `{schema}`.t (id INT PRIMARY KEY) ENGINE=InnoDB")
        cur.execute(f"INSERT INTO `{schema}`.t VALUES (3)")
    _setup(tmp_path, f"""
name: transaction
stages:
  - name: s
    steps:
      - name: Tx
        sql: "START TRANSACTION; INSERT INTO `{schema}`.t VALUES (1); INSERT INTO `{schema}`.t VALUES (3); COMMIT"
""")
    code, out, run_id = _play(tmp_path)
    assert code == 1, out
    assert "rolled back" in out, out
    assert [o["status"] for o in _outcomes(tmp_path, run_id)] == ["failed"]
    assert rows(db, f"SELECT id FROM `{schema}`.t") == [(3,)]


def _wait_until_waiting(db: pymysql.connections.Connection, needle: str) -> None:
    """Until the engine's UPDATE has run for a second: an UPDATE by primary key that takes
    that long is waiting for the row lock the other transaction holds."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = rows(db, "SELECT COUNT(*) FROM information_schema.PROCESSLIST "
                         f"WHERE INFO LIKE '%{needle}%' AND INFO NOT LIKE '%PROCESSLIST%' AND TIME >= 1")
        if found[0][0]:
            return
        time.sleep(0.05)
    raise AssertionError("the engine's statement never waited for the lock")


def test_deadlock_inside_a_transaction_is_not_replayed_one_statement(tmp_path: Path, db, schema: str) -> None:
    """Was: the deadlocked UPDATE was retried alone after InnoDB had rolled back the whole
    transaction, and COMMIT then made half of it durable."""
    with db.cursor() as cur:
        cur.execute(f"CREATE TABLE `{schema}`.t (id INT PRIMARY KEY, v INT) ENGINE=InnoDB")
        cur.execute(f"CREATE TABLE `{schema}`.heavy (id INT PRIMARY KEY) ENGINE=InnoDB")
        cur.execute(f"CREATE TABLE `{schema}`.log (n INT) ENGINE=InnoDB")
        cur.execute(f"INSERT INTO `{schema}`.t VALUES (1, 0), (2, 0)")
    other = mysql_root()
    other.autocommit(False)
    with other.cursor() as cur:  # the other transaction is heavier: InnoDB picks ours as the victim
        cur.execute(f"INSERT INTO `{schema}`.heavy SELECT seq FROM mysql.seq_1_to_500" if False else f"INSERT INTO `{schema}`.heavy WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500) SELECT i FROM n")
        cur.execute(f"UPDATE `{schema}`.t SET v = 9 WHERE id = 2")
    tag = f"rbt-dl-{schema}"

    def close_the_cycle() -> None:
        _wait_until_waiting(mysql_root(), tag)
        with other.cursor() as cur:
            try:
                cur.execute(f"UPDATE `{schema}`.t SET v = 9 WHERE id = 1")
            except pymysql.err.OperationalError:
                pass
        other.commit()

    t = threading.Thread(target=close_the_cycle)
    t.start()
    _setup(tmp_path, f"""
name: deadlock
stages:
  - name: s
    steps:
      - name: Tx
        sql: >-
          START TRANSACTION; INSERT INTO `{schema}`.log VALUES (1);
          UPDATE `{schema}`.t SET v = 1 WHERE id = 1;
          UPDATE `{schema}`.t SET v = 1 WHERE id = 2 /* {tag} */; COMMIT
""")
    try:
        code, out, _ = _play(tmp_path)
    finally:
        t.join()
        other.close()
    assert code == 1, out
    assert "1213" in out and "retrying" not in out, out
    # Nothing of the transaction is left: no half-applied COMMIT.
    assert rows(db, f"SELECT COUNT(*) FROM `{schema}`.log") == [(0,)]
    assert rows(db, f"SELECT v FROM `{schema}`.t ORDER BY id") == [(9,), (9,)]


# --------------------------------------------------------------------------- item 11: faults


def _start_play(tmp_path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "engine.cli", "play", "rb.yml", "-i", "inv.yml"], cwd=tmp_path,
                            env=cli_env(tmp_path / "home"), text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)


def _wait_running(db: pymysql.connections.Connection, needle: str, proc: subprocess.Popen[str]) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = _processlist(db, needle)
        if found:
            return int(found[0][0])
        assert proc.poll() is None, proc.communicate()[0]
        time.sleep(0.02)
    raise AssertionError(f"{needle} never ran")


def test_kill_9_during_a_guarded_slow_insert_then_resume_inserts_once(tmp_path: Path, db, schema: str) -> None:
    """Was: resume probed at once, the probe said "not done" (the dead run's INSERT had not
    committed yet), and the INSERT ran a second time: two rows."""
    with db.cursor() as cur:
        cur.execute(f"CREATE TABLE `{schema}`.t (v INT) ENGINE=InnoDB")
    tag = f"rbt-k9-{schema}"
    with db.cursor() as cur:  # the delay lives on the server: the step's arguments stay the same
        cur.execute(f"CREATE TABLE `{schema}`.delay (d DOUBLE)")
        cur.execute(f"INSERT INTO `{schema}`.delay VALUES (4)")
    _setup(tmp_path, f"""
name: slow guarded insert
stages:
  - name: s
    steps:
      - name: Insert
        sql: INSERT INTO `{schema}`.t (v) SELECT SLEEP((SELECT d FROM `{schema}`.delay)) /* {tag} */
        unless: SELECT COUNT(*) FROM `{schema}`.t
""")
    proc = _start_play(tmp_path)
    _wait_running(db, tag, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    out = proc.communicate()[0]
    run_id = out.split("RUN ", 1)[1].split()[0]
    # (the delay stays: changing it would wait for the running INSERT...SELECT's read lock)
    res = cli("resume", run_id, cwd=tmp_path, home=tmp_path / "home")
    rout = out_of(res)
    assert res.returncode == 0, rout
    assert "still running a statement" in rout, rout
    deadline = time.monotonic() + 30  # the KILL is asynchronous: a guard against a hang, not a timing
    while _processlist(db, tag):
        assert time.monotonic() < deadline, _processlist(db, tag)
        time.sleep(0.02)
    assert rows(db, f"SELECT COUNT(*) FROM `{schema}`.t") == [(1,)], rout


def test_kill_of_the_engine_connection_during_a_two_statement_step_is_in_doubt(tmp_path: Path, db, schema: str) -> None:
    """Was: plain `failed`, and resume ran both statements again."""
    with db.cursor() as cur:
        cur.execute(f"CREATE TABLE `{schema}`.t (v INT) ENGINE=InnoDB")
    tag = f"rbt-kc-{schema}"
    _setup(tmp_path, f"""
name: two statements
stages:
  - name: s
    steps:
      - name: Two
        sql: "INSERT INTO `{schema}`.t VALUES (1); INSERT INTO `{schema}`.t SELECT SLEEP(5) /* {tag} */"
""")
    proc = _start_play(tmp_path)
    victim = _wait_running(db, tag, proc)
    with db.cursor() as cur:
        cur.execute("KILL %s", (victim,))
    out = proc.communicate(timeout=60)[0]
    assert proc.returncode == 1, out
    run_id = out.split("RUN ", 1)[1].split()[0]
    assert [o["status"] for o in _outcomes(tmp_path, run_id)] == ["unknown"], out
    res = cli("resume", run_id, cwd=tmp_path, home=tmp_path / "home")
    assert res.returncode == 1 and "--decide" in out_of(res)
    assert rows(db, f"SELECT COUNT(*) FROM `{schema}`.t WHERE v = 1") == [(1,)]


def test_sshd_dropped_under_a_tunnelled_insert_is_in_doubt(tmp_path: Path, db, schema: str, private_sshd) -> None:
    """Was: plain `failed` (resume ran the INSERT again)."""
    with db.cursor() as cur:
        cur.execute(f"CREATE TABLE `{schema}`.t (v INT) ENGINE=InnoDB")
    tag = f"rbt-tun-{schema}"
    (tmp_path / "rb.yml").write_text(f"""
name: tunnelled insert
stages:
  - name: s
    steps:
      - name: Insert
        sql: INSERT INTO `{schema}`.t SELECT SLEEP(5) /* {tag} */
""")
    (tmp_path / "inv.yml").write_text(f"""
all:
  vars: {{mysql_user: root, mysql_host: 127.0.0.1, mysql_via: tunnel}}
  hosts:
    db1:
{private_sshd.host_vars_yaml(6)}
""")
    proc = _start_play(tmp_path)
    _wait_running(db, tag, proc)
    private_sshd.drop_connections()
    out = proc.communicate(timeout=60)[0]
    assert proc.returncode == 1, out
    run_id = out.split("RUN ", 1)[1].split()[0]
    assert [o["status"] for o in _outcomes(tmp_path, run_id)] == ["unknown"], out
    assert "whether it took effect is unknown" in out, out


def test_template_error_in_a_later_stage_when_exits_1_once_steps_ran(tmp_path: Path) -> None:
    """Was: exit 2 ("invalid input: nothing was executed") although the first stage wrote."""
    marker = tmp_path / "wrote"
    _setup(tmp_path, f"""
name: later when
stages:
  - name: first
    steps:
      - name: Write
        shell: touch {marker}
        register: w
  - name: second
    when: "w.stdout | int(default=0) > (1 / 0)"
    steps:
      - name: Never
        shell: "true"
""")
    code, out, _ = _play(tmp_path)
    assert marker.exists()
    assert code == 1, out


def test_a_confirmation_is_journaled_and_shown(tmp_path: Path) -> None:
    _setup(tmp_path, """
name: confirmed
stages:
  - name: fence
    confirm: "Stop writes on {{ inventory_hostname }}"
    steps:
      - name: Nothing
        shell: "true"
""")
    code, out, run_id = _play(tmp_path, "--yes")
    assert code == 0, out
    show = cli("show", run_id, cwd=tmp_path, home=tmp_path / "home").stdout
    assert "confirmed stage [fence] (--yes): Stop writes on h" in show, show
    report = cli("report", run_id, "--format", "json", cwd=tmp_path, home=tmp_path / "home").stdout
    assert '"operator_confirm"' in report


def test_interrupt_of_a_local_command_kills_its_group_and_says_unknown(tmp_path: Path) -> None:
    from engine.errors import OutcomeUnknown
    from engine.transport.local import LocalShell

    shell = LocalShell()
    pidfile = tmp_path / "bg.pid"
    errors: list[BaseException] = []

    def run() -> None:
        try:
            shell.run(f"sleep 60 & echo $! > {pidfile}; wait")
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=run)
    t.start()
    while not (pidfile.exists() and pidfile.read_text().strip()):
        time.sleep(0.02)
    assert shell.interrupt("aborted by the operator")
    t.join(20)
    assert errors and isinstance(errors[0], OutcomeUnknown)
    pid = int(pidfile.read_text())
    for _ in range(100):
        if not os.path.exists(f"/proc/{pid}") or Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
            break
        time.sleep(0.05)
    else:
        pytest.fail("the aborted command's child is still running")


def test_timeout_bounds_a_step_whose_action_ignores_it(tmp_path: Path, db, schema: str) -> None:
    """Was: `timeout:` was only handed to actions, several of which ignore it: a snapshot of
    a write-locked table waited forever. Now the executor stops what still runs at the step's
    deadline (KILL QUERY), and the step is in doubt."""
    with db.cursor() as cur:
        cur.execute(f"CREATE TABLE `{schema}`.t (id INT PRIMARY KEY) ENGINE=InnoDB")
        cur.execute(f"INSERT INTO `{schema}`.t VALUES (1)")
        cur.execute(f"LOCK TABLES `{schema}`.t WRITE")  # reads of t wait for this session
    try:
        _setup(tmp_path, f"""
name: locked snapshot
stages:
  - name: s
    steps:
      - name: Snap
        timeout: 2
        snapshot: {{schema: {schema}, tables: [t], parallel: 1}}
""")
        code, out, run_id = _play(tmp_path)
    finally:
        with db.cursor() as cur:
            cur.execute("UNLOCK TABLES")
    assert code == 1, out
    assert "timeout of 2s" in out, out
    assert [o["status"] for o in _outcomes(tmp_path, run_id)] == ["unknown"], out
