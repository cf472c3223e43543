"""Resume and rollback tell the truth; no undo is lost (issue 7, items 1, 2 and 7).

Fences go up on a private MariaDB (``runbook lab``'s, reached over its own sshd through an
SSH tunnel): the machine's server is shared by every test and must never be fenced. Kills
between a side effect and its outcome use the fault hook ``RUNBOOK_FAULT_KILL_BEFORE_OUTCOME``
(SIGKILL right before the outcome record of a step is written).
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest

from tests.cliutil import cli_in as cli
from tests.cliutil import only_run, rows

pytestmark = pytest.mark.integration


def connect(port: int) -> pymysql.connections.Connection:
    return pymysql.connect(host="127.0.0.1", port=port, user="root", autocommit=True)


@pytest.fixture
def lab_db(lab_server: tuple[str, int]) -> Iterator[tuple[str, pymysql.connections.Connection]]:
    inv, port = lab_server
    conn = connect(port)
    with conn.cursor() as cur:
        cur.execute("SET GLOBAL read_only = OFF")
        cur.execute("DROP DATABASE IF EXISTS shop")
        cur.execute("CREATE DATABASE shop")
        cur.execute("CREATE TABLE shop.t (id INT PRIMARY KEY, v VARCHAR(20))")
        cur.execute("INSERT INTO shop.t VALUES (1, 'a'), (2, 'b'), (3, 'c')")
    yield inv, conn
    with conn.cursor() as cur:
        cur.execute("SET GLOBAL read_only = OFF")
    conn.close()


def read_only(conn: pymysql.connections.Connection) -> int:
    return int(rows(conn, "SELECT @@GLOBAL.read_only")[0][0])


FENCE_THEN_MAYBE_FAIL = """
name: fence and restore
targets: db1
stages:
  - name: restore
    on_failure: rollback
    steps:
      - name: Fence
        stop_writes: {{}}
      - name: Snapshot
        snapshot: {{schema: shop, tables: [t]}}
      - name: Ready
        shell: test -e {flag}
"""


def test_resume_after_a_stage_rollback_fences_and_snapshots_again(tmp_path: Path, lab_db) -> None:
    """Item 1: the fence undone by the stage rollback is re-applied on resume (it used to be
    skipped "from the journal", the restore running unfenced), and a restored snapshot is not
    "taken": it is taken again."""
    inv, conn = lab_db
    flag = tmp_path / "ready"
    (tmp_path / "rb.yml").write_text(FENCE_THEN_MAYBE_FAIL.format(flag=flag))
    res = cli("play", "rb.yml", "-i", str(inv), cwd=tmp_path)
    assert res.returncode == 1, res.stdout
    assert "stage [restore] rolled back" in res.stdout
    assert read_only(conn) == 0
    # The recap says what resume will do.
    assert "it will run stage restore again from the start" in res.stdout, res.stdout
    run_id = only_run(tmp_path)
    show = cli("show", run_id, cwd=tmp_path).stdout
    assert "undone" in show and "Fence" in show

    flag.touch()  # the operator fixed the cause
    again = cli("resume", run_id, cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert read_only(conn) == 1, again.stdout  # fenced again
    assert "from the journal" not in again.stdout
    manifest = rows(conn, f"SELECT status FROM `_rb_snap_{run_id.replace('-', '_')}`._manifest")
    assert manifest == [("complete",)], again.stdout  # the snapshot was taken again


def test_kill_between_fence_and_outcome_then_rollback_reopens(tmp_path: Path, lab_db) -> None:
    """Item 2: kill -9 after the fence went up, before its outcome; `rollback` probes the
    in-doubt step, finds the fence this run put up (its previous state was journaled before
    the change) and undoes it. It used to say "nothing to undo" and leave the server fenced."""
    inv, conn = lab_db
    (tmp_path / "rb.yml").write_text(FENCE_THEN_MAYBE_FAIL.format(flag=tmp_path))
    res = cli("play", "rb.yml", "-i", str(inv), cwd=tmp_path, env_extra={"RUNBOOK_FAULT_KILL_BEFORE_OUTCOME": "restore/Fence"})
    assert res.returncode == -signal.SIGKILL, res.stdout
    assert read_only(conn) == 1
    run_id = only_run(tmp_path)
    back = cli("rollback", run_id, "--yes", cwd=tmp_path)
    assert back.returncode == 0, back.stdout + back.stderr
    assert "nothing to undo" not in back.stdout
    assert read_only(conn) == 0, back.stdout


def test_kill_between_snapshot_and_outcome_then_rollback_restores(tmp_path: Path, lab_db) -> None:
    """Item 2: kill -9 after the snapshot's copies exist, before its outcome; then the table
    is damaged; `rollback` finds this run's copies and restores them."""
    inv, conn = lab_db
    (tmp_path / "rb.yml").write_text(FENCE_THEN_MAYBE_FAIL.format(flag=tmp_path))
    res = cli("play", "rb.yml", "-i", str(inv), cwd=tmp_path,
              env_extra={"RUNBOOK_FAULT_KILL_BEFORE_OUTCOME": "restore/Snapshot"})
    assert res.returncode == -signal.SIGKILL, res.stdout
    with conn.cursor() as cur:
        cur.execute("DELETE FROM shop.t WHERE id > 1")  # what a bad restore would do
    run_id = only_run(tmp_path)
    back = cli("rollback", run_id, "--yes", cwd=tmp_path)
    assert back.returncode == 0, back.stdout + back.stderr
    assert rows(conn, "SELECT id, v FROM shop.t ORDER BY id") == [(1, "a"), (2, "b"), (3, "c")], back.stdout
    assert read_only(conn) == 0  # and the fence before it was undone as well
