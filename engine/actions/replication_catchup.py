"""``replication: {state: caught_up, source: OLD}`` when the source does not answer: MHA's promise
— copy the transactions only the dead primary has from its binlog files, read over its host's
shell, into this replica, so nothing committed is lost.

* **Which**: this replica first applies its relay log, then its replication threads are stopped
  (a source that comes back must not send the same transactions while they are applied). The
  source's binlog files (``binlogs:``, else the source's ``mysql_binlog_dir``) are read from
  where this replica's SQL thread stopped in them (``exec_log``), through the one binlog reader
  (``engine.mysql.binlog``), every schema; what this replica has (its executed GTIDs) is left out.
* **How**: each transaction under its own, original GTID (MariaDB ``gtid_domain_id``,
  ``server_id``, ``gtid_seq_no``; MySQL ``GTID_NEXT``), the server applying the row events
  itself (``BINLOG '…'``) and checking each row as a replica's SQL thread does. The GTID is the
  progress record: a kill at any instant, then ``runbook resume``, applies each exactly once.
  The first transaction of each MariaDB domain must be the next sequence number after this
  replica's: anything else means the histories differ, and nothing is applied.
* **Refused** (nothing applied, the transactions named): a statement in the gap (DDL,
  statement-based DML: nothing a binlog says is executed), a transaction without its COMMIT in
  the middle of the files. One at the very end is the source's last, uncommitted write (it
  crashed while writing it) and is left out, as InnoDB's recovery would have.
* **Unreadable** (no directory, no file, no shell): with ``on_unreadable: report`` the step
  ends ``ok`` with a warning and registers ``lost``: the GTID after which the source's writes
  are missing, when that transaction was committed, how far this replica had read the source's
  binlog, and when the source was found not answering; ``fail`` (the default) fails the step.

Registered: ``applied`` (transactions), ``gtids`` (the first and last applied), ``from``
(``{file, pos}`` where reading started), ``window`` (the first and last commit times), ``lost``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.actions.replication_step import ReplicationStep, note_previous, set_threads, threads_of, wait_until
from engine.errors import ActionError, RunbookError
from engine.model import Status, StepResult
from engine.mysql.gtid import MariadbGtidPos
from engine.mysql.replication import ReplicationState

if TYPE_CHECKING:
    from engine.mysql.binlog.reader import Transaction


def _when(epoch: int | float | None) -> str | None:
    return None if not epoch else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


@dataclass
class Gap:
    """What the source's files hold that this replica lacks (the first pass: nothing written)."""

    txns: list[dict[str, Any]] = field(default_factory=list)  # gtid, file, pos, time, rows
    refusals: list[str] = field(default_factory=list)
    start: tuple[str, int] | None = None
    tail_left_out: str | None = None  # the source's last write, never committed

    @property
    def gtids(self) -> list[str]:
        return [str(t["gtid"]) for t in self.txns]


def binlog_dir(a: ReplicationStep, src: str) -> str | None:
    d = (a.args or {}).get("binlogs") or a.peers().var(src, "mysql_binlog_dir")
    return str(d) if d else None


def _source(a: ReplicationStep, src: str, directory: str) -> Any:
    from engine.mysql.binlog.sources import ArchiveSource
    from engine.transport.local import LocalShell

    conns = a.peers()._conns(src)
    shell = conns.shell()
    return ArchiveSource(shell, directory, host=src, local=isinstance(shell, LocalShell))


def _start(a: ReplicationStep, st: ReplicationState, src: str, source: Any) -> tuple[str, int]:
    """Where this replica's SQL thread stopped in the source's binlog, when it replicated from
    ``src``; else the source's first file (every transaction this replica has is skipped)."""
    host, port = a.peers().address(src)
    link = st.link
    loop = ("127.0.0.1", "localhost", "::1")
    if (link is not None and link.exec_log.file and link.exec_log.pos and link.source_port == port
            and (link.source_host == host or (link.source_host in loop and host in loop))):
        return link.exec_log.file, int(link.exec_log.pos)
    files = source.files()
    if not files:
        raise ActionError(f"no binlog file in {source.description}")
    return files[0].name, 4


def _reader(a: ReplicationStep, st: ReplicationState, source: Any, start: tuple[str, int]) -> Any:
    from engine.mysql.binlog.covered import Covered
    from engine.mysql.binlog.reader import BinlogReader

    mine = st.executed
    return BinlogReader(source, schema=None, tables=None, start=start, covered=Covered(mine) if mine else None)


def _contiguous(st: ReplicationState, txn: Transaction, seen: set[int]) -> str | None:
    """MariaDB: the first transaction of a domain must follow this replica's last one."""
    if st.flavor != "mariadb" or not txn.gtid:
        return None
    d, _, n = (int(x) for x in txn.gtid.split("-"))
    if d in seen:
        return None
    seen.add(d)
    have = MariadbGtidPos.parse(st.executed).seq(d)
    if n != have + 1:
        return (f"the source's next transaction of domain {d} is {txn.gtid}, but this replica is at {d}-?-{have}: "
                "the histories differ (a transaction is missing or was written elsewhere); nothing was applied")
    return None


def _is_truncated_tail(exc: RunbookError, source: Any) -> bool:
    files = source.files()
    return "truncated" in exc.message and bool(files) and files[-1].name in exc.message


def read_gap(a: ReplicationStep, st: ReplicationState, src: str, directory: str) -> Gap:
    """First pass: the transactions to apply and every reason not to (raises when unreadable)."""
    source = _source(a, src, directory)
    try:
        start = _start(a, st, src, source)
        reader = _reader(a, st, source, start)
        gap = Gap(start=start)
        seen: set[int] = set()
        try:
            for txn in reader.transactions():
                why = _contiguous(st, txn, seen)
                if why:
                    gap.refusals.append(why)
                if txn.queries or txn.changes:
                    text = "; ".join(q.text[:200] for q in txn.queries) or ", ".join(c.kind for c in txn.changes)
                    gap.refusals.append(f"{txn.gtid or ''} at {txn.file}:{txn.pos} is a statement, not row events ({text}): "
                                        "apply it by hand (nothing a binlog says is executed here), then resume")
                gap.txns.append({"gtid": txn.gtid, "file": txn.file, "pos": txn.pos, "end_pos": txn.end_pos, "time": txn.time,
                                 "rows": txn.row_total()})
        except RunbookError as exc:
            if not _is_truncated_tail(exc, source):
                raise
            gap.tail_left_out = f"a partial event at the end of the source's last file ({exc.message}): it was never committed"
        for r in reader.refusals:
            if "end inside a transaction" in r:  # at the very end: the write the source died in
                gap.tail_left_out = f"{r}: the source's last write, never committed (left out)"
                continue
            gap.refusals.append(r)
        return gap
    finally:
        source.close()


def _stop_threads(a: ReplicationStep, st: ReplicationState) -> dict[str, Any] | None:
    if st.link is None or not any(threads_of(st).values()):
        return a.ctx.notes.get("previous")
    undo = note_previous(a, st)
    set_threads(a, st, False, False)
    return undo


def _drain(a: ReplicationStep) -> ReplicationState:
    """Apply the relay log first (start the SQL thread if it is stopped), wait until it has."""

    st = a.read()
    if st.link is None or not st.unapplied():
        return st
    if not threads_of(st)["sql"]:
        note_previous(a, st)
        set_threads(a, st, threads_of(st)["io"], True)

    def failing(s: ReplicationState) -> str | None:
        return f"the SQL thread stopped: {s.link.sql_error}" if s.link is not None and s.link.sql_error else None

    return wait_until(a, f"{a.ctx.host.name} to apply its relay log", a._timeout("5m"), lambda s: not s.unapplied(), failing)


def probe(a: ReplicationStep, st: ReplicationState, src: str) -> tuple[bool, str] | None:
    """Done when the files hold nothing this replica lacks; None (cannot tell) when unreadable."""
    directory = binlog_dir(a, src)
    if directory is None:
        return None
    try:
        gap = read_gap(a, st, src, directory)
    except RunbookError:
        return None
    if not gap.txns:
        return True, ""
    return False, (f"apply {len(gap.txns)} transaction(s) only {src} has, from its binlog files in {directory} "
                   f"({gap.gtids[0]} … {gap.gtids[-1]}), keeping their GTIDs")


def apply(a: ReplicationStep, src: str, down: str) -> StepResult:
    """The source ``src`` does not answer (``down`` says why): catch up from its files."""
    from engine.mysql.binlog.apply import Applier, ApplyOptions

    directory = binlog_dir(a, src)
    st = _drain(a)
    undo = _stop_threads(a, st)
    st = a.read()
    if directory is None:
        return _unreadable(a, st, src, f"no binlog directory is known for {src} (binlogs:, or mysql_binlog_dir in the inventory)",
                           down, undo)
    try:
        gap = read_gap(a, st, src, directory)
    except RunbookError as exc:
        return _unreadable(a, st, src, exc.message, down, undo)
    if gap.refusals:
        raise ActionError(f"catching up from {src}'s binlog files is refused, nothing was applied: " + "; ".join(gap.refusals[:5]))
    data: dict[str, Any] = {"from": {"file": gap.start[0], "pos": gap.start[1]} if gap.start else None, "lost": None,
                            "tail_left_out": gap.tail_left_out}
    if not gap.txns:
        return StepResult(Status.OK, msg=f"{src}'s binlog files hold nothing this replica lacks", data=a._data(st, applied=0, **data),
                          undo=undo)
    if a.ctx.check_mode:
        raise AssertionError("check mode never applies")  # guarded by ReplicationStep.check
    source = _source(a, src, directory)
    try:
        assert gap.start is not None
        reader = _reader(a, st, source, gap.start)
        applier = Applier(a.ctx.sql(), {}, ApplyOptions(keep_gtids=True, on_conflict="error"), progress=None)
        done: list[str] = []

        def committed(stats: Any) -> None:
            done.append(str(stats.last_gtid))
            a.ctx.progress(len(done), len(gap.txns), "transactions")

        wanted = set(gap.gtids)
        applier.apply((t for t in reader.transactions() if t.gtid in wanted), on_commit=committed)
    finally:
        source.close()
    after = a.read()
    left = [g for g in gap.gtids if not _has(after, g)]
    if left:
        raise ActionError(f"after the catch-up this replica still lacks {', '.join(left[:5])}")
    first, last = gap.txns[0], gap.txns[-1]
    data.update(applied=len(gap.txns), gtids=[first["gtid"], last["gtid"]], window=[_when(first["time"]), _when(last["time"])],
                rows=sum(int(t["rows"]) for t in gap.txns))
    msg = (f"applied {len(gap.txns)} transaction(s) only {src} had ({first['gtid']} … {last['gtid']}, committed "
           f"{_when(first['time'])} … {_when(last['time'])}) from its binlog files, with their GTIDs; gtid {after.executed}")
    warnings = [f"{src}: {gap.tail_left_out}"] if gap.tail_left_out else []
    return StepResult(Status.CHANGED, msg=msg, data=a._data(after, **data), undo=undo, warnings=warnings)


def _has(st: ReplicationState, gtid: str) -> bool:
    from engine.mysql.gtid import parse_gtids

    return st.gtids().contains(parse_gtids(gtid, st.flavor))


def _unreadable(a: ReplicationStep, st: ReplicationState, src: str, why: str, down: str, undo: Any) -> StepResult:
    """The source's writes after what this replica has cannot be read: say exactly what is lost."""
    lost = lost_window(a, st, src, why, down)
    if (a.args or {}).get("on_unreadable", "fail") != "report":
        raise ActionError(lost["text"], hint="on_unreadable: report goes on (the failover then promotes without them); "
                                             "or make the files readable (binlogs:) and run again")
    return StepResult(Status.OK, msg=lost["text"], data=a._data(st, applied=0, lost=lost), undo=undo, warnings=[lost["text"]])


def lost_window(a: ReplicationStep, st: ReplicationState, src: str, why: str, down: str) -> dict[str, Any]:
    """What is known of the writes lost with the source: after which GTID (and when that one
    was committed), how far this replica had read the source's binlog, when the source was
    found down."""
    mine = st.gtids()
    first_lost: list[str] = []
    if isinstance(mine, MariadbGtidPos):
        server = st.link.source_server_id if st.link is not None else None
        for d, (s, n) in sorted(mine.domains.items()):
            if server is None or s == server:
                first_lost.append(f"{d}-{s}-{n + 1}")
    else:
        for key, ivs in sorted(mine.sets.items()):  # type: ignore[union-attr]
            first_lost.append(f"{key}:{ivs[-1][1] + 1}")
    after_time = _last_commit_time(a, st)
    read = st.link.source_log.to_dict() if st.link is not None else None
    now = time.strftime("%Y-%m-%d %H:%M:%S")
    text = f"LOST: what {src} committed after {st.executed or 'nothing'}"
    if after_time:
        text += f" (that one committed {after_time})"
    text += (f" — from {', '.join(first_lost) or 'its next GTID'} on, until it stopped (found not answering at {now}: "
             f"{down})")
    if read:
        text += f"; this replica had read its binlog up to {read['file']}:{read['pos']}"
    text += f". {src}'s binlog files cannot be read: {why}"
    return {"source": src, "after_gtid": st.executed or None, "after_time": after_time, "first_lost": first_lost,
            "source_read_up_to": read, "source_down_at": now, "source_error": down, "unreadable": why, "text": text}


def _last_commit_time(a: ReplicationStep, st: ReplicationState) -> str | None:
    """When the last transaction this replica has was committed (its own binlog's last one)."""
    from engine.actions._binlog import BinlogInputs
    from engine.mysql.binlog.reader import BinlogReader

    try:
        source = BinlogInputs(a.ctx, {"binlogs": "server"}).source()
        files = source.files()
        last = None
        for f in reversed(files[-2:]):
            reader = BinlogReader(source, schema=None, tables=None, start=(f.name, 4))
            for txn in reader.transactions():
                last = txn
            if last is not None:
                break
        return _when(last.time) if last is not None else None
    except RunbookError:
        return None

