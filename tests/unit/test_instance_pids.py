"""A private mariadbd's stale pid file never gets another process signalled.

After `kill -9` the pid file stays; pids are reused (pid_max is often 32768). Found the hard
way: the failover tests' resets sent SIGTERM to whatever held a dead lab server's old pid — six
times the machine's own MariaDB on port 3306, which every test shares."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from engine.mysql.instance import MariadbInstance, pid_runs


def test_a_stale_pid_file_naming_another_process_is_not_this_server(tmp_path: Path) -> None:
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        srv = MariadbInstance(tmp_path / "db1")
        srv.dir.mkdir()
        srv.pid_file.write_text(f"{other.pid}\n")  # the dead server's pid, now someone else's
        assert srv.pids() == [] and not srv.running
        srv.stop(limit=1)
        srv.kill()
        assert other.poll() is None  # untouched
        assert not pid_runs(other.pid, f"--datadir={srv.datadir}")
        assert pid_runs(other.pid, "time.sleep(60)")
    finally:
        other.kill()
        other.wait()
