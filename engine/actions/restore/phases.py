"""The restore's phases around the data load, run on the control connection: table DDL per
policy (never over a table with committed batches), truncate, sequences, setting the target's
triggers aside; after the load, orphan checks of cycle groups and the post objects (triggers,
views, routines, events) in file order."""

from __future__ import annotations

import re
from typing import Any

from engine.actions.restore import progress as prog
from engine.actions.restore.index import DumpIndex
from engine.actions.restore.loader import Shared
from engine.actions.restore.plan import Plan
from engine.errors import SqlError
from engine.mysql.sqlutil import qualified, quote_ident
from engine.transport.mysql import MysqlSession


_TRIGGER_NAME = re.compile(rb"\bTRIGGER\s+((?:`[^`]+`\.)?`(?:[^`]|``)+`|\w+)", re.I)


class Phases:
    """Mixed into :class:`engine.actions.restore.action.Restore` (its args, context, schema)."""

    args: Any
    ctx: Any
    _sequences: set[str]

    @property
    def _schema(self) -> str:
        raise NotImplementedError

    @property
    def _sid(self) -> str:
        raise NotImplementedError

    def _prepare(self, control: MysqlSession, plan: Plan, index: DumpIndex, done: dict[tuple[str, int, int], prog.Done],
                 sid: str) -> None:
        """Table DDL in file order per policy, never over a table with committed batches; truncate."""
        tables = plan.by_name()
        committed = {k[0] for k in done if k[1] >= 0}
        ids = dict(run_id=self.ctx.run_id, step_key=self.ctx.step_key, host=self.ctx.host.name)
        schema = self._schema
        for st in index.control:
            if st.kind == "session":
                control.query(st.text)
                continue
            if st.kind == "ddl" and st.table in self._sequences:
                self._sequence_ddl(control, st, schema)
                continue
            if st.kind != "ddl" or st.table not in tables:
                continue
            t = tables[st.table]
            if t.name in committed or t.ddl == "keep":
                continue  # a table holding committed batches is never dropped or re-created
            if t.ddl == "create" and st.verb != "create":
                continue  # create_missing never drops
            if t.ddl == "create" and _exists(control, schema, t.name):
                continue  # made by an earlier attempt of this step (no batch committed yet)
            control.query(st.text)
        control.query("SET SESSION foreign_key_checks = 0")
        from engine.mysql.snapshots import triggers as table_triggers

        for t in plan.tables:
            if t.ddl == "keep":
                found = table_triggers(control, schema, t.name)
                if found:  # the target's own triggers would fire on every loaded row: set aside until after
                    prog.save_triggers(control, sid, t.name, found)
                    for trg in found:
                        control.query(f"DROP TRIGGER IF EXISTS {qualified(schema, trg['name'])}")
            partial = t.name in committed and not all(b.key in done for b in index.tables[t.name].batches)
            if not t.transactional and partial:
                # MyISAM/Aria: a batch and its progress row do not commit together: reload whole
                control.query(f"TRUNCATE TABLE {qualified(schema, t.name)}")
                prog.forget_table(control, sid, t.name)
            elif t.truncate and t.name not in committed:
                control.query(f"TRUNCATE TABLE {qualified(schema, t.name)}")
            prog.mark_prepared(control, sid, t.name, empty=t.empty, **ids)

    def _sequence_ddl(self, control: MysqlSession, st: Any, schema: str) -> None:
        """A MariaDB sequence (DROP/CREATE SEQUENCE, DO SETVAL): created when missing, re-created
        under ``recreate``; its position is set again either way (SETVAL never moves it back)."""
        exists = _exists(control, schema, st.table)
        recreate = self.args.get("schema_mismatch") == "recreate"
        if st.verb == "drop" and not recreate:
            return
        if st.verb == "create" and exists and not recreate:
            return
        control.query(st.text)

    def _orphans(self, control: MysqlSession, plan: Plan) -> list[dict[str, Any]]:
        """Cycle groups were loaded with FK checks off: count the child rows without a parent."""
        out = []
        schema = self._schema
        for fk in plan.orphan_checks:
            cols, refs = fk["columns"], fk["ref_columns"]
            on = " AND ".join(f"p.{quote_ident(r)} = c.{quote_ident(c)}" for c, r in zip(cols, refs))
            notnull = " AND ".join(f"c.{quote_ident(c)} IS NOT NULL" for c in cols)
            n = control.query(f"SELECT COUNT(*) AS n FROM {qualified(schema, fk['table'])} c LEFT JOIN "
                              f"{qualified(schema, fk['ref_table'])} p ON {on} WHERE {notnull} AND p.{quote_ident(refs[0])} IS NULL"
                              ).rows[0]["n"]
            out.append({"table": fk["table"], "constraint": fk["name"], "orphans": int(n)})
        return out

    def _post(self, control: MysqlSession, plan: Plan, index: DumpIndex, shared: Shared) -> list[str]:
        """Triggers (after their table's rows: a load never fires them), then views, routines,
        events — all of them only when every table of the dump is restored."""
        warnings: list[str] = []
        selected = {t.name for t in plan.tables}
        whole = not self.args.get("tables") and not self.args.get("exclude_tables")
        for st in index.control:
            if st.kind == "session":
                control.query(st.text)
                continue
            if st.kind != "post":
                continue
            if st.post_kind == "trigger":
                if st.table not in selected or st.table in shared.failed:
                    continue
                m = _TRIGGER_NAME.search(st.text)
                if m:
                    control.query(b"DROP TRIGGER IF EXISTS " + m.group(1))
            elif not whole:  # views (and their stand-ins), routines, events need every table of the dump
                continue
            try:
                control.query(st.text)
            except SqlError as exc:
                warnings.append(f"{st.post_kind or 'statement'} not created: {exc.render()}")
        schema = self._schema
        for trg in prog.saved_triggers(control, self._sid):
            if trg["restored"]:
                continue
            exists = control.query("SELECT 1 AS x FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s AND TRIGGER_NAME = %s",
                                   [schema, trg["name"]]).rows
            if not exists:  # the dump did not bring its own version back: put the target's back
                control.query("SET SESSION sql_mode = %s", [trg["sql_mode"]])
                try:
                    control.query(trg["statement"])
                except SqlError as exc:
                    warnings.append(f"trigger {trg['name']} of {trg['tbl']} not re-created: {exc.render()}")
                    continue
            prog.trigger_restored(control, self._sid, trg["tbl"], trg["name"])
        return warnings


def _exists(sql: Any, schema: str, table: str) -> bool:
    return bool(sql.query("SELECT 1 AS x FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
                          [schema, table]).rows)
