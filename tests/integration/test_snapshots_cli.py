"""`runbook snapshots list` and `runbook snapshots drop RUN_ID` against the real MariaDB."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, NO_COLOR="1", RUNBOOK_HOME=str(tmp_path / ".runbook"))
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], env=env, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)


def test_list_and_drop(tmp_path: Path, db, schema: str) -> None:
    with db.cursor() as cur:
        cur.execute(f"CREATE TABLE `{schema}`.t (id INT PRIMARY KEY, v VARCHAR(10))")
        cur.execute(f"INSERT INTO `{schema}`.t VALUES (1, 'a'), (2, 'b'), (3, 'c')")
    inv = tmp_path / "inv.yml"
    inv.write_text("all:\n  vars: {mysql_user: root, mysql_host: 127.0.0.1}\n  hosts:\n    h: {connection: local}\n")
    rb = tmp_path / "snap.yml"
    rb.write_text(f"name: snap\nstages:\n  - name: protect\n    steps:\n      - name: Snapshot\n"
                  f"        snapshot: {{schema: {schema}, tables: [t]}}\n")
    res = cli(tmp_path, "play", str(rb), "-i", str(inv))
    assert res.returncode == 0, res.stdout + res.stderr
    run_id = next(p.name for p in (tmp_path / ".runbook").iterdir() if p.is_dir() and p.name[0].isdigit())
    snap_schema = "_rb_snap_" + run_id.replace("-", "_")

    listed = cli(tmp_path, "snapshots", "list", "-i", str(inv))
    assert listed.returncode == 0, listed.stderr
    assert run_id in listed.stdout and f"{schema}.t: 3 rows" in listed.stdout

    refused = cli(tmp_path, "snapshots", "drop", run_id, "-i", str(inv))
    assert refused.returncode == 2 and "--yes" in refused.stderr  # no terminal, no --yes: nothing dropped
    with db.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (snap_schema,))
        assert cur.fetchone()[0] == 1

    dropped = cli(tmp_path, "snapshots", "drop", run_id, "-i", str(inv), "--yes")
    assert dropped.returncode == 0, dropped.stdout + dropped.stderr
    assert snap_schema in dropped.stdout
    with db.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (snap_schema,))
        assert cur.fetchone()[0] == 0
    assert run_id not in cli(tmp_path, "snapshots", "list", "-i", str(inv)).stdout
    # The table itself is untouched.
    with db.cursor() as cur:
        cur.execute(f"SELECT COUNT(*) FROM `{schema}`.t")
        assert cur.fetchone()[0] == 3


def test_list_and_drop_by_run_id_alone(tmp_path: Path, db, schema: str) -> None:
    """Issue 20 item 4: `runbook snapshots list RUN_ID`, as README and emergency.yml document it,
    was refused ("unexpected extra argument"). The run id is enough: its journal names the
    inventory and the hosts the run ran on."""
    with db.cursor() as cur:
        cur.execute(f"CREATE TABLE `{schema}`.t (id INT PRIMARY KEY)")
        cur.execute(f"INSERT INTO `{schema}`.t VALUES (1), (2)")
    inv = tmp_path / "inv.yml"
    inv.write_text("all:\n  vars: {mysql_user: root, mysql_host: 127.0.0.1}\n  hosts:\n    h: {connection: local}\n"
                   "    other: {connection: local}\n")
    rb = tmp_path / "snap.yml"
    rb.write_text(f"name: snap\ntargets: h\nstages:\n  - name: protect\n    steps:\n      - name: Snapshot\n"
                  f"        snapshot: {{schema: {schema}, tables: [t]}}\n")
    res = cli(tmp_path, "play", str(rb), "-i", str(inv))
    assert res.returncode == 0, res.stdout + res.stderr
    run_id = next(p.name for p in (tmp_path / ".runbook").iterdir() if p.is_dir() and p.name[0].isdigit())

    listed = cli(tmp_path, "snapshots", "list", run_id)  # no -i, two hosts in the inventory: the run's host
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert listed.stdout.startswith(run_id) and f"{schema}.t: 2 rows" in listed.stdout, listed.stdout
    other = cli(tmp_path, "snapshots", "list", "20990101-000000-none", "-i", str(inv), "--host", "h")
    assert other.returncode == 1 and "no snapshot of run 20990101-000000-none on h" in other.stdout
    assert cli(tmp_path, "snapshots", "list").returncode == 2  # nothing says which server

    dropped = cli(tmp_path, "snapshots", "drop", run_id, "--yes")
    assert dropped.returncode == 0, dropped.stdout + dropped.stderr
    assert "_rb_snap_" in dropped.stdout
    gone = cli(tmp_path, "snapshots", "list", run_id)
    assert gone.returncode == 1 and "no snapshot of run" in gone.stdout
