"""One runbook that mixes local shell, shell over a real sshd and SQL on the real MariaDB, and
uses every keyword of the executor, run through the real CLI. Effects are asserted on the
database and the file system, not only on the output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pymysql
import pytest

from tests.sshd import SshdServer

pytestmark = pytest.mark.integration

RUNBOOK = """
name: Every keyword
description: local shell, ssh shell and SQL in one run
targets: all
budget: 5m
vars:
  schema: {schema}
  marker: {work}/marker
  tables: [alpha, beta, gamma]
  attempts_file: {work}/attempts
stages:
  - name: prepare
    budget: 30s
    targets: ctl
    steps:
      - name: Schema
        sql: CREATE DATABASE IF NOT EXISTS {{{{ schema | ident }}}}
        unless: SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = {{{{ schema }}}}
      - name: Tables
        loop: "{{{{ tables }}}}"
        sql: CREATE TABLE IF NOT EXISTS {{{{ schema | ident }}}}.{{{{ item | ident }}}} (id INT PRIMARY KEY, host VARCHAR(64), note VARCHAR(200))
        register: created
      - name: Counter table
        sql: CREATE TABLE IF NOT EXISTS {{{{ schema | ident }}}}.counter (step VARCHAR(64) PRIMARY KEY, n INT NOT NULL)

  - name: work
    budget: 1m
    confirm: "Write into {{{{ schema }}}} on {{{{ inventory_hostname }}}}"
    steps:
      - name: Who am I
        shell: echo "$(id -un) on $(hostname) via {{{{ inventory_hostname }}}}"
        register: whoami
        changed_when: false
      - name: Insert per host
        sql: >-
          INSERT INTO {{{{ schema | ident }}}}.alpha (id, host, note)
          VALUES ({{{{ 1 if inventory_hostname == 'ctl' else 2 }}}}, {{{{ inventory_hostname }}}}, {{{{ whoami.stdout }}}})
        unless: SELECT COUNT(*) FROM {{{{ schema | ident }}}}.alpha WHERE host = {{{{ inventory_hostname }}}}
      - name: Only once
        run_once: true
        sql: INSERT INTO {{{{ schema | ident }}}}.counter (step, n) VALUES ('once', 1) ON DUPLICATE KEY UPDATE n = n + 1
        register: once
      - name: Skipped by when
        when: inventory_hostname == 'nobody'
        shell: echo never
        register: never
      - name: Skipped result is defined
        assert:
          that: [never.skipped, "never.status == 'skipped'", "once.changed or once.rowcount >= 0"]
      - name: Eventually true
        shell: "n=$(cat {{{{ attempts_file }}}}.{{{{ inventory_hostname }}}} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {{{{ attempts_file }}}}.{{{{ inventory_hostname }}}}; echo $n"
        register: poll
        until: poll.stdout | int >= 3
        retries: 5
        delay: 0.1
      - name: Failed when
        shell: echo "status=degraded"
        register: health
        failed_when: "'degraded' in health.stdout"
        ignore_errors: true
      - name: Timeout
        shell: sleep 5
        timeout: 1
        ignore_errors: true
        register: slow
      - name: Marker
        shell: "touch {{{{ marker }}}}.{{{{ inventory_hostname }}}}"
        creates: "{{{{ marker }}}}.{{{{ inventory_hostname }}}}"
      - name: Tagged out
        shell: "touch {{{{ marker }}}}.skipped-tag"
        tags: [noisy]
      - name: Facts
        set_fact:
          summary: "{{{{ inventory_hostname }}}}:{{{{ poll.attempts | default(1) }}}}"
      - name: Binding is safe
        sql: INSERT INTO {{{{ schema | ident }}}}.beta (id, host, note) VALUES ({{{{ 10 + (1 if inventory_hostname == 'ctl' else 2) }}}}, {{{{ inventory_hostname }}}}, {{{{ evil }}}})
        unless: SELECT COUNT(*) FROM {{{{ schema | ident }}}}.beta WHERE host = {{{{ inventory_hostname }}}}

  - name: never for replicas
    when: "'replicas' in group_names"
    steps:
      - name: Not here
        shell: "touch {{{{ marker }}}}.replicas"

  - name: tolerant
    on_failure: continue
    targets: db1
    steps:
      - name: Breaks
        shell: exit 3
      - name: Still run after the failure
        shell: "touch {{{{ marker }}}}.after-break.{{{{ inventory_hostname }}}}"

  - name: closing
    targets: ctl
    steps:
      - name: Summary
        sql: SELECT COUNT(*) AS n FROM {{{{ schema | ident }}}}.alpha
        register: final
        failed_when: final.rows[0].n != 2
"""


def _inventory(sshd: SshdServer, work: Path) -> str:
    return f"""
all:
  vars:
    mysql_user: root
    mysql_port: 3306
  hosts:
    ctl:
      connection: local
      mysql_host: 127.0.0.1
  children:
    dbs:
      hosts:
        db1:
{sshd.host_vars_yaml(10)}
          mysql_host: 127.0.0.1
          mysql_via: tunnel
"""


def runbook_cli(*args: str, cwd: Path, env_extra: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, NO_COLOR="1", RUNBOOK_HOME=str(cwd / ".runbook"))
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.fixture
def lab(tmp_path: Path, sshd: SshdServer, schema: str) -> tuple[Path, Path, Path]:
    work = tmp_path / "work"
    work.mkdir()
    rb = tmp_path / "every.yml"
    rb.write_text(RUNBOOK.format(schema=schema, work=work))
    inv = tmp_path / "inv.yml"
    inv.write_text(_inventory(sshd, work))
    return rb, inv, work


def _rows(db: pymysql.connections.Connection, sql: str) -> list[tuple]:
    with db.cursor() as cur:
        cur.execute(sql)
        return list(cur.fetchall())


EVIL = "x'); DROP TABLE t; --"


def test_every_keyword_against_real_sshd_and_mariadb(lab, db, schema, tmp_path):
    rb, inv, work = lab
    res = runbook_cli("play", str(rb), "-i", str(inv), "-e", f"evil={EVIL}", "--yes", "--skip-tags", "noisy",
                      "--forks", "4", "--report", str(tmp_path / "r.json"), cwd=tmp_path)
    out = res.stdout + res.stderr
    assert "Traceback" not in out
    # The tolerant stage fails on db1 (exit 3) and the run goes on: exit 1 at the end.
    assert res.returncode == 1, out

    # SQL effects: one row per host (ctl locally, db1 through the SSH tunnel), and run_once ran once.
    assert sorted(_rows(db, f"SELECT id, host FROM `{schema}`.alpha")) == [(1, "ctl"), (2, "db1")]
    assert _rows(db, f"SELECT n FROM `{schema}`.counter WHERE step = 'once'") == [(1,)]
    # The injection attempt landed as data, and the tables are all still there.
    assert sorted(_rows(db, f"SELECT note FROM `{schema}`.beta")) == [(EVIL,), (EVIL,)]
    assert len(_rows(db, f"SHOW TABLES FROM `{schema}`")) == 4
    # Shell over SSH ran as the ssh user; the note carries its output.
    notes = dict(_rows(db, f"SELECT host, note FROM `{schema}`.alpha"))
    assert notes["db1"].startswith("root on ") and notes["db1"].endswith("via db1")

    # until/retries: three attempts on each host.
    assert (work / "attempts.ctl").read_text().strip() == "3"
    assert (work / "attempts.db1").read_text().strip() == "3"
    # creates made the marker once per host; the tagged step was skipped; the stage `when` held.
    assert (work / "marker.ctl").exists() and (work / "marker.db1").exists()
    assert not (work / "marker.skipped-tag").exists()
    assert not (work / "marker.replicas").exists()
    assert (work / "marker.after-break.db1").exists()  # on_failure: continue went on

    lines = res.stdout.splitlines()
    assert any(ln.startswith("skipped") and "Skipped by when" in ln for ln in lines)
    assert any("Failed when" in ln and "ignored" in ln for ln in lines)
    assert any("Timeout" in ln and "timeout" in ln.lower() for ln in lines)
    assert any(ln.startswith("failed") and "Breaks" in ln and "db1" in ln for ln in lines)
    assert "confirmed by --yes" in res.stdout
    assert "RUN_ID" in res.stdout and "runbook resume" in res.stdout

    report = json.loads((tmp_path / "r.json").read_text())
    assert report  # the report holds the run

    # Second run: everything probe-guarded reports ok, nothing is inserted twice.
    res2 = runbook_cli("play", str(rb), "-i", str(inv), "-e", f"evil={EVIL}", "--yes", "--skip-tags", "noisy", cwd=tmp_path)
    assert res2.returncode == 1, res2.stdout + res2.stderr
    assert sorted(_rows(db, f"SELECT id, host FROM `{schema}`.alpha")) == [(1, "ctl"), (2, "db1")]
    second = res2.stdout.splitlines()
    assert any(ln.startswith("ok") and "Insert per host" in ln and "already done" in ln for ln in second)
    assert any(ln.startswith("ok") and "Marker" in ln and "creates" in ln for ln in second)


def test_check_mode_changes_nothing(lab, db, schema, tmp_path):
    rb, inv, work = lab
    res = runbook_cli("play", str(rb), "-i", str(inv), "-e", f"evil={EVIL}", "--check", "--limit", "ctl", cwd=tmp_path)
    out = res.stdout + res.stderr
    assert "Traceback" not in out
    assert res.returncode == 0, out
    assert "CHECK MODE" in res.stdout
    # Nothing was created: the schema has no table, no marker file exists.
    assert _rows(db, f"SHOW TABLES FROM `{schema}`") == []
    assert not list(work.glob("marker*"))
    assert any("would run" in ln for ln in res.stdout.splitlines())


def test_start_at_and_tags(lab, db, schema, tmp_path):
    rb, inv, work = lab
    res = runbook_cli("play", str(rb), "-i", str(inv), "-e", f"evil={EVIL}", "--yes", "--limit", "ctl",
                      "--start-at", "prepare/Counter table", "--tags", "noisy", cwd=tmp_path)
    out = res.stdout + res.stderr
    assert "Traceback" not in out
    # Only the tagged step ran (prepare's untagged steps were filtered by --tags).
    assert (work / "marker.skipped-tag").exists()
    assert _rows(db, f"SHOW TABLES FROM `{schema}`") == []


def test_confirmation_without_tty_is_refused(lab, db, schema, tmp_path):
    rb, inv, _ = lab
    res = runbook_cli("play", str(rb), "-i", str(inv), "-e", f"evil={EVIL}", "--limit", "ctl", cwd=tmp_path)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "confirmation" in (res.stdout + res.stderr)
    assert "--yes" in (res.stdout + res.stderr)
    # Refused before anything ran: not even the prepare stage (which has no confirm).
    assert _rows(db, f"SHOW TABLES FROM `{schema}`") == []
    assert not (tmp_path / ".runbook").exists() or not any(p.name[0].isdigit() for p in (tmp_path / ".runbook").iterdir())
