"""``binlog_flashback``: revert one transaction from its before images — no restore.

The transaction is read from the binlogs (``event``: what ``binlog_find`` registered, or a
GTID / file and position), inverted (``engine.mysql.binlog.flashback``), checked row by row
against the live tables (each must still be as the transaction left it: every conflict is
listed and nothing is written, unless ``on_conflict: overwrite``), then applied by the server
in one transaction with its row in ``_runbook.binlog_progress`` (exactly once). Its undo applies
the original transaction again, checked the same way.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

from engine.actions._binlog import COMMON, POINT, BinlogInputs
from engine.actions.base import Action, Probe, register
from engine.actions.binlog_replay import _Progress
from engine.actions.guard import check_identity
from engine.errors import ActionError
from engine.model import Status, StepResult
from engine.mysql.binlog import flashback as fb
from engine.mysql.binlog import progress as prog
from engine.mysql.binlog.apply import Applier, ApplyOptions
from engine.mysql.binlog.conflicts import ConflictError
from engine.mysql.binlog.reader import Transaction
from engine.mysql.binlog.tables import LiveTable, check_map, live_tables


@register
class BinlogFlashback(Action):
    """Revert one row-based transaction after checking its rows are unchanged since.

    ```yaml
    - name: Revert the bad transaction
      binlog_flashback:
        event: "{{ incident.first }}"     # or {gtid: 0-1-57} / {file, pos}
        on_conflict: error                # overwrite: revert even rows changed since
      register: reverted
    ```
    """

    name = "binlog_flashback"
    mutating = True
    idempotent = True  # by its progress row
    reversible = True
    undo_idempotent = True  # the undo has its own progress row
    params_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["event"],
        "properties": {
            "event": POINT,
            "binlogs": COMMON["binlogs"],
            "replica_server_id": COMMON["replica_server_id"],
            "schema": {"type": "string", "minLength": 1, "description": "the schema whose rows are reverted (default: the event's)"},
            "tables": COMMON["tables"],
            "on_conflict": {"enum": ["error", "overwrite"], "description": "a row changed since the transaction"},
        },
    }

    def __init__(self, args: Any, ctx: Any):
        super().__init__(args, ctx)
        self.inputs = BinlogInputs(ctx, args)

    @property
    def _schema(self) -> str:
        ev = self.args.get("event")
        schema = self.args.get("schema") or (ev.get("schema") if isinstance(ev, dict) else None)
        if not schema:
            raise ActionError("binlog_flashback: which schema's rows to revert is unknown", hint="add schema:")
        return str(schema)

    def _sid(self, what: str = "flashback") -> str:
        # The transaction is part of the key: one step looping over several transactions
        # (`loop: "{{ incident.events }}"`) reverts each of them, not the first one only.
        return prog.step_id(self.ctx.run_id, self.ctx.step_key, self.ctx.host.name, f"{what}:{self._schema}:{self._event_key()}")

    def _event_key(self) -> str:
        ev = self.args.get("event")
        if isinstance(ev, dict):
            if ev.get("file") and ev.get("pos") not in (None, ""):
                return f"{ev['file']}:{ev['pos']}"
            return str(ev.get("gtid") or ev.get("datetime") or "")
        return str(ev or "")

    def _transaction(self) -> tuple[Transaction, dict[str, LiveTable]]:
        sql = self.ctx.sql()
        live = live_tables(sql, self._schema, self.inputs.tables)
        point = self.inputs.point(self.args["event"], "event")
        source = self.inputs.source()
        try:
            unsigned = {t: lt.unsigned for t, lt in live.items()}
            txn = fb.locate(source, point, self._schema, set(self.inputs.tables) if self.inputs.tables else None,
                            unsigned=lambda s, t: unsigned.get(t, set()))
        finally:
            source.close()
        if txn.changes:
            raise ActionError(f"the transaction at {txn.file}:{txn.pos} holds a DDL or a statement-based change "
                              f"({txn.queries[0].text[:120] if txn.queries else ''}): only row events can be reverted")
        if not txn.rows:
            raise ActionError(f"the transaction at {txn.file}:{txn.pos} changed no row of {self._schema}"
                              + (f" {', '.join(self.inputs.tables)}" if self.inputs.tables else ""))
        for rev in txn.rows:
            lt = live.get(rev.table.table)
            if lt is None:
                raise ActionError(f"{rev.table.name} is not on the server any more")
            why = check_map(rev.table, lt)
            if why:
                raise ActionError(f"cannot revert: {why}")
            if not rev.full_image() or (rev.head.present_after is not None and not rev.full_image(after=True)):
                raise ActionError(f"the transaction's rows of {rev.table.name} are not whole (binlog_row_image is not FULL): "
                                  "a flashback needs every column's before and after value")
        return txn, live

    def _apply_txn(self, txn: Transaction, live: dict[str, LiveTable], sid: str, on_conflict: str) -> int:
        ctx = self.ctx
        with ctx.conns.own_sql() as session:
            applier = Applier(session, live, ApplyOptions(on_conflict=on_conflict, group_transactions=1),
                              _Progress(sid, (ctx.run_id, ctx.step_key, ctx.host.name)))
            stats = applier.apply([txn])
        return stats.rows if stats.transactions else 0

    # -- contract ---------------------------------------------------------------------------
    def probe(self) -> Probe:
        sql = self.ctx.sql()
        row = prog.run_row(sql, self._sid())
        if row is not None and prog.committed(sql, self._sid()).groups:
            return Probe(True, dict(row.get("result") or {}), "the transaction is reverted (its progress row says so)")
        return Probe(False, {}, f"revert the transaction {self.args['event']}")

    def undo_of_found(self, probe: Probe) -> Any:
        """A revert committed by an earlier attempt of this run: its undo, from the progress table."""
        row = prog.run_row(self.ctx.sql(), self._sid())
        return (row or {}).get("window", {}).get("undo")

    def check(self) -> StepResult:
        try:
            txn, live = self._transaction()
            found = fb.check(self.ctx.sql(), fb.inverse(txn), live)
        except ActionError as exc:
            return StepResult(Status.FAILED, msg=f"check mode: {exc.message}")
        data = _data(txn, found)
        if found and self.args.get("on_conflict", "error") == "error":
            return StepResult(Status.FAILED, msg=f"check mode: would refuse: {len(found)} conflict(s): {found[0].text()}", data=data)
        return StepResult(Status.CHANGED, msg=f"check mode: would revert {data['rows']} row(s) of {', '.join(data['tables'])}",
                          data=data)

    def apply(self) -> StepResult:
        t0 = time.monotonic()
        sql = self.ctx.sql()
        if prog.committed(sql, self._sid()).groups:  # an earlier attempt committed the revert (killed before its outcome)
            row = prog.run_row(sql, self._sid()) or {}
            return StepResult(Status.OK, msg="the transaction was reverted by an earlier attempt", data=dict(row.get("result") or {}),
                              undo=(row.get("window") or {}).get("undo"))
        txn, live = self._transaction()
        inv = fb.inverse(txn)
        found = fb.check(self.ctx.sql(), inv, live)
        data = _data(txn, found)
        on_conflict = str(self.args.get("on_conflict") or "error")
        if found and on_conflict == "error":
            return StepResult(Status.FAILED, msg=f"refusing to revert, nothing was written: {len(found)} row(s) changed since the "
                              f"transaction; first: {found[0].text()}", data=data,
                              evidence="\n".join(c.text() for c in found[:50]))
        check_identity(self.ctx, f"revert a transaction in {self._schema}")
        prog.ensure(sql)
        sid = self._sid()
        undo = {"event": {"file": txn.file, "pos": txn.pos, "gtid": txn.gtid}, "schema": self._schema,
                "tables": self.inputs.tables, "binlogs": self.args.get("binlogs")}
        prog.begin(sql, sid, run_id=self.ctx.run_id, step_key=self.ctx.step_key, host=self.ctx.host.name, action=self.name,
                   window={"event": undo["event"], "schema": self._schema, "undo": undo})
        try:
            self._apply_txn(inv, live, sid, "overwrite" if found else "error")
        except ConflictError as exc:  # changed between the check and the revert
            return StepResult(Status.FAILED, msg=f"revert stopped, nothing was written: {exc.render()}", data=data)
        data["seconds"] = round(time.monotonic() - t0, 3)
        prog.finish(sql, sid, data)
        msg = (f"reverted {data['rows']} row(s) of {', '.join(data['tables'])} (the transaction at {txn.file}:{txn.pos}"
               + (f", GTID {txn.gtid}" if txn.gtid else "") + ")" + (f"; {len(found)} changed row(s) overwritten" if found else ""))
        return StepResult(Status.CHANGED, msg=msg, data=data, undo=undo)

    def undo(self, record: Any) -> StepResult:
        """Apply the original transaction again, after checking each row is as the revert left it."""
        args = {"event": record["event"], "schema": record["schema"], "tables": record.get("tables"),
                "binlogs": record.get("binlogs") or "server"}
        again = BinlogFlashback({k: v for k, v in args.items() if v is not None}, self.ctx)
        sql = self.ctx.sql()
        sid = again._sid("undo")
        if prog.committed(sql, sid).groups:
            return StepResult(Status.OK, msg="the transaction was re-applied already (its progress row says so)")
        txn, live = again._transaction()
        found = fb.check(self.ctx.sql(), txn, live)
        if found:
            return StepResult(Status.FAILED, msg=f"cannot re-apply the transaction: {len(found)} row(s) changed since the revert; "
                              f"first: {found[0].text()}", evidence="\n".join(c.text() for c in found[:50]))
        prog.ensure(sql)
        if prog.run_row(sql, sid) is None:
            prog.begin(sql, sid, run_id=self.ctx.run_id, step_key=self.ctx.step_key, host=self.ctx.host.name, action="undo " + self.name,
                       window={"event": record["event"], "schema": record["schema"]})
        rows = again._apply_txn(txn, live, sid, "error")
        prog.finish(sql, sid, {"rows": rows})
        return StepResult(Status.CHANGED, msg=f"re-applied the transaction at {txn.file}:{txn.pos} ({rows} row(s))")


def _data(txn: Transaction, found: list[Any]) -> dict[str, Any]:
    return {"rows": sum(len(r) for r in txn.rows), "tables": sorted({r.table.table for r in txn.rows}),
            "conflicts": [c.to_dict() for c in found], "gtid": txn.gtid, "file": txn.file, "pos": txn.pos, "end_pos": txn.end_pos}
