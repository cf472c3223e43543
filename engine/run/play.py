"""Stages and hosts in order: targets, tags, confirmation, budgets, failure policy, resume.

Strategy is linear, like Ansible's default: a step runs on every active host of its stage
(in parallel up to ``forks``), then the next step starts; per host the order of steps is the
runbook's. A host that fails or is unreachable takes no further step. The stage's
``on_failure`` decides for the rest: ``abort`` stops the run after the current step,
``rollback`` undoes the stage's completed steps newest first and stops, ``continue`` goes on
with the hosts that are still healthy.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from collections.abc import Mapping

from engine.run.context import Connections
from engine.errors import ActionError, InputError, RunbookError
from engine.run.executor import Executor, restore_run_state
from engine.run.state import HostState, StepEnv, variables
from engine.inventory import Inventory, match_pattern
from engine.inventory.ranges import is_ip
from engine.model import Host, OnFailure, Runbook, Stage, Status, Step, StepResult
from engine.report.console import Console
from engine.run.recovery import Resumer
from engine.templating.render import ENGINE, lazify
from engine.run.interrupt import Interrupts
from engine.run.operator import Operator, OperatorDesk, Unattended
from engine.run.rollback import undo_step
from engine.run.channel import RunChannel

if TYPE_CHECKING:
    from engine.journal import Journal, JournalState


@dataclass
class PlayOptions:
    check: bool = False
    diff: bool = False
    tags: tuple[str, ...] = ()
    skip_tags: tuple[str, ...] = ()
    limit: str | None = None
    start_at: str | None = None
    yes: bool = False
    forks: int = 10
    journal_dir: str = ".runbook"
    extra_vars: dict[str, Any] = field(default_factory=dict)
    verbose: int = 0
    decisions: dict[str, str] = field(default_factory=dict)  # "stage/step@host" -> rerun|done|abort


@dataclass
class PlayOutcome:
    status: str  # succeeded | failed | interrupted | aborted | rolled back (engine.cli.main maps it to an exit code)
    duration: float
    results: list[tuple[str, str, str, StepResult]] = field(default_factory=list)  # (stage, step, host, result)


def tags_select(stage: Stage, step: Step, tags: tuple[str, ...] | set[str], skip_tags: tuple[str, ...] | set[str]) -> bool:
    """Ansible's rules: --skip-tags wins; with --tags a step runs when it (or its stage) has
    one of them, or ``always``; ``--tags all`` selects everything."""
    mine = set(stage.tags) | set(step.tags)
    if mine & set(skip_tags):
        return False
    return not tags or "all" in tags or "always" in mine or bool(mine & set(tags))


def with_extra_vars(host: Host, extra: dict[str, Any]) -> Host:
    """-e has the highest precedence, connection variables included: ``-e mysql_password=…``
    must reach the MySQL connection, not only templates."""
    if not extra:
        return host
    import dataclasses

    return dataclasses.replace(host, vars={**host.vars, **extra})


class _HostVarsView(Mapping[str, Any]):
    """``hostvars['db1'].x`` without building every host's variables for every step."""

    def __init__(self, play: Play):
        self._play = play

    def __getitem__(self, name: str) -> Any:
        hs = self._play.states.get(name)
        if hs is None:  # outside --limit: still in hostvars, as in Ansible (its inventory variables)
            out = lazify(self._play.inv.hosts[name].vars)
            facts: dict[str, Any] = {}
        else:
            out, facts = dict(hs.lazy_vars), hs.facts
        out.update(self._play.runbook_vars)
        out.update(facts)
        out.update(self._play.opts.extra_vars)
        out["inventory_hostname"] = name
        return out

    def __iter__(self) -> Any:
        return iter(self._play.inv.hosts)

    def __len__(self) -> int:
        return len(self._play.inv.hosts)


class Play:
    def __init__(self, rb: Runbook, inv: Inventory, opts: PlayOptions, console: Console, *, run_id: str,
                 journal: Journal | None, prior: JournalState | None = None, operator: Operator | None = None):
        self.rb, self.inv, self.opts, self.console = rb, inv, opts, console
        self.operator: Operator = operator if operator is not None else Unattended()
        self.interrupts = Interrupts()
        self._noticed = 0  # presses the main loop has acted on
        self.desk = OperatorDesk(self.operator, lambda: self.interrupts.presses > 0)
        self.run_id, self.journal = run_id, journal
        self.runbook_vars = lazify(rb.vars)
        ENGINE.load_jinja()  # a run renders: Jinja2 imported here, before the host workers start
        extra = lazify(opts.extra_vars)
        limit_hosts = set(match_pattern(opts.limit, inv)) if opts.limit else None
        self.states: dict[str, HostState] = {}
        for name, host in inv.hosts.items():
            if limit_hosts is None or name in limit_hosts:
                host = with_extra_vars(host, opts.extra_vars)
                self.states[name] = HostState(host, Connections(host, on_sql_connect=self._sql_connected))
        self._hostvars = _HostVarsView(self)
        self._names: dict[str, tuple[str, tuple[str, ...]]] = {}  # see _host_names
        self._step_hosts: list[str] | None = None  # play_hosts while a step runs (see _run_step)
        self._workers = _Workers()
        self._peer_conns: dict[str, Connections] = {}
        self._peer_lock = threading.Lock()
        self.env = StepEnv(run_id=run_id, check_mode=opts.check, journal=journal, journal_dir=opts.journal_dir,
                           extra_vars=extra, runbook_vars=self.runbook_vars, magic=self._magic,
                           progress=console.progress, warn=console.warn, diff=opts.diff, ask=self.desk.pause,
                           peers=self.peer)
        self.executor = Executor(self.env, prior)
        self.resumer = (Resumer(prior, self.executor, journal, console, run_id, opts.decisions, self.operator,
                                lambda: self.interrupts.presses > 0) if prior is not None else None)
        if prior is not None:
            restore_run_state(prior.events, self.env.run_state)
        self.outcome = PlayOutcome("succeeded", 0.0)
        self._aborted = False  # a second Ctrl-C left steps running (see _abort)
        #: the run's incident channel (runbook-level notify:), and what its final line says
        self.channel = RunChannel(rb, self.env, journal, console)
        self.failure: tuple[str, Step, str, str] | None = None  # (stage, step, host, msg) of the first failure
        self.current_stage = ""  # the stage that ran last (an interrupted run names it)

    @property
    def interrupted(self) -> bool:
        """The operator asked the run to stop (and the main loop has said so)."""
        self.notice()
        return self._noticed > 0

    def notice(self) -> None:
        """On the main thread: act on signals the handler counted (see engine.run.interrupt)."""
        presses = self.interrupts.presses
        if presses <= self._noticed:
            return
        if self._noticed == 0:
            self._noticed = 1
            self.env.interrupted.set()  # a pause ends at once
            self.console.line(f"\nInterrupted ({self.interrupts.signal_name}): finishing the running steps, starting no new one, "
                              "then stopping (Ctrl-C again to abort them)", "bold yellow")
            if self.journal is not None:
                self.journal.event("interrupted", presses=1, signal=self.interrupts.signal_name)
        if presses >= 2:
            self._noticed = presses
            raise AbortStep("aborted by a second interrupt: the steps that were running are in doubt")

    def _sql_connected(self, host: str, connection_id: int) -> None:
        """Every MySQL connection is journaled: after a kill -9 of this process, resume finds
        a statement of ours still running on the server and stops it before probing."""
        if self.journal is not None and not self.journal.aborting:
            self.journal.event("sql_connection", host=host, connection_id=connection_id)

    def _magic(self, hs: HostState, stage: str) -> dict[str, Any]:
        short, groups = self._host_names(hs)
        return {
            "inventory_hostname": hs.host.name,
            "inventory_hostname_short": short,
            "group_names": list(groups),  # a copy: a template must not change the next step's
            "groups": self.inv.groups,
            "hostvars": self._hostvars,
            "run_id": self.run_id,
            "stage": stage,
            "check_mode": self.opts.check,
            "ansible_check_mode": self.opts.check,
            "play_hosts": list(self._step_hosts) if self._step_hosts is not None else self._active_names(),
        }

    def _host_names(self, hs: HostState) -> tuple[str, tuple[str, ...]]:
        """A host's short name and group names, which do not change during a run: worked out
        once per host, not once per step (``is_ip`` runs a handful of regexes)."""
        known = self._names.get(hs.host.name)
        if known is None:
            name = hs.host.name
            known = (name if is_ip(name) else name.split(".")[0],
                     tuple(sorted(g for g in hs.host.groups if g != "all")))  # as Ansible: sorted, ungrouped included
            self._names[name] = known
        return known

    def _active_names(self) -> list[str]:
        return [h for h, s in self.states.items() if s.active]

    # -- selection ---------------------------------------------------------------------------
    def hosts_for(self, pattern: str | None) -> list[HostState]:
        pat = pattern or self.rb.targets
        if "{{" in pat:
            pat = str(ENGINE.render(pat, dict(self.runbook_vars, **self.env.extra_vars)))
        return [self.states[n] for n in match_pattern(pat, self.inv) if n in self.states]

    def tag_selected(self, stage: Stage, step: Step) -> bool:
        return tags_select(stage, step, self.opts.tags, self.opts.skip_tags)

    # -- the run -------------------------------------------------------------------------------
    def run(self) -> PlayOutcome:
        start = time.monotonic()
        run_timer = self._budget_timer("run", self.rb.name, self.rb.budget)
        started = self.opts.start_at is None
        try:
            for stage in self.rb.stages:
                if self.interrupted:
                    break
                if not started:
                    at_stage, _, at_step = self.opts.start_at.partition("/")  # type: ignore[union-attr]
                    if stage.name != at_stage:
                        continue
                    started = True
                    first_step = at_step or None
                else:
                    first_step = None
                if not self._run_stage(stage, first_step):
                    break
            if not started:
                raise InputError(f"--start-at {self.opts.start_at!r}: no such stage", hint="use STAGE or STAGE/STEP as written in the runbook")
        finally:
            if run_timer:
                run_timer.cancel()
            self.outcome.duration = time.monotonic() - start  # also when a second Ctrl-C aborts the run
        if self.interrupted and self.outcome.status == "succeeded":
            self.outcome.status = "interrupted"
        self.outcome.duration = time.monotonic() - start
        return self.outcome

    def peer(self, name: str) -> Connections:
        """Another inventory host's connections, for an action that reads a second server
        (``verify``'s ``checksums: {against_host: replica1}``): the host's own when it is part
        of the run, else opened with the same inventory settings and closed with the run."""
        if name in self.states:
            return self.states[name].conns
        if name not in self.inv.hosts:
            raise ActionError(f"no host {name!r} in the inventory", hint="hosts: " + ", ".join(sorted(self.inv.hosts)[:10]))
        with self._peer_lock:
            if name not in self._peer_conns:
                self._peer_conns[name] = Connections(self.inv.hosts[name])
            return self._peer_conns[name]

    def close(self) -> None:
        def close_all() -> None:
            for hs in self.states.values():
                hs.conns.close()
            for conns in self._peer_conns.values():
                conns.close()

        if not self._aborted:
            close_all()
            return
        # After a second Ctrl-C the steps left running still use these connections: closing
        # them is best effort and must not keep the operator waiting (the process exit closes
        # what is left).
        closer = threading.Thread(target=close_all, name="close-after-abort", daemon=True)
        closer.start()
        closer.join(ABORT_GRACE)

    def _budget_timer(self, scope: str, name: str, budget: float | None) -> threading.Timer | None:
        if not budget:
            return None

        def fire() -> None:
            self.console.budget_exceeded(scope, name, budget)
            if self.journal is not None:
                self.journal.event("budget_exceeded", scope=scope, name=name, budget=budget)

        t = threading.Timer(budget, fire)
        t.daemon = True
        t.start()
        return t

    def _confirm(self, stage: Stage, hosts: list[HostState]) -> bool:
        texts = sorted({str(ENGINE.render(stage.confirm, self._vars(hs, stage))) for hs in hosts})
        text = "; ".join(texts)
        expected = hosts[0].host.name if len(hosts) == 1 else stage.name
        if self.opts.yes:
            self.console.line(f"confirmed by --yes: {text}", "yellow")
            answer, by = True, "--yes"
        elif not self.operator.interactive:
            raise InputError(f"stage {stage.name!r} asks for confirmation ({text}) and there is no terminal",
                             source=stage.source, hint="run it on a terminal, or pass --yes to confirm in advance")
        else:
            answer, by = self.operator.confirm(text, expected, lambda: self.interrupts.presses > 0), "terminal"
        if self.journal is not None:
            self.journal.event("operator_confirm", stage=stage.name, text=text, confirmed=answer, by=by)
        return answer

    def _vars(self, hs: HostState, stage: Stage) -> dict[str, Any]:
        return variables(self.env, hs, stage.name)

    def _run_stage(self, stage: Stage, first_step: str | None) -> bool:
        """Run one stage; False when the run must stop."""
        targeted = self.hosts_for(stage.targets)
        hosts = [hs for hs in targeted if hs.active]
        before_when = len(hosts)
        if stage.when is not None:
            hosts = [hs for hs in hosts if ENGINE.truth(stage.when, self._vars(hs, stage))]
        steps = [s for s in stage.steps if self.tag_selected(stage, s)]
        if first_step is not None:
            names = [s.name for s in stage.steps]
            if first_step not in names:
                raise InputError(f"--start-at: stage {stage.name!r} has no step {first_step!r}", hint=f"steps: {', '.join(names)}")
            steps = [s for s in steps if s.index >= names.index(first_step)]
        if not hosts or not steps:
            self.console.stage_skipped(stage.name, self._skip_reason(stage, targeted, before_when, hosts))
            return True
        if self.resumer is not None and self.resumer.stage_done(stage, steps, hosts):
            self.console.stage_skipped(stage.name, "done in an earlier attempt of this run")
            return True
        if stage.confirm and not self.opts.check and not self._confirm(stage, hosts):
            self.console.line(f"stage [{stage.name}] not confirmed: aborted by the operator before the stage; "
                              "nothing of it ran", "bold red")
            self.outcome.status = "aborted"
            return False
        names = [h.host.name for h in hosts]
        self.current_stage = stage.name
        if not self.channel.stage_start(stage, names):
            self.console.line(f"the incident channel could not be told that stage [{stage.name}] starts and it is required "
                              "(notify: required: true): stopping before the stage; nothing of it ran", "bold red")
            self.outcome.status = "failed"
            return False
        self.console.stage_start(stage.name, stage.budget, names)
        if self.journal is not None:
            self.journal.event("stage_start", stage=stage.name, budget=stage.budget, hosts=names)
        started = time.monotonic()
        timer = self._budget_timer("stage", stage.name, stage.budget)
        done_here: list[tuple[Step, HostState, StepResult]] = []
        failed = False
        try:
            for step in steps:
                if self.interrupted:
                    break
                active = [hs for hs in hosts if hs.active]
                if not active:
                    break
                results = self._run_step(stage, step, active)
                for hs, res in results:
                    done_here.append((step, hs, res))
                    if res.failed and not res.ignored:
                        failed = True
                        if self.failure is None:
                            self.failure = (stage.name, step, hs.host.name, res.msg)
                        if res.status is Status.UNREACHABLE:
                            hs.unreachable = True
                        elif stage.on_failure is not OnFailure.CONTINUE:
                            # continue: the failure is recorded (the run ends with exit 1) and
                            # the host goes on with the next steps and stages.
                            hs.failed = True
                if failed and stage.on_failure is not OnFailure.CONTINUE:
                    break
        except AbortStep:  # a second Ctrl-C: close the stage in the recap and the journal, then stop
            self.console.stage_end(stage.name, "interrupted")
            if self.journal is not None:
                self.journal.event("stage_end", stage=stage.name, status="interrupted")
            self.channel.stage_end(stage, "interrupted", time.monotonic() - started, names)
            raise
        finally:
            if timer:
                timer.cancel()
        status = "interrupted" if self.interrupted and not failed else ("failed" if failed else "ok")
        if failed and stage.on_failure is OnFailure.ROLLBACK:
            status = "rolled back" if self._rollback_stage(stage, done_here) else "rollback failed"
        self.console.stage_end(stage.name, status)
        if self.journal is not None:
            self.journal.event("stage_end", stage=stage.name, status=status)
        if not self.channel.stage_end(stage, status, time.monotonic() - started, names) and not failed:
            self.console.line(f"the incident channel could not be told that stage [{stage.name}] ended and it is required "
                              "(notify: required: true): stopping after the stage", "bold red")
            self.outcome.status = "failed"
            return False
        if failed:
            self.outcome.status = "rolled back" if status == "rolled back" else "failed"
            return stage.on_failure is OnFailure.CONTINUE and any(hs.active for hs in self.states.values())
        return not self.interrupted

    def _skip_reason(self, stage: Stage, targeted: list[HostState], active: int, hosts: list[HostState]) -> str:
        """Why a stage runs nowhere, as it is: its `when:` (reopening is off by default), the
        hosts that failed earlier, a pattern that matches no host, or the tags."""
        if hosts:
            return "no step selected by --tags/--skip-tags"
        if active and stage.when is not None:
            names = [hs.host.name for hs in targeted if hs.active]
            return f"when: {stage.when} is false on " + (names[0] if len(names) == 1 else f"every host ({len(names)})")
        if targeted:
            down = [hs.host.name for hs in targeted if not hs.active]
            return f"no host left: {', '.join(down[:5])} failed or unreachable in an earlier stage"
        return f"its targets ({stage.targets or self.rb.targets}) match no host" + (" within --limit" if self.opts.limit else "")

    def _run_step(self, stage: Stage, step: Step, hosts: list[HostState]) -> list[tuple[HostState, StepResult]]:
        # play_hosts is the same for every host of a step (states change between steps):
        # computed once here, not once per host (quadratic at hundreds of hosts).
        self._step_hosts = self._active_names()
        try:
            return self._run_step_on(stage, step, hosts)
        finally:
            self._step_hosts = None

    def _run_step_on(self, stage: Stage, step: Step, hosts: list[HostState]) -> list[tuple[HostState, StepResult]]:
        targets = hosts[:1] if step.run_once else hosts
        done: dict[str, StepResult] = {}
        to_run: list[HostState] = []
        for hs in targets:
            # On the main thread, before anything is dispatched: resume's probes, and the
            # operator's in-doubt decisions, for every host of the step.
            handled = self.resumer.before_step(stage, step, hs) if self.resumer is not None else None
            if handled is not None:
                done[hs.host.name] = handled
            else:
                to_run.append(hs)
        done.update(self._dispatch(stage, step, to_run))
        results = [(hs, done[hs.host.name]) for hs in targets if hs.host.name in done]
        if step.run_once and results:
            _, res = results[0]
            for hs in hosts[1:]:
                self.executor.remember(step, hs, res)
        with self.console.batch():
            for hs, res in results:
                note = getattr(res, "note", "")
                self.console.step_result(step.name, hs.host.name, res, note=note)
                self.outcome.results.append((stage.name, step.name, hs.host.name, res))
        return results

    def _dispatch(self, stage: Stage, step: Step, hosts: list[HostState]) -> dict[str, StepResult]:
        """Run the step on these hosts, ``forks`` at a time, each on a worker thread, while
        the main thread answers the operator's questions and watches for interrupts. After an
        interrupt no new host starts; a second one aborts the running steps (in doubt)."""
        pending = deque(hosts)
        running: set[_Task] = set()
        out: dict[str, StepResult] = {}
        # Finished tasks are collected for the main thread (waiting on all running ones at each
        # wake-up would be quadratic in the number of hosts), which wakes when it has something
        # to do: a host to start, or the last result of the step (see _Finished).
        finished = _Finished()
        try:
            while pending or running:
                self.notice()
                while pending and len(running) < self.opts.forks and not self.interrupted:
                    task = _Task(self.executor.run, step, pending.popleft(), stage.name, finished)
                    running.add(task)
                    self._workers.submit(task)
                if not running:
                    break  # interrupted: the queued hosts do not start
                for task in finished.take(1 if pending else len(running), timeout=0.1):
                    running.discard(task)
                    if task.error is not None:
                        raise task.error
                    assert task.result is not None
                    out[task.hs.host.name] = task.result
                self.desk.serve()
        except AbortStep:
            self._abort(running, finished)
            raise
        return out

    def _abort(self, running: set[_Task], finished: _Finished) -> None:
        """The second interrupt: the run stops within half a second, whatever runs.

        1. A step about to end on its own gets ``ABORT_GRACE`` seconds: what it reports then
           is the truth (nothing was stopped yet), so a restore that committed its last batch
           is journaled done, not left in doubt.
        2. The journal stops accepting outcomes (what a step reports after being stopped is
           not trusted: it stays in doubt, and resume re-probes it).
        3. What still runs is stopped (KILL QUERY, kill of process groups) from daemon threads:
           a KILL that waits for a long rollback on the server must not hold the operator
           (resume finds and settles such statements before its probes). The workers are left
           behind (daemon threads); the process exits and its connections close."""
        left = set(running)
        deadline = time.monotonic() + ABORT_GRACE
        while left:
            ended = finished.take(1, timeout=max(0.0, deadline - time.monotonic()))
            if not ended:
                break
            left.difference_update(ended)
        self._aborted = True
        if self.journal is not None:
            self.journal.abort()
        for task in left:
            threading.Thread(target=task.hs.conns.interrupt, args=("aborted by the operator",),
                             name=f"abort-{task.hs.host.name}", daemon=True).start()
        if self.journal is not None:
            self.journal.event("interrupted", presses=2, signal=self.interrupts.signal_name,
                               in_doubt=sorted(task.hs.host.name for task in left))

    def _rollback_stage(self, stage: Stage, done: list[tuple[Step, HostState, StepResult]]) -> bool:
        """Undo the stage's completed steps, newest first. False when an undo failed."""
        # Every result with an undo record: changed steps, a loop step that failed after
        # changing some items, a step found done that an earlier attempt of this run made.
        todo = [(s, hs, r) for s, hs, r in done if r.undo is not None]
        self.console.line(f"ROLLBACK of stage [{stage.name}]: {len(todo)} step(s) to undo, newest first", "bold yellow")
        for step, hs, res in reversed(todo):
            ok = undo_one(self, step.key, step.name, hs, res.undo)
            if not ok:
                self.console.line("rollback stopped: an undo failed; fix it and run `runbook rollback " + self.run_id + "`", "bold red")
                return False
        return True


def undo_one(play: Play, step_key: str, step_name: str, hs: HostState, record: Any) -> bool:
    res = undo_step(play.env, play.console, step_key, step_name, hs, record)
    return not res.failed


#: seconds a second Ctrl-C leaves the running steps to end on their own before it stops them
ABORT_GRACE = 0.25


class AbortStep(KeyboardInterrupt):
    """The second interrupt. A ``KeyboardInterrupt`` on purpose, not a ``RunbookError``: the
    steps that were running keep their intent without an outcome (in doubt, re-probed by
    resume) and the run ends as interrupted (exit 130)."""


class _Finished:
    """Where workers leave their finished tasks for the main thread, which is woken only once
    enough of them are there: with every host of a step running, once for the step's last
    result instead of once per host (at 100 hosts, 100 wake-ups of the main thread per step,
    each a hand-over of the interpreter lock among busy workers)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tasks: list[_Task] = []
        self._need = 0  # how many tasks wake the main thread (0: it is not waiting)
        self._ready = threading.Event()

    def put(self, task: _Task) -> None:
        with self._lock:
            self._tasks.append(task)
            if self._need and len(self._tasks) >= self._need:
                self._ready.set()

    def take(self, need: int, timeout: float) -> list[_Task]:
        """The finished tasks, once there are ``need`` of them or ``timeout`` seconds passed
        (the main loop must still watch for interrupts and the operator's questions)."""
        with self._lock:
            wait = len(self._tasks) < need
            if wait:
                self._need = need
                self._ready.clear()
        if wait:
            self._ready.wait(timeout)
        with self._lock:
            self._need = 0
            tasks, self._tasks = self._tasks, []
        return tasks


class _Task:
    """One step on one host, handed to a worker; it comes back on ``done`` when finished."""

    __slots__ = ("done", "error", "fn", "hs", "result", "stage", "step")

    def __init__(self, fn: Any, step: Step, hs: HostState, stage: str, done: _Finished):
        self.fn, self.step, self.hs, self.stage, self.done = fn, step, hs, stage, done
        self.result: StepResult | None = None
        self.error: BaseException | None = None


#: workers (hosts running at once) from which the process switches threads less often, and how often
MANY_WORKERS, FLEET_SWITCH_INTERVAL = 32, 0.05


class _Workers:
    """Daemon threads that run steps, reused from one step to the next: a thread per host and
    step was 25,000 thread starts for 1,000 hosts x 25 steps. Daemon, so that a step stuck in
    a system call can never keep the process from exiting after an abort."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._started = 0

    def submit(self, task: _Task) -> None:
        """Run ``task`` on an idle worker (a new one when none is idle)."""
        with self._lock:
            worker = self._idle.pop() if self._idle else None
        if worker is None:
            worker = _Worker(self)
            self._started += 1
            if self._started == MANY_WORKERS:
                # Every thread waiting for the GIL wakes each switch interval (5 ms by default)
                # to ask for it: with hundreds of hosts on a busy control node that is a storm
                # of futex calls. 300 hosts, 5 interleaved pairs: 0.59-0.74 M -> 0.53-0.55 M
                # futex calls, 9.5-13.9 -> 9.0-9.7 s of CPU. The threads here wait on I/O, and
                # they give the GIL up when they do; 50 ms only bounds a CPU-bound slice.
                sys.setswitchinterval(max(sys.getswitchinterval(), FLEET_SWITCH_INTERVAL))
        worker.inbox.put(task)

    def idle(self, worker: _Worker) -> None:
        with self._lock:
            self._idle.append(worker)


class _Worker:
    def __init__(self, pool: _Workers):
        self._pool = pool
        self.inbox: queue.SimpleQueue[_Task] = queue.SimpleQueue()
        threading.Thread(target=self._loop, name="host-worker", daemon=True).start()

    def _loop(self) -> None:
        me = threading.current_thread()
        while True:
            task = self.inbox.get()
            me.name = f"host-{task.hs.host.name}"
            try:
                task.result = task.fn(task.step, task.hs, task.stage)
            except BaseException as exc:
                task.error = exc
            # Idle before the result is out: the next step's dispatch finds this worker free.
            self._pool.idle(self)
            task.done.put(task)
            del task


__all__ = ["AbortStep", "Play", "PlayOptions", "PlayOutcome", "RunbookError", "undo_one"]
