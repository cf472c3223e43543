"""What resume and rollback ask of a step that was in flight, and what the executor checks
before a change: is it done (the probes), may it run again, what undoes it, is this the right
server. A mixin of :class:`engine.run.executor.Executor`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.actions.base import Action
from engine.actions.probes import path_exists, unless_probe
from engine.actions.registry import get_action
from engine.errors import RunbookError
from engine.model import Step
from engine.run.context import ActionContext
from engine.run.stepargs import captured
from engine.templating.render import ENGINE

if TYPE_CHECKING:
    from engine.run.state import HostState, StepEnv


@dataclass
class Found:
    """What a probe of an in-doubt step found: done (True/False/None: cannot tell), why, the
    undo record of what this run did (when done, or of the part made when not done), whether
    running it again is safe anyway, and — when done — the result the step registers (what
    ``apply`` would have registered)."""

    done: bool | None
    why: str
    undo: Any = None
    rerun_safe: bool = False
    data: dict[str, Any] = field(default_factory=dict)


def guard_identity(action: Action, ctx: ActionContext, what: str) -> None:
    """Refuse a change on a server that is not the one this host must be (the pinned
    ``mysql_identity``, and the server this run first saw). Read-only calls pass."""
    from engine.actions.guard import check_identity, recorded_identity

    mode = type(action).identity_guard
    if not mode or action.changes_nothing():
        return
    if mode == "known" and ctx.host.vars.get("mysql_identity") in (None, "") and recorded_identity(ctx) is None:
        return  # a host command where no MySQL identity is known: nothing to hold it to
    # One check per MySQL session: a session stays on the server it connected to (a restart or
    # a failover ends it, and the next session is checked again). Saves a query per step.
    session = ctx.sql()
    if getattr(session, "identity_checked", None) == ctx.host.name:
        return
    check_identity(ctx, what)
    try:
        session.identity_checked = ctx.host.name  # type: ignore[attr-defined]
    except AttributeError:  # a session type with __slots__: check every time
        pass



class Probing:
    """Probes and safety questions about one step on one host (needs ``env``, ``context``
    and ``variables_for`` from the executor)."""

    env: StepEnv

    def context(self, step: Step, hs: HostState, variables_: dict[str, Any], timeout: float | None) -> ActionContext:
        raise NotImplementedError

    def variables_for(self, hs: HostState, stage: str) -> dict[str, Any]:
        raise NotImplementedError

    @staticmethod
    def explicit_undo(step: Step, vars_: dict[str, Any]) -> dict[str, Any]:
        action = next(iter(step.undo))
        return {"kind": "explicit", "action": action, "args": step.undo[action], "vars": captured(step.undo, vars_)}

    @staticmethod
    def _builtin_undo(step: Step, record: Any) -> dict[str, Any] | None:
        return None if record is None else {"kind": "builtin", "action": step.action, "record": record}

    def _guard_identity(self, step: Step, action: Action, ctx: ActionContext) -> None:
        """Before any change: the server must be the one the host must be (SPEC §4). The
        executor does it for every action, from its declared ``identity_guard``."""
        guard_identity(action, ctx, f"run {step.action} step {step.name!r}")

    def probe_only(self, step: Step, hs: HostState, stage: str) -> Found:
        """For resume and rollback: is this in-doubt step done? ``done`` is None when nothing
        can tell. When it is done, ``undo`` is the record to undo what this run's attempt did."""
        vars_ = self.variables_for(hs, stage)
        cls = get_action(step.action)
        ctx = self.context(step, hs, vars_, step.timeout)
        if step.loop is not None:
            # Each item is probed again when the loop runs: with unless/creates re-running
            # it skips the items done (an ``unless`` may read ``item``: never render it here).
            return Found(None, "a loop step", rerun_safe=step.unless is not None or step.creates is not None)
        if step.unless is not None or step.creates is not None:
            done, why = self._explicit_probe(step, ctx)
            undo = self.explicit_undo(step, vars_) if done and step.undo is not None else None
            return Found(done, why or "unless/creates say not done", undo)
        if not cls.mutating:
            return Found(None, "")
        args = step.args if cls.renders_own_args else ENGINE.render(step.args, vars_)
        action = cls(args, ctx)
        probe = action.probe()
        if probe is None:
            return Found(None, "")
        if not probe.done:
            # Partly made by this run (a fence up, its kills unfinished): that part's undo.
            partial = self._builtin_undo(step, action.undo_of_partial(probe))
            return Found(False, f"the action's probe says not done: {probe.would}", partial)
        undo = self._builtin_undo(step, action.undo_of_found(probe))
        if undo is None and step.undo is not None:
            undo = self.explicit_undo(step, vars_)
        return Found(True, "the action's probe says done", undo, data=action.result_of_found(probe))

    def safe_to_rerun(self, step: Step, hs: HostState, stage: str) -> bool:
        """May resume run this step again when it is in doubt? The runbook's ``idempotent:``
        wins; else the action says whether this call is idempotent (read-only and idempotent
        actions are; an ``sql`` step is when every statement is of an idempotent form)."""
        if step.idempotent is not None:
            return step.idempotent
        if step.changed_when is False:
            return True  # the author declared that it changes nothing (a read-only command)
        cls = get_action(step.action)
        if cls.idempotent or not cls.mutating:
            return True
        vars_ = self.variables_for(hs, stage)
        try:
            args = step.args if cls.renders_own_args else ENGINE.render(step.args, vars_)
        except RunbookError:
            return False
        return cls(args, self.context(step, hs, vars_, step.timeout)).idempotent_call()

    def _explicit_probe(self, step: Step, ctx: ActionContext) -> tuple[bool, str]:
        if step.creates is not None:
            path = str(ENGINE.render(step.creates, ctx.vars))
            if path_exists(path, ctx):
                return True, f"creates: {path} exists"
        if step.unless is not None:
            done, what = unless_probe(step.unless, step.action, ctx)
            if done:
                shown = " ".join(what.split())
                return True, f"unless: {shown if len(shown) <= 70 else shown[:69] + '…'} is true"
        return False, ""
