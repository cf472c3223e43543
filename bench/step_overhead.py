"""Per-step cost of `runbook play` on one host: shell over SSH, SQL, and what the engine adds.

    python bench/step_overhead.py [--steps 200] [--rounds 5] [--ansible-steps 30] [--baseline-tree DIR]

Method. Every figure is a difference, so start-up and connection set-up cancel out:
per step = (run with N+1 steps − run with 1 step) / N, whole ``runbook play`` processes, in
interleaved rounds, medians (wall, and the process's CPU from wait4). Beside them, the same
commands without the engine, on one connection each:

* bare paramiko exec: ``open_session`` + ``exec_command('true')`` + exit status on one
  transport, what any paramiko-based tool pays per command (the per-command channel);
* runbook's transport alone: ``SshShell.run('true')`` (the long-lived runner), broken down:
  the runner's host program over local pipes (no SSH), and a bare spawn of ``/bin/sh -c true``;
* bare PyMySQL: ``SELECT %s`` on one session.

Engine overhead = per step − the transport alone. The journal's share is timed in-process.
A real sshd is started on a loopback port (tests/sshd.py); MariaDB at 127.0.0.1:3306. With
``ansible-playbook`` installed, the same shell task runs with pipelining on the same sshd.
Goals (issue 19): shell over SSH ≤ 2 ms per step; engine overhead ≤ 0.5 ms; SQL ≤ 0.5 ms.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import paramiko

from bench.pyenv import engine_env, timed_engine
from engine.model import MysqlSettings
from engine.transport.mysql import MysqlSession
from engine.transport.ssh import SshShell
from tests.sshd import SshdServer, start_sshd


def inventory(sshd: SshdServer, path: Path) -> None:
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
        lines += [f"      - name: step {i}", "        shell: 'true'" if kind == "shell" else f"        sql: SELECT {i} AS n"]
    path.write_text("\n".join(lines) + "\n")


def timed_play(tree: Path, rb: Path, inv: Path, home: Path) -> tuple[float, float]:
    """(wall s, CPU s) of one whole `runbook play` process."""
    # Host locks are machine-wide: a private lock dir keeps the bench's "db1" apart from the
    # tests others run on this machine at the same time.
    env = engine_env(tree, NO_COLOR="1", RUNBOOK_HOME=str(home), RUNBOOK_LOCK_DIR=str(home / "locks"))
    return timed_engine(tree, ["play", str(rb), "-i", str(inv)], env)


def bare_paramiko(sshd: SshdServer, n: int) -> float:
    """Seconds per ``exec_command('true')`` on its own channel of one paramiko transport."""
    client = paramiko.SSHClient()
    client.load_host_keys(sshd.known_hosts)
    # TCP_NODELAY, as any tool that runs many commands sets it: paramiko leaves Nagle on, and
    # each command then waits ~40 ms for a delayed ACK (58 ms a command here without it).
    sock = socket.create_connection((sshd.host, sshd.port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client.connect(sshd.host, port=sshd.port, username=sshd.user, key_filename=sshd.key_file, look_for_keys=False,
                   allow_agent=False, sock=sock)
    transport = client.get_transport()
    assert transport is not None

    def one() -> None:
        chan = transport.open_session()
        chan.exec_command("true")
        chan.recv_exit_status()
        chan.close()

    one()
    t0 = time.perf_counter()
    for _ in range(n):
        one()
    took = (time.perf_counter() - t0) / n
    client.close()
    return took


def raw_ssh(sshd: SshdServer, n: int) -> float:
    shell = SshShell(sshd.settings())
    shell.run("true")
    shell.run("true")  # the second command waits for the runner: every later one uses it
    t0 = time.perf_counter()
    for _ in range(n):
        shell.run("true")
    took = (time.perf_counter() - t0) / n
    shell.close()
    return took


def runner_over_pipes(n: int) -> float:
    """Seconds per command of the SSH runner's host program fed over local pipes, without SSH:
    the runner's loop and its spawn of ``/bin/sh -c true``, no sshd, no paramiko."""
    from engine.transport.sshrunner import _PROGRAM, HEAD, RUN

    proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", _PROGRAM], stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
    assert proc.stdin is not None and proc.stdout is not None
    fin, fout = proc.stdin.fileno(), proc.stdout.fileno()
    buf = bytearray()

    def until(kind: bytes) -> None:
        nonlocal buf
        while True:
            while len(buf) >= HEAD.size and len(buf) >= HEAD.size + HEAD.unpack_from(buf)[2]:
                k, _, size = HEAD.unpack_from(buf)
                del buf[:HEAD.size + size]
                if k == kind:
                    return
            data = os.read(fout, 1 << 16)
            if not data:
                raise SystemExit("the runner ended")
            buf += data

    def one(i: int) -> None:
        body = RUN.pack(-1.0, 0, 4) + b"true"
        os.write(fin, HEAD.pack(b"R", i, len(body)) + body)
        until(b"X")

    until(b"H")
    one(0)
    t0 = time.perf_counter()
    for i in range(n):
        one(i + 1)
    took = (time.perf_counter() - t0) / n
    proc.stdin.close()
    proc.wait()
    return took


def spawn_floor(n: int) -> float:
    """Seconds per ``posix_spawn('/bin/sh', '-c', 'true')`` + ``waitpid`` from Python: the part of
    a command no transport can remove."""
    env = dict(os.environb)
    t0 = time.perf_counter()
    for _ in range(n):
        os.waitpid(os.posix_spawn("/bin/sh", ["/bin/sh", "-c", "true"], env), 0)
    return (time.perf_counter() - t0) / n


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
    fdatasync where the step needs it), timed around the journal calls of an in-process play
    of the shell runbook."""
    from engine.inventory import load_inventories
    from engine.journal import Journal, new_run_id
    from engine.language.loader import load_runbook
    from engine.report.console import Console
    from engine.run.play import Play, PlayOptions

    rb_path = work / f"shell-{n + 1}.yml"
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


def ansible_per_task(sshd: SshdServer, work: Path, n: int) -> float | None:
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
    ap.add_argument("--steps", type=int, default=200, help="shell steps per run (SQL runs have 5x as many)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--ansible-steps", type=int, default=30, help="0: skip ansible-playbook")
    ap.add_argument("--baseline-tree", help="another checkout run in the same rounds (before/after)")
    args = ap.parse_args()
    trees = [("this tree", ROOT)] + ([("baseline", Path(args.baseline_tree).resolve())] if args.baseline_tree else [])
    n = args.steps
    with tempfile.TemporaryDirectory(prefix="rb-bench-") as tmp:
        work = Path(tmp)
        sshd = start_sshd(work / "sshd")
        try:
            inv = work / "inv.yml"
            inventory(sshd, inv)
            steps = {"shell": n, "sql": 5 * n}
            for kind in ("shell", "sql"):
                runbook(kind, 1, work / f"{kind}-1.yml")
                runbook(kind, steps[kind] + 1, work / f"{kind}-{steps[kind] + 1}.yml")
            runs: dict[tuple[str, str, int], list[tuple[float, float]]] = {}
            loads = []
            bare_exec, ssh_raw, sql_raw, pipes, spawns = [], [], [], [], []
            for r in range(args.rounds):
                for kind in ("shell", "sql"):
                    # Each tree goes first every other round: the first shell runs of a round
                    # follow the previous round's 1,000-step SQL runs (their journals still being
                    # written back), and measured ~1 ms per step slower, whichever tree it was.
                    for label, tree in (trees if r % 2 == 0 else trees[::-1]):
                        for k in (1, steps[kind] + 1):
                            runs.setdefault((label, kind, k), []).append(timed_play(tree, work / f"{kind}-{k}.yml", inv, work / "home"))
                bare_exec.append(bare_paramiko(sshd, n))
                ssh_raw.append(raw_ssh(sshd, n))
                sql_raw.append(raw_sql(n))
                pipes.append(runner_over_pipes(n))
                spawns.append(spawn_floor(n))
                loads.append(os.getloadavg()[0])
            journal = journal_share(work, inv, n)
            ansible = ansible_per_task(sshd, work, args.ansible_steps) if args.ansible_steps else None
        finally:
            sshd.stop()
    med = statistics.median
    ms = lambda s: f"{s * 1000:7.2f} ms"
    exec_ = med(bare_exec)
    ssh_ = med(ssh_raw)
    sql_ = med(sql_raw)
    print(f"runbook step overhead: {n} shell / {5 * n} SQL steps per run, {args.rounds} interleaved rounds, medians; one host over a real "
          f"sshd on loopback; load average {med(loads):.2f} on {os.cpu_count()} cores")
    print(f"  bare paramiko exec_command('true') on one transport: {ms(exec_)} per command (one channel each)")
    print(f"  runbook's transport alone, SshShell.run('true'):      {ms(ssh_)} per command (the runner)")
    print(f"    of which the runner over local pipes (no SSH):     {ms(med(pipes))} per command, "
          f"of which posix_spawn of /bin/sh -c true + wait: {ms(med(spawns))}")
    print(f"  bare PyMySQL SELECT:                                 {ms(sql_)} per query")
    shell_step = 0.0
    for label, _ in trees:
        per = {}
        for kind in ("shell", "sql"):
            one, many, k = runs[(label, kind, 1)], runs[(label, kind, steps[kind] + 1)], steps[kind]
            per[kind] = ((med(w for w, _ in many) - med(w for w, _ in one)) / k, (med(c for _, c in many) - med(c for _, c in one)) / k)
        if label == "this tree":
            shell_step = per["shell"][0]
        print(f"  [{label}] shell over SSH: {ms(per['shell'][0])} per step ({ms(per['shell'][1])} CPU) -> engine overhead "
              f"{ms(per['shell'][0] - ssh_)} over the transport, {ms(per['shell'][0] - exec_)} over a bare paramiko exec")
        print(f"  [{label}] SQL:            {ms(per['sql'][0])} per step ({ms(per['sql'][1])} CPU) -> engine overhead "
              f"{ms(per['sql'][0] - sql_)} over bare PyMySQL")
    print(f"  journal (intent + outcome; fdatasync for steps that change something), in-process: {ms(journal)} per shell step")
    if ansible is None:
        print("  ansible-playbook: not run (pip install ansible-core; --ansible-steps N)")
    else:
        print(f"  ansible-playbook (pipelining on), shell: 'true': {ms(ansible)} per task "
              f"-> runbook is {ansible / shell_step:.0f}x faster per shell step")
    print("  goals: shell over SSH <= 2 ms per step; engine overhead <= 0.5 ms; SQL <= 0.5 ms per step")


if __name__ == "__main__":
    main()
