"""The fence: what ``stop_writes`` and ``resume_writes`` know about a server.

A fence is ``read_only=ON`` (never ``super_read_only``: it would stop the engine's own snapshot
and restore too, issue 18 item 3), the application accounts locked (``ALTER USER … ACCOUNT
LOCK``: pools cannot reconnect), the client sessions killed, and optionally a replica's SQL
thread stopped (a delayed replica keeps its pre-incident copy). Its types cross layers and
live in the journal:

* :class:`FenceState` — ``read_only`` / ``super_read_only`` of a server;
* :class:`FenceUndo` — the undo record of both actions (what to set, lock, unlock, restart);
* :class:`FenceRecord` — what *this run's* fences did to one host (the state before the first
  of them, the accounts they locked, where the binlog stood): shared with ``resume_writes``
  through ``ctx.share`` (journaled, so a resumed run still knows it).

Why the registered binlog position is exact (the END of what ``binlog_replay`` may replay):
``SET GLOBAL read_only=ON`` takes the global read lock and then blocks commits, so it returns
only after every write statement and commit in progress has finished (it waits up to
``lock_wait_timeout``); from then on a COMMIT of an account without READ_ONLY ADMIN/SUPER fails
(1290) and its transaction rolls back. The sessions that may still write (privileged ones) are
killed next, and the position is read only once each killed session has left the processlist
(a KILL is asynchronous: a privileged commit already under way finishes first). So every
client write is before the position, and the run's own later writes after it.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from engine.actions.guard import as_bool, global_variables
from engine.errors import SqlError
from engine.mysql.binlog.position import BinlogPosition
from engine.mysql.fence_accounts import Account
from engine.mysql.sqlutil import quote_ident
from engine.transport.base import Sql

FENCE_KEY = "fence"  # run_state key (ctx.share): host -> FenceRecord.to_dict()

# Threads that are not clients: replication, the event scheduler, background daemons.
_SYSTEM_USERS = ("system user", "event_scheduler")
_SYSTEM_COMMANDS = ("Daemon", "Slave_IO", "Slave_SQL", "Slave_worker", "Killed")


# --------------------------------------------------------------------------- types


@dataclass(frozen=True)
class FenceState:
    """``@@read_only`` and ``@@super_read_only`` (None where the server has none: MariaDB)."""

    read_only: bool
    super_read_only: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"read_only": self.read_only, "super_read_only": self.super_read_only}

    @classmethod
    def from_dict(cls, data: Any) -> FenceState | None:
        if not isinstance(data, dict) or "read_only" not in data:
            return None
        sro = data.get("super_read_only")
        return cls(bool(data["read_only"]), None if sro is None else bool(sro))

    def __str__(self) -> str:
        text = f"read_only={'ON' if self.read_only else 'OFF'}"
        return text + (f", super_read_only={'ON' if self.super_read_only else 'OFF'}" if self.super_read_only is not None else "")


def _accounts(data: Any) -> tuple[Account, ...]:
    return tuple(Account.parse(str(a)) for a in (data or []))


@dataclass(frozen=True)
class FenceUndo:
    """What undoing a fence (or a reopen) puts back, applied by :func:`apply_undo`.

    ``state``: the read_only/super_read_only to set (None: leave them); ``unlock``/``lock``:
    accounts to unlock or lock; ``replica_sql``: True starts the replica's SQL thread, False
    stops it, None leaves it. Each part is applied only where the server differs, so an undo
    runs again safely. Journal form: ``{"record": "fence", "state": …, "unlock": ["app@%"], …}``
    (an older journal's ``{"read_only": …, "super_read_only": …}`` still reads).
    """

    state: FenceState | None = None
    unlock: tuple[Account, ...] = ()
    lock: tuple[Account, ...] = ()
    replica_sql: bool | None = None

    @property
    def empty(self) -> bool:
        return self.state is None and not self.unlock and not self.lock and self.replica_sql is None

    def to_dict(self) -> dict[str, Any]:
        return {"record": "fence", "state": self.state.to_dict() if self.state else None,
                "unlock": [str(a) for a in self.unlock], "lock": [str(a) for a in self.lock], "replica_sql": self.replica_sql}

    @classmethod
    def from_dict(cls, data: Any) -> FenceUndo:
        if not isinstance(data, dict):
            return cls()
        if data.get("record") != "fence":  # the record of an older engine: the previous state only
            return cls(state=FenceState.from_dict(data))
        rs = data.get("replica_sql")
        return cls(state=FenceState.from_dict(data.get("state")), unlock=_accounts(data.get("unlock")),
                   lock=_accounts(data.get("lock")), replica_sql=None if rs is None else bool(rs))

    def plus(self, other: FenceUndo) -> FenceUndo:
        """This undo and ``other`` (an earlier attempt's): the earliest state, every account."""
        return FenceUndo(state=other.state or self.state,
                         unlock=tuple(dict.fromkeys([*other.unlock, *self.unlock])),
                         lock=tuple(dict.fromkeys([*other.lock, *self.lock])),
                         replica_sql=other.replica_sql if other.replica_sql is not None else self.replica_sql)


@dataclass(frozen=True)
class FenceRecord:
    """What this run's fences did to one host: ``previous`` is the state before the first of
    them (what ``resume_writes`` puts back), ``locked`` every account they locked, ``froze``
    whether they stopped the replica's SQL thread; ``binlog`` and ``killed`` as registered."""

    previous: FenceState
    locked: tuple[Account, ...] = ()
    froze: bool = False
    binlog: BinlogPosition | None = None
    killed: tuple[str, ...] = field(default=())

    def undo(self) -> FenceUndo:
        return FenceUndo(state=self.previous, unlock=self.locked, replica_sql=True if self.froze else None)

    def to_dict(self) -> dict[str, Any]:
        return {"previous": self.previous.to_dict(), "locked": [str(a) for a in self.locked], "froze": self.froze,
                "binlog": self.binlog.to_dict() if self.binlog else None, "killed": list(self.killed)}

    @classmethod
    def from_dict(cls, data: Any) -> FenceRecord | None:
        prev = FenceState.from_dict(data.get("previous")) if isinstance(data, dict) else None
        if prev is None:
            return None
        return cls(previous=prev, locked=_accounts(data.get("locked")), froze=bool(data.get("froze")),
                   binlog=BinlogPosition.from_dict(data.get("binlog")), killed=tuple(str(k) for k in data.get("killed") or []))

    def without(self, undo: FenceUndo) -> FenceRecord | None:
        """This record once ``undo`` (one stop_writes' undo) has run: None when that undo puts
        the state before the fence back (the run's fence is gone: a read_only found later is
        not this run's), else without the accounts it unlocks and the freeze it ends."""
        if undo.state is not None:
            return None
        return replace(self, locked=tuple(a for a in self.locked if a not in undo.unlock),
                       froze=self.froze and undo.replica_sql is not True)

    def adding(self, locked: tuple[Account, ...] = (), froze: bool = False) -> FenceRecord:
        return replace(self, locked=tuple(dict.fromkeys([*self.locked, *locked])), froze=self.froze or froze)


# --------------------------------------------------------------------------- read_only


def read_fence_state(sql: Sql) -> FenceState:
    v = global_variables(sql, ["read_only", "super_read_only"])
    return FenceState(bool(as_bool(v["read_only"])), as_bool(v["super_read_only"]))


def set_fence_state(sql: Sql, target: FenceState) -> None:
    """Put read_only/super_read_only exactly as ``target`` says (super_read_only only where
    the server has it and the target names it). MySQL: super_read_only=ON implies read_only,
    read_only=OFF implies super_read_only=OFF, so the order matters."""
    now = read_fence_state(sql)
    has_super = now.super_read_only is not None and target.super_read_only is not None
    if has_super and now.super_read_only and not target.super_read_only:
        sql.query("SET GLOBAL super_read_only = OFF")
    if now.read_only != target.read_only or (has_super and now.super_read_only and not target.read_only):
        sql.query(f"SET GLOBAL read_only = {'ON' if target.read_only else 'OFF'}")
    if has_super and target.super_read_only and not read_fence_state(sql).super_read_only:
        sql.query("SET GLOBAL super_read_only = ON")


def same_state(now: FenceState, target: FenceState) -> bool:
    """``now`` is ``target`` (super_read_only compared only where both name it)."""
    if now.read_only != target.read_only:
        return False
    return now.super_read_only is None or target.super_read_only is None or now.super_read_only == target.super_read_only


# --------------------------------------------------------------------------- sessions


@dataclass(frozen=True)
class Session:
    """A client session seen in the processlist."""

    id: int
    user: str
    host: str
    db: str | None = None
    command: str = ""
    time: int | None = None

    @property
    def who(self) -> str:
        """``user@host`` without the client port (what ``killed`` registers)."""
        host = self.host or ""
        head, sep, tail = host.rpartition(":")
        return f"{self.user}@{head if sep and tail.isdigit() else host}"

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "user": self.user, "host": self.host, "db": self.db, "command": self.command, "time": self.time}


def client_sessions(sql: Sql, except_users: list[str], only_users: list[str] | None = None,
                    own_ids: list[int] | None = None) -> list[Session]:
    """Client sessions a fence kills: not the engine's own, not replication or daemons."""
    params: list[Any] = [*_SYSTEM_USERS, *_SYSTEM_COMMANDS]
    cond = ""
    if except_users:
        cond += f" AND USER NOT IN ({', '.join(['%s'] * len(except_users))})"
        params += list(except_users)
    if only_users:
        cond += f" AND USER IN ({', '.join(['%s'] * len(only_users))})"
        params += list(only_users)
    res = sql.query(
        "SELECT ID AS id, USER AS user, HOST AS host, DB AS db, COMMAND AS command, TIME AS time"
        " FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID()"
        f" AND USER NOT IN (%s, %s) AND COMMAND NOT IN (%s, %s, %s, %s, %s) AND COMMAND NOT LIKE 'Binlog Dump%%'{cond}"
        " ORDER BY ID",
        params,
    )
    own = set(own_ids or ())
    out = []
    for r in res.rows:
        if int(r["id"]) in own:
            continue
        out.append(Session(id=int(r["id"]), user=str(r["user"] or ""), host=str(r["host"] or ""), db=r.get("db"),
                           command=str(r.get("command") or ""), time=None if r.get("time") is None else int(r["time"])))
    return out


def highest_session_id(sql: Sql) -> int:
    return int(sql.query("SELECT MAX(ID) AS m FROM information_schema.PROCESSLIST").rows[0]["m"] or 0)


def kill_sessions(sql: Sql, sessions: list[Session], wait: float) -> tuple[list[Session], list[Session]]:
    """``KILL CONNECTION`` each, then wait (up to ``wait`` seconds) until they have left the
    processlist: a KILL is asynchronous, and a privileged commit under way finishes first.
    Returns (killed, still there after the wait)."""
    killed: list[Session] = []
    for s in sessions:
        try:
            sql.query("KILL CONNECTION %s", [s.id])
            killed.append(s)
        except SqlError as exc:
            if exc.errno != 1094:  # unknown thread id: it ended on its own meanwhile
                raise
    if not killed:
        return killed, []
    ids = [s.id for s in killed]
    deadline = time.monotonic() + wait
    while True:
        marks = ", ".join(["%s"] * len(ids))
        present = {int(r["id"]) for r in sql.query(f"SELECT ID AS id FROM information_schema.PROCESSLIST WHERE ID IN ({marks})", ids).rows}
        if not present or time.monotonic() >= deadline:
            return killed, [s for s in killed if s.id in present]
        time.sleep(0.02)


# --------------------------------------------------------------------------- writes under the fence


def _probe_statement() -> str:
    # A table that cannot exist: a fenced server refuses the statement (1290) before it looks
    # for the table or checks privileges; an account that may write under read_only gets 1146
    # (no such table) or 1142 (no privilege). Nothing is written, nothing goes to the binlog.
    return f"DELETE FROM {quote_ident('_rb_fence_probe_' + uuid.uuid4().hex[:12])}.`t`"


def write_blocked(sql: Sql) -> tuple[bool, str, int | None]:
    """Does the fence stop writes on this session? (blocked, the statement, its errno)."""
    stmt = _probe_statement()
    try:
        sql.query(stmt)
    except SqlError as exc:
        return exc.errno == 1290, stmt, exc.errno
    return False, stmt, None


def privileged_writers(sql: Sql, flavor: str, version: tuple[int, int, int]) -> list[str]:
    """Accounts that can still write under read_only (to report, not to change)."""
    from engine.mysql.fence_privileges import holders, write_under_read_only

    return sorted(holders(sql, list(write_under_read_only(flavor, version))))


# --------------------------------------------------------------------------- applying an undo


def apply_undo(sql: Sql, undo: FenceUndo) -> list[str]:
    """Put the server back as ``undo`` says (read_only first, then accounts, then the replica):
    only what differs is changed. Returns what was done, for the step's message."""
    from engine.mysql.fence_accounts import account_locks, set_locked
    from engine.mysql.replication import dialect_of, read_link

    did: list[str] = []
    if undo.state is not None and not same_state(read_fence_state(sql), undo.state):
        set_fence_state(sql, undo.state)
        did.append(str(read_fence_state(sql)))
    if undo.unlock or undo.lock:
        locks = account_locks(sql)
        unlock = [a for a in undo.unlock if locks.get(a)]
        lock = [a for a in undo.lock if a in locks and not locks[a]]
        for a in unlock:
            set_locked(sql, a, False)
        for a in lock:
            set_locked(sql, a, True)
        if unlock:
            did.append("unlocked " + ", ".join(map(str, unlock)))
        if lock:
            did.append("locked " + ", ".join(map(str, lock)))
    if undo.replica_sql is not None:
        dialect = dialect_of(sql)
        link = read_link(sql, dialect)
        if link is not None and link.sql != undo.replica_sql:
            sql.query(dialect.threads("START" if undo.replica_sql else "STOP", "sql"))
            did.append("replica SQL thread " + ("started" if undo.replica_sql else "stopped"))
    return did


def undo_pending(sql: Sql, undo: FenceUndo) -> list[str]:
    """What :func:`apply_undo` would still change (empty: the server is as ``undo`` says)."""
    from engine.mysql.fence_accounts import account_locks
    from engine.mysql.replication import read_link

    out: list[str] = []
    if undo.state is not None and not same_state(read_fence_state(sql), undo.state):
        out.append(f"set {undo.state}")
    if undo.unlock or undo.lock:
        locks = account_locks(sql)
        unlock = [str(a) for a in undo.unlock if locks.get(a)]
        lock = [str(a) for a in undo.lock if a in locks and not locks[a]]
        if unlock:
            out.append("unlock " + ", ".join(unlock))
        if lock:
            out.append("lock " + ", ".join(lock))
    if undo.replica_sql is not None:
        link = read_link(sql)
        if link is not None and link.sql != undo.replica_sql:
            out.append(("start" if undo.replica_sql else "stop") + " the replica's SQL thread")
    return out
