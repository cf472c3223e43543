"""Parallel batch loading, each batch exactly once.

Every batch is one transaction on a worker connection:

```sql
START TRANSACTION;
INSERT INTO _runbook.restore_progress (…) VALUES (…);  -- FIRST: 1062 = committed before → ROLLBACK, skip
LOAD DATA LOCAL INFILE 'rb:…' … | INSERT … VALUES (…),(…);
UPDATE _runbook.restore_progress SET `rows` = …, ignored = … WHERE …;
COMMIT;
```

The rows are written by :mod:`engine.actions.restore.write` (strict mode; a data warning fails
the table unless allowed). Deadlocks and lock-wait timeouts (1213/1205) re-run the whole batch
of an InnoDB table; a lost connection (2006/2013) re-runs it on a new connection — the progress row decides whether its COMMIT made it
(a late COMMIT of the old session holds the row lock, so the new INSERT waits for it and then
sees 1062). Never a partial retry inside a transaction (mydumper PR #1162).

Scheduling is MySQL Shell's (``dump_reader.cc`` ``schedule_chunk_proportionally``): a free
worker takes a table nobody is loading — parents first, then the most bytes left — and only
when there is none helps the in-progress table with the most bytes left. Within a table a worker
goes on with the batch after its last one; one that joins a busy table starts in the middle of
the longest run of batches nobody took, so two workers append to two far-apart key ranges of
the index instead of fighting over its last page (see ``_take``).
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engine.actions.restore import progress as prog
from engine.actions.restore.index import Batch, DumpChanged, DumpIndex
from engine.actions.restore.plan import Plan, TablePlan
from engine.actions.restore.rowcheck import DataWarning
from engine.actions.restore.upsert import UpsertConflict
from engine.actions.restore.worker import Fault, Worker
from engine.actions.restore.write import Redo, Written, write_batch
from engine.mysql.diagnosis import diagnose
from engine.errors import ConnectError, RunbookError, SqlError
from engine.transport.mysql import MysqlSession

#: errors after which no other table can do better: stop everything
FATAL = {1114, 1021, 1044, 1045, 1142, 1227, 1290, 1153, 1148, 1049}
RETRY_LOCKS = 5
RETRY_LOST = 3
#: ER_ERROR_DURING_COMMIT: how a bulk insert into an empty InnoDB table reports a duplicate key
BULK_FAILED = 1180


class Fatal(RunbookError):
    """An error that stops the whole restore (disk full, access denied, server gone)."""

    def __init__(self, err: RunbookError, table: str, batch: Batch | None):
        super().__init__(err.message, hint=err.hint)
        self.err = err
        self.table = table
        self.batch = batch


@dataclass
class TableStats:
    rows: int = 0
    ignored: int = 0
    bytes: int = 0
    batches: int = 0
    seconds: float = 0.0
    warnings: int = 0  # data warnings the step allowed (allow_warnings)
    warning_samples: list[str] = field(default_factory=list)
    skipped_batches: int = 0  # committed by an earlier attempt
    redone: int = 0  # batches run again whole (lost connection, deadlock, lock wait)
    load_data: int = 0  # batches sent as LOAD DATA LOCAL (the rest as INSERT)
    error: SqlError | RunbookError | None = None
    error_batch: Batch | None = None
    started: float | None = None
    ended: float | None = None


@dataclass
class Shared:
    """State every worker thread reads and writes under ``cond``."""

    pending: dict[str, list[Batch]]  # per table, in file order
    running: dict[str, int]
    left: dict[str, int]
    stats: dict[str, TableStats]
    failed: set[str] = field(default_factory=set)
    fatal: Fatal | None = None
    stop: bool = False
    cond: threading.Condition = field(default_factory=threading.Condition)
    commits: int = 0


class Loader:
    """Loads the batches of a plan over ``parallel`` worker connections."""

    def __init__(self, *, plan: Plan, index: DumpIndex, dump_path: str, sid: str, done: dict[tuple[str, int, int], prog.Done],
                 make_session: Callable[[], MysqlSession], control: MysqlSession, parallel: int, binlog: bool,
                 ids: dict[str, str], on_progress: Callable[[Shared], None], allow_warnings: bool = False):
        self.plan, self.index, self.sid, self.ids = plan, index, sid, ids
        self.dump_path = dump_path
        self.make_session, self.control = make_session, control
        self.parallel, self.binlog = max(1, parallel), binlog
        self.on_progress = on_progress
        self.fault = Fault()
        self.allow_warnings = allow_warnings
        self.tables = plan.by_name()
        pending: dict[str, list[Batch]] = {}
        stats: dict[str, TableStats] = {}
        left: dict[str, int] = {}
        for t in plan.tables:
            st = stats[t.name] = TableStats()
            q: list[Batch] = []
            for b in index.tables[t.name].batches:
                d = done.get(b.key)
                if d is not None:
                    st.rows += d.rows
                    st.ignored += d.ignored
                    st.bytes += d.bytes
                    st.batches += 1
                    st.skipped_batches += 1
                else:
                    q.append(b)
            pending[t.name] = q
            left[t.name] = sum(b.length for b in q)
        #: each batch's place in its table's file order
        self.position = {b.key: i for t in plan.tables for i, b in enumerate(index.tables[t.name].batches)}
        self.shared = Shared(pending=pending, running={t.name: 0 for t in plan.tables}, left=left, stats=stats)

    # -- scheduling ----------------------------------------------------------------------
    def _finished(self, name: str) -> bool:
        sh = self.shared
        return name in sh.failed or (not sh.pending[name] and sh.running[name] == 0)

    def _ready(self, t: TablePlan) -> bool:
        """With FK checks on, a child waits for its parents; without, their order is only a
        preference (the pick rule takes parents first), so no connection idles."""
        return not t.fk_checks or all(self._finished(p) for p in t.parents)

    def _pick(self, last: dict[str, int]) -> tuple[TablePlan, Batch] | None:
        """Shell's rule: a table nobody loads (parents first, most bytes left), else the busy
        table with the most bytes left (``last``: this worker's latest batch per table, by
        position). Caller holds the lock."""
        sh = self.shared
        ready = [t for t in self.plan.tables if sh.pending[t.name] and t.name not in sh.failed and self._ready(t)
                 and (t.transactional or sh.running[t.name] == 0)]  # MyISAM/Aria: one batch at a time
        if not ready:
            return None
        idle = [t for t in ready if sh.running[t.name] == 0]
        pool = idle or ready
        t = min(pool, key=lambda x: (x.level, -sh.left[x.name], x.name)) if idle else max(pool, key=lambda x: sh.left[x.name])
        b = self._take(t.name, last.get(t.name))
        last[t.name] = self.position[b.key]
        sh.running[t.name] += 1
        sh.left[t.name] -= b.length
        st = sh.stats[t.name]
        if st.started is None:
            st.started = time.monotonic()
        return t, b

    def _take(self, name: str, last: int | None) -> Batch:
        """The batch after this worker's ``last`` one when nobody took it; else the first one of an
        idle table; else (joining workers on a busy table) the middle of the longest run of
        consecutive batches left, so each worker writes its own key range. Caller holds the lock."""
        q = self.shared.pending[name]
        pos = self.position
        if last is not None:
            k = bisect.bisect_left(q, last + 1, key=lambda b: pos[b.key])
            if k < len(q) and pos[q[k].key] == last + 1:
                return q.pop(k)
        if self.shared.running[name] == 0:
            return q.pop(0)
        best, best_len, start = 0, 0, 0
        for i in range(1, len(q) + 1):
            if i == len(q) or pos[q[i].key] != pos[q[i - 1].key] + 1:
                if i - start > best_len:
                    best, best_len = start, i - start
                start = i
        return q.pop(best + best_len // 2)

    def _all_done(self) -> bool:
        return all(self._finished(t.name) for t in self.plan.tables)

    # -- running ---------------------------------------------------------------------------
    def run(self) -> Shared:
        threads = [threading.Thread(target=self._work, name=f"restore-{i}", daemon=True) for i in range(self.parallel)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        if self.shared.fatal is not None:
            raise self.shared.fatal
        return self.shared

    def _work(self) -> None:
        sh = self.shared
        w = Worker(self.make_session, self.index.header, self.binlog, strict=not self.allow_warnings)
        last: dict[str, int] = {}  # this worker's latest batch per table (its place in file order)
        files: dict[bool, Any] = {}
        try:
            files[False] = open(self.dump_path, "rb")  # noqa: SIM115  (closed in finally, with the worker)
            if self.index.side_path:
                files[True] = open(self.index.side_path, "rb")  # noqa: SIM115
            fds = {side: f.fileno() for side, f in files.items()}
            while True:
                with sh.cond:
                    while True:
                        if sh.stop or self._all_done():
                            sh.cond.notify_all()
                            return
                        job = self._pick(last)
                        if job is not None:
                            break
                        sh.cond.wait(0.5)
                t, b = job
                try:
                    try:
                        body = b.read(fds)
                    except DumpChanged as exc:
                        raise Fatal(self._changed(exc), t.name, b) from None
                    result = self._batch(w, t, b, body)
                    with sh.cond:
                        st = sh.stats[t.name]
                        if result is not None:
                            d, written = result
                            st.rows += d.rows
                            st.ignored += d.ignored
                            st.bytes += d.bytes
                            st.batches += 1
                            st.warnings += len(written.warnings)
                            st.warning_samples.extend(str(x) for x in written.warnings[:3 - len(st.warning_samples)])
                        sh.running[t.name] -= 1
                        if self._finished(t.name):
                            st.ended = time.monotonic()
                        sh.cond.notify_all()
                    self.on_progress(sh)
                except Fatal as exc:
                    with sh.cond:
                        sh.fatal = sh.fatal or exc
                        sh.stop = True
                        sh.running[t.name] -= 1
                        sh.stats[t.name].error = exc.err
                        sh.stats[t.name].error_batch = b
                        sh.failed.add(t.name)
                        sh.cond.notify_all()
                    return
                except RunbookError as exc:
                    with sh.cond:
                        sh.running[t.name] -= 1
                        st = sh.stats[t.name]
                        st.error, st.error_batch = exc, b
                        st.ended = time.monotonic()
                        sh.failed.add(t.name)
                        sh.pending[t.name].clear()
                        sh.cond.notify_all()
        except BaseException as exc:  # a bug must not hang the other workers
            with sh.cond:
                if sh.fatal is None:
                    err = exc if isinstance(exc, RunbookError) else RunbookError(f"restore worker crashed: {exc!r}")
                    sh.fatal = Fatal(err, "", None)
                sh.stop = True
                sh.cond.notify_all()
        finally:
            for f in files.values():
                f.close()
            w.reset()

    def _changed(self, exc: DumpChanged) -> RunbookError:
        """The whole restore stops: every batch not yet sent may hold bytes nobody checked."""
        if exc.side:
            where = f"the restore's own temporary file {self.index.side_path} (rows of {self.dump_path} copied by the check)"
        else:
            where = self.dump_path
        return RunbookError(
            f"{where} changed since the check ({exc.message}); nothing of the changed part was sent (the batches"
            " committed before it stay, each one checked)",
            hint="the file was rewritten while the restore ran (a backup job writing the next dump to the same path?):"
                 " copy the dump to a path nothing writes to and restore from the copy again; `runbook resume` goes on"
                 " only with the very file this step began with (its sha256 is compared)")

    def _batch(self, w: Worker, t: TablePlan, b: Batch, body: bytes) -> tuple[prog.Done, Written] | None:
        """Run one batch to its commit; None when an earlier attempt committed it. An InnoDB
        batch is redone whole after a deadlock, a lock wait or a lost connection; a MyISAM/Aria
        batch never is (its rows may already be written: no transaction rolled them back)."""
        locks = lost = 0
        n = self.fault.number()
        force_insert = False
        relaxed = self._relaxed(t)
        while True:
            try:
                return self._attempt(w, t, b, body, n, force_insert, relaxed)
            except Redo:
                if not t.transactional:
                    raise NotRetried(t, b, SqlError("the batch's rows hold a duplicate key", errno=1062)) from None
                force_insert = True
            except DataWarning as exc:
                if not t.transactional:  # the rows stayed: the rollback does not reach them
                    raise NotRetried(t, b, exc) from None
                raise
            except (ConnectError, SqlError) as exc:
                diag = diagnose(exc.errno) if isinstance(exc, SqlError) else None
                lost_conn = isinstance(exc, ConnectError) or (diag is not None and diag.lost_connection and exc.errno != 1153)
                if lost_conn:
                    w.reset()
                else:
                    w.rollback()
                if isinstance(exc, SqlError) and exc.errno in FATAL:
                    raise Fatal(exc, t.name, b) from None
                if relaxed and isinstance(exc, SqlError) and exc.errno == BULK_FAILED and t.transactional:
                    # InnoDB's bulk insert found a duplicate when it sorted the rows and says only
                    # 'Got error 1 during COMMIT' (the whole transaction rolled back): the batch
                    # again, whole, with unique checks on, gets the server's own 1062 (key, value)
                    relaxed = False
                    self._redone(t.name)
                    continue
                if not t.transactional:
                    raise NotRetried(t, b, exc) from None
                if lost_conn:
                    # The connection is gone (the COMMIT may or may not have happened): a new
                    # one looks the batch up in the progress table and redoes it whole, or skips it.
                    self._redone(t.name)
                    lost += 1
                    if lost > RETRY_LOST:
                        raise Fatal(exc, t.name, b) from None
                    time.sleep(0.2 * lost)
                    continue
                assert isinstance(exc, SqlError)
                if exc.errno in (1205, 1213) and locks < RETRY_LOCKS:
                    self._redone(t.name)
                    locks += 1
                    time.sleep(0.1 * 2 ** locks)
                    continue
                raise

    def _redone(self, table: str) -> None:
        with self.shared.cond:
            self.shared.stats[table].redone += 1

    @staticmethod
    def _relaxed(t: TablePlan) -> bool:
        """unique_checks=0 for this table's batches? Only into an empty table under ``error``. With
        foreign_key_checks=0 it also makes the first batch into the empty InnoDB table a bulk insert
        (MariaDB 10.6+, MDEV-515/24621: the table X-locked until COMMIT, one undo record). Kept:
        unique_checks=1 everywhere measured 13.1 -> 15.0 s of server CPU for the x30 load in one
        5-round run, no difference in another (3 rounds); the bulk path for a whole table, see README."""
        return t.empty and t.shape.conflict == "error" and not t.staged

    def _attempt(self, w: Worker, t: TablePlan, b: Batch, body: bytes, n: int, force_insert: bool,
                 relaxed: bool) -> tuple[prog.Done, Written] | None:
        s = w.session()
        w.set("foreign_key_checks", int(t.fk_checks))
        w.set("unique_checks", 0 if relaxed else 1)
        s.query("START TRANSACTION")
        try:
            s.query(prog.BATCH_INSERT, [self.sid, t.name, b.first, b.part, b.last, self.ids["run_id"], self.ids["step_key"],
                                        self.ids["host"], b.length])
        except SqlError as exc:
            if exc.errno == 1062:  # this batch committed before: the server says so
                w.rollback()
                return None
            raise
        if self.fault.kill_conn == n:
            self.fault.kill_conn = None  # once: the redo must go through
            self.control.query(f"KILL CONNECTION {int(s.connection_id)}")
        try:
            written = write_batch(w, t, b, body, force_insert=force_insert, allow_warnings=self.allow_warnings)
        except (Redo, DataWarning, UpsertConflict):
            w.rollback()
            raise
        if written.load_data:
            with self.shared.cond:
                self.shared.stats[t.name].load_data += 1
        s.query(prog.BATCH_UPDATE, [written.rows, written.ignored, self.sid, t.name, b.first, b.part])
        self.fault.point("before_commit", n)
        s.query("COMMIT")
        self.fault.point("after_commit", n)
        return prog.Done(written.rows, written.ignored, b.length), written


class NotRetried(RunbookError):
    """A batch of a non-transactional table failed after its rows may have been written."""

    def __init__(self, t: TablePlan, b: Batch, err: RunbookError):
        super().__init__(
            f"{err.render()} — {t.name} is not transactional: the batch at statement {b.first} may have left some of its"
            " rows, so it is not retried in-process; `runbook resume` empties and reloads the table whole when this step"
            " created it or this run's snapshot holds it, else reports it in doubt")
        self.errno = getattr(err, "errno", None)
