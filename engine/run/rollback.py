"""Running undo records: an explicit ``undo:`` mapping, or an action's built-in undo; and the
work of ``runbook rollback``.

Undo records are written to the journal with the step's outcome, so a rollback needs nothing
but the journal: ``explicit`` records carry the action, its raw args and the variables those
args read at do time; ``builtin`` records carry what the action itself returned; ``items``
records hold one record per loop item (undone last item first).

A rollback is crash-safe like a run: each undo is bracketed by an intent and an outcome
(phase ``undo``). An undo whose earlier attempt is in doubt or failed is probed again before
it runs; one that cannot be probed and is not idempotent is never run twice blindly: the
operator decides (``--decide 'stage/step@host=done|rerun'``), as for resume. A do-step left
in doubt by a kill is probed first: when the change is there, its undo record comes from the
action's evidence (see ``Action.undo_of_found``) and it is undone like any other.

```python
status, code = Rollback(state, executor, states, runbook, console, decisions).run(confirm)
```
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.actions.base import Action
from engine.actions.registry import get_action
from engine.errors import JournalError, NeedsDecision, RunbookError
from engine.journal.analysis import StepState, StepVerdict
from engine.model import Runbook, Status, Step, StepResult
from engine.run.context import ActionContext
from engine.run.executor import SHARED, Executor, _classify
from engine.run.state import HostState, StepEnv, variables
from engine.run.probing import guard_identity
from engine.run.stepargs import args_digest
from engine.secrets import MASK
from engine.templating.render import ENGINE, lazify

if TYPE_CHECKING:
    from engine.journal import JournalState
    from engine.report.console import Console


def run_undo(record: Any, hs: HostState, *, run_id: str, step_key: str, journal_dir: str,
             run_state: dict[str, Any], check_mode: bool = False, base_vars: dict[str, Any] | None = None,
             share_fn: Callable[[str, Any], None] | None = None) -> StepResult:
    """Undo one step on one host. Never raises for a failed undo: returns ``failed``.

    ``base_vars``: the run's variables for the host (runbook vars, -e, inventory), under the
    variables the record captured at do time. ``share_fn``: journals what the undo changes of
    the run's shared facts (``ctx.share``: the undo of a fence takes its record away), so that
    a later resume of the run knows it."""
    start = time.perf_counter()
    kw = dict(run_id=run_id, step_key=step_key, journal_dir=journal_dir, run_state=run_state, check_mode=check_mode,
              base_vars=base_vars, share_fn=share_fn)
    try:
        result = _undo(record, hs, **kw)
    except RunbookError as exc:
        result = _classify(exc)
    result.duration = time.perf_counter() - start
    return result


def _ctx(hs: HostState, vars_: dict[str, Any], run_id: str, step_key: str, journal_dir: str,
         run_state: dict[str, Any], check_mode: bool, share_fn: Callable[[str, Any], None] | None) -> ActionContext:
    ctx = ActionContext(host=hs.host, conns=hs.conns, vars=vars_, run_id=run_id, check_mode=check_mode,
                        step_key=step_key, source=None, journal_dir=journal_dir, run_state=run_state)
    if share_fn is not None and not check_mode:
        ctx.share_fn = share_fn
    return ctx


def _action(record: dict[str, Any], hs: HostState, **kw: Any) -> Action:
    """The action instance an explicit or built-in undo record runs."""
    cls = get_action(record["action"])
    vars_ = dict(kw["base_vars"]) if kw.get("base_vars") is not None else dict(lazify(hs.host.vars))
    # A captured value that holds the mask is a secret the journal did not keep (a record read
    # back by `runbook rollback`): rendering it would undo with a literal "********" (say, set
    # a password to it). Leave the run's own value (re-read from the inventory, the runbook,
    # lookup('env') or -e) instead, or an undefined variable that fails the undo loudly.
    vars_.update({k: v for k, v in (record.get("vars") or {}).items() if not (isinstance(v, str) and MASK in v)})
    vars_["inventory_hostname"] = hs.host.name
    ctx = _ctx(hs, vars_, kw["run_id"], kw["step_key"], kw["journal_dir"], kw["run_state"], kw["check_mode"],
               kw.get("share_fn"))
    if record["kind"] == "explicit":
        args = record["args"] if cls.renders_own_args else ENGINE.render(record["args"], vars_)
        return cls(args, ctx)
    return cls(None, ctx)


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
    if kind not in ("explicit", "builtin"):
        return StepResult(Status.FAILED, msg=f"unknown undo record kind {kind!r}")
    action = _action(record, hs, **kw)
    if kind == "explicit":
        if kw["check_mode"] and action.mutating:
            return action.check()
        guard_identity(action, action.ctx, f"undo step {kw['step_key']!r}")
        result = action.apply()
        if result.status is Status.OK and action.mutating:
            result.status = Status.CHANGED
        return result
    if kw["check_mode"]:
        return StepResult(Status.SKIPPED, msg=f"check mode: would undo {record['action']}")
    guard_identity(action, action.ctx, f"undo step {kw['step_key']!r}")
    return action.undo(record.get("record"))


def _undo_kw(env: StepEnv, hs: HostState, step_key: str) -> dict[str, Any]:
    try:
        base = variables(env, hs, step_key.split("/", 1)[0])
    except RunbookError:
        base = None
    journal = env.journal

    def share(key: str, value: Any) -> None:
        if journal is not None:  # as the executor journals a do-step's ctx.share (restore_run_state reads both)
            journal.event(SHARED, step=step_key, host=hs.host.name, phase="undo", key=key, value=value)

    return dict(run_id=env.run_id, step_key=step_key, journal_dir=env.journal_dir, run_state=env.run_state,
                check_mode=env.check_mode, base_vars=base, share_fn=share)


def undo_step(env: StepEnv, console: Console, step_key: str, step_name: str, hs: HostState, record: Any,
              attempt: int = 1) -> StepResult:
    """Undo one step on one host, bracketed by an undo intent and outcome in the journal."""
    journal = env.journal
    seq = journal.intent(step_key, hs.host.name, args_digest("undo", record), attempt, phase="undo") if journal else None
    kw = _undo_kw(env, hs, step_key)
    res = run_undo(record, hs, **kw)
    if journal is not None and seq is not None:
        journal.outcome(seq, step_key, hs.host.name, res.status.value, changed=res.changed, registered=None,
                        duration=res.duration, msg=res.msg, phase="undo", evidence=res.evidence)
    console.step_result(f"undo: {step_name}", hs.host.name, res)
    return res


def undo_is_rerunnable(record: Any, hs: HostState, kw: dict[str, Any]) -> tuple[bool | None, str]:
    """After an undo attempt that is in doubt: (True: already undone / None: run it again
    safely / False: cannot tell and not safe), with why."""
    if not isinstance(record, dict):
        return None, "unreadable record"
    if record.get("kind") == "items":
        verdicts = [undo_is_rerunnable(r, hs, kw) for r in record.get("records") or []]
        if all(v is None for v, _ in verdicts):
            return None, "every item's undo is safe to run again"
        return False, next((why for v, why in verdicts if v is False), "an item's undo cannot be probed")
    cls = get_action(record["action"])
    if record.get("kind") == "builtin":
        return (None, "its built-in undo is idempotent") if cls.undo_idempotent else (False, "its undo is not idempotent")
    action = _action(record, hs, **kw)
    if action.mutating:
        probe = action.probe()
        if probe is not None:
            return (True, "its probe says the undo is done") if probe.done else (None, "its probe says not done")
    if action.idempotent_call():
        return None, "the undo is idempotent"
    return False, "the undo has no probe and is not idempotent"


@dataclass
class UndoItem:
    """One step to undo on one host: its do-state, the record, and its earlier undo attempt."""

    do: StepState
    record: Any
    previous: StepState | None

    @property
    def seq(self) -> int:
        return self.do.outcome_seq or self.do.intent_seq


class Rollback:
    """``runbook rollback``: undo a run's steps newest first, from its journal (read under
    the run's lock by the caller)."""

    def __init__(self, state: JournalState, executor: Executor, states: dict[str, HostState], rb: Runbook,
                 console: Console, decisions: dict[str, str]):
        self.state, self.executor, self.states, self.console = state, executor, states, console
        self.decisions = decisions
        self.steps: dict[str, Step] = {s.key: s for stage in rb.stages for s in stage.steps}

    @property
    def env(self) -> StepEnv:
        return self.executor.env

    def _host(self, name: str, step: str) -> HostState:
        hs = self.states.get(name)
        if hs is None:
            raise JournalError(f"host {name} of step {step} is not in the inventory any more")
        return hs

    def plan(self) -> list[UndoItem]:
        """Everything to undo, newest first: done (or failed) steps with an undo record not
        undone yet, and in-doubt steps whose probe finds their change made."""
        items = [UndoItem(st, st.undo, self.state.undo_attempt(st)) for st in self.state.done_with_undo()]
        for st in self.state.in_flight():
            item = self._in_doubt(st)
            if item is not None:
                items.append(item)
        return sorted(items, key=lambda i: i.seq, reverse=True)

    def _in_doubt(self, st: StepState) -> UndoItem | None:
        step = self.steps.get(st.step)
        if step is None or not (get_action(step.action).reversible or step.undo is not None):
            return None
        if st.extra.get("when") is False:
            return None  # its `when:` skipped it: it did nothing, there is nothing to undo
        hs = self._host(st.host, st.step)
        found = self.executor.probe_only(step, hs, step.stage)
        journal = self.env.journal
        if found.done is None and step.undo is not None:
            found.done = self._decide(st.step, st.host, "the step was running when the run stopped and nothing can tell "
                                      "whether it took effect", ("done", "skip")) == "done"
            if found.done:
                found.undo = self.executor.explicit_undo(step, variables(self.env, hs, step.stage))
        elif found.done is not None:
            self._unused(st.step, st.host, f"its probe settled it: {found.why}")
        if found.undo is None:
            self.console.line(f"  {st.step} on {st.host} was in doubt: {found.why or 'it did not take effect'}; nothing to undo")
            return None
        # Done, or only partly made: recorded failed with the undo of that part (resume runs
        # such a step again; rollback undoes what it made).
        msg = f"was in doubt; {found.why}: recorded as " + ("done" if found.done else "failed, partly made")
        if journal is not None:
            journal.outcome(st.intent_seq, st.step, st.host, "ok" if found.done else "failed", changed=False, registered=None,
                            duration=0.0, msg=msg, undo=found.undo)
        return UndoItem(st, found.undo, None)

    def _unused(self, step_key: str, host: str, why: str) -> None:
        """A --decide that a probe made unnecessary: not applied, and said so."""
        key = f"{step_key}@{host}"
        decision = self.decisions.get(key) or self.decisions.get(step_key)
        if decision is None:
            return
        self.console.line(f"--decide {key}={decision} not applied: {why}", "yellow")
        if self.env.journal is not None:
            self.env.journal.event("operator_decision", step=step_key, host=host, decision=decision, phase="undo",
                                   by="--decide", applied=False, why=why)

    def _decide(self, step_key: str, host: str, why: str, choices: tuple[str, str]) -> str:
        key = f"{step_key}@{host}"
        decision = self.decisions.get(key) or self.decisions.get(step_key)
        if decision is None and sys.stdin.isatty():
            self.console.line(f"\nIN DOUBT: {step_key!r} on {host}: {why}.", "bold yellow")
            while decision not in (*choices, "abort"):
                try:
                    decision = input(f"  {choices[0]}, {choices[1]}, or abort? [{'/'.join(choices)}/abort]: ").strip().lower()
                except EOFError:
                    decision = "abort"
        if decision is None:
            flag = ""
            if self.env.journal is not None:
                from engine.journal.layout import journal_flag

                flag = journal_flag(self.env.journal.path.parent.parent)
            raise NeedsDecision(f"{step_key!r} on {host} is in doubt: {why}",
                                hint=f"check the host, then: runbook rollback {self.env.run_id}{flag} "
                                     f"--decide '{key}={choices[0]}' (or ={choices[1]})")
        if decision not in choices:
            raise NeedsDecision(f"rollback aborted by the operator at {step_key!r} on {host}")
        if self.env.journal is not None:
            self.env.journal.event("operator_decision", step=step_key, host=host, decision=decision, phase="undo",
                                   by="--decide" if (self.decisions.get(key) or self.decisions.get(step_key)) else "terminal")
        return decision

    def undo(self, item: UndoItem) -> bool:
        """Undo one item; False when it failed."""
        st = item.do
        hs = self._host(st.host, st.step)
        name = st.step.split("/", 1)[-1]
        prev = item.previous
        if prev is not None and prev.status is StepVerdict.IN_DOUBT:
            # The last rollback was killed during this undo: probe it, never repeat it blindly.
            done, why = undo_is_rerunnable(item.record, hs, _undo_kw(self.env, hs, st.step))
            if done is False:
                done = self._decide(st.step, st.host, f"its undo was running when the rollback stopped ({why})",
                                    ("done", "rerun")) == "done"
            else:
                self._unused(st.step, st.host, why)
            if done:
                res = StepResult(Status.OK, msg=f"undo was in doubt; {why if why.startswith('its probe') else 'the operator says it is done'}")
                if self.env.journal is not None:
                    self.env.journal.outcome(prev.intent_seq, st.step, st.host, "ok", changed=False, registered=None,
                                             duration=0.0, msg=res.msg, phase="undo")
                self.console.step_result(f"undo: {name}", hs.host.name, res)
                return True
        elif prev is not None and prev.status is StepVerdict.FAILED:
            done, why = undo_is_rerunnable(item.record, hs, _undo_kw(self.env, hs, st.step))
            if done:  # a failed attempt that did its work after all (its probe says so)
                res = StepResult(Status.OK, msg=f"undo failed before, but {why}")
                journal = self.env.journal
                if journal is not None:
                    seq = journal.intent(st.step, st.host, args_digest("undo", item.record), prev.attempt + 1, phase="undo")
                    journal.outcome(seq, st.step, st.host, "ok", changed=False, registered=None, duration=0.0, msg=res.msg,
                                    phase="undo")
                self.console.step_result(f"undo: {name}", hs.host.name, res)
                return True
        attempt = prev.attempt + 1 if prev is not None else 1
        return not undo_step(self.env, self.console, st.step, name, hs, item.record, attempt=attempt).failed

    def run(self, items: list[UndoItem], on_stop: Callable[[UndoItem], None]) -> bool:
        for item in items:
            if not self.undo(item):
                on_stop(item)
                return False
        return True
