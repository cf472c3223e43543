"""``resume_writes``: reopen what this run's ``stop_writes`` fenced — exactly the state before
the fence (issue 15 item 16): read_only as it was (a server read-only before stays read-only:
opening a standby is a split brain), only the accounts the fence locked unlocked, a frozen
replica's SQL thread started again.

What the fence did comes from the run itself (``stop_writes`` shares a :class:`FenceRecord`,
journaled, so a resumed run knows it too). Without a fence in this run there is nothing to
restore and the step says so; ``to:`` sets an explicit state instead.
"""

from __future__ import annotations

from typing import Any, ClassVar

from engine.actions.base import Action, Probe, register
from engine.actions.stop_writes import undo_fence
from engine.actions.guard import check_identity
from engine.errors import ActionError
from engine.model import Status, StepResult
from engine.mysql.fence import (FENCE_KEY, FenceRecord, FenceState, FenceUndo, apply_undo, read_fence_state, same_state,
                                undo_pending)
from engine.mysql.fence_accounts import account_locks
from engine.mysql.replication import read_link


@register
class ResumeWrites(Action):
    """Put back what this run's fence changed (or set an explicit state with ``to``).

    ```yaml
    - name: Reopen the primary
      resume_writes: {}                       # the state before this run's stop_writes
    - resume_writes: {to: {read_only: false}} # explicit (crash recovery: no fence in the run)
    ```

    Verify row counts before reopening (Travis CI 2018). Registers ``previous`` (the state
    found), ``state``, ``unlocked`` (accounts) and ``replica_started``. Undo puts the fence back.
    """

    name = "resume_writes"
    mutating = True
    idempotent = True
    reversible = True
    undo_idempotent = True  # by the state it finds
    params_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "to": {
                "type": "object", "additionalProperties": False,
                "description": "the state to set instead of the one before this run's fence",
                "properties": {
                    "read_only": {"type": "boolean", "description": "@@read_only to set"},
                    "super_read_only": {"type": "boolean", "description": "@@super_read_only to set (MySQL/Percona; ignored on MariaDB)"},
                },
            },
        },
    }

    def _target(self) -> FenceUndo:
        """What to put back: this run's fence record (state before it, accounts it locked,
        replica it froze), the state overridden by ``to:``."""
        rec = FenceRecord.from_dict(self.ctx.run_state.get(FENCE_KEY, {}).get(self.ctx.host.name))
        to = (self.args or {}).get("to")
        undo = rec.undo() if rec is not None else FenceUndo()
        if to:
            ro = bool(to.get("read_only", False))
            sro = to.get("super_read_only")
            undo = FenceUndo(state=FenceState(ro, None if sro is None else bool(sro) and ro), unlock=undo.unlock,
                             replica_sql=undo.replica_sql)
        elif rec is None:
            raise ActionError(f"this run did not fence {self.ctx.host.name}: nothing says what read_only was before "
                              "(reopening a server that was read-only would make a second primary)",
                              hint="run stop_writes earlier in this runbook, or set the state explicitly: "
                                   "resume_writes: {to: {read_only: false}}")
        return undo

    def probe(self) -> Probe:
        sql = self.ctx.sql()
        if self.ctx.check_mode and not (self.args or {}).get("to") and not self.ctx.run_state.get(FENCE_KEY, {}).get(self.ctx.host.name):
            # A check run only simulated stop_writes: what it would record is not known yet.
            now = read_fence_state(sql)
            return Probe(done=False, state={"previous": now.to_dict(), "state": now.to_dict()},
                         would="put back the state before this run's fence (recorded when stop_writes runs)")
        target = self._target()
        pending = undo_pending(sql, target)
        now = read_fence_state(sql)
        return Probe(done=not pending, state={"previous": now.to_dict(), "state": now.to_dict(), "unlocked": [],
                                              "replica_started": False}, would="; ".join(pending))

    def apply(self) -> StepResult:
        sql = self.ctx.sql()
        check_identity(self.ctx, "resume writes")
        target = self._target()
        before = read_fence_state(sql)
        locks = account_locks(sql) if target.unlock else {}
        unlocking = tuple(a for a in target.unlock if locks.get(a))
        link = read_link(sql) if target.replica_sql is not None else None
        starting = link is not None and target.replica_sql is True and not link.sql
        # The undo of a reopen is the fence again: the state found, the accounts re-locked,
        # the replica frozen again. Journaled before the change.
        undo = FenceUndo(state=None if target.state is None or same_state(before, target.state) else before,
                         lock=unlocking, replica_sql=False if starting else None)
        self.ctx.note(undo=undo.to_dict())
        did = apply_undo(sql, target)
        state = read_fence_state(sql)
        data = {"previous": before.to_dict(), "state": state.to_dict(), "unlocked": [str(a) for a in unlocking],
                "replica_started": starting}
        if not did:
            return StepResult(Status.OK, msg=f"already as before the fence ({state})", data=data)
        msg = "; ".join(did)
        if state.read_only:
            msg += " (read_only stays ON: it was ON before this run's fence)" if not (self.args or {}).get("to") else ""
        return StepResult(Status.CHANGED, msg=msg, data=data, undo=undo.to_dict())

    def undo_of_found(self, probe: Probe) -> Any:
        undo = FenceUndo.from_dict(self.ctx.notes.get("undo"))
        return None if undo.empty else undo.to_dict()

    def undo(self, record: Any) -> StepResult:
        return undo_fence(self, FenceUndo.from_dict(record), "fence again (undo resume_writes)")
