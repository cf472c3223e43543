"""``verify``: is the data whole? Foreign-key orphans, required columns, row counts,
chunk checksums against another copy, business rules and reusable suites — read-only."""

from __future__ import annotations

import json
import os
import time
from collections import ChainMap
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from engine.actions.base import Action, register
from engine.actions.verify import params
from engine.actions.verify.suites import Suite, find_suite, load_suite, suite_problems
from engine.errors import ActionError, ConnectError, InputError, SqlError, ValidationFailed
from engine.model import Status, StepResult
from engine.secrets import MASKER
from engine.templating.render import ENGINE, has_template

# The planner, its checks and the sessions are imported when the step runs: validation imports
# this module for its static checks only (params, suites: runbook validate's start-up).
if TYPE_CHECKING:
    from engine.actions.verify.model import Check, Sessions
    from engine.actions.verify.plan import Planner
    from engine.mysql.limits import BoundedSql

DEFAULT_PARALLEL = 2


def render_args(args: Any, variables: Any) -> Any:
    """Everything rendered as usual except the rules' SQL, whose ``{{ }}`` become bound values
    when the rule runs (as in an ``sql`` step)."""
    if not isinstance(args, dict):
        return ENGINE.render(args, variables)
    own = ENGINE.render(args.get("vars"), variables)
    if isinstance(own, dict):  # the step's vars: are seen by its other arguments too
        variables = dict(ChainMap(own, dict(variables)))
    out = {k: (own if k == "vars" else ENGINE.render(v, variables)) for k, v in args.items() if k != "rules"}
    rules = args.get("rules")
    if isinstance(rules, list):
        out["rules"] = [{k: (v if k == "sql" else ENGINE.render(v, variables)) for k, v in r.items()}
                        if isinstance(r, dict) else r for r in rules]
    elif rules is not None:
        out["rules"] = ENGINE.render(rules, variables)
    return out


@register
class Verify(Action):
    """Prove a restore is consistent before writes reopen. Read-only: runs in check mode.

    ```yaml
    - name: Consistency
      verify:
        schema: shop
        foreign_keys: true                 # orphans of every FK (composite, self-references)
        required: {users: [email]}         # or auto: NOT NULL text columns holding '', zero dates
        row_counts: {from: "{{ r }}"}      # a registered restore; or {users: 1000}; {from_snapshot: true};
                                           # or {from_dump: /backups/shop.sql.gz}: the backup's rows, nothing written
        checksums: {against_host: replica1}   # or against_schema: shop_copy | against_snapshot: true
        rules:
          - {name: no negative totals, sql: "SELECT COUNT(*) FROM orders WHERE total < 0", severity: fail}
        suite: checks/business-example.yml
        record_to: ops.consistency_check_results
      timeout: 5m                          # each query's limit, enforced by the server
      register: v
    ```

    Registers ``checks`` (``{name, kind, table, result, count, expected, sample, severity,
    detail, rows, seconds}``), ``summary`` (``{pass, fail, warn}``), ``rows_checked``,
    ``seconds``, ``rows_per_s`` and ``recorded``. The step fails when a check of severity
    ``fail`` fails.
    """

    name = "verify"
    mutating = False
    idempotent = True
    renders_own_args = True
    params_schema: ClassVar[dict[str, Any]] = params.SCHEMA

    @classmethod
    def static_problems(cls, args: Any) -> list[tuple[str, str]]:
        return params.static_problems(args)

    @classmethod
    def local_names(cls, args: Any) -> set[str]:
        v = args.get("vars") if isinstance(args, dict) else None
        return {str(k) for k in v} if isinstance(v, dict) else set()

    @classmethod
    def var_reads(cls, args: Any, base_dir: str, render: Callable[[Any], Any] | None = None
                  ) -> list[tuple[Any, frozenset[str]]] | None:
        """The step's rules and its suites' rules see the step's ``vars:`` (and a suite's own)
        before the run's variables; the rest of the arguments see the run's. A templated suite
        path is rendered with what is known before the run, if it can be."""
        if not isinstance(args, dict):
            return [(args, frozenset())]
        step_vars = frozenset(cls.local_names(args))
        out: list[tuple[Any, frozenset[str]]] = [({k: v for k, v in args.items() if k != "rules"}, frozenset()),
                                                 (args.get("rules"), step_vars)]
        names = args.get("suite")
        if has_template(names):  # a path (or list of paths) given by a template
            try:
                names = render(names) if render is not None else None
            except Exception:  # it needs what only the run knows (a registered result)
                names = None
            if names is None:
                return None
        for name in [names] if isinstance(names, str) else names if isinstance(names, list) else []:
            if not isinstance(name, str) or has_template(name):
                return None
            try:
                suite = load_suite(name, base_dir)
            except (InputError, ValidationFailed):
                continue  # reported by file_problems
            out.append((list(suite.vars.values()), step_vars))
            out.append((suite.rules, step_vars | frozenset(str(k) for k in suite.vars)))
        return out

    @classmethod
    def file_problems(cls, args: Any, base_dir: str) -> list[Any]:
        """Each suite named without a template exists and is valid (its problems at its own lines)."""
        if not isinstance(args, dict):
            return []
        names = args.get("suite")
        out: list[Any] = []
        for i, name in enumerate([names] if isinstance(names, str) else names if isinstance(names, list) else []):
            if not isinstance(name, str) or has_template(name):
                continue
            where = "suite" if isinstance(names, str) else f"suite.{i}"
            try:
                out += suite_problems(find_suite(name, base_dir))
            except InputError as exc:
                out.append((where, exc.message + (f" — {exc.hint}" if exc.hint else "")))
        return out

    # -- the step --------------------------------------------------------------------------
    def _base_dir(self) -> str | None:
        src = getattr(self.ctx.source, "file", None)
        return os.path.dirname(os.path.abspath(src)) if src else None

    def apply(self) -> StepResult:
        from engine.actions.verify.plan import NotYet

        try:
            return self._verify()
        except NotYet as exc:
            if not self.ctx.check_mode:
                raise
            return StepResult(Status.SKIPPED, msg=f"check mode: cannot tell before the earlier steps run ({exc.message})")

    def _verify(self) -> StepResult:
        from engine.actions.guard import server_flavor, sibling_session
        from engine.actions.verify.model import Sessions
        from engine.actions.verify.plan import Planner, merged_required, missing_table
        from engine.actions.verify.pool import run_tasks
        from engine.mysql.introspect import base_tables, schema_exists, table_sizes
        from engine.mysql.limits import BoundedSql
        from engine.mysql.sqlutil import quote_ident

        ctx = self.ctx
        start = time.perf_counter()
        args = render_args(self.args, ctx.vars)
        bad = ctx.args_problems(type(self), args) if ctx.args_problems is not None else []
        if bad:
            raise ActionError("after rendering, " + "; ".join(bad), hint="check the variables these arguments use")
        suites = [load_suite(s, self._base_dir()) for s in
                  ([args["suite"]] if isinstance(args.get("suite"), str) else args.get("suite") or [])]
        schema = str(args["schema"])
        sql = ctx.sql()
        if not schema_exists(sql, schema):
            raise ActionError(f"schema {quote_ident(schema)} does not exist", hint="check schema: (was it restored?)")
        flavor, _ = server_flavor(sql)
        all_tables = base_tables(sql, schema)
        tables = list(args.get("tables") or all_tables)
        planner = Planner(sql, schema, [t for t in tables if t in all_tables], table_sizes(sql, schema), ctx.run_id,
                          ctx.check_mode)
        planner.plan.findings += [missing_table(t, "row_count", "listed in tables:") for t in tables if t not in all_tables]

        if args.get("foreign_keys") is True or any(s.foreign_keys for s in suites):
            planner.foreign_keys()
        auto, explicit = merged_required(args.get("required"), suites)
        if auto:
            planner.required("auto", "warn")
        if explicit:
            planner.required(explicit, "fail")
        rc = args.get("row_counts")
        if isinstance(rc, dict):
            dump_counts = None
            if rc.get("from_dump"):
                shell = None if rc.get("file_on", "host") == "control" else ctx.shell()
                from engine.actions.verify.fromdump import dump_row_counts  # the dump parser: imported when used

                dump_counts = dump_row_counts(str(rc["from_dump"]), schema, shell=shell)
            planner.row_counts(rc, dump_counts, listed=bool(args.get("tables")))
        checksums = args.get("checksums")
        other_host = checksums.get("against_host") if isinstance(checksums, dict) else None
        if isinstance(checksums, dict):
            # A session of our own on the other host: its shared one may be busy with that
            # host's own steps in another thread (PyMySQL sessions are not thread-safe).
            peer = sibling_session(ctx.peer_sql(str(other_host))) if other_host else None
            try:
                planner.checksums(checksums, peer)
            except ConnectError as exc:
                # The replica is down, not this host: fail the step, do not mark it unreachable.
                raise ActionError(f"cannot compare with {other_host}: {exc.render()}",
                                  hint="is the other host up? check its connection settings in the inventory") from None
            finally:
                if peer is not None:
                    peer.close()
        self._plan_rules(planner, args, suites)

        plan = planner.plan
        timeout = ctx.timeout
        other_flavor: dict[str, str] = {}

        def open_sessions(i: int) -> Sessions:
            main = BoundedSql(sibling_session(sql, database=schema), flavor, timeout)

            def other() -> BoundedSql:
                peer = sibling_session(ctx.peer_sql(str(plan.other_host)), database=plan.other_schema)
                if "f" not in other_flavor:
                    other_flavor["f"] = server_flavor(peer)[0]
                return BoundedSql(peer, other_flavor["f"], timeout)

            return Sessions(main, other if plan.other_host else None)

        total_checks = len(plan.checks())
        run_tasks(plan.tasks, open_sessions, int(args.get("parallel", DEFAULT_PARALLEL)),
                  lambda done, total: ctx.progress(done, total_checks, f"verify {schema}"), timeout)
        checks = plan.checks()
        seconds = time.perf_counter() - start
        return self._result(checks, args, schema, seconds, suites)

    def _plan_rules(self, planner: Planner, args: dict[str, Any], suites: list[Suite]) -> None:
        step_vars = dict(args.get("vars") or {})
        if args.get("rules"):
            planner.rules(list(args["rules"]), dict(ChainMap(step_vars, dict(self.ctx.vars))))
        for suite in suites:
            if suite.rules:
                rendered = {k: ENGINE.render(v, dict(ChainMap(step_vars, self.ctx.vars))) for k, v in suite.vars.items()}
                planner.rules(suite.rules, dict(ChainMap(step_vars, rendered, dict(self.ctx.vars))))

    def _result(self, checks: list[Check], args: dict[str, Any], schema: str, seconds: float,
                suites: list[Suite]) -> StepResult:
        from engine.actions.verify.record import record

        ctx = self.ctx
        summary = {"pass": 0, "fail": 0, "warn": 0}
        for c in checks:
            summary[c.result] += 1
        rows = sum(c.rows for c in checks)
        data: dict[str, Any] = {
            "schema": schema,
            "checks": [c.registered() for c in checks],
            "summary": summary,
            "rows_checked": rows,
            "seconds": round(seconds, 3),
            "rows_per_s": round(rows / seconds) if seconds > 0 else None,
            "suites": [s.path for s in suites],
            "recorded": None,
        }
        warnings: list[str] = []
        failing = [c for c in checks if c.result == "fail"]
        note = ""
        target = args.get("record_to")
        if target:
            where = params.split_qualified(str(target))
            assert where is not None  # validated
            if ctx.check_mode:
                note = f"; check mode: verdicts not recorded to {target} (record_to writes)"
            else:
                try:
                    data["recorded"] = record(ctx.sql(), where[0], where[1], checks, run_id=ctx.run_id,
                                              host=ctx.host.name, step=ctx.step_key)
                except (SqlError, ActionError) as exc:
                    # The data was verified; only the bookkeeping failed (e.g. the server is
                    # fenced read-only). Say so loudly, but do not fail the SOP over it.
                    warnings.append(f"record_to {target}: verdicts not recorded: {exc.render()}")
        # rows read by the checks (rules count violations: their rows are not known)
        volume = f"{rows:,} rows in {seconds:.1f}s, {data['rows_per_s']:,} rows/s" if rows and data["rows_per_s"] else f"{seconds:.1f}s"
        msg = (f"{len(checks)} check(s): {summary['pass']} pass, {summary['warn']} warn, {summary['fail']} fail"
               f" ({volume})")
        if data["recorded"]:
            msg += f"; recorded to {data['recorded']['table']}"
        msg += note
        if failing:
            names = ", ".join(c.name for c in failing[:20]) + (f" and {len(failing) - 20} more" if len(failing) > 20 else "")
            evidence = "\n".join(f"{c.name}: {c.detail}" + (f"\n  sample: {json.dumps(c.sample, default=str)[:500]}" if c.sample else "")
                                 for c in failing[:50])
            return StepResult(Status.FAILED, msg=f"{msg} — failing: {names}", data=data, warnings=warnings,
                              evidence=MASKER.text(evidence))
        warned = [c for c in checks if c.result == "warn"]
        warnings += [f"verify: {c.name}: {c.detail}" for c in warned[:10]]
        return StepResult(Status.OK, msg=msg, data=data, warnings=warnings)
