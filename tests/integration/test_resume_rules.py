"""The rules of `runbook resume`, through the real CLI on the real MariaDB (and the real sshd
for the re-probing play): continue a failed run after the operator fixed the cause, refuse a
changed runbook or inventory unless --force, one live process per run and per host."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pymysql
import pytest

from tests.cliutil import cli, cli_env, out_of, rows, run_id_of
from tests.sshd import SshdServer

pytestmark = pytest.mark.integration


def execute(db: pymysql.connections.Connection, *statements: str) -> None:
    with db.cursor() as cur:
        for s in statements:
            cur.execute(s)


def counter(db: pymysql.connections.Connection, schema: str) -> dict[str, int]:
    return dict(rows(db, f"SELECT step, n FROM `{schema}`.counter"))


INVENTORY = """
all:
  vars: {mysql_user: root, mysql_host: 127.0.0.1, mysql_port: 3306}
  hosts:
    ctl: {connection: local}
"""

RUNBOOK = """
name: resume drill
targets: ctl
vars:
  schema: {schema}
stages:
  - name: prepare
    steps:
      - name: Read setting
        sql: SELECT x FROM {{{{ schema | ident }}}}.cfg
        register: earlier
      - name: Bump
        sql: INSERT INTO {{{{ schema | ident }}}}.counter VALUES ('prepare', 1) ON DUPLICATE KEY UPDATE n = n + 1
      - name: Remember
        set_fact: {{remembered: "{{{{ earlier.rows[0].x }}}}-fact"}}
  - name: apply
    steps:
      - name: Bump apply
        sql: INSERT INTO {{{{ schema | ident }}}}.counter VALUES ('apply', 1) ON DUPLICATE KEY UPDATE n = n + 1
      - name: Needs a table
        sql: INSERT INTO {{{{ schema | ident }}}}.later (v) VALUES ('made')
      - name: Use what was read
        sql: INSERT INTO {{{{ schema | ident }}}}.out (v) VALUES ({{{{ earlier.rows[0].x }}}}), ({{{{ remembered }}}})
"""


@pytest.fixture
def lab(tmp_path: Path, db: pymysql.connections.Connection, schema: str) -> Path:
    execute(db, f"CREATE TABLE `{schema}`.cfg (x VARCHAR(20))", f"INSERT INTO `{schema}`.cfg VALUES ('first')",
            f"CREATE TABLE `{schema}`.counter (step VARCHAR(20) PRIMARY KEY, n INT NOT NULL)",
            f"CREATE TABLE `{schema}`.out (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(50))")
    (tmp_path / "inv.yml").write_text(INVENTORY)
    (tmp_path / "rb.yml").write_text(RUNBOOK.format(schema=schema))
    return tmp_path


def play_until_failure(lab: Path, db, schema: str) -> str:
    res = cli("play", "rb.yml", "-i", "inv.yml", cwd=lab, home=lab / "home")
    out = out_of(res)
    assert res.returncode == 1, out
    assert "later' doesn't exist" in out
    assert counter(db, schema) == {"prepare": 1, "apply": 1}
    assert rows(db, f"SELECT v FROM `{schema}`.out") == []
    run_id = run_id_of(res)
    assert f"runbook resume {run_id}" in res.stdout
    return run_id


def test_resume_after_the_operator_fixed_the_cause(lab, db, schema):
    run_id = play_until_failure(lab, db, schema)
    # The operator fixes the cause; meanwhile the value the first run read changes.
    execute(db, f"CREATE TABLE `{schema}`.later (v VARCHAR(20))", f"UPDATE `{schema}`.cfg SET x = 'second'")

    res = cli("resume", run_id, cwd=lab, home=lab / "home")
    out = out_of(res)
    assert res.returncode == 0, out
    assert "1 failed" in out  # the analysis line: what the journal says before redo
    # Done steps are not run again (the counters did not move), the failed step and the rest ran.
    assert counter(db, schema) == {"prepare": 1, "apply": 1}, out
    assert rows(db, f"SELECT v FROM `{schema}`.later") == [("made",)]
    # Registered results and facts of earlier steps come from the journal: the first run's value.
    assert [r[0] for r in rows(db, f"SELECT v FROM `{schema}`.out ORDER BY id")] == ["first", "first-fact"], out
    assert "STAGE [prepare] skipped" in out  # the whole stage was done: not even started again

    # A run that succeeded has nothing to resume, and runs nothing.
    again = cli("resume", run_id, cwd=lab, home=lab / "home")
    assert again.returncode == 0, out_of(again)
    assert "nothing to resume" in again.stdout
    assert counter(db, schema) == {"prepare": 1, "apply": 1}
    assert len(rows(db, f"SELECT v FROM `{schema}`.out")) == 2


def test_resume_refuses_a_changed_runbook_or_inventory_unless_forced(lab, db, schema):
    run_id = play_until_failure(lab, db, schema)
    execute(db, f"CREATE TABLE `{schema}`.later (v VARCHAR(20))")
    rb, inv = lab / "rb.yml", lab / "inv.yml"
    original_rb, original_inv = rb.read_text(), inv.read_text()

    rb.write_text(original_rb + "\n# edited during the incident\n")
    res = cli("resume", run_id, cwd=lab, home=lab / "home")
    out = out_of(res)
    assert res.returncode == 2, out
    assert str(rb.resolve()) in out and "changed" in out and "--force" in out
    assert rows(db, f"SELECT v FROM `{schema}`.later") == []  # nothing ran

    rb.write_text(original_rb)
    inv.write_text(original_inv + "\n# edited too\n")
    res = cli("resume", run_id, cwd=lab, home=lab / "home")
    out = out_of(res)
    assert res.returncode == 2, out
    assert str(inv.resolve()) in out and str(rb.resolve()) not in out
    assert rows(db, f"SELECT v FROM `{schema}`.later") == []

    res = cli("resume", run_id, "--force", cwd=lab, home=lab / "home")
    out = out_of(res)
    assert res.returncode == 0, out
    assert rows(db, f"SELECT v FROM `{schema}`.later") == [("made",)]
    assert counter(db, schema) == {"prepare": 1, "apply": 1}


def test_resume_of_an_unknown_run(lab):
    res = cli("resume", "20200101-000000-beef", cwd=lab, home=lab / "home")
    out = out_of(res)
    assert res.returncode == 2, out
    assert "no run '20200101-000000-beef'" in out and str(lab / "home") in out
    bad = cli("resume", "../../etc", cwd=lab, home=lab / "home")
    assert bad.returncode == 2, out_of(bad)


WAITING_RUNBOOK = """
name: long step
targets: ctl
stages:
  - name: wait
    steps:
      - name: Wait for the release file
        shell: touch {dir}/started; for i in $(seq 400); do [ -f {dir}/release ] && exit 0; sleep 0.05; done; exit 1
      - name: After
        shell: echo done >> {dir}/after
"""


def _wait_for(path: Path, proc: subprocess.Popen[str], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def test_one_live_process_per_run_and_per_host(lab):
    (lab / "wait.yml").write_text(WAITING_RUNBOOK.format(dir=lab))
    home = lab / "home"
    first = subprocess.Popen([sys.executable, "-m", "engine.cli", "play", "wait.yml", "-i", "inv.yml"], cwd=lab,
                             env=cli_env(home), text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL)
    try:
        _wait_for(lab / "started", first)
        (run_id,) = [d.name for d in home.iterdir()]

        # The same run from a second process: refused, naming the live process and its host.
        res = cli("resume", run_id, cwd=lab, home=home)
        out = out_of(res)
        assert res.returncode == 2, out
        assert f"run {run_id} is already running in process {first.pid} on {socket.gethostname()}" in out

        # A new run on the same host: refused, naming the run that holds it; it leaves nothing behind.
        res = cli("play", "wait.yml", "-i", "inv.yml", cwd=lab, home=home)
        out = out_of(res)
        assert res.returncode == 2, out
        assert f"run {run_id} (process {first.pid}" in out and "ctl" in out
        assert [d.name for d in home.iterdir()] == [run_id]
        runs = cli("runs", cwd=lab, home=home)
        assert "running" in runs.stdout and "unreadable" not in runs.stdout
        assert not (lab / "after").exists()
    finally:
        (lab / "release").touch()
        out, _ = first.communicate(timeout=30)
    assert first.returncode == 0, out
    assert (lab / "after").read_text() == "done\n"  # the refused run ran nothing


IDEMPOTENT_RUNBOOK = """
name: re-probe
targets: db1
vars:
  schema: {schema}
  dir: {dir}
stages:
  - name: converge
    steps:
      - name: Table
        sql: CREATE TABLE {{{{ schema | ident }}}}.items (id INT PRIMARY KEY, v VARCHAR(20))
        unless: >-
          SELECT COUNT(*) FROM information_schema.TABLES
          WHERE TABLE_SCHEMA = {{{{ schema }}}} AND TABLE_NAME = 'items'
      - name: Row
        sql: INSERT INTO {{{{ schema | ident }}}}.items VALUES (1, 'one')
        unless: SELECT COUNT(*) FROM {{{{ schema | ident }}}}.items WHERE id = 1
      - name: Marker over ssh
        shell: echo made >> {{{{ dir }}}}/marker
        creates: "{{{{ dir }}}}/marker"
      - name: Line over ssh
        shell: echo line >> {{{{ dir }}}}/lines
        unless: grep -q line {{{{ dir }}}}/lines
"""


def test_a_fresh_play_after_success_reprobes_and_reports_ok(lab, db, schema, sshd: SshdServer):
    work = lab / "work"
    work.mkdir()
    (lab / "inv-ssh.yml").write_text(f"""
all:
  vars: {{mysql_user: root, mysql_host: 127.0.0.1, mysql_port: 3306}}
  hosts:
    db1:
{sshd.host_vars_yaml()}
""")
    (lab / "idem.yml").write_text(IDEMPOTENT_RUNBOOK.format(schema=schema, dir=work))
    first = cli("play", "idem.yml", "-i", "inv-ssh.yml", cwd=lab, home=lab / "home")
    out = out_of(first)
    assert first.returncode == 0, out
    assert sum(ln.startswith("changed") for ln in first.stdout.splitlines()) == 4, out

    second = cli("play", "idem.yml", "-i", "inv-ssh.yml", cwd=lab, home=lab / "home")
    out = out_of(second)
    assert second.returncode == 0, out
    assert run_id_of(second) != run_id_of(first)  # a new run, not a resume
    step_lines = [ln for ln in second.stdout.splitlines() if " db1 " in ln and "(" in ln]
    assert len(step_lines) == 4 and all(ln.startswith("ok") and "already done" in ln for ln in step_lines), out
    assert any("creates:" in ln for ln in step_lines) and any("unless:" in ln for ln in step_lines)
    # Nothing was applied twice.
    assert rows(db, f"SELECT id, v FROM `{schema}`.items") == [(1, "one")]
    assert (work / "marker").read_text() == "made\n"
    assert (work / "lines").read_text() == "line\n"


def test_a_forced_resume_pins_the_new_definition(lab, db, schema):
    run_id = play_until_failure(lab, db, schema)
    rb = lab / "rb.yml"
    rb.write_text(rb.read_text() + "\n# edited during the incident\n")
    # Forced, and still failing (the table is still missing): the edit is now the run's definition...
    res = cli("resume", run_id, "--force", cwd=lab, home=lab / "home")
    assert res.returncode == 1, out_of(res)
    execute(db, f"CREATE TABLE `{schema}`.later (v VARCHAR(20))")
    # ...so the next resume needs no --force, while a further edit is refused again.
    rb.write_text(rb.read_text() + "# and again\n")
    res = cli("resume", run_id, cwd=lab, home=lab / "home")
    assert res.returncode == 2 and str(rb.resolve()) in out_of(res), out_of(res)
    rb.write_text(rb.read_text().replace("# and again\n", ""))
    res = cli("resume", run_id, cwd=lab, home=lab / "home")
    assert res.returncode == 0, out_of(res)
    assert rows(db, f"SELECT v FROM `{schema}`.later") == [("made",)]
