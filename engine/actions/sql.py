"""``sql``: statements over the host's MySQL session, with every ``{{ }}`` bound as a value."""

from __future__ import annotations

from typing import Any

from engine.actions._util import plain
from engine.actions.base import Action, register
from engine.errors import CommandTimeout, SqlError, TemplateError
from engine.model import SqlResult, Status, StepResult
from engine.secrets import MASKER
from engine.mysql.sqlutil import is_read_only, quote_ident, split_statements
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
        return rendered_statements(text, self.ctx.vars)

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
        stmts = rendered_statements(text, self.ctx.vars)
        self._database = database
        if database:
            self.ctx.sql().query(f"USE {quote_ident(database)}")
        last_rows: SqlResult | None = None
        changed = False
        affected = 0
        counts: list[int] = []
        for sql, params in stmts:
            try:
                res = self._query(sql, params)
            except (SqlError, CommandTimeout) as exc:
                exc_text = exc.render()
                return StepResult(
                    Status.FAILED,
                    msg=exc_text,
                    data={"rows": [], "rowcount": 0, "errno": getattr(exc, "errno", None), "sqlstate": getattr(exc, "sqlstate", None),
                          "statement": display(sql, params)},
                    evidence=f"SQL: {display(sql, params)}",
                )
            counts.append(res.rowcount)
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
            "rowcounts": counts,
        }
        return StepResult(Status.CHANGED if changed else Status.OK, data=data)


    def _query(self, sql: str, params: list[Any]) -> SqlResult:
        """One statement, retried where that is safe: a deadlock or lock wait timeout rolled
        the statement back (autocommit), so running it again is what was meant; after a lost
        connection it may or may not have committed, so only an idempotent statement is re-run
        (mydumper PR #1162 lost rows by retrying blindly)."""
        import time

        from engine.mysql.diagnosis import diagnose
        from engine.mysql.sqlutil import is_idempotent

        attempt = 0
        while True:
            attempt += 1
            try:
                return self.ctx.sql().query(sql, params, timeout=self.ctx.timeout)
            except SqlError as exc:
                diag = diagnose(exc.errno)
                if diag is None or not diag.retryable or attempt >= 3:
                    raise
                if diag.lost_connection:
                    self.ctx.conns.reset_sql()
                    if not is_idempotent(sql):
                        raise
                    database = getattr(self, "_database", None)
                    if database:
                        self.ctx.sql().query(f"USE {quote_ident(database)}")
                self.ctx.warn(f"{self.ctx.host.name}: {exc.render()} — retrying ({attempt}/2)")
                time.sleep(0.2 * attempt)


def _is_dml(sql: str) -> bool:
    from engine.mysql.sqlutil import first_keyword

    return first_keyword(sql) in ("insert", "update", "delete", "replace")
