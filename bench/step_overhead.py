"""Per-step overhead of `runbook play`: shell over SSH, SQL, and the journal.

    python bench/step_overhead.py [--steps 200] [--ansible-steps 50]

Method. Every figure is a difference, so start-up and connection set-up cancel out:
per step = (time of a run with N+1 steps − time of a run with 1 step) / N, through the real CLI.
The *overhead* is that minus what the bare transport needs for the same command (paramiko
exec of ``true`` on one transport; PyMySQL ``SELECT 1`` on one session), i.e. what the engine
adds: templating, probes, journal records (fdatasync included), output. The journal's own share
is timed in-process around the journal calls of a real play.

A real sshd is started on a free loopback port (as the tests do); MariaDB at 127.0.0.1:3306.
When ``ansible-playbook`` is installed (``pip install ansible-core``), the same trivial shell
task is run with it (pipelining on, same sshd) and the ratio is printed.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.model import MysqlSettings
from engine.transport.mysql import MysqlSession
from engine.transport.ssh import SshShell
from tests.sshd import start_sshd


def inventory(sshd, path: Path) -> None:
    path.write_text(f"""
all:
  vars: {{mysql_user: root, mysql_host: 127.0.0.1, mysql_port: 3306}}
  hosts:
    db1:
{sshd.host_vars_yaml()}
""")


def runbook(kind: str, n: int, path: Path) -> None:
    lines = [f"name: bench {kind} {n}", "stages:", "  - name: s", "    steps:"]
    for i in range(n):
        if kind == "shell":
            lines += [f"      - name: step {i}", "        shell: 'true'"]
        else:
            lines += [f"      - name: step {i}", "        sql: SELECT {{ i }} AS n".replace("{{ i }}", str(i))]
    path.write_text("\n".join(lines) + "\n")


def timed_play(rb: Path, inv: Path, home: Path) -> float:
    # Host locks are machine-wide: a private lock dir keeps the bench's "db1" apart from the
    # tests others run on this machine at the same time.
    env = dict(os.environ, NO_COLOR="1", RUNBOOK_HOME=str(home), RUNBOOK_LOCK_DIR=str(home / "locks"))
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "engine.cli", "play", str(rb), "-i", str(inv)], env=env,
                         capture_output=True, text=True, cwd=ROOT)
    took = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"runbook play failed:\n{res.stdout}\n{res.stderr}")
    return took


def per_step_cli(kind: str, n: int, work: Path, inv: Path, repeat: int = 3) -> float:
    one, many = work / f"{kind}-1.yml", work / f"{kind}-{n + 1}.yml"
    runbook(kind, 1, one)
    runbook(kind, n + 1, many)
    best_one = min(timed_play(one, inv, work / "home") for _ in range(repeat))
    best_many = min(timed_play(many, inv, work / "home") for _ in range(repeat))
    return (best_many - best_one) / n


def raw_ssh(sshd, n: int) -> float:
    shell = SshShell(sshd.settings())
    shell.run("true")
    t0 = time.perf_counter()
    for _ in range(n):
        shell.run("true")
    took = (time.perf_counter() - t0) / n
    shell.close()
    return took


def raw_sql(n: int) -> float:
    s = MysqlSession(MysqlSettings(host="127.0.0.1", port=3306, user="root"))
    s.query("SELECT 1")
    t0 = time.perf_counter()
    for i in range(n):
        s.query("SELECT %s AS n", [i])
    took = (time.perf_counter() - t0) / n
    s.close()
    return took


def journal_share(work: Path, inv: Path, n: int) -> float:
    """Seconds per step spent inside the journal (intent + outcome records, masking, encoding,
    fdatasync), timed around the journal calls of a real in-process play of the SQL runbook."""
    from engine.inventory import load_inventories
    from engine.journal import Journal, new_run_id
    from engine.language.loader import load_runbook
    from engine.run.play import Play, PlayOptions
    from engine.report.console import Console

    rb_path = work / f"sql-{n + 1}.yml"
    rb = load_runbook(str(rb_path)).runbook
    inv_ = load_inventories([str(inv)])
    best = float("inf")
    for _ in range(3):
        run_id = new_run_id()
        journal = Journal.create(work / "home", run_id, {"runbook": str(rb_path)})
        spent = [0.0]
        for name in ("intent", "outcome"):
            real = getattr(journal, name)

            def timed(*a, _real=real, _spent=spent, **kw):
                t0 = time.perf_counter()
                try:
                    return _real(*a, **kw)
                finally:
                    _spent[0] += time.perf_counter() - t0

            setattr(journal, name, timed)
        play = Play(rb, inv_, PlayOptions(journal_dir=str(work / "home")), Console(out=io.StringIO()), run_id=run_id, journal=journal)
        play.run()
        play.close()
        journal.close()
        best = min(best, spent[0] / (n + 1))
    return best


def in_process_sql(work: Path, inv: Path, n: int) -> float:
    """Seconds per SQL step of an in-process play with no journal and no CLI: the engine's
    own cost plus the query, without process start-up noise."""
    from engine.inventory import load_inventories
    from engine.language.loader import load_runbook
    from engine.run.play import Play, PlayOptions
    from engine.report.console import Console

    rb = load_runbook(str(work / f"sql-{n + 1}.yml")).runbook
    play = Play(rb, load_inventories([str(inv)]), PlayOptions(), Console(out=io.StringIO()), run_id="bench", journal=None)
    play.run()  # connections open, templates compiled
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        play.run()
        best = min(best, (time.perf_counter() - t0) / (n + 1))
    play.close()
    return best


def ansible_per_task(sshd, work: Path, n: int) -> float | None:
    exe = shutil.which("ansible-playbook")
    if exe is None:
        return None
    inv = work / "ansible-inv.ini"
    inv.write_text(
        f"db1 ansible_host={sshd.host} ansible_port={sshd.port} ansible_user={sshd.user} "
        f"ansible_ssh_private_key_file={sshd.key_file} ansible_python_interpreter={shutil.which('python3')} "
        f"ansible_ssh_common_args='-o UserKnownHostsFile={sshd.known_hosts} -F {sshd.config_file}'\n")

    def playbook(count: int) -> Path:
        p = work / f"ansible-{count}.yml"
        tasks = "\n".join(f"    - name: t{i}\n      shell: 'true'" for i in range(count))
        p.write_text(f"- hosts: db1\n  gather_facts: false\n  tasks:\n{tasks}\n")
        return p

    env = dict(os.environ, ANSIBLE_PIPELINING="1", ANSIBLE_HOST_KEY_CHECKING="1", ANSIBLE_NOCOLOR="1",
               ANSIBLE_SSH_CONTROL_PATH_DIR=str(work / "cp"), ANSIBLE_LOCAL_TEMP=str(work / "atmp"))

    def run(p: Path) -> float:
        t0 = time.perf_counter()
        res = subprocess.run([exe, "-i", str(inv), str(p)], env=env, capture_output=True, text=True)
        if res.returncode != 0:
            raise SystemExit(f"ansible-playbook failed:\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}")
        return time.perf_counter() - t0

    one, many = playbook(1), playbook(n + 1)
    return (min(run(many) for _ in range(2)) - min(run(one) for _ in range(2))) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--ansible-steps", type=int, default=50)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="rb-bench-") as tmp:
        work = Path(tmp)
        sshd = start_sshd(work / "sshd")
        try:
            inv = work / "inv.yml"
            inventory(sshd, inv)
            n = args.steps
            shell_step = per_step_cli("shell", n, work, inv)
            sql_step = per_step_cli("sql", n, work, inv)
            ssh_raw = raw_ssh(sshd, n)
            sql_raw = raw_sql(n)
            journal = journal_share(work, inv, n)
            sql_inproc = in_process_sql(work, inv, n)
            ansible = ansible_per_task(sshd, work, args.ansible_steps)
        finally:
            sshd.stop()
    ms = lambda s: f"{s * 1000:8.2f} ms"
    print(f"runbook step overhead ({n} steps per run, best of 3, one host over a real sshd on loopback)")
    print(f"  shell over SSH: {ms(shell_step)} per step; bare paramiko exec {ms(ssh_raw)} → engine overhead {ms(shell_step - ssh_raw)}")
    print(f"  SQL:            {ms(sql_step)} per step; bare PyMySQL query {ms(sql_raw)} → engine overhead {ms(sql_step - sql_raw)}")
    print(f"  journal (intent + outcome, fdatasync'd), share of the above: {ms(journal)} per step")
    print(f"  SQL in-process without journal or CLI: {ms(sql_inproc)} per step → engine alone {ms(sql_inproc - sql_raw)}")
    if ansible is None:
        print("  ansible-playbook: not installed (pip install ansible-core) — no comparison")
    else:
        print(f"  ansible-playbook (pipelining on), shell: 'true': {ms(ansible)} per task "
              f"→ runbook is {ansible / shell_step:.0f}x faster per shell step")


if __name__ == "__main__":
    main()
