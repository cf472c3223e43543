"""`runbook runs` and `runbook show` as the operator reads them, on journals written by real
runs (local shell steps: no server needed): a run that succeeded, one that failed and one
killed in the middle of a step (in doubt), in a --journal-dir and in $RUNBOOK_HOME."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

RUNBOOK = """
name: runs and show
targets: ctl
stages:
  - name: first stage
    budget: 1m
    steps:
      - name: Hello
        shell: echo hello >> {work}/hello
      - name: Maybe break
        idempotent: true
        shell: exit {{{{ rc | default(0) }}}}
  - name: second stage
    steps:
      - name: Bye
        shell: echo bye >> {work}/bye
"""

INVENTORY = """
all:
  hosts:
    ctl: {connection: local}
"""

# Journal records of a run of RUNBOOK: 0 header, 1 run_start, 2 stage_start, 3/4 intent and
# outcome of Hello, 5 intent of "Maybe break". Killed right after 5: that step is in doubt.
KILL_IN_SECOND_STEP = "5"


def cli(*args: str, cwd: Path, home: Path | None, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, NO_COLOR="1")
    env.pop("RUNBOOK_FAULT_KILL_AT_SEQ", None)
    env.pop("RUNBOOK_HOME", None)
    if home is not None:
        env["RUNBOOK_HOME"] = str(home)
    env.update(env_extra or {})
    res = subprocess.run([sys.executable, "-m", "engine.cli", *args], cwd=cwd, env=env, capture_output=True, text=True,
                         timeout=60, stdin=subprocess.DEVNULL)
    assert "Traceback" not in res.stdout + res.stderr, res.stdout + res.stderr
    return res


@pytest.fixture
def lab(tmp_path: Path) -> Path:
    (tmp_path / "work").mkdir()
    (tmp_path / "rb.yml").write_text(RUNBOOK.format(work=tmp_path / "work"))
    (tmp_path / "inv.yml").write_text(INVENTORY)
    return tmp_path


def make_runs(lab: Path, *, home: Path | None, jdir: Path | None) -> dict[str, str]:
    """A succeeded, a failed and a crashed run; their ids by outcome."""
    where = ["--journal-dir", str(jdir)] if jdir else []
    ids: dict[str, str] = {}
    ok = cli("play", "rb.yml", "-i", "inv.yml", *where, cwd=lab, home=home)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    ids["succeeded"] = re.search(r"RUN_ID (\S+)", ok.stdout).group(1)  # type: ignore[union-attr]
    bad = cli("play", "rb.yml", "-i", "inv.yml", "-e", "rc=3", *where, cwd=lab, home=home)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    ids["failed"] = re.search(r"RUN_ID (\S+)", bad.stdout).group(1)  # type: ignore[union-attr]
    root = jdir or home
    assert root is not None
    before = {d.name for d in root.iterdir()}
    crash = cli("play", "rb.yml", "-i", "inv.yml", *where, cwd=lab, home=home,
                env_extra={"RUNBOOK_FAULT_KILL_AT_SEQ": KILL_IN_SECOND_STEP})
    assert crash.returncode == -9, crash.stdout + crash.stderr
    (ids["interrupted"],) = {d.name for d in root.iterdir()} - before
    return ids


def check_runs_listing(text: str, ids: dict[str, str], runbook: Path) -> None:
    lines = text.splitlines()
    assert lines[0].split() == ["RUN_ID", "STATUS", "STARTED", "DURATION", "STEPS", "RUNBOOK"], text
    by_id = {ln.split()[0]: ln for ln in lines[1:]}
    assert set(by_id) == set(ids.values()), text
    # Oldest first.
    assert [ln.split()[0] for ln in lines[1:]] == [ids["succeeded"], ids["failed"], ids["interrupted"]]
    for status, run_id in ids.items():
        line = by_id[run_id]
        cols = line.split()
        assert cols[1] == status, line
        assert re.fullmatch(r"\d{4}-\d\d-\d\d", cols[2]) and re.fullmatch(r"\d\d:\d\d:\d\d", cols[3]), line
        assert re.fullmatch(r"\d+(ms|\.\ds)", cols[4]), line  # a duration
        assert line.endswith(str(runbook.resolve())), line
    assert "3 done" in by_id[ids["succeeded"]]
    assert "1 done, 1 failed" in by_id[ids["failed"]]
    assert "1 done, 1 in doubt" in by_id[ids["interrupted"]]


def check_show(lab: Path, ids: dict[str, str], *, where: list[str], home: Path | None, resume_cmd: str) -> None:
    ok = cli("show", ids["succeeded"], *where, cwd=lab, home=home)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    lines = ok.stdout.splitlines()
    assert lines[0] == f"run {ids['succeeded']}: succeeded"
    assert any(ln.startswith("runbook") and str((lab / "rb.yml").resolve()) in ln and "(runs and show)" in ln for ln in lines)
    assert any(re.match(r"hosts\s+ctl$", ln) for ln in lines), ok.stdout
    assert "stage [first stage] budget 1m00s" in lines and "stage [second stage]" in lines, ok.stdout
    steps = [ln.split() for ln in lines if ln.startswith("  ")]
    assert [(s[0], s[1], s[2]) for s in steps] == [("changed", "ctl", "Hello"), ("changed", "ctl", "Maybe"),
                                                  ("changed", "ctl", "Bye")], ok.stdout
    assert all(re.fullmatch(r"\d+(ms|\.\ds)", s[-1]) for s in steps if s[2] != "Maybe"), ok.stdout
    assert "resume" not in ok.stdout  # nothing to continue

    bad = cli("show", ids["failed"], *where, cwd=lab, home=home)
    assert bad.returncode == 0
    assert bad.stdout.splitlines()[0] == f"run {ids['failed']}: failed"
    assert re.search(r"^\s+failed\s+ctl\s+Maybe break \d+ms: command exited with 3", bad.stdout, re.M), bad.stdout
    assert "second stage" not in bad.stdout
    assert f"to continue: {resume_cmd.format(run_id=ids['failed'])}" in bad.stdout.splitlines(), bad.stdout

    crashed = cli("show", ids["interrupted"], *where, cwd=lab, home=home)
    assert crashed.returncode == 0
    lines = crashed.stdout.splitlines()
    assert lines[0] == f"run {ids['interrupted']}: interrupted"
    assert re.search(r"^\s+IN DOUBT\s+ctl\s+Maybe break -$", crashed.stdout, re.M), crashed.stdout
    assert re.search(r"^\s+changed\s+ctl\s+Hello \d+ms$", crashed.stdout, re.M), crashed.stdout
    hint = [ln for ln in lines if ln.startswith("to continue:")]
    assert hint == [f"to continue: {resume_cmd.format(run_id=ids['interrupted'])}"], crashed.stdout


def test_runs_and_show_with_runbook_home(lab):
    home = lab / "home"
    ids = make_runs(lab, home=home, jdir=None)
    res = cli("runs", cwd=lab, home=home)
    assert res.returncode == 0, res.stderr
    check_runs_listing(res.stdout, ids, lab / "rb.yml")
    check_show(lab, ids, where=[], home=home, resume_cmd="runbook resume {run_id}")

    # The resume command `show` prints works as printed: the crashed run resumes and succeeds.
    res = cli("resume", ids["interrupted"], cwd=lab, home=home)
    assert res.returncode == 0, res.stdout + res.stderr
    assert (lab / "work" / "bye").read_text().count("bye") == 2  # the first run's and this one's
    listing = cli("runs", cwd=lab, home=home).stdout
    assert re.search(rf"^{ids['interrupted']}\s+succeeded\s", listing, re.M), listing


def test_runs_and_show_with_journal_dir(lab):
    jdir = lab / "journal"
    elsewhere = lab / "other-home"
    ids = make_runs(lab, home=elsewhere, jdir=jdir)
    assert not elsewhere.exists()  # --journal-dir wins over $RUNBOOK_HOME
    res = cli("runs", "--journal-dir", str(jdir), cwd=lab, home=elsewhere)
    assert res.returncode == 0, res.stderr
    check_runs_listing(res.stdout, ids, lab / "rb.yml")
    # The printed command names the journal dir: typed as printed, it finds the run.
    check_show(lab, ids, where=["--journal-dir", str(jdir)], home=None,
               resume_cmd=f"runbook resume {{run_id}} --journal-dir {jdir}")
    res = cli("resume", ids["interrupted"], "--journal-dir", str(jdir), cwd=lab, home=None)
    assert res.returncode == 0, res.stdout + res.stderr

    # show of a run that is not in the chosen dir: exit 2, and it says where it looked.
    res = cli("show", ids["succeeded"], cwd=lab, home=elsewhere)
    assert res.returncode == 2
    assert f"no run '{ids['succeeded']}'" in res.stderr and str(elsewhere) in res.stderr


def test_empty_journal_dir(lab):
    empty = lab / "empty"
    empty.mkdir()
    for args, home in ((["--journal-dir", str(empty)], None), ([], empty), ([], lab / "missing")):
        res = cli("runs", *args, cwd=lab, home=home)
        assert res.returncode == 0, res.stderr
        assert res.stdout.strip() == f"no runs in {home or empty}"
    # Without either, the user's state directory (SPEC §1), whatever the current directory.
    res = cli("runs", cwd=lab, home=None, env_extra={"XDG_STATE_HOME": str(lab / "state")})
    assert res.stdout.strip() == f"no runs in {lab / 'state' / 'runbook'}"


def test_runs_does_not_list_the_lab_folder_and_marks_check_mode_runs(lab):
    home = lab / "home"
    (home / "lab").mkdir(parents=True)  # `runbook lab up` keeps its datadir and inventory here
    (home / "lab" / "inventory.yml").write_text("all: {}\n")
    res = cli("play", "rb.yml", "-i", "inv.yml", "--check", cwd=lab, home=home)
    assert res.returncode == 0, res.stdout + res.stderr
    run_id = re.search(r"RUN_ID (\S+)", res.stdout).group(1)  # type: ignore[union-attr]
    listing = cli("runs", cwd=lab, home=home).stdout
    assert "lab" not in listing.replace("runbook", ""), listing
    assert f"{run_id} succeeded (check)" in " ".join(listing.split()), listing
    assert "(check mode: nothing was changed)" in cli("show", run_id, cwd=lab, home=home).stdout
