"""A run from start to end: journal header, lock, play, recap, report; and resume, rollback,
runs and show, which need nothing but the run id."""

from __future__ import annotations

import gc
import getpass
import os
import socket
import time
from pathlib import Path
from typing import Any

from engine.errors import InputError, JournalError, NeedsDecision, RunbookError, RunLocked
from engine.inventory import Inventory, match_pattern
from engine.run.executor import restore_run_state
from engine.journal.layout import journal_flag
from engine.journal import (JOURNAL_FILE, LOCK_FILE, Journal, JournalState, RunLock, journal_dir, new_run_id,
                            read_journal)
from engine.language.load import load_all
from engine.language.loader import Loaded, digest_files
from engine.model import Runbook
from engine.run.play import AbortStep, Play, PlayOptions, tags_select
from engine.run.ending import RunEnd
from engine.run.operator import Operator, Unattended
from engine.run.recovery import check_decisions, resume_outlook
from engine.run.catalog import resume_command, list_runs_text, load_state, show_text
from engine.run.rollback import Rollback
from engine.run.channel import register_credentials
from engine.report.console import Console
from engine.secrets import MASK, Secret


def _targeted_hosts(rb: Runbook, inv: Inventory, limit: str | None) -> list[str]:
    names: list[str] = []
    for pattern in [rb.targets] + [s.targets for s in rb.stages if s.targets]:
        if pattern and "{{" not in pattern:
            names += [n for n in match_pattern(pattern, inv) if n not in names]
    if "{{" in rb.targets or any(s.targets and "{{" in s.targets for s in rb.stages):
        names = list(inv.hosts)
    if limit:
        allowed = set(match_pattern(limit, inv))
        names = [n for n in names if n in allowed]
    return names


def _options(opts: dict[str, Any], jdir: Path, extra_vars: dict[str, Any]) -> PlayOptions:
    return PlayOptions(extra_vars=extra_vars, check=opts.get("check", False), diff=opts.get("diff", False), tags=tuple(opts.get("tags") or ()),
                       skip_tags=tuple(opts.get("skip_tags") or ()), limit=opts.get("limit"), start_at=opts.get("start_at"),
                       yes=opts.get("yes", False), forks=opts.get("forks", 10), journal_dir=str(jdir),
                       verbose=opts.get("verbose", 0))


def _next_steps(run_id: str, jdir: Path, status: str, rb: Runbook | None = None,
                extra: dict[str, Any] | None = None) -> str | None:
    """The recap's last lines: the resume command only where resuming means something, with
    what it will do; the rollback command only where there is something to undo. When the
    failed steps read -e values, resume (which keeps them) is not offered as *the* way on: a
    wrong value needs a new run with the right one."""
    if status == "succeeded":
        return None
    try:
        state = read_journal(jdir, run_id)
    except RunbookError:
        return f"to continue: {resume_command(run_id, jdir)}"
    out = []
    if state.check_mode:
        return None  # a check-mode run changed nothing: run it again for real instead
    outlook = resume_outlook(state)
    suspects = _read_extra_vars(state, rb, extra or {}) if rb is not None else {}
    if suspects:
        from engine.secrets import MASKER

        shown = ", ".join(f"-e {k}={MASKER.text(str(v))}" for k, v in suspects.items())
        out.append(f"the failed step(s) read {shown}: resume keeps the run's -e values and cannot change them")
        out.append(f"  a wrong value? start a new run with the right one: {_play_command(state)}")
        if outlook:
            out.append(f"  the values right, the cause fixed? {resume_command(run_id, jdir)}  (it will {outlook})")
    elif outlook:
        out.append(f"to continue: {resume_command(run_id, jdir)}  (it will {outlook})")
    if state.done_with_undo() or state.in_doubt():
        out.append(f"to undo: runbook rollback {run_id}{journal_flag(jdir)}")
    return "\n".join(out) or None


def _read_extra_vars(state: JournalState, rb: Runbook, extra: dict[str, Any]) -> dict[str, Any]:
    """The -e values the run's failed steps read (name -> value)."""
    from engine.language.var_reads import step_reads

    steps = {s.key: s for stage in rb.stages for s in stage.steps}
    base = os.path.dirname(os.path.abspath(rb.path))
    out: dict[str, Any] = {}
    for st in state.failed():
        step = steps.get(st.step)
        if step is not None:
            for name in sorted(step_reads(step, base) & set(extra)):
                out[name] = extra[name]
    return out


def _play_command(state: JournalState) -> str:
    """``runbook play`` as this run was started (paths as given, -e values masked)."""
    import shlex

    h = state.header
    opts = h.get("options") or {}
    cwd = h.get("cwd") or os.getcwd()

    def rel(p: str) -> str:
        r = os.path.relpath(p, cwd)
        return p if r.startswith("..") else r

    parts = ["runbook", "play", rel(str(h.get("runbook")))]
    for inv in h.get("inventories") or {}:
        parts += ["-i", rel(inv)]
    if opts.get("limit"):
        parts += ["--limit", str(opts["limit"])]
    for e in h.get("extra_vars") or []:
        parts += ["-e", e]
    return " ".join(shlex.quote(p) for p in parts)

def _execute(play: Play, journal: Journal, console: Console, rb: Runbook, run_id: str, jdir: Path,
             report: str | None, resumed: bool, hosts: list[str]) -> RunEnd:
    restore = play.interrupts.install()
    status, end = "failed", RunEnd.FAILED
    # What exists now (modules, the runbook, the inventory, compiled templates) lives as long
    # as the run: out of the collector's sight, the collections that steps' garbage triggers
    # do not walk it again and again (they were ~3% of a shell step's instructions).
    gc.freeze()
    error = ""  # the first line of an error that ended the run outside a step
    try:
        outcome = play.run()
        status = outcome.status
        end = {"succeeded": RunEnd.SUCCEEDED, "interrupted": RunEnd.INTERRUPTED, "aborted": RunEnd.ABORTED}.get(status, RunEnd.FAILED)
    except AbortStep as exc:  # the second Ctrl-C (see engine.run.play)
        console.line(str(exc), "bold red")
        status, end, error = "interrupted", RunEnd.INTERRUPTED, str(exc)
    except NeedsDecision as exc:
        console.line(exc.render(), "bold red")
        status, end, error = "interrupted", RunEnd.NEEDS_DECISION, exc.message
    except RunbookError as exc:
        console.line(exc.render(), "bold red")
        status, end, error = "failed", RunEnd.FAILED, (f"{exc.source}: " if exc.source else "") + exc.message
        if isinstance(exc, InputError) and not (play.outcome.results or resumed):
            end = RunEnd.INVALID  # "invalid input, nothing was executed" holds only while nothing ran
    finally:
        restore()
        play.close()  # after the journal stopped taking outcomes, when the run was aborted
    try:
        journal.event("run_end", status=status)
    except JournalError as exc:  # a full disk: the run stopped before its next side effect
        console.line(f"the end of the run could not be journaled either: {exc.message}", "bold red")
    duration = play.outcome.duration
    if not _final_line(play, status, duration, rb, run_id, jdir, report, resumed, hosts, error) and end is RunEnd.SUCCEEDED:
        console.line("the incident channel could not be told the final line and it is required (notify: required: true)", "bold red")
        end = RunEnd.FAILED
    console.print_recap(run_id, status, duration, rb.budget, _next_steps(run_id, jdir, status, rb, play.opts.extra_vars))
    journal.close()
    if report:
        from engine.report import render_report, write_report

        try:
            write_report(Path(report), render_report(read_journal(jdir, run_id), _format_of(report)))
            console.line(f"report written to {report}")
        except OSError as exc:  # the run is over and journaled: say so, keep its exit code
            console.line(f"could not write the report to {report}: {exc.strerror} — "
                         f"runbook report {run_id} --format {_format_of(report)} -o PATH writes it from the journal", "bold red")
    return end


def _final_line(play: Play, status: str, duration: float, rb: Runbook, run_id: str, jdir: Path, report: str | None,
                resumed: bool, hosts: list[str], error: str) -> bool:
    """The run's last line to its incident channel (runbook-level notify:), whatever the end."""
    from engine.run.channel import failure_detail

    detail = failure_detail(play.failure, error)
    if status == "interrupted" and play.interrupts.presses:
        detail = f" by the operator ({play.interrupts.signal_name})" + \
            (f" during stage [{play.current_stage}]" if play.current_stage else "") + detail
    nxt = ""
    if status != "succeeded" and not play.opts.check:
        nxt = f"to continue: {resume_command(run_id, jdir)}"
    what = f"run {run_id}" + (" (resumed)" if resumed else "")
    return play.channel.run_end(what, status, duration, rb.budget, hosts, detail, report, nxt)


def _lost_secrets(extra: dict[str, Any], run_id: str, what: str, operator: Operator) -> dict[str, Any]:
    """Extra vars whose value the journal masked (secrets are never journaled). Rather than
    run with a literal ``********``: on a terminal ask for them again; otherwise leave them
    undefined with a message, so that only a step (or undo) that reads one fails, saying why."""
    import jinja2

    lost = [k for k, v in extra.items() if isinstance(v, str) and MASK in v]
    out = dict(extra)
    for k in lost:
        if operator.interactive:
            out[k] = Secret(operator.secret(f"{k} (a secret given with -e; the journal does not keep it): "))
        else:
            out[k] = jinja2.StrictUndefined(
                hint=f"{k} was given with -e and is a secret, which the journal does not keep; {what} on a terminal "
                     "to type it again (secrets given with -e @vars.yml or lookup('env', ...) are read again)", name=k)
    return out


def _format_of(path: str) -> str:
    return {".json": "json", ".xml": "junit", ".html": "html", ".md": "md"}[Path(path).suffix.lower()]


def preflight(rb: Runbook, opts: dict[str, Any], interactive: bool = False) -> None:
    """What the options make impossible, refused before anything runs (exit 2, no journal):
    a --start-at that names no stage or step, a stage confirmation with no terminal to type
    it on and no --yes."""
    stages = list(rb.stages)
    start_at = opts.get("start_at")
    if start_at:
        at_stage, _, at_step = start_at.partition("/")
        names = [s.name for s in stages]
        if at_stage not in names:
            raise InputError(f"--start-at {start_at!r}: no stage {at_stage!r}", hint=f"stages: {', '.join(names)}")
        stage = stages[names.index(at_stage)]
        if at_step and at_step not in [s.name for s in stage.steps]:
            raise InputError(f"--start-at {start_at!r}: stage {at_stage!r} has no step {at_step!r}",
                             hint=f"steps: {', '.join(s.name for s in stage.steps)}")
        stages = stages[names.index(at_stage):]
    if opts.get("check") or interactive:
        return
    tags, skip = set(opts.get("tags") or ()), set(opts.get("skip_tags") or ())
    for stage in stages:
        for step in stage.steps:
            prompt = step.action == "pause" and isinstance(step.args, dict) and "prompt" in step.args
            if prompt and not ({"seconds", "minutes"} & set(step.args)) and tags_select(stage, step, tags, skip):
                raise InputError(f"step {step.key!r} pauses for the operator to press Enter and there is no terminal: "
                                 "nothing was run", source=step.source,
                                 hint="run it on a terminal, or give the pause `seconds:` instead of a prompt")
    if opts.get("yes"):
        return
    for stage in stages:
        if stage.confirm and any(tags_select(stage, s, tags, skip) for s in stage.steps):
            raise InputError(f"stage {stage.name!r} asks for a typed confirmation and there is no terminal: nothing was run",
                             source=stage.source, hint="run it on a terminal, or pass --yes to confirm in advance")


def _selection_notes(rb: Runbook, opts: dict[str, Any]) -> list[str]:
    """What --tags/--skip-tags make of the runbook, when it is surprising: a tag no step has,
    or no step selected at all (the run would "succeed" doing nothing)."""
    tags, skip = tuple(opts.get("tags") or ()), tuple(opts.get("skip_tags") or ())
    if not tags and not skip:
        return []
    known = {t for st in rb.stages for t in st.tags} | {t for st in rb.stages for s in st.steps for t in s.tags}
    notes = [f"--tags {t}: no stage or step has this tag" for t in tags if t not in known and t not in ("all", "always")]
    notes += [f"--skip-tags {t}: no stage or step has this tag" for t in skip if t not in known]
    if not any(tags_select(st, s, tags, skip) for st in rb.stages for s in st.steps):
        notes.append(f"--tags {','.join(tags) or '-'} / --skip-tags {','.join(skip) or '-'} select no step: nothing runs")
    return notes


def _writable_dir(path: Path, what: str, hint: str) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{what} {path} cannot be created: {exc.strerror}", hint=hint) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise InputError(f"{what} {path} is not writable", hint=hint)


def new_run(loaded: Loaded, inv: Inventory, extra_vars: dict[str, Any], opts: dict[str, Any],
            operator: Operator | None = None) -> RunEnd:
    operator = operator if operator is not None else Unattended()
    rb = loaded.runbook
    preflight(rb, opts, operator.interactive)
    jdir = journal_dir(opts.get("journal_dir"))
    _writable_dir(jdir, "the journal dir", "point --journal-dir or $RUNBOOK_HOME at a writable directory")
    if opts.get("report"):
        _writable_dir(Path(opts["report"]).resolve().parent, "the report's directory", "choose another --report path")
    run_id = new_run_id()
    register_templated_secrets(inv, rb.vars, extra_vars)
    register_credentials(rb, extra_vars)  # -e notify_url=… is a token: masked before the header is written
    console = Console(verbose=opts.get("verbose", 0), diff=bool(opts.get("diff")))
    for w in loaded.warnings:
        console.warn(w.render())
    for note in _selection_notes(rb, opts):
        console.warn(note)
        console.recap.notes.append(note)
    if not opts.get("inventories"):
        # Decided: a warning, not a refusal. Without -i the implicit inventory is this machine
        # (connection: local), as with ansible; refusing mutating runbooks would refuse hello.yml
        # and every local drill. The warning names the machine so nobody mistakes it for a server.
        console.warn(f"no inventory given (-i): the run targets this machine ({socket.gethostname()}), with connection: local")
    hosts = _targeted_hosts(rb, inv, opts.get("limit"))
    header = {
        "runbook": os.path.abspath(rb.path),
        "runbook_name": rb.name,
        "files": {os.path.abspath(p): d for p, d in digest_files(rb.files).items()},
        "inventories": {os.path.abspath(p): d for p, d in digest_files(inv.files).items()},
        "options": {k: v for k, v in opts.items() if k not in ("runbook", "inventories", "extra")},
        "extra_vars": [f"@{os.path.abspath(e[1:])}" if e.startswith("@") else e for e in opts.get("extra") or []],
        # -e @file is pinned like the runbook and the inventory: resume refuses a changed one
        "vars_files": {os.path.abspath(p): d for p, d in digest_files(
            [e[1:] for e in opts.get("extra") or [] if e.startswith("@")]).items()},
        "cwd": os.getcwd(),
        "operator": getpass.getuser(),
        "control_host": socket.gethostname(),
        "hosts": hosts,
        "check_mode": bool(opts.get("check")),
    }
    lock = RunLock(jdir, run_id, hosts)
    try:
        lock.acquire()
    except RunLocked:
        # Another live run holds one of our hosts. Acquiring made <jdir>/<run_id>/ with only
        # the lock file in it, which `runbook runs` then listed as an "unreadable" run. The
        # run id is new and ours alone, so its directory can go.
        _discard_run_dir(jdir, run_id)
        raise
    with lock:
        journal = Journal.create(jdir, run_id, header)
        journal.event("run_start")
        console.run_start(run_id, rb.name, rb.path, hosts, bool(opts.get("check")),
                          resume_cmd=None if opts.get("check") else resume_command(run_id, jdir))  # a check run is not resumed
        play = Play(rb, inv, _options(opts, jdir, extra_vars), console, run_id=run_id, journal=journal, operator=operator)
        return _execute(play, journal, console, rb, run_id, jdir, opts.get("report"), resumed=False, hosts=hosts)


def _discard_run_dir(jdir: Path, run_id: str) -> None:
    run_dir = jdir / run_id
    if (run_dir / JOURNAL_FILE).exists():
        return
    try:
        (run_dir / LOCK_FILE).unlink(missing_ok=True)
        run_dir.rmdir()
    except OSError:
        pass


# --------------------------------------------------------------------------- resume / rollback


def _pinned(state: JournalState, key: str) -> dict[str, str]:
    """The digests the run is pinned to: the header's, or those an operator accepted later
    with --force (so one forced resume is not needed again at every later resume)."""
    pinned = dict(state.header.get(key) or {})
    for e in state.events:
        if e.get("kind") == "definition_accepted":
            pinned = dict(e.get(key) or pinned)
    return pinned


def _changed_files(state: JournalState) -> list[str]:
    out = []
    for key in ("files", "inventories", "vars_files"):
        old = _pinned(state, key)
        now = digest_files(list(old))
        for path, digest in old.items():
            if now.get(path) != digest:
                out.append(f"{path} ({'missing now' if now.get(path) == 'missing' else 'changed since the run started'})")
    return out


def _reload(state: JournalState, force: bool, what: str, operator: Operator) -> tuple[Loaded, Inventory, dict[str, Any], dict[str, Any]]:

    changed = _changed_files(state)
    if changed and not force:
        raise InputError(f"refusing to {what} run {state.run_id}: " + "; ".join(changed),
                         hint=f"the journal pins the runbook, inventory and -e @files it ran with; restore them, or pass --force to {what} with the new ones")
    header = state.header
    opts = dict(header.get("options") or {})
    cwd = header.get("cwd") or os.getcwd()
    if os.path.isdir(cwd):
        os.chdir(cwd)  # relative paths inside the runbook (imports, files) resolve as in the first run
    # allow_unused_vars: the run's -e were checked when it started (a resume never refuses them)
    loaded, inv, extra = load_all(header["runbook"], tuple(header.get("inventories") or ()), tuple(header.get("extra_vars") or ()), opts.get("limit"),
                                   opts.get("vault_password_file"), allow_unused_vars=True)
    extra = _lost_secrets(extra, state.run_id, what, operator)
    register_templated_secrets(inv, loaded.runbook.vars, extra)
    register_credentials(loaded.runbook, extra)
    return loaded, inv, extra, opts


def register_templated_secrets(inv: Inventory, runbook_vars: dict[str, Any], extra: dict[str, Any]) -> None:
    """Every secret-named variable whose value is a template (``lookup('env', ...)``) is
    rendered and registered with the masker at run start, not when first used: a step that
    prints it before the connection that reads it opens must not show it."""
    from engine.secrets import SECRET_KEY, Secret
    from engine.templating.render import ENGINE, lazify

    def register(value: Any, variables: dict[str, Any]) -> None:
        try:
            rendered = ENGINE.render(value, variables)
        except (RunbookError, Exception):  # best effort: the step that uses it says what is wrong
            return
        if isinstance(rendered, str):
            Secret(rendered)

    for host in inv.hosts.values():
        for key, value in host.vars.items():
            if SECRET_KEY.search(key) and isinstance(value, str) and "{{" in value:
                register(value, dict(lazify(host.vars), inventory_hostname=host.name))
    base = dict(lazify(runbook_vars), **extra)
    for key, value in list(runbook_vars.items()) + list(extra.items()):
        if SECRET_KEY.search(key) and isinstance(value, str) and "{{" in value:
            register(value, base)


def resume_run(run_id: str, *, yes: bool, force: bool, decisions: dict[str, str], journal_dir: str | None, verbose: int,
               operator: Operator | None = None) -> RunEnd:
    operator = operator if operator is not None else Unattended()
    state = load_state(run_id, journal_dir)
    if state.run_status == "succeeded":
        if decisions:
            raise InputError(f"--decide {', '.join(decisions)}: run {run_id} already succeeded: nothing to resume or decide")
        Console(verbose=verbose).line(f"run {run_id} already succeeded: nothing to resume")
        return RunEnd.SUCCEEDED
    loaded, inv, extra, opts = _reload(state, force, "resume", operator)
    jdir = _jdir(journal_dir)
    opts.update(yes=yes or opts.get("yes", False), verbose=verbose, start_at=None)
    console = Console(verbose=verbose)
    hosts = list(state.header.get("hosts") or [])
    with RunLock(jdir, run_id, hosts):
        state = read_journal(jdir, run_id)  # again, under the lock
        check_decisions(decisions, state, _step_keys(loaded.runbook), "resume")  # applied or refused, never ignored
        journal = Journal.open(jdir, run_id)
        journal.event("resume_start", force=force, decisions=decisions)
        if force and _changed_files(state):
            journal.event("definition_accepted", changed=_changed_files(state),
                          files=digest_files(list(_pinned(state, "files"))),
                          inventories=digest_files(list(_pinned(state, "inventories"))),
                          vars_files=digest_files(list(_pinned(state, "vars_files"))))
        doubt = state.in_doubt()
        console.run_start(run_id, loaded.runbook.name, loaded.runbook.path, hosts, bool(opts.get("check")), resumed=True)
        console.line(f"journal: {len(state.done())} step(s) done, {len(state.failed())} failed, {len(doubt)} in doubt"
                     + (" (" + ", ".join(f"{s.step}@{s.host}" for s in doubt) + ")" if doubt else ""))
        options = _options(opts, jdir, extra)
        options.decisions = decisions
        play = Play(loaded.runbook, inv, options, console, run_id=run_id, journal=journal, prior=state, operator=operator)
        return _execute(play, journal, console, loaded.runbook, run_id, jdir, None, resumed=True, hosts=hosts)


def _step_keys(rb: Runbook) -> set[str]:
    return {s.key for stage in rb.stages for s in stage.steps}


def _jdir(opt: str | None) -> Path:
    return journal_dir(opt)


def rollback_run(run_id: str, *, yes: bool, force: bool, journal_dir: str | None,
                 decisions: dict[str, str] | None = None, operator: Operator | None = None) -> RunEnd:
    operator = operator if operator is not None else Unattended()
    state = load_state(run_id, journal_dir)
    jdir = _jdir(journal_dir)
    console = Console()
    hosts = list(state.header.get("hosts") or [])
    if not state.done_with_undo() and not state.in_doubt("do") and not any(
            s.phase == "undo" and s.status.value != "done" for s in state.steps.values()):
        if decisions:
            raise InputError(f"--decide {', '.join(decisions)}: run {run_id} has nothing to undo: nothing to decide")
        console.line(f"run {run_id}: nothing to undo (no completed step with an undo that is not undone yet)")
        return RunEnd.SUCCEEDED
    loaded, inv, extra, opts = _reload(state, force, "roll back", operator)
    # The lock first, then the work list: what another process undid meanwhile is not undone twice.
    with RunLock(jdir, run_id, hosts):
        state = read_journal(jdir, run_id)
        check_decisions(decisions or {}, state, _step_keys(loaded.runbook), "rollback")  # applied or refused, never ignored
        journal = Journal.open(jdir, run_id)
        play = Play(loaded.runbook, inv, _options(opts, jdir, extra), console, run_id=run_id, journal=journal, operator=operator)
        play.executor.prior = state
        restore_run_state(state.events, play.env.run_state)  # undo checks it is still the same server
        play.opts.check = False
        play.env.check_mode = False
        rollback = Rollback(state, play.executor, play.states, loaded.runbook, console, decisions or {})
        status, end, started = "rolled back", RunEnd.SUCCEEDED, False
        t0, detail = time.monotonic(), ""
        try:
            pending = rollback.plan()
            if not pending:
                console.line(f"run {run_id}: nothing to undo (no completed step with an undo that is not undone yet)")
                return RunEnd.SUCCEEDED
            console.line(f"ROLLBACK {run_id}: {len(pending)} step(s) to undo, newest first:", "bold yellow")
            for item in pending:
                again = " (again: the last attempt " + ("is in doubt" if item.previous.status.value == "in_doubt" else "failed") + ")" \
                    if item.previous is not None else ""
                console.line(f"  {item.do.step} on {item.do.host}{again}")
            if not yes:
                if not operator.interactive:
                    raise InputError("rollback asks for confirmation and there is no terminal", hint="pass --yes to confirm in advance")
                if not operator.confirm(f"roll back run {run_id}", run_id, lambda: False):
                    console.line("not confirmed: aborted by the operator, nothing was undone", "bold red")
                    return RunEnd.ABORTED
            journal.event("rollback_start")
            started = True
            play.channel.post("rollback_start", f"{loaded.runbook.name}: rollback of run {run_id} started: {len(pending)} "
                              f"step(s) to undo, newest first", "", hosts)

            def stopped(item: Any) -> None:
                nonlocal detail
                detail = f" at {item.do.step} on {item.do.host}"
                console.line(f"rollback stopped at {item.do.step} on {item.do.host}: fix the cause, then run "
                             f"`runbook rollback {run_id}{journal_flag(jdir)}` again (what is undone stays undone)", "bold red")

            if not rollback.run(pending, stopped):
                status, end = "rollback failed", RunEnd.FAILED
        except NeedsDecision as exc:
            console.line(exc.render(), "bold red")
            status, end = "rollback failed", RunEnd.NEEDS_DECISION
            detail = f": {exc.message.splitlines()[0]}" if exc.message else ""
            started = True
        except RunbookError as exc:  # reported by the CLI; the journal and the channel must not say "rolled back"
            status, end = "rollback failed", RunEnd.FAILED
            detail = f": {exc.message.splitlines()[0]}" if exc.message else ""
            raise
        finally:
            play.close()
            if started:
                journal.event("run_end", status=status)
                again = "" if end is RunEnd.SUCCEEDED else f"to go on: runbook rollback {run_id}{journal_flag(jdir)}"
                play.channel.run_end(f"rollback of run {run_id}", status, time.monotonic() - t0, None, hosts, detail, None, again)
            journal.close()
    console.line(f"{status}: run {run_id}", "bold green" if end is RunEnd.SUCCEEDED else "bold red")
    return end


__all__ = ["list_runs_text", "load_state", "new_run", "resume_run", "rollback_run", "show_text"]
