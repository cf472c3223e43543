"""How fast is a full ``verify`` (foreign keys + chunk checksums against a copy) next to
pt-table-checksum's SQL typed by hand on one connection?

Builds ``rb_verify_bench``: the employees-10k sample (130,783 rows) scaled x30 by repeating every
row with ``emp_no`` shifted by 1,000,000 per copy (≈3.9M rows), and ``rb_verify_bench_copy``, an
identical copy (``CREATE TABLE … LIKE`` + ``INSERT … SELECT``). Both are cached between runs: they
are rebuilt only when missing or when their row counts are not the expected ones
(``--rebuild`` forces it, ``--drop`` removes them and exits).

Then, interleaved (so a warming cache or a busy neighbour affects both alike), ``--rounds`` times:

* ``verify`` action: ``foreign_keys: true`` (6 constraints, one anti-join each) and
  ``checksums: {against_schema: rb_verify_bench_copy}`` (primary-key chunks of ``--chunk-rows``,
  COUNT + exact SUM of 64-bit SHA1 row hashes on both sides), with ``parallel`` sessions;
* by hand: the same chunk boundaries and anti-joins, but each chunk summed on both sides with
  pt-table-checksum's own form (``COUNT(*)``, ``BIT_XOR(CRC32(CONCAT_WS('#', …)))``), one
  statement after the other on one connection, as a DBA would paste its queries. That form is
  the cheaper one and the one that cancels identical changes to two rows; the ratio is the price
  of a digest that does not.

Rows/s counts every row the queries read: child rows of each FK check, and both sides of each
checksum (``verify`` registers the same figure as ``rows_checked``).

    python bench/verify_speed.py               # full size (x30), 2 rounds
    python bench/verify_speed.py --scale 3     # quick
"""

from __future__ import annotations

import argparse
import gzip
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.actions.verify import Verify
from engine.actions.verify.checks import fk_task
from engine.mysql.checksum import key_chunks
from engine.mysql.sqlutil import qualified, quote_ident
from engine.actions.verify.model import Sessions
from engine.run.context import ActionContext, Connections
from bench.employees30 import DATASET, HOST, PASSWORD, PORT, SHIFTED, USER, client_env

from engine.model import Host
from engine.mysql.introspect import schema_foreign_keys, table_shape
from engine.transport.mysql import MysqlSession

SCHEMA = "rb_verify_bench"
COPY = SCHEMA + "_copy"
TABLES = ["departments", "employees", "dept_emp", "dept_manager", "titles", "salaries"]


def counts(sql: Any, schema: str) -> dict[str, int] | None:
    if not sql.query("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", [schema]).rows:
        return None
    have = {str(r["t"]) for r in sql.query("SELECT TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s", [schema]).rows}
    if not set(TABLES) <= have:
        return None
    return {t: int(sql.query(f"SELECT COUNT(*) AS n FROM {schema}.{t}").rows[0]["n"]) for t in TABLES}


def scaled_right(sql: Any, have: dict[str, int], scale: int) -> bool:
    """Copy k holds emp_no + k * 1,000,000, so a table built x``scale`` holds ``scale`` times its
    rows below 1,000,000."""
    for t in SHIFTED:
        base = int(sql.query(f"SELECT COUNT(*) AS n FROM {SCHEMA}.{t} WHERE emp_no < 1000000").rows[0]["n"])
        if have[t] != base * scale:
            return False
    return True


def load_base(sql: Any) -> dict[str, int]:
    text = gzip.decompress(DATASET.read_bytes()).decode()
    # The script creates `employees`; load it under our own name so nothing else is touched.
    text = re.sub(r"\b(DATABASE (?:IF (?:NOT )?EXISTS )?|USE )employees;", rf"\g<1>{SCHEMA};", text)
    sql.query("SET SESSION foreign_key_checks = 0")
    sql.query(f"DROP DATABASE IF EXISTS {SCHEMA}")
    sql.query(f"DROP DATABASE IF EXISTS {COPY}")
    subprocess.run(["mariadb", "-h", HOST, "-P", str(PORT), "-u", USER], input=text.encode(), check=True,
                   stdout=subprocess.DEVNULL, env=client_env())
    got = counts(sql, SCHEMA)
    assert got is not None
    return got


def build(sql: Any, scale: int, rebuild: bool) -> dict[str, int]:
    """The scaled schema and its copy, reused when their counts are right."""
    have, copy = counts(sql, SCHEMA), counts(sql, COPY)
    if not rebuild and have and have == copy and scaled_right(sql, have, scale):
        print(f"reusing {SCHEMA} and {COPY}: {sum(have.values()):,} rows each (--rebuild to rebuild)")
        return have
    t0 = time.perf_counter()
    load_base(sql)
    for k in range(1, scale):
        for table, cols in SHIFTED.items():
            sql.query(f"INSERT INTO {SCHEMA}.{table} (emp_no, {cols}) SELECT emp_no + %s, {cols} FROM {SCHEMA}.{table}"
                      " WHERE emp_no < 1000000", [k * 1000000])
        print(f"  built copy {k + 1}/{scale}", file=sys.stderr, end="\r")
    print(file=sys.stderr)
    sql.query(f"CREATE DATABASE {COPY}")
    for t in TABLES:  # parents first: the copy keeps its foreign keys
        sql.query(f"CREATE TABLE {COPY}.{t} LIKE {SCHEMA}.{t}")
        sql.query(f"INSERT INTO {COPY}.{t} SELECT * FROM {SCHEMA}.{t}")
    got = counts(sql, SCHEMA)
    assert got is not None and got == counts(sql, COPY) and scaled_right(sql, got, scale), got
    print(f"built {SCHEMA} and {COPY}: {sum(got.values()):,} rows each (x{scale}) in {time.perf_counter() - t0:.0f}s")
    return got


def session(database: str | None = SCHEMA) -> MysqlSession:
    from engine.model import MysqlSettings
    from engine.secrets import Secret

    return MysqlSession(MysqlSettings(host=HOST, port=PORT, user=USER, password=Secret(PASSWORD) if PASSWORD else None,
                                      database=database))


def pt_table_checksum(columns: tuple[str, ...]) -> str:
    """pt-table-checksum's chunk sum (its default CRC32 function)."""
    q = [quote_ident(c) for c in columns]
    crc = f"CRC32(CONCAT_WS('#', {', '.join(q)}, CONCAT({', '.join(f'ISNULL({c})' for c in q)})))"
    return f"COUNT(*) AS n, COALESCE(LOWER(CONV(BIT_XOR(CAST({crc} AS UNSIGNED)), 10, 16)), 0) AS x"


def by_hand(chunk_rows: int) -> tuple[float, int]:
    """The FK anti-joins and pt-table-checksum's chunk sums, on one connection: (seconds, rows read)."""
    sql = session()
    try:
        t0 = time.perf_counter()
        rows = 0
        one = Sessions(sql)
        for task in [fk_task(fk, (), 0) for fk in schema_foreign_keys(sql, SCHEMA)]:
            task.run(one, task.checks)
            assert all(c.result == "pass" for c in task.checks), [c.detail for c in task.checks]
            rows += sum(c.rows for c in task.checks)
        for t in TABLES:
            shape = table_shape(sql, SCHEMA, t)
            form = pt_table_checksum(shape.columns)
            for chunk in key_chunks(sql, shape, chunk_rows):
                a, b = (sql.query(f"SELECT {form} FROM {qualified(s, t)} WHERE {chunk.cond}", list(chunk.params)).rows[0]
                        for s in (SCHEMA, COPY))
                assert a == b, (t, chunk)
                rows += int(a["n"]) + int(b["n"])
        return time.perf_counter() - t0, rows
    finally:
        sql.close()


def with_verify(chunk_rows: int, parallel: int) -> tuple[float, int]:
    host = Host(name="bench", vars={"mysql_host": HOST, "mysql_port": PORT, "mysql_user": USER,
                                    **({"mysql_password": PASSWORD} if PASSWORD else {})}, groups=(), connection="local")
    ctx = ActionContext(host=host, conns=Connections(host), vars={}, run_id=f"bench-{int(time.time())}",
                        check_mode=False, step_key="bench/verify", source=None, timeout=600)
    try:
        t0 = time.perf_counter()
        res = Verify({"schema": SCHEMA, "foreign_keys": True, "parallel": parallel,
                      "checksums": {"against_schema": COPY, "chunk_rows": chunk_rows}}, ctx).apply()
        seconds = time.perf_counter() - t0
        assert not res.failed and res.data["summary"]["fail"] == 0, res.msg
        return seconds, int(res.data["rows_checked"])
    finally:
        ctx.conns.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--scale", type=int, default=30, help="copies of employees-10k (default 30 ≈ 3.9M rows)")
    ap.add_argument("--chunk-rows", type=int, default=10000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--rebuild", action="store_true", help="rebuild the cached schemas")
    ap.add_argument("--drop", action="store_true", help="drop the cached schemas and exit")
    a = ap.parse_args()
    sql = session(None)
    if a.drop:
        sql.query("SET SESSION foreign_key_checks = 0")
        sql.query(f"DROP DATABASE IF EXISTS {COPY}")
        sql.query(f"DROP DATABASE IF EXISTS {SCHEMA}")
        return 0
    built = build(sql, a.scale, a.rebuild)
    sql.close()
    print(f"{sum(built.values()):,} rows per schema; chunk_rows {a.chunk_rows}; {os.cpu_count()} CPU(s)")
    runs: dict[str, list[tuple[float, int]]] = {"verify (parallel 2)": [], "verify (parallel 1)": [], "pt-table-checksum SQL": []}
    for r in range(a.rounds):
        runs["verify (parallel 2)"].append(with_verify(a.chunk_rows, 2))
        runs["pt-table-checksum SQL"].append(by_hand(a.chunk_rows))
        runs["verify (parallel 1)"].append(with_verify(a.chunk_rows, 1))
        print(f"  round {r + 1}/{a.rounds}: " + ", ".join(f"{k} {v[-1][0]:.1f}s" for k, v in runs.items()), file=sys.stderr)
    print(f"{'':<26}{'median s':>10}{'rows read':>13}{'rows/s':>12}")
    for name, results in runs.items():
        secs = statistics.median(s for s, _ in results)
        rows = results[0][1]
        print(f"{name:<26}{secs:>10.1f}{rows:>13,}{rows / secs:>12,.0f}")
    hand = statistics.median(s for s, _ in runs["pt-table-checksum SQL"])
    one = statistics.median(s for s, _ in runs["verify (parallel 1)"])
    par = statistics.median(s for s, _ in runs["verify (parallel 2)"])
    print(f"time ratio to pt-table-checksum's SQL on one connection: verify (parallel 1) {one / hand:.2f},"
          f" verify (parallel 2) {par / hand:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
