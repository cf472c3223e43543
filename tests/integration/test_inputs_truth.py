"""What resume works from is what the run ran with (issue 7, items 8, 10 and 11): rendered
arguments compared with the intent's digest, -e @file pinned, unambiguous step keys, a
looped step with a per-item ``unless``, paths never masked, -e reaching the connection, the
printed commands carrying --journal-dir, a full journal disk, machine-wide host locks, secrets
registered at run start, the check mode of stop_writes, hello.yml's own undo."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pymysql
import pytest

from tests.cliutil import rows, run_id_of
from tests.conftest import root_execute

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]

INVENTORY = """
all:
  vars: {{mysql_user: root, mysql_host: 127.0.0.1, mysql_port: 3306{extra}}}
  hosts:
    ctl: {{connection: local}}
"""


def env_for(cwd: Path, env_extra: dict[str, str] | None = None, home: bool = True) -> dict[str, str]:
    env = dict(os.environ, NO_COLOR="1")
    if home:
        env["RUNBOOK_HOME"] = str(cwd / "home")
    else:
        env.pop("RUNBOOK_HOME", None)
    env.pop("RUNBOOK_FAULT_KILL_AT_SEQ", None)
    env.pop("RUNBOOK_FAULT_KILL_BEFORE_OUTCOME", None)
    env.update(env_extra or {})
    return env


def cli(*args: str, cwd: Path, env_extra: dict[str, str] | None = None, home: bool = True) -> subprocess.CompletedProcess[str]:
    res = subprocess.run([sys.executable, "-m", "engine.cli", *args], cwd=cwd, env=env_for(cwd, env_extra, home),
                         capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert "Traceback" not in res.stdout + res.stderr, res.stdout + res.stderr
    return res


def only_run(home: Path) -> str:
    runs = [p.name for p in home.iterdir() if p.is_dir() and p.name[0].isdigit()]
    assert len(runs) == 1, runs
    return runs[0]


@pytest.fixture
def lab(tmp_path: Path, db: pymysql.connections.Connection, schema: str) -> Path:
    with db.cursor() as cur:
        cur.execute(f"CREATE TABLE `{schema}`.t (id INT AUTO_INCREMENT PRIMARY KEY, v INT)")
    (tmp_path / "inv.yml").write_text(INVENTORY.format(extra=""))
    return tmp_path


def test_resume_asks_when_the_arguments_of_an_in_doubt_step_render_differently(lab: Path, db, schema: str) -> None:
    (lab / "inv.yml").write_text(INVENTORY.format(extra=", v: 1"))
    (lab / "rb.yml").write_text(f"""
name: digest
targets: ctl
stages:
  - name: s
    steps:
      - name: Insert
        sql: INSERT INTO `{schema}`.t (v) VALUES ({{{{ v }}}})
        unless: SELECT COUNT(*) FROM `{schema}`.t WHERE v = {{{{ v }}}}
""")
    res = cli("play", "rb.yml", "-i", "inv.yml", cwd=lab, env_extra={"RUNBOOK_FAULT_KILL_BEFORE_OUTCOME": "s/Insert"})
    assert res.returncode == -signal.SIGKILL
    (lab / "inv.yml").write_text(INVENTORY.format(extra=", v: 2"))
    again = cli("resume", only_run(lab / "home"), "--force", cwd=lab)
    assert again.returncode == 1, again.stdout
    assert "render differently" in again.stdout, again.stdout
    assert rows(db, f"SELECT v FROM `{schema}`.t") == [(1,)]  # the probe of the new value would have said "not done"


def test_extra_vars_files_are_pinned(lab: Path) -> None:
    (lab / "vars.yml").write_text(f"flag: {lab / 'flag'}\n")
    (lab / "rb.yml").write_text("""
name: pinned
targets: ctl
stages:
  - name: s
    steps:
      - name: Ready
        shell: test -e {{ flag }}
""")
    res = cli("play", "rb.yml", "-i", "inv.yml", "-e", "@vars.yml", cwd=lab)
    assert res.returncode == 1
    (lab / "vars.yml").write_text(f"flag: {lab}\n")
    again = cli("resume", run_id_of(res), cwd=lab)
    assert again.returncode == 2, again.stdout + again.stderr
    assert "vars.yml (changed since the run started)" in again.stdout + again.stderr


def test_stage_names_with_a_slash_are_refused(lab: Path) -> None:
    (lab / "rb.yml").write_text("""
name: keys
targets: ctl
stages:
  - name: a
    steps:
      - {name: b/c, shell: "true"}
  - name: a/b
    steps:
      - {name: c, shell: "true"}
""")
    res = cli("validate", "rb.yml", "-i", "inv.yml", cwd=lab)
    assert res.returncode == 2
    assert "stage name 'a/b' contains '/'" in res.stdout + res.stderr


def test_a_loop_whose_unless_reads_item_resumes_after_a_kill(lab: Path, db, schema: str) -> None:
    (lab / "rb.yml").write_text(f"""
name: loop
targets: ctl
stages:
  - name: s
    steps:
      - name: Rows
        loop: [1, 2, 3]
        sql: INSERT INTO `{schema}`.t (v) VALUES ({{{{ item }}}})
        unless: SELECT COUNT(*) FROM `{schema}`.t WHERE v = {{{{ item }}}}
""")
    res = cli("play", "rb.yml", "-i", "inv.yml", cwd=lab, env_extra={"RUNBOOK_FAULT_KILL_BEFORE_OUTCOME": "s/Rows"})
    assert res.returncode == -signal.SIGKILL
    with db.cursor() as cur:
        cur.execute(f"DELETE FROM `{schema}`.t WHERE v = 3")  # as if killed before the third item
    again = cli("resume", only_run(lab / "home"), cwd=lab)
    assert again.returncode == 0, again.stdout + again.stderr
    assert rows(db, f"SELECT v FROM `{schema}`.t ORDER BY v") == [(1,), (2,), (3,)]


def test_a_secret_inside_a_path_does_not_break_resume(lab: Path) -> None:
    where = lab / "fuzzpw"
    where.mkdir()
    (where / "rb.yml").write_text(f"""
name: masked paths
targets: ctl
stages:
  - name: s
    steps:
      - name: Ready
        shell: test -e {lab / 'flag'}
""")
    res = cli("play", str(where / "rb.yml"), "-i", str(lab / "inv.yml"), "-e", "api_token=fuzzpw", "--allow-unused-vars", cwd=lab)
    assert res.returncode == 1, res.stdout
    header = (lab / "home" / run_id_of(res) / "journal.jsonl").read_text().splitlines()[0]
    assert str(where / "rb.yml") in header and "fuzzpw" not in header.replace(str(where), "")
    (lab / "flag").touch()
    again = cli("resume", run_id_of(res), cwd=lab)
    assert again.returncode == 0, again.stdout + again.stderr


def test_extra_var_mysql_password_reaches_the_connection(lab: Path, schema: str) -> None:
    user, password = f"rbt_pw_{uuid.uuid4().hex[:8]}", "pw-" + uuid.uuid4().hex[:10]
    root_execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'")
    try:
        (lab / "inv.yml").write_text(INVENTORY.format(extra="").replace("mysql_user: root", f"mysql_user: {user}"))
        (lab / "rb.yml").write_text("name: pw\ntargets: ctl\nstages:\n  - name: s\n    steps:\n      - {name: Who, sql: SELECT CURRENT_USER() AS u}\n")
        res = cli("play", "rb.yml", "-i", "inv.yml", "-e", f"mysql_password={password}", cwd=lab)
        assert res.returncode == 0, res.stdout
        assert password not in res.stdout
    finally:
        root_execute(f"DROP USER IF EXISTS '{user}'@'%'")


def test_printed_decide_command_carries_the_journal_dir(lab: Path) -> None:
    jdir = lab / "elsewhere"
    (lab / "rb.yml").write_text(f"name: decide\ntargets: ctl\nstages:\n  - name: s\n    steps:\n"
                                f"      - {{name: Append, shell: 'echo x >> {lab / 'log'}'}}\n")
    res = cli("play", "rb.yml", "-i", "inv.yml", "--journal-dir", str(jdir), cwd=lab,
              env_extra={"RUNBOOK_FAULT_KILL_BEFORE_OUTCOME": "s/Append"})
    assert res.returncode == -signal.SIGKILL
    again = cli("resume", only_run(jdir), "--journal-dir", str(jdir), cwd=lab)
    assert again.returncode == 1
    m = re.search(r"runbook resume (\S+) --journal-dir (\S+) --decide", again.stdout)
    assert m and Path(m.group(2)) == jdir.resolve(), again.stdout


def test_a_full_journal_disk_stops_the_run_before_the_next_side_effect(lab: Path, small_fs: str) -> None:
    jdir = Path(small_fs) / "journal"
    stop = lab / "stop-filling"
    (lab / "rb.yml").write_text(f"""
name: full disk
targets: ctl
stages:
  - name: s
    steps:
      - name: Fill the journal's disk
        idempotent: true
        shell: test -e {stop} || (dd if=/dev/zero of={small_fs}/filler bs=64k 2>/dev/null; head -c 9000 /dev/zero | tr '\\0' x)
      - name: Next
        shell: echo next >> {lab / 'log'}
""")
    res = cli("play", "rb.yml", "-i", "inv.yml", "--journal-dir", str(jdir), cwd=lab)
    out = res.stdout + res.stderr
    assert res.returncode == 1, out
    assert "No space left on device" in out, out
    assert not (lab / "log").exists()  # the next side effect did not happen
    os.unlink(Path(small_fs) / "filler")
    stop.touch()
    again = cli("resume", only_run(jdir), "--journal-dir", str(jdir), cwd=lab)
    assert again.returncode == 0, again.stdout + again.stderr
    assert (lab / "log").read_text() == "next\n"


def test_two_journal_dirs_cannot_change_one_host_at_once(lab: Path) -> None:
    (lab / "slow.yml").write_text(f"name: slow\ntargets: ctl\nstages:\n  - name: s\n    steps:\n"
                                  f"      - {{name: Wait, shell: 'while test ! -e {lab / 'go'}; do sleep 0.1; done'}}\n")
    first = subprocess.Popen([sys.executable, "-m", "engine.cli", "play", "slow.yml", "-i", "inv.yml", "--journal-dir", "one"],
                             cwd=lab, env=env_for(lab), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for _ in range(300):  # until the first run holds its locks (its journal has a stage)
            runs = list((lab / "one").glob("*/journal.jsonl")) if (lab / "one").exists() else []
            if runs and "stage_start" in runs[0].read_text():
                break
            time.sleep(0.1)
        second = cli("play", "slow.yml", "-i", "inv.yml", "--journal-dir", "two", cwd=lab)
        assert second.returncode == 2, second.stdout + second.stderr
        assert "is running against ctl" in second.stdout + second.stderr
    finally:
        (lab / "go").touch()
        first.communicate(timeout=60)
    assert first.returncode == 0


def test_templated_secrets_are_masked_from_the_first_step(lab: Path) -> None:
    token = "tok-" + uuid.uuid4().hex[:12]
    (lab / "inv.yml").write_text(INVENTORY.format(extra=", api_token: \"{{ lookup('env', 'RB_T_TOKEN') }}\""))
    (lab / "rb.yml").write_text("name: s\ntargets: ctl\nstages:\n  - name: s\n    steps:\n"
                                "      - {name: Echo, shell: 'echo \"$RB_T_TOKEN\"', register: e}\n")
    res = cli("play", "rb.yml", "-i", "inv.yml", "-v", cwd=lab, env_extra={"RB_T_TOKEN": token})
    assert res.returncode == 0, res.stdout
    journal = (lab / "home" / run_id_of(res) / "journal.jsonl").read_text()
    assert token not in res.stdout + res.stderr and token not in journal


def test_check_mode_of_stop_writes_names_who_can_still_write(tmp_path: Path, lab_server: tuple[str, int]) -> None:
    # A check changes nothing, but were it to fence, it would fence the private lab server,
    # never the machine's (shared by everyone's tests).
    lab = tmp_path
    (lab / "inv.yml").write_text(INVENTORY.replace("3306", str(lab_server[1])).format(extra=""))
    (lab / "rb.yml").write_text("name: c\ntargets: ctl\nstages:\n  - name: s\n    steps:\n      - {name: Fence, stop_writes: {}}\n")
    client = pymysql.connect(host="127.0.0.1", port=lab_server[1], user="root")  # a session the fence would leave
    try:
        res = cli("play", "rb.yml", "-i", "inv.yml", "--check", cwd=lab)
    finally:
        client.close()
    assert res.returncode == 0, res.stdout
    assert "could still write under the fence" in res.stdout and "'root'@" in res.stdout, res.stdout
    assert "client session(s) would stay connected" in res.stdout, res.stdout


def test_hello_undo_deletes_only_its_own_run_rows(lab: Path, db, schema: str) -> None:
    ids = []
    for _ in range(2):
        res = cli("play", str(ROOT / "runbooks" / "hello.yml"), "-i", "inv.yml", "-e", f"schema={schema}", cwd=lab)
        assert res.returncode == 0, res.stdout
        ids.append(run_id_of(res))
    back = cli("rollback", ids[0], "--yes", cwd=lab)
    assert back.returncode == 0, back.stdout
    left = [r[0] for r in rows(db, f"SELECT text FROM `{schema}`.greetings")]
    assert len(left) == 1 and ids[1] in left[0], left
