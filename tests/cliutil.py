"""Driving the real `runbook` CLI from integration tests, and reading MariaDB back."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pymysql


def cli_env(home: Path) -> dict[str, str]:
    env = dict(os.environ, NO_COLOR="1", RUNBOOK_HOME=str(home))
    env.pop("RUNBOOK_FAULT_KILL_AT_SEQ", None)
    return env


def cli(*args: str, cwd: Path, home: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], cwd=cwd, env=cli_env(home), capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def out_of(res: subprocess.CompletedProcess[str]) -> str:
    out = res.stdout + res.stderr
    assert "Traceback" not in out, out
    return out


def run_id_of(res: subprocess.CompletedProcess[str]) -> str:
    m = re.search(r"RUN_ID (\S+)", res.stdout)
    assert m, res.stdout + res.stderr
    return m.group(1)


def rows(db: pymysql.connections.Connection, sql: str) -> list[tuple]:
    with db.cursor() as cur:
        cur.execute(sql)
        return list(cur.fetchall())
