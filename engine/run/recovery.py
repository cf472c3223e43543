"""Redo after a crash: skip what is done (restoring its registered results), re-probe what is
in doubt, re-run what failed. Like InnoDB's redo phase, nothing non-idempotent is applied
twice: an in-doubt step without a probe is put to the operator.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from engine.errors import NeedsDecision
from engine.run.executor import HostState
from engine.model import Stage, Status, Step, StepResult

if TYPE_CHECKING:
    from engine.journal import Journal, JournalState
    from engine.report.console import Console
    from engine.run.executor import Executor

_COMMON = {"changed", "failed", "skipped", "unreachable", "status", "msg", "duration", "ignored", "results"}


class Resumer:
    def __init__(self, prior: JournalState, executor: Executor, journal: Journal | None, console: Console,
                 run_id: str, decisions: dict[str, str]):
        self.prior = prior
        self.executor, self.journal, self.console, self.run_id = executor, journal, console, run_id
        self.decisions = decisions

    def _state(self, step: Step, hs: HostState) -> Any:
        return self.prior.steps.get((step.key, hs.host.name, "do"))

    def _restore(self, step: Step, hs: HostState, st: Any) -> StepResult:
        reg = dict(st.registered or {})
        status = Status(st.outcome_status) if st.outcome_status in Status._value2member_map_ else Status.OK
        result = StepResult(status, msg="done before the interruption", duration=st.duration or 0.0,
                            data={k: v for k, v in reg.items() if k not in _COMMON}, undo=st.undo)
        result.ignored = bool(reg.get("ignored"))
        if step.register:
            hs.facts[step.register] = reg  # exactly what the first attempt registered
        if step.action == "set_fact" and isinstance(reg.get("facts"), dict):
            hs.facts.update(reg["facts"])
        return result

    def stage_done(self, stage: Stage, steps: list[Step], hosts: list[HostState]) -> bool:
        """True (with facts restored) when every step of the stage is done on every host."""
        states = [(s, hs, self._state(s, hs)) for s in steps for hs in hosts]
        if not all(st is not None and st.status == "done" for _, _, st in states):
            return False
        for s, hs, st in states:
            res = self._restore(s, hs, st)
            if res.failed and not res.ignored:
                return False
        return True

    def before_step(self, stage: Stage, step: Step, hs: HostState) -> StepResult | None:
        """A result when the step needs no run now; None to run it (again)."""
        st = self._state(step, hs)
        if st is None or st.status == "failed":
            return None  # never started, or failed and the operator fixed the cause: run it
        if st.status == "done":
            res = self._restore(step, hs, st)
            res.note = "from the journal"  # type: ignore[attr-defined]
            return res
        # In doubt: an intent without an outcome.
        done, why = self.executor.probe_only(step, hs, stage.name)
        journal = self.journal
        if done:
            res = StepResult(Status.OK, msg=f"was in doubt; {why}: recorded as done")
            if journal is not None:
                journal.outcome(st.intent_seq, step.key, hs.host.name, "ok", changed=False, registered=res.registered(),
                                duration=0.0, msg=res.msg)
            self.executor.remember(step, hs, res)
            return res
        if done is False:
            return None  # a probe says it is not done: running it is what the first attempt meant to do
        if self.executor.safe_to_rerun(step, hs, stage.name):
            return None  # no probe, but running it again gives the same result
        return self._ask(step, hs, st, why)

    def _ask(self, step: Step, hs: HostState, st: Any, why: str) -> StepResult | None:
        key = f"{step.key}@{hs.host.name}"
        decision = self.decisions.get(key) or self.decisions.get(step.key)
        if decision is None and sys.stdin.isatty():
            self.console.line(
                f"\nIN DOUBT: step {step.key!r} on {hs.host.name} was running when the run stopped, "
                f"and nothing can tell whether it took effect ({why or 'the step has no probe'}).", "bold yellow")
            while decision not in ("rerun", "done", "abort"):
                try:
                    decision = input("  rerun it, mark it done, or abort? [rerun/done/abort]: ").strip().lower()
                except EOFError:
                    decision = "abort"
        if decision is None:
            raise NeedsDecision(
                f"step {step.key!r} on {hs.host.name} is in doubt (it was running when the run stopped) and has no probe "
                "to tell whether it took effect",
                hint=f"check the host, then: runbook resume {self.run_id} --decide '{key}=done' (or =rerun)")
        journal = self.journal
        if journal is not None:
            journal.event("operator_decision", step=step.key, host=hs.host.name, decision=decision)
        if decision == "rerun":
            return None
        if decision == "done":
            res = StepResult(Status.OK, msg="was in doubt; marked done by the operator")
            if journal is not None:
                journal.outcome(st.intent_seq, step.key, hs.host.name, "ok", changed=False, registered=res.registered(),
                                duration=0.0, msg=res.msg)
            self.executor.remember(step, hs, res)
            return res
        raise NeedsDecision(f"resume aborted by the operator at step {step.key!r} on {hs.host.name}")
