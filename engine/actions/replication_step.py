"""What every state of the ``replication`` action shares: the action's view of its server and
the inventory, waiting for the server to show a change, and the write-ahead undo record of the
threads. The states themselves (replication_change, replication_catchup) and the action
(replication) build on this module; it imports none of them."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from engine.actions.base import Action
from engine.errors import ActionError
from engine.language.durations import format_duration, parse_duration
from engine.secrets import Secret

if TYPE_CHECKING:  # the view (failover assessment) and the server's state are imported when a step runs, not to validate one
    from engine.actions.replication_view import Peers
    from engine.mysql.replication import ReplicationState


class ReplicationStep(Action):
    """The helpers of the ``replication`` action (registered in engine/actions/replication.py)."""

    def peers(self) -> Peers:
        from engine.actions.replication_view import Peers

        return Peers(self.ctx)

    def read(self) -> ReplicationState:
        from engine.actions.replication_view import read_again

        return read_again(self.ctx.sql())

    def _timeout(self, default: str) -> float:
        return parse_duration((self.args or {}).get("timeout", default))

    def _threads(self) -> tuple[bool, bool]:
        which = (self.args or {}).get("threads", "both")
        return which in ("both", "io"), which in ("both", "sql")

    def _data(self, st: ReplicationState, **extra: Any) -> dict[str, Any]:
        from engine.actions.replication_view import state_data

        return dict(state_data(st, self.peers()), **extra)


def threads_of(st: ReplicationState) -> dict[str, bool]:
    return {"io": bool(st.link and st.link.io), "sql": bool(st.link and st.link.sql)}


def previous_state(st: ReplicationState) -> dict[str, Any]:
    """The undo record: what the server's replication was before this step."""
    link = st.link
    return {
        "revert": "replication",
        "link": None if link is None else {
            "host": link.source_host, "port": link.source_port, "user": link.source_user,
            "gtid": link.uses_gtid, "file": link.exec_log.file, "pos": link.exec_log.pos,
        },
        "threads": threads_of(st),
        "read_only": st.read_only, "super_read_only": st.super_read_only,
    }


def note_previous(a: ReplicationStep, st: ReplicationState) -> dict[str, Any]:
    """Write-ahead: the state to go back to is journaled before anything changes (a kill
    between the change and the step's outcome still leaves rollback its undo)."""
    prev = a.ctx.notes.get("previous")
    if not isinstance(prev, dict):
        prev = previous_state(st)
        a.ctx.note(previous=prev)
    return prev


def set_threads(a: ReplicationStep, st: ReplicationState, io: bool, sql: bool) -> None:
    d, sess = st.dialect, a.ctx.sql()
    now = threads_of(st)
    for which, want in (("io", io), ("sql", sql)):
        if now[which] and not want:
            sess.query(d.threads("STOP", which))
    for which, want in (("io", io), ("sql", sql)):
        if want and not now[which]:
            sess.query(d.threads("START", which))


def wait_until(action: ReplicationStep, what: str, limit: float, done: Any, fail: Any = None) -> ReplicationState:
    """Poll the server until ``done(state)``; ``fail(state)`` gives a reason to stop early."""
    end = time.monotonic() + limit
    pause = 0.05
    while True:
        st = action.read()
        if done(st):
            return st
        why = fail(st) if fail is not None else None
        if why:
            raise ActionError(f"{what}: {why}")
        remaining = action.ctx.remaining()
        if time.monotonic() >= end or (remaining is not None and remaining <= pause):
            raise ActionError(f"waited {format_duration(limit)} for {what}: not yet",
                              hint="a longer timeout:, or look at the replica (replication: {state: status})")
        if action.ctx.interrupted.is_set():
            raise ActionError(f"interrupted while waiting for {what}")
        time.sleep(pause)
        pause = min(pause * 2, 0.5)


def secret(value: Any) -> Secret | None:
    if value is None:
        return None
    return value if isinstance(value, Secret) else Secret(str(value))

