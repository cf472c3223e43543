"""The restore's phases around the data load, run on the control connection.

Before the load (:meth:`Phases._prepare`): the target's triggers on the restored tables are set
aside (kept in ``_runbook.restore_triggers``), the live AUTO_INCREMENT of tables about to be
emptied or re-created is kept, table DDL runs per policy (never over a table with committed
batches) with the dump's ALTERs of keys that come before the rows, tables are truncated (a
MyISAM table an earlier attempt left partial is emptied to be reloaded whole).

After it (:meth:`Phases._post`): orphan checks of cycle groups, the dump's ALTERs after the rows,
the dump's triggers (not over a trigger the target has), views, routines, events in file order.

Whatever happens (:meth:`Phases._settle`, from a ``finally``): the target's triggers are put
back and every AUTO_INCREMENT kept is applied (at least the live counter before the restore).
"""

from __future__ import annotations

from typing import Any

from engine.mysql.introspect import table_exists
from engine.actions.restore import progress as prog
from engine.actions.restore.index import ControlStatement, DumpIndex
from engine.actions.restore.loader import Shared
from engine.actions.restore.plan import Plan
from engine.actions.restore.report import OrphanCount
from engine.errors import RunbookError, SqlError
from engine.mysql.sqlutil import qualified, quote_ident
from engine.transport.mysql import MysqlSession

#: an ALTER that fails this way on a resume was applied by the attempt that was interrupted
_ALREADY_APPLIED = {1060, 1061, 1068, 1022, 1826, 1091, 1050}


class Phases:
    """Mixed into :class:`engine.actions.restore.action.Restore` (its args, context, schema)."""

    args: Any
    ctx: Any
    _sequences: set[str]
    _resumed: bool

    @property
    def _schema(self) -> str:
        raise NotImplementedError

    @property
    def _sid(self) -> str:
        raise NotImplementedError

    def _ids(self) -> dict[str, str]:
        return dict(run_id=self.ctx.run_id, step_key=self.ctx.step_key, host=self.ctx.host.name)

    # -- before the load ------------------------------------------------------------------------
    def _prepare(self, control: MysqlSession, plan: Plan, index: DumpIndex, done: dict[tuple[str, int, int], prog.Done],
                 sid: str) -> None:
        tables = plan.by_name()
        committed = {k[0] for k in done if k[1] >= 0}
        schema = self._schema
        self._set_triggers_aside(control, plan, sid)
        for t in plan.tables:
            if t.keep_counter and t.name not in committed:
                prog.save_counter(control, sid, t.name, _counter(control, schema, t.name))
        for st in index.control:
            if st.kind == "session":
                control.query(st.text)
            elif st.kind == "ddl" and st.table in self._sequences:
                self._sequence_ddl(control, st, schema)
            elif st.kind == "ddl" and st.table in tables:
                t = tables[st.table]
                if t.name in committed or t.ddl == "keep":
                    continue  # a table holding committed batches is never dropped or re-created
                if t.ddl == "create" and (st.verb != "create" or table_exists(control, schema, t.name)):
                    continue  # create_missing never drops; made by an earlier attempt of this step (no batch committed yet)
                control.query(st.text)
                if st.verb == "create":
                    prog.forget_alters(control, sid, t.name)
                    prog.mark_created(control, sid, t.name)
            elif st.kind == "alter" and st.before_data and st.table in tables and tables[st.table].created \
                    and st.table not in committed:
                self._alter(control, st, sid, done)
        control.query("SET SESSION foreign_key_checks = 0")
        for t in plan.tables:
            if t.reload:  # MyISAM/Aria an interrupted attempt left partial: emptied, reloaded whole
                control.query(f"TRUNCATE TABLE {qualified(schema, t.name)}")
                prog.forget_table(control, sid, t.name)
            elif t.truncate and t.name not in committed:
                control.query(f"TRUNCATE TABLE {qualified(schema, t.name)}")
            prog.mark_prepared(control, sid, t.name, empty=t.empty, **self._ids())

    def _set_triggers_aside(self, control: MysqlSession, plan: Plan, sid: str) -> None:
        """A load never fires a trigger: the target's own are kept in the progress schema and
        dropped until :meth:`_settle` puts them back (a resume finds them there)."""
        for trg in plan.live_triggers:
            prog.save_triggers(control, sid, trg.table, [{"name": trg.name, "statement": trg.statement, "sql_mode": trg.sql_mode}])
            control.query(f"DROP TRIGGER IF EXISTS {qualified(self._schema, trg.name)}")

    def _alter(self, control: MysqlSession, st: ControlStatement, sid: str, done: dict[tuple[str, int, int], prog.Done]) -> None:
        """One of the dump's ALTERs of a table this step creates, once (its progress row)."""
        assert st.table is not None
        if (st.table, prog.ALTERED, st.ordinal) in done:
            return
        try:
            control.query(st.text)
        except SqlError as exc:
            if not (self._resumed and exc.errno in _ALREADY_APPLIED):
                raise
        prog.mark_altered(control, sid, st.table, st.ordinal, **self._ids())

    def _sequence_ddl(self, control: MysqlSession, st: ControlStatement, schema: str) -> None:
        """A MariaDB sequence (DROP/CREATE SEQUENCE, DO SETVAL): created when missing, re-created
        under ``recreate``; its position is set again either way (SETVAL never moves it back)."""
        exists = table_exists(control, schema, st.table or "")
        recreate = self.args.get("schema_mismatch") == "recreate"
        if st.verb == "drop" and not recreate:
            return
        if st.verb == "create" and exists and not recreate:
            return
        control.query(st.text)

    # -- after the load -----------------------------------------------------------------------
    def _orphans(self, control: MysqlSession, plan: Plan) -> list[OrphanCount]:
        """Cycle groups were loaded with FK checks off: count the child rows without a parent."""
        out = []
        schema = self._schema
        for fk in plan.orphan_checks:
            cols, refs = fk.columns, fk.ref_columns
            on = " AND ".join(f"p.{quote_ident(r)} = c.{quote_ident(c)}" for c, r in zip(cols, refs))
            notnull = " AND ".join(f"c.{quote_ident(c)} IS NOT NULL" for c in cols)
            n = control.query(f"SELECT COUNT(*) AS n FROM {qualified(schema, fk.table)} c LEFT JOIN "
                              f"{qualified(schema, fk.ref_table)} p ON {on} WHERE {notnull} AND p.{quote_ident(refs[0])} IS NULL"
                              ).rows[0]["n"]
            out.append(OrphanCount(fk.table, fk.name, int(n)))
        return out

    def _post(self, control: MysqlSession, plan: Plan, index: DumpIndex, shared: Shared,
              done: dict[tuple[str, int, int], prog.Done]) -> list[str]:
        """The dump's ALTERs after the rows; triggers (after their table's rows: a load never fires
        them; not where the target has its own of that name), then views, routines, events — those
        only when every table of the dump is restored."""
        warnings: list[str] = []
        tables = plan.by_name()
        whole = not self.args.get("tables") and not self.args.get("exclude_tables")
        for st in index.control:
            if st.kind == "session":
                control.query(st.text)
                continue
            if st.kind == "alter":
                t = tables.get(st.table or "")
                if t is not None and t.created and not st.before_data and t.name not in shared.failed:
                    try:
                        self._alter(control, st, self._sid, done)
                    except SqlError as exc:
                        shared.failed.add(t.name)
                        shared.stats[t.name].error = exc
                continue
            if st.kind != "post":
                continue
            if st.post_kind == "trigger":
                if st.table not in tables or st.table in shared.failed or st.name in plan.skip_dump_triggers:
                    continue
                if st.verb == "create" and st.name:
                    control.query(f"DROP TRIGGER IF EXISTS {quote_ident(st.name)}")
            elif not whole:  # views (and their stand-ins), routines, events need every table of the dump
                continue
            try:
                control.query(st.text)
            except SqlError as exc:
                warnings.append(f"{st.post_kind or 'statement'} not created: {exc.render()}")
        return warnings

    # -- whatever happened ---------------------------------------------------------------------
    def _settle(self, control: MysqlSession, sid: str) -> list[str]:
        """Put back the target's triggers set aside for the load, and keep every AUTO_INCREMENT at
        least where the live table had it (new rows never reuse an id written since the backup)."""
        warnings: list[str] = []
        schema = self._schema
        for trg in prog.saved_triggers(control, sid):
            if trg["restored"]:
                continue
            exists = control.query("SELECT 1 AS x FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s AND TRIGGER_NAME = %s",
                                   [schema, trg["name"]]).rows
            if not exists:
                control.query("SET SESSION sql_mode = %s", [trg["sql_mode"]])
                try:
                    control.query(trg["statement"])
                except SqlError as exc:
                    warnings.append(f"trigger {trg['name']} of {trg['tbl']} not put back: {exc.render()} (its statement is"
                                    f" kept in {prog.SCHEMA}.{prog.TRIGGERS})")
                    continue
            prog.trigger_restored(control, sid, trg["tbl"], trg["name"])
        for table, before in prog.saved_counters(control, sid).items():
            if table_exists(control, schema, table) and before > _counter(control, schema, table):
                control.query(f"ALTER TABLE {qualified(schema, table)} AUTO_INCREMENT = {int(before)}")
        return warnings

    def _settle_safely(self, control: MysqlSession | None, make: Any, sid: str) -> list[str]:
        """:meth:`_settle` on the control connection, or a new one when it broke; what could not
        be done is said (a resume does it)."""
        for attempt in range(2):
            session = control if attempt == 0 and control is not None else None
            try:
                if session is None:
                    session = make(False)
                try:
                    return self._settle(session, sid)
                finally:
                    if session is not control:
                        session.close()
            except RunbookError as exc:
                last = exc
        return [f"the target's triggers and AUTO_INCREMENT counters could not be put back ({last.render()}): they are kept in"
                f" {prog.SCHEMA}.{prog.TRIGGERS} and {prog.SCHEMA}.{prog.TABLES}; `runbook resume` puts them back"]


def _counter(sql: Any, schema: str, table: str) -> int:
    """The table's next AUTO_INCREMENT value, fresh (MySQL 8 caches information_schema), 0 without one."""
    try:
        sql.query("SET SESSION information_schema_stats_expiry = 0")
    except SqlError:
        pass  # MariaDB: always fresh
    rows = sql.query("SELECT AUTO_INCREMENT AS a FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
                     [schema, table]).rows
    return int(rows[0]["a"] or 0) if rows else 0


