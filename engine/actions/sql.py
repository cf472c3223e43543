"""``sql``: statements over the host's MySQL session, with every ``{{ }}`` bound as a value."""

from __future__ import annotations

import re
import time
from typing import Any

from engine.actions._util import plain
from engine.actions.base import Action, register
from engine.errors import DeadlinePassed, OutcomeUnknown, RunbookError, SqlError, TemplateError
from engine.model import SqlResult, Status, StepResult
from engine.mysql.diagnosis import diagnose
from engine.secrets import MASKER
from engine.mysql.sqlutil import first_keyword, is_idempotent, is_read_only, quote_ident, split_statements
from engine.templating.render import ENGINE


def rendered_statements(text: str, variables: dict[str, Any]) -> list[tuple[str, list[Any]]]:
    """Split SQL text into statements and render each: values bound, identifiers quoted."""
    return [ENGINE.render_sql(stmt, variables) for stmt in split_statements(text)]


def display(sql: str, params: list[Any]) -> str:
    """The statement as a person reads it, values inlined for display only (masked)."""
    if not params:
        return MASKER.text(sql)
    shown = sql.replace("%%", "\x00")
    for p in params:
        shown = shown.replace("%s", repr(MASKER.data(p)) if not isinstance(p, (int, float)) else str(p), 1)
    return shown.replace("\x00", "%")


@register
class Sql(Action):
    """Run SQL statements. ``{{ expr }}`` is a bound value; ``{{ expr | ident }}`` a quoted name.

    ```yaml
    - name: Orders of one user
      sql: SELECT id, total FROM {{ table | ident }} WHERE user_id = {{ user_id }}
      register: orders
    - name: Archive
      sql: {query: "INSERT INTO archive SELECT * FROM orders WHERE created < {{ cutoff }}", database: shop}
    ```
    """

    name = "sql"
    mutating = True
    idempotent = False
    free_form = True
    renders_own_args = True
    params_schema = {
        "description": "SQL text (statements separated by ;), or {query, database}",
        "anyOf": [
            {"type": "string", "minLength": 1},
            {
                "type": "object",
                "properties": {
                    "query": {"type": "string", "minLength": 1, "description": "one or more statements separated by ;"},
                    "database": {"type": "string", "description": "default database for this step"},
                },
                "required": ["query"],
                "additionalProperties": False,
            },
        ],
    }

    @classmethod
    def static_problems(cls, args: Any) -> list[tuple[str, str]]:
        text = args if isinstance(args, str) else args.get("query", "") if isinstance(args, dict) else ""
        if isinstance(text, str) and not split_statements(text):
            return [("", "the SQL text holds no statement")]
        return []

    def _text_db(self) -> tuple[str, str | None]:
        a: Any = self.args
        if isinstance(a, str):
            return a, None
        db = a.get("database")
        return str(a["query"]), ENGINE.render(db, self.ctx.vars) if db else None

    def statements(self) -> list[tuple[str, list[Any]]]:
        text, _ = self._text_db()
        stmts = rendered_statements(text, self.ctx.vars)
        self._rendered: list[tuple[str, list[Any]]] | None = stmts  # what the identity guard judged is what apply() runs
        return stmts

    @classmethod
    def view_changes_nothing(cls, view: Any) -> bool:
        # the digest's view of an sql step: its rendered statements (engine.run.stepargs.sql_view)
        return (isinstance(view, list) and bool(view)
                and all(isinstance(s, tuple) and isinstance(s[0], str) and is_read_only(s[0]) for s in view))

    def read_only(self) -> bool:
        try:
            return all(is_read_only(sql) for sql, _ in self.statements())
        except TemplateError:
            return False

    def changes_nothing(self) -> bool:
        return self.read_only()

    def idempotent_call(self) -> bool:
        # The statement's form decides, not its values: the unrendered text is enough.
        from engine.mysql.sqlutil import is_idempotent

        a: Any = self.args
        text = a if isinstance(a, str) else str(a.get("query", ""))
        return all(is_idempotent(s) for s in split_statements(text))

    def check(self) -> StepResult:
        stmts = self.statements()
        if all(is_read_only(sql) for sql, _ in stmts):
            return self.apply()  # read-only SQL is safe in check mode
        shown = "; ".join(display(s, p) for s, p in stmts)
        return StepResult(Status.SKIPPED, msg=f"check mode: would run: {shown[:300]}", diff=shown)

    def apply(self) -> StepResult:
        text, database = self._text_db()
        stmts = getattr(self, "_rendered", None) or rendered_statements(text, self.ctx.vars)
        self._rendered = None  # a retry renders again
        self._database = database
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._run_all(stmts, database)
            except _Replay as replay:
                # A deadlock (or lock wait) inside a transaction: the server rolled the
                # transaction back (and _run_all rolled back what was left of it). Only a step
                # declared idempotent may run again, from its first statement.
                if attempt >= 3:
                    return replay.result
                self.ctx.warn(f"{self.ctx.host.name}: {replay.result.msg} — the step is idempotent: running it again "
                              f"from its first statement ({attempt}/2)")
                time.sleep(0.2 * attempt)

    def _run_all(self, stmts: list[tuple[str, list[Any]]], database: str | None) -> StepResult:
        session = self.ctx.sql()
        if database:
            session.query(f"USE {quote_ident(database)}", timeout=self.ctx.remaining())
        last_rows: SqlResult | None = None
        changed = False
        affected = 0
        counts: list[int] = []
        committed = pending = 0  # mutating statements autocommitted / inside the open transaction
        for i, (sql, params) in enumerate(stmts):
            try:
                res = self._query(sql, params)
            except (SqlError, DeadlinePassed, OutcomeUnknown) as exc:
                return self._failed(stmts, i, exc, committed, pending)
            counts.append(res.rowcount)
            if _mutating(sql):
                pending += 1
            if not _in_transaction(session):
                committed, pending = committed + pending, 0
            if res.returns_rows:
                last_rows = res
            elif not is_read_only(sql):
                affected += res.rowcount
                # DDL and SET report 0 rows but change the server; DML with 0 rows changes nothing.
                if res.rowcount > 0 or not _is_dml(sql):
                    changed = True
        rows = [plain(r) for r in last_rows.rows] if last_rows else []
        data = {
            "rows": rows,
            "rowcount": last_rows.rowcount if last_rows else affected,
            "columns": list(last_rows.columns) if last_rows else [],
            "statements": len(stmts),
            "statements_done": len(stmts),
            "rowcounts": counts,
        }
        return StepResult(Status.CHANGED if changed else Status.OK, data=data)

    def _failed(self, stmts: list[tuple[str, list[Any]]], i: int, exc: RunbookError, committed: int, pending: int) -> StepResult:
        """Statement ``i`` failed. Say which (truncated), how many completed, and whether the
        step's effect is known: it is not when the failing statement may have run (its reply
        was lost, or it was stopped at the timeout) or when earlier statements committed a
        change (the step half happened: resume must probe or ask, not run it again)."""
        sql, params = stmts[i]
        session = self.ctx.sql()
        rolled_back = ""
        if pending and not isinstance(exc, OutcomeUnknown) and _in_transaction(session):
            try:  # the open transaction must not hold its locks until the next step
                session.query("ROLLBACK")
                rolled_back = f"; the open transaction ({pending} statement(s)) was rolled back"
            except (SqlError, OutcomeUnknown):
                pass
        unknown = isinstance(exc, OutcomeUnknown) and _mutating(sql)
        if isinstance(exc, OutcomeUnknown) and not unknown:
            self.ctx.conns.reset_sql()
        shown = display(sql, params)
        shown = shown if len(shown) <= _SHOWN else shown[:_SHOWN - 1] + "…"
        where = f"statement {i + 1} of {len(stmts)}" if len(stmts) > 1 else "the statement"
        done = f"{i} of {len(stmts)} statements completed" + (f", {committed} change(s) committed" if committed else "")
        data: dict[str, Any] = {"rows": [], "rowcount": 0, "errno": getattr(exc, "errno", None), "sqlstate": getattr(exc, "sqlstate", None),
                "statement": shown, "statements": len(stmts), "statements_done": i, "failed_statement": i + 1}
        if len(stmts) > 1:
            msg = f"{where} failed ({done}{rolled_back}): {exc.render()}"
        else:
            msg = exc.render()
        result = StepResult(Status.FAILED, msg=msg, data=data, evidence=f"SQL ({where}): {shown}")
        if unknown or committed:
            result.uncertain = True
            if not unknown:
                result.msg += " — the earlier statements took effect: the step is in doubt"
        diag = diagnose(getattr(exc, "errno", None))
        if (isinstance(exc, SqlError) and not isinstance(exc, OutcomeUnknown) and diag is not None and diag.retryable
                and not diag.lost_connection and self.ctx.idempotent and not committed):
            raise _Replay(result)
        return result

    def _query(self, sql: str, params: list[Any]) -> SqlResult:
        """One statement, retried where that is safe. A deadlock or lock wait timeout of a
        single statement in autocommit rolled back that statement alone: running it again is
        what was meant. Inside a transaction it never is (a deadlock rolled back the whole
        transaction: replaying one statement would half-apply it). After a lost connection the
        statement may or may not have committed: only an idempotent one is re-run (mydumper
        PR #1162 lost rows by retrying blindly)."""
        attempt = 0
        while True:
            attempt += 1
            session = self.ctx.sql()
            in_tx = _in_transaction(session)
            try:
                return session.query(sql, params, timeout=self.ctx.remaining())
            except SqlError as exc:
                diag = diagnose(exc.errno)
                if diag is None or not diag.retryable or attempt >= 3 or in_tx:
                    raise
                if diag.lost_connection or isinstance(exc, OutcomeUnknown):
                    if not is_idempotent(sql):
                        raise
                    self.ctx.conns.reset_sql()
                    database = getattr(self, "_database", None)
                    if database:
                        self.ctx.sql().query(f"USE {quote_ident(database)}")
                self.ctx.warn(f"{self.ctx.host.name}: {exc.render()} — retrying ({attempt}/2)")
                time.sleep(0.2 * attempt)


_SHOWN = 2000  # characters of a failing statement shown and journaled


class _Replay(Exception):
    """The whole (idempotent) step may run again; carries the result if it may not."""

    def __init__(self, result: StepResult):
        super().__init__(result.msg)
        self.result = result


def _in_transaction(session: Any) -> bool:
    return bool(getattr(session, "in_transaction", False))


def _mutating(sql: str) -> bool:
    """A statement whose effect outlives the session (not SELECT/SHOW, not session SET, USE,
    or transaction control)."""
    if is_read_only(sql):
        return False
    kw = first_keyword(sql)
    if kw in ("use", "begin", "start", "commit", "rollback", "savepoint", "release", "do"):
        return False
    if kw == "set":
        return bool(re.match(r"\s*set\s+(global|persist|@@global)", sql, re.I))
    return True


def _is_dml(sql: str) -> bool:
    return first_keyword(sql) in ("insert", "update", "delete", "replace")
