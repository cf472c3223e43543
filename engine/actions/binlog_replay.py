"""``binlog_replay``: point-in-time recovery — every transaction since the backup, but the
incident, applied exactly once.

Two passes over the window: the first reads it all and writes nothing (what would be replayed,
or every reason it may not be: check mode stops here); the second applies the listed tables'
row events in commit order (``engine.mysql.binlog.apply``), each group of transactions
committing with its row in ``_runbook.binlog_progress``, so a kill at any instant followed by
``runbook resume`` continues after the last committed one.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from engine.actions._binlog import COMMON, POINT, WINDOW, BinlogInputs, end_of, window_problems
from engine.actions.base import Action, Probe, register
from engine.errors import ActionError, RunbookError, SqlError
from engine.model import Status, StepResult
from engine.mysql.binlog.position import BinlogPosition

# The progress table, the applier, the planner and the reader are imported when the step
# runs: validation imports this module for static_problems() only (runbook validate's start-up).
if TYPE_CHECKING:
    from engine.mysql.binlog import progress as prog
    from engine.mysql.binlog.apply import ApplyStats
    from engine.mysql.binlog.conflicts import ConflictError
    from engine.mysql.binlog.judged import Judged
    from engine.mysql.binlog.plan import ReplayPlan
    from engine.mysql.binlog.reader import BinlogReader, EndAt, Transaction
    from engine.mysql.binlog.tables import LiveTable
    from engine.mysql.binlog.window import Point, Start


class _Progress:
    """Each group's row in ``_runbook.binlog_progress`` (see engine.mysql.binlog.progress)."""

    def __init__(self, sid: str, ids: tuple[str, str, str]):
        self.sid, self.ids = sid, ids

    def claim(self, sql: Any, group: list[Transaction], rows: int) -> bool:
        from engine.mysql.binlog import progress as prog

        first, last = group[0], group[-1]
        try:
            sql.query(prog.CLAIM, [self.sid, first.file, first.pos, last.file, last.end_pos, first.gtid, last.gtid, *self.ids,
                                   len(group), rows])
        except SqlError as exc:
            if prog.is_duplicate(exc):
                return False
            raise
        return True

    def amend(self, sql: Any, group: list[Transaction], rows: int, conflicts: int) -> None:
        from engine.mysql.binlog import progress as prog

        sql.query(prog.CONFLICTS, [conflicts, rows, self.sid, group[0].file, group[0].pos])


def _read_again(txns: Iterator[Transaction]) -> Iterator[Transaction]:
    """The second pass's transactions. An error reading them (a file purged since the first
    pass, the server's stream refused) ends the step with what was committed before it, as a
    binlog that changed does; the applier's own errors never pass through here."""
    from engine.mysql.binlog.judged import BinlogChanged

    while True:
        try:
            txn = next(txns)
        except StopIteration:
            return
        except BinlogChanged:
            raise
        except RunbookError as exc:
            raise BinlogChanged(f"reading the binlogs again failed: {exc.message}; nothing after it was applied",
                                hint=exc.hint or "read the binlogs from where they are kept unchanged, and run the step again") from None
        yield txn


@register
class BinlogReplay(Action):
    """Replay a schema's binlogs from a dump's coordinates up to a point, leaving out some
    transactions; exactly once across kills and resumes.

    ```yaml
    - name: Replay everything since the backup but the bad transaction
      binlog_replay:
        schema: shop
        tables: [orders, order_items]
        from_dump: /backups/shop.sql.gz
        skip: ["{{ incident.first }}"]     # ends where this run fenced the host
        on_conflict: error                 # error | skip | overwrite
      register: replayed
    ```
    """

    name = "binlog_replay"
    mutating = True
    idempotent = True  # by the progress table: a re-run continues after the last committed group
    reversible = False  # undone by the snapshot taken before it
    params_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["schema"],
        "properties": {
            **COMMON, **WINDOW,
            "skip": {"type": "array", "items": POINT, "description": "transactions to leave out"},
            "on_conflict": {"enum": ["error", "skip", "overwrite"], "description": "a row to update/delete missing or different"},
            "into": {"type": "string", "minLength": 1, "description": "apply into this schema (default: the binlogs' schema)"},
            "binlog": {"type": ["boolean", "string"], "description": "false: SET sql_log_bin=0 (replicas will not get the rows)"},
            "batch": {"type": ["integer", "string"], "minimum": 1, "maximum": 10000,
                      "description": "source transactions per target transaction (default 200)"},
        },
    }

    @classmethod
    def static_problems(cls, args: Any) -> list[tuple[str, str]]:
        return window_problems(args)

    def __init__(self, args: Any, ctx: Any):
        super().__init__(args, ctx)
        self.inputs = BinlogInputs(ctx, args)

    @property
    def _into(self) -> str:
        return str(self.args.get("into") or self.args["schema"])

    @property
    def _sid(self) -> str:
        """Keyed by the generation of the target tables too: after a snapshot undo swapped them
        back (engine.mysql.generations), the replay's earlier progress describes displaced
        tables, and the replay runs again."""
        from engine.mysql.binlog import progress as prog

        from engine.mysql.generations import signature

        tables = self.args.get("tables")
        generation = signature(self.ctx.sql(), self._into, list(tables) if tables else None)
        what = self._into if not generation else f"{self._into}\0generation {generation}"
        return prog.step_id(self.ctx.run_id, self.ctx.step_key, self.ctx.host.name, what)

    # -- the window ------------------------------------------------------------------------
    def _window(self, source: Any) -> tuple[Start, EndAt | None, Any, Point | None, list[Point]]:
        stop_point = self.inputs.point(self.args["stop_before"], "stop_before") if self.args.get("stop_before") else None
        fence = self.inputs.fence()
        if stop_point is None and fence is None:
            raise ActionError("binlog_replay needs to know where to stop: this run did not fence the host (stop_writes) and "
                              "no stop_before is given — replaying to the binlogs' end would replay this run's own writes; "
                              "nothing was written", hint="fence the host with stop_writes earlier in the run, or add stop_before:")
        end, stop = end_of(stop_point, fence)
        skip = [self.inputs.point(v, f"skip[{i}]") for i, v in enumerate(self.args.get("skip") or [])]
        for i, p in enumerate(skip):
            if p.time is not None:
                raise ActionError(f"skip[{i}]: a datetime does not name one transaction", hint="give its GTID or file/pos")
        return self.inputs.start(source), end, stop, stop_point, skip

    def _reader(self, source: Any, start: Start, at: tuple[str, int], end: EndAt | None, stop: Any, skip: list[Point],
                live: dict[str, LiveTable], *, count: bool) -> BinlogReader:
        from engine.mysql.binlog.reader import BinlogReader

        unsigned = {lt.table: lt.unsigned for lt in live.values()}
        return BinlogReader(source, schema=self.inputs.schema, tables=set(live), start=at, end=end, covered=start.covered,
                            stop=stop, keep=(lambda t: False) if count else (lambda t: not any(p.matches(t) for p in skip)),
                            count_rows=count, unsigned=lambda s, t: unsigned.get(t, set()), statements=False,
                            count=lambda t: any(p.matches(t) for p in skip), digest=True)

    def _live(self) -> dict[str, LiveTable]:
        from engine.mysql.binlog.tables import live_tables, require_tables

        live = live_tables(self.ctx.sql(), self._into, self.inputs.tables)
        require_tables(live, self.inputs.tables, self._into)
        if not live:
            raise ActionError(f"no base table in {self._into} on the target", hint="restore the tables first")
        return live

    def _plan(self, source: Any, *, count: bool = True, judged: Judged | None = None
              ) -> tuple[ReplayPlan, Start, EndAt | None, Any, list[Point], dict[str, LiveTable]]:
        """The first pass (``count``: every row counted — check mode says how many; ``judged``:
        what it read, recorded for the second)."""
        from engine.mysql.binlog.plan import scan

        start, end, stop, stop_point, skip = self._window(source)
        live = self._live()
        reader = self._reader(source, start, (start.file, start.pos), end, stop, skip, live, count=True)
        reader.count_rows = count

        def hint(t: Transaction) -> str:
            return f"leave it out with skip: [{{gtid: {t.gtid}}}]" if t.gtid else f"skip: [{{file: {t.file}, pos: {t.pos}}}]"

        from engine.mysql.binlog.window import ReadProgress, window_bytes

        bar = ReadProgress(self.ctx.progress, f"read the binlogs of {self.inputs.schema}",
                           window_bytes(source, (start.file, start.pos), end))
        plan = scan(reader, skip, live, end=end, stop_point=stop_point, skip_hint=hint, on_progress=bar, judged=judged)
        return plan, start, end, stop, skip, live

    # -- contract ---------------------------------------------------------------------------
    def probe(self) -> Probe:
        from engine.mysql.binlog import progress as prog

        sql = self.ctx.sql()
        row = prog.run_row(sql, self._sid)
        what = f"replay the binlogs of {self.inputs.schema}"
        if row is None:
            return Probe(False, {}, what)
        if row.get("finished_at") is not None and row.get("result"):
            return Probe(True, dict(row["result"]), "every transaction of the window is recorded in the progress table")
        done = prog.committed(sql, self._sid)
        return Probe(False, {"transactions_done": done.transactions}, f"continue to {what} ({done.transactions} transaction(s) "
                     "already committed)")

    def check(self) -> StepResult:
        source = self.inputs.source()
        try:
            plan, start, end, *_ = self._plan(source)
        except ActionError as exc:
            return StepResult(Status.FAILED, msg=f"check mode: {exc.message}", data={})
        finally:
            source.close()
        data = self._plan_data(plan, start, end)
        if plan.problems:
            return StepResult(Status.FAILED, msg="check mode: would refuse: " + "; ".join(plan.problems), data=data)
        msg = (f"check mode: would replay {plan.transactions:,} transaction(s), {plan.rows:,} row(s) of "
               f"{', '.join(sorted(plan.rows_by_table)) or 'no table'} {plan.window_text()}"
               + (f", leaving out {len(plan.skipped)}" if plan.skipped else ""))
        return StepResult(Status.CHANGED, msg=msg, data=data, diff=msg)

    def _plan_data(self, plan: ReplayPlan, start: Start, end: EndAt | None) -> dict[str, Any]:
        return {"transactions": plan.transactions, "rows": plan.rows, "rows_by_table": plan.rows_by_table,
                "skipped_transactions": plan.skipped, "bytes": plan.bytes,
                "start": start.position.to_dict(), "end": _pos(end, plan.stopped_at), "problems": plan.problems,
                "first_time": plan.first_time and _iso(plan.first_time), "last_time": plan.last_time and _iso(plan.last_time)}

    def apply(self) -> StepResult:
        t0 = time.monotonic()
        source = self.inputs.source()
        try:
            return self._apply(source, t0)
        finally:
            source.close()

    def _apply(self, source: Any, t0: float) -> StepResult:
        from engine.actions.guard import check_identity
        from engine.mysql.binlog import progress as prog
        from engine.mysql.binlog.apply import Applier, ApplyOptions
        from engine.mysql.binlog.conflicts import ConflictError
        from engine.mysql.binlog.judged import BinlogChanged, Judged

        ctx, sql = self.ctx, self.ctx.sql()
        judged = Judged()
        plan, start, end, stop, skip, live = self._plan(source, count=False, judged=judged)
        if plan.problems:
            raise ActionError("refusing to replay, nothing was written:\n  " + "\n  ".join(plan.problems),
                              hint="skip the transactions named (skip:), end the window before them (stop_before:), or fix the target")
        check_identity(ctx, f"replay binlogs into {self._into}")
        window = {"source": source.description, "schema": self.inputs.schema, "into": self._into, "tables": sorted(live),
                  "start": start.position.to_dict(), "end": _pos(end, None), "stop": str(self.args.get("stop_before") or ""),
                  "skip": [str(p) for p in skip]}
        try:
            prog.ensure(sql)
        except SqlError as exc:
            raise ActionError(f"{exc.render()} — the replaying account needs CREATE, INSERT, UPDATE, SELECT on {prog.SCHEMA}.*; "
                              "nothing was written") from None
        sid = self._sid
        prog.begin(sql, sid, run_id=ctx.run_id, step_key=ctx.step_key, host=ctx.host.name, action=self.name, window=window)
        before = prog.committed(sql, sid)
        at = before.last or (start.file, start.pos)
        opts = ApplyOptions(on_conflict=str(self.args.get("on_conflict") or "error"), binlog=_flag(self.args.get("binlog", True)),
                            group_transactions=int(self.args.get("batch") or 200),
                            target_schema=self._into if self._into != self.inputs.schema else None)
        reader = self._reader(source, start, at, end, stop, skip, live, count=False)
        bar = _Bar(ctx, plan, before, t0)
        with ctx.conns.own_sql() as session:
            max_packet = int(session.query("SELECT @@max_allowed_packet AS p").rows[0]["p"])
            applier = Applier(session, live, opts, _Progress(sid, (ctx.run_id, ctx.step_key, ctx.host.name)), max_packet=max_packet)
            try:
                # The second pass applies only what the first judged (a file may be rewritten between).
                stats = applier.apply(judged.verify(_read_again(reader.transactions()), at), on_commit=bar)
            except (ConflictError, BinlogChanged) as exc:
                return self._failed(exc, applier.stats, before, plan, start, end, t0)
        return self._done(sql, sid, stats, before, plan, start, end, reader, t0)

    def _failed(self, exc: ConflictError | ActionError, stats: ApplyStats, before: prog.Committed, plan: ReplayPlan, start: Start,
                end: EndAt | None, t0: float) -> StepResult:
        data = self._result(stats, before, plan, start, end, None, t0)
        return StepResult(Status.FAILED, msg=f"replay stopped: {exc.render()}", data=data,
                          evidence=f"{stats.transactions + before.transactions:,} transaction(s) committed before it")

    def _result(self, stats: ApplyStats, before: prog.Committed, plan: ReplayPlan, start: Start, end: EndAt | None,
                reader: BinlogReader | None, t0: float) -> dict[str, Any]:
        stopped = _pos(end, reader.stopped_at if reader else stats.last)
        return {"transactions": before.transactions + stats.transactions, "rows": before.rows + stats.rows,
                "skipped_transactions": plan.skipped,
                "conflicts": before.conflicts + stats.conflicts, "conflict_rows": [c.to_dict() for c in stats.conflict_list],
                "stopped_at": stopped, "start": start.position.to_dict(), "end": _pos(end, plan.stopped_at),
                "seconds": round(time.monotonic() - t0, 3), "resumed_transactions": before.transactions,
                "tables": sorted(plan.rows_by_table), "groups": before.groups + stats.groups, "slow_groups": stats.slow_groups}

    def _done(self, sql: Any, sid: str, stats: ApplyStats, before: prog.Committed, plan: ReplayPlan, start: Start,
              end: EndAt | None, reader: BinlogReader, t0: float) -> StepResult:
        from engine.mysql.binlog import progress as prog

        data = self._result(stats, before, plan, start, end, reader, t0)
        prog.finish(sql, sid, data)
        rate = data["rows"] / data["seconds"] if data["seconds"] else 0
        msg = (f"{data['transactions']:,} transaction(s), {data['rows']:,} row(s) replayed in {data['seconds']:.1f}s "
               f"({rate:,.0f} rows/s) {plan.window_text()}" + (f"; left out {len(plan.skipped)}" if plan.skipped else "")
               + (f"; {data['conflicts']} conflict(s) ({self.args.get('on_conflict')})" if data["conflicts"] else "")
               + (f"; resumed after {before.transactions:,}" if before.transactions else ""))
        return StepResult(Status.CHANGED, msg=msg, data=data)


class _Bar:
    """Progress: bytes of the window, transactions, rows, rate and ETA, after each commit."""

    def __init__(self, ctx: Any, plan: ReplayPlan, before: prog.Committed, t0: float):
        self.ctx, self.plan, self.before, self.t0 = ctx, plan, before, t0
        self.last = 0.0

    def __call__(self, stats: ApplyStats) -> None:
        now = time.monotonic()
        if now - self.last < 0.5:
            return
        self.last = now
        done_t = self.before.transactions + stats.transactions
        total = max(self.plan.transactions, 1)
        rate = stats.transactions / max(now - self.t0, 1e-6)
        eta = (total - done_t) / rate if rate > 0 else None
        frac_bytes = int(self.plan.bytes * min(done_t / total, 1.0))
        label = (f"replay {self.plan.bytes / 1e6:.1f} MB | {done_t:,}/{total:,} transactions, {self.before.rows + stats.rows:,} rows, "
                 f"{frac_bytes / 1e6:.1f}/{self.plan.bytes / 1e6:.1f} MB" + (f", ETA {eta:.0f}s" if eta is not None else ""))
        self.ctx.progress(frac_bytes, self.plan.bytes or None, label)


def _pos(end: EndAt | None, at: tuple[str, int] | None) -> dict[str, Any] | None:
    if at is not None:
        return BinlogPosition(at[0], at[1]).to_dict()
    return BinlogPosition(end.file, end.pos).to_dict() if end is not None else None


def _iso(ts: int) -> str:
    from engine.mysql.binlog.window import iso

    return iso(ts)


def _flag(v: Any) -> bool:
    return v if isinstance(v, bool) else str(v).strip().lower() in ("1", "true", "yes", "on")
