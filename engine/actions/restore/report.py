"""The restore's registered result and its error explanations (what failed, why, what to do)."""

from __future__ import annotations

import shlex
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from engine.actions.restore.index import Batch
from engine.actions.restore.loader import Shared
from engine.mysql.diagnosis import diagnose
from engine.errors import RunbookError, SqlError

if TYPE_CHECKING:
    from engine.run.context import ActionContext
    from engine.transport.base import Sql


@dataclass
class TableResult:
    """One table of a restore, as registered (``r.tables.users.rows``)."""

    status: str  # loaded | failed | skipped
    rows: int
    ignored: int  # conflicts skipped (on_conflict: ignore)
    bytes: int
    seconds: float
    rows_per_s: float | None
    batches: int
    batches_resumed: int
    batches_redone: int
    batches_load_data: int
    warnings: int  # data warnings the step allowed (allow_warnings)
    error: str | None = None


@dataclass(frozen=True)
class OrphanCount:
    """Child rows without a parent after a cycle group's load (FK checks were off for it)."""

    table: str
    constraint: str | None
    orphans: int


@dataclass
class RestoreResult:
    """What a restore step registers (``register: r``): ``r.rows``, ``r.tables``, ``r.core_ok``…"""

    tables: dict[str, TableResult]
    rows: int
    bytes: int
    seconds: float
    rows_per_s: float | None
    failed_tables: list[str]
    core_ok: bool
    partial: bool
    schema: str
    load_order: list[str]
    orphans: list[OrphanCount] = field(default_factory=list)
    phases: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # trigger differences, tables reloaded, allowed data warnings
    binlog_start: dict[str, Any] | None = None  # the dump's binlog coordinates {file, pos, gtid}: where a PITR replay starts

    def registered(self) -> dict[str, Any]:
        return asdict(self)


def table_results(shared: Shared, names: list[str]) -> dict[str, TableResult]:
    out: dict[str, TableResult] = {}
    for n in names:
        st = shared.stats[n]
        seconds = (st.ended or st.started or 0) - (st.started or 0) if st.started else 0.0
        status = "failed" if n in shared.failed else ("loaded" if not shared.pending[n] else "skipped")
        out[n] = TableResult(status, st.rows, st.ignored, st.bytes, round(seconds, 3),
                             round(st.rows / seconds, 1) if seconds > 0 else None, st.batches, st.skipped_batches, st.redone,
                             st.load_data, st.warnings, st.error.render() if st.error is not None else None)
    return out


def explain(err: RunbookError, ctx: ActionContext, sql: Sql | None, table: str, batch: Batch | None) -> str:
    """One paragraph: the MySQL error, where (table, batch) and the diagnosis with the facts
    that make it actionable (free bytes for 1114, the packet size for 1153)."""
    where = f"table {table}" + (f", batch at statement {batch.first}" + (f" part {batch.part}" if batch.part else "")
                                if batch is not None else "")
    errno = err.errno if isinstance(err, SqlError) else None
    text = f"{where}: {err.render()}"
    extra = ""
    try:
        if errno in (1114, 1021) and sql is not None:
            datadir = sql.query("SELECT @@datadir AS d").rows[0]["d"]
            datadir = datadir.decode() if isinstance(datadir, bytes) else str(datadir)
            df = ctx.shell().run(f"df -P -B1 {shlex.quote(datadir)} | tail -1", timeout=15)
            parts = df.stdout.split()
            if df.rc == 0 and len(parts) >= 6:
                extra = (f"the filesystem {parts[0]} mounted on {parts[5]} (datadir {datadir}) has {int(parts[3]):,} bytes free "
                         f"of {int(parts[1]):,}: free space there, then `runbook resume` continues with the first batch not "
                         "committed. Not the binary logs: PURGE BINARY LOGS destroys the point-in-time recovery source "
                         "(the writes since the backup that binlog_replay brings back) and breaks any replica that has "
                         "not read them yet — copy them off the filesystem first if they must go. Snapshots of other, "
                         "finished runs: runbook snapshots list, then drop one you no longer need (never this run's: "
                         "it is the way back)")
        elif errno == 1153 and sql is not None:
            size = sql.query("SELECT @@max_allowed_packet AS p").rows[0]["p"]
            extra = (f"max_allowed_packet is {int(size):,} bytes and the batch is {batch.length if batch else 0:,}: "
                     "SET GLOBAL max_allowed_packet = 268435456 (then resume)")
        elif errno in (1044, 1045, 1142, 1227):
            extra = "the restore account needs CREATE, DROP, INSERT, DELETE (replace), SELECT, plus CREATE/INSERT on _runbook"
    except RunbookError:
        pass
    return text + (f" — {extra}" if extra else "")


def diagnosis_name(err: RunbookError) -> str | None:
    if isinstance(err, SqlError):
        d = diagnose(err.errno)
        return d.name if d else None
    return None


class LiveProgress:
    """Per table (bytes, rows in the text) and overall (bytes, rows, MB/s, ETA), from committed
    batches only, so a resumed run shows the true state at once. Called by the workers after
    each batch; reports at most once a second, never two at a time."""

    def __init__(self, progress: Callable[[int, int | None, str], None], schema: str, table_bytes: dict[str, int]):
        self.progress, self.schema, self.table_bytes = progress, schema, table_bytes
        self.total = sum(table_bytes.values())
        self.t0 = time.monotonic()
        self.last = 0.0
        self.base: int | None = None
        self.shown: dict[str, int] = {}
        self.lock = threading.Lock()

    def __call__(self, sh: Shared) -> None:
        if not self.lock.acquire(blocking=False):
            return  # another worker is reporting right now
        try:
            self._report(sh)
        finally:
            self.lock.release()

    def _report(self, sh: Shared) -> None:
        now = time.monotonic()
        finished = not any(sh.pending.values()) and not any(sh.running.values())
        if now - self.last < 1.0 and not finished:
            return
        self.last = now
        with sh.cond:
            stats = {n: (s.rows, s.bytes) for n, s in sh.stats.items()}
        for n, (rows, size) in stats.items():
            if self.shown.get(n) != size and (size or sh.running.get(n)):
                self.shown[n] = size
                self.progress(size, max(self.table_bytes.get(n, 0), size), f"restore {n} | {rows:,} rows")
        done = sum(b for _, b in stats.values())
        if self.base is None:
            self.base = done  # committed before this attempt: not part of the rate
        rate = (done - self.base) / max(now - self.t0, 1e-6)
        eta = (self.total - done) / rate if rate > 0 else None
        rows_all = sum(r for r, _ in stats.values())
        self.progress(done, max(self.total, done), f"restore {self.schema} | {rows_all:,} rows, {rate / 1e6:.1f} MB/s"
                      + (f", ETA {eta:.0f}s" if eta is not None and not finished else ""))
