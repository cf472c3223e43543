"""``runbook play`` with a snapshot and a restore step, SIGKILLed mid-restore, then
``runbook resume``: the run ends as an uninterrupted one would, each batch once; the plain-text
output shows the restore's progress lines; check mode prints the plan."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import DB1_INVENTORY
from tests.integration.restore_helpers import checksums, dump, execute, query

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]

RUNBOOK = """
name: Restore drill
targets: db1
stages:
  - name: restore
    steps:
      - name: Snapshot
        snapshot: {{schema: {target}, tables: [items]}}
      - name: Load
        restore:
          file: {path}
          schema: {target}
          truncate: true
          parallel: 2
          batch_bytes: 4096
        register: r
      - name: Counted
        assert: {{that: ["r.rows == 3000", "r.core_ok", "not r.partial"]}}
"""


@pytest.fixture
def schemas() -> Iterator[tuple[str, str]]:
    src, dst = f"rbt_csrc_{uuid.uuid4().hex[:8]}", f"rbt_cdst_{uuid.uuid4().hex[:8]}"
    for s in (src, dst):
        execute(None, f"CREATE DATABASE `{s}`")
    for s in (src, dst):
        execute(s, "CREATE TABLE items (id INT PRIMARY KEY, v VARCHAR(30))")
    execute(src, "INSERT INTO items SELECT seq, CONCAT('item ', seq) FROM seq_1_to_3000")
    execute(dst, "INSERT INTO items VALUES (1, 'damaged'), (5000, 'extra')")
    yield src, dst
    for s in (src, dst):
        execute(None, f"DROP DATABASE IF EXISTS `{s}`")
    for r in query("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE '\\_rb\\_snap\\_%%'"):
        if query(f"SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{r[0]}' AND TABLE_NAME LIKE '{dst}%%'")[0][0]:
            execute(None, f"DROP DATABASE `{r[0]}`")


def _cli(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = dict(os.environ, NO_COLOR="1", RUNBOOK_HOME=str(home), PYTHONPATH=str(ROOT), **(env or {}))
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], cwd=home.parent, env=full, text=True,
                          capture_output=True, timeout=300)


def test_play_killed_mid_restore_then_resume(schemas: tuple[str, str], tmp_path: Path) -> None:
    src, dst = schemas
    path = dump(src, str(tmp_path / "items.sql.gz"), "--net-buffer-length=4096")
    (tmp_path / "rb.yml").write_text(RUNBOOK.format(target=dst, path=path))
    (tmp_path / "inv.yml").write_text(DB1_INVENTORY)
    home = tmp_path / "home"
    killed = _cli(home, "play", "rb.yml", "-i", "inv.yml", "--yes", env={"RUNBOOK_FAULT_RESTORE_KILL": "after_commit:3"})
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    run_id = next(d.name for d in home.iterdir() if d.is_dir())
    committed = query("SELECT COUNT(*) FROM _runbook.restore_progress WHERE run_id = %s AND batch >= 0", [run_id])[0][0]
    assert committed >= 1  # two workers: the 3rd batch started has committed, maybe not the 2nd
    resumed = _cli(home, "resume", run_id, "--yes")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "Traceback" not in resumed.stdout + resumed.stderr
    assert checksums(dst, ["items"]) == checksums(src, ["items"])
    rows = query("SELECT tbl, batch, part, `rows` FROM _runbook.restore_progress WHERE run_id = %s AND batch >= 0", [run_id])
    assert len(rows) == len({r[:3] for r in rows}) and sum(r[3] for r in rows) == 3000
    assert "restore " in resumed.stdout  # the progress lines (plain text: not a terminal)


def test_truncate_refused_without_snapshot(schemas: tuple[str, str], tmp_path: Path) -> None:
    src, dst = schemas
    path = dump(src, str(tmp_path / "items.sql"))
    text = RUNBOOK.format(target=dst, path=path).replace(f"      - name: Snapshot\n        snapshot: {{schema: {dst}, tables: [items]}}\n", "")
    (tmp_path / "rb.yml").write_text(text)
    (tmp_path / "inv.yml").write_text(DB1_INVENTORY)
    home = tmp_path / "home"
    out = _cli(home, "play", "rb.yml", "-i", "inv.yml", "--yes")
    assert out.returncode == 1
    assert "took no snapshot" in out.stdout and "nothing was written" in out.stdout
    assert query(f"SELECT COUNT(*) FROM `{dst}`.items")[0][0] == 2


def test_check_mode_prints_plan(schemas: tuple[str, str], tmp_path: Path) -> None:
    src, dst = schemas
    path = dump(src, str(tmp_path / "items.sql"))
    (tmp_path / "rb.yml").write_text(RUNBOOK.format(target=dst, path=path))
    (tmp_path / "inv.yml").write_text(DB1_INVENTORY)
    out = _cli(tmp_path / "home", "play", "rb.yml", "-i", "inv.yml", "--check")
    assert "items: 3,000 rows" in out.stdout, out.stdout + out.stderr
    assert query(f"SELECT COUNT(*) FROM `{dst}`.items")[0][0] == 2
