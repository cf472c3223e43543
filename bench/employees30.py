"""employees x30: a ~172 MB mariadb-dump of 3.9 M rows, built once and cached for benchmarks.

Loads ``../shared/datasets/employees-10k.sql.gz`` (130,783 rows) into a scratch schema,
repeats every row 30 times with ``emp_no`` shifted by 1,000,000 per copy (``INSERT … SELECT``
on the server), dumps it with plain ``mariadb-dump`` (extended inserts, the default options)
and drops the scratch schema. The dump is cached (default ``/tmp/runbook-bench/employees30.sql``;
a path ending in ``.gz`` gets the gzip of it); concurrent callers wait on a lock file.

    from bench.employees30 import ensure_dump
    plain = ensure_dump()                          # Path of the .sql
    gz = ensure_dump(DEFAULT_PATH.with_suffix(".sql.gz"))

    python bench/employees30.py [PATH] [--scale N]
"""

from __future__ import annotations

import argparse
import fcntl
import gzip
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pymysql

ROOT = Path(__file__).resolve().parents[1]
DATASET = ROOT.parent / "shared" / "datasets" / "employees-10k.sql.gz"
if not DATASET.exists():  # a worktree under /work/wt/<name>: the datasets live in /work/shared
    DATASET = Path("/work/shared/datasets/employees-10k.sql.gz")
CACHE = Path("/tmp/runbook-bench")
DEFAULT_PATH = CACHE / "employees30.sql"
SCRATCH = "rb_emp30_build"
SHIFTED = {  # table -> its columns after emp_no: the rows copied with a shifted emp_no
    "employees": "birth_date, first_name, last_name, gender, hire_date",
    "dept_emp": "dept_no, from_date, to_date",
    "dept_manager": "dept_no, from_date, to_date",
    "titles": "title, from_date, to_date",
    "salaries": "salary, from_date, to_date",
}
HOST = os.environ.get("RUNBOOK_TEST_MYSQL_HOST", "127.0.0.1")
PORT = int(os.environ.get("RUNBOOK_TEST_MYSQL_PORT", "3306"))
USER = os.environ.get("RUNBOOK_TEST_MYSQL_USER", "root")
PASSWORD = os.environ.get("RUNBOOK_TEST_MYSQL_PASSWORD", "")


def client_env() -> dict[str, str]:
    env = dict(os.environ)
    if PASSWORD:
        env["MYSQL_PWD"] = PASSWORD  # a benchmark on a lab server; never do this in the engine
    return env


def _client_args() -> list[str]:
    return ["-h", HOST, "-P", str(PORT), "-u", USER]


def build_schema(schema: str = SCRATCH, scale: int = 30) -> None:
    """Load employees-10k into ``schema`` and scale it ``scale`` times."""
    text = gzip.decompress(DATASET.read_bytes()).decode()
    text = re.sub(r"\b(DATABASE (?:IF (?:NOT )?EXISTS )?|USE )employees;", rf"\g<1>{schema};", text)
    subprocess.run(["mariadb", *_client_args()], input=text.encode(), check=True, stdout=subprocess.DEVNULL, env=client_env())
    conn = pymysql.connect(host=HOST, port=PORT, user=USER, password=PASSWORD, autocommit=True)
    try:
        with conn.cursor() as cur:
            for k in range(1, scale):
                for table, cols in SHIFTED.items():
                    cur.execute(f"INSERT INTO `{schema}`.`{table}` (emp_no, {cols}) SELECT emp_no + %s, {cols}"
                                f" FROM `{schema}`.`{table}` WHERE emp_no < 1000000", [k * 1000000])
                print(f"  employees x{scale}: copy {k + 1}/{scale}", file=sys.stderr, end="\r")
        print(file=sys.stderr)
    finally:
        conn.close()


def ensure_dump(path: str | os.PathLike[str] = DEFAULT_PATH, *, scale: int = 30, options: Sequence[str] = ()) -> Path:
    """The cached dump at ``path`` (built when missing); ``.gz`` paths hold the gzip of the plain dump.
    ``options`` are extra ``mariadb-dump`` options (give each variant its own path)."""
    target = Path(path)
    if target.exists() and target.stat().st_size > 0:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(str(target) + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.exists() and target.stat().st_size > 0:
            return target
        tmp = target.with_name(target.name + ".part")
        if target.name.endswith(".gz"):
            plain = ensure_dump(target.with_name(target.name[:-3]), scale=scale, options=options)
            with open(plain, "rb") as src, gzip.open(tmp, "wb", compresslevel=6) as dst:
                shutil.copyfileobj(src, dst, 8 * 1024 * 1024)
        else:
            schema = f"{SCRATCH}_{os.getpid()}"
            try:
                build_schema(schema, scale)
                with open(tmp, "wb") as out:
                    subprocess.run(["mariadb-dump", *_client_args(), "--single-transaction", *options, schema], stdout=out,
                                   check=True, env=client_env())
            finally:
                subprocess.run(["mariadb", *_client_args(), "-e", f"DROP DATABASE IF EXISTS `{schema}`"], check=False, env=client_env())
        os.replace(tmp, target)
    return target


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("path", nargs="?", default=str(DEFAULT_PATH))
    ap.add_argument("--scale", type=int, default=30)
    args = ap.parse_args()
    p = ensure_dump(args.path, scale=args.scale)
    print(f"{p}: {p.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
