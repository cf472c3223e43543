"""Running undo records: an explicit ``undo:`` mapping, or an action's built-in undo.

Undo records are written to the journal with the step's outcome, so a rollback needs nothing
but the journal: ``explicit`` records carry the action, its raw args and the variables those
args read at do time; ``builtin`` records carry what the action itself returned; ``items``
records hold one record per loop item (undone last item first).
"""

from __future__ import annotations

import time
from typing import Any

from engine.actions.registry import get_action
from engine.run.context import ActionContext
from engine.errors import RunbookError
from engine.run.executor import HostState, _classify
from engine.model import Status, StepResult
from engine.secrets import MASK
from engine.templating.render import ENGINE, lazify


def run_undo(record: Any, hs: HostState, *, run_id: str, step_key: str, journal_dir: str,
             run_state: dict[str, Any], check_mode: bool = False, base_vars: dict[str, Any] | None = None) -> StepResult:
    """Undo one step on one host. Never raises for a failed undo: returns ``failed``.

    ``base_vars``: the run's variables for the host (runbook vars, -e, inventory), under the
    variables the record captured at do time."""
    start = time.perf_counter()
    try:
        result = _undo(record, hs, run_id=run_id, step_key=step_key, journal_dir=journal_dir,
                       run_state=run_state, check_mode=check_mode, base_vars=base_vars)
    except RunbookError as exc:
        result = _classify(exc)
    result.duration = time.perf_counter() - start
    return result


def _ctx(hs: HostState, vars_: dict[str, Any], run_id: str, step_key: str, journal_dir: str,
         run_state: dict[str, Any], check_mode: bool) -> ActionContext:
    return ActionContext(host=hs.host, conns=hs.conns, vars=vars_, run_id=run_id, check_mode=check_mode,
                         step_key=step_key, source=None, journal_dir=journal_dir, run_state=run_state)


def _undo(record: Any, hs: HostState, **kw: Any) -> StepResult:
    if not isinstance(record, dict) or "kind" not in record:
        return StepResult(Status.FAILED, msg=f"unreadable undo record: {record!r}"[:300])
    kind = record["kind"]
    if kind == "items":
        results = [_undo(r, hs, **kw) for r in reversed(record.get("records") or [])]
        failed = [r for r in results if r.failed]
        if failed:
            return StepResult(Status.FAILED, msg=f"{len(failed)} of {len(results)} item undos failed: {failed[0].msg}",
                              evidence=failed[0].evidence, items=results)
        return StepResult(Status.CHANGED, msg=f"undid {len(results)} items", items=results)
    cls = get_action(record["action"])
    vars_ = dict(kw["base_vars"]) if kw.get("base_vars") is not None else dict(lazify(hs.host.vars))
    # A captured value that holds the mask is a secret the journal did not keep (a record read
    # back by `runbook rollback`): rendering it would undo with a literal "********" (say, set
    # a password to it). Leave the run's own value (re-read from the inventory, the runbook,
    # lookup('env') or -e) instead, or an undefined variable that fails the undo loudly.
    vars_.update({k: v for k, v in (record.get("vars") or {}).items() if not (isinstance(v, str) and MASK in v)})
    vars_["inventory_hostname"] = hs.host.name
    ctx = _ctx(hs, vars_, kw["run_id"], kw["step_key"], kw["journal_dir"], kw["run_state"], kw["check_mode"])
    if kind == "explicit":
        args = record["args"] if cls.renders_own_args else ENGINE.render(record["args"], vars_)
        action = cls(args, ctx)
        if kw["check_mode"] and cls.mutating:
            return action.check()
        result = action.apply()
        if result.status is Status.OK and cls.mutating:
            result.status = Status.CHANGED
        return result
    if kind == "builtin":
        action = cls(None, ctx)
        if kw["check_mode"]:
            return StepResult(Status.SKIPPED, msg=f"check mode: would undo {record['action']}")
        return action.undo(record.get("record"))
    return StepResult(Status.FAILED, msg=f"unknown undo record kind {kind!r}")
