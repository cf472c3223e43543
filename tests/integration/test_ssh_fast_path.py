"""The fast path over SSH (one long-lived runner per connection, engine/transport/sshrunner.py)
keeps every guarantee of one exec channel per command, through the real CLI and a real sshd:

* a command past its ``timeout:`` is killed on the host with its whole process group (a child
  in the background included) and the step is in doubt, which resume puts to the operator;
* the second Ctrl-C kills the running command's process group and leaves the step in doubt;
* a connection that drops, or a runner that dies, under a running command leaves it in doubt;
* each test checks that its command really ran under the runner (its parent is ``python3``).
"""

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

from tests.cliutil import cli, cli_env, out_of, run_id_of, wait_for_journal_record
from tests.sshd import SshdServer

pytestmark = pytest.mark.integration


def _setup(tmp_path: Path, sshd: SshdServer, command: str, timeout: float | None = None) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    limit = f"        timeout: {timeout}\n" if timeout is not None else ""
    (tmp_path / "rb.yml").write_text(f"""
name: fast path
stages:
  - name: s
    steps:
      - name: Before
        shell: echo before >> {work}/before
      - name: Slow
{limit}        shell: "cat /proc/$PPID/comm > {work}/parent; sleep 60 & echo $! > {work}/bg; touch {work}/started; {command}"
      - name: After
        shell: echo after >> {work}/after
""")
    (tmp_path / "inv.yml").write_text(f"all:\n  hosts:\n    db1:\n{sshd.host_vars_yaml(6)}\n")
    return work


def _start(tmp_path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "engine.cli", "play", "rb.yml", "-i", "inv.yml"], cwd=tmp_path,
                            env=cli_env(tmp_path / "home"), text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)


def _wait_for(path: Path, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


def _journal(tmp_path: Path, run_id: str) -> list[dict]:
    return [json.loads(ln) for ln in (tmp_path / "home" / run_id / "journal.jsonl").read_text().splitlines()]


def _slow_outcomes(tmp_path: Path, run_id: str) -> list[str | None]:
    """The outcome status of each attempt of step Slow (None: an intent without an outcome)."""
    records = _journal(tmp_path, run_id)
    intents = [r["seq"] for r in records if r["type"] == "intent" and r["step"] == "s/Slow"]
    outcomes = {r["intent"]: r["status"] for r in records if r["type"] == "outcome"}
    return [outcomes.get(seq) for seq in intents]


def _dead(pid: int) -> bool:
    for _ in range(200):
        if not os.path.exists(f"/proc/{pid}") or Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
            return True
        time.sleep(0.05)
    return False


def _ran_under_the_runner(work: Path) -> None:
    assert (work / "parent").read_text().strip() == "python3", "the command did not run under the runner"


def test_timeout_kills_the_whole_group_on_the_host_and_the_step_is_in_doubt(tmp_path: Path, sshd: SshdServer) -> None:
    work = _setup(tmp_path, sshd, "wait", timeout=1)
    res = cli("play", "rb.yml", "-i", "inv.yml", cwd=tmp_path, home=tmp_path / "home")
    out = out_of(res)
    assert res.returncode == 1, out
    _ran_under_the_runner(work)
    assert re.search(r"timeout of [0-9.]+s on .*: its process group \d+ was killed; whether it took effect is unknown", out), out
    assert _dead(int((work / "bg").read_text())), "the background child of the timed-out command is still running"
    run_id = run_id_of(res)
    assert _slow_outcomes(tmp_path, run_id) == ["unknown"]
    assert not (work / "after").exists()
    # In doubt and no probe: resume does not run it again on its own, it asks.
    again = cli("resume", run_id, cwd=tmp_path, home=tmp_path / "home")
    rout = out_of(again)
    assert again.returncode == 1 and "in doubt" in rout and "--decide" in rout, rout
    assert (work / "before").read_text() == "before\n"


def test_second_ctrl_c_kills_the_group_on_the_host_and_leaves_the_step_in_doubt(tmp_path: Path, sshd: SshdServer) -> None:
    work = _setup(tmp_path, sshd, "wait")
    proc = _start(tmp_path)
    _wait_for(work / "started", proc)
    os.killpg(proc.pid, signal.SIGINT)
    # two separate presses, as a person makes them: the second once the run acted on the first
    wait_for_journal_record(tmp_path / "home", proc, "the first interrupt", kind="interrupted", presses=1)
    os.killpg(proc.pid, signal.SIGINT)
    out = proc.communicate(timeout=30)[0]
    assert "Traceback" not in out, out
    assert proc.returncode == 130, out
    _ran_under_the_runner(work)
    assert _dead(int((work / "bg").read_text())), "the background child of the aborted command is still running"
    run_id = re.search(r"RUN_ID (\S+)", out).group(1)  # type: ignore[union-attr]
    assert _slow_outcomes(tmp_path, run_id) == [None]  # intent, no outcome: in doubt
    show = cli("show", run_id, cwd=tmp_path, home=tmp_path / "home").stdout
    assert any("Slow" in ln and "IN DOUBT" in ln for ln in show.splitlines()), show
    assert not (work / "after").exists()


def test_connection_dropped_under_a_command_is_in_doubt(tmp_path: Path, private_sshd: SshdServer) -> None:
    work = _setup(tmp_path, private_sshd, "sleep 30")
    proc = _start(tmp_path)
    _wait_for(work / "started", proc)
    private_sshd.drop_connections()
    out = proc.communicate(timeout=60)[0]
    assert proc.returncode == 1, out
    _ran_under_the_runner(work)
    assert "dropped during the command; whether it took effect is unknown" in out, out
    run_id = re.search(r"RUN_ID (\S+)", out).group(1)  # type: ignore[union-attr]
    assert _slow_outcomes(tmp_path, run_id) == ["unknown"]
    os.kill(int((work / "bg").read_text()), signal.SIGKILL)


def test_runner_killed_under_a_command_is_in_doubt_and_the_next_command_gets_a_new_one(tmp_path: Path, sshd: SshdServer) -> None:
    work = _setup(tmp_path, sshd, "kill -9 $PPID; sleep 1")
    res = cli("play", "rb.yml", "-i", "inv.yml", cwd=tmp_path, home=tmp_path / "home")
    out = out_of(res)
    assert res.returncode == 1, out
    _ran_under_the_runner(work)
    assert re.search(r"the command runner on .* ended during the command .*whether it took effect is unknown", out), out
    run_id = run_id_of(res)
    assert _slow_outcomes(tmp_path, run_id) == ["unknown"]
    os.kill(int((work / "bg").read_text()), signal.SIGKILL)
    # The operator says it ran: the run goes on, on a new runner of the same connection.
    again = cli("resume", run_id, "--decide", "s/Slow@db1=done", cwd=tmp_path, home=tmp_path / "home")
    assert again.returncode == 0, out_of(again)
    assert (work / "after").read_text() == "after\n"
