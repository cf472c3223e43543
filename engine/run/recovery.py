"""Redo after a crash: skip what is done (restoring its registered results), re-probe what is
in doubt, re-run what failed. Like InnoDB's redo phase, nothing non-idempotent is applied
twice: an in-doubt step without a probe is put to the operator.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from engine.actions.base import record_marks
from engine.actions.registry import get_action
from engine.errors import NeedsDecision
from engine.journal.analysis import StepVerdict
from engine.journal.layout import journal_flag
from engine.run.state import HostState, variables
from engine.model import Stage, Status, Step, StepResult

if TYPE_CHECKING:
    from engine.journal import Journal
    from engine.journal.analysis import JournalState
    from engine.report.console import Console
    from engine.run.executor import Executor
    from engine.run.operator import Operator

def _epoch(ts: Any) -> float:
    """A journal timestamp as seconds since the epoch (0 when unreadable: never "recent")."""
    try:
        return datetime.fromisoformat(str(ts)).timestamp()
    except ValueError:
        return 0.0


_COMMON = {"changed", "failed", "skipped", "unreachable", "status", "msg", "duration", "ignored", "results"}


class Resumer:
    def __init__(self, prior: JournalState, executor: Executor, journal: Journal | None, console: Console,
                 run_id: str, decisions: dict[str, str], operator: Operator | None = None,
                 interrupted: Callable[[], bool] = lambda: False):
        self.operator, self.interrupted = operator, interrupted
        self.prior = prior
        self.executor, self.journal, self.console, self.run_id = executor, journal, console, run_id
        self.decisions = decisions
        self._settled: set[str] = set()  # hosts whose orphaned statements were dealt with
        self.rolled_back = prior.rolled_back_stages()

    def _state(self, step: Step, hs: HostState) -> Any:
        return self.prior.steps.get((step.key, hs.host.name, "do"))

    def _restore(self, step: Step, hs: HostState, st: Any) -> StepResult:
        reg = dict(st.registered or {})
        status = Status(st.outcome_status) if st.outcome_status in Status._value2member_map_ else Status.OK
        result = StepResult(status, msg="done before the interruption", duration=st.duration or 0.0,
                            data={k: v for k, v in reg.items() if k not in _COMMON}, undo=st.undo)
        result.ignored = bool(reg.get("ignored"))
        record_marks(self.executor.env.run_state, get_action(step.action), hs.host.name, reg)
        if step.register:
            hs.facts[step.register] = reg  # exactly what the first attempt registered
        if status is Status.OK:
            hs.facts.update(get_action(step.action).facts_set(reg))
        return result

    def _done(self, step: Step, hs: HostState, st: Any) -> bool:
        """Done, and not in a stage that was rolled back after it: a rolled-back stage runs
        again from its start (its facts may be stale, its changes were undone). Nor a step
        done after a step a later rollback undid (a restore after its snapshot, which
        `runbook rollback` swapped back): when it may run again (its probe decides, or it is
        idempotent or read-only) it runs; one that may not stays done (running it twice would
        be worse), as the journal says."""
        if st is None or st.status is not StepVerdict.DONE:
            return False
        rolled = self.rolled_back.get(step.stage)
        if rolled is not None and rolled > (st.outcome_seq or 0):
            return False
        return not (self.prior.undone_under(st) and self.executor.safe_to_rerun(step, hs, step.stage))

    def stage_done(self, stage: Stage, steps: list[Step], hosts: list[HostState]) -> bool:
        """True (with facts restored) when every step of the stage is done on every host."""
        states = [(s, hs, self._state(s, hs)) for s in steps for hs in hosts]
        if not all(self._done(s, hs, st) for s, hs, st in states):
            return False
        for s, hs, st in states:
            res = self._restore(s, hs, st)
            if res.failed and not res.ignored:
                return False
        return True

    def before_step(self, stage: Stage, step: Step, hs: HostState) -> StepResult | None:
        """A result when the step needs no run now; None to run it (again)."""
        st = self._state(step, hs)
        if st is None or st.status in (StepVerdict.FAILED, StepVerdict.UNDONE):
            # Never started; failed and the operator fixed the cause; or undone by a rollback:
            # run it (its probe still comes first, so what is in place is not redone).
            return None
        if st.status is StepVerdict.DONE:
            if not self._done(step, hs, st):
                return None  # its stage was rolled back, or a step it rests on was undone: run it again
            res = self._restore(step, hs, st)
            res.note = "from the journal"  # type: ignore[attr-defined]
            return res
        # In doubt: an intent without an outcome, or an outcome "unknown".
        if st.extra.get("when") is False and not st.undo_pending:
            # Its `when:` skipped it: the attempt made no action and sent nothing (its
            # arguments, which may read what a failed step never registered, were never used).
            # It runs again: the condition is evaluated anew.
            self._unused_decision(step, hs, "its when: was false, so it did nothing; it runs again")
            return None
        self.settle_orphans(hs)
        now = self.executor.digest(step, variables(self.executor.env, hs, stage.name))
        if st.digest and now != st.digest:
            return self._ask(step, hs, st, "its arguments render differently now than when it was started "
                                           "(a variable, a registered result or a file changed)")
        found = self.executor.probe_only(step, hs, stage.name)
        if found.done:
            # What the probe found is what the step registers: a later step reads it (a
            # verify's `row_counts: {from: restored}`), exactly as if the outcome had been kept.
            undo = found.undo if found.undo is not None or not st.undo_pending else st.undo
            res = StepResult(Status.OK, msg=f"was in doubt; {found.why}: recorded as done", undo=undo, data=found.data)
            self._unused_decision(step, hs, f"its probe settled it: {found.why}")
            self._record(st, step, hs, res)
            return res
        if found.done is False or found.rerun_safe:
            # not done (or every item is probed again): running it is what the first attempt meant
            self._unused_decision(step, hs, f"its probe settled it: {found.why or 'not done'}; it runs again")
            return None
        if self.executor.safe_to_rerun(step, hs, stage.name):
            self._unused_decision(step, hs, "it is safe to run again (idempotent or read-only): it runs again")
            return None  # no probe, but running it again gives the same result
        return self._ask(step, hs, st, found.why)

    def _unused_decision(self, step: Step, hs: HostState, why: str) -> None:
        """A --decide for a step its probe settled: not applied, and said so (console and
        journal), never silently dropped."""
        key = f"{step.key}@{hs.host.name}"
        decision = self.decisions.get(key) or self.decisions.get(step.key)
        if decision is None:
            return
        self.console.line(f"--decide {key}={decision} not applied: {why}", "yellow")
        if self.journal is not None:
            self.journal.event("operator_decision", step=step.key, host=hs.host.name, decision=decision, by="--decide",
                               applied=False, why=why)

    def _record(self, st: Any, step: Step, hs: HostState, res: StepResult) -> None:
        """Journal how an in-doubt step was settled (its probe, or the operator), and register
        its result. A step in doubt because of its undo has no open attempt: a new one is
        opened and closed at once."""
        journal = self.journal
        if journal is not None:
            seq = st.intent_seq
            if not st.open_attempt:
                seq = journal.intent(step.key, hs.host.name, st.digest, st.attempt + 1)
            journal.outcome(seq, step.key, hs.host.name, "ok", changed=False, registered=res.registered(),
                            duration=0.0, msg=res.msg, undo=res.undo)
        self.executor.remember(step, hs, res)

    def _flag(self) -> str:
        return journal_flag(self.journal.path.parent.parent) if self.journal is not None else ""

    def settle_orphans(self, hs: HostState) -> None:
        """A statement the dead process sent may still be running on the server (kill -9
        during a slow INSERT): probed now it reads "not done", and running the step again
        would apply it twice. Every connection the run opened to this host is journaled; any
        still running a statement is killed, and its rollback waited for, before a probe."""
        name = hs.host.name
        if name in self._settled:
            return
        events = [e for e in self.prior.events
                  if e.get("kind") == "sql_connection" and e.get("host") == name and isinstance(e.get("connection_id"), int)]
        if not events:
            self._settled.add(name)
            return
        from engine.errors import ConnectError, SqlError
        from engine.transport.mysql import MysqlSession, kill_on_server, running_statements

        session = hs.conns.sql()
        if not isinstance(session, MysqlSession):
            return
        try:
            # Connection ids restart with the server: only ids handed out since its last start
            # can be ours (an older one may now be an application's connection).
            uptime = float(session.query("SHOW GLOBAL STATUS LIKE 'Uptime'").rows[0]["Value"])
            since = time.time() - uptime - 5  # 5 s of slack for clock rounding
            ids = sorted({int(e["connection_id"]) for e in events if _epoch(e.get("ts")) >= since})
            user = session.settings.user
            busy = [r for r in running_statements(session, ids)
                    if r["id"] != session.connection_id and (user is None or r["user"] == user)]
            for row in busy:
                self.console.line(f"{name}: connection {row['id']} of the interrupted run is still running a statement "
                                  f"({row['seconds']}s: {row['info'] or row['command']}); killing it before the probe", "yellow")
                if self.journal is not None:
                    self.journal.event("orphan_killed", host=name, connection_id=row["id"], info=row["info"])
                kill_on_server(session, int(row["id"]), query_only=False, wait=300)
        except (ConnectError, SqlError) as exc:
            raise NeedsDecision(f"{name}: cannot tell whether a statement of the interrupted run still runs: {exc.message}",
                                hint="check the server's processlist, then resume again") from None
        still = [r for r in running_statements(session, ids) if r["id"] != session.connection_id]
        if still:
            raise NeedsDecision(f"{name}: connection {still[0]['id']} of the interrupted run is still running after KILL "
                                f"({still[0]['state']}): probing now could read a state about to change",
                                hint="wait for its rollback to end (SHOW PROCESSLIST), then resume again")
        self._settled.add(name)

    def _ask(self, step: Step, hs: HostState, st: Any, why: str) -> StepResult | None:
        key = f"{step.key}@{hs.host.name}"
        decision = self.decisions.get(key) or self.decisions.get(step.key)
        by = "--decide"
        if decision is None and self.operator is not None and self.operator.interactive:
            what = f" ({st.msg})" if st.msg else ""
            decision = self.operator.decide(
                f"IN DOUBT: step {step.key!r} on {hs.host.name} was running when the run stopped{what}, "
                f"and nothing can tell whether it took effect ({why or 'the step has no probe'}).", self.interrupted)
            by = "terminal"
        if decision is None:
            raise NeedsDecision(
                f"step {step.key!r} on {hs.host.name} is in doubt (it was running when the run stopped): "
                + (why if why and not why.startswith("a loop") else "it has no probe to tell whether it took effect"),
                hint=f"check the host, then: runbook resume {self.run_id}{self._flag()} --decide '{key}=done' (or =rerun)")
        journal = self.journal
        if journal is not None:
            journal.event("operator_decision", step=step.key, host=hs.host.name, decision=decision, by=by)
        if decision == "rerun":
            return None
        if decision == "done":
            res = StepResult(Status.OK, msg="was in doubt; marked done by the operator")
            if step.undo is not None:  # it took effect: rollback must be able to undo it
                res.undo = self.executor.explicit_undo(step, variables(self.executor.env, hs, step.stage))
            elif st.undo_pending and st.undo is not None:
                res.undo = st.undo  # its effect stands: the record of the attempt that made it still undoes it
            self._record(st, step, hs, res)
            return res
        raise NeedsDecision(f"resume aborted by the operator at step {step.key!r} on {hs.host.name}")


def _names(states: list[Any], limit: int = 3) -> str:
    shown = [f"{s.step.split('/', 1)[-1]}@{s.host}" for s in states[:limit]]
    return ", ".join(shown) + (f" and {len(states) - limit} more" if len(states) > limit else "")


def resume_outlook(state: JournalState) -> str | None:
    """What ``runbook resume`` would do with this run, in one phrase; None when it would do
    nothing worth a command (the run succeeded)."""
    if state.run_status == "succeeded":
        return None
    parts = []
    doubt, failed, undone = state.in_doubt(), state.failed(), state.undone()
    rolled = sorted(state.rolled_back_stages())
    if doubt:
        parts.append(f"probe the {len(doubt)} step(s) in doubt ({_names(doubt)}) before anything else")
    if rolled:
        parts.append(f"run stage{'s' if len(rolled) > 1 else ''} {', '.join(rolled)} again from the start")
    elif undone:
        parts.append(f"run the {len(undone)} undone step(s) again ({_names(undone)})")
    if failed:
        parts.append(f"run the failed step(s) again ({_names(failed)})")
    parts.append("skip what is done and go on with the steps not run yet")
    return "; ".join(parts)


def _verdict_words(st: Any) -> str:
    if st is None:
        return "never started"
    if st.status is StepVerdict.IN_DOUBT:
        return f"in doubt ({'its undo ' + st.undo_pending if st.undo_pending else 'cut short'})"
    return {StepVerdict.DONE: "done", StepVerdict.FAILED: "failed", StepVerdict.UNDONE: "undone by a rollback"}[st.status]


def _state_words(state: JournalState, step_key: str, host: str, command: str) -> str:
    do, undo = state.step(step_key, host), state.step(step_key, host, "undo")
    if command == "rollback" and undo is not None and undo.status is StepVerdict.FAILED \
            and (do is None or do.status is not StepVerdict.UNDONE):
        return f"{host}: its undo failed ({undo.msg[:200]}); rollback runs it again once the cause is fixed"
    return f"{host}: {_verdict_words(do)}"


def check_decisions(decisions: dict[str, str], state: JournalState, step_keys: set[str], command: str) -> None:
    """Every ``--decide`` names a step of the run in the state its value answers, or the
    command is refused before anything runs (exit 2): a decision is applied or refused, never
    silently ignored. ``command``: ``resume`` (values for an in-doubt step: rerun, done,
    abort) or ``rollback`` (an in-doubt step with an explicit undo: done, skip; an undo in
    doubt: done, rerun; abort)."""
    from engine.errors import InputError

    hosts = list(state.header.get("hosts") or sorted({s.host for s in state.steps.values()}))
    for key, value in decisions.items():
        step_key, _, host = key.rpartition("@") if "@" in key else (key, "", "")
        shown = f"--decide '{key}={value}'"
        if step_key not in step_keys:
            from engine.language.schema_messages import did_you_mean

            raise InputError(f"{shown}: the runbook has no step {step_key!r}",
                             hint=did_you_mean(step_key, sorted(step_keys)) or "name it 'stage/step@host' as `runbook show` lists it")
        if host and host not in hosts:
            raise InputError(f"{shown}: host {host!r} is not one of this run's hosts ({', '.join(hosts)})")
        targets = [host] if host else hosts
        answers: dict[str, tuple[str, ...]] = {}  # host -> the values its state takes
        for h in targets:
            do, undo = state.step(step_key, h), state.step(step_key, h, "undo")
            if command == "resume":
                if do is not None and do.status is StepVerdict.IN_DOUBT:
                    answers[h] = ("rerun", "done", "abort")
            elif undo is not None and undo.status is StepVerdict.IN_DOUBT:
                answers[h] = ("done", "rerun", "abort")  # the undo ran, or not: was it done?
            elif do is not None and do.status is StepVerdict.IN_DOUBT and not do.undo_pending:
                answers[h] = ("done", "skip", "abort")  # the step ran, or not: undo it?
        if not answers:
            doubt = [f"{s.step}@{s.host}" for s in state.in_doubt()]
            now = "; ".join(_state_words(state, step_key, h, command) for h in targets)
            raise InputError(f"{shown}: nothing to decide: {step_key} is not in doubt ({now})",
                             hint=("a decision answers only a step in doubt; in doubt now: " + ", ".join(doubt)) if doubt
                             else f"no step of this run is in doubt: `runbook {command}` needs no --decide")
        for h, values in answers.items():
            if value not in values:
                raise InputError(f"{shown}: {step_key} on {h} is {_verdict_words(state.step(step_key, h))}"
                                 + (" (its undo is in doubt)" if values[1] == "rerun" and command == "rollback" else "")
                                 + f": `runbook {command}` takes {', '.join(values)} for it")
