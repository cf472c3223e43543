"""Reproduce the SIGSEGV of MariaDB 10.11 that took the machine's server (3306) down while the
test suites ran, and show that private servers with a tmpdir of their own no longer cause it.

The crash: ``handle_fatal_signal ← ha_maria::drop_table ← free_tmp_table ←
Create_tmp_table::cleanup_on_failure ← create_tmp_table_for_schema ← … get_all_tables`` (or
``← close_thread_tables``), on whatever information_schema query happened to run. The trigger:
at start-up every mariadbd deletes each ``#sql*`` file of its tmpdir (``mysql_rm_tmp_tables``,
meant for the leftovers of its own crash). A private server started with the default tmpdir
(``/tmp``) deleted the live Aria temporary tables of every other server using ``/tmp``; when an
information_schema temporary table lost its ``.MAI`` between ``maria_create`` and
``maria_open``, the open failed and the cleanup called ``ha_maria::drop_table`` on a handler whose
``file`` is NULL (the ``.MAD`` stays behind, without its ``.MAI``).

Everything here runs on private servers in a scratch directory, never on 3306:

* ``victim``: a private server whose tmpdir is a directory shared with the sweeper, running the
  engine's FK query (KEY_COLUMN_USAGE ⋈ REFERENTIAL_CONSTRAINTS) in a few sessions;
* ``--sweeper server`` (default): a second private server restarted again and again, with the
  victim's tmpdir (``shared``, what every private server did before) or with its own
  (``private``, what ``engine/mysql/instance.py`` does now);
* ``--sweeper inotify``: deterministic — a watcher deletes each ``#sql*.MAI`` the moment it is
  created in the victim's tmpdir, i.e. the start-up sweep at the worst instant (one query).

    python bench/tmpdir_sweep.py [--restarts 10] [--sweeper server|inotify] [--layouts shared,private]
"""

from __future__ import annotations

import argparse
import ctypes
import os
import select
import shutil
import struct
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pymysql

from engine.mysql.instance import MariadbInstance

FK_QUERY = (
    "SELECT k.CONSTRAINT_SCHEMA AS s, k.TABLE_NAME AS t, k.CONSTRAINT_NAME AS name, k.COLUMN_NAME AS col,"
    " k.REFERENCED_TABLE_SCHEMA AS rs, k.REFERENCED_TABLE_NAME AS rt, k.REFERENCED_COLUMN_NAME AS rc,"
    " r.UPDATE_RULE AS upd, r.DELETE_RULE AS del FROM information_schema.KEY_COLUMN_USAGE k"
    " JOIN information_schema.REFERENTIAL_CONSTRAINTS r ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA"
    " AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME AND r.TABLE_NAME = k.TABLE_NAME"
    " WHERE k.REFERENCED_TABLE_NAME IS NOT NULL AND k.TABLE_SCHEMA = 'shop' AND k.TABLE_NAME = 'orders'"
    " ORDER BY k.CONSTRAINT_SCHEMA, k.TABLE_NAME, k.CONSTRAINT_NAME, k.ORDINAL_POSITION")
SESSIONS = 4


class Load:
    """SESSIONS connections running FK_QUERY until stopped or the server is gone."""

    def __init__(self, inst: MariadbInstance):
        self.inst, self.done, self.errors = inst, 0, 0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(SESSIONS)]
        for t in self._threads:
            t.start()

    def _run(self) -> None:
        try:
            conn = self.inst.connect()
        except pymysql.err.MySQLError:
            return
        while not self._stop.is_set():
            try:
                with conn.cursor() as cur:
                    cur.execute(FK_QUERY)
                    cur.fetchall()
                self.done += 1
            except pymysql.err.MySQLError as exc:
                self.errors += 1
                if exc.args and exc.args[0] in (2003, 2006, 2013):
                    return  # the server went away

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(10)


def crashed(inst: MariadbInstance) -> bool:
    return "got signal 11" in inst.log_tail(200_000)


def orphans(tmpdir: Path) -> list[str]:
    """``.MAD`` files of the victim without their ``.MAI``: the sweep's fingerprint."""
    names = set(os.listdir(tmpdir)) if tmpdir.is_dir() else set()
    return sorted(n for n in names if n.endswith(".MAD") and n[:-4] + ".MAI" not in names)


def victim(base: Path, tmpdir: Path) -> MariadbInstance:
    # extra --tmpdir comes after instance.py's own: mariadbd keeps the last one.
    inst = MariadbInstance(base / "victim", binlog=False, buffer_pool="32M", extra=[f"--tmpdir={tmpdir}"])
    inst.start()
    inst.sql("CREATE DATABASE IF NOT EXISTS shop")
    inst.sql("CREATE TABLE IF NOT EXISTS shop.customers (id INT PRIMARY KEY)")
    inst.sql("CREATE TABLE IF NOT EXISTS shop.orders (id INT PRIMARY KEY, customer INT,"
             " FOREIGN KEY (customer) REFERENCES shop.customers (id))")
    return inst


def run_server_sweeper(base: Path, layout: str, restarts: int) -> dict[str, object]:
    shared = base / f"{layout}-tmp"
    shared.mkdir(parents=True, exist_ok=True)
    vic = victim(base / layout, shared)
    extra = [f"--tmpdir={shared}"] if layout == "shared" else []
    other = MariadbInstance(base / layout / "other", binlog=False, buffer_pool="32M", extra=extra)
    other.initialize()
    load = Load(vic)
    done = 0
    try:
        for _ in range(restarts):
            other.start()
            other.stop()
            done += 1
            time.sleep(0.2)
            if not vic.running:
                break
    finally:
        load.stop()
        alive = vic.running
        result = {"layout": layout, "restarts": done, "queries": load.done, "victim": "alive" if alive else "DEAD",
                  "signal 11": crashed(vic), "orphan .MAD": len(orphans(shared))}
        if alive:
            vic.stop()
        other.stop()
    return result


IN_CREATE = 0x100


def run_inotify_sweeper(base: Path) -> dict[str, object]:
    tmpdir = base / "inotify-tmp"
    tmpdir.mkdir(parents=True, exist_ok=True)
    vic = victim(base / "inotify", tmpdir)
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.inotify_init1(0)
    if fd < 0 or libc.inotify_add_watch(fd, str(tmpdir).encode(), IN_CREATE) < 0:
        raise SystemExit(f"inotify: {os.strerror(ctypes.get_errno())}")
    swept: list[str] = []
    stop = threading.Event()

    def sweep() -> None:
        poll = select.poll()
        poll.register(fd, select.POLLIN)
        while not stop.is_set():
            if not poll.poll(100):
                continue
            buf = os.read(fd, 65536)
            off = 0
            while off < len(buf):
                _wd, _mask, _cookie, length = struct.unpack_from("iIII", buf, off)
                name = buf[off + 16:off + 16 + length].rstrip(b"\0").decode()
                off += 16 + length
                if name.startswith("#sql") and name.endswith(".MAI"):
                    try:
                        os.unlink(tmpdir / name)
                        swept.append(name)
                    except OSError:
                        pass

    watcher = threading.Thread(target=sweep, daemon=True)
    watcher.start()
    error, queries = "", 0
    conn = vic.connect()
    try:
        with conn.cursor() as cur:
            while queries < 1000:  # each run of the query makes a dozen Aria temporary tables
                queries += 1
                cur.execute(FK_QUERY)
                cur.fetchall()
    except pymysql.err.MySQLError as exc:
        error = str(exc)
    time.sleep(1)
    stop.set()
    watcher.join(5)
    os.close(fd)
    alive = vic.running
    result = {"layout": "inotify", "restarts": 0, "queries": queries, "victim": "alive" if alive else "DEAD",
              "signal 11": crashed(vic), "orphan .MAD": len(orphans(tmpdir)), "swept": len(swept), "error": error[:80]}
    if alive:
        vic.stop()
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--restarts", type=int, default=10, help="restarts of the other server per layout")
    ap.add_argument("--sweeper", choices=["server", "inotify"], default="server")
    ap.add_argument("--layouts", default="shared,private", help="shared (before the fix), private (instance.py now)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory (error logs)")
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="rb-bench-tmpdir-sweep-"))
    print(f"scratch: {base}")
    try:
        rows = ([run_inotify_sweeper(base)] if args.sweeper == "inotify"
                else [run_server_sweeper(base, layout, args.restarts) for layout in args.layouts.split(",")])
        cols = list(rows[0])
        print("  ".join(f"{c:>12}" for c in cols))
        for r in rows:
            print("  ".join(f"{r.get(c, '')!s:>12}" for c in cols))
    finally:
        if args.keep:
            print(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
