"""``stop_writes`` / ``resume_writes``: fence the server before a restore, and reopen it after.

Travis CI 2018: the API kept writing for 30 minutes into a database being restored. GitHub
2018: an old primary that could not be fenced took writes. So: fence first, kill what is
still connected, and *prove* the fence with an ordinary account before restoring anything.

MariaDB has no ``super_read_only``: ``read_only=ON`` blocks every account except those holding
``READ_ONLY ADMIN`` (10.11+; SUPER before 10.11, MDEV-29596) — the step reports them. MySQL
gets ``super_read_only=ON`` (it implies read_only and blocks SUPER too).
"""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

from engine.actions.base import Action, Probe, register
from engine.actions.guard import as_bool, check_identity, global_variables, server_flavor, sibling_session
from engine.errors import ActionError, ConnectError, SqlError
from engine.model import Status, StepResult
from engine.secrets import Secret
from engine.mysql.sqlutil import quote_ident
from engine.transport.base import Sql

# Threads that are not clients: replication, the event scheduler, background daemons.
_SYSTEM_USERS = ("system user", "event_scheduler")
_SYSTEM_COMMANDS = ("Daemon", "Slave_IO", "Slave_SQL", "Slave_worker")
FENCE_MARK = "fence_mark"  # run_state key: host -> highest connection id when the fence went up


def fence_state(sql: Sql) -> dict[str, bool | None]:
    """``{read_only, super_read_only}``; super_read_only is None where the server lacks it."""
    v = global_variables(sql, ["read_only", "super_read_only"])
    return {"read_only": bool(as_bool(v["read_only"])), "super_read_only": as_bool(v["super_read_only"])}


def is_fenced(state: dict[str, bool | None]) -> bool:
    return bool(state["read_only"]) and state["super_read_only"] is not False


def set_fence(sql: Sql, read_only: bool, super_read_only: bool | None) -> None:
    """Put the server in exactly this state; super_read_only is ignored where absent.

    Order matters on MySQL: ``super_read_only=ON`` implies ``read_only=ON`` and
    ``read_only=OFF`` implies ``super_read_only=OFF``.
    """
    has_super = fence_state(sql)["super_read_only"] is not None
    if has_super and not super_read_only:
        sql.query("SET GLOBAL super_read_only = OFF")
    sql.query(f"SET GLOBAL read_only = {'ON' if read_only else 'OFF'}")
    if has_super and super_read_only:
        sql.query("SET GLOBAL super_read_only = ON")


def client_connections(sql: Sql, except_users: list[str], only_users: list[str] | None = None) -> list[dict[str, Any]]:
    """Client connections that stop_writes would kill: not ours, not replication or daemons."""
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
        f" AND USER NOT IN (%s, %s) AND COMMAND NOT IN (%s, %s, %s, %s) AND COMMAND NOT LIKE 'Binlog Dump%%'{cond}"
        " ORDER BY ID",
        params,
    )
    return [{k: (int(v) if k in ("id", "time") and v is not None else v) for k, v in r.items()} for r in res.rows]


def kill_all(sql: Sql, conns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    killed = []
    for c in conns:
        try:
            sql.query("KILL CONNECTION %s", [c["id"]])
            killed.append(c)
        except SqlError as exc:
            if exc.errno != 1094:  # unknown thread id: it ended on its own meanwhile
                raise
    return killed


def privileged_writers(sql: Sql) -> list[str]:
    """Accounts that can still write under the fence (to report, not to change)."""
    flavor, version = server_flavor(sql)
    if flavor == "mariadb":
        privs = ["READ_ONLY ADMIN"] if version >= (10, 11, 0) else ["SUPER"]
    elif fence_state(sql)["super_read_only"]:
        return []
    else:
        privs = ["SUPER", "CONNECTION_ADMIN"]
    res = sql.query(
        f"SELECT DISTINCT GRANTEE AS g FROM information_schema.USER_PRIVILEGES WHERE PRIVILEGE_TYPE IN ({', '.join(['%s'] * len(privs))})"
        " ORDER BY GRANTEE", privs)
    return [str(r["g"]) for r in res.rows]


def prove_fence(sql: Sql, user: str, password: Any) -> dict[str, Any]:
    """Try a harmless write as an ordinary account: it must fail with 1290.

    The write is ``DROP DATABASE IF EXISTS`` on a random name that cannot exist. Both servers
    check read_only before privileges, so a fenced server answers 1290 even to an account
    with no privileges at all; an unfenced one runs it as a no-op (nothing to drop) or refuses
    on privileges (1044) — either way the fence did not stop that account.
    """
    pw = password if isinstance(password, Secret) or password is None else Secret(str(password))
    probe = sibling_session(sql, user=user, password=pw, database=None, option_file=None)
    stmt = f"DROP DATABASE IF EXISTS {quote_ident('_rb_fence_probe_' + uuid.uuid4().hex[:12])}"
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


@register
class StopWrites(Action):
    """Fence the server: read_only (super_read_only on MySQL), kill clients, prove it.

    ```yaml
    - name: Fence the primary
      stop_writes:
        kill_connections: true
        except_users: [repl, monitor]
        prove_with: {user: app, password: "{{ app_password }}"}
    ```

    Registers ``previous`` and ``state`` ({read_only, super_read_only}), ``killed`` (id,
    user, host, db, command, time of each killed connection), ``can_still_write`` (accounts
    the fence does not stop) and ``proof``. Undo (and ``resume_writes`` without ``to``)
    restores the previous state exactly.
    """

    name = "stop_writes"
    mutating = True
    idempotent = True
    reversible = True
    undo_idempotent = True  # by the state it finds (names, the fence)
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
            "lock_wait_timeout": {"type": "integer", "minimum": 1, "maximum": 31536000,
                                  "description": "seconds SET GLOBAL read_only may wait for running transactions (default 10)"},
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

    def _targets(self) -> list[dict[str, Any]]:
        a = self.args or {}
        if not a.get("kill_connections"):
            return []
        conns = client_connections(self.ctx.sql(), a.get("except_users") or [], a.get("only_users"))
        # Connection ids only grow: a client that connected after the fence was set cannot
        # write, so it is not "left to kill" (application pools reconnect at once; without
        # this the executor's re-probe would never converge).
        mark = self.ctx.run_state.get(FENCE_MARK, {}).get(self.ctx.host.name, self.ctx.notes.get("mark"))
        return [c for c in conns if mark is None or c["id"] <= mark]

    def _set_mark(self, sql: Sql) -> None:
        top = sql.query("SELECT MAX(ID) AS m FROM information_schema.PROCESSLIST").rows[0]["m"]
        self.ctx.run_state.setdefault(FENCE_MARK, {})[self.ctx.host.name] = int(top or 0)
        self.ctx.note(mark=int(top or 0))  # journaled: a resume after a kill keeps the same mark

    def undo_of_found(self, probe: Probe) -> Any:
        # The state before the fence, journaled by an earlier attempt of this run before it
        # changed anything: the server is fenced because of this run, and this undoes it.
        previous = self.ctx.notes.get("previous")
        if isinstance(previous, dict) and not is_fenced(previous):
            return dict(previous)
        return None

    def check(self) -> StepResult:
        probe = self.probe()
        sql = self.ctx.sql()
        writers = privileged_writers(sql)
        data = dict(probe.state, can_still_write=writers)
        sessions = probe.state["to_kill"]
        if not (self.args or {}).get("kill_connections"):
            sessions = client_connections(sql, (self.args or {}).get("except_users") or [])
            data["sessions"] = sessions
        lines = [f"would {probe.would}" if not probe.done else "already fenced"]
        if writers:
            lines.append(f"{len(writers)} account(s) could still write under the fence: {', '.join(writers)}")
        if sessions and not (self.args or {}).get("kill_connections"):
            lines.append(f"{len(sessions)} client session(s) would stay connected (kill_connections is off): "
                         + ", ".join(f"{c['id']} {c['user']}@{c['host']}" for c in sessions[:10]))
        status = Status.OK if probe.done else Status.CHANGED
        return StepResult(status, msg="check mode: " + "; ".join(lines), data=data, diff=probe.would,
                          warnings=lines[1:] if writers else [])

    def probe(self) -> Probe:
        state = fence_state(self.ctx.sql())
        targets = self._targets()
        would = []
        if not is_fenced(state):
            would.append("set " + ("super_read_only" if state["super_read_only"] is not None else "read_only") + "=ON")
        if targets:
            would.append(f"kill {len(targets)} client connection(s): " + ", ".join(f"{c['id']} {c['user']}@{c['host']}" for c in targets[:10]))
        return Probe(done=not would, state={"state": state, "to_kill": targets}, would="; ".join(would))

    def apply(self) -> StepResult:
        a = self.args or {}
        sql = self.ctx.sql()
        check_identity(self.ctx, "stop writes")
        previous = fence_state(sql)
        # An earlier attempt of this run may have fenced already: undo restores what it found.
        undo = dict(self.ctx.notes.get("previous") or previous)
        killed: list[dict[str, Any]] = []
        if not is_fenced(previous):
            # Write-ahead: the state to restore is journaled before it is changed, so a kill
            # between the change and the step's outcome still leaves rollback its undo.
            if "previous" not in self.ctx.notes:
                self.ctx.note(previous=dict(previous))
            sql.query("SET SESSION lock_wait_timeout = %s", [int(a.get("lock_wait_timeout", 10))])
            try:
                set_fence(sql, True, True)
            except SqlError as exc:
                if exc.errno != 1205 or not a.get("kill_connections"):
                    raise
                # A long transaction holds the commit lock read_only needs: kill, then fence.
                killed += kill_all(sql, self._targets())
                set_fence(sql, True, True)
        if a.get("kill_connections"):
            self._set_mark(sql)
        killed += kill_all(sql, self._targets())
        state = fence_state(sql)
        writers = privileged_writers(sql)
        data: dict[str, Any] = {"previous": previous, "state": state, "killed": killed, "can_still_write": writers, "proof": None}
        warnings = []
        if writers:
            warnings.append(f"{len(writers)} account(s) can still write under read_only: {', '.join(writers)}")
        me = str(sql.query("SELECT CURRENT_USER() AS u").rows[0]["u"])
        user, _, host = me.rpartition("@")
        if is_fenced(state) and f"'{user}'@'{host}'" not in writers:
            warnings.append(f"the runbook's own account {me} cannot write under the fence either: snapshot and "
                            "restore steps will fail with ERROR 1290 (grant it READ_ONLY ADMIN on MariaDB)")
        changed = state != previous or bool(killed) or undo != previous
        status = Status.CHANGED if changed else Status.OK
        msg = ("fenced" if state != previous else "already fenced") + (f", killed {len(killed)} connection(s)" if killed else "")
        if a.get("prove_with"):
            pw = a["prove_with"]
            data["proof"] = proof = prove_fence(sql, str(pw["user"]), pw.get("password"))
            if not proof["effective"]:
                got = f"ERROR {proof['errno']}" if proof["errno"] else "success"
                return StepResult(Status.FAILED, msg=f"fence not effective: a write as {pw['user']} got {got}, not ERROR 1290",
                                  data=data, undo=undo, warnings=warnings, evidence=proof["statement"])
            msg += f"; proven: {pw['user']} gets ERROR 1290"
        return StepResult(status, msg=msg, data=data, undo=undo if changed else None, warnings=warnings)

    def undo(self, record: Any) -> StepResult:
        return restore_fence(self, record, "reopen writes (undo stop_writes)")


def restore_fence(action: Action, record: dict[str, Any], what: str) -> StepResult:
    """Put read_only/super_read_only back exactly as ``record`` says."""
    sql = action.ctx.sql()
    check_identity(action.ctx, what)
    before = fence_state(sql)
    target = {"read_only": bool(record.get("read_only")), "super_read_only": record.get("super_read_only")}
    if before["super_read_only"] is None:
        target["super_read_only"] = None
    if before == target:
        return StepResult(Status.OK, msg="already in the recorded state", data={"previous": before, "state": before})
    set_fence(sql, bool(target["read_only"]), target["super_read_only"])
    after = fence_state(sql)
    return StepResult(Status.CHANGED, msg=f"read_only={'ON' if after['read_only'] else 'OFF'}", data={"previous": before, "state": after},
                      undo=dict(before))


@register
class ResumeWrites(Action):
    """Reopen writes (read_only and super_read_only OFF), or set an explicit state.

    ```yaml
    - name: Reopen the primary
      resume_writes: {}                       # read_only=OFF (and super_read_only=OFF)
    - resume_writes: {to: {read_only: true, super_read_only: false}}
    ```

    Verify row counts before reopening (Travis CI 2018). Undo puts the previous state back.
    """

    name = "resume_writes"
    mutating = True
    idempotent = True
    reversible = True
    undo_idempotent = True  # by the state it finds (names, the fence)
    params_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "to": {
                "type": "object", "additionalProperties": False,
                "description": "the state to set (default: everything OFF)",
                "properties": {
                    "read_only": {"type": "boolean", "description": "@@read_only to set"},
                    "super_read_only": {"type": "boolean", "description": "@@super_read_only to set (MySQL/Percona; ignored on MariaDB)"},
                },
            },
        },
    }

    def _target(self, current: dict[str, bool | None]) -> dict[str, bool | None]:
        to = (self.args or {}).get("to") or {}
        ro = bool(to.get("read_only", False))
        sro: bool | None = bool(to.get("super_read_only", False)) and ro
        return {"read_only": ro, "super_read_only": None if current["super_read_only"] is None else sro}

    def probe(self) -> Probe:
        state = fence_state(self.ctx.sql())
        target = self._target(state)
        return Probe(done=state == target, state={"state": state}, would=f"set read_only={'ON' if target['read_only'] else 'OFF'}")

    def apply(self) -> StepResult:
        current = fence_state(self.ctx.sql())
        return restore_fence(self, self._target(current), "resume writes")

    def undo(self, record: Any) -> StepResult:
        return restore_fence(self, record, "undo resume_writes")
