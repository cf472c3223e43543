"""A loader connection (:class:`Worker`) and the loader's test hooks (:class:`Fault`)."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable

from engine.errors import RunbookError
from engine.transport.mysql import MysqlSession

#: strict mode on top of the dump's own sql_mode: a value that does not fit is an error, not a warning
STRICT = "SET SESSION sql_mode = CONCAT_WS(',', NULLIF(@@sql_mode, ''), 'STRICT_ALL_TABLES')"


class Fault:
    """Test hooks (read only here): ``RUNBOOK_FAULT_RESTORE_KILL=before_commit:N|after_commit:N``
    SIGKILLs this process around its N-th batch commit; ``RUNBOOK_FAULT_RESTORE_KILL_CONN=N``
    KILLs the worker's connection from another session in the middle of the N-th batch;
    ``RUNBOOK_FAULT_RESTORE_SIGINT=after_commit:N,after_commit:M`` sends this process a SIGINT
    (the operator's Ctrl-C, at a seeded instant) at each of those points: after the first the
    worker waits until the run noticed it (``noticed``, the run's interrupted event), after a
    later one it holds the batch for ``SIGINT_HOLD`` seconds (the rest of a restore still to
    run when the second press lands)."""

    SIGINT_HOLD = 2.0

    def __init__(self) -> None:
        spec = os.environ.get("RUNBOOK_FAULT_RESTORE_KILL", "")
        self.when, _, n = spec.partition(":")
        self.at = int(n) if n.isdigit() else None
        k = os.environ.get("RUNBOOK_FAULT_RESTORE_KILL_CONN", "")
        self.kill_conn = int(k) if k.isdigit() else None
        self.count = 0
        self.lock = threading.Lock()
        self.sigint = {(w, int(k)) for w, _, k in (p.partition(":") for p in
                                                    os.environ.get("RUNBOOK_FAULT_RESTORE_SIGINT", "").split(",")) if k.isdigit()}
        self.noticed: threading.Event | None = None
        self.sent = 0

    def number(self) -> int:
        with self.lock:
            self.count += 1
            return self.count

    def point(self, where: str, n: int) -> None:
        if self.at is not None and self.when == where and n == self.at:
            os.kill(os.getpid(), signal.SIGKILL)
        if (where, n) in self.sigint:
            self.sent += 1
            os.kill(os.getpid(), signal.SIGINT)
            if self.sent == 1 and self.noticed is not None:
                self.noticed.wait(60)
            elif self.sent > 1:
                time.sleep(self.SIGINT_HOLD)


class Worker:
    """One connection to the target, set up as the dump expects, loading batches."""

    def __init__(self, make: Callable[[], MysqlSession], header: list[bytes], binlog: bool, strict: bool = True):
        self.make, self.header, self.binlog, self.strict = make, header, binlog, strict
        self.sql: MysqlSession | None = None
        self.state: dict[str, int] = {}
        self.loose_mode: str | None = None  # the session's sql_mode before strict mode was added
        self.is_strict = False
        self.stages: set[str] = set()  # temporary upsert copies made on this connection

    def session(self) -> MysqlSession:
        if self.sql is None:
            s = self.make()
            for h in self.header:  # the dump's own SET NAMES / time_zone / sql_mode, on every connection
                s.query(h)
            if not self.binlog:
                s.query("SET SESSION sql_log_bin = 0")
            s.query("SET SESSION wait_timeout = 28800, net_read_timeout = 3600, net_write_timeout = 3600,"
                    " innodb_lock_wait_timeout = 120, sql_notes = 0")
            self.loose_mode = str(s.query("SELECT @@SESSION.sql_mode AS m").rows[0]["m"] or "")
            self.is_strict = False
            if self.strict:
                s.query(STRICT)
                self.is_strict = True
            self.sql = s
            self.state = {}
            self.stages = set()
        return self.sql

    def set_strict(self, strict: bool) -> None:
        """Strict mode for this batch (off where the rows carry values for generated columns:
        strict mode makes the server refuse them; their warnings are checked all the same)."""
        s = self.session()
        strict = strict and self.strict
        if strict != self.is_strict:
            if strict:
                s.query(STRICT)
            else:
                s.query("SET SESSION sql_mode = %s", [self.loose_mode or ""])
            self.is_strict = strict

    def set(self, name: str, value: int) -> None:
        s = self.session()
        if self.state.get(name) != value:
            s.query(f"SET SESSION {name} = {int(value)}")
            self.state[name] = value

    def reset(self) -> None:
        if self.sql is not None:
            self.sql.close()
        self.sql = None

    def rollback(self) -> None:
        if self.sql is not None:
            try:
                self.sql.query("ROLLBACK")
            except RunbookError:
                self.reset()


