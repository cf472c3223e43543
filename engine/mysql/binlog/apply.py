"""Applying a binlog's transactions to a server: exactly once, fast, conflicts caught.

The server applies the row events itself (``BINLOG '…'``, see ``build``): no value is decoded to
be written. Transactions are applied in groups: one target transaction per group, whose first
statement is its progress row (``progress``: a group committed before is refused by the server,
ER_DUP_ENTRY, and skipped), then one check of the rows the group updates or deletes (by key,
against the events' before images: ``conflicts``), then the events, then COMMIT.

* A conflict (a row missing, different, or an insert's key taken — the server's 1032/1062 say
  so too) rolls the group back and applies it again event by event, each event's rows checked
  first: ``on_conflict`` error stops naming the event and the row; skip leaves the row out and
  counts it; overwrite writes the after image (an update of a missing row becomes an insert, an
  insert of a taken key an update of that row).
* GTIDs: the target gives each group a GTID of its own (``keep_gtids=False``): a replay into the
  server that wrote the binlog must not reuse them (MariaDB reports them out of order; MySQL
  would silently *skip* a transaction whose GTID it has executed).

For a failover catch-up (a replica behind the old primary), ``keep_gtids=True`` applies each
source transaction alone under its own GTID (MariaDB ``gtid_domain_id/server_id/gtid_seq_no``,
MySQL ``GTID_NEXT``): idempotent by GTID, so ``progress`` may be None::

    applier = Applier(session, tables, ApplyOptions(keep_gtids=True, on_conflict="error"), progress=None)
    stats = applier.apply(reader.transactions())
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from engine.errors import ActionError, ConnectError, LostConnection, SqlError
from engine.mysql.binlog import build, conflicts
from engine.mysql.binlog.conflicts import SAME, Conflict, RowCheck
from engine.mysql.binlog.resolve import resolve
from engine.mysql.binlog.events import DELETE, UPDATE, WRITE, FormatDescription
from engine.mysql.binlog.reader import Transaction
from engine.mysql.binlog.rows import RowsEvent
from engine.mysql.binlog.tables import Compare, LiveTable, comparators


@dataclass
class ApplyOptions:
    on_conflict: str = "error"  # error | skip | overwrite
    keep_gtids: bool = False  # failover catch-up: each transaction alone, under its source GTID
    binlog: bool = True  # False: SET sql_log_bin = 0 (replicas do not get the rows)
    group_transactions: int = 500
    group_bytes: int = 4 << 20
    target_schema: str | None = None  # apply into another schema than the binlog's


class ProgressSink(Protocol):
    """Where a group's commit is recorded in the same transaction (``None``: nowhere)."""

    def claim(self, sql: Any, group: list[Transaction], rows: int) -> bool:
        """First statement of the group's transaction; False: it committed before."""
        ...

    def amend(self, sql: Any, group: list[Transaction], rows: int, conflicts: int) -> None:
        """Before COMMIT, when the rows or conflicts differ from what ``claim`` said."""
        ...


@dataclass
class ApplyStats:
    transactions: int = 0
    rows: int = 0
    conflicts: int = 0
    conflict_list: list[Conflict] = field(default_factory=list)  # the first 100
    groups: int = 0
    groups_found_committed: int = 0  # a retry found its COMMIT had landed
    slow_groups: int = 0  # applied event by event after a conflict
    last: tuple[str, int] | None = None
    last_gtid: str | None = None


class _Fault:
    """Test hook: ``RUNBOOK_FAULT_BINLOG_KILL=before_commit:N|after_commit:N`` SIGKILLs this
    process around its N-th group commit."""

    def __init__(self) -> None:
        when, _, n = os.environ.get("RUNBOOK_FAULT_BINLOG_KILL", "").partition(":")
        self.when, self.at, self.count = when, int(n) if n.isdigit() else None, 0

    def point(self, where: str) -> None:
        if self.at is not None and where == self.when and self.count == self.at:
            os.kill(os.getpid(), signal.SIGKILL)


class Applier:
    """Applies transactions over one session (see the module docstring)."""

    def __init__(self, sql: Any, tables: dict[Any, LiveTable], opts: ApplyOptions, progress: ProgressSink | None, *,
                 max_packet: int = 16 << 20):
        self.sql, self.tables, self.opts, self.progress = sql, tables, opts, progress
        self.fde: FormatDescription | None = None  # the format of the events being applied (sent to the session)
        self._sent: tuple[Any, ...] | None = None
        self.stmt_bytes = max(64 << 10, min(max_packet, 64 << 20) * 3 // 5 * 3 // 4)
        self.fault = _Fault()
        self._conn_id: int | None = None
        self._cmp: dict[int, list[Compare | None]] = {}
        self._refused = ""
        self.stats = ApplyStats()

    # -- the session ------------------------------------------------------------------------
    def _session(self, fde: FormatDescription) -> Any:
        cid = self.sql.connection_id
        if cid != self._conn_id:
            self.sql.query("SET SESSION time_zone = '+00:00', sql_mode = '', innodb_lock_wait_timeout = 120,"
                           " wait_timeout = 28800, net_read_timeout = 3600, net_write_timeout = 3600")
            if not self.opts.binlog:
                self.sql.query("SET SESSION sql_log_bin = 0")
            self._conn_id, self._sent = cid, None
        if self._sent != _format(fde):
            self.sql.query(build.binlog_statement([fde.raw]))  # how to read the events that follow
            self._sent = _format(fde)
        self.fde = fde
        return self.sql

    def _live(self, rev: RowsEvent) -> LiveTable:
        """The live table of ``rev``: keyed (schema, table), or by name within one schema."""
        lt = self.tables.get((rev.table.schema, rev.table.table)) or self.tables.get(rev.table.table)  # type: ignore[call-overload]
        if lt is None:
            raise ActionError(f"{rev.table.name} is in the binlogs but not among the tables to apply to")
        return lt

    def _f(self) -> FormatDescription:
        assert self.fde is not None
        return self.fde

    # -- the loop ---------------------------------------------------------------------------
    def apply(self, txns: Iterable[Transaction], on_commit: Callable[[ApplyStats], None] | None = None) -> ApplyStats:
        group: list[Transaction] = []
        size = 0
        limit_n = 1 if self.opts.keep_gtids else self.opts.group_transactions
        for txn in txns:
            if self.opts.keep_gtids and txn.queries:
                raise ActionError(f"the transaction at {_where(txn)} is a statement ({txn.queries[0].text[:120]}): keep_gtids "
                                  "applies row events only", hint="apply it by hand under its GTID, then go on from after it")
            if not txn.rows:
                continue
            assert txn.fde is not None
            n = sum(r.event.size + r.table.event.size for r in txn.rows if r.table.event is not None)
            if group and (len(group) >= limit_n or size + n > self.opts.group_bytes
                          or _format(txn.fde) != _format(group[0].fde)):  # type: ignore[arg-type]
                self._group(group, on_commit)
                group, size = [], 0
            group.append(txn)
            size += n
        if group:
            self._group(group, on_commit)
        if self.opts.keep_gtids and self._conn_id is not None:
            self.sql.query("SET SESSION server_id = @@global.server_id")
        return self.stats

    def _group(self, group: list[Transaction], on_commit: Callable[[ApplyStats], None] | None) -> None:
        rows = sum(len(r) for t in group for r in t.rows)
        lost = locks = 0
        while True:
            try:
                done = self._attempt(group, rows)
                break
            except (LostConnection, ConnectError) as exc:
                lost += 1  # the COMMIT may have landed: the progress row decides on the next attempt
                self.sql.close()
                self._conn_id = None
                if lost > 3:
                    raise ActionError(f"lost the connection {lost} times applying {_where(group[0])}: {exc.message}") from None
                time.sleep(0.2 * lost)
            except SqlError as exc:
                self._rollback()
                if exc.errno in (1205, 1213) and locks < 5:
                    locks += 1
                    time.sleep(0.1 * 2 ** locks)
                    continue
                raise _explained(exc, group) from None
            except BaseException:
                self._rollback()
                raise
        st = self.stats
        st.groups += 1
        if done:
            st.transactions += len(group)
        else:
            st.groups_found_committed += 1
        st.last, st.last_gtid = (group[-1].file, group[-1].end_pos), group[-1].gtid
        if on_commit is not None:
            on_commit(st)

    def _rollback(self) -> None:
        try:
            self.sql.query("ROLLBACK")
        except (SqlError, ConnectError):
            self.sql.close()
            self._conn_id = None

    def _attempt(self, group: list[Transaction], rows: int) -> bool:
        assert group[0].fde is not None
        s = self._session(group[0].fde)
        if self.opts.keep_gtids:
            self._set_gtid(group[0])
        s.query("START TRANSACTION")
        if self.progress is not None and not self.progress.claim(s, group, rows):
            s.query("ROLLBACK")
            return False
        if not self._fast(group):
            s.query("ROLLBACK")
            if not self.tables:
                raise ActionError(f"applying {_where(group[0])}: the server refused a row ({self._refused}): this server's "
                                  "rows differ from the ones the source changed", hint="compare the row on both servers; "
                                  "the transaction was rolled back, nothing of it was applied")
            self.stats.slow_groups += 1
            s.query("START TRANSACTION")
            if self.progress is not None and not self.progress.claim(s, group, rows):
                s.query("ROLLBACK")
                return False
            before = self.stats.conflicts
            applied = self._exact(group)
            if self.progress is not None and (applied != rows or self.stats.conflicts != before):
                self.progress.amend(s, group, applied, self.stats.conflicts - before)
            self.stats.rows += applied
        else:
            self.stats.rows += rows
        self.fault.count += 1
        self.fault.point("before_commit")
        s.query("COMMIT")
        self.fault.point("after_commit")
        return True

    def _set_gtid(self, txn: Transaction) -> None:
        g = txn.gtid or ""
        if "-" in g and ":" not in g:
            d, sid, n = g.split("-")
            self.sql.query("SET SESSION gtid_domain_id = %s, server_id = %s, gtid_seq_no = %s", [int(d), int(sid), int(n)])
        elif ":" in g:
            self.sql.query("SET SESSION GTID_NEXT = %s", [g])

    # -- the fast path: one check, the events as they are ------------------------------------
    def _compare(self, rev: RowsEvent) -> list[Compare | None]:
        key = id(rev.layout)
        if key not in self._cmp:
            self._cmp[key] = comparators(rev.layout, self._live(rev))
        return self._cmp[key]

    def _fast(self, group: list[Transaction]) -> bool:
        touched: set[tuple[str, tuple[Any, ...]]] = set()
        checks: list[RowCheck] = []
        for txn in group:
            for rev in txn.rows:
                if not self.tables:
                    # No live table given (a failover's catch-up of every schema): the server checks
                    # each row as a replica's SQL thread does (1032, 1062).
                    continue
                lt = self._live(rev)
                if not lt.key:
                    continue  # the server finds such rows by their whole image: 1032 when it cannot
                for b, a in rev.images:
                    if rev.kind == WRITE:
                        touched.add((lt.table, rev.key_values(a, lt.key)))  # type: ignore[arg-type]
                        continue
                    assert b is not None
                    image = rev.values(b)
                    k = (lt.table, tuple(image[i] for i in lt.key))
                    if k not in touched:
                        touched.add(k)
                        checks.append(RowCheck(lt, self._compare(rev), image))
                    if a is not None:
                        touched.add((lt.table, rev.key_values(a, lt.key, after=True)))
        if checks and any(st != SAME for st in conflicts.states(self.sql, checks)):
            return False
        expected = {WRITE: 0, UPDATE: 0, DELETE: 0}
        for txn in group:
            for rev in txn.rows:
                expected[rev.kind] += len(rev)
        try:
            self._send(self._statements([(rev, None) for txn in group for rev in txn.rows]), expected, group[0])
        except SqlError as exc:
            if exc.errno in (1032, 1062):  # a row missing, a key taken: the slow path says which
                self._refused = exc.render()
                return False
            raise
        return True

    def _statements(self, items: list[tuple[RowsEvent, list[bytes] | None]]) -> list[str]:
        return build.statements(items, self._f(), target_schema=self.opts.target_schema, limit=self.stmt_bytes)

    # -- the slow path: event by event, each row checked ------------------------------------------
    def _exact(self, group: list[Transaction]) -> int:
        applied = 0
        for txn in group:
            for rev in txn.rows:
                events, counts = self._resolve(txn, rev)
                applied += sum(counts.values())
                if events:
                    self._send(self._statements([(rev, events)]), counts, txn)
        return applied

    def _send(self, statements: list[str], expected: dict[str, int], txn: Transaction) -> None:
        """Run BINLOG statements and make sure the server applied every row they hold: a rows
        event whose table the server did not open (a Table_map after the statement's first
        rows event) is left out silently otherwise. The session's handler counters say what
        it wrote (cascades only add to them)."""
        before = self._handler_counts()
        for stmt in statements:
            self.sql.query(stmt)
        after = self._handler_counts()
        short = {k: (n, after[k] - before[k]) for k, n in expected.items() if after[k] - before[k] < n}
        if short:
            what = ", ".join(f"{k}s: {n} in the events, {got} applied" for k, (n, got) in short.items())
            raise ActionError(f"the server left rows out applying the transactions at {_where(txn)} ({what}); that group was "
                              "rolled back", hint="this is a defect of the replay: report it with the binlog position")

    def _handler_counts(self) -> dict[str, int]:
        rows = self.sql.query("SHOW SESSION STATUS WHERE Variable_name IN ('Handler_write', 'Handler_update', 'Handler_delete')").rows
        got = {str(r["Variable_name"]).lower(): int(r["Value"]) for r in rows}
        return {WRITE: got.get("handler_write", 0), UPDATE: got.get("handler_update", 0), DELETE: got.get("handler_delete", 0)}

    def _resolve(self, txn: Transaction, rev: RowsEvent) -> tuple[list[bytes], dict[str, int]]:
        def record(c: Conflict) -> None:
            self.stats.conflicts += 1
            if len(self.stats.conflict_list) < 100:
                self.stats.conflict_list.append(c)

        return resolve(self.sql, txn, rev, self._live(rev), self._compare(rev), self._f(), self.opts.on_conflict, record)


def _format(fde: FormatDescription) -> tuple[Any, ...]:
    """What a Format_description says about reading events (not when or by whom it was written)."""
    return (fde.binlog_version, fde.post_header, fde.checksum, fde.server_version)


def _where(txn: Transaction) -> str:
    return f"{txn.file}:{txn.pos}" + (f" (GTID {txn.gtid})" if txn.gtid else "")


def _explained(exc: SqlError, group: list[Transaction]) -> ActionError:
    hint = exc.hint
    if exc.errno in (1227, 1044, 1142):
        hint = "BINLOG statements need SUPER or BINLOG REPLAY (MariaDB 10.5.2+) for the replaying account"
    where = _where(group[0]) + (f" … {_where(group[-1])}" if len(group) > 1 else "")
    return ActionError(f"applying the transactions at {where}: {exc.render()}; that group was rolled back", hint=hint)
