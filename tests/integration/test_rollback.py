"""Rollback through the real CLI, on the real MariaDB and over the real sshd.

Every undo appends a row to an ``undo_log`` table with an AUTO_INCREMENT id, so the order in
which undos ran is read back from the database, not from the output.
"""

from __future__ import annotations

import re
from pathlib import Path

import pymysql
import pytest

from tests.cliutil import cli, out_of, rows, run_id_of
from tests.sshd import SshdServer

pytestmark = pytest.mark.integration


# --------------------------------------------------------------------------- helpers


def log(db: pymysql.connections.Connection, schema: str) -> list[str]:
    """What the do and undo steps wrote, in the order they wrote it."""
    return [r[0] for r in rows(db, f"SELECT what FROM `{schema}`.undo_log ORDER BY id")]


def _log_sql(what: str) -> str:
    return f"INSERT INTO {{{{ schema | ident }}}}.undo_log (what) VALUES ('{what}')"


def step(name: str, *, undo_table: str = "undo_log", extra: str = "") -> str:
    """A step that logs 'do NAME' and whose undo logs 'undo NAME' (into ``undo_table``)."""
    undo = f"INSERT INTO {{{{ schema | ident }}}}.{undo_table} (what) VALUES ('undo {name}')"
    return f"""
      - name: {name}
        sql: "{_log_sql('do ' + name)}"
        undo: {{sql: "{undo}"}}{extra}"""


INVENTORY_LOCAL = """
all:
  vars: {mysql_user: root, mysql_host: 127.0.0.1, mysql_port: 3306}
  hosts:
    ctl: {connection: local}
"""


@pytest.fixture
def lab(tmp_path: Path, db: pymysql.connections.Connection, schema: str) -> Path:
    with db.cursor() as cur:
        cur.execute(f"CREATE TABLE `{schema}`.undo_log (id INT AUTO_INCREMENT PRIMARY KEY, what VARCHAR(64) NOT NULL)")
    (tmp_path / "inv.yml").write_text(INVENTORY_LOCAL)
    return tmp_path


def write_runbook(path: Path, schema: str, body: str, targets: str = "ctl", extra_vars: str = "") -> Path:
    path.write_text(f"name: rollback drill\ntargets: {targets}\nvars:\n  schema: {schema}\n{extra_vars}stages:\n{body}")
    return path


# --------------------------------------------------------------------------- (a) stage policy


def test_stage_on_failure_rollback_undoes_its_steps_newest_first(lab, db, schema):
    body = f"""
  - name: before
    steps:{step('P')}
  - name: risky
    on_failure: rollback
    steps:{step('A')}
      - name: Read only
        sql: SELECT COUNT(*) AS n FROM {{{{ schema | ident }}}}.undo_log
{step('B').lstrip(chr(10))}
      - name: Breaks
        sql: "INSERT INTO {{{{ schema | ident }}}}.no_such_table (what) VALUES ('x')"
{step('Never').lstrip(chr(10))}
  - name: after
    steps:{step('D')}
"""
    rb = write_runbook(lab / "rb.yml", schema, body)
    res = cli("play", str(rb), "-i", str(lab / "inv.yml"), cwd=lab, home=lab / "home")
    out = out_of(res)
    assert res.returncode == 1, out
    # The stage's completed steps with an undo are undone newest first; P (an earlier stage
    # without the rollback policy) is not; nothing after the failed step runs, nor the next stage.
    assert log(db, schema) == ["do P", "do A", "do B", "undo B", "undo A"], out
    assert "ROLLBACK of stage [risky]" in out
    assert "stage [risky] rolled back" in out
    assert "run rolled back" in out
    assert not re.search(r"STAGE \[after\]", out)

    # The journal knows what was undone: a later whole-run rollback undoes only P.
    run_id = run_id_of(res)
    show = cli("show", run_id, cwd=lab, home=lab / "home")
    assert show.returncode == 0
    undo_lines = [ln for ln in show.stdout.splitlines() if "[undo]" in ln]
    assert [ln.split()[2] for ln in undo_lines] == ["B", "A"], show.stdout
    again = cli("rollback", run_id, "--yes", cwd=lab, home=lab / "home")
    assert again.returncode == 0, out_of(again)
    assert log(db, schema) == ["do P", "do A", "do B", "undo B", "undo A", "undo P"]


# --------------------------------------------------------------------------- (b) + (e) whole run


INVENTORY_SSH = """
all:
  vars: {{mysql_user: root, mysql_host: 127.0.0.1, mysql_port: 3306}}
  hosts:
    db1:
      ssh_host: {s.host}
      ssh_port: {s.port}
      ssh_user: {s.user}
      ssh_key: {s.key_file}
      ssh_known_hosts: {s.known_hosts}
"""


def test_rollback_of_a_successful_run_undoes_every_reversible_step_across_stages(lab, db, schema, sshd: SshdServer):
    work = lab / "work"
    work.mkdir()
    (lab / "inv-ssh.yml").write_text(INVENTORY_SSH.format(s=sshd))
    body = f"""
  - name: one
    steps:{step('A')}
      - name: Already done
        sql: "{_log_sql('do X')}"
        unless: SELECT 1
        undo: {{sql: "{_log_sql('undo X')}"}}
      - name: Marker over ssh
        shell: touch {{{{ work }}}}/marker
        undo: {{shell: "rm {{{{ work }}}}/marker"}}
  - name: two
    steps:
      - name: Per item
        loop: [x, y, z]
        sql: INSERT INTO {{{{ schema | ident }}}}.undo_log (what) VALUES (CONCAT('do L', {{{{ item }}}}))
        undo: {{sql: "INSERT INTO {{{{ schema | ident }}}}.undo_log (what) VALUES (CONCAT('undo L', {{{{ item }}}}))"}}
      - name: Count
        sql: SELECT COUNT(*) AS n FROM {{{{ schema | ident }}}}.undo_log
        register: cnt
{step('B').lstrip(chr(10))}
"""
    rb = write_runbook(lab / "rb.yml", schema, body, targets="db1", extra_vars=f"  work: {work}\n")
    inv = str(lab / "inv-ssh.yml")
    res = cli("play", str(rb), "-i", inv, cwd=lab, home=lab / "home")
    assert res.returncode == 0, out_of(res)
    assert (work / "marker").exists()
    done = ["do A", "do Lx", "do Ly", "do Lz", "do B"]
    assert log(db, schema) == done
    run_id = run_id_of(res)

    # Without --yes and without a terminal: refused, nothing undone.
    refused = cli("rollback", run_id, cwd=lab, home=lab / "home")
    out = out_of(refused)
    assert refused.returncode == 2, out
    assert "--yes" in out
    assert log(db, schema) == done and (work / "marker").exists()

    rb_res = cli("rollback", run_id, "--yes", cwd=lab, home=lab / "home")
    out = out_of(rb_res)
    assert rb_res.returncode == 0, out
    # Newest first across stages; the loop is undone item by item, last item first; the step
    # that was already done (ok, not changed) has nothing to undo; the shell undo ran over ssh.
    assert log(db, schema) == [*done, "undo B", "undo Lz", "undo Ly", "undo Lx", "undo A"], out
    assert not (work / "marker").exists()
    assert "rolled back" in out

    # Journaled: `runbook show` lists the [undo] entries, and there is nothing left to undo.
    show = cli("show", run_id, cwd=lab, home=lab / "home")
    assert show.returncode == 0, out_of(show)
    undone = [ln.split()[2] for ln in show.stdout.splitlines() if "[undo]" in ln]
    assert undone == ["B", "Per", "Marker", "A"], show.stdout
    assert "rolled back" in show.stdout.splitlines()[0]
    second = cli("rollback", run_id, "--yes", cwd=lab, home=lab / "home")
    out = out_of(second)
    assert second.returncode == 0, out
    assert "nothing to undo" in out
    assert len(log(db, schema)) == len(done) + 5


# --------------------------------------------------------------------------- (c) failing undo


def test_a_failing_undo_stops_the_rollback_and_a_second_rollback_continues(lab, db, schema):
    body = f"""
  - name: one
    steps:{step('A')}{step('B', undo_table='fixme')}
  - name: two
    steps:{step('C')}{step('D')}
"""
    rb = write_runbook(lab / "rb.yml", schema, body)
    res = cli("play", str(rb), "-i", str(lab / "inv.yml"), cwd=lab, home=lab / "home")
    assert res.returncode == 0, out_of(res)
    run_id = run_id_of(res)
    done = ["do A", "do B", "do C", "do D"]

    first = cli("rollback", run_id, "--yes", cwd=lab, home=lab / "home")
    out = out_of(first)
    assert first.returncode == 1, out
    assert "rollback stopped at one/B" in out
    assert "fixme" in out  # the reason: the table the undo needs does not exist
    # D and C undone, B failed, A (older) was NOT undone: a rollback never skips past a failure.
    assert log(db, schema) == [*done, "undo D", "undo C"], out
    show = cli("show", run_id, cwd=lab, home=lab / "home")
    assert show.stdout.splitlines()[0].endswith("rollback failed"), show.stdout
    assert any(ln.split()[:1] == ["failed"] and "B [undo]" in ln for ln in show.stdout.splitlines()), show.stdout

    # The operator fixes the cause; rollback continues where it stopped (D and C stay undone once).
    with db.cursor() as cur:
        cur.execute(f"CREATE TABLE `{schema}`.fixme (id INT AUTO_INCREMENT PRIMARY KEY, what VARCHAR(64))")
    second = cli("rollback", run_id, "--yes", cwd=lab, home=lab / "home")
    out = out_of(second)
    assert second.returncode == 0, out
    assert "2 step(s) to undo" in out
    assert log(db, schema) == [*done, "undo D", "undo C", "undo A"], out
    assert [r[0] for r in rows(db, f"SELECT what FROM `{schema}`.fixme")] == ["undo B"]
    third = cli("rollback", run_id, "--yes", cwd=lab, home=lab / "home")
    assert third.returncode == 0 and "nothing to undo" in third.stdout


def test_rollback_of_an_unknown_run_is_refused(lab):
    res = cli("rollback", "20200101-000000-dead", "--yes", cwd=lab, home=lab / "home")
    out = out_of(res)
    assert res.returncode == 2, out
    assert "no run '20200101-000000-dead'" in out
