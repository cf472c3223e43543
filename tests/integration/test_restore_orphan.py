"""A restore batch left running on the server by a second Ctrl-C is killed by resume first.

After a second Ctrl-C the process exits while a batch may still run on the server (the abort
stops the host's own sessions; a loader connection waiting on a row lock keeps waiting, and the
server does not notice its client is gone). Resume must find that statement and kill it before
it probes or loads again — which it can only do for connections the journal names: every
connection the engine opens for a host is journaled (``sql_connection``), the restore's own
loader and control sessions included. The batch is made slow by a row lock this test holds
(no clock): it cannot end before the test lets it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pymysql
import pytest

from tests.cliutil import cli_env, wait_for_journal_record
from tests.conftest import MYSQL_HOST, MYSQL_PORT, MYSQL_USER, mysql_root
from tests.integration.restore_helpers import dump, execute, query

pytestmark = pytest.mark.integration

RUNBOOK = """
name: restore items
targets: db1
stages:
  - name: restore
    steps:
      - name: Restore
        restore: {{file: "{backup}", schema: "{schema}", tables: [items], on_conflict: ignore, parallel: 1}}
"""


@pytest.fixture
def items(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    schema = f"rbt_orphan_{uuid.uuid4().hex[:8]}"
    execute(None, f"CREATE DATABASE `{schema}`")
    execute(schema, "CREATE TABLE items (id INT PRIMARY KEY, v VARCHAR(40) NOT NULL);"
                    " INSERT INTO items SELECT seq, CONCAT('item ', seq) FROM seq_1_to_200;")
    backup = Path(dump(schema, str(tmp_path / "items.sql")))
    execute(schema, "DELETE FROM items WHERE id % 2 = 0")  # the incident: rows the restore brings back
    (tmp_path / "inv.yml").write_text(f"all:\n  hosts:\n    db1: {{connection: local, mysql_host: {MYSQL_HOST}, "
                                      f"mysql_port: {MYSQL_PORT}, mysql_user: {MYSQL_USER}}}\n")
    (tmp_path / "rb.yml").write_text(RUNBOOK.format(backup=backup, schema=schema))
    yield schema, tmp_path
    execute(None, f"DROP DATABASE IF EXISTS `{schema}`")


def start(cwd: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "engine.cli", *args], cwd=cwd, env=cli_env(cwd / "home"), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)


def blocked_on(gate: pymysql.connections.Connection, schema: str) -> list[int]:
    """Connections of ``schema`` waiting for a row lock (the test's), but the gate's own."""
    with gate.cursor() as cur:
        cur.execute("SELECT p.ID FROM information_schema.INNODB_TRX t JOIN information_schema.PROCESSLIST p"
                    " ON p.ID = t.trx_mysql_thread_id WHERE t.trx_state = 'LOCK WAIT' AND p.DB = %s AND p.ID <> CONNECTION_ID()",
                    (schema,))
        return [int(r[0]) for r in cur.fetchall()]


def running(gate: pymysql.connections.Connection, conn_id: int) -> bool:
    """Is connection ``conn_id`` running a statement (the processlist: no cache)?"""
    with gate.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = %s AND COMMAND NOT IN ('Sleep', 'Killed')",
                    (conn_id,))
        return bool(cur.fetchone()[0])


def until(cond: Callable[[], object], what: str, proc: subprocess.Popen[str] | None = None) -> None:
    deadline = time.monotonic() + 60  # a guard against a hang, not a timing
    while not cond():
        assert proc is None or proc.poll() is None, proc.communicate()[0] if proc else ""
        assert time.monotonic() < deadline, what
        # InnoDB refreshes INNODB_TRX only when nobody read it for 0.1 s: a faster poll sees a
        # cache that never changes
        time.sleep(0.25)


def journal(home: Path, run_id: str) -> list[dict[str, object]]:
    return [json.loads(ln) for ln in (home / run_id / "journal.jsonl").read_text().splitlines()]


def test_resume_kills_the_restore_batch_a_second_ctrl_c_left_running(items: tuple[str, Path]) -> None:
    schema, cwd = items
    home = cwd / "home"
    gate = mysql_root()
    gate.autocommit(False)
    try:
        with gate.cursor() as cur:  # row 2 is one the restore brings back: its INSERT waits for this transaction
            cur.execute(f"INSERT INTO `{schema}`.items VALUES (2, 'not committed')")
        play = start(cwd, "play", "rb.yml", "-i", "inv.yml")
        try:
            until(lambda: blocked_on(gate, schema), "the restore never reached the locked row", play)
            (orphan,) = blocked_on(gate, schema)
            os.killpg(play.pid, signal.SIGINT)
            wait_for_journal_record(home, play, "the first Ctrl-C", kind="interrupted", presses=1)
            os.killpg(play.pid, signal.SIGINT)
            out, _ = play.communicate(timeout=60)
        finally:
            if play.poll() is None:
                play.kill()
                play.communicate()
        assert play.returncode == 130, out
        run_id = next(p.name for p in home.iterdir() if (p / "journal.jsonl").exists())
        assert running(gate, orphan), out  # the batch still runs on the server, its client gone
        journaled = {e.get("connection_id") for e in journal(home, run_id) if e.get("kind") == "sql_connection"}
        assert orphan in journaled, (orphan, journaled)  # the loader's connection is in the journal

        resume = start(cwd, "resume", run_id)
        try:
            # Resume kills the leftover statement before it probes or loads; only then does the
            # test let the row go (a batch loaded again before the kill would wait on it too).
            wait_for_journal_record(home, resume, "the leftover statement's kill", kind="orphan_killed", connection_id=orphan)
            gate.rollback()
            rout, _ = resume.communicate(timeout=120)
        finally:
            gate.rollback()
            if resume.poll() is None:
                resume.kill()
                resume.communicate()
        assert resume.returncode == 0, rout
        assert f"connection {orphan} of the interrupted run is still running a statement" in rout, rout
        assert not running(gate, orphan)
        assert query(f"SELECT COUNT(*) FROM `{schema}`.items")[0][0] == 200  # the rows came back, once
    finally:
        gate.close()
