"""The restore's spool files carry their process id, so a later restore removes what a killed
one left in $TMPDIR (multi-GB copies must not pile up over a night of kill -9 and resume)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from engine.mysql.dump.source import spool_file, sweep_stale


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid  # reaped: no process has it now (pids are not reused this fast)


def test_a_new_spool_file_sweeps_the_files_of_dead_restores(tmp_path: Path) -> None:
    dead = _dead_pid()
    stale = [tmp_path / f"runbook-dump-{dead}-abc.sql", tmp_path / f"runbook-restore-{dead}-x.rows"]
    alive = tmp_path / f"runbook-dump-{os.getppid()}-keep.sql"  # our parent runs: not ours to remove
    other = tmp_path / "runbook-dump-notapid-x.sql"
    unrelated = tmp_path / f"notes-{dead}-a-b.txt"
    for p in (*stale, alive, other, unrelated):
        p.write_bytes(b"x")
    fd, path = spool_file("dump", ".sql", str(tmp_path))
    os.close(fd)
    assert Path(path).name.startswith(f"runbook-dump-{os.getpid()}-")
    assert not any(p.exists() for p in stale)
    assert alive.exists() and other.exists() and unrelated.exists() and Path(path).exists()
    assert sweep_stale(str(tmp_path)) == []  # nothing more: our own file stays
