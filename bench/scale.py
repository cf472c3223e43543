"""Fleet scale: N hosts on one sshd, 20 shell + 5 SQL steps per host, ``--forks N``.

    python bench/scale.py [--hosts 1,100,500] [--rounds 3] [--baseline-tree DIR]

Every "host" is the same test sshd (``tests/sshd.py``, ``MaxStartups`` raised for hundreds of
clients) and the same private MariaDB (``engine/mysql/instance.py``, ``max_connections``
raised), each with a connection of its own, as a real fleet would have. The runbook has 25
steps per host: 20 ``shell`` (``true``, and a templated ``echo``) and 5 ``sql`` (4 SELECTs and one
INSERT, which the identity guard checks). Each configuration is one whole
``runbook play --forks N --yes`` process, timed by the bench (wall, the process's CPU from
wait4, peak RSS), in interleaved rounds; medians are printed with the machine's load average.

Goals (issue 19): 100 hosts in ≤ 3× the wall time of 1 host; control-node CPU ≤ 0.5 ms per
step and host (the whole runbook process: start-up, connections, steps, journal); peak RSS
printed. ``--baseline-tree`` runs another checkout's engine in the same rounds, for before/after.
The hosts' side (sshd, the runners, /bin/sh, MariaDB) runs on the same cores here: it is part
of the wall time, not of the control node's CPU; its CPU is printed for each run (sshd's reaped
descendants, and mariadbd) so the wall time can be read against what the machine had to do:
the "floor" column is all of that CPU divided by the cores, the least wall time the run can take
here (on a real fleet each host's side runs on its own machine).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.pyenv import engine_env
from engine.mysql.instance import MariadbInstance
from tests.sshd import start_sshd

SHELL_STEPS, SQL_STEPS = 20, 5


def write_runbook(path: Path) -> None:
    lines = ["name: scale bench", "stages:", "  - name: work", "    steps:"]
    for i in range(SHELL_STEPS + SQL_STEPS):
        lines.append(f"      - name: step {i}")
        if i % 5 == 4:  # every fifth step is SQL; the last one writes
            if i == SHELL_STEPS + SQL_STEPS - 1:
                lines.append("        sql: INSERT INTO bench.hits (host, step) VALUES ({{ inventory_hostname }}, " + str(i) + ")")
            else:
                lines.append(f"        sql: SELECT {{{{ inventory_hostname }}}} AS host, {i} AS step")
        elif i % 2:
            lines.append("        shell: echo {{ inventory_hostname }} " + str(i))
        else:
            lines.append("        shell: 'true'")
    path.write_text("\n".join(lines) + "\n")


def write_inventory(path: Path, n: int, sshd, mysql_port: int) -> None:
    hosts = "\n".join(f"    h{i:03d}:" for i in range(n))
    path.write_text(f"""all:
  vars:
    ssh_host: {sshd.host}
    ssh_port: {sshd.port}
    ssh_user: {sshd.user}
    ssh_key: {sshd.key_file}
    ssh_known_hosts: {sshd.known_hosts}
    ssh_config: {sshd.config_file}
    mysql_host: 127.0.0.1
    mysql_port: {mysql_port}
    mysql_user: root
  hosts:
{hosts}
""")


def cpu_of(pid: int, children: bool) -> float:
    """CPU seconds of a process (``children``: of its reaped descendants) from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12]) if not children else int(fields[13]) + int(fields[14])  # utime stime / cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def settle(pid: int, limit: float = 10.0) -> None:
    """Until sshd has reaped every per-connection child (their CPU is counted then), or ``limit`` s."""
    end = time.monotonic() + limit
    time.sleep(0.2)
    while time.monotonic() < end and Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        time.sleep(0.1)


def play(tree: Path, rb: Path, inv: Path, n: int, home: Path) -> tuple[float, float, float] | str:
    """(wall s, CPU s, peak RSS MB) of one whole `runbook play` process, or why it failed."""
    env = engine_env(tree, NO_COLOR="1", RUNBOOK_HOME=str(home), RUNBOOK_LOCK_DIR=str(home / "locks"))
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "play", str(rb), "-i", str(inv), "--forks", str(n), "--yes"],
                            cwd=tree, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        text = out.decode(errors="replace")
        bad = [ln.strip() for ln in text.splitlines() if ln.lstrip().startswith(("failed ", "unreachable "))]
        return f"FAILED ({len(bad)} host-steps): {bad[0][:160] if bad else text[-300:]}"
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hosts", default="1,100,500", help="host counts, comma separated (1 is the reference)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--baseline-tree", help="another checkout whose engine runs in the same rounds (before/after)")
    args = ap.parse_args()
    counts = sorted({int(x) for x in args.hosts.split(",")} | {1})
    trees = [("this tree", ROOT)] + ([("baseline", Path(args.baseline_tree).resolve())] if args.baseline_tree else [])
    with tempfile.TemporaryDirectory(prefix="rb-scale-") as tmp:
        work = Path(tmp)
        # Hundreds of simultaneous handshakes: sshd's default MaxStartups (10:30:100) drops them.
        sshd = start_sshd(work / "sshd", extra=("MaxStartups 2000", "LoginGraceTime 120"))
        db = MariadbInstance(work / "db", extra=["--max-connections=3000", "--innodb-flush-log-at-trx-commit=1",
                                                 "--sync-binlog=1"])
        try:
            db.start()
            db.sql("CREATE DATABASE bench")
            db.sql("CREATE TABLE bench.hits (id INT AUTO_INCREMENT PRIMARY KEY, host VARCHAR(20), step INT)")
            rb = work / "rb.yml"
            write_runbook(rb)
            invs = {}
            for n in counts:
                invs[n] = work / f"inv{n}.yml"
                write_inventory(invs[n], n, sshd, db.port)
            results: dict[tuple[str, int], list[tuple[float, float, float, float, float]]] = {}  # + hosts', MariaDB CPU
            failures: dict[tuple[str, int], str] = {}
            loads = []
            print(f"scale: {SHELL_STEPS} shell + {SQL_STEPS} SQL steps per host, --forks = hosts, one sshd and one MariaDB "
                  f"on loopback; {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}", flush=True)
            for rnd in range(1, args.rounds + 1):
                for n in counts:
                    for label, tree in trees:
                        remote0 = cpu_of(sshd.proc.pid, children=True), cpu_of(db.pids()[0], children=False)
                        res = play(tree, rb, invs[n], n, work / "home")
                        settle(sshd.proc.pid)  # sshd reaps the sessions (and their CPU) as the connections close
                        remote = (cpu_of(sshd.proc.pid, children=True) - remote0[0], cpu_of(db.pids()[0], children=False) - remote0[1])
                        loads.append(os.getloadavg()[0])
                        if isinstance(res, str):
                            failures[(label, n)] = res
                            print(f"  round {rnd} {label:<9} {n:4d} hosts: {res}", flush=True)
                            continue
                        results.setdefault((label, n), []).append((*res, *remote))
                        print(f"  round {rnd} {label:<9} {n:4d} hosts: {res[0]:7.2f} s wall, {res[1]:6.2f} s CPU, "
                              f"peak RSS {res[2]:6.0f} MB; the hosts' side: sshd + runners + commands {remote[0]:5.2f} s CPU, "
                              f"MariaDB {remote[1]:5.2f} s CPU (load {loads[-1]:.2f})", flush=True)
        finally:
            db.stop()
            sshd.stop()
    steps = SHELL_STEPS + SQL_STEPS
    print(f"\nmedians of {args.rounds} rounds (load average over the runs: {statistics.median(loads):.2f})")
    cores = os.cpu_count() or 1
    print(f"{'engine':<10} {'hosts':>5} {'wall s':>8} {'x 1 host':>9} {'CPU s':>7} {'CPU ms/step/host':>17} {'peak RSS MB':>12}"
          f" {'hosts CPU s':>12} {'MariaDB s':>10} {'floor s':>8}")
    for label, _ in trees:
        one = statistics.median(r[0] for r in results[(label, 1)])
        for n in counts:
            runs = results.get((label, n))
            if not runs:
                print(f"{label:<10} {n:5d} {failures.get((label, n), 'no run')}")
                continue
            wall = statistics.median(r[0] for r in runs)
            cpu = statistics.median(r[1] for r in runs)
            rss = max(r[2] for r in runs)
            hosts_cpu = statistics.median(r[3] for r in runs)
            db_cpu = statistics.median(r[4] for r in runs)
            floor = (cpu + hosts_cpu + db_cpu) / cores  # every CPU second of the run, spread over the cores
            print(f"{label:<10} {n:5d} {wall:8.2f} {wall / one:8.1f}x {cpu:7.2f} {cpu / (steps * n) * 1000:17.2f} {rss:12.0f}"
                  f" {hosts_cpu:12.2f} {db_cpu:10.2f} {floor:8.2f}")
    print("goals: 100 hosts <= 3x the wall of 1 host; <= 0.5 ms of control-node CPU per step and host")
    print(f"floor: (the runbook process's CPU + the hosts' side + MariaDB) / {cores} cores, the least wall time this "
          "machine needs for the run when the hosts share its cores (a real fleet's hosts have their own)")


if __name__ == "__main__":
    main()
