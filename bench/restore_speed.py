"""How fast is ``runbook play`` of a ``restore`` step next to ``myloader --threads 2``?

    python bench/restore_speed.py [--rounds 3] [--scale 30] [--configs restore,myloader,myloader-1file,mysql]
                                  [--binlog on,off] [--server production|lab]
    (a config ``restore:batch_bytes=4194304:parallel=4`` passes those arguments to the step;
    ``restore@/work/main`` runs another checkout's engine, for an A/B in one run)

employees ×30 (3.9 M rows, ≈172 MB of SQL, built by ``bench/employees30.py``; mydumper dumps the
same rows once for myloader) is loaded into an empty schema of a private MariaDB
(``engine/mysql/instance.py``) configured like a production primary, not like a laptop:

* ``log_bin`` with ``binlog_format=ROW``, ``binlog_row_image=FULL`` (what PITR and replicas need);
* ``sync_binlog=1`` and ``innodb_flush_log_at_trx_commit=1``: every commit is durable, as on any
  primary whose replicas and point-in-time recovery must not lose a transaction;
* ``innodb_buffer_pool_size=1G`` (the data fits, as a production working set does) and a
  512 MB redo log (the 96 MB default makes checkpoints, not the load, the bottleneck).

Interleaved in every round, each tool loads into a fresh empty schema, timed as a whole process:

* ``restore``: ``runbook play`` of a one-step runbook (``restore`` with ``parallel: 2``, the file
  on the control machine) — start-up, validation, journal, lock, plan, load, report: all of it
  (its bytecode cached, as in an installed package: see ``python_env``);
* ``myloader --threads 2 --enable-binlog`` (binlog on), ``--threads 2`` (binlog off), from a
  ``mydumper --rows 100000`` dump (chunks of one table load in parallel, as a DBA tunes it);
  ``myloader-1file``: the same from mydumper's default dump (one file, one transaction per table);
* ``mysql < dump`` (optional: the baseline everyone has).

The bench prints wall seconds, rows/s and peak RSS per run, restore's phases (from its
registered result), then the medians with the load average and restore's ratio to myloader.
Goal (issue 19): restore ≤ 0.8x of myloader at ×30, binlog on.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.employees30 import ensure_dump
from bench.pyenv import engine_env
from engine.mysql.instance import MariadbInstance

CACHE = Path("/tmp/runbook-bench")
TABLES = ("employees", "departments", "dept_emp", "dept_manager", "titles", "salaries")
#: the server's settings beside the instance's own (ROW binlog, server id, packet size)
PRODUCTION = ["--sync-binlog=1", "--innodb-flush-log-at-trx-commit=1", "--innodb-log-file-size=512M", "--local-infile=1"]


class Server:
    """The private MariaDB (``engine/mysql/instance.py``): production durability settings, or the
    lab's (``runbook lab``: the instance's defaults, no sync_binlog, 128 MB buffer pool)."""

    def __init__(self, kind: str = "production") -> None:
        d = Path(tempfile.mkdtemp(prefix="rb-bench-srv-"))
        if kind == "production":
            self.inst = MariadbInstance(d, buffer_pool="1G", extra=PRODUCTION)
        else:
            self.inst = MariadbInstance(d, extra=["--local-infile=1"])
        self.inst.start()
        self.port = self.inst.port

    def client(self, *extra: str) -> list[str]:
        return ["mariadb", "-h127.0.0.1", f"-P{self.port}", "-uroot", *extra]

    def sql(self, text: str) -> str:
        return subprocess.run(self.client("-N", "-e", text), check=True, capture_output=True, text=True).stdout

    def settings(self) -> str:
        out = self.sql("SELECT @@log_bin, @@binlog_format, @@sync_binlog, @@innodb_flush_log_at_trx_commit, "
                       "@@innodb_buffer_pool_size DIV 1048576, @@innodb_log_file_size DIV 1048576").split()
        return (f"log_bin={out[0]} binlog_format={out[1]} sync_binlog={out[2]} innodb_flush_log_at_trx_commit={out[3]} "
                f"buffer pool {out[4]} MB, redo log {out[5]} MB")

    def status(self) -> dict[str, float]:
        """What a load costs the server: its CPU seconds, binlog commits and group commits (each
        group commit is one binlog fsync with sync_binlog=1), InnoDB log fsyncs."""
        names = ("Binlog_commits", "Binlog_group_commits", "Innodb_os_log_fsyncs", "Binlog_bytes_written")
        rows = self.sql("SHOW GLOBAL STATUS WHERE Variable_name IN (" + ", ".join(f"'{n}'" for n in names) + ")")
        out: dict[str, float] = {k: float(v) for k, v in (ln.split("\t") for ln in rows.strip().splitlines())}
        pid = self.inst.pids()[0]
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        out["cpu"] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return out

    def stop(self) -> None:
        self.inst.stop()
        shutil.rmtree(self.inst.dir, ignore_errors=True)


def timed(cmd: list[str], stdin_path: str | None = None, env: dict[str, str] | None = None,
          cwd: Path | None = None) -> tuple[float, float, str, float]:
    """(wall seconds, peak RSS MB, output, CPU seconds) of a whole process."""
    t = time.monotonic()
    with open(stdin_path, "rb") if stdin_path else open(os.devnull, "rb") as f:
        proc = subprocess.Popen(cmd, stdin=f, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        assert proc.stdout is not None
        out = proc.stdout.read().decode(errors="replace")
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - t
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{cmd[0]} {cmd[1] if len(cmd) > 1 else ''} failed:\n{out[-3000:]}")
    return wall, usage.ru_maxrss / 1024, out, usage.ru_utime + usage.ru_stime


def python_env(tree: Path, **more: str) -> dict[str, str]:
    """The environment of a ``runbook`` process: ``tree``'s engine, its bytecode cached (bench/pyenv.py)."""
    return engine_env(tree, **more)


def restore_files(work: Path, dump: Path, port: int, binlog: bool, file_on: str, extra: dict[str, str]) -> tuple[Path, Path]:
    rb = work / f"restore-{'on' if binlog else 'off'}.yml"
    more = "".join(f"\n          {k}: {v}" for k, v in extra.items())
    rb.write_text(f"""name: restore bench
stages:
  - name: load
    steps:
      - name: restore
        restore:
          file: {dump}
          file_on: {file_on}
          schema: dst
          schema_mismatch: create_missing
          binlog: {str(binlog).lower()}{more}
        register: r
""")
    inv = work / "inv.yml"
    inv.write_text(f"all:\n  hosts:\n    db1: {{connection: local, mysql_host: 127.0.0.1, mysql_port: {port}, mysql_user: root}}\n")
    return rb, inv


def phases_of(home: Path, out: str) -> dict[str, float] | None:
    """The restore step's phases (check, load, post) from the run's journal."""
    run_id = next((ln.split()[1] for ln in out.splitlines() if ln.startswith("RUN_ID ")), None)
    if run_id is None:
        return None
    for line in (home / run_id / "journal.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec.get("type") == "outcome" and isinstance(rec.get("registered"), dict):
            return rec["registered"].get("phases")
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--scale", type=int, default=30)
    ap.add_argument("--configs", default="restore,myloader,myloader-1file")
    ap.add_argument("--binlog", default="on")
    ap.add_argument("--tree", default=str(ROOT), help="the checkout whose engine runs (default: this one)")
    ap.add_argument("--server", choices=("production", "lab"), default="production")
    ap.add_argument("--mydumper-rows", type=int, default=100000,
                    help="mydumper --rows for 'myloader' (chunks of a table load in parallel); 'myloader-1file' is the "
                         "default one file per table")
    ap.add_argument("--file-on", choices=("control", "host"), default="control",
                    help="restore's file_on (host: read through the host's connection, here a local one)")
    opts = ap.parse_args()
    dump = ensure_dump(CACHE / f"employees{opts.scale}.sql", scale=opts.scale) if opts.scale != 30 else ensure_dump()
    tree = Path(opts.tree).resolve()
    srv = Server(opts.server)
    work = Path(tempfile.mkdtemp(prefix="rb-bench-restore-"))
    try:
        mdumps = {kind: CACHE / (f"mydumper{opts.scale}" + (f"-rows{opts.mydumper_rows}" if extra else ""))
                  for kind, extra in (("myloader", True), ("myloader-1file", False))}
        counted = CACHE / f"employees{opts.scale}.rows"  # written with the mydumper dumps: the source is loaded once
        if not counted.exists() or not all((m / "metadata").exists() for m in mdumps.values()):
            srv.sql("CREATE DATABASE src")
            timed(srv.client("src"), str(dump))
            counted.write_text(str(sum(int(srv.sql(f"SELECT COUNT(*) FROM src.{t}")) for t in TABLES)))
            for kind, mdump in mdumps.items():
                extra = ["--rows", str(opts.mydumper_rows)] if kind == "myloader" else []
                shutil.rmtree(mdump, ignore_errors=True)
                subprocess.run(["mydumper", "-h", "127.0.0.1", "-P", str(srv.port), "-u", "root", "-B", "src", "-o", str(mdump),
                                "--threads", "2", *extra], check=True, capture_output=True)
            srv.sql("DROP DATABASE src")
        rows_total = int(counted.read_text())
        results: dict[str, list[tuple[float, float]]] = {}
        loads = []
        print(f"employees x{opts.scale}: {rows_total:,} rows, {dump.stat().st_size / 1e6:.0f} MB of SQL; {os.cpu_count()} cores; "
              f"server: {srv.settings()}; load average {os.getloadavg()[0]:.1f}", flush=True)
        for rnd in range(1, opts.rounds + 1):
            for binlog in opts.binlog.split(","):
                for cfg in opts.configs.split(","):
                    srv.sql("DROP DATABASE IF EXISTS dst; DROP DATABASE IF EXISTS _runbook; RESET MASTER")
                    name = f"{cfg} binlog {binlog}"
                    note = ""
                    before = srv.status()
                    if cfg == "mysql":
                        srv.sql("CREATE DATABASE dst")
                        init = [] if binlog == "on" else ["--init-command=SET sql_log_bin=0"]
                        wall, rss, _, cpu = timed(srv.client(*init, "dst"), str(dump))
                    elif cfg in mdumps:
                        extra = ["--enable-binlog"] if binlog == "on" else []
                        wall, rss, _, cpu = timed(["myloader", "-h", "127.0.0.1", "-P", str(srv.port), "-u", "root", "-d",
                                                   str(mdumps[cfg]), "-B", "dst", "--threads", "2", *extra])
                    else:
                        # "restore" (parallel 2, the step's defaults), or "restore:key=value:key=value";
                        # "restore@/other/checkout…" runs that tree's engine (an A/B in the same run)
                        head, *kvs = cfg.split(":")
                        run_tree = Path(head.split("@", 1)[1]).resolve() if "@" in head else tree
                        extra = dict(kv.split("=", 1) for kv in kvs)
                        extra.setdefault("parallel", "2")
                        rb, inv = restore_files(work, dump, srv.port, binlog == "on", opts.file_on, extra)
                        home = work / "home"
                        env = python_env(run_tree, NO_COLOR="1", RUNBOOK_HOME=str(home), RUNBOOK_LOCK_DIR=str(work / "locks"))
                        wall, rss, out, cpu = timed([sys.executable, "-m", "engine.cli", "play", str(rb), "-i", str(inv)], env=env,
                                                    cwd=run_tree)
                        note = f"  phases {phases_of(home, out)}"
                    after = srv.status()
                    d = {k: after[k] - before.get(k, 0) for k in after}
                    got = sum(int(srv.sql(f"SELECT COUNT(*) FROM dst.{t}")) for t in TABLES)
                    assert got == rows_total, (name, got, rows_total)
                    results.setdefault(name, []).append((wall, rss, cpu, d["cpu"]))
                    loads.append(os.getloadavg()[0])
                    print(f"round {rnd}  {name:<20} {wall:7.2f} s  {rows_total / wall:>10,.0f} rows/s  peak RSS {rss:6.1f} MB; "
                          f"CPU client {cpu:5.1f} s, server {d['cpu']:5.1f} s; binlog commits {d.get('Binlog_commits', 0):,.0f} "
                          f"in {d.get('Binlog_group_commits', 0):,.0f} groups, redo fsyncs {d.get('Innodb_os_log_fsyncs', 0):,.0f}"
                          f"  (load {loads[-1]:.1f}){note}", flush=True)
        print(f"\nmedians of {opts.rounds} rounds (load average {statistics.median(loads):.1f} on {os.cpu_count()} cores)")
        print(f"{'config':<22} {'wall s':>8} {'rows/s':>10} {'peak RSS MB':>12} {'client CPU s':>13} {'server CPU s':>13} "
              f"{'vs myloader':>12}")
        for name, runs in results.items():
            wall = statistics.median(r[0] for r in runs)
            rss = max(r[1] for r in runs)
            ref = results.get("myloader binlog " + name.rsplit(" ", 1)[-1])
            ratio = f"{wall / statistics.median(r[0] for r in ref):.2f}x" if ref else "-"
            print(f"{name:<22} {wall:8.2f} {rows_total / wall:>10,.0f} {rss:12.1f} {statistics.median(r[2] for r in runs):13.1f} "
                  f"{statistics.median(r[3] for r in runs):13.1f} {ratio:>12}")
        # each round's own ratio (the same minute of machine load on both sides): the figure to
        # read on a shared machine, where the medians' walls come from different minutes
        for name, runs in results.items():
            ref = results.get("myloader binlog " + name.rsplit(" ", 1)[-1])
            if ref and not name.startswith("myloader binlog"):
                print(f"{name}: per round vs myloader " + ", ".join(f"{a[0] / b[0]:.2f}x" for a, b in zip(runs, ref, strict=False)))
        print("goal: restore <= 0.8x of myloader (x30, binlog on)")
    finally:
        srv.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
