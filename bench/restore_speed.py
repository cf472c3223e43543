"""How fast is ``restore`` next to ``mysql < dump`` and ``myloader --threads 2``?

employees ×30 (3.9 M rows, ≈172 MB of SQL, built by ``bench/employees30.py``) is loaded into a
private MariaDB started for the bench with ``--log-bin`` (so "binlog on" really writes one;
"binlog off" is the session's ``sql_log_bin=0`` — myloader's default, ``restore``'s
``binlog: false``, ``mysql --init-command``). mydumper dumps the same data once (cached). Then,
interleaved in every round, each tool loads into an empty schema:

* ``mysql < dump``                         (the baseline everyone has)
* ``myloader --threads 2`` (+ ``--enable-binlog`` for binlog on)
* ``restore`` with ``parallel: 2`` (a child process running the action, as ``runbook`` would)

and the bench prints wall seconds, rows/s, and the client's peak RSS, then the medians and the
ratio of ``restore`` to ``myloader`` with the same binlog setting.

    python bench/restore_speed.py [--rounds 3] [--scale 30] [--configs mysql,myloader,restore]
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
from engine.mysql.instance import MariadbInstance

CACHE = Path("/tmp/runbook-bench")
CHILD = """
import json, sys, time, resource, uuid
sys.path.insert(0, {root!r})
from engine.actions.restore import Restore
from engine.run.context import ActionContext, Connections
from engine.model import Host
host = Host(name="bench", vars={{"mysql_host": "127.0.0.1", "mysql_port": {port}, "mysql_user": "root"}}, groups=(), connection="local")
ctx = ActionContext(host=host, conns=Connections(host), vars={{}}, run_id="bench" + uuid.uuid4().hex[:8], check_mode=False,
                    step_key="bench/restore", source=None)
t = time.monotonic()
r = Restore({{"file": {path!r}, "schema": {schema!r}, "schema_mismatch": "create_missing", "file_on": "control",
              "parallel": 2, "binlog": {binlog}}}, ctx).apply()
print(json.dumps({{"status": r.status.value, "msg": r.msg, "seconds": time.monotonic() - t, "phases": r.data.get("phases"),
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


class Server:
    """A private mariadbd with a binary log, like the lab's (``engine/mysql/instance.py``)."""

    def __init__(self) -> None:
        self.inst = MariadbInstance(Path(tempfile.mkdtemp(prefix="rb-bench-srv-")), buffer_pool="256M",
                                    extra=["--local-infile=1"])
        self.inst.start()
        self.port = self.inst.port

    def client(self, *extra: str) -> list[str]:
        return ["mariadb", "-h127.0.0.1", f"-P{self.port}", "-uroot", *extra]

    def sql(self, text: str) -> str:
        return subprocess.run(self.client("-N", "-e", text), check=True, capture_output=True, text=True).stdout

    def stop(self) -> None:
        self.inst.stop()
        shutil.rmtree(self.inst.dir, ignore_errors=True)


def timed(cmd: list[str], stdin_path: str | None = None) -> tuple[float, float]:
    """(wall seconds, child's peak RSS MB) of a command."""
    t = time.monotonic()
    with open(stdin_path, "rb") if stdin_path else open(os.devnull, "rb") as f:
        res = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], stdin=f, capture_output=True, text=True)
    wall = time.monotonic() - t
    if res.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed: {res.stderr[-1500:]}")
    rss = int(res.stderr.strip().splitlines()[-1]) / 1024
    return wall, rss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--scale", type=int, default=30)
    ap.add_argument("--configs", default="mysql,myloader,restore")
    ap.add_argument("--binlog", default="on,off")
    opts = ap.parse_args()
    dump = ensure_dump(CACHE / f"employees{opts.scale}.sql", scale=opts.scale) if opts.scale != 30 else ensure_dump()
    rows_total = None
    srv = Server()
    try:
        srv.sql("CREATE DATABASE src")
        timed(srv.client("src"), str(dump))
        rows_total = sum(int(srv.sql(f"SELECT COUNT(*) FROM src.{t}")) for t in
                         ("employees", "departments", "dept_emp", "dept_manager", "titles", "salaries"))
        mdump = CACHE / f"mydumper{opts.scale}"
        shutil.rmtree(mdump, ignore_errors=True)
        subprocess.run(["mydumper", "-h", "127.0.0.1", "-P", str(srv.port), "-u", "root", "-B", "src", "-o", str(mdump),
                        "--threads", "2"], check=True, capture_output=True)
        srv.sql("DROP DATABASE src")
        results: dict[str, list[tuple[float, float]]] = {}
        print(f"employees x{opts.scale}: {rows_total:,} rows, {dump.stat().st_size / 1e6:.0f} MB of SQL; "
              f"{os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}")
        for rnd in range(1, opts.rounds + 1):
            for binlog in opts.binlog.split(","):
                for cfg in opts.configs.split(","):
                    srv.sql("DROP DATABASE IF EXISTS dst; CREATE DATABASE dst; RESET MASTER")
                    name = f"{cfg} binlog {binlog}"
                    if cfg == "mysql":
                        init = [] if binlog == "on" else ["--init-command=SET sql_log_bin=0"]
                        wall, rss = timed(srv.client(*init, "dst"), str(dump))
                    elif cfg == "myloader":
                        extra = ["--enable-binlog"] if binlog == "on" else []
                        wall, rss = timed(["myloader", "-h", "127.0.0.1", "-P", str(srv.port), "-u", "root", "-d", str(mdump),
                                           "-B", "dst", "--threads", "2", *extra])
                    else:
                        code = CHILD.format(root=str(ROOT), port=srv.port, path=str(dump), schema="dst",
                                            binlog="True" if binlog == "on" else "False")
                        t = time.monotonic()
                        res = subprocess.run(["/usr/bin/time", "-f", "%M", sys.executable, "-c", code], capture_output=True, text=True)
                        wall = time.monotonic() - t
                        out = res.stdout.strip().splitlines()
                        info = json.loads(out[-1]) if out else {}
                        if info.get("status") != "changed":
                            raise SystemExit(f"restore failed: {info or res.stderr[-2000:]}")
                        rss = int(res.stderr.strip().splitlines()[-1]) / 1024
                        name_phases = info.get("phases")
                        print(f"      (restore phases: {name_phases})")
                    got = sum(int(srv.sql(f"SELECT COUNT(*) FROM dst.{t}")) for t in
                              ("employees", "departments", "dept_emp", "dept_manager", "titles", "salaries"))
                    assert got == rows_total, (name, got, rows_total)
                    results.setdefault(name, []).append((wall, rss))
                    print(f"round {rnd}  {name:<22} {wall:7.2f} s  {rows_total / wall:>10,.0f} rows/s  peak RSS {rss:6.1f} MB"
                          f"  (load {os.getloadavg()[0]:.1f})", flush=True)
        print("\nmedians")
        print(f"{'config':<24} {'wall s':>8} {'rows/s':>10} {'peak RSS MB':>12} {'vs myloader':>12}")
        for name, runs in results.items():
            wall = statistics.median(w for w, _ in runs)
            rss = max(r for _, r in runs)
            ref = results.get("myloader binlog " + name.rsplit(" ", 1)[-1])
            ratio = f"{wall / statistics.median(w for w, _ in ref):.2f}x" if ref else "-"
            print(f"{name:<24} {wall:8.2f} {rows_total / wall:>10,.0f} {rss:12.1f} {ratio:>12}")
    finally:
        srv.stop()


if __name__ == "__main__":
    main()
