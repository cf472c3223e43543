"""The operator's path through a restore that goes wrong (issue 20 item 1, issue 15 items 1 and 4),
through the real CLI on the real MariaDB: two Ctrl-C inside a restore then resume (twice); a
restore whose tables a snapshot undo swapped back loads again (a stage rollback, or `runbook
rollback` then `resume`); the swap works any number of times in one run; a rollback killed
after its undo leaves the step in doubt for resume; every --decide is applied or refused.

The stage under test is the emergency SOP's: snapshot → restore (truncate) → verify
`row_counts: {from: <the restore's result>}`, `on_failure: rollback`. Ctrl-C is sent by the
restore itself at seeded batch commits (``RUNBOOK_FAULT_RESTORE_SIGINT``), never by a sleep
racing the process.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import DB1_INVENTORY
from tests.integration.restore_helpers import checksums, dump, execute, query

pytestmark = pytest.mark.integration

SEED = int(os.environ.get("RUNBOOK_TEST_SEED") or 20261201)  # fixed: a failure repeats; set it to explore
TABLES = ["parents", "children"]

RUNBOOK = """
name: restore the shop
targets: db1
vars:
  schema: {schema}
  backup: {backup}
stages:
  - name: restore
    on_failure: rollback
    steps:
      - name: Snapshot
        snapshot: {{schema: "{{{{ schema }}}}", tables: [parents, children]}}
        register: snap
      - name: Restore
        restore:
          file: "{{{{ backup }}}}"
          schema: "{{{{ schema }}}}"
          tables: [parents, children]
          truncate: true
          parallel: 1
          batch_bytes: 4096
        register: restored
      - name: Verify
        verify:
          schema: "{{{{ schema }}}}"
          foreign_keys: true
          row_counts: {{from: "{{{{ restored }}}}"}}
      - name: Gate
        shell: test -e {gate}
  - name: report
    steps:
      - name: Say
        assert:
          that: ["restored.rows == {rows}", "snap.tables.children.rows > 0", "snap.snapshot_schema is defined"]
"""


@dataclass
class Shop:
    root: Path
    schema: str
    backup: Path
    gate: Path

    @property
    def home(self) -> Path:
        return self.root / "home"

    def cli(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        full = dict(os.environ, NO_COLOR="1", RUNBOOK_HOME=str(self.home), **(env or {}))
        for k in ("RUNBOOK_FAULT_KILL_AT_SEQ", "RUNBOOK_FAULT_KILL_BEFORE_OUTCOME"):
            if env is None or k not in env:
                full.pop(k, None)
        res = subprocess.run([sys.executable, "-m", "engine.cli", *args], cwd=self.root, env=full, text=True,
                             capture_output=True, timeout=300, stdin=subprocess.DEVNULL)
        assert "Traceback" not in res.stdout + res.stderr, res.stdout + res.stderr
        return res

    def play(self, env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess[str], str]:
        res = self.cli("play", "rb.yml", "-i", "inv.yml", env=env)
        m = re.search(r"^RUN (\S+) ·", res.stdout, re.M)  # the header: printed also by a run killed later
        assert m, res.stdout + res.stderr
        return res, m.group(1)

    def damage(self) -> None:
        """What the incident did, and what the application wrote after the backup."""
        execute(self.schema, "SET FOREIGN_KEY_CHECKS=0; DELETE FROM children WHERE id % 3 = 0;"
                             " UPDATE parents SET name = 'corrupt' WHERE id % 7 = 0;"
                             " INSERT INTO parents VALUES (100001, 'written after the backup');")

    def sums(self) -> dict[str, object]:
        return checksums(self.schema, TABLES)

    def journal(self, run_id: str) -> list[dict[str, object]]:
        return [json.loads(ln) for ln in (self.home / run_id / "journal.jsonl").read_text().splitlines()]


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Shop]:
    schema = f"rbt_op_{uuid.uuid4().hex[:8]}"
    execute(None, f"CREATE DATABASE `{schema}`")
    execute(schema, "CREATE TABLE parents (id INT PRIMARY KEY, name VARCHAR(60) NOT NULL);"
                    " CREATE TABLE children (id INT PRIMARY KEY, parent_id INT NOT NULL, note VARCHAR(80),"
                    "  CONSTRAINT fk_children_parent FOREIGN KEY (parent_id) REFERENCES parents (id));"
                    " INSERT INTO parents SELECT seq, CONCAT('parent number ', seq) FROM seq_1_to_400;"
                    " INSERT INTO children SELECT seq, 1 + seq % 400, CONCAT('a child note, padded ', seq) FROM seq_1_to_1600;")
    backup = dump(schema, str(tmp_path / "shop.sql"), "--net-buffer-length=4096")
    gate = tmp_path / "gate"
    gate.touch()
    (tmp_path / "inv.yml").write_text(DB1_INVENTORY)
    (tmp_path / "rb.yml").write_text(RUNBOOK.format(schema=schema, backup=backup, gate=gate, rows=2000))
    yield Shop(tmp_path, schema, Path(backup), gate)
    execute(None, f"SET FOREIGN_KEY_CHECKS=0; DROP DATABASE IF EXISTS `{schema}`")
    home = tmp_path / "home"
    for run in (p.name for p in home.iterdir() if p.is_dir() and p.name[:1].isdigit()) if home.exists() else ():
        execute(None, f"SET FOREIGN_KEY_CHECKS=0; DROP DATABASE IF EXISTS `_rb_snap_{run.replace('-', '_')}`")


def _batches(shop: Shop, run_id: str) -> int:
    restored = next(r for r in shop.journal(run_id) if r.get("type") == "outcome" and r.get("step") == "restore/Restore")
    return sum(t["batches"] for t in restored["registered"]["tables"].values())  # type: ignore[index]


# --------------------------------------------------------------------------- issue 20 item 1


def test_two_ctrl_c_inside_a_restore_then_resume_twice_ends_as_an_uninterrupted_run(shop: Shop) -> None:
    backup_sums = shop.sums()
    shop.damage()
    clean, clean_id = shop.play()
    assert clean.returncode == 0, clean.stdout
    uninterrupted = shop.sums()
    assert uninterrupted == backup_sums  # truncate + reload: the backup's tables
    batches = _batches(shop, clean_id)
    assert batches >= 8, batches

    rnd = random.Random(SEED)
    for _ in range(2):  # two seeded pairs of instants: the second press always lands inside the restore
        first = rnd.randint(1, batches - 3)
        second = rnd.randint(first + 1, batches - 1)
        shop.damage()
        stopped, run_id = shop.play(env={"RUNBOOK_FAULT_RESTORE_SIGINT": f"after_commit:{first},after_commit:{second}"})
        where = f"seed {SEED}: Ctrl-C after batches {first} and {second} of {batches}"
        assert stopped.returncode == 130, f"{where}\n{stopped.stdout}"
        presses = [r for r in shop.journal(run_id) if r.get("kind") == "interrupted"]
        assert [p["presses"] for p in presses] == [1, 2], where
        transcript = stopped.stdout
        resumed = shop.cli("resume", run_id)
        transcript += resumed.stdout + resumed.stderr
        assert resumed.returncode == 0, f"{where}\n{transcript}"
        assert "not a restore result" not in transcript
        again = shop.cli("resume", run_id)
        assert again.returncode == 0 and "already succeeded" in again.stdout, again.stdout
        assert shop.sums() == uninterrupted, f"{where}\n{transcript}"


def test_a_restore_killed_before_its_outcome_registers_its_full_result_on_resume(shop: Shop) -> None:
    """The restore committed everything, the journal never heard: resume records it done from
    its probe *with* its result, which the verify (`row_counts: {from: restored}`) and the last
    stage read. It used to register nothing: the verify failed and the stage rolled back."""
    shop.damage()
    res, run_id = shop.play(env={"RUNBOOK_FAULT_KILL_BEFORE_OUTCOME": "restore/Restore"})
    assert res.returncode == -signal.SIGKILL, res.stdout
    resumed = shop.cli("resume", run_id)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "recorded as done" in resumed.stdout
    outcome = [r for r in shop.journal(run_id) if r.get("type") == "outcome" and r.get("step") == "restore/Restore"][-1]
    assert outcome["registered"]["rows"] == 2000 and set(outcome["registered"]["tables"]) == set(TABLES)  # type: ignore[index]


def test_a_snapshot_killed_before_its_outcome_registers_its_tables_on_resume(shop: Shop) -> None:
    shop.damage()
    res, run_id = shop.play(env={"RUNBOOK_FAULT_KILL_BEFORE_OUTCOME": "restore/Snapshot"})
    assert res.returncode == -signal.SIGKILL, res.stdout
    resumed = shop.cli("resume", run_id)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    outcome = [r for r in shop.journal(run_id) if r.get("type") == "outcome" and r.get("step") == "restore/Snapshot"][-1]
    tables = outcome["registered"]["tables"]  # type: ignore[index]
    assert tables["children"]["rows"] == 1600 - 533 and tables["parents"]["rows"] == 401, tables
    assert outcome["registered"]["snapshot_schema"] == f"_rb_snap_{run_id.replace('-', '_')}"  # type: ignore[index]


# --------------------------------------------------------------------------- issue 15 item 1 and the repeated swap


def test_resume_after_a_stage_rollback_restores_again_any_number_of_times(shop: Shop) -> None:
    """snapshot → restore (truncate) → a failing gate: the stage rolls back to the snapshot.
    Resume (the gate still failing) rolls back again, twice: each swap works (the displaced
    tables' constraint names used to clash: ERROR 1050 on the second). Then with the gate
    fixed, resume loads again (it used to say "already in the desired state" on the tables the
    undo had brought back) and ends with the backup's tables."""
    backup_sums = shop.sums()
    shop.damage()
    damaged = shop.sums()
    shop.gate.unlink()
    first, run_id = shop.play()
    assert first.returncode == 1 and "stage [restore] rolled back" in first.stdout, first.stdout
    assert shop.sums() == damaged
    for n in range(2):
        again = shop.cli("resume", run_id)
        out = again.stdout + again.stderr
        assert again.returncode == 1 and "stage [restore] rolled back" in out, f"swap {n + 2}:\n{out}"
        assert "already in the desired state" not in out.split("Restore")[1].splitlines()[0], out
        assert shop.sums() == damaged, out
    snap = f"_rb_snap_{run_id.replace('-', '_')}"
    displaced = sorted(r[0] for r in query(f"SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{snap}'"
                                           " AND TABLE_NAME LIKE '%%displaced%%'"))
    assert len(displaced) == 6, displaced  # three swaps of two tables: every displaced copy kept
    shop.gate.touch()
    done = shop.cli("resume", run_id)
    assert done.returncode == 0, done.stdout + done.stderr
    assert shop.sums() == backup_sums, done.stdout


def test_rollback_then_resume_restores_again(shop: Shop) -> None:
    """`runbook rollback` swaps the snapshot back over a restore that had succeeded; `resume`
    then runs the undone snapshot again and must load again: the restore's progress rows were
    of the tables the swap displaced (it used to be skipped "from the journal")."""
    backup_sums = shop.sums()
    shop.damage()
    damaged = shop.sums()
    shop.gate.unlink()
    res, run_id = shop.play()
    assert res.returncode == 1
    shop.gate.touch()
    ok = shop.cli("resume", run_id)
    assert ok.returncode == 0 and shop.sums() == backup_sums, ok.stdout
    back = shop.cli("rollback", run_id, "--yes")
    assert back.returncode == 0, back.stdout + back.stderr
    assert shop.sums() == damaged
    again = shop.cli("resume", run_id)
    assert again.returncode == 0, again.stdout + again.stderr
    assert shop.sums() == backup_sums, again.stdout


# --------------------------------------------------------------------------- issue 15 item 4


def test_resume_after_a_killed_rollback_probes_the_step_whose_undo_ran(shop: Shop) -> None:
    """`runbook rollback` killed after the snapshot's undo swapped the tables back, before its
    outcome: resume used to say "0 in doubt" and "done in an earlier attempt" for the stage,
    leaving the damaged tables live. The snapshot step is in doubt: its probe finds the copies
    swapped, the stage runs again, the restore loads again."""
    backup_sums = shop.sums()
    shop.damage()
    damaged = shop.sums()
    res, run_id = shop.play()
    assert res.returncode == 0, res.stdout
    killed = shop.cli("rollback", run_id, "--yes", env={"RUNBOOK_FAULT_KILL_BEFORE_OUTCOME": "undo:restore/Snapshot"})
    assert killed.returncode == -signal.SIGKILL, killed.stdout
    assert shop.sums() == damaged  # the undo ran
    runs = shop.cli("runs")
    assert re.search(rf"{run_id}\s.*1 in doubt", runs.stdout), runs.stdout
    resumed = shop.cli("resume", run_id)
    out = resumed.stdout + resumed.stderr
    assert "1 in doubt (restore/Snapshot@db1)" in out, out
    assert resumed.returncode == 0, out
    assert shop.sums() == backup_sums, out


# --------------------------------------------------------------------------- --decide: applied or refused


def test_a_decision_for_a_step_not_in_doubt_is_refused_before_anything_runs(shop: Shop) -> None:
    shop.damage()
    shop.gate.unlink()
    res, run_id = shop.play()
    assert res.returncode == 1
    before = shop.sums()
    for command in ("resume", "rollback"):
        refused = shop.cli(command, run_id, "--yes", "--decide", "restore/Snapshot@db1=skip" if command == "rollback"
                           else "restore/Snapshot@db1=done")
        out = refused.stdout + refused.stderr
        assert refused.returncode == 2, out
        assert "nothing to decide" in out and "restore/Snapshot" in out, out
        assert shop.sums() == before
    typo = shop.cli("resume", run_id, "--decide", "restore/Snapshoot@db1=done")
    assert typo.returncode == 2 and "no step 'restore/Snapshoot'" in typo.stderr and "restore/Snapshot" in typo.stderr
    host = shop.cli("resume", run_id, "--decide", "restore/Snapshot@db9=done")
    assert host.returncode == 2 and "db9" in host.stderr


FENCE_RUNBOOK = """
name: fence and snapshot
targets: db1
stages:
  - name: restore
    steps:
      - name: Fence
        stop_writes: {}
      - name: Snapshot
        snapshot: {schema: shop, tables: [t]}
"""


def test_resume_after_a_rollback_killed_after_the_reopen_fences_again(tmp_path: Path, lab_server: tuple[str, int]) -> None:
    """Issue 15 item 4 as reported: `runbook rollback` killed after the fence's undo reopened
    writes; `runbook resume` said "0 in doubt" and the run succeeded with the fence gone. The
    fence step is in doubt now: its probe finds writes open and it fences again."""
    import pymysql

    inv, port = lab_server
    conn = pymysql.connect(host="127.0.0.1", port=port, user="root", autocommit=True)
    with conn.cursor() as cur:
        cur.execute("SET GLOBAL read_only = OFF")
        cur.execute("DROP DATABASE IF EXISTS shop")
        cur.execute("CREATE DATABASE shop")
        cur.execute("CREATE TABLE shop.t (id INT PRIMARY KEY)")
    (tmp_path / "rb.yml").write_text(FENCE_RUNBOOK)
    shop = Shop(tmp_path, "shop", tmp_path / "none", tmp_path / "gate")

    def read_only() -> int:
        c = pymysql.connect(host="127.0.0.1", port=port, user="root", autocommit=True)
        try:
            with c.cursor() as cur:
                cur.execute("SELECT @@GLOBAL.read_only")
                return int(cur.fetchone()[0])  # type: ignore[index]
        finally:
            c.close()

    try:
        res = shop.cli("play", "rb.yml", "-i", inv)
        assert res.returncode == 0, res.stdout
        run_id = re.search(r"^RUN (\S+) ·", res.stdout, re.M).group(1)  # type: ignore[union-attr]
        assert read_only() == 1
        killed = shop.cli("rollback", run_id, "--yes", env={"RUNBOOK_FAULT_KILL_BEFORE_OUTCOME": "undo:restore/Fence"})
        assert killed.returncode == -signal.SIGKILL, killed.stdout
        assert read_only() == 0  # the undo ran: writes are open
        resumed = shop.cli("resume", run_id)
        out = resumed.stdout + resumed.stderr
        assert "1 in doubt (restore/Fence@db1)" in out, out
        assert resumed.returncode == 0, out
        assert read_only() == 1, out  # fenced again, as the run means
    finally:
        with conn.cursor() as cur:
            cur.execute("SET GLOBAL read_only = OFF")
            cur.execute("DROP DATABASE IF EXISTS shop")
        conn.close()
