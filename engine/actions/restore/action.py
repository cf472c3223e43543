"""``restore``: load a mysqldump / mariadb-dump file into a live server, exactly once.

Before any write the whole dump is checked and the target compared with it; then tables are
prepared (DDL per ``schema_mismatch``, ``truncate``), rows are loaded in batches over
``parallel`` connections (parents first), and triggers, views, routines and events come last.
Every batch commits with its row in ``_runbook.restore_progress``, so a kill at any instant
followed by ``runbook resume`` loads each batch once.
"""

from __future__ import annotations

import dataclasses
import re
import time
from dataclasses import asdict
from typing import Any, ClassVar

from engine.actions.base import Action, Probe, register
from engine.actions.guard import check_identity, session_settings
from engine.actions.restore import facts
from engine.actions.restore import progress as prog
from engine.actions.restore.decide import make_plan
from engine.actions.restore.index import DumpIndex
from engine.actions.restore.loader import Fatal, Loader, Shared
from engine.actions.restore.phases import Phases
from engine.actions.restore.source import DumpSource, flag
from engine.actions.restore.plan import Facts, Plan, RestoreOptions
from engine.actions.restore.report import LiveProgress, OrphanCount, RestoreResult, explain, table_results
from engine.errors import ActionError, RunbookError, SqlError
from engine.model import Status, StepResult
from engine.mysql.introspect import foreign_keys_touching
from engine.mysql.target import default_collations, describe_schema
from engine.mysql.sqlutil import quote_ident
from engine.transport.mysql import MysqlSession

#: rows per transaction by default, in bytes of the dump's row lists: 4 MiB (≈ 4 of mysqldump's
#: 1 MB INSERTs) commits 4× less often than one INSERT per batch — with sync_binlog=1 and
#: innodb_flush_log_at_trx_commit=1 every commit is two fsyncs — and is capped at half of
#: max_allowed_packet (a batch that goes by INSERT is one statement)
BATCH_BYTES = 4 << 20

_LIST = {"type": "array", "items": {"type": "string", "minLength": 1}}


@register
class Restore(Phases, Action):
    """Load a dump: table subset, FK order, conflict and schema policies, parallel batches,
    live progress, exactly once across kills and resumes.

    ```yaml
    - name: Restore core tables
      restore:
        file: /backups/shop-full.sql.gz
        schema: shop
        tables: [users, orders]
        on_conflict: upsert          # error | ignore | replace | upsert
        schema_mismatch: error       # error | create_missing | recreate | common_columns
        core_tables: [users, orders]
      register: r
    ```
    """

    name = "restore"
    mutating = True
    idempotent = True  # by the progress table: a re-run skips every committed batch
    reversible = False  # undone by the snapshot taken before it
    params_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["file"],
        "properties": {
            "file": {"type": "string", "minLength": 1, "description": "mysqldump / mariadb-dump output, plain or .gz"},
            "file_on": {"enum": ["host", "control"], "description": "host (default): read over the host's connection; control: this machine"},
            "schema": {"type": "string", "minLength": 1, "description": "target schema (default: the dump's); created when missing"},
            "tables": dict(_LIST, minItems=1, description="tables to restore (default: every table of the dump)"),
            "exclude_tables": dict(_LIST, description="tables of the dump not to restore"),
            "on_conflict": {"enum": ["error", "ignore", "replace", "upsert"], "description": "what a duplicate key does"},
            "truncate": {"type": ["boolean", "string"], "description": "empty the tables first (needs a snapshot of them in this run)"},
            "allow_without_snapshot": {"type": ["boolean", "string"], "description": "let truncate/recreate run without a snapshot"},
            "allow_duplicates": {"type": ["boolean", "string"],
                                 "description": "ignore/upsert/replace into a table without primary or unique key that holds rows"},
            "allow_warnings": {"type": ["boolean", "string"],
                               "description": "a data warning (truncated, converted, rejected row) does not fail the table"},
            "schema_mismatch": {"enum": ["error", "create_missing", "recreate", "common_columns"],
                                "description": "what a target table that differs from the dump's does"},
            "parallel": {"type": ["integer", "string"], "minimum": 1, "maximum": 16, "description": "connections (default 2)"},
            "binlog": {"type": ["boolean", "string"], "description": "false: SET sql_log_bin=0 (replicas will not get the rows)"},
            "core_tables": dict(_LIST, description="partial success: the step fails only if one of these fails (default: all)"),
            "batch_bytes": {"type": ["integer", "string"], "minimum": 4096, "description": "rows per transaction, in bytes of SQL (default 4 MiB, at most half of max_allowed_packet)"},
        },
    }

    def __init__(self, args: Any, ctx: Any):
        super().__init__(args, ctx)
        self._dump_source = DumpSource(args, ctx)
        self._resumed = False
        self._sid_cached: str | None = None

    # -- inputs ---------------------------------------------------------------------------
    def _flag(self, key: str, default: bool) -> bool:
        return flag(self.args, key, default)

    @property
    def _sequences(self) -> set[str]:  # type: ignore[override]
        return self._dump_source.sequences

    def _source(self, batch_bytes: int | None = None, split_bytes: int | None = None) -> Any:
        return self._dump_source.load(batch_bytes or int(self.args.get("batch_bytes") or BATCH_BYTES), split_bytes)

    @property
    def _schema(self) -> str:
        s = self.args.get("schema")
        if s:
            return str(s)
        from engine.mysql.dump import DumpReader

        dbs = list(DumpReader(self._dump_source.fetch().path).header.databases or [])
        if len(dbs) != 1:
            raise ActionError("the dump names no single schema: say which one to restore into", hint="add schema: to the step")
        return str(dbs[0])

    @property
    def _sid(self) -> str:
        """This step's progress key, with the generation of its tables (a snapshot undo that
        swapped them back since bumps it: the step loads again)."""
        if self._sid_cached is None:
            from engine.mysql.generations import signature

            tables = self.args.get("tables")
            generation = signature(self.ctx.sql(), self._schema, list(tables) if tables else None,
                                   exclude=self.args.get("exclude_tables") or ())
            self._sid_cached = prog.step_id(self.ctx.run_id, self.ctx.step_key, self.ctx.host.name, self._schema, generation)
        return self._sid_cached

    def _options(self, scan: Any) -> RestoreOptions:
        return RestoreOptions(schema_mismatch=str(self.args.get("schema_mismatch", "error")),
                              on_conflict=str(self.args.get("on_conflict", "error")), truncate=self._flag("truncate", False),
                              allow_without_snapshot=self._flag("allow_without_snapshot", False),
                              allow_duplicates=self._flag("allow_duplicates", False),
                              allow_warnings=self._flag("allow_warnings", False), charset=_charset(scan))

    def _facts(self, prior: dict[str, Any] | None) -> Facts:
        """Everything the plan decides from, read-only."""
        scan = self._source()
        sql = self.ctx.sql()
        schema, sid = self._schema, self._sid
        index = self._dump_source.index
        assert index is not None
        options = self._options(scan)
        target = describe_schema(sql, schema)
        done = prog.done(sql, sid)
        was_empty = facts.prior_flag(prior, "target_was_empty")
        snap = facts.snapshotted(sql, self.ctx.run_id, schema) if target else set()
        account, can_set_definer = facts.account(sql)
        if self.ctx.check_mode and (options.truncate or options.schema_mismatch == "recreate"):
            snap |= set(self._dump_source.names)  # an earlier snapshot step only simulated its copy
        return Facts(
            scan=scan, defs=self._dump_source.defs, names=self._dump_source.names, schema=schema, options=options, target=target,
            target_fks=foreign_keys_touching(sql, schema),
            target_was_empty=was_empty if was_empty is not None else not target,
            with_rows=facts.with_rows(sql, schema, self._dump_source.names, target), snapshotted=snap,
            prepared_empty={k[0] for k, d in done.items() if k[1] == prog.PREPARED and d.rows},
            created_by_step=prog.created_tables(sql, sid),
            partial=facts.partial_loads(sql, schema, sid, index, target, done) if prior is not None else {},
            live_triggers=facts.live_triggers(sql, schema, self._dump_source.names, sid), dump_triggers=facts.dump_triggers(index),
            alter_tables=facts.alter_tables(index), default_collations=default_collations(sql), account=account,
            can_set_definer=can_set_definer, check_mode=self.ctx.check_mode)

    def _plan(self, prior: dict[str, Any] | None = None) -> tuple[Plan, Facts]:
        f = self._facts(prior)
        return make_plan(f), f

    def close(self) -> None:
        self._dump_source.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass

    # -- contract ---------------------------------------------------------------------------
    def probe(self) -> Probe:
        """Done when this step's run row says it finished and every batch it counted is recorded
        (read-only; the dump is not read when the step names its schema)."""
        sql = self.ctx.sql()
        sid = self._sid
        row = prog.run_row(sql, sid)
        what = f"restore {self.args['file']} into {self._schema}"
        if row is None:
            return Probe(False, {}, what)
        done = prog.done(sql, sid)
        n = sum(1 for k in done if k[1] >= 0)
        if row.get("finished_at") is not None and row.get("result") and row.get("batches_total") is not None \
                and n >= int(row["batches_total"]):
            return Probe(True, dict(row["result"]), "every batch is recorded in the progress table")
        return Probe(False, {"batches_done": n}, f"continue to {what} ({n} batch(es) already committed)")

    def check(self) -> StepResult:
        """Check mode: the plan, read-only."""
        try:
            prior = prog.run_row(self.ctx.sql(), self._sid)
            plan, _ = self._plan(prior)
        except ActionError as exc:
            return StepResult(Status.FAILED, msg=f"check mode: {exc.message}", data={})
        probe = self.probe()
        head = "already restored" if probe.done else "would restore"
        lines = plan.lines()
        data = {"plan": [{"table": t.name, "rows": t.rows, "bytes": t.bytes, "strategy": t.strategy(),
                          "mismatch": [str(d) for d in t.findings]} for t in plan.tables], "notes": plan.notes + plan.warnings,
                "binlog_start": self._binlog_start()}
        return StepResult(Status.OK if probe.done else Status.CHANGED,
                          msg=f"check mode: {head} {len(plan.tables)} table(s) into {self._schema}, in this order:\n" + "\n".join(lines),
                          data=data, diff="\n".join(lines))

    def apply(self) -> StepResult:
        try:
            return self._apply(time.monotonic())
        finally:
            self.close()

    def _apply(self, start: float) -> StepResult:
        ctx, sql = self.ctx, self.ctx.sql()
        schema, sid = self._schema, self._sid
        prior = prog.run_row(sql, sid)  # a resume cuts the dump exactly as the first attempt did
        self._resumed = prior is not None
        if prior is not None:
            opts = dict(prior["options"])
        else:
            max_packet = int(sql.query("SELECT @@max_allowed_packet AS p").rows[0]["p"])
            opts = {"batch_bytes": int(self.args.get("batch_bytes") or max(1 << 20, min(BATCH_BYTES, max_packet // 2))),
                    "split_bytes": max(4096, min(max_packet // 2, 16 << 20))}
        scan = self._source(int(opts["batch_bytes"]), int(opts["split_bytes"]))
        if prior is not None and (prior["dump_sha256"] != scan.sha256 or int(prior["dump_size"]) != int(scan.total_bytes)):
            raise ActionError(f"this restore step began with another dump ({prior['dump_path']}, {prior['dump_size']} bytes, "
                              f"sha256 {prior['dump_sha256'][:12]}…); {self.args['file']} is {scan.total_bytes} bytes, sha256 "
                              f"{scan.sha256[:12]}…; nothing was written",
                              hint="resume with the same file, or start a new run to restore a different dump")
        self._phases = {"check": time.monotonic() - start}
        plan, f = self._plan(prior)  # refusals raise here: nothing written yet
        opts.setdefault("target_was_empty", f.target_was_empty)
        check_identity(ctx, f"restore into {schema}")
        self._create_schema(sql, schema)
        prog.begin(sql, sid, run_id=ctx.run_id, step_key=ctx.step_key, host=ctx.host.name, schema=schema,
                   path=str(self.args["file"]), size=int(scan.total_bytes), sha256=str(scan.sha256), options=opts)
        prog.unfinish(sql, sid)
        index = self._dump_source.index
        assert index is not None
        settings = session_settings(sql)

        def make(local: bool = True) -> MysqlSession:
            # journaled like every connection of the run: a resume kills a batch a dead run left running
            return MysqlSession(dataclasses.replace(settings, database=schema), tunnel=getattr(sql, "_tunnel", None),
                                local_infile=local, on_connect=ctx.conns.sql_connected)

        control = make(False)
        warnings = list(plan.warnings)
        shared: Shared | None = None
        try:
            for h in index.header:
                control.query(h)
            if not self._flag("binlog", True):
                control.query("SET SESSION sql_log_bin = 0")
            done = prog.done(sql, sid)
            self._prepare(control, plan, index, done, sid)
            done = prog.done(sql, sid)
            t = time.monotonic()
            self._phases["prepare"] = t - start - self._phases["check"]  # plan, DDL, truncates
            shared = self._load(plan, index, done, sid, make, control)
            self._phases["load"] = time.monotonic() - t
            t = time.monotonic()
            orphans = self._orphans(control, plan)
            warnings.extend(self._post(control, plan, index, shared, prog.done(sql, sid)))
            self._phases["post"] = time.monotonic() - t
        except Fatal as exc:
            settled = self._settle_safely(control, make, sid)
            return self._fatal(exc, start, settled)
        except BaseException:
            self._settle_safely(control, make, sid)
            raise
        else:
            warnings.extend(self._settle_safely(control, make, sid))
        finally:
            control.close()
        return self._finish(sql, plan, shared, start, orphans, warnings, sid, index)

    def _create_schema(self, sql: Any, schema: str) -> None:
        """The target schema when missing (probed first: an account without CREATE restores into
        an existing one), and the progress tables."""
        try:
            if not sql.query("SELECT 1 AS x FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", [schema]).rows:
                sql.query(f"CREATE DATABASE IF NOT EXISTS {quote_ident(schema)}")
            prog.ensure(sql)
        except SqlError as exc:
            if exc.errno in (1044, 1045, 1142, 1227):
                user = getattr(session_settings(sql), "user", None) or "the host's mysql_user"
                raise ActionError(f"{exc.render()} — {user} needs CREATE on {schema} (when missing) and CREATE, INSERT, "
                                  f"UPDATE, DELETE, SELECT on {prog.SCHEMA}.* (the progress table); nothing was written",
                                  hint="GRANT them, or restore with an administrative account") from None
            raise

    # -- phases ----------------------------------------------------------------------------
    def _load(self, plan: Plan, index: DumpIndex, done: dict[tuple[str, int, int], prog.Done], sid: str,
              make: Any, control: MysqlSession) -> Shared:
        report = LiveProgress(self.ctx.progress, self._schema,
                              {t.name: sum(b.length for b in index.tables[t.name].batches) for t in plan.tables})
        ids = dict(run_id=self.ctx.run_id, step_key=self.ctx.step_key, host=self.ctx.host.name)
        loader = Loader(plan=plan, index=index, dump_path=self._dump_source.path, sid=sid, done=done, make_session=make,
                        control=control, parallel=int(self.args.get("parallel", 2)), binlog=self._flag("binlog", True),
                        ids=ids, on_progress=report, allow_warnings=self._flag("allow_warnings", False))
        loader.fault.noticed = self.ctx.interrupted
        self._loader = loader
        shared = loader.run()
        report(shared)
        return shared

    # -- results ------------------------------------------------------------------------------
    def _finish(self, sql: Any, plan: Plan, shared: Shared, start: float, orphans: list[OrphanCount],
                warnings: list[str], sid: str, index: DumpIndex) -> StepResult:
        names = [t.name for t in plan.tables]
        tables = table_results(shared, names)
        seconds = time.monotonic() - start
        rows = sum(t.rows for t in tables.values())
        failed = sorted(shared.failed)
        for o in orphans:
            if o.orphans:
                failed.append(o.table) if o.table not in failed else None
                tables[o.table].status = "failed"
                tables[o.table].error = f"{o.orphans} row(s) without a parent for {o.constraint}"
        for n, st in shared.stats.items():
            if st.warnings:
                warnings.append(f"table {n}: {st.warnings} data warning(s) allowed (allow_warnings), e.g. "
                                + "; ".join(st.warning_samples))
        core = list(self.args.get("core_tables") or names)
        core_ok = not any(t in failed for t in core)
        result = RestoreResult(tables=tables, rows=rows, bytes=sum(t.bytes for t in tables.values()), seconds=round(seconds, 3),
                               rows_per_s=round(rows / seconds, 1) if seconds > 0 else None, failed_tables=failed,
                               core_ok=core_ok, partial=bool(failed) and core_ok, schema=self._schema, load_order=names,
                               orphans=orphans, phases={k: round(v, 3) for k, v in getattr(self, "_phases", {}).items()},
                               warnings=warnings, binlog_start=self._binlog_start())
        data = result.registered()
        from engine.actions.restore.snapshot_delta import left_in_snapshot

        left = left_in_snapshot(sql, self.ctx.run_id, self._schema, [t for t in plan.tables if t.name not in failed])
        if left is not None:  # rows written after the backup, now only in the snapshot (the report says how many)
            data["only_in_snapshot"] = left
        if failed:
            reasons = []
            for n in failed:
                st = shared.stats[n]
                if st.error is not None:
                    reasons.append(explain(st.error, self.ctx, sql, n, st.error_batch))
                else:
                    reasons.append(f"table {n}: {tables[n].error}")
            if not core_ok:
                return StepResult(Status.FAILED, msg="restore failed: " + reasons[0], data=data,
                                  evidence="\n".join(reasons), warnings=warnings)
            warnings = warnings + [f"partial restore: {r}" for r in reasons]
        # a partial success is this step's outcome: the probe counts what it committed
        committed = sum(1 for k in prog.done(sql, sid) if k[1] >= 0)
        prog.finish(sql, sid, committed if failed else sum(len(index.tables[n].batches) for n in names), data)
        msg = (f"{len(names) - len(failed)} table(s), {rows:,} rows in {seconds:.1f}s ({result.rows_per_s or 0:,.0f} rows/s)"
               + (f"; failed (not core): {', '.join(failed)}" if failed else ""))
        return StepResult(Status.CHANGED, msg=msg, data=data, warnings=warnings)

    def _binlog_start(self) -> dict[str, Any] | None:
        """The dump's binlog coordinates (``{file, pos, gtid}``), where a point-in-time replay starts."""
        from engine.mysql.dump.coordinates import coordinates_of_file

        found = coordinates_of_file(self._dump_source.fetch().path)
        return found.position.to_dict() if found is not None else None

    def _fatal(self, exc: Fatal, start: float, settled: list[str]) -> StepResult:
        sh = getattr(self, "_loader", None)
        data: dict[str, Any] = {"seconds": round(time.monotonic() - start, 3), "core_ok": False, "partial": False}
        if sh is not None:
            names = list(sh.shared.stats)
            data["tables"] = {n: asdict(t) for n, t in table_results(sh.shared, names).items()}
            data["rows"] = sum(t["rows"] for t in data["tables"].values())
            data["failed_tables"] = sorted(sh.shared.failed)
        try:
            text = explain(exc.err, self.ctx, self.ctx.sql(), exc.table, exc.batch)
        except RunbookError:
            text = exc.err.render()
        return StepResult(Status.FAILED, msg="restore stopped: " + text, data=data, warnings=settled,
                          evidence=(getattr(exc.err, "sql", None) or "")[:500])


def _charset(scan: Any) -> str:
    cs = str(getattr(scan.header, "charset", "") or "utf8mb4").lower()
    return cs if re.fullmatch(r"[a-z0-9_]+", cs) else "utf8mb4"
