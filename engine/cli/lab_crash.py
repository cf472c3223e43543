"""``runbook lab crash``: kill the lab's MariaDB the hard way, so a drill can practise crash recovery.

What a real crash leaves behind, on purpose: committed rows whose pages were not flushed yet
(redo to apply), a write load of single-row commits in flight (every acknowledged commit must
survive), and a large transaction that was never committed (undo to roll back, in the
background after start-up). Then ``kill -9``.

```
runbook lab crash
runbook play runbooks/crash-recovery.yml -i .runbook/lab/inventory.yml -e schema=crashlab --yes
```
Afterwards ``crashlab.orders`` must hold exactly ``crashlab.expected``'s count of rows, none
with a negative amount (those were the uncommitted update), and ``crashlab.load`` at least the
acknowledged commits printed here.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time

from engine.errors import RunbookError
from engine.cli.lab import HOST, Lab, LabError, mysql_pid
from engine.model import MysqlSettings
from engine.transport.mysql import MysqlSession

SCHEMA = "crashlab"


def _session(port: int) -> MysqlSession:
    return MysqlSession(MysqlSettings(host=HOST, port=port, user="root"))


class _Load(threading.Thread):
    """Single-row autocommit inserts until the server dies; counts the acknowledged ones."""

    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.port = port
        self.acknowledged = 0
        self.started_writing = threading.Event()

    def run(self) -> None:
        session = _session(self.port)
        try:
            while True:
                session.query(f"INSERT INTO {SCHEMA}.load (at) VALUES (NOW(6))")
                self.acknowledged += 1
                self.started_writing.set()
        except RunbookError:
            pass  # the server was killed: what was acknowledged is what must survive
        finally:
            self.started_writing.set()
            session.close()


def crash(lab: Lab, *, committed: int = 20000, uncommitted: int = 200000) -> str:
    """Load, open a transaction, kill -9 under a write load. Returns a summary for the operator."""
    if mysql_pid(lab) is None:
        raise LabError("the lab's MariaDB (db1) is not running", hint="runbook lab up")
    st = lab.state()
    port = int(str(st["mysql_port"]))
    setup = _session(port)
    try:
        setup.query(f"CREATE DATABASE IF NOT EXISTS {SCHEMA}")
        setup.query(f"CREATE TABLE IF NOT EXISTS {SCHEMA}.orders (id BIGINT PRIMARY KEY AUTO_INCREMENT, "
                    "amount DECIMAL(12,2) NOT NULL, note VARCHAR(200) NOT NULL, batch INT NOT NULL)")
        setup.query(f"CREATE TABLE IF NOT EXISTS {SCHEMA}.load (id BIGINT PRIMARY KEY AUTO_INCREMENT, at DATETIME(6) NOT NULL)")
        setup.query(f"CREATE TABLE IF NOT EXISTS {SCHEMA}.expected (tbl VARCHAR(64) PRIMARY KEY, `rows` BIGINT NOT NULL)")
        setup.query(f"INSERT INTO {SCHEMA}.orders (amount, note, batch) SELECT seq, REPEAT('c', 100), 0 FROM {SCHEMA}.seq_1_to_{int(committed)}")
        setup.query(f"REPLACE INTO {SCHEMA}.expected SELECT 'orders', COUNT(*) FROM {SCHEMA}.orders")
        expected = int(setup.query(f"SELECT `rows` FROM {SCHEMA}.expected WHERE tbl = 'orders'").rows[0]["rows"])
        load = _Load(port)
        load.start()
        load.started_writing.wait(30)
        # The transaction that never commits: new rows and a change to committed ones.
        setup.query("START TRANSACTION")
        setup.query(f"INSERT INTO {SCHEMA}.orders (amount, note, batch) SELECT seq, REPEAT('u', 100), -1 FROM {SCHEMA}.seq_1_to_{int(uncommitted)}")
        setup.query(f"UPDATE {SCHEMA}.orders SET amount = -amount WHERE batch = 0")
        pid = mysql_pid(lab)
        if pid is None:
            raise LabError("the lab's MariaDB disappeared before it could be killed")
        time.sleep(0.3)  # let the load commit a little more
        os.kill(pid, signal.SIGKILL)
    finally:
        setup.close()
    end = time.monotonic() + 30
    while mysql_pid(lab) is not None and time.monotonic() < end:
        time.sleep(0.1)
    load.join(30)
    st["crash"] = {"killed_pid": pid, "expected_orders": expected, "uncommitted_rows": uncommitted,
                   "load_acknowledged": load.acknowledged, "at": time.strftime("%Y-%m-%dT%H:%M:%S")}
    lab.state_file.write_text(json.dumps(st))
    return (f"killed the lab's mariadbd (pid {pid}) with SIGKILL while {load.acknowledged} single-row commits had been "
            f"acknowledged on {SCHEMA}.load and a transaction of {uncommitted} inserted rows (+ an update of every "
            f"committed row) was open on {SCHEMA}.orders.\n"
            f"After recovery {SCHEMA}.orders must hold exactly {expected} rows, none with a negative amount, and "
            f"{SCHEMA}.load at least {load.acknowledged}.\n"
            f"Practise: runbook play runbooks/crash-recovery.yml -i {lab.inventory} -e schema={SCHEMA} --yes\n"
            f"(or simply: runbook lab up — it restarts the server on its datadir and InnoDB recovers)")
