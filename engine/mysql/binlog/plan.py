"""The replay's first pass: read the whole window once, write nothing, and say what would be
replayed — or why nothing may be.

Refused before anything is applied, all at once: a DDL of a listed table inside the window, a
statement-based change of one, an XA transaction, an Incident event, a transaction cut by the
end, a ``skip`` that names no transaction of the window, a ``stop_before`` never reached, binlogs
that end short of the window's end, a Table_map that does not describe the live table. A skipped
transaction may hold anything: it is left out whole.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engine.mysql.binlog.judged import Judged
from engine.mysql.binlog.reader import BinlogReader, EndAt, Transaction
from engine.mysql.binlog.tables import LiveTable, check_map
from engine.mysql.binlog.window import Point, iso

DDL_KINDS = {"drop", "truncate", "rename", "alter", "create"}


@dataclass
class ReplayPlan:
    """What the window holds for the listed tables."""

    transactions: int = 0  # to replay (changing a listed table, not skipped)
    rows: int = 0
    rows_by_table: dict[str, int] = field(default_factory=dict)
    skipped: list[dict[str, Any]] = field(default_factory=list)  # transactions left out: {gtid, file, pos, rows}
    first_time: int | None = None
    last_time: int | None = None
    bytes: int = 0
    stopped_at: tuple[str, int] | None = None
    problems: list[str] = field(default_factory=list)

    def window_text(self) -> str:
        if self.first_time is None:
            return "no transaction of these tables in the window"
        return f"from {iso(self.first_time)} to {iso(self.last_time or self.first_time)}"


def _where(t: Transaction) -> str:
    return f"{t.file}:{t.pos}" + (f" (GTID {t.gtid})" if t.gtid else "")


def scan(reader: BinlogReader, skip: list[Point], live: dict[str, LiveTable], *, end: EndAt | None,
         stop_point: Point | None, skip_hint: Callable[[Transaction], str],
         on_progress: Callable[[BinlogReader], None] | None = None, judged: Judged | None = None) -> ReplayPlan:
    """Read the window once (rows counted, none kept) and plan the replay; ``judged``
    records what was read, for the second pass to apply nothing else."""
    plan = ReplayPlan()
    matched = [0] * len(skip)
    for txn in reader.transactions():
        if judged is not None:
            judged.add(txn)
        if on_progress is not None:
            on_progress(reader)
        hits = [i for i, p in enumerate(skip) if p.matches(txn)]
        for i in hits:
            matched[i] += 1
        if hits:
            # What the report says was left out: its rows (when they were counted), which table
            # and kind of change, or its statement (a DDL has no rows).
            plan.skipped.append({"gtid": txn.gtid, "file": txn.file, "pos": txn.pos, "end_pos": txn.end_pos,
                                 "rows": txn.row_total() if txn.counted and txn.row_counts else None,
                                 "changes": sorted({f"{t} {k}" for t, k in txn.row_counts}),
                                 "statement": next((q.text[:200] for q in txn.queries), None) if txn.changes else None,
                                 "time": iso(txn.time)})
            continue
        for ch in txn.changes:
            what = f"{ch.schema}.{ch.table}" if ch.table else f"every table of {ch.schema}"
            stmt = next((q.text for q in txn.queries), "")[:200]
            if ch.kind in DDL_KINDS:
                plan.problems.append(f"a DDL of {what} inside the window at {_where(txn)}: {stmt} — {skip_hint(txn)}")
            else:
                plan.problems.append(f"a statement-based change of {what} at {_where(txn)} ({stmt}): only row events are "
                                     f"replayed (binlog_format=ROW) — {skip_hint(txn)}, or replay it by hand")
        if txn.xa and txn.row_counts:
            plan.problems.append(f"an XA transaction changing listed tables at {_where(txn)}: not replayed here — {skip_hint(txn)}")
        if not txn.row_counts:
            continue
        plan.transactions += 1
        n = txn.row_total()
        plan.rows += n
        for (table, _kind), k in txn.row_counts.items():
            plan.rows_by_table[table] = plan.rows_by_table.get(table, 0) + k
        plan.first_time = txn.time if plan.first_time is None else plan.first_time
        plan.last_time = txn.time
    plan.bytes = reader.bytes_read
    plan.stopped_at = reader.stopped_at
    plan.problems += reader.refusals
    for p, n in zip(skip, matched):
        if n == 0:
            plan.problems.append(f"skip: {p} is not a transaction of the window")
        elif n > 1:
            plan.problems.append(f"skip: {p} names {n} transactions of the window (a GTID seen twice): name it by file and pos")
    if stop_point is not None and (stop_point.gtid or stop_point.time) and reader.stopped_by is None:
        plan.problems.append(f"stop_before {stop_point} is not in the window: the binlogs end at "
                             f"{reader.stopped_at[0]}:{reader.stopped_at[1]}" if reader.stopped_at else
                             f"stop_before {stop_point} is not in the window")
    if end is not None and not reader.reached(end):
        at = f"{reader.stopped_at[0]}:{reader.stopped_at[1]}" if reader.stopped_at else "their start"
        plan.problems.append(f"the binlogs end at {at}, short of the window's end {end.file}:{end.pos}: transactions "
                             "in between would be missing")
    for tm in reader.table_maps():
        lt = live.get(tm.table)
        if lt is None:
            plan.problems.append(f"{tm.name} is in the binlogs but not on the target")
            continue
        why = check_map(tm, lt)
        if why:
            plan.problems.append(why)
    return plan
