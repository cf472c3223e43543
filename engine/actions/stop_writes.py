"""``stop_writes``: fence the server before a restore (``resume_writes`` reopens it).

Travis CI 2018: the API kept writing for 30 minutes into a database being restored. GitHub
2018: an old primary that could not be fenced took writes. So: lock the application accounts
(pools cannot reconnect), ``read_only=ON``, kill what is still connected, register where the
binlog stood when the fence took effect, and *prove* the fence with an ordinary account.

Never ``super_read_only`` (issue 18 item 3): it would stop the engine's own snapshot and
restore on MySQL/Percona. The engine's account must be able to write under read_only
(``READ_ONLY ADMIN`` on MariaDB ≥ 10.11, ``CONNECTION_ADMIN``/``SUPER`` on MySQL): checked
before anything changes (see :mod:`engine.mysql.fence_privileges`), and again after.

Every change keeps its undo however the step ends: the undo record is journaled before the
first change (``ctx.note``), a failure after the fence returns it with the failure, and a step
left in doubt gives it back from the note (``undo_of_found`` / ``undo_of_partial``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar

from engine.actions.base import Action, Probe, register
from engine.actions.guard import as_bool, check_identity, global_variables, server_flavor
from engine.errors import ActionError, OutcomeUnknown, RunbookError, SqlError
from engine.model import Status, StepResult
from engine.mysql import fence_privileges as privileges
from engine.mysql.binlog.status import server_position
from engine.mysql.fence import (FENCE_KEY, FenceRecord, FenceState, FenceUndo, Session, apply_undo, client_sessions,
                                highest_session_id, kill_sessions, privileged_writers, read_fence_state, write_blocked)
from engine.mysql.fence_plan import FencePlan, prove_fence, replica_facts
from engine.mysql.fence_accounts import Account, account_locks, current_account, match_accounts, set_locked
from engine.mysql.replication import Dialect, read_link
from engine.transport.base import Sql


@register
class StopWrites(Action):
    """Fence the server: lock the application accounts, read_only=ON, kill client sessions,
    register where the binlog stood, prove it.

    ```yaml
    - name: Fence the primary
      stop_writes:
        lock_accounts: [app, "report@10.0.%"]   # or true: the accounts of the sessions found
        kill_connections: true
        except_users: [repl, monitor]
        prove_with: {user: app, password: "{{ app_password }}"}
      register: fence                            # fence.binlog.pos: the end of a later replay
    ```

    Registers ``previous`` (the state before this run's fence) and ``state`` ({read_only,
    super_read_only}), ``binlog`` ({file, pos, gtid} when the fence took effect; null with
    the binlog off), ``killed`` (user@host of each session this run's fence killed;
    ``sessions_killed``: this step's, with their ids), ``locked`` (the accounts this run's fence
    locked), ``can_still_write`` (accounts read_only does not stop), ``replica``
    and ``proof``. Undo (and ``resume_writes``) puts back exactly the state before the fence.
    """

    name = "stop_writes"
    mutating = True
    idempotent = True
    reversible = True
    undo_idempotent = True  # by the state it finds
    run_marks: ClassVar[dict[str, str]] = {"fence": "binlog"}  # where the fence took effect: binlog_replay's end
    params_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "kill_connections": {"type": "boolean", "description": "kill client connections after fencing (default false)"},
            "except_users": {"type": "array", "items": {"type": "string", "minLength": 1},
                             "description": "users whose connections are never killed (replication, monitoring)"},
            "only_users": {"type": "array", "items": {"type": "string", "minLength": 1},
                           "description": "kill only these users' connections (default: every client but the exceptions)"},
            "lock_accounts": {
                "description": "accounts to lock (ALTER USER … ACCOUNT LOCK) so pools cannot reconnect: patterns "
                               "(app, app@%, app_*), or true for the accounts of the client sessions found",
                "oneOf": [{"type": "boolean"}, {"type": "array", "items": {"type": "string", "minLength": 1}}],
            },
            "lock_wait_timeout": {"type": "integer", "minimum": 1, "maximum": 31536000,
                                  "description": "seconds SET GLOBAL read_only may wait for running transactions (default 10)"},
            "kill_wait": {"type": "integer", "minimum": 0, "maximum": 3600,
                          "description": "seconds to wait for killed sessions to end before the binlog position is read (default 30)"},
            "engine_must_write": {"type": "boolean",
                                  "description": "the engine's own account must write under the fence (default true; false for a "
                                                 "fence-only runbook)"},
            "freeze_replica": {"type": "boolean",
                               "description": "on a replica: stop its SQL thread so it keeps its copy (undo starts it again)"},
            "prove_with": {
                "type": "object", "additionalProperties": False, "required": ["user"],
                "description": "an ordinary account whose harmless write must fail with 1290, or the step fails",
                "properties": {
                    "user": {"type": "string", "minLength": 1, "description": "the account's user name"},
                    "password": {"type": ["string", "null"], "description": "its password (masked everywhere)"},
                },
            },
        },
    }

    # -- looking ---------------------------------------------------------------------------
    def _arg(self, key: str, default: Any = None) -> Any:
        return (self.args or {}).get(key, default)

    def _record(self, now: FenceState) -> FenceRecord | None:
        """This run's fence of this host, when the server is still fenced (else it was undone)."""
        rec = FenceRecord.from_dict(self.ctx.run_state.get(FENCE_KEY, {}).get(self.ctx.host.name))
        return rec if rec is not None and now.read_only else None

    def _sessions(self, sql: Sql) -> list[Session]:
        return client_sessions(sql, self._arg("except_users") or [], self._arg("only_users"), self.ctx.conns.session_ids())

    def _targets(self, sql: Sql) -> list[Session]:
        if not self._arg("kill_connections"):
            return []
        # Connection ids only grow: a client that connected after the fence was set cannot
        # write, so it is not "left to kill" (pools reconnect at once; without the mark the
        # re-probe would never converge). The mark is journaled: a resume keeps it.
        mark = self.ctx.notes.get("mark")
        return [s for s in self._sessions(sql) if mark is None or s.id <= int(mark)]

    def _plan(self, sql: Sql) -> FencePlan:
        flavor, version = server_flavor(sql)
        now = read_fence_state(sql)
        plan = FencePlan(flavor, version, now, self._record(now))
        plan.binlog_on = bool(as_bool(global_variables(sql, ["log_bin"])["log_bin"]))
        plan.to_kill = self._targets(sql)
        if self._arg("freeze_replica"):
            plan.replica = read_link(sql, Dialect(flavor, version))
            if plan.replica is None:
                raise ActionError(f"freeze_replica: {self.ctx.host.name} is not a replica (SHOW REPLICA STATUS is empty)",
                                  hint="set freeze_replica only on a replica host (when: on its group)")
            plan.freeze = plan.replica.sql
        wanted = self._arg("lock_accounts")
        if wanted:
            self._plan_locks(sql, plan, wanted)
        return plan

    def _plan_locks(self, sql: Sql, plan: FencePlan, wanted: Any) -> None:
        locks = account_locks(sql)
        me = current_account(sql)
        if wanted is True:
            # The application accounts found: those of the client sessions (but never an
            # account that runs the server: it may be the operator's own).
            users = {s.user for s in self._sessions(sql)}
            found = [a for a in locks if a.user in users]
            admins = privileges.admin_accounts(sql, plan.flavor, plan.version)
            plan.admins_left = [a for a in found if a.quoted in admins and a != me]
            found = [a for a in found if a.quoted not in admins]
        else:
            found, plan.unmatched = match_accounts(list(wanted), list(locks))
        plan.to_lock = [a for a in found if a != me and not locks.get(a, True)]

    def _registered(self, plan: FencePlan, binlog: Any = None) -> dict[str, Any]:
        rec = plan.record
        return {
            "previous": plan.previous.to_dict(), "state": plan.now.to_dict(),
            "binlog": binlog.to_dict() if binlog is not None else (rec.binlog.to_dict() if rec and rec.binlog else None),
            "killed": list(rec.killed) if rec else [], "sessions_killed": [], "locked": [str(a) for a in rec.locked] if rec else [],
            "to_kill": [s.to_dict() for s in plan.to_kill], "to_lock": [str(a) for a in plan.to_lock],
            "replica": replica_facts(plan.replica) if plan.replica else None,
        }

    def probe(self) -> Probe:
        sql = self.ctx.sql()
        plan = self._plan(sql)
        would = plan.would()
        if not would and plan.record is None:
            # Read-only before this run: nothing to change, but the run must record that state
            # (resume_writes leaves such a server read-only), so apply still runs once.
            would = [f"record the state before the fence ({plan.now})"]
        binlog = None
        if not would and plan.record is not None and plan.record.binlog is None:
            binlog = server_position(sql, plan.flavor)  # a kill before the position was shared
        return Probe(done=not would, state=self._registered(plan, binlog), would="; ".join(would))

    def _earlier_undo(self) -> FenceUndo:
        """What an earlier attempt of this step journaled before its change (older journals:
        the state it found, ``previous``)."""
        notes = self.ctx.notes
        if "undo" in notes:
            return FenceUndo.from_dict(notes["undo"])
        prev = FenceState.from_dict(notes.get("previous"))
        return FenceUndo(state=prev) if prev is not None and not prev.read_only else FenceUndo()

    def undo_of_found(self, probe: Probe) -> Any:
        undo = self._earlier_undo()
        return None if undo.empty else undo.to_dict()

    def undo_of_partial(self, probe: Probe) -> Any:
        return self.undo_of_found(probe)

    def _privileges(self, sql: Sql, plan: FencePlan, me: Account) -> list[str]:
        """Refuse (nothing changed yet) when the account surely lacks a privilege the fence
        needs; return the needs only a role could cover (to warn)."""
        wanted = privileges.needs(
            plan.flavor, plan.version, set_read_only=not plan.now.read_only,
            engine_writes=bool(self._arg("engine_must_write", True)),
            see_sessions=bool(self._arg("kill_connections") or self._arg("lock_accounts") is True),
            kill=any(s.user != me.user for s in plan.to_kill), lock=bool(plan.to_lock), binlog=plan.binlog_on,
            replica=plan.freeze)
        missing, unconfirmed = privileges.check(privileges.own_grants(sql), wanted, me.quoted)
        if missing:
            raise ActionError(f"the runbook's account {me} lacks what the fence needs (nothing was changed): " + "; ".join(missing),
                              hint="grant it, or run the runbook as an account that has it")
        return [f"could not confirm (granted through a role?): {u}" for u in unconfirmed]

    # -- changing --------------------------------------------------------------------------
    def apply(self) -> StepResult:
        ctx, sql = self.ctx, self.ctx.sql()
        check_identity(ctx, "stop writes")
        plan = self._plan(sql)
        if plan.unmatched:
            known = ", ".join(sorted(map(str, account_locks(sql))))[:300]
            raise ActionError(f"lock_accounts: {', '.join(map(repr, plan.unmatched))} match no account on {ctx.host.name} "
                              f"(nothing was changed)", hint=f"the accounts are: {known}")
        me = current_account(sql)
        warnings = self._privileges(sql, plan, me)
        undo = FenceUndo(state=None if plan.now.read_only else plan.now, unlock=tuple(plan.to_lock),
                         replica_sql=True if plan.freeze else None).plus(self._earlier_undo())
        record = (plan.record or FenceRecord(previous=plan.now)).adding(tuple(plan.to_lock), plan.freeze)
        # Write-ahead: the undo of this step and the run's fence record are journaled before
        # the first change, so a kill or a failure at any point after it keeps them.
        ctx.note(undo=undo.to_dict())
        ctx.share(FENCE_KEY, record.to_dict())
        data = self._registered(plan)
        try:
            return self._fence(sql, plan, record, undo, data, warnings, me)
        except RunbookError as exc:
            return _failed_after_change(exc, undo, data, warnings)

    def _fence(self, sql: Sql, plan: FencePlan, record: FenceRecord, undo: FenceUndo, data: dict[str, Any],
               warnings: list[str], me: Account) -> StepResult:
        ctx, did = self.ctx, []
        dialect = Dialect(plan.flavor, plan.version)
        if plan.freeze:
            sql.query(dialect.threads("STOP", "sql"))
            did.append("replica SQL thread stopped")
        if plan.replica is not None:
            frozen = read_link(sql, dialect)  # where its SQL thread stopped: the copy it keeps
            data["replica"] = replica_facts(frozen) if frozen else None
        replicated = [acc for acc in plan.to_lock if not set_locked(sql, acc, True)]
        if replicated:
            warnings.append(f"the lock of {', '.join(map(str, replicated))} went to the binlog (the account may not set "
                            "sql_log_bin=0): the replicas lock it too; the undo unlocks it there the same way")
        if plan.to_lock:
            did.append(f"locked {len(plan.to_lock)} account(s)")
        killed: list[Session] = []
        if not plan.now.read_only:
            sql.query("SET SESSION lock_wait_timeout = %s", [int(self._arg("lock_wait_timeout", 10))])
            try:
                sql.query("SET GLOBAL read_only = ON")
            except SqlError as exc:
                if exc.errno != 1205 or not self._arg("kill_connections"):
                    raise
                # A long statement holds the lock read_only needs: kill, then fence.
                killed += kill_sessions(sql, self._targets(sql), 0)[0]
                sql.query("SET GLOBAL read_only = ON")
            did.append("read_only=ON")
        if self._arg("kill_connections"):
            if "mark" not in ctx.notes:
                ctx.note(mark=highest_session_id(sql))
            more, lingering = kill_sessions(sql, self._targets(sql), float(self._arg("kill_wait", 30)))
            killed += more
            if lingering:
                warnings.append(f"{len(lingering)} killed session(s) still ending after {self._arg('kill_wait', 30)}s: "
                                + ", ".join(f"{s.id} {s.who}" for s in lingering) + " (they can no longer commit unless "
                                "their account may write under read_only)")
                data["lingering"] = [s.to_dict() for s in lingering]
        if killed:
            did.append(f"killed {len(killed)} session(s)")
        # The fence has taken effect (read_only on, sessions gone): the end of any replay.
        binlog = server_position(sql, plan.flavor)
        record = replace(record, binlog=binlog, killed=(*record.killed, *(s.who for s in killed)))
        ctx.share(FENCE_KEY, record.to_dict())
        state = read_fence_state(sql)
        writers = privileged_writers(sql, plan.flavor, plan.version)
        data.update(state=state.to_dict(), binlog=binlog.to_dict() if binlog else None, killed=list(record.killed),
                    locked=[str(a) for a in record.locked],
                    sessions_killed=[s.to_dict() for s in killed], can_still_write=writers, to_kill=[], to_lock=[],
                    not_locked=[str(a) for a in plan.admins_left], proof=None)
        others = [w for w in writers if w != me.quoted]
        if others:
            warnings.append(f"{len(others)} account(s) can still write under read_only: {', '.join(others)}")
        if plan.admins_left:
            warnings.append("not locked (they hold admin privileges; list them in lock_accounts to lock them): "
                            + ", ".join(map(str, plan.admins_left)))
        changed = bool(did) or not undo.empty
        msg = ", ".join(did) if did else "already fenced"
        if plan.now.read_only and plan.record is None:
            msg += " (read_only was ON before this run: resume_writes leaves it ON)"
        msg += f"; binlog at {binlog}" if binlog else "; binlog off"
        if self._arg("engine_must_write", True):
            blocked, stmt, _ = write_blocked(sql)
            if blocked:
                return StepResult(Status.FAILED, data=data, undo=None if undo.empty else undo.to_dict(), warnings=warnings,
                                  evidence=stmt, msg=_engine_blocked(state, plan.flavor, me, undo))
        pw = self._arg("prove_with")
        if pw:
            data["proof"] = proof = prove_fence(sql, str(pw["user"]), pw.get("password"))
            if not proof["effective"]:
                got = f"ERROR {proof['errno']}" if proof["errno"] else "success"
                return StepResult(Status.FAILED, msg=f"fence not effective: a write as {pw['user']} got {got}, not ERROR 1290",
                                  data=data, undo=undo.to_dict(), warnings=warnings, evidence=proof["statement"])
            msg += f"; proven: {pw['user']} gets ERROR 1290"
        return StepResult(Status.CHANGED if changed else Status.OK, msg=msg, data=data,
                          undo=None if undo.empty else undo.to_dict(), warnings=warnings)

    def check(self) -> StepResult:
        sql = self.ctx.sql()
        plan = self._plan(sql)
        me = current_account(sql)
        lines = [f"would {'; '.join(plan.would())}" if plan.would() else "already fenced"]
        try:
            lines += self._privileges(sql, plan, me)
        except ActionError as exc:
            lines.append(exc.message)
        writers = [w for w in privileged_writers(sql, plan.flavor, plan.version) if w != me.quoted]
        if writers:
            lines.append(f"{len(writers)} account(s) could still write under the fence: {', '.join(writers)}")
        if not self._arg("kill_connections"):
            stay = self._sessions(sql)
            if stay:
                lines.append(f"{len(stay)} client session(s) would stay connected (kill_connections is off): "
                             + ", ".join(f"{s.id} {s.who}" for s in stay[:10]))
        data = dict(self._registered(plan), can_still_write=writers)
        return StepResult(Status.CHANGED if plan.would() else Status.OK, msg="check mode: " + "; ".join(lines), data=data,
                          diff="; ".join(plan.would()), warnings=lines[1:])

    def undo(self, record: Any) -> StepResult:
        undo = FenceUndo.from_dict(record)
        # The run's fence record goes with the fence (journaled before the change, like the
        # record itself): after a rollback, a read_only someone sets by hand is not this run's,
        # and a resumed run must never "put back" a state it did not create.
        host = self.ctx.host.name
        rec = FenceRecord.from_dict(self.ctx.run_state.get(FENCE_KEY, {}).get(host))
        if rec is not None:
            after = rec.without(undo)
            self.ctx.share(FENCE_KEY, after.to_dict() if after is not None else None)
        try:
            return undo_fence(self, undo, "reopen writes (undo stop_writes)")
        except RunbookError:
            if rec is not None:  # not undone: the fence is still the run's own
                self.ctx.share(FENCE_KEY, rec.to_dict())
            raise


def undo_fence(action: Action, undo: FenceUndo, what: str) -> StepResult:
    """Apply a :class:`FenceUndo` (the undo of stop_writes and of resume_writes)."""
    sql = action.ctx.sql()
    check_identity(action.ctx, what)
    did = apply_undo(sql, undo)
    state = read_fence_state(sql)
    if not did:
        return StepResult(Status.OK, msg=f"already as recorded ({state})", data={"state": state.to_dict()})
    return StepResult(Status.CHANGED, msg="; ".join(did), data={"state": state.to_dict()})


def _engine_blocked(state: FenceState, flavor: str, me: Account, undo: FenceUndo) -> str:
    """Why the engine's own account cannot write under the fence, and the way out."""
    later = "the later snapshot and restore would fail with ERROR 1290"
    if state.super_read_only:
        why = (f"super_read_only is ON: no account can write, not even the runbook's own ({me}); {later}. Turn it off "
               "and keep the fence with read_only (resume_writes: {to: {read_only: true, super_read_only: false}}), or "
               "engine_must_write: false for a fence-only runbook")
    else:
        grant = "READ_ONLY ADMIN" if flavor == "mariadb" else "CONNECTION_ADMIN"
        why = (f"the runbook's own account {me} cannot write under the fence: {later} (GRANT {grant} ON *.* TO "
               f"{me.quoted}; or engine_must_write: false for a fence-only runbook)")
    return why + (". The fence is up: its undo is recorded, rollback reopens" if not undo.empty else "")


def _failed_after_change(exc: RunbookError, undo: FenceUndo, data: dict[str, Any], warnings: list[str]) -> StepResult:
    """A failure once the fence may be (partly) up: failed — in doubt when the last statement's
    fate is unknown — and always with the undo of what was, or may have been, changed."""
    sql_text = getattr(exc, "sql", None) or getattr(exc, "what", None) or ""
    return StepResult(Status.FAILED, msg=exc.render() + " (the fence may be up: its undo is recorded, rollback reopens)",
                      data=dict(data, errno=getattr(exc, "errno", None)), undo=None if undo.empty else undo.to_dict(),
                      warnings=warnings, evidence=f"SQL: {sql_text}" if sql_text else "", uncertain=isinstance(exc, OutcomeUnknown))
