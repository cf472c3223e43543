"""The one reader of binlog events, shared by ``binlog_find``, ``binlog_replay``,
``binlog_flashback`` and failover: events from a source, grouped into transactions, filtered
to one schema's listed tables *before* any row image is decoded.

```python
reader = BinlogReader(source, schema="shop", tables={"orders"}, start=("binlog.000002", 1425),
                      end=EndAt("binlog.000003", 4711))
for txn in reader.transactions():
    txn.gtid, txn.file, txn.pos, txn.rows      # rows: RowsEvent of the listed tables only
```

A transaction is what the source committed as one: GTID event (MariaDB or MySQL) or BEGIN, its
events, then Xid or COMMIT; a DDL is a GTID and one Query. Its ``pos`` is where its first event
starts and ``end_pos`` where its last ends: the positions ``stop_before``, ``skip`` and the
progress table speak of. Each event's CRC32 is checked when the binlog has them.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from engine.mysql.binlog import events as E
from engine.mysql.binlog.events import BinlogError, Event, FormatDescription, Query
from engine.mysql.binlog.tablemap import TableMap, parse_table_map, table_id_of
from engine.mysql.binlog.covered import Covered
from engine.mysql.binlog.rows import Layout, RowsEvent
from engine.mysql.binlog.sources import BinlogSource, file_key
from engine.mysql.binlog.statements import TableChange, table_changes


@dataclass(frozen=True)
class EndAt:
    """Stop before the event at ``file:pos`` (exclusive), e.g. where a fence took effect."""

    file: str
    pos: int


@dataclass
class Transaction:
    """One committed transaction of the source, as far as the listed tables go."""

    file: str
    pos: int
    time: int
    gtid: str | None = None
    server_id: int = 0
    end_pos: int = 0
    rows: list[RowsEvent] = field(default_factory=list)  # rows events of the listed tables (kept ones)
    statements: dict[tuple[str, str], str] = field(default_factory=dict)  # (table, kind) -> first annotate / rows-query text
    queries: list[Query] = field(default_factory=list)  # statements other than BEGIN/COMMIT
    changes: list[TableChange] = field(default_factory=list)  # DDL / statement-based DML of listed tables
    row_counts: dict[tuple[str, str], int] = field(default_factory=dict)  # (table, kind) -> rows (when counted)
    other_rows_events: int = 0
    xa: bool = False
    kept: bool = True
    counted: bool = False  # its row images are walked and counted (see BinlogReader's count)
    fde: FormatDescription | None = None  # the Format_description its events are read with
    digest: int = 0  # CRC32 over its events' checksums (or bytes): see BinlogReader's ``digest``
    _standalone: bool = False
    _begun: bool = False

    @property
    def touched(self) -> bool:
        """It changes a listed table (rows, DDL or a statement)."""
        return bool(self.rows or self.changes or self.row_counts)

    def row_total(self) -> int:
        return sum(self.row_counts.values()) if self.row_counts else sum(len(r) for r in self.rows)


_END = re.compile(r"(?is)^\s*(commit|rollback)(\s+work)?\s*(/\*.*?\*/\s*)?;?\s*$")


def _finishes(q: Query) -> bool:
    """COMMIT / ROLLBACK of the whole transaction (not ROLLBACK TO SAVEPOINT)."""
    return bool(_END.match(q.text))


class BinlogReader:
    """Transactions from ``start`` (a file/pos) to ``end`` of the events of ``source``.

    * ``covered``: a GTID state; transactions it covers are not part of the window (a dump
      taken with ``--gtid``).
    * ``stop``: a test on each transaction's head (gtid, file, pos, time): True ends the window
      before it (``stop_before`` a GTID or a time).
    * ``keep``: a test on a transaction's head; False: its row events are counted, not kept.
    * ``count_rows``: walk every kept or counted image (binlog_find, check mode).
    * ``count``: a test on a transaction's head; True: its images are counted even without
      ``count_rows`` (a replay counts the rows of the transactions it leaves out, to say them).
    """

    def __init__(self, source: BinlogSource, *, schema: str | None, tables: set[str] | None, start: tuple[str, int],
                 end: EndAt | None = None, covered: Covered | None = None,
                 stop: Callable[[Transaction], bool] | None = None, keep: Callable[[Transaction], bool] | None = None,
                 count_rows: bool = False, unsigned: Callable[[str, str], set[int]] | None = None, statements: bool = True,
                 count: Callable[[Transaction], bool] | None = None, digest: bool = False):
        self.source, self.schema, self.tables = source, schema, tables
        self.start, self.end, self.covered = start, end, covered
        self.stop, self.keep, self.count_rows, self.count = stop, keep, count_rows, count
        self.unsigned, self.digest = unsigned, digest
        self.statements = statements  # keep the Annotate_rows / Rows_query text (binlog_find shows it)
        self.fde: FormatDescription | None = None
        self._layouts: dict[bytes, tuple[TableMap, Layout | None]] = {}
        #: where reading stopped: the end of the last transaction read, or the end point
        self.stopped_at: tuple[str, int] | None = None
        self.stopped_by: Transaction | None = None  # the transaction ``stop`` ended the window before
        self.bytes_read = 0
        self.refusals: list[str] = []  # events of the window no transaction may be replayed across

    # -- table maps ------------------------------------------------------------------------
    def listed(self, schema: str, table: str) -> bool:
        """Are this table's rows read (``schema`` None: every schema's)?"""
        return (self.schema is None or schema == self.schema) and (self.tables is None or table in self.tables)

    def _table_map(self, ev: Event) -> tuple[TableMap, Layout | None]:
        key = ev.data[E.HEADER_LEN:len(ev.data) - self.fde.tail] if self.fde and self.fde.tail else ev.data[E.HEADER_LEN:]
        hit = self._layouts.get(key)
        if hit is not None:
            tm, lay = hit
            return TableMap(tm.table_id, tm.schema, tm.table, tm.types, tm.meta, tm.nullable, tm.signed, tm.names, ev), lay
        assert self.fde is not None
        tm = parse_table_map(ev, self.fde)
        lay = None
        if self.listed(tm.schema, tm.table):
            unsigned = self.unsigned(tm.schema, tm.table) if self.unsigned else None
            lay = Layout.of(tm, unsigned)
        self._layouts[key] = (tm, lay)
        return tm, lay

    # -- the window ------------------------------------------------------------------------
    def transactions(self) -> Iterator[Transaction]:
        file, pos = self.start
        cur: Transaction | None = None
        last_end: tuple[str, int] | None = None
        maps: dict[int, tuple[TableMap, Layout | None]] = {}
        annotate: str | None = None
        start_file, start_pos = self.start
        end_key = (file_key(self.end.file), self.end.pos) if self.end is not None else None
        rows_types, gtid_types, notes = E.ROWS_KIND, (E.MARIA_GTID, E.MYSQL_GTID, E.ANONYMOUS_GTID), (E.ANNOTATE_ROWS, E.ROWS_QUERY)
        fde: FormatDescription | None = None
        digest, crc32 = self.digest, zlib.crc32
        for ev in self.source.events(file, pos):
            typ = ev.type
            if typ == E.FORMAT_DESCRIPTION:
                fde = self.fde = E.parse_fde(ev)
                continue
            if fde is None:
                raise BinlogError(f"{ev.file}:{ev.pos}: events before any Format_description event: not the start of a binlog")
            if fde.tail:
                E.verify(ev, 4)
            evpos = ev.pos
            if evpos is None or (ev.flags & E.ARTIFICIAL_F):
                continue  # made up by the server for the stream (fake Rotate, Gtid_list)
            if evpos < start_pos and ev.file == start_file:
                continue
            if cur is None and end_key is not None and (file_key(ev.file), evpos) >= end_key:
                self.stopped_at = (self.end.file, self.end.pos)  # type: ignore[union-attr]
                return
            self.bytes_read += ev.size
            last_end = (ev.file, evpos + ev.size)
            if typ in gtid_types or (cur is None and typ == E.QUERY):
                if cur is not None:  # a group without its end (a crash of the source): never replayed
                    self.refusals.append(f"{cur.file}:{cur.pos}: a transaction without its COMMIT (the source crashed mid-write?)")
                cur = Transaction(ev.file, evpos, ev.timestamp, server_id=ev.server_id, fde=fde)
                maps = {}
                annotate = None
                if typ == E.MARIA_GTID:
                    g = E.parse_maria_gtid(ev, fde)
                    cur.gtid, cur._standalone, cur.xa = g.text, g.standalone, g.xa
                elif typ == E.MYSQL_GTID:
                    cur.gtid = E.parse_mysql_gtid(ev, fde).text
                if self.stop is not None and self.stop(cur):
                    self.stopped_at, self.stopped_by = (cur.file, cur.pos), cur
                    return
                if self.keep is not None:
                    cur.kept = self.keep(cur)
                cur.counted = self.count_rows or (self.count is not None and self.count(cur))
                if typ != E.QUERY:
                    if digest:
                        cur.digest = crc32(ev.data[-4:] if fde.tail else ev.data)
                    continue
            if cur is None:
                if typ in E.REFUSED:
                    raise BinlogError(f"{ev.file}:{evpos}: {E.REFUSED[typ]} cannot be read here")
                if typ == E.INCIDENT:
                    self.refusals.append(f"{ev.file}:{evpos}: an Incident event (the source lost events here)")
                continue
            if digest:  # the event's CRC32 covers its header (position) and body, and was verified above
                cur.digest = crc32(ev.data[-4:] if fde.tail else ev.data, cur.digest)
            if typ in notes:
                if self.statements:
                    annotate = E.parse_annotate(ev, fde)
                continue
            done = self._event(cur, ev, typ, fde, maps, annotate)
            if typ in rows_types:
                annotate = None
            if done:
                cur.end_pos = evpos + ev.size
                txn, cur = cur, None
                self.stopped_at = (txn.file, txn.end_pos)
                if self.end is not None and txn.file == self.end.file and txn.pos < self.end.pos < txn.end_pos:
                    self.refusals.append(f"the end {self.end.file}:{self.end.pos} lies inside the transaction "
                                         f"{txn.gtid or ''} at {txn.file}:{txn.pos}-{txn.end_pos}: name a transaction's start")
                if self.covered is not None and txn.gtid and self.covered.covers(txn.gtid):
                    continue
                yield txn
        if cur is not None:
            self.refusals.append(f"{cur.file}:{cur.pos}: the binlogs end inside a transaction")
        elif last_end is not None:
            self.stopped_at = last_end

    def reached(self, end: EndAt) -> bool:
        """Reading got to ``end`` (not short of it: a source that ends earlier misses transactions)."""
        return self.stopped_at is not None and (file_key(self.stopped_at[0]), self.stopped_at[1]) >= (file_key(end.file), end.pos)

    def table_maps(self) -> list[TableMap]:
        """The Table_maps of the listed tables seen so far (one per distinct definition)."""
        return [tm for tm, lay in self._layouts.values() if lay is not None]

    def _event(self, cur: Transaction, ev: Event, typ: int, fde: FormatDescription,
               maps: dict[int, tuple[TableMap, Layout | None]], annotate: str | None) -> bool:
        """Add ``ev`` to ``cur``; True when it ends the transaction."""
        if typ in E.ROWS_KIND:
            entry = maps.get(table_id_of(ev, fde))
            if entry is None:
                raise BinlogError(f"{ev.file}:{ev.pos}: a rows event without its Table_map")
            tm, lay = entry
            if lay is None:
                cur.other_rows_events += 1
                at = E.HEADER_LEN + (4 if fde.post_header_len(typ) == 6 else 6)
                if ev.data[at] & E.STMT_END_F and cur.rows and not cur.rows[-1].head.flags & E.STMT_END_F:
                    cur.rows[-1].end_statement = True  # its statement's last event was left out
                return False
            if not cur.kept and not cur.counted:  # only that the table changed (and how) matters
                key = (tm.table, E.ROWS_KIND[typ])
                cur.row_counts[key] = cur.row_counts.get(key, 0)
                return False
            rev = RowsEvent.of(ev, fde, tm, lay)
            if cur.counted or not cur.kept:
                key = (tm.table, rev.kind)
                cur.row_counts[key] = cur.row_counts.get(key, 0) + len(rev)
            if annotate is not None:
                cur.statements.setdefault((tm.table, rev.kind), annotate)
            if cur.kept:
                cur.rows.append(rev)
            return False
        if typ == E.TABLE_MAP:
            tm, lay = self._table_map(ev)
            maps[tm.table_id] = (tm, lay)
            return False
        if typ == E.XID or typ == E.XA_PREPARE:
            return True
        if typ == E.QUERY:
            q = E.parse_query(ev, fde)
            verb = q.verb
            if verb == "begin" or (verb == "start" and "transaction" in q.text.lower()):
                cur._begun = True
                return False
            if _finishes(q):
                return True
            if verb == "xa":
                cur.xa = True
                return bool(re.match(r"(?i)^\s*xa\s+(prepare|commit|rollback)", q.text))
            cur.queries.append(q)
            listed = {(self.schema, t) for t in self.tables} if self.tables is not None and self.schema else None
            for ch in table_changes(q.text, q.schema or "", listed if listed is not None else None):
                if ch.schema == self.schema and (ch.table is None or self.tables is None or ch.table in self.tables):
                    cur.changes.append(ch)
            if self.tables is None and self.schema and q.verb in ("insert", "replace", "update", "delete", "load") and (q.schema == self.schema
                                                                                                    or f"{self.schema}." in q.text):
                cur.changes.append(TableChange(self.schema, None, "dml"))
            return cur._standalone or not cur._begun
        if typ in (E.ANNOTATE_ROWS, E.ROWS_QUERY, E.INTVAR, E.RAND, E.USER_VAR, E.IGNORABLE, E.BINLOG_CHECKPOINT,
                   E.ROTATE, E.STOP, E.GTID_LIST, E.PREVIOUS_GTIDS, E.HEARTBEAT, E.HEARTBEAT_V2, E.TRANSACTION_CONTEXT,
                   E.VIEW_CHANGE):
            return False
        if typ in (E.BEGIN_LOAD_QUERY, E.EXECUTE_LOAD_QUERY):
            if typ == E.EXECUTE_LOAD_QUERY and self.schema:
                cur.changes.append(TableChange(self.schema, None, "dml"))  # LOAD DATA logged as a statement
            return False
        if typ == E.INCIDENT:
            self.refusals.append(f"{ev.file}:{ev.pos}: an Incident event (the source lost events here)")
            return False
        if typ in E.REFUSED:
            raise BinlogError(f"{ev.file}:{ev.pos}: {E.REFUSED[typ]} cannot be read here")
        raise BinlogError(f"{ev.file}:{ev.pos}: an event of type {typ} inside a transaction, unknown to this reader")
