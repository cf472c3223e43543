"""How fast is a ``snapshot`` (server method) next to ``mariadb-dump`` of the same tables?

Builds ``rb_bench``: the employees-10k sample (130,783 rows) scaled x30 by repeating every
row with ``emp_no`` shifted by 1,000,000 per copy (≈3.9M rows, the size of the classic full
data set), generated on the server with ``INSERT … SELECT`` for speed. Then, in the same run:

* ``snapshot`` action (server method): ``CREATE TABLE … LIKE`` + PK-chunked ``INSERT … SELECT``
  + a pt-table-checksum sum of each chunk, into ``_rb_snap_<run>``;
* ``mariadb-dump --single-transaction`` of the same tables to a temporary file;
* the snapshot's undo (one atomic ``RENAME TABLE`` + FK repair + full checksum verification);
* the InnoDB factor at this size: data+index after ``ANALYZE TABLE`` / bytes of the dump.

Both schemas are dropped at the end (``--keep`` keeps them).

    python bench/snapshot_speed.py              # full size (x30)
    python bench/snapshot_speed.py --scale 3    # quick
"""

from __future__ import annotations

import argparse
import gzip
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.actions.snapshot import Snapshot
from engine.run.context import ActionContext, Connections
from bench.employees30 import DATASET, HOST, PASSWORD, PORT, SHIFTED, USER, client_env

from engine.model import Host
from engine.mysql.snapshots import snapshot_schema

SCHEMA = "rb_bench"
TABLES = ["departments", "employees", "dept_emp", "dept_manager", "titles", "salaries"]


def client(*args: str, stdin: Any = None, stdout: Any = subprocess.DEVNULL) -> None:
    subprocess.run(["mariadb", "-h", HOST, "-P", str(PORT), "-u", USER, *args], stdin=stdin, stdout=stdout,
                   check=True, env=client_env())


def build(ctx: ActionContext, scale: int) -> int:
    sql = ctx.sql()
    text = gzip.decompress(DATASET.read_bytes()).decode()
    # The script creates `employees`; load it under our own name so nothing else is touched.
    text = re.sub(r"\b(DATABASE (?:IF (?:NOT )?EXISTS )?|USE )employees;", rf"\g<1>{SCHEMA};", text)
    client("-e", f"DROP DATABASE IF EXISTS {SCHEMA}")
    subprocess.run(["mariadb", "-h", HOST, "-P", str(PORT), "-u", USER], input=text.encode(), check=True,
                   stdout=subprocess.DEVNULL, env=client_env())
    for k in range(1, scale):
        for table, cols in SHIFTED.items():
            sql.query(f"INSERT INTO {SCHEMA}.{table} (emp_no, {cols}) SELECT emp_no + %s, {cols} FROM {SCHEMA}.{table}"
                      " WHERE emp_no < 1000000", [k * 1000000])
        print(f"  built copy {k + 1}/{scale}", file=sys.stderr, end="\r")
    print(file=sys.stderr)
    return sum(int(sql.query(f"SELECT COUNT(*) AS n FROM {SCHEMA}.{t}").rows[0]["n"]) for t in TABLES)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=int, default=30, help="copies of employees-10k (default 30 ≈ 3.9M rows)")
    ap.add_argument("--chunk-rows", type=int, default=50000)
    ap.add_argument("--keep", action="store_true", help="keep rb_bench and the snapshot schema")
    a = ap.parse_args()

    host = Host(name="bench", vars={"mysql_host": HOST, "mysql_port": PORT, "mysql_user": USER,
                                    **({"mysql_password": PASSWORD} if PASSWORD else {})}, groups=(), connection="local")
    last = [0.0]

    def progress(done: int, total: int | None, label: str) -> None:
        if time.monotonic() - last[0] > 2:
            last[0] = time.monotonic()
            print(f"  {label}: {done}/{total}", file=sys.stderr)

    ctx = ActionContext(host=host, conns=Connections(host), vars={}, run_id=f"bench-{int(time.time())}",
                        check_mode=False, step_key="bench/snapshot", source=None, progress=progress)
    dump = Path(tempfile.mkdtemp(prefix="rb_bench_")) / "dump.sql"
    try:
        t0 = time.perf_counter()
        rows = build(ctx, a.scale)
        print(f"built {SCHEMA}: {rows:,} rows in {time.perf_counter() - t0:.1f}s (x{a.scale})")

        t0 = time.perf_counter()
        with open(dump, "wb") as out:
            subprocess.run(["mariadb-dump", "-h", HOST, "-P", str(PORT), "-u", USER, "--single-transaction",
                            "--skip-triggers", SCHEMA, *TABLES], stdout=out, check=True, env=client_env())
        t_dump = time.perf_counter() - t0

        args = {"schema": SCHEMA, "tables": TABLES, "chunk_rows": a.chunk_rows}
        t0 = time.perf_counter()
        res = Snapshot(args, ctx).apply()
        t_snap = time.perf_counter() - t0
        assert not res.failed, res.msg
        copied = sum(t["rows"] for t in res.data["tables"].values())

        t0 = time.perf_counter()
        undone = Snapshot(args, ctx).undo(res.undo)
        t_undo = time.perf_counter() - t0
        assert not undone.failed, undone.msg

        sql = ctx.sql()
        for t in TABLES:
            sql.query(f"ANALYZE TABLE {SCHEMA}.{t}")
        on_disk = int(sql.query("SELECT SUM(DATA_LENGTH + INDEX_LENGTH) AS b FROM information_schema.TABLES"
                                " WHERE TABLE_SCHEMA = %s AND TABLE_NAME IN (" + ", ".join(["%s"] * len(TABLES)) + ")",
                                [SCHEMA, *TABLES]).rows[0]["b"])
        size = dump.stat().st_size

        # The other half of a rollback with a dump: loading it back (into a scratch schema).
        ctx.sql().query(f"DROP DATABASE IF EXISTS {SCHEMA}_reload")
        ctx.sql().query(f"CREATE DATABASE {SCHEMA}_reload")
        t0 = time.perf_counter()
        with open(dump, "rb") as inp:
            client(f"{SCHEMA}_reload", stdin=inp)
        t_reload = time.perf_counter() - t0

        print(f"{'':<34}{'seconds':>9}{'rows/s':>12}")
        print(f"{'snapshot (server, copy+checksum)':<34}{t_snap:>9.1f}{copied / t_snap:>12,.0f}")
        print(f"{'mariadb-dump to a file':<34}{t_dump:>9.1f}{rows / t_dump:>12,.0f}")
        print(f"{'snapshot undo (rename+verify)':<34}{t_undo:>9.1f}{copied / t_undo:>12,.0f}")
        print(f"{'mariadb-dump reload (mariadb <)':<34}{t_reload:>9.1f}{rows / t_reload:>12,.0f}")
        print(f"snapshot / mariadb-dump time ratio: {t_snap / t_dump:.2f}")
        print(f"rollback cycle (take + put back): snapshot {t_snap + t_undo:.1f}s vs dump + reload {t_dump + t_reload:.1f}s"
              f" ({(t_dump + t_reload) / (t_snap + t_undo):.1f}x)")
        print(f"dump {size / 1024**2:.1f} MiB of SQL; InnoDB data+index after ANALYZE {on_disk / 1024**2:.1f} MiB:"
              f" factor {on_disk / size:.2f}")
        return 0
    finally:
        if not a.keep:
            ctx.sql().query("SET SESSION foreign_key_checks = 0")
            ctx.sql().query(f"DROP DATABASE IF EXISTS {SCHEMA}")
            ctx.sql().query(f"DROP DATABASE IF EXISTS {SCHEMA}_reload")
            ctx.sql().query(f"DROP DATABASE IF EXISTS `{snapshot_schema(ctx.run_id)}`")
        ctx.conns.close()
        dump.unlink(missing_ok=True)
        dump.parent.rmdir()


if __name__ == "__main__":
    sys.exit(main())
