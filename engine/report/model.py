"""The report model: one typed reading of a run's journal that every report format renders.

:func:`build_model` folds a :class:`~engine.journal.JournalState` once into a
:class:`ReportModel` (run, stages with their timings against their budgets, one row per step ×
host × phase, verification checks, restore throughput, totals), so that the JSON, JUnit,
Markdown and HTML reports tell exactly the same story. Every string in the model has already
been through :data:`~engine.secrets.MASKER`: a secret registered after the journal was written
is still masked here.

```python
model = build_model(read_journal(journal_dir(None), "20261122-031502-7f3a"))
for stage in model.stages:
    print(stage.name, stage.status, stage.duration, stage.budget, stage.over_budget)
```
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.journal.analysis import StepVerdict
from engine.report.text import as_budget, as_int, as_number, masked, seconds_between, split_key

if TYPE_CHECKING:
    from engine.journal import JournalState, StepState

IN_DOUBT = "in doubt"
#: every row status, in the order reports list them
STATUSES = ("ok", "changed", "skipped", "failed", "unreachable", IN_DOUBT)
PROBLEM_STATUSES = frozenset({"failed", "unreachable", IN_DOUBT})
# A stage span still open when one of these arrives was cut short (crash, kill, resume).
_SPAN_BREAKERS = frozenset({"run_start", "resume_start", "rollback_start", "run_end"})
_IN_DOUBT_MSG = "intent without outcome: the step may or may not have run; resume re-probes it"


@dataclass(frozen=True)
class RunInfo:
    """The run as a whole: who ran what, where, when, and how it ended."""

    run_id: str
    runbook: str | None
    runbook_name: str | None
    status: str  # succeeded | failed | interrupted | rolled back | rollback failed
    operator: str | None
    control_host: str | None
    hosts: tuple[str, ...]
    check_mode: bool
    started: str | None
    ended: str | None
    duration: float | None
    budget: float | None  # known only when the run's budget was exceeded
    over_budget: bool
    journal: str
    torn_tail: bool
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class StageReport:
    """One stage: when it ran, for how long, against which budget, and how it ended.

    A resumed stage has several spans; ``duration`` is their sum (the time between an
    interruption and the resume is not the stage's), ``started`` the first start and
    ``ended`` the last end.
    """

    name: str
    status: str  # ok | failed | interrupted | rolled back | rollback failed
    started: str | None
    ended: str | None
    duration: float | None
    budget: float | None
    over_budget: bool
    hosts: tuple[str, ...]
    spans: int

    @property
    def overrun(self) -> float | None:
        """Seconds beyond the budget, when over it."""
        if self.budget is None or self.duration is None or self.duration <= self.budget:
            return None
        return self.duration - self.budget


@dataclass(frozen=True)
class StepRow:
    """One step on one host in one phase (``do`` or ``undo``): its last attempt."""

    stage: str
    step: str
    host: str
    phase: str
    status: str  # ok | changed | skipped | failed | unreachable | in doubt
    duration: float | None
    attempts: int
    msg: str
    evidence: str
    started: str | None
    ended: str | None
    changed: bool
    registered: dict[str, Any] | None

    @property
    def key(self) -> str:
        return f"{self.stage}/{self.step}" if self.stage else self.step

    @property
    def problem(self) -> bool:
        """Failed, unreachable or in doubt: what a postmortem looks at first."""
        return self.status in PROBLEM_STATUSES


@dataclass(frozen=True)
class CheckResult:
    """One verification check, from the ``checks`` list a verify step registered
    (``{name, kind, table, result, count, expected, sample, detail}``)."""

    stage: str
    step: str
    host: str
    name: str
    status: str  # PASS | FAIL | WARNING (the SOP's words for result pass | fail | warn)
    detail: str
    kind: str = ""
    table: str = ""
    result: str = ""  # pass | fail | warn
    count: int | None = None
    expected: Any = None
    sample: tuple[Any, ...] = ()

    @property
    def failed(self) -> bool:
        return self.result == "fail"


@dataclass(frozen=True)
class Throughput:
    """What a restore or snapshot step moved, and how fast."""

    stage: str
    step: str
    host: str
    phase: str
    rows: int | None
    bytes: int | None
    tables: int | None
    duration: float | None
    rows_per_second: float | None
    bytes_per_second: float | None
    per_table: tuple[TableThroughput, ...] = ()


@dataclass(frozen=True)
class TableThroughput:
    """One table of a restore: what it loaded and how fast (registered ``tables`` entry)."""

    table: str
    status: str
    rows: int | None
    ignored: int | None
    bytes: int | None
    seconds: float | None
    rows_per_second: float | None


@dataclass(frozen=True)
class ReportModel:
    """Everything a report shows, built once by :func:`build_model`."""

    run: RunInfo
    header: dict[str, Any]
    stages: tuple[StageReport, ...]
    steps: tuple[StepRow, ...]
    checks: tuple[CheckResult, ...]
    throughput: tuple[Throughput, ...]
    totals: dict[str, int]
    host_totals: dict[str, dict[str, int]]
    events: tuple[dict[str, Any], ...]
    #: "what the operator must still do" (engine.report.todo), and confirmations/decisions
    todo: tuple[str, ...] = ()
    decisions: tuple[Any, ...] = ()
    #: the commands that drove the run (play as started, resumes, rollbacks), -e secrets masked
    commands: tuple[str, ...] = ()
    #: sessions the fence killed (engine.report.facts)
    killed: tuple[Any, ...] = ()
    #: rows written after the backup that live only in the snapshot, per table, and how counted
    left_in_snapshot: tuple[Any, ...] = ()
    left_how: str = ""

    def steps_of(self, stage: str) -> list[StepRow]:
        return [s for s in self.steps if s.stage == stage]

    @property
    def problems(self) -> list[StepRow]:
        return [s for s in self.steps if s.problem]


# --------------------------------------------------------------------------- building


@dataclass
class _Span:
    start: str | None
    last: str | None
    end: str | None = None
    status: str | None = None


@dataclass
class _StageAcc:
    name: str
    spans: list[_Span] = field(default_factory=list)
    budget: float | None = None
    hosts: list[str] = field(default_factory=list)
    status: str | None = None
    exceeded: bool = False


def _fold_events(
    records: list[dict[str, Any]],
) -> tuple[dict[str, _StageAcc], dict[tuple[str, str, str], int], float | None]:
    """Stages in order of first appearance with their spans; the first intent of each step; the run budget."""
    stages: dict[str, _StageAcc] = {}
    first_intent: dict[tuple[str, str, str], int] = {}
    run_budget: float | None = None
    open_span: _Span | None = None
    for rec in records:
        ts = rec.get("ts")
        kind = rec.get("kind") if rec.get("type") == "event" else None
        if kind in _SPAN_BREAKERS or kind == "stage_start":
            open_span = None  # cut short: it keeps the ts of its last record as its end
        elif open_span is not None and ts:
            open_span.last = ts
        name = split_key(rec["step"])[0] if rec.get("type") == "intent" else str(rec.get("stage"))
        if rec.get("type") == "intent":
            first_intent.setdefault((rec["step"], rec["host"], rec.get("phase", "do")), rec["seq"])
            stages.setdefault(name, _StageAcc(name))
        elif kind == "stage_start":
            acc = stages.setdefault(name, _StageAcc(name))
            acc.budget = as_budget(rec.get("budget"))
            acc.hosts = [str(h) for h in rec.get("hosts") or []]
            open_span = _Span(start=ts, last=ts)
            acc.spans.append(open_span)
        elif kind == "stage_end":
            acc = stages.setdefault(name, _StageAcc(name))
            acc.status = str(rec.get("status", "ok"))
            if open_span is not None and acc.spans and acc.spans[-1] is open_span:
                open_span.end, open_span.status = ts, acc.status
            open_span = None
        elif kind == "budget_exceeded":
            if rec.get("scope") == "run":
                run_budget = as_budget(rec.get("budget"))
            elif rec.get("name") in stages:
                stages[str(rec.get("name"))].exceeded = True
    return stages, first_intent, run_budget


def build_model(state: JournalState) -> ReportModel:
    """Fold a run's journal into the model every report renders."""
    header = state.header
    stages, first_intent, run_budget = _fold_events(state.records[1:])
    # One row per (step, host, phase), in the order each was first attempted.
    ordered = sorted(state.steps.values(), key=lambda s: first_intent.get(s.key, s.intent_seq))
    steps = tuple(_row(s) for s in ordered)
    stage_reports = tuple(_stage(acc, [s for s in steps if s.stage == name]) for name, acc in stages.items())
    totals = Counter(s.status for s in steps)
    host_totals: dict[str, dict[str, int]] = {}
    for s in steps:
        host_totals.setdefault(s.host, dict.fromkeys(STATUSES, 0))[s.status] += 1
    duration = seconds_between(state.started, state.ended or state.last_ts)
    runbook = header.get("runbook")
    if isinstance(runbook, dict):
        runbook = runbook.get("path")
    run = RunInfo(
        run_id=state.run_id,
        runbook=masked(str(runbook)) if runbook is not None else None,
        runbook_name=masked(str(header["runbook_name"])) if header.get("runbook_name") else None,
        status=state.run_status,
        operator=masked(str(header["operator"])) if header.get("operator") else None,
        control_host=masked(str(header["control_host"])) if header.get("control_host") else None,
        hosts=tuple(masked([str(h) for h in header.get("hosts") or []])),
        check_mode=bool(header.get("check_mode")),
        started=state.started,
        ended=state.ended or state.last_ts,
        duration=duration,
        budget=run_budget,
        over_budget=run_budget is not None,
        journal=masked(str(state.path)),
        torn_tail=state.torn_tail,
        warnings=tuple(masked(list(state.warnings))),
    )
    from engine.report.facts import command_lines, killed_sessions, left_in_snapshot
    from engine.report.todo import decisions, operator_todo

    events = tuple(masked(e) for e in state.events)
    todo = () if run.check_mode else tuple(operator_todo(
        state.records, header, state.run_id, state.run_status, list(stages),
        in_doubt=[f"{s.stage}/{s.step} on {s.host}" for s in steps if s.status == IN_DOUBT],
        failed=[f"{s.stage}/{s.step} on {s.host}" for s in steps if s.status in ("failed", "unreachable")]))
    left, how = left_in_snapshot(steps, state)
    return ReportModel(
        commands=tuple(command_lines(state)),
        killed=tuple(killed_sessions(steps)),
        left_in_snapshot=tuple(left),
        left_how=how,
        todo=todo,
        decisions=tuple(decisions(events, run.operator)),
        run=run,
        header=masked(header),
        stages=stage_reports,
        steps=steps,
        checks=tuple(c for s in steps for c in _checks(s)),
        throughput=tuple(t for s in steps if (t := _throughput(s)) is not None),
        totals={k: totals.get(k, 0) for k in STATUSES},
        host_totals=host_totals,
        events=events,
    )


def _row(s: StepState) -> StepRow:
    stage, step = split_key(s.step)
    status = s.outcome_status if s.outcome_seq is not None and s.status is not StepVerdict.IN_DOUBT else IN_DOUBT
    registered = s.registered if isinstance(s.registered, dict) else None
    attempts = max(s.intents, s.attempt if isinstance(s.attempt, int) else 1)
    return StepRow(
        stage=masked(stage),
        step=masked(step),
        host=masked(s.host),
        phase=s.phase,
        status=str(status),
        duration=as_number(s.duration),
        attempts=attempts,
        msg=(masked(str(s.msg or "")) or (_IN_DOUBT_MSG if status == IN_DOUBT else ""))
        + (" (undone by a later rollback)" if s.status is StepVerdict.UNDONE else ""),
        evidence=masked(str(s.evidence or "")),
        started=s.started,
        ended=s.ended,
        changed=bool(s.changed),
        registered=masked(registered) if registered is not None else None,
    )


def _stage(acc: _StageAcc, rows: list[StepRow]) -> StageReport:
    """A stage's timing and status from its spans, or from its steps when it has none."""
    if acc.spans:
        durations = [seconds_between(sp.start, sp.end or sp.last) for sp in acc.spans]
        known = [d for d in durations if d is not None]
        duration: float | None = sum(known) if known else None
        started, last = acc.spans[0].start, acc.spans[-1]
        ended = last.end or last.last
        status = last.status or "interrupted"
    else:  # e.g. undo steps of `runbook rollback`, which runs outside stage events
        starts = [r.started for r in rows if r.started is not None]
        ends = [r.ended for r in rows if r.ended is not None] or starts
        started, ended = (min(starts) if starts else None), (max(ends) if ends else None)
        duration = seconds_between(started, ended)
        if any(r.status in ("failed", "unreachable") for r in rows):
            status = "failed"
        elif any(r.status == IN_DOUBT for r in rows):
            status = "interrupted"
        else:
            status = acc.status or "ok"
    over = acc.exceeded or (acc.budget is not None and duration is not None and duration > acc.budget)
    return StageReport(
        name=masked(acc.name),
        status=status,
        started=started,
        ended=ended,
        duration=duration,
        budget=acc.budget,
        over_budget=over,
        hosts=tuple(masked(acc.hosts)),
        spans=len(acc.spans),
    )


_RESULT_OF = {"pass": "pass", "ok": "pass", "fail": "fail", "failed": "fail", "warn": "warn", "warning": "warn"}
_STATUS_OF = {"pass": "PASS", "fail": "FAIL", "warn": "WARNING"}


def _checks(row: StepRow) -> list[CheckResult]:
    """The ``checks`` a verify step registered (older journals: ``{name, status, detail}``)."""
    found = (row.registered or {}).get("checks")
    if not isinstance(found, list):
        return []
    out = []
    for i, c in enumerate(found, 1):
        if not isinstance(c, dict):
            continue
        detail = c.get("detail", "")
        result = _RESULT_OF.get(str(c.get("result") or c.get("status") or "").lower(), "")
        sample = c.get("sample")
        out.append(
            CheckResult(
                stage=row.stage,
                step=row.step,
                host=row.host,
                name=str(c.get("name") or f"check {i}"),
                status=_STATUS_OF.get(result, str(c.get("status") or c.get("result") or "?").upper()),
                detail=detail if isinstance(detail, str) else json.dumps(detail, default=str),
                kind=str(c.get("kind") or ""),
                table=str(c.get("table") or ""),
                result=result,
                count=as_int(c.get("count")),
                expected=c.get("expected"),
                sample=tuple(sample) if isinstance(sample, list) else (),
            )
        )
    return out


def _throughput(row: StepRow) -> Throughput | None:
    """What a restore/snapshot step registered about the data it moved, if anything.

    Only top-level ``rows`` (a count, not an SQL result set), ``bytes``, ``rows_per_second``
    or ``bytes_per_second`` make a step count: ``mysql_facts`` also lists tables with rows.
    """
    reg = row.registered
    if not reg:
        return None
    rows, size = as_int(reg.get("rows")), as_int(reg.get("bytes"))
    rps = as_number(reg.get("rows_per_second", reg.get("rows_per_s")))
    bps = as_number(reg.get("bytes_per_second"))
    if rows is None and size is None and rps is None and bps is None:
        return None
    tables_value = reg.get("tables")
    tables = len(tables_value) if isinstance(tables_value, (list, dict)) else as_int(tables_value)
    if rows is None and isinstance(tables_value, dict):  # snapshot: per table rows
        per_table = [as_int(t.get("rows")) for t in tables_value.values() if isinstance(t, dict)]
        if per_table and all(n is not None for n in per_table):
            rows = sum(n for n in per_table if n is not None)
    seconds = as_number(reg.get("seconds")) or row.duration
    if seconds:
        rps = rps if rps is not None else (rows / seconds if rows is not None else None)
        bps = bps if bps is not None else (size / seconds if size is not None else None)
    detail: list[TableThroughput] = []
    if isinstance(tables_value, dict):
        for name, t in tables_value.items():
            if isinstance(t, dict) and "rows_per_s" in t:  # a restore's per-table result
                detail.append(TableThroughput(str(name), str(t.get("status") or ""), as_int(t.get("rows")), as_int(t.get("ignored")),
                                                 as_int(t.get("bytes")), as_number(t.get("seconds")), as_number(t.get("rows_per_s"))))
    return Throughput(row.stage, row.step, row.host, row.phase, rows, size, tables, seconds, rps, bps, tuple(detail))
