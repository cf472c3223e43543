"""Issue 20 item 3: messages that used to send the operator the wrong way, through the real CLI.

- a failed step that read an -e value: resume keeps the run's -e, so "to continue: runbook
  resume" alone was wrong advice for a wrong path — the way on is a new run with the right value;
- a declined confirmation is the operator's abort (exit 130, "aborted by the operator"), not a
  failed run;
- `--check` never says "already in the desired state" for what an earlier step would change,
  nor suggests resuming a check run;
- a stage skipped by its `when:` says so (it said "no host left").
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from tests.integration.test_interrupt import _on_a_terminal, _read_until, cli

pytestmark = pytest.mark.integration

INVENTORY = """
all:
  hosts:
    ctl: {connection: local}
"""


@pytest.fixture
def lab(tmp_path: Path) -> Path:
    (tmp_path / "inv.yml").write_text(INVENTORY)
    (tmp_path / "work").mkdir()
    return tmp_path


def test_a_failed_step_that_read_a_wrong_extra_var_points_to_a_new_run(lab: Path) -> None:
    (lab / "rb.yml").write_text("""
name: restore from a backup
targets: ctl
vars:
  backup: /backups/shop.sql.gz
stages:
  - name: check
    steps:
      - name: Backup is there
        shell: test -r {{ backup }}
""")
    res = cli("play", "rb.yml", "-i", "inv.yml", "-e", "backup=/nowhere/shop.sql.gz", cwd=lab)
    out = res.stdout + res.stderr
    assert res.returncode == 1, out
    assert not re.search(r"^to continue:", out, re.M), out  # resume alone cannot fix a wrong -e
    assert "the failed step(s) read -e backup=/nowhere/shop.sql.gz: resume keeps the run's -e values" in out, out
    assert "a wrong value? start a new run with the right one: runbook play rb.yml -i inv.yml -e backup=/nowhere/shop.sql.gz" in out
    run_id = re.search(r"RUN_ID (\S+)", out).group(1)  # type: ignore[union-attr]
    assert f"the values right, the cause fixed? runbook resume {run_id}" in out, out


def test_a_failed_step_that_read_no_extra_var_keeps_the_resume_line(lab: Path) -> None:
    (lab / "rb.yml").write_text(f"""
name: plain
targets: ctl
stages:
  - name: s
    steps:
      - name: Needs a file
        shell: test -e {lab}/work/ready
""")
    res = cli("play", "rb.yml", "-i", "inv.yml", cwd=lab)
    assert res.returncode == 1
    assert re.search(r"^to continue: runbook resume \S+", res.stdout, re.M), res.stdout


def test_a_declined_confirmation_is_an_abort_by_the_operator(lab: Path) -> None:
    work = lab / "work"
    (lab / "rb.yml").write_text(f"""
name: confirm
targets: ctl
stages:
  - name: before
    steps:
      - name: Look
        shell: touch {work}/looked
  - name: fence
    confirm: "Stop writes on {{{{ inventory_hostname }}}}"
    steps:
      - name: Fence
        shell: touch {work}/fenced
""")
    master, proc = _on_a_terminal(lab, "play", "rb.yml", "-i", "inv.yml")
    seen = bytearray()
    try:
        _read_until(master, b"Type 'ctl' to go on", seen)
        os.write(master, b"no\n")
        _read_until(master, b"RUN_ID ", seen)
        _read_until(master, b"\n", seen, after=b"RUN_ID ")
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    text = seen.decode(errors="replace")
    assert code == 130, text
    assert "aborted by the operator" in text and "run failed" not in text, text
    assert (work / "looked").exists() and not (work / "fenced").exists()
    run_id = re.search(r"RUN_ID (\S+)", text).group(1)  # type: ignore[union-attr]
    records = [json.loads(ln) for ln in (lab / "home" / run_id / "journal.jsonl").read_text().splitlines()]
    assert [r.get("status") for r in records if r.get("kind") == "run_end"] == ["aborted"]
    assert re.search(rf"{run_id}\s+aborted", cli("runs", cwd=lab).stdout)


def test_check_mode_does_not_claim_done_what_an_earlier_step_would_change(lab: Path) -> None:
    work = lab / "work"
    (work / "flag").touch()
    (lab / "rb.yml").write_text(f"""
name: check
targets: ctl
stages:
  - name: s
    steps:
      - name: Clear the flag
        shell: rm -f {work}/flag
        creates: {work}/never
      - name: Set the flag
        shell: touch {work}/flag
        creates: {work}/flag
""")
    res = cli("play", "rb.yml", "-i", "inv.yml", "--check", cwd=lab)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    line = next(ln for ln in out.splitlines() if "Set the flag" in ln)
    assert "already" not in line and "cannot tell" in line and "'Clear the flag' would change it first" in line, line
    assert "runbook resume" not in out, out  # a check run is not resumed
    assert (work / "flag").exists()


def test_a_stage_skipped_by_its_when_says_so(lab: Path) -> None:
    (lab / "rb.yml").write_text("""
name: crash recovery
targets: ctl
vars:
  reopen: false
stages:
  - name: verify
    steps:
      - name: Fine
        shell: "true"
  - name: reopen
    when: reopen | bool
    steps:
      - name: Reopen
        shell: "true"
""")
    res = cli("play", "rb.yml", "-i", "inv.yml", cwd=lab)
    assert res.returncode == 0, res.stdout
    assert "STAGE [reopen] skipped: when: reopen | bool is false on ctl" in res.stdout, res.stdout
    assert "no host left" not in res.stdout
