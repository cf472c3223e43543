"""Driving the real `runbook` CLI from integration tests, and reading MariaDB back."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pymysql


def cli_env(home: Path) -> dict[str, str]:
    env = dict(os.environ, NO_COLOR="1", RUNBOOK_HOME=str(home))
    env.pop("RUNBOOK_FAULT_KILL_AT_SEQ", None)
    return env


def cli(*args: str, cwd: Path, home: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], cwd=cwd, env=cli_env(home), capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def cli_in(*args: str, cwd: Path, env_extra: dict[str, str] | None = None, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """`runbook` run in ``cwd`` with its home in ``cwd/home``, no fault hook of the test's own
    environment, no terminal; a traceback fails the test."""
    env = dict(os.environ, NO_COLOR="1", RUNBOOK_HOME=str(cwd / "home"))
    for k in [k for k in env if k.startswith("RUNBOOK_FAULT_")]:
        env.pop(k)
    env.update(env_extra or {})
    res = subprocess.run([sys.executable, "-m", "engine.cli", *args], cwd=cwd, env=env, capture_output=True, text=True,
                         timeout=timeout, stdin=subprocess.DEVNULL)
    assert "Traceback" not in res.stdout + res.stderr, res.stdout + res.stderr
    return res


def only_run(cwd: Path) -> str:
    """The id of the one run in ``cwd/home`` (as :func:`cli_in` keeps it)."""
    runs = [p.name for p in (cwd / "home").iterdir() if p.is_dir() and p.name[0].isdigit()]
    assert len(runs) == 1, runs
    return runs[0]


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


def rows_on(conn: pymysql.connections.Connection, *statements: str, args: Any = None) -> list[tuple[Any, ...]]:
    """Run the statements on ``conn`` (each with ``args``), then close it: the rows of the last one."""
    try:
        out: list[tuple[Any, ...]] = []
        with conn.cursor() as cur:
            for s in statements:
                cur.execute(s, args)
                out = list(cur.fetchall())
        return out
    finally:
        conn.close()


def run_script(script: str, **connect: Any) -> None:
    """A script of several statements on a connection of its own (``connect``: pymysql.connect's
    arguments), autocommit; every result read, so an error in any statement raises."""
    conn = pymysql.connect(autocommit=True, client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS, **connect)
    try:
        with conn.cursor() as cur:
            cur.execute(script)
            while cur.nextset():
                pass
    finally:
        conn.close()


def wait_for_journal_record(home: Path, proc: subprocess.Popen[str], what: str, **fields: object) -> None:
    """Until a journal under ``home`` (``RUNBOOK_HOME``) holds a record with these fields
    (``what`` names it): a test acts on what the run did, never on how long it has run."""
    deadline = time.monotonic() + 30  # a guard against a hang, not a timing
    while True:
        exited = proc.poll() is not None  # before the look: a record written before the exit is seen
        for journal in home.glob("*/journal.jsonl"):
            for line in journal.read_text().splitlines():
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue  # a line being written
                if all(rec.get(k) == v for k, v in fields.items()):
                    return
        assert not exited, f"the run ended before {what} was journaled:\n{proc.communicate()[0]}"
        assert time.monotonic() < deadline, f"{what} was never journaled"
        time.sleep(0.01)
