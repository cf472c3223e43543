"""Ctrl-C through the real CLI. The process runs in its own process group and SIGINT goes to
the whole group, as a terminal sends it; shell steps run in their own session, so the first
Ctrl-C lets the running step finish. A second Ctrl-C aborts the step: it is left in doubt."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cliutil import wait_for_journal_record

pytestmark = pytest.mark.integration

INVENTORY = """
all:
  hosts:
    ctl: {connection: local}
"""


def cli_env(home: Path) -> dict[str, str]:
    env = dict(os.environ, NO_COLOR="1", RUNBOOK_HOME=str(home))
    env.pop("RUNBOOK_FAULT_KILL_AT_SEQ", None)
    return env


def cli(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], cwd=cwd, env=cli_env(cwd / "home"),
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def start(cwd: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "engine.cli", *args], cwd=cwd, env=cli_env(cwd / "home"), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)


def wait_for(path: Path, proc: subprocess.Popen[str], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


def ctrl_c(proc: subprocess.Popen[str]) -> None:
    os.killpg(proc.pid, signal.SIGINT)


def wait_for_first_press(home: Path, proc: subprocess.Popen[str]) -> None:
    """Until the run has journaled the first interrupt (its main loop acted on it): a second
    signal sent before that could be taken for the first."""
    wait_for_journal_record(home, proc, "the first interrupt", kind="interrupted", presses=1)


def gate(work: Path) -> str:
    """A step body that cannot end before the test creates ``work/release``: what happens while
    it runs is decided by events, never by how long a sleep lasts on a loaded machine."""
    return f"while [ ! -e {work}/release ]; do sleep 0.02; done"


def lines_of(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def runbook(work: Path, slow: str, idempotent: bool) -> str:
    return f"""
name: interruptible
targets: ctl
stages:
  - name: work
    steps:
      - name: First
        shell: echo once >> {work}/first
      - name: Slow
{"        idempotent: true" if idempotent else ""}
        shell: touch {work}/started; {slow}; echo done >> {work}/slow
      - name: Third
        shell: echo once >> {work}/third
"""


@pytest.fixture
def lab(tmp_path: Path) -> Path:
    (tmp_path / "inv.yml").write_text(INVENTORY)
    (tmp_path / "work").mkdir()
    return tmp_path


def test_first_ctrl_c_finishes_the_step_then_stops_and_resume_finishes(lab):
    work = lab / "work"
    (lab / "rb.yml").write_text(runbook(work, gate(work), idempotent=False))
    proc = start(lab, "play", "rb.yml", "-i", "inv.yml")
    wait_for(work / "started", proc)
    ctrl_c(proc)
    wait_for_first_press(lab / "home", proc)  # the step is still running: it cannot end before release
    (work / "release").touch()
    out, _ = proc.communicate(timeout=30)
    assert "Traceback" not in out
    assert proc.returncode == 130, out
    # The running step finished (its effect is there), the next one did not start.
    assert lines_of(work / "slow") == ["done"], out
    assert not (work / "third").exists(), out
    run_id = re.search(r"RUN_ID (\S+)", out).group(1)  # type: ignore[union-attr]
    assert f"runbook resume {run_id}" in out

    res = cli("resume", run_id, cwd=lab)
    rout = res.stdout + res.stderr
    assert res.returncode == 0, rout
    assert lines_of(work / "third") == ["once"]
    # Nothing that was done ran again.
    assert lines_of(work / "first") == ["once"] and lines_of(work / "slow") == ["done"], rout


def _abort_with_two_ctrl_c(lab: Path) -> tuple[str, str]:
    """The Slow step is a gate (it cannot end before ``work/release``): the run exits on the
    second Ctrl-C while the step could not have finished, so it did not wait for it."""
    work = lab / "work"
    proc = start(lab, "play", "rb.yml", "-i", "inv.yml")
    wait_for(work / "started", proc)
    ctrl_c(proc)
    wait_for_first_press(lab / "home", proc)
    ctrl_c(proc)
    try:
        out, _ = proc.communicate(timeout=60)  # a guard against a hang: the step never ends by itself
    finally:
        (work / "release").touch()  # a step left behind ends now
    assert "Traceback" not in out
    assert proc.returncode == 130, out
    assert not (work / "slow").exists(), f"the run waited for the step to end\n{out}"
    assert not (work / "third").exists(), out
    run_id = re.search(r"RUN_ID (\S+)", out).group(1)  # type: ignore[union-attr]
    assert f"runbook resume {run_id}" in out

    show = cli("show", run_id, cwd=lab)
    assert show.returncode == 0, show.stdout + show.stderr
    slow_line = [ln for ln in show.stdout.splitlines() if ln.strip().endswith("Slow -") or " Slow " in ln]
    assert slow_line and "IN DOUBT" in slow_line[0], show.stdout
    assert f"runbook resume {run_id}" in show.stdout
    runs = cli("runs", cwd=lab)
    assert re.search(rf"{run_id}\s+interrupted\s.*1 in doubt", runs.stdout), runs.stdout
    return run_id, out


def test_second_ctrl_c_aborts_the_step_in_doubt_and_resume_reruns_an_idempotent_one(lab):
    work = lab / "work"
    (lab / "rb.yml").write_text(runbook(work, gate(work), idempotent=True))
    run_id, _ = _abort_with_two_ctrl_c(lab)  # it leaves work/release: the re-run ends at once

    res = cli("resume", run_id, cwd=lab, timeout=30)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert "1 in doubt" in out  # the analysis saw it
    # The idempotent step ran again to the end, then the rest; the first step did not run again.
    assert "done" in lines_of(work / "slow"), out
    assert lines_of(work / "third") == ["once"]
    assert lines_of(work / "first") == ["once"]
    assert cli("show", run_id, cwd=lab).stdout.splitlines()[0] == f"run {run_id}: succeeded"


def test_an_in_doubt_step_without_a_probe_is_put_to_the_operator(lab):
    work = lab / "work"
    (lab / "rb.yml").write_text(runbook(work, gate(work), idempotent=False))
    run_id, _ = _abort_with_two_ctrl_c(lab)

    # No probe, not idempotent, no terminal: resume stops before touching it and says how to decide.
    res = cli("resume", run_id, cwd=lab)
    out = res.stdout + res.stderr
    assert res.returncode == 1, out
    assert "in doubt" in out and "--decide" in out
    assert not (work / "third").exists()

    # The operator looked at the host and decides it is done: it is not run again.
    res = cli("resume", run_id, "--decide", "work/Slow@ctl=done", cwd=lab)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert lines_of(work / "third") == ["once"]
    assert lines_of(work / "first") == ["once"]
    # The decision is the operator's word, journaled: `show` and the reports carry it.
    show = cli("show", run_id, cwd=lab).stdout
    assert "decided done for in-doubt work/Slow on ctl (--decide)" in show, show
    assert "interrupted (Ctrl-C, press 2)" in show, show


# --------------------------------------------------------------------------- issue 7 item 4


EIGHT = "all:\n  hosts:\n" + "".join(f"    h{i}: {{connection: local}}\n" for i in range(8))


def test_ctrl_c_during_fdatasync_with_forks_4_and_8_hosts(lab):
    """Was: the SIGINT handler wrote the journal (whose locks a worker held during its slow
    fdatasync) and a second Ctrl-C closed connections before the journal: workers journaled
    `failed`, queued hosts still started. Now: no hang, the queued hosts never start, every
    step that was running is in doubt."""
    work = lab / "work"
    (lab / "inv8.yml").write_text(EIGHT)
    (lab / "rb.yml").write_text(f"""
name: many hosts
stages:
  - name: work
    steps:
      - name: Slow
        shell: touch {work}/started-{{{{ inventory_hostname }}}}; sleep 30
""")
    env = dict(cli_env(lab / "home"), RUNBOOK_FAULT_SLOW_SYNC_S="0.5")
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "play", "rb.yml", "-i", "inv8.yml", "--forks", "4"], cwd=lab,
                            env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 30
    while not list(work.glob("started-*")):
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, "no step started"
        time.sleep(0.01)
    ctrl_c(proc)  # while the other workers' intents wait in the slow fdatasync
    wait_for_first_press(lab / "home", proc)  # two presses, not one the handler sees once
    ctrl_c(proc)
    out, _ = proc.communicate(timeout=60)  # no hang
    assert "Traceback" not in out
    assert proc.returncode == 130, out
    started = sorted(p.name.removeprefix("started-") for p in work.glob("started-*"))
    assert 1 <= len(started) <= 4, (started, out)  # the queued hosts never started
    run_id = re.search(r"RUN_ID (\S+)", out).group(1)  # type: ignore[union-attr]
    assert f"runbook resume {run_id}" in out
    records = [json.loads(ln) for ln in (lab / "home" / run_id / "journal.jsonl").read_text().splitlines()]
    intents = {r["host"] for r in records if r["type"] == "intent"}
    assert not [r for r in records if r["type"] == "outcome"], out  # every step that ran is in doubt
    assert set(started) <= intents <= {f"h{i}" for i in range(4)} | set(started)
    show = cli("show", run_id, cwd=lab)
    assert show.stdout.count("IN DOUBT") == len(intents), show.stdout


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_are_handled_like_ctrl_c(lab, sig):
    work = lab / "work"
    (lab / "rb.yml").write_text(runbook(work, gate(work), idempotent=False))
    proc = start(lab, "play", "rb.yml", "-i", "inv.yml")
    wait_for(work / "started", proc)
    os.killpg(proc.pid, sig)
    wait_for_first_press(lab / "home", proc)  # the step is still running: it cannot end before release
    (work / "release").touch()
    out, _ = proc.communicate(timeout=30)
    assert "Traceback" not in out
    assert proc.returncode == 130, out
    assert lines_of(work / "slow") == ["done"], out  # the running step finished
    assert not (work / "third").exists(), out
    run_id = re.search(r"RUN_ID (\S+)", out).group(1)  # type: ignore[union-attr]
    assert f"to continue: runbook resume {run_id}" in out


def test_one_ctrl_c_ends_a_pause_at_once(lab):
    work = lab / "work"
    (lab / "rb.yml").write_text(f"""
name: pause
targets: ctl
stages:
  - name: work
    steps:
      - name: Mark
        shell: touch {work}/started
      - name: Wait
        pause: {{minutes: 10}}
      - name: After
        shell: touch {work}/after
""")
    proc = start(lab, "play", "rb.yml", "-i", "inv.yml")
    # The pause has started (its intent is journaled): the interrupt ends it, not the run's
    # refusal to start a new step.
    wait_for_journal_record(lab / "home", proc, "the pause's intent", type="intent", step="work/Wait")
    ctrl_c(proc)
    out, _ = proc.communicate(timeout=30)  # not ten minutes
    assert proc.returncode == 130, out
    assert "pause ended by an interrupt" in out, out
    assert not (work / "after").exists()


def test_a_pause_prompt_without_a_terminal_is_refused_before_anything_runs(lab):
    work = lab / "work"
    (lab / "rb.yml").write_text(f"""
name: pause prompt
targets: ctl
stages:
  - name: work
    steps:
      - name: Mark
        shell: touch {work}/ran
      - name: Ask
        pause: {{prompt: "Is traffic at zero?"}}
""")
    res = cli("play", "rb.yml", "-i", "inv.yml", cwd=lab)
    out = res.stdout + res.stderr
    assert res.returncode == 2, out
    assert "no terminal" in out and "nothing was run" in out
    assert not (work / "ran").exists()


def _on_a_terminal(cwd: Path, *args: str) -> tuple[int, subprocess.Popen[bytes]]:
    """The CLI with a pseudo-terminal as its stdin/stdout: the operator is interactive."""
    import pty

    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", *args], cwd=cwd, env=cli_env(cwd / "home"),
                            stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    return master, proc


def _read_until(master: int, needle: bytes, seen: bytearray, timeout: float = 30, after: bytes = b"") -> None:
    import select as _select

    deadline = time.monotonic() + timeout
    while needle not in (bytes(seen).split(after, 1)[-1] if after else seen):
        assert time.monotonic() < deadline, seen.decode(errors="replace")
        ready, _, _ = _select.select([master], [], [], 0.2)
        if ready:
            try:
                seen += os.read(master, 4096)
            except OSError:
                break


def test_the_operator_on_a_terminal_confirms_and_answers_a_pause(lab):
    """One operator, on the main thread: the stage confirmation and a worker's pause prompt
    are asked on the terminal, answered, and the confirmation is journaled."""
    work = lab / "work"
    (lab / "rb.yml").write_text(f"""
name: operator
targets: ctl
stages:
  - name: fence
    confirm: "Stop writes on {{{{ inventory_hostname }}}}"
    steps:
      - name: Ask
        pause: {{prompt: "Is traffic at zero?"}}
        register: answer
      - name: Record
        shell: "echo '{{{{ answer.user_input }}}}' > {work}/answer"
""")
    master, proc = _on_a_terminal(lab, "play", "rb.yml", "-i", "inv.yml")
    seen = bytearray()
    try:
        _read_until(master, b"Type 'ctl' to go on", seen)
        os.write(master, b"ctl\n")
        _read_until(master, b"Is traffic at zero? (press Enter)", seen)
        os.write(master, b"yes it is\n")
        _read_until(master, b"RUN_ID ", seen)
        _read_until(master, b"\n", seen, after=b"RUN_ID ")  # the rest of its line
        assert proc.wait(timeout=30) == 0, seen.decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    assert (work / "answer").read_text() == "yes it is\n"
    run_id = re.search(rb"RUN_ID (\S+)\s", bytes(seen)).group(1).decode()  # type: ignore[union-attr]
    show = cli("show", run_id, cwd=lab).stdout
    assert "confirmed stage [fence] (terminal): Stop writes on ctl" in show, show
