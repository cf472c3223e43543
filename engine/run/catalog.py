"""What the journal dir holds, for people: ``runbook runs``, ``runbook show``, the run a
command names, and the resume command to print."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.errors import InputError
from engine.journal import JournalState, journal_dir, list_runs, read_journal
from engine.journal.layout import journal_flag
from engine.language.durations import format_duration


def resume_command(run_id: str, jdir: Path, default: Path | None = None) -> str:
    return f"runbook resume {run_id}{journal_flag(jdir)}"


def load_state(run_id: str, jdir_opt: str | None) -> JournalState:
    jdir = journal_dir(jdir_opt)
    if not (jdir / run_id).is_dir():
        known = [r.run_id for r in list_runs(jdir)][-5:]
        raise InputError(f"no run {run_id!r} in {jdir}", hint=("recent runs: " + ", ".join(known)) if known else "runbook runs lists them; --journal-dir or $RUNBOOK_HOME choose the directory")
    return read_journal(jdir, run_id)


def list_runs_text(jdir_opt: str | None) -> str:
    jdir = journal_dir(jdir_opt)
    runs = list_runs(jdir)
    if not runs:
        return f"no runs in {jdir}"
    lines = [f"{'RUN_ID':<22} {'STATUS':<14} {'STARTED':<20} {'DURATION':>9}  {'STEPS':<22} RUNBOOK"]
    for r in runs:
        dur = format_duration(r.duration) if r.duration is not None else "-"
        steps = f"{r.done} done" + (f", {r.failed} failed" if r.failed else "") + (f", {r.in_doubt} in doubt" if r.in_doubt else "")
        started = (r.started or "-").replace("T", " ")[:19]
        status = r.status + (" (check)" if r.check_mode else "")
        lines.append(f"{r.run_id:<22} {status:<14} {started:<20} {dur:>9}  {steps:<22} {r.runbook or '-'}" + (f"  ({r.note})" if r.note else ""))
    return "\n".join(lines)


_OPERATOR_EVENTS = ("operator_confirm", "operator_decision", "interrupted", "orphan_killed")


def _operator_line(e: dict[str, Any]) -> str:
    """One line of `show` for what the operator said or did (journal events)."""
    kind = e.get("kind")
    if kind == "operator_confirm":
        return f"{'confirmed' if e.get('confirmed') else 'did NOT confirm'} stage [{e.get('stage')}] ({e.get('by')}): {e.get('text')}"
    if kind == "operator_decision":
        if not e.get("applied", True):
            return f"--decide {e.get('decision')} for {e.get('step')} on {e.get('host')} not applied: {e.get('why')}"
        return f"decided {e.get('decision')} for in-doubt {e.get('step')} on {e.get('host')} ({e.get('by', 'terminal')})"
    if kind == "interrupted":
        return f"interrupted ({e.get('signal') or 'Ctrl-C'}, press {e.get('presses')})" + (
            f": in doubt on {', '.join(e['in_doubt'])}" if e.get("in_doubt") else "")
    return f"killed connection {e.get('connection_id')} of the interrupted run on {e.get('host')}: {e.get('info')}"


def show_text(run_id: str, jdir_opt: str | None) -> str:
    state = load_state(run_id, jdir_opt)
    h = state.header
    lines = [f"run {run_id}: {state.run_status}" + (" (check mode: nothing was changed)" if state.check_mode else ""),
             f"runbook   {h.get('runbook')} ({h.get('runbook_name', '')})",
             f"started   {state.started} by {h.get('operator')} on {h.get('control_host')}",
             f"hosts     {', '.join(h.get('hosts') or [])}"]
    if state.torn_tail:
        lines.append("note      the journal's last record was torn (a crash while writing) and is ignored")
    budgets = {e.get("stage"): e.get("budget") for e in state.events if e.get("kind") == "stage_start"}
    current = None
    for (step, host, phase), st in sorted(state.steps.items(), key=lambda kv: kv[1].intent_seq):
        stage = step.split("/", 1)[0]
        if stage != current:
            current = stage
            b = budgets.get(stage)
            lines.append(f"\nstage [{stage}]" + (f" budget {format_duration(b)}" if b else ""))
        verdict = {"done": st.outcome_status or "done", "failed": st.outcome_status or "failed", "in_doubt": "IN DOUBT",
                   "undone": "undone"}[st.status.value]
        dur = format_duration(st.duration) if st.duration is not None else "-"
        extra = f" (attempt {st.attempt})" if st.attempt > 1 else ""
        name = step.split("/", 1)[-1] + (" [undo]" if phase == "undo" else "")
        lines.append(f"  {verdict:<11} {host:<14} {name} {dur}{extra}" + (f": {st.msg}" if st.msg and verdict not in ("ok",) else ""))
    said = [e for e in state.events if e.get("kind") in _OPERATOR_EVENTS]
    if said:
        lines.append("\noperator")
        lines += [f"  {(e.get('ts') or '')[11:19]}  {_operator_line(e)}" for e in said]
    exceeded = [e for e in state.events if e.get("kind") == "budget_exceeded"]
    for e in exceeded:
        lines.append(f"\nbudget exceeded: {e.get('scope')} [{e.get('name')}] ({format_duration(e.get('budget') or 0)})")
    if state.run_status in ("failed", "interrupted"):
        # With --journal-dir the command must carry it, or it would look in the default dir.
        lines.append(f"\nto continue: {resume_command(run_id, journal_dir(jdir_opt))}")
    return "\n".join(lines)
