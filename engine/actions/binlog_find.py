"""``binlog_find``: what went wrong, and when — the suspicious events of a schema's binlogs.

Read-only. Flags a DDL that drops, empties, renames or alters a listed table, a DELETE or UPDATE
of at least ``rows`` rows of one table in one transaction, and (``match``) any statement whose
text matches a regex. Each event says where it is (file, position, GTID), when, what, how many
rows and the statement (MariaDB's Annotate_rows / MySQL's Rows_query when they are logged).
The window ends where this run fenced the host (its own writes come after), else at
``stop_before``, else where the binlogs ended when the step started.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any, ClassVar

from engine.actions._binlog import COMMON, WINDOW, BinlogInputs, end_of, window_problems
from engine.actions.base import Action, register
from engine.errors import ActionError
from engine.model import Status, StepResult
from engine.mysql.binlog.position import BinlogPosition
from engine.secrets import MASKER

# the reader and the window are imported when the step runs: validation imports this module
# for static_problems() only (runbook validate's start-up)
if TYPE_CHECKING:
    from engine.mysql.binlog.reader import Transaction

SUSPICIOUS_DDL = {"drop", "truncate", "rename", "alter"}
MAX_EVENTS = 1000


@register
class BinlogFind(Action):
    """Find the incident in the binlogs.

    ```yaml
    - name: Find what went wrong
      binlog_find:
        schema: shop
        tables: [orders, order_items]
        from_dump: /backups/shop.sql.gz
        rows: 1000
        match: "(?i)delete from order_items"
      register: incident          # incident.first: the earliest event, for skip: / stop_before:
    ```
    """

    name = "binlog_find"
    mutating = False
    params_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["schema"],
        "properties": {
            **COMMON, **WINDOW,
            "rows": {"type": ["integer", "string"], "minimum": 1,
                     "description": "a DELETE/UPDATE of at least this many rows of one table in one transaction (default 1000)"},
            "match": {"type": "string", "minLength": 1, "description": "a regex on the statement text"},
        },
    }

    @classmethod
    def static_problems(cls, args: Any) -> list[tuple[str, str]]:
        out = window_problems(args)
        if isinstance(args, dict) and isinstance(args.get("match"), str) and "{{" not in args["match"]:
            try:
                re.compile(args["match"])
            except re.error as exc:
                out.append(("match", f"not a regex: {exc}"))
        return out

    def apply(self) -> StepResult:
        from engine.actions.guard import server_flavor
        from engine.mysql.binlog.reader import BinlogReader
        from engine.mysql.binlog.window import ReadProgress, earlier, end_of_binlogs, window_bytes

        t0 = time.monotonic()
        inputs = BinlogInputs(self.ctx, self.args)
        source = inputs.source()
        try:
            start = inputs.start(source)
            stop_point = inputs.point(self.args["stop_before"], "stop_before") if self.args.get("stop_before") else None
            end, stop = end_of(stop_point, inputs.fence())
            on_server = self.args.get("binlogs", "server") == "server"
            now = end_of_binlogs(source, self.ctx.sql(), server_flavor(self.ctx.sql())[0]) if on_server else None
            if end is None and stop is None:
                end = now if on_server else end_of_binlogs(source, None)
            elif end is not None and now is not None:
                end = earlier(end, now)
            threshold = int(self.args.get("rows") or 1000)
            try:
                pattern = re.compile(self.args["match"]) if self.args.get("match") else None
            except re.error as exc:
                raise ActionError(f"match: not a regex: {exc}") from None
            reader = BinlogReader(source, schema=inputs.schema, tables=set(inputs.tables) if inputs.tables else None,
                                  start=(start.file, start.pos), end=end, covered=start.covered, stop=stop,
                                  keep=lambda t: False, count_rows=True)
            events: list[dict[str, Any]] = []
            n = 0
            bar = ReadProgress(self.ctx.progress, f"search the binlogs of {inputs.schema}",
                               window_bytes(source, (start.file, start.pos), end))
            for txn in reader.transactions():
                n += 1
                bar(reader)
                events.extend(_suspicious(txn, inputs.schema, threshold, pattern))
        finally:
            source.close()
        more = max(0, len(events) - MAX_EVENTS)
        events = events[:MAX_EVENTS]
        at = reader.stopped_at
        data: dict[str, Any] = {"events": events, "first": events[0] if events else None, "start": start.position.to_dict(),
                "end": BinlogPosition(at[0], at[1]).to_dict() if at else None, "transactions": n,
                "seconds": round(time.monotonic() - t0, 3), "more": more, "source": source.description}
        if reader.refusals:
            data["warnings"] = reader.refusals
        head = f"{len(events) + more} suspicious event(s) in {n:,} transaction(s)"
        if events:
            e = events[0]
            # a DDL has no row count (a TRUNCATE empties the table, whatever it held)
            rows = f" ({e['rows']:,} row(s))" if e["rows"] is not None else ""
            head += (f"; first: {e['kind'].upper()} {e['schema']}.{e['table'] or '*'}{rows} at {e['file']}:{e['pos']}"
                     + (f" GTID {e['gtid']}" if e["gtid"] else "") + f", {e['time']}")
        return StepResult(Status.OK, msg=head, data=data, warnings=list(reader.refusals))


def _event(txn: Transaction, kind: str, schema: str, table: str | None, rows: int | None, statement: str) -> dict[str, Any]:
    from engine.mysql.binlog.window import iso

    text = MASKER.text(statement or "")
    return {"gtid": txn.gtid, "file": txn.file, "pos": txn.pos, "end_pos": txn.end_pos, "time": iso(txn.time), "kind": kind,
            "schema": schema, "table": table, "rows": rows, "statement": text if len(text) <= 2000 else text[:1999] + "…"}


def _suspicious(txn: Transaction, schema: str, threshold: int, pattern: re.Pattern[str] | None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    stmt = txn.queries[0].text if txn.queries else ""
    for ch in txn.changes:
        if ch.kind in SUSPICIOUS_DDL or (pattern is not None and pattern.search(stmt)):
            kind = ch.kind if ch.kind != "dml" else _verb(stmt)
            out.append(_event(txn, kind, ch.schema, ch.table, None, stmt))
    for (table, kind), n in txn.row_counts.items():
        text = txn.statements.get((table, kind), "")
        big = kind in ("delete", "update") and n >= threshold
        if big or (pattern is not None and text and pattern.search(text)):
            out.append(_event(txn, kind, schema, table, n, text))
    return out


def _verb(stmt: str) -> str:
    from engine.mysql.sqlutil import first_keyword

    v = first_keyword(stmt)
    return {"replace": "insert", "load": "insert"}.get(v, v)
