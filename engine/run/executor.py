"""One step on one host: render, probe, check mode, journal, apply, re-probe.

The executor — not the action — decides what happens, from the action's declared
capabilities (STYLE §1, §2):

1. ``when`` false → ``skipped`` (the registered variable is still defined, status skipped).
2. ``unless``/``creates`` or the action's own probe says done → ``ok``, nothing applied.
3. check mode: read-only actions run; mutating ones report what they would do.
4. journal *intent* → apply (with ``retries``/``until``, ``timeout``) → journal *outcome*.
5. a mutating action with a probe is probed again; not converged → ``failed``.
6. ``failed_when``/``changed_when``/``ignore_errors`` adjust the verdict.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from engine.actions.base import Action, record_marks
from engine.actions.registry import get_action
from engine.language.loader import rendered_problems
from engine.run.context import ActionContext
from engine.errors import ConnectError, OutcomeUnknown, RunbookError, SqlError, TemplateError
from engine.model import Status, Step, StepResult
from engine.secrets import MASKER
from engine.run.probing import Probing
from engine.run.state import HostState, StepEnv, variables
from engine.run.stepargs import args_digest, loop_sees_item, sql_view
from engine.templating.render import ENGINE, has_template

if TYPE_CHECKING:
    from engine.journal import JournalState


def _classify(exc: BaseException) -> StepResult:
    """Our errors → a failed or unreachable result with evidence. A command or statement that
    was sent and whose fate is unknown (timeout, lost connection, abort) fails *uncertain*:
    the journal records it in doubt."""
    if isinstance(exc, OutcomeUnknown):
        what = exc.what or ""
        shown = what if len(what) <= 2000 else what[:1999] + "…"
        return StepResult(Status.FAILED, msg=exc.render(), uncertain=True, data={"errno": getattr(exc, "errno", None)},
                          evidence=(f"sent: {shown}" if shown else "") + (f"\nstopped by: {exc.stopped}" if exc.stopped else ""))
    if isinstance(exc, ConnectError):
        return StepResult(Status.UNREACHABLE, msg=exc.render())
    if isinstance(exc, SqlError):
        return StepResult(Status.FAILED, msg=exc.render(), data={"errno": exc.errno, "sqlstate": exc.sqlstate},
                          evidence=f"SQL: {exc.sql}" if exc.sql else "")
    if isinstance(exc, (TemplateError, RunbookError)):
        return StepResult(Status.FAILED, msg=exc.render())
    raise exc


def _internal(step: Step, exc: Exception) -> StepResult:
    import traceback

    tb = "".join(traceback.format_exception(exc)[-6:])
    return StepResult(Status.FAILED, msg=f"internal error in the {step.action} action: {type(exc).__name__}: {exc} (please report it)",
                      evidence=MASKER.text(tb))


_UNRENDERED: Any = object()  # the digest did not render the arguments the step runs

IDENTITY = "identity"  # run_state key of the identity guard (engine.actions.guard.IDENTITY_KEY)


SHARED = "run_fact"  # journal event of ActionContext.share: a run-wide fact about one host


def restore_run_state(events: list[dict[str, Any]], run_state: dict[str, Any]) -> None:
    """Put back what a previous process of this run learnt (the identities it saw, the facts
    actions shared with later steps)."""
    for e in events:
        if e.get("kind") == IDENTITY and e.get("host") and isinstance(e.get("identity"), dict):
            run_state.setdefault(IDENTITY, {})[e["host"]] = e["identity"]
        elif e.get("kind") == SHARED and e.get("host") and isinstance(e.get("key"), str):
            run_state.setdefault(e["key"], {})[e["host"]] = e.get("value")


class _StepWatch:
    """``timeout:`` bounds the whole step whatever the action does with it: at the deadline,
    what still runs on the host (a statement, a command) is stopped — its outcome unknown, the
    step in doubt. Actions that honour ``ctx.remaining()`` end on their own before that."""

    def __init__(self, hs: HostState, seconds: float):
        self._lock = threading.Lock()
        self._active = True
        self._hs = hs
        self._timer = threading.Timer(seconds + 0.5, self._fire, args=(seconds,))  # the action's own limit goes first
        self._timer.daemon = True
        self._timer.start()

    def _fire(self, seconds: float) -> None:
        with self._lock:
            if self._active:
                self._hs.conns.interrupt(f"ran past the step's timeout of {seconds:g}s")

    def stop(self) -> None:
        with self._lock:  # after this, the watch can no longer touch the host's next step
            self._active = False
        self._timer.cancel()


class Executor(Probing):
    """Runs steps. One instance per run; thread-safe across hosts. What resume and rollback
    ask of an in-doubt step (probe it, may it run again) is in :class:`Probing`."""

    def __init__(self, env: StepEnv, prior: JournalState | None = None):
        self.env = env
        #: the journal of this run as resume or rollback found it (None on a first run)
        self.prior = prior
        self._live_notes: dict[tuple[str, str], dict[str, Any]] = {}

    def context(self, step: Step, hs: HostState, variables_: dict[str, Any], timeout: float | None,
                deadline: float | None = None) -> ActionContext:
        env = self.env
        return ActionContext(
            host=hs.host, conns=hs.conns, vars=variables_, run_id=env.run_id, check_mode=env.check_mode,
            step_key=step.key, source=step.source, timeout=timeout, journal_dir=env.journal_dir,
            progress=lambda done, total, label: env.progress(hs.host.name, done, total, label),
            warn=env.warn, run_state=env.run_state, deadline=deadline, interrupted=env.interrupted, ask=env.ask,
            idempotent=step.idempotent is True, peers=env.peers, args_problems=rendered_problems,
            notes=dict(self._notes(step, hs)), note_fn=lambda data: self._write_note(step, hs, data),
            share_fn=lambda key, value: self._share(step, hs, key, value),
        )

    def _notes(self, step: Step, hs: HostState) -> dict[str, Any]:
        """What earlier attempts of this step journaled before their change (this process's
        own notes included: a retry in the same run sees them too)."""
        key = (step.key, hs.host.name)
        if key not in self._live_notes:
            prior = self.prior.step(step.key, hs.host.name) if self.prior is not None else None
            self._live_notes[key] = dict(prior.notes) if prior is not None else {}
        return self._live_notes[key]

    def _write_note(self, step: Step, hs: HostState, data: dict[str, Any]) -> None:
        self._notes(step, hs).update(data)
        if self.env.journal is not None:
            self.env.journal.event("step_note", step=step.key, host=hs.host.name, phase="do", data=data)

    def _share(self, step: Step, hs: HostState, key: str, value: Any) -> None:
        if self.env.journal is not None:
            self.env.journal.event(SHARED, step=step.key, host=hs.host.name, key=key, value=value)

    # -- the whole step on one host ------------------------------------------------------
    def run(self, step: Step, hs: HostState, stage: str, *, attempt: int = 1) -> StepResult:
        start = time.perf_counter()
        # timeout: bounds the whole step (probes, every statement or command, retries, loop items)
        deadline = None if step.timeout is None else time.monotonic() + step.timeout
        vars_ = variables(self.env, hs, stage)
        journal = self.env.journal
        seq = None
        known = self._identity(hs)
        prior = self.prior.step(step.key, hs.host.name) if self.prior is not None else None
        if prior is not None:
            attempt = max(attempt, prior.attempt + 1)
        hs.conns.begin_step()  # session state of the previous step (USE, SET ...) is gone
        when = self._when(step, vars_)
        skipped = when is False
        if journal is not None:
            # Outside the try: a journal that cannot be written (a full disk) must stop the run
            # before this side effect, not be journaled (it cannot be) as the step's failure.
            digest, rendered, quiet = self._digest_and_args(step, vars_)
            # A step that changes nothing need not wait for its intent to reach the disk. One its
            # `when:` skips says so: killed before its outcome, resume knows it did nothing.
            seq = journal.intent(step.key, hs.host.name, digest, attempt, durable=not (quiet or skipped),
                                 extra={"when": False} if skipped else None)
        else:
            rendered = _UNRENDERED
        watch = _StepWatch(hs, step.timeout) if step.timeout is not None else None
        try:
            if skipped:
                result = StepResult(Status.SKIPPED, msg="when: false")
            elif step.loop is not None:
                result = self._run_loop(step, hs, vars_, attempt, deadline)
            else:
                result = self._run_one(step, hs, vars_, attempt, deadline, rendered, when_true=when is True)
        except RunbookError as exc:
            result = _classify(exc)
            if step.source and str(step.source) not in result.msg:
                result.msg = f"{step.source}: {result.msg}"
        except Exception as exc:  # probes and templates of a buggy action: fail the step, journal it
            result = _internal(step, exc)
        finally:
            if watch is not None:
                watch.stop()
        result.duration = time.perf_counter() - start
        registered = result.registered()  # built once: the journal's record and the host's facts
        if journal is not None and seq is not None:
            journal.outcome(seq, step.key, hs.host.name, "unknown" if result.uncertain else result.status.value, changed=result.changed,
                            registered=registered, duration=result.duration, msg=result.msg,
                            undo=result.undo, evidence=result.evidence)
        if journal is not None and self._identity(hs) != known:
            # The identity guard's memory must outlive this process: resume and rollback
            # check destructive steps against the server the run first saw.
            journal.event("identity", host=hs.host.name, identity=self._identity(hs))
        self.remember(step, hs, result, registered)
        return result

    def variables_for(self, hs: HostState, stage: str) -> dict[str, Any]:
        return variables(self.env, hs, stage)

    @staticmethod
    def _when(step: Step, vars_: dict[str, Any]) -> bool | None:
        """The step's ``when:``, decided before its intent (which records a skip); None when
        there is none to decide here: no ``when``, a loop's (evaluated per item), or one that
        cannot be evaluated (the step's own run reports it; check mode: "cannot tell")."""
        if step.when is None or step.loop is not None:
            return None
        try:
            return ENGINE.truth(step.when, vars_)
        except RunbookError:
            return None

    def _identity(self, hs: HostState) -> Any:
        return self.env.run_state.get(IDENTITY, {}).get(hs.host.name)

    def digest(self, step: Step, vars_: dict[str, Any]) -> str:
        """Digest of the rendered arguments (what the step is about to do)."""
        return self._digest_and_args(step, vars_)[0]

    def _digest_and_args(self, step: Step, vars_: dict[str, Any]) -> tuple[str, Any, bool]:
        """The digest; the rendered arguments when the step runs them as they are (rendered
        once: what the journal's digest says is what runs); and whether the call, as rendered,
        cannot change anything (its action says so from the same view)."""
        rendered: Any = _UNRENDERED
        quiet = False
        try:
            cls = get_action(step.action)
            if cls.renders_own_args:
                view = sql_view(step.args, vars_)
            elif step.loop is not None:
                view = [step.args, ENGINE.render(step.loop, vars_)]
            else:
                view = rendered = ENGINE.render(step.args, vars_)
            quiet = step.loop is None and cls.view_changes_nothing(view)
        except RunbookError:
            view = step.args
        return args_digest(step.action, view), rendered, quiet

    def remember(self, step: Step, hs: HostState, result: StepResult, registered: dict[str, Any] | None = None) -> None:
        """Keep what the step registered. ``registered``: ``result.registered()`` when the
        caller built it already (a fresh dict that only the journal read, to encode it)."""
        cls = get_action(step.action)
        reg = result.registered() if registered is None else registered
        record_marks(self.env.run_state, cls, hs.host.name, reg)
        if step.register:
            hs.facts[step.register] = reg
        if result.status is Status.OK:
            hs.facts.update(cls.facts_set(reg))

    def _run_loop(self, step: Step, hs: HostState, vars_: dict[str, Any], attempt: int, deadline: float | None) -> StepResult:
        if step.when is not None and not loop_sees_item(step) and not ENGINE.truth(step.when, vars_):
            return StepResult(Status.SKIPPED, msg="when: false", data={"results": []}, items=[])
        items = ENGINE.render(step.loop, vars_)
        if isinstance(items, dict):
            items = [{"key": k, "value": v} for k, v in items.items()]
        if not isinstance(items, (list, tuple)):
            raise TemplateError(f"loop: must give a list, got {type(items).__name__}", source=step.source)
        results: list[StepResult] = []
        for i, item in enumerate(items):
            v = dict(vars_)
            v[step.loop_var] = item
            v["ansible_loop"] = {"index": i + 1, "index0": i, "first": i == 0, "last": i == len(items) - 1, "length": len(items)}
            r = self._run_one(step, hs, v, attempt, deadline)
            r.data.setdefault("item", item)
            results.append(r)
            if r.status is Status.UNREACHABLE or r.uncertain:
                break
        statuses = {r.status for r in results}
        if Status.UNREACHABLE in statuses:
            status = Status.UNREACHABLE
        elif any(r.failed and not r.ignored for r in results):
            status = Status.FAILED
        elif Status.CHANGED in statuses:
            status = Status.CHANGED
        elif results and statuses == {Status.SKIPPED}:
            status = Status.SKIPPED
        else:
            status = Status.OK
        failed_items = [r for r in results if r.failed]
        msg = f"{len(results)} items" + (f", {len(failed_items)} failed: {failed_items[0].msg}" if failed_items else "")
        undo = [r.undo for r in results if r.undo is not None] or None
        return StepResult(status, msg=msg, items=results, undo={"kind": "items", "records": undo} if undo else None,
                          evidence="\n".join(r.evidence for r in failed_items if r.evidence)[-4000:],
                          uncertain=any(r.uncertain for r in results))

    def _run_one(self, step: Step, hs: HostState, vars_: dict[str, Any], attempt: int, deadline: float | None,
                 rendered: Any = None, when_true: bool = False) -> StepResult:
        """``when_true``: the step's ``when:`` was found true already (not evaluated again)."""
        rendered = _UNRENDERED if rendered is None else rendered
        if self.env.check_mode:
            try:
                result = self._run_one_inner(step, hs, vars_, attempt, deadline, rendered, when_true)
            except (TemplateError, SqlError) as exc:
                # An honest plan: what an earlier step only simulated (a table, a registered
                # stdout) is not there to probe or render. Say so instead of failing the plan.
                result = StepResult(Status.SKIPPED, msg="check mode: cannot tell " + self._simulated_reads(step, hs, exc))
            would = get_action(step.action).mutating and result.status is Status.CHANGED  # said what it would do
            untold = result.status is Status.SKIPPED and result.msg.startswith("check mode")
            if step.register and (would or untold):
                hs.simulated[step.register] = step.name
            return result
        return self._run_one_inner(step, hs, vars_, attempt, deadline, rendered, when_true)

    @staticmethod
    def _cannot_tell(hs: HostState) -> StepResult:
        """Check mode, a probe that finds nothing to do after a step that would change the host
        (a reopen after a fence): "already in the desired state" would be untrue."""
        return StepResult(Status.SKIPPED, msg=f"check mode: cannot tell: nothing to do as {hs.host.name} is now, "
                                              f"but {hs.would_change!r} would change it first")

    def _simulated_reads(self, step: Step, hs: HostState, exc: RunbookError) -> str:
        """Why a check-mode step cannot be evaluated: the simulated results it reads, by name."""
        import os

        from engine.language.var_reads import step_reads

        base = os.path.dirname(os.path.abspath(step.source.file)) if step.source is not None else "."
        reads = sorted(step_reads(step, base) & set(hs.simulated))
        if reads:
            names = ", ".join(f"{r} (of {hs.simulated[r]!r})" for r in reads)
            return f"before the earlier steps run: it reads {names}, which check mode only simulated"
        return f"without running earlier steps ({exc.render()})"

    def _run_one_inner(self, step: Step, hs: HostState, vars_: dict[str, Any], attempt: int, deadline: float | None,
                       rendered: Any = None, when_true: bool = False) -> StepResult:
        env = self.env
        if step.when is not None and not when_true and not ENGINE.truth(step.when, vars_):
            return StepResult(Status.SKIPPED, msg="when: false")
        cls = get_action(step.action)
        timeout = step.timeout
        if cls.renders_own_args:
            args = step.args
        elif rendered is not None and rendered is not _UNRENDERED:
            args = rendered  # rendered once, for the journal's digest
        else:
            args = ENGINE.render(step.args, vars_)
        if not cls.renders_own_args and has_template(step.args):
            bad = rendered_problems(cls, args)
            if bad:
                raise TemplateError("after rendering, " + "; ".join(bad), hint="check the variables these arguments use")
        ctx = self.context(step, hs, vars_, timeout, deadline)
        action = cls(args, ctx)

        # Probe first: an explicit unless/creates, else the action's own read-only probe.
        done, why = self._explicit_probe(step, ctx)
        if done and env.check_mode and hs.would_change:
            return self._cannot_tell(hs)
        if done:
            return StepResult(Status.OK, msg=f"already done ({why})")
        probe = None
        if cls.mutating and step.unless is None and step.creates is None:
            probe = action.probe()
            if probe is not None and probe.done and env.check_mode and hs.would_change:
                return self._cannot_tell(hs)
            if probe is not None and probe.done:
                # Made by an earlier attempt of this run (killed before its outcome)? Then its
                # undo must not be lost: the action says so from its own evidence.
                found = self._builtin_undo(step, action.undo_of_found(probe))
                msg = "already in the desired state" + (" (made by an earlier attempt of this run)" if found else "")
                return StepResult(Status.OK, msg=msg, data=action.result_of_found(probe), undo=found)

        if env.check_mode and cls.mutating:
            result = action.check()
            if result.status is not Status.OK and not hs.would_change:
                hs.would_change = step.name  # it would run: later probes see the host as it is, not as it would be
            return self._verdict(step, result, vars_)

        self._guard_identity(step, action, ctx)
        result = self._apply_with_retries(step, action, vars_, hs)
        if cls.mutating and probe is not None and result.status in (Status.OK, Status.CHANGED):
            after = action.probe()
            if after is not None and not after.done:
                result = StepResult(Status.FAILED, msg=f"did not converge: still {after.would or 'not in the desired state'}",
                                    data=result.data, evidence=result.evidence)
        if step.undo is not None and result.status is Status.CHANGED:
            result.undo = self.explicit_undo(step, vars_)
        elif result.undo is not None and not (isinstance(result.undo, dict) and result.undo.get("kind")):
            result.undo = self._builtin_undo(step, result.undo)
        return self._verdict(step, result, vars_)

    def _apply_with_retries(self, step: Step, action: Action, vars_: dict[str, Any], hs: HostState) -> StepResult:
        retries = step.retries
        if isinstance(retries, str):
            rendered = ENGINE.render(retries, vars_)
            try:
                retries = int(rendered)
            except (TypeError, ValueError):
                raise TemplateError(f"retries: {rendered!r} is not a number of retries", source=step.source) from None
        if retries is None:
            retries = 3 if step.until is not None else 0
        attempts = 0
        while True:
            attempts += 1
            t0 = time.perf_counter()
            try:
                result = action.apply()
            except RunbookError as exc:
                if self.env.check_mode and isinstance(exc, TemplateError):
                    raise  # check mode reports it as "cannot tell", see _run_one
                result = _classify(exc)
            except Exception as exc:  # a bug in an action must fail its step, not the whole run
                result = _internal(step, exc)
            result.duration = time.perf_counter() - t0
            if result.status is Status.UNREACHABLE:
                return result
            if result.uncertain and not self.safe_to_rerun(step, hs, ""):
                break  # it may have taken effect: running it again could apply it twice
            if step.until is not None:
                v = dict(vars_)
                reg = result.registered()
                if step.register:
                    v[step.register] = reg
                v["result"] = reg
                if ENGINE.truth(step.until, v):
                    break
                if attempts > retries:
                    result.status = Status.FAILED
                    result.msg = f"until: {step.until} still false after {attempts} attempts" + (f" ({result.msg})" if result.msg else "")
                    break
            elif not result.failed or attempts > retries:
                break
            # timeout: bounds the retries too: no attempt starts that could not finish in time
            if action.ctx.deadline is not None and time.monotonic() + step.delay >= action.ctx.deadline:
                result.status = Status.FAILED
                result.msg = f"timeout of {step.timeout:g}s reached after {attempts} attempt(s)" + (f" ({result.msg})" if result.msg else "")
                break
            time.sleep(step.delay)
        if attempts > 1:
            result.data["attempts"] = attempts
        return result

    def _verdict(self, step: Step, result: StepResult, vars_: dict[str, Any]) -> StepResult:
        if step.failed_when is None and step.changed_when is None and not step.ignore_errors:
            return result
        if result.status is Status.SKIPPED or result.status is Status.UNREACHABLE:
            return result
        v = dict(vars_)
        reg = result.registered()
        if step.register:
            v[step.register] = reg
        v["result"] = reg
        if step.changed_when is not None and not result.failed:
            result.status = Status.CHANGED if ENGINE.truth(step.changed_when, v) else Status.OK
        if step.failed_when is not None:
            if ENGINE.truth(step.failed_when, v):
                if not result.failed:
                    result.msg = f"failed_when: {step.failed_when}"
                result.status = Status.FAILED
            elif result.status is Status.FAILED:
                result.status = Status.OK if step.changed_when is None else result.status
                result.msg = f"not failed: failed_when is false ({result.msg})"
        ignore = step.ignore_errors
        if isinstance(ignore, str):
            ignore = ENGINE.truth(ignore, v)
        if ignore and result.status is Status.FAILED:
            result.ignored = True
        return result
