"""``replication``: look at a replica or primary, wait for it, stop/start it, point it at a new
source, promote it — probe first, undo to the previous state.

```yaml
- replication: {state: status}                           # read-only: role, source, threads, lag, GTIDs
- replication: {state: caught_up, timeout: 5m}           # a replica: applied all it received
- replication: {state: caught_up, source: db1}           # ...and has all db1 has written
- replication: {state: stopped}                          # or threads: io | sql
- replication: {state: started}
- replication: {state: following, source: db2}          # CHANGE MASTER TO db2 (GTID), start, read_only ON
- replication: {state: promoted}                         # stop, forget the source, read_only OFF (not undone)
  register: repl
```

Registered (every state): ``role`` (primary | replica), ``source`` (the inventory host it
follows, or ``host:port``), ``io_running``, ``sql_running``, ``seconds_behind``, ``gtid`` (the
executed GTID position/set), ``received`` (plus what its relay log holds), ``unapplied``,
``last_error``, ``read_only``, ``flavor``, and for a primary ``replicas``. ``status`` with
``candidates: [db2, db3]`` also ranks those servers for a failover (``candidates``, ``chosen``,
``others``, ``old_primary``; see ``engine/mysql/failover.py``).

MariaDB (``MASTER_USE_GTID=slave_pos``, ``gtid_slave_pos``) and MySQL (``SOURCE_AUTO_POSITION``,
``CHANGE REPLICATION SOURCE TO``, ``SHOW REPLICA STATUS``): see ``engine/mysql/replication.py``.
The source's address comes from its inventory entry: ``replication_host`` (else ``mysql_host``
unless it is loopback or tunnelled, else ``ssh_host``/``ansible_host``, else its name) and
``replication_port`` (else ``mysql_port``); the account from this host's ``replication_user`` /
``replication_password`` (or ``user:``/``password:``).
"""

from __future__ import annotations

from typing import Any, ClassVar

from engine.actions.base import Probe, duration_problem, register
from engine.actions.guard import check_identity
from engine.actions.replication_step import ReplicationStep
from engine.model import Status, StepResult


STATES = ("status", "caught_up", "stopped", "started", "following", "promoted")
_READ_ONLY_STATES = ("status",)


@register
class Replication(ReplicationStep):
    """Replica status, wait until caught up, stop/start, follow a source (GTID), promote."""

    name = "replication"
    mutating = True
    idempotent = True  # every state is probed: a second run finds it done
    reversible = True  # back to the previous state; promoted is not undone
    undo_idempotent = True
    params_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["state"],
        "properties": {
            "state": {"enum": list(STATES), "description": "status | caught_up | stopped | started | following | promoted"},
            "source": {"type": "string", "minLength": 1, "description": "an inventory host: the source to follow (following), "
                       "or whose every transaction this replica must have (caught_up)"},
            "timeout": {"anyOf": [{"type": "number", "minimum": 0}, {"type": "string"}],
                        "description": "caught_up/following: how long to wait (default 5m / 1m)"},
            "threads": {"enum": ["both", "io", "sql"], "description": "stopped/started: which threads (default both)"},
            "read_only": {"type": "boolean", "description": "following: set read_only (default true: a replica takes no writes)"},
            "user": {"type": "string", "minLength": 1, "description": "following: the replication account (default replication_user)"},
            "password": {"type": ["string", "null"], "description": "following: its password (default replication_password; masked)"},
            "discard_unapplied": {"type": "boolean", "description": "promoted: promote although received transactions are not "
                                  "applied yet (they are lost; default false: refused)"},
            "candidates": {"anyOf": [{"type": "array", "items": {"type": "string", "minLength": 1}}, {"type": "string"}],
                           "description": "status: rank these replicas for a failover"},
            "old_primary": {"type": "string", "minLength": 1, "description": "status with candidates: the primary being replaced"},
            "binlogs": {"type": "string", "minLength": 1, "description": "caught_up with a source that does not answer: the "
                        "directory of its binlog files on its host (default: its mysql_binlog_dir)"},
            "on_unreadable": {"enum": ["fail", "report"], "description": "caught_up: the source does not answer and its binlog "
                              "files cannot be read: fail (default), or report what is lost and go on"},
        },
    }

    @classmethod
    def static_problems(cls, args: Any) -> list[tuple[str, str]]:
        a = args if isinstance(args, dict) else {}
        out = duration_problem(a, "timeout")
        state = a.get("state")
        if state == "following" and not a.get("source"):
            out.append(("source", "state: following needs source: (the inventory host to replicate from)"))
        allowed = {"status": {"candidates", "old_primary"}, "caught_up": {"source", "timeout", "binlogs", "on_unreadable"}, "stopped": {"threads"},
                   "started": {"threads"}, "following": {"source", "timeout", "read_only", "user", "password"},
                   "promoted": {"discard_unapplied"}}
        if isinstance(state, str) and state in allowed:
            for key in sorted(set(a) - {"state"} - allowed[state]):
                out.append((key, f"{key} is not an option of state: {state} (it takes {', '.join(sorted(allowed[state])) or 'none'})"))
        if "old_primary" in a and "candidates" not in a:
            out.append(("old_primary", "old_primary goes with candidates: (the failover assessment)"))
        return out

    # -- helpers ---------------------------------------------------------------------------
    @property
    def state(self) -> str:
        return str((self.args or {}).get("state", ""))

    def changes_nothing(self) -> bool:
        return self.state in _READ_ONLY_STATES

    def check(self) -> StepResult:
        if self.changes_nothing():
            return self.apply()  # read-only: runs in check mode too
        res = super().check()
        if res.status is Status.SKIPPED and self.state == "caught_up":
            res.msg = (f"check mode: {(self.args or {}).get('source')} does not answer and its binlog files cannot be read: "
                       "the run would report what is lost" + ("" if (self.args or {}).get("on_unreadable") == "report" else " and fail"))
        return res

    def undo_of_found(self, probe: Probe) -> Any:
        previous = self.ctx.notes.get("previous")
        return dict(previous) if isinstance(previous, dict) else None

    # -- probe -----------------------------------------------------------------------------
    def probe(self) -> Probe | None:
        if self.changes_nothing():
            return None
        from engine.actions import replication_change as change

        st = self.read()
        data = self._data(st)
        found = getattr(change, f"probe_{self.state}")(self, st)
        if found is None:
            return None  # cannot tell (a source that does not answer, whose files cannot be read)
        done, would = found
        return Probe(done=done, state=data, would=would)

    # -- apply -----------------------------------------------------------------------------
    def apply(self) -> StepResult:
        if self.state == "status":
            return self._status()
        from engine.actions import replication_change as change

        check_identity(self.ctx, f"change replication ({self.state})")
        result: StepResult = getattr(change, f"apply_{self.state}")(self)
        return result

    def _status(self) -> StepResult:
        a = self.args or {}
        st = self.read()
        data = self._data(st)
        warnings: list[str] = []
        if a.get("candidates") is not None:
            from engine.actions.replication_view import assessment

            extra, warnings = assessment(self.peers(), a["candidates"], a.get("old_primary"))
            data.update(extra)
        return StepResult(Status.OK, msg=describe(data), data=data, warnings=warnings)

    # -- undo ------------------------------------------------------------------------------
    def undo(self, record: Any) -> StepResult:
        from engine.actions import replication_change as change

        check_identity(self.ctx, "put replication back (undo)")
        return change.revert(self, record)


def describe(d: dict[str, Any]) -> str:
    """One line for the console: role, source, threads, lag, position."""
    if d.get("chosen") is not None or "candidates" in d:
        ranked = ", ".join(f"{c['host']}{'' if c['eligible'] else ' (not eligible)'} {c['received'] or '-'}"
                           + (f" lacks {c['lacks']}" if c.get("lacks") else "") for c in d.get("candidates", []))
        old = d.get("old_primary") or {}
        alive = f"; old primary {old.get('host')} {'answers' if old.get('answering') else 'does not answer'}" if old else ""
        return f"chosen: {d.get('chosen') or 'none eligible'} (ranked: {ranked}){alive}"
    if d["role"] == "primary":
        reps = ", ".join(str(r.get("host")) for r in d.get("replicas") or []) or "none connected"
        return f"primary, {'read-only' if d['read_only'] else 'writable'}, gtid {d['gtid'] or '-'}; replicas: {reps}"
    lag = "-" if d["seconds_behind"] is None else f"{d['seconds_behind']}s"
    line = (f"replica of {d['source']} (io {d['io_running']}, sql {d['sql_running']}, lag {lag}, "
            f"{d['unapplied']} to apply), gtid {d['gtid'] or '-'}")
    return line + (f"; last error: {d['last_error']}" if d.get("last_error") else "")
