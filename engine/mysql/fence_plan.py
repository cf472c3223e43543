"""What a fence would do on a server now (``stop_writes``' read-only look before it changes
anything), and its proof with an ordinary account."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from engine.actions.guard import sibling_session
from engine.errors import ActionError, ConnectError, SqlError
from engine.mysql.fence import FenceRecord, FenceState, Session
from engine.mysql.fence_accounts import Account
from engine.mysql.replication import ReplicaLink
from engine.mysql.sqlutil import quote_ident
from engine.secrets import Secret
from engine.transport.base import Sql


@dataclass
class FencePlan:
    """What a fence would do on this server now (from a read-only look)."""

    flavor: str
    version: tuple[int, int, int]
    now: FenceState
    record: FenceRecord | None  # this run's fence of this host, when it is still up
    to_kill: list[Session] = field(default_factory=list)
    to_lock: list[Account] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)
    admins_left: list[Account] = field(default_factory=list)  # lock_accounts: true never locks them
    replica: ReplicaLink | None = None
    freeze: bool = False
    binlog_on: bool = False

    @property
    def previous(self) -> FenceState:
        return self.record.previous if self.record is not None else self.now

    def would(self) -> list[str]:
        out = []
        if self.unmatched:
            out.append("lock_accounts " + ", ".join(map(repr, self.unmatched)) + " match no account")
        if self.freeze:
            out.append("stop the replica's SQL thread")
        if self.to_lock:
            out.append(f"lock {len(self.to_lock)} account(s): " + ", ".join(map(str, self.to_lock[:10])))
        if not self.now.read_only:
            out.append("set read_only=ON")
        if self.to_kill:
            out.append(f"kill {len(self.to_kill)} client session(s): " + ", ".join(f"{s.id} {s.who}" for s in self.to_kill[:10]))
        return out


def replica_facts(link: ReplicaLink) -> dict[str, Any]:
    """What ``stop_writes`` registers of a replica (``freeze_replica``): its source, its threads,
    its delay, and where its SQL thread stands (``executed``: the copy a frozen replica keeps).
    Only the default replication connection/channel (MariaDB multi-source: a ``sql`` step)."""
    return {"source": link.source, "sql_running": link.sql, "io_running": link.io_running == "Yes",
            "delay": link.sql_delay, "executed": link.applied_position().to_dict()}


def prove_fence(sql: Sql, user: str, password: Any) -> dict[str, Any]:
    """Try a harmless write as an ordinary account: it must fail with 1290.

    The write is a ``DELETE`` from a table that cannot exist: a fenced server refuses it with
    1290 before it looks for the table or checks privileges (even for an account with no
    privileges at all); an unfenced one answers 1146/1142, and nothing is ever written.
    """
    pw = password if isinstance(password, Secret) or password is None else Secret(str(password))
    probe = sibling_session(sql, user=user, password=pw, database=None, option_file=None)
    stmt = f"DELETE FROM {quote_ident('_rb_fence_probe_' + uuid.uuid4().hex[:12])}.`t`"
    try:
        probe.query(stmt)
        outcome: dict[str, Any] = {"user": user, "statement": stmt, "errno": None, "effective": False}
    except SqlError as exc:
        outcome = {"user": user, "statement": stmt, "errno": exc.errno, "effective": exc.errno == 1290}
    except ConnectError as exc:
        raise ActionError(f"cannot prove the fence: connecting as {user} failed: {exc.message}",
                          hint="check prove_with: user and password of an ordinary application account") from None
    finally:
        probe.close()
    return outcome
