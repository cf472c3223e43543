"""A step skipped by its ``when:`` has no effect, so a kill between its journal records leaves
nothing in doubt that resume must probe.

Found by the seeded kill of tests/integration/test_emergency_e2e.py (seed 303796941: a kill at
the intent of emergency.yml's replay step, skipped there because the backup held no binlog
coordinates). Resume probed the step, rendered its arguments (which read a registered result of
a failed step: ``incident_fenced.events``) and every resume stopped with "undefined variable":
the run could never be finished.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]

RUNBOOK = """
name: When false, killed in between
targets: ctl
stages:
  - name: s
    steps:
      - name: Find
        shell: "exit 3"
        register: found
        ignore_errors: true
      - name: Replay
        when: "{{ found.rc == 0 }}"
        shell: "echo {{ found.events | length }} >> {{ out }}"
      - name: After
        shell: "echo after >> {{ out }}"
"""

INVENTORY = """
all:
  hosts:
    ctl:
      connection: local
"""


def _cli(home: Path, *args: str, fault: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, RUNBOOK_HOME=str(home), NO_COLOR="1", **(fault or {}))
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


def _intent_seq(home: Path, step_name: str) -> int:
    (journal,) = [d / "journal.jsonl" for d in home.iterdir() if (d / "journal.jsonl").exists()]
    for line in journal.read_text().splitlines():
        rec = json.loads(line)
        if rec.get("type") == "intent" and rec.get("step", "").endswith(step_name):
            return int(rec["seq"])
    raise AssertionError(f"no intent of {step_name!r} in {journal}")


def _killed_at_the_skipped_step(tmp_path: Path, runbook: str) -> tuple[Path, str, Path]:
    """A first run finds the intent's record number of the step ``when:`` skips; a second run
    is killed at it. Returns the second run's home, its id and the output file."""
    rb, inv, out = tmp_path / "rb.yml", tmp_path / "inv.yml", tmp_path / "out.txt"
    rb.write_text(runbook)
    inv.write_text(INVENTORY)
    first = tmp_path / "first"
    res = _cli(first, "play", str(rb), "-i", str(inv), "-e", f"out={out}")
    assert res.returncode == 0, res.stdout + res.stderr
    seq = _intent_seq(first, "Replay")
    out.unlink()

    home = tmp_path / "home"
    res = _cli(home, "play", str(rb), "-i", str(inv), "-e", f"out={out}", fault={"RUNBOOK_FAULT_KILL_AT_SEQ": str(seq)})
    assert res.returncode in (-9, 137), f"not killed at record {seq}: rc={res.returncode}\n{res.stdout}{res.stderr}"
    (run,) = [d.name for d in home.iterdir() if (d / "journal.jsonl").exists()]
    return home, run, out


def test_a_step_skipped_by_when_and_killed_before_its_outcome_resumes(tmp_path: Path) -> None:
    home, run, out = _killed_at_the_skipped_step(tmp_path, RUNBOOK)
    res = _cli(home, "resume", run, "--yes")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "undefined" not in res.stdout
    assert out.read_text() == "after\n"  # the skipped step did nothing, then or on resume


def test_rollback_of_a_run_killed_at_a_skipped_step_has_nothing_of_it_to_undo(tmp_path: Path) -> None:
    """The same kill, then ``runbook rollback``: the skipped step has an ``undo:``, so rollback
    looked at it and probed it, rendering the arguments it never used ("undefined variable")."""
    with_undo = RUNBOOK.replace('        shell: "echo {{ found.events | length }} >> {{ out }}"\n',
                                '        shell: "echo {{ found.events | length }} >> {{ out }}"\n'
                                '        undo: "echo undone >> {{ out }}"\n')
    assert with_undo != RUNBOOK
    home, run, out = _killed_at_the_skipped_step(tmp_path, with_undo)
    res = _cli(home, "rollback", run, "--yes")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "undefined" not in res.stdout
    assert not out.exists()  # nothing ran, nothing was undone
