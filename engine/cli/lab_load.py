"""``runbook lab load shop``: the drill's shop database on the lab's primary, and a backup of it.

Loads ``scripts/lab-shop.sql`` (users, products, orders, order_items, reviews, events, with
foreign keys) into ``db1`` — a fresh copy: an existing ``shop`` is dropped first — waits until
the replicas have it, then writes a backup on the lab host, as a DBA's nightly job would::

    mariadb-dump --single-transaction --master-data=2 --gtid --routines --triggers --databases shop | gzip

to ``<lab>/backups/shop-full.sql.gz`` (its binlog coordinates and GTID position are in its header:
what ``binlog_replay`` starts from). The output is stable, for scripts (``scripts/drill.sh``)::

    shop loaded on db1 (127.0.0.1:PORT): users 2000, products 200, ...
    replicas caught up: db2, db3                 (only with replicas)
    backup: /…/lab/backups/shop-full.sql.gz      (the path alone after "backup: ")
      mariadb-dump --single-transaction --master-data=2 --gtid, gzip: N bytes; gtid 0-1-N
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import time
from pathlib import Path

from engine.cli.lab import PRIMARY, Lab
from engine.cli.lab_sshd import LabError
from engine.cli.lab_topology import session
from engine.errors import RunbookError
from engine.mysql.instance import HOST, MariadbInstance
from engine.mysql.replication import read_state

SHOP_SQL = Path(__file__).resolve().parents[2] / "scripts" / "lab-shop.sql"
TABLES = ("users", "products", "orders", "order_items", "reviews", "events")
DUMP_OPTIONS = ["--single-transaction", "--master-data=2", "--gtid", "--routines", "--triggers"]


def _client(name: str, fallback: str) -> str:
    exe = shutil.which(name) or shutil.which(fallback)
    if exe is None:
        raise LabError(f"{name} is missing", hint="run scripts/setup.sh (installs mariadb-client)")
    return exe


def _wait_replicas(lab: Lab, primary: MariadbInstance, limit: float = 120) -> list[str]:
    """Replicas of db1 that have everything db1 has written (others are named, not waited for)."""
    src = session(primary)
    try:
        target = read_state(src).gtids()
    finally:
        src.close()
    done = []
    end = time.monotonic() + limit
    for name, srv in lab.servers().items():
        if name == PRIMARY or not srv.running:
            continue
        s = session(srv)
        try:
            while True:
                st = read_state(s)
                if st.link is None or st.link.source_port != primary.port:
                    break  # not a replica of db1 (after a failover drill): not ours to wait for
                if st.gtids().contains(target):
                    done.append(name)
                    break
                if time.monotonic() > end:
                    raise LabError(f"{name} has not applied the shop within {limit:.0f}s: "
                                   f"{st.link.last_error or 'still behind'}", hint="runbook lab status")
                time.sleep(0.1)
        finally:
            s.close()
    return done


def load_shop(lab: Lab) -> str:
    primary = lab.servers().get(PRIMARY)
    if primary is None or not primary.running:
        raise LabError("the lab's db1 is not running", hint="runbook lab up")
    if not SHOP_SQL.is_file():
        raise LabError(f"{SHOP_SQL} is missing", hint="run from a checkout of runbook (scripts/ holds the shop)")
    conn = ["-h", HOST, "-P", str(primary.port), "-uroot"]
    s = session(primary)
    try:
        s.query("DROP DATABASE IF EXISTS shop")
    except RunbookError as exc:
        raise LabError(f"db1 does not answer: {exc.message}", hint="runbook lab status") from None
    finally:
        s.close()
    with open(SHOP_SQL, "rb") as f:
        res = subprocess.run([_client("mariadb", "mysql"), *conn], stdin=f, capture_output=True, timeout=600)
    if res.returncode != 0:
        raise LabError(f"loading {SHOP_SQL} failed: {res.stderr.decode(errors='replace').strip()[-800:]}")
    s = session(primary)
    try:
        counts = {t: int(s.query(f"SELECT COUNT(*) AS n FROM shop.`{t}`").rows[0]["n"]) for t in TABLES}
    finally:
        s.close()
    caught_up = _wait_replicas(lab, primary)

    backup = lab.dir / "backups" / "shop-full.sql.gz"
    backup.parent.mkdir(parents=True, exist_ok=True)
    tmp = backup.with_name(backup.name + ".tmp")
    dump = subprocess.Popen([_client("mariadb-dump", "mysqldump"), *conn, *DUMP_OPTIONS, "--databases", "shop"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert dump.stdout is not None
    with gzip.open(tmp, "wb") as out:
        shutil.copyfileobj(dump.stdout, out, 1 << 20)
    err = dump.stderr.read().decode(errors="replace") if dump.stderr else ""
    if dump.wait() != 0:
        tmp.unlink(missing_ok=True)
        raise LabError(f"mariadb-dump failed: {err.strip()[-800:]}")
    os.replace(tmp, backup)
    s = session(primary)
    try:
        gtid = read_state(s).executed
    finally:
        s.close()
    lines = [f"shop loaded on {PRIMARY} ({HOST}:{primary.port}): " + ", ".join(f"{t} {n}" for t, n in counts.items())]
    if caught_up:
        lines.append(f"replicas caught up: {', '.join(caught_up)}")
    lines.append(f"backup: {backup}")
    lines.append(f"  mariadb-dump {' '.join(DUMP_OPTIONS[:3])}, gzip: {backup.stat().st_size} bytes; gtid {gtid}")
    return "\n".join(lines)
