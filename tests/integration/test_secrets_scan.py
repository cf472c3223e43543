"""No secret reaches the journal, the output or a report.

Four secrets, each from a different place: ``mysql_password`` of a dedicated MySQL user in the
inventory (used for every sql step), another secret-named inventory var, ``-e api_token=...``
and a runbook var ``db_password: "{{ lookup('env', 'RB_TEST_SECRET') }}"``. The runbook echoes
them over SSH, stores one in a table and reads it back, makes MariaDB put one in an error
message, fails with them in the message, and has an undo that needs one. Then every byte under
RUNBOOK_HOME, every report and the stdout/stderr of every command (play, show, runs, report,
resume, rollback) is scanned for every secret value.
"""

from __future__ import annotations

import os
import re
import secrets
import string
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest

from tests.sshd import SshdServer

pytestmark = pytest.mark.integration


def _secret() -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(20))


@pytest.fixture
def secret_values() -> dict[str, str]:
    return {"mysql_password": _secret(), "vault_password": _secret(), "api_token": _secret(), "db_password": _secret()}


@pytest.fixture
def mysql_user(db: pymysql.connections.Connection, schema: str, secret_values: dict[str, str]) -> Iterator[str]:
    user = f"rbsec_{uuid.uuid4().hex[:8]}"
    hosts = ("%", "localhost")
    with db.cursor() as cur:
        for h in hosts:
            cur.execute(f"CREATE USER '{user}'@'{h}' IDENTIFIED BY '{secret_values['mysql_password']}'")  # alphanumeric
            cur.execute(f"GRANT ALL ON `{schema}`.* TO '{user}'@'{h}'")
    yield user
    with db.cursor() as cur:
        for h in hosts:
            cur.execute(f"DROP USER IF EXISTS '{user}'@'{h}'")


RUNBOOK = """
name: secrets stay secret
targets: db1
vars:
  schema: {schema}
  db_password: "{{{{ lookup('env', 'RB_TEST_SECRET') }}}}"
stages:
  - name: use them
    steps:
      - name: Table
        sql: CREATE TABLE IF NOT EXISTS {{{{ schema | ident }}}}.t (id INT PRIMARY KEY, v VARCHAR(100))
      - name: Who am I in MySQL
        sql: SELECT CURRENT_USER() AS u
        register: who
      - name: Connected as the dedicated user
        assert: {{that: ["who.rows[0].u.startswith('{user}@')"]}}
      - name: Echo the token over ssh
        shell: echo {{{{ api_token }}}}
        register: tok
      - name: The token was really there
        assert: {{that: ["tok.stdout | trim == api_token"]}}
      - name: Everything to stderr
        shell: echo "token={{{{ api_token }}}} db={{{{ db_password }}}} vault={{{{ vault_password }}}}" >&2; exit 3
        ignore_errors: true
      - name: Store one
        sql: REPLACE INTO {{{{ schema | ident }}}}.t VALUES (1, {{{{ db_password }}}})
        undo:
          sql: REPLACE INTO {{{{ schema | ident }}}}.t VALUES (2, {{{{ db_password }}}})
      - name: Read it back
        sql: SELECT v FROM {{{{ schema | ident }}}}.t WHERE id = 1
        register: back
      - name: A bound secret in a failing statement
        sql: SELECT {{{{ db_password }}}} AS p FROM {{{{ schema | ident }}}}.missing_table
        ignore_errors: true
      - name: The server names a secret in its error
        sql: SELECT 1 FROM {{{{ schema | ident }}}}.{{{{ mysql_password | ident }}}}
        ignore_errors: true
      - name: Fail with them in the message
        fail: {{msg: "token {{{{ api_token }}}} db {{{{ db_password }}}} vault {{{{ vault_password }}}} back {{{{ back.rows[0].v }}}}"}}
"""


def test_no_secret_reaches_journal_output_or_reports(tmp_path: Path, db, schema, mysql_user, secret_values,
                                                     sshd: SshdServer):
    s = secret_values
    home = tmp_path / "home"
    reports = tmp_path / "reports"
    reports.mkdir()
    (tmp_path / "inv.yml").write_text(f"""
all:
  vars:
    mysql_host: 127.0.0.1
    mysql_port: 3306
    mysql_user: {mysql_user}
    mysql_password: "{s['mysql_password']}"
  hosts:
    db1:
{sshd.host_vars_yaml()}
      vault_password: "{s['vault_password']}"
""")
    (tmp_path / "rb.yml").write_text(RUNBOOK.format(schema=schema, user=mysql_user))
    env = dict(os.environ, NO_COLOR="1", RUNBOOK_HOME=str(home), RB_TEST_SECRET=s["db_password"])
    env.pop("RUNBOOK_FAULT_KILL_AT_SEQ", None)
    outputs: dict[str, str] = {}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        res = subprocess.run([sys.executable, "-m", "engine.cli", *args], cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=60, stdin=subprocess.DEVNULL)
        outputs[f"`runbook {' '.join(args)}` stdout"] = res.stdout
        outputs[f"`runbook {' '.join(args)}` stderr"] = res.stderr
        assert "Traceback" not in res.stdout + res.stderr, res.stdout + res.stderr
        return res

    run_ids = []
    for suffix in ("json", "html", "md", "xml"):
        res = cli("play", "rb.yml", "-i", "inv.yml", "-e", f"api_token={s['api_token']}", "-v",
                  "--report", str(reports / f"report.{suffix}"))
        out = res.stdout + res.stderr
        assert res.returncode == 1, out
        # It did what the secrets are for: every step but the last passed (or failed as meant).
        assert re.search(r"^ok\s+db1\s+Connected as the dedicated user", res.stdout, re.M), out
        assert re.search(r"^ok\s+db1\s+The token was really there", res.stdout, re.M), out
        assert re.search(r"^failed\s+db1\s+Fail with them in the message", res.stdout, re.M), out
        assert "doesn't exist" in out and "********" in out
        run_ids.append(re.search(r"RUN_ID (\S+)", res.stdout).group(1))  # type: ignore[union-attr]
    assert [r[0] for r in _rows(db, f"SELECT v FROM `{schema}`.t")] == [s["db_password"]]
    run_id = run_ids[-1]

    assert cli("show", run_id).returncode == 0
    assert cli("runs").returncode == 0
    assert cli("report", run_id, "--format", "html").returncode == 0
    assert cli("report", run_id, "--format", "json", "-o", str(reports / "again.json")).returncode == 0

    # Resume: the journal does not keep the -e secret, so the step that reads it fails and says
    # why, instead of running with a literal "********".
    res = cli("resume", run_id)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "api_token was given with -e" in res.stdout + res.stderr

    # Rollback: the undo reads db_password (lookup('env')): it gets the real value again, not the
    # mask the journal holds in its place.
    res = cli("rollback", run_id, "--yes")
    assert res.returncode == 0, res.stdout + res.stderr
    assert dict(_rows(db, f"SELECT id, v FROM `{schema}`.t")) == {1: s["db_password"], 2: s["db_password"]}

    # The scan: every file the engine wrote, every report, every output.
    texts = dict(outputs)
    for root in (home, reports):
        for path in root.rglob("*"):
            if path.is_file():
                texts[str(path)] = path.read_bytes().decode("utf-8", "replace")
    assert any(p.endswith("journal.jsonl") for p in texts) and len(list(reports.iterdir())) == 5
    leaks = [f"{name} leaks in {where}" for where, text in texts.items() for name, value in s.items() if value in text]
    assert not leaks, "\n".join(leaks)


def _rows(db: pymysql.connections.Connection, sql: str) -> list[tuple]:
    with db.cursor() as cur:
        cur.execute(sql)
        return list(cur.fetchall())
