"""How fast is ``binlog_replay`` next to ``mariadb-binlog … | mariadb``?

A private MariaDB (the source, ROW binlog) holds a shop; a ``--master-data=2 --gtid`` dump is
taken, then 20,000 small transactions (an order, 1-4 items, a customer update) and the incident
(a mass DELETE). A second private MariaDB (the copy, binlog on) gets the dump before each run;
then, interleaved in every round, each tool replays the window [dump, incident) into it:

* ``mariadb-binlog --start-position=P --stop-position=Q binlog.N | mariadb shop`` (what people do)
* ``binlog_replay`` (a child process running the action, as ``runbook`` would), reading the
  source's binlog files as an archive on the host, ``batch`` source transactions per commit

Both must leave the copy's tables equal (CHECKSUM TABLE) to the source's before the incident.
Printed: wall seconds, rows/s, the client side's peak RSS, the medians and the ratio to the
pipeline; and how fast the reader alone frames, filters and counts (and decodes) the rows.

    python bench/binlog_replay.py [--rounds 3] [--transactions 20000] [--batch 200]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.mysql.instance import MariadbInstance

TABLES = ("customers", "orders", "order_items")
SCHEMA = """
CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(60), email VARCHAR(80), balance DECIMAL(12,2) NOT NULL,
  updated DATETIME(3) NULL);
CREATE TABLE orders (id INT PRIMARY KEY AUTO_INCREMENT, customer_id INT NOT NULL, total DECIMAL(12,2) NOT NULL,
  status VARCHAR(16) NOT NULL, note VARCHAR(120), KEY (customer_id));
CREATE TABLE order_items (id INT PRIMARY KEY AUTO_INCREMENT, order_id INT NOT NULL, sku VARCHAR(24) NOT NULL,
  qty SMALLINT NOT NULL, price DECIMAL(10,2) NOT NULL, KEY (order_id));
INSERT INTO customers SELECT seq, CONCAT('customer ', seq), CONCAT('c', seq, '@example.com'), 1000, NULL FROM seq_1_to_10000;
CREATE PROCEDURE gen(n INT)
BEGIN
  DECLARE i INT DEFAULT 0;
  DECLARE o INT;
  WHILE i < n DO
    START TRANSACTION;
    INSERT INTO orders (customer_id, total, status, note) VALUES (1 + i * 7 % 10000, 10 + i % 90, 'new', CONCAT('order ', i));
    SET o = LAST_INSERT_ID();
    INSERT INTO order_items (order_id, sku, qty, price) VALUES (o, CONCAT('SKU-', i % 997), 1 + i % 3, 5 + i % 50);
    IF i % 4 >= 1 THEN INSERT INTO order_items (order_id, sku, qty, price) VALUES (o, CONCAT('SKU-', i % 991), 1, 3.5); END IF;
    IF i % 4 >= 2 THEN INSERT INTO order_items (order_id, sku, qty, price) VALUES (o, CONCAT('SKU-', i % 983), 2, 7.25); END IF;
    IF i % 4 >= 3 THEN INSERT INTO order_items (order_id, sku, qty, price) VALUES (o, CONCAT('SKU-', i % 977), 4, 1.99); END IF;
    UPDATE customers SET balance = balance - (10 + i % 90), updated = '2026-01-01 00:00:00' + INTERVAL i SECOND
      WHERE id = 1 + i * 7 % 10000;
    COMMIT;
    SET i = i + 1;
  END WHILE;
END
"""

CHILD = """
import json, sys, time, resource, uuid
sys.path.insert(0, {root!r})
from engine.actions.binlog_replay import BinlogReplay
from engine.run.context import ActionContext, Connections
from engine.model import Host
host = Host(name="bench", vars={{"mysql_host": "127.0.0.1", "mysql_port": {port}, "mysql_user": "root"}}, groups=(), connection="local")
ctx = ActionContext(host=host, conns=Connections(host), vars={{}}, run_id="bench" + uuid.uuid4().hex[:8], check_mode=False,
                    step_key="bench/replay", source=None)
t = time.monotonic()
r = BinlogReplay(json.loads({args!r}), ctx).apply()
print(json.dumps({{"status": r.status.value, "msg": r.msg, "seconds": time.monotonic() - t, "rows": r.data.get("rows"),
                  "transactions": r.data.get("transactions"), "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


class Server:
    def __init__(self, name: str, server_id: int) -> None:
        self.inst = MariadbInstance(Path(tempfile.mkdtemp(prefix=f"rb-bench-{name}-")), server_id=server_id, buffer_pool="256M")
        self.inst.start()
        self.port = self.inst.port

    def client(self, *extra: str) -> list[str]:
        return ["mariadb", "-h127.0.0.1", f"-P{self.port}", "-uroot", *extra]

    def sql(self, text: str, db: str = "") -> str:
        return subprocess.run(self.client("-N", *([db] if db else []), "-e", text), check=True, capture_output=True, text=True).stdout

    def checksums(self) -> list[str]:
        return [self.sql(f"CHECKSUM TABLE shop.{t}").split()[-1] for t in TABLES]

    def stop(self) -> None:
        self.inst.stop()
        shutil.rmtree(self.inst.dir, ignore_errors=True)


def position(srv: Server) -> tuple[str, int]:
    f, p = srv.sql("SHOW MASTER STATUS").split()[:2]
    return f, int(p)


def reader_speed(src: Server, start: tuple[str, int], end: tuple[str, int], decode: bool) -> tuple[float, int]:
    """The reader alone over the window: (seconds, rows) — rows counted, or every value decoded."""
    from engine.mysql.binlog.reader import BinlogReader, EndAt
    from engine.mysql.binlog.sources import ArchiveSource
    from engine.transport.local import LocalShell

    t = time.monotonic()
    reader = BinlogReader(ArchiveSource(LocalShell(), str(src.inst.binlog_dir), local=True), schema="shop", tables=set(TABLES),
                          start=start, end=EndAt(*end), count_rows=not decode, keep=(lambda x: decode))
    rows = 0
    for txn in reader.transactions():
        if decode:
            for rev in txn.rows:
                for b, a in rev.images:
                    if b:
                        rev.values(b)
                    if a:
                        rev.values(a, after=True)
                    rows += 1
        else:
            rows += txn.row_total()
    return time.monotonic() - t, rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--transactions", type=int, default=20000)
    ap.add_argument("--batch", type=int, default=200)
    opts = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rb-bench-binlog-"))
    src, dst = Server("src", 21), Server("copy", 22)
    try:
        src.sql("CREATE DATABASE shop")
        subprocess.run(src.client("shop"), input=SCHEMA.replace("END\n", "END;;\n").replace("CREATE PROCEDURE", "DELIMITER ;;\nCREATE PROCEDURE")
                       + "DELIMITER ;\n", text=True, check=True, capture_output=True)
        src.sql("FLUSH BINARY LOGS")
        dump = work / "shop.sql"
        dump.write_bytes(subprocess.run(["mariadb-dump", "-h127.0.0.1", f"-P{src.port}", "-uroot", "--single-transaction",
                                         "--master-data=2", "--gtid", "--skip-triggers", "--no-create-db", "shop"],
                                        check=True, capture_output=True).stdout)
        start = position(src)
        src.sql("SET GLOBAL innodb_flush_log_at_trx_commit = 2")  # the history is written fast; the replays pay full durability
        t = time.monotonic()
        src.sql(f"CALL gen({opts.transactions})", "shop")
        gen_s = time.monotonic() - t
        end = position(src)
        want = src.checksums()
        src.sql("DELETE FROM order_items WHERE qty >= 2", "shop")  # the incident: after the window
        rows_window = reader_speed(src, start, end, False)[1]
        size = end[1] - start[1]
        print(f"{opts.transactions:,} transactions, {rows_window:,} row events, {size / 1e6:.1f} MB of binlog "
              f"({start[0]}:{start[1]} .. {end[1]}), written in {gen_s:.1f}s; {os.cpu_count()} cores; "
              f"load average {os.getloadavg()[0]:.1f}")
        for decode in (False, True):
            s, n = reader_speed(src, start, end, decode)
            print(f"reader alone ({'every value decoded' if decode else 'framed, filtered, rows counted'}): {s:.2f}s, "
                  f"{n / s:,.0f} rows/s")
        binlog_file = str(src.inst.binlog_dir / start[0])
        results: dict[str, list[tuple[float, float]]] = {}
        for rnd in range(1, opts.rounds + 1):
            for cfg in ("pipeline", "binlog_replay"):
                dst.sql("DROP DATABASE IF EXISTS shop; CREATE DATABASE shop; DROP DATABASE IF EXISTS _runbook")
                with open(dump, "rb") as f:
                    subprocess.run(dst.client("shop"), stdin=f, check=True, capture_output=True)
                if cfg == "pipeline":
                    t = time.monotonic()
                    cmd = (f"/usr/bin/time -f %M -o {work}/rss.a mariadb-binlog --start-position={start[1]} --stop-position={end[1]} "
                           f"{binlog_file} | /usr/bin/time -f %M -o {work}/rss.b mariadb -h127.0.0.1 -P{dst.port} -uroot shop")
                    res = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True)
                    wall = time.monotonic() - t
                    if res.returncode != 0:
                        raise SystemExit(f"pipeline failed: {res.stderr[-1500:]}")
                    rss = sum(int((work / f"rss.{x}").read_text().split()[-1]) for x in "ab") / 1024
                else:
                    args = {"schema": "shop", "binlogs": str(src.inst.binlog_dir), "from_dump": str(dump),
                            "stop_before": {"file": end[0], "pos": end[1]}, "batch": opts.batch}
                    code = CHILD.format(root=str(ROOT), port=dst.port, args=json.dumps(args))
                    t = time.monotonic()
                    res = subprocess.run(["/usr/bin/time", "-f", "%M", sys.executable, "-c", code], capture_output=True, text=True)
                    wall = time.monotonic() - t
                    out = res.stdout.strip().splitlines()
                    info = json.loads(out[-1]) if out else {}
                    if info.get("status") != "changed":
                        raise SystemExit(f"binlog_replay failed: {info or res.stderr[-2000:]}")
                    rss = int(res.stderr.strip().splitlines()[-1]) / 1024
                got = dst.checksums()
                assert got == want, (cfg, got, want)
                results.setdefault(cfg, []).append((wall, rss))
                print(f"round {rnd}  {cfg:<14} {wall:7.2f} s  {rows_window / wall:>9,.0f} rows/s  "
                      f"{opts.transactions / wall:>8,.0f} txn/s  peak RSS {rss:6.1f} MB  (load {os.getloadavg()[0]:.1f})", flush=True)
        print("\nmedians")
        print(f"{'config':<16} {'wall s':>8} {'rows/s':>10} {'peak RSS MB':>12} {'vs pipeline':>12}")
        ref = statistics.median(w for w, _ in results["pipeline"])
        for name, runs in results.items():
            wall = statistics.median(w for w, _ in runs)
            print(f"{name:<16} {wall:8.2f} {rows_window / wall:>10,.0f} {max(r for _, r in runs):12.1f} {wall / ref:>11.2f}x")
        print(f"(this process: peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB)")
    finally:
        src.stop()
        dst.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
