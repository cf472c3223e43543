"""Analysis: read a run's journal back into the state of every step.

The first pass of crash recovery. For each ``(step, host, phase)`` the last attempt decides:

* an intent without an outcome after it is **in doubt**: the side effect may or may not have
  happened, so resume re-probes it and never blindly re-applies it;
* an outcome ``ok``/``changed``/``skipped`` is **done**, ``failed``/``unreachable`` is
  **failed**;
* a new intent after an outcome starts a new attempt (a failed step retried on resume);
* a do-step whose latest undo succeeded after its outcome is **undone**: its effect was
  reversed (``runbook rollback`` or a stage's ``on_failure: rollback``), so resume runs it
  again; it is neither done nor pending an undo;
* a do-step whose latest undo after its outcome is in doubt or failed is **in doubt** too
  (``undo_pending`` says which): its effect may be partly reversed, so resume re-probes it
  (never trusts "done in an earlier attempt") and rollback runs its undo again.

``step_note`` events are what a step journaled *before* its change (the state it found, the
fence's kill mark): they outlive the attempt, so a later probe that finds the change made can
still say how to undo it.

```python
state = read_journal(journal_dir(None), "20261122-031502-7f3a")
for step in state.done_with_undo():      # rollback: newest first
    ...
```
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from engine.errors import JournalError, RunbookError, Source
from engine.journal.layout import JOURNAL_FILE, LOCK_FILE, VERSION, run_path

DONE_STATUSES = frozenset({"ok", "changed", "skipped"})
FAILED_STATUSES = frozenset({"failed", "unreachable"})
# The side effect was attempted and its fate is unknown (sent, then a timeout, a lost
# connection or an abort): in doubt, like an intent without an outcome, with the evidence kept.
# A later outcome for the same intent (resume's probe or the operator's decision) settles it.
UNKNOWN_STATUS = "unknown"
# Events that (re)start work on a run: a run_end before one of these no longer describes it.
_LIFECYCLE_STARTS = frozenset({"run_start", "resume_start", "rollback_start"})


class StepVerdict(str, enum.Enum):
    """What analysis concludes about one step on one host in one phase."""

    DONE = "done"
    FAILED = "failed"
    IN_DOUBT = "in_doubt"
    UNDONE = "undone"


@dataclass
class StepState:
    """The last attempt of one step on one host in one phase (``do`` or ``undo``).

    ``outcome_status`` and the fields after it are those of the outcome record; they are
    empty while the attempt is in doubt.
    """

    step: str
    host: str
    phase: str
    status: StepVerdict
    intent_seq: int
    attempt: int
    digest: str
    extra: dict[str, Any] = field(default_factory=dict)
    intents: int = 1  # how many attempts the journal holds, across resumes
    started: str | None = None  # ts of the intent
    ended: str | None = None  # ts of the outcome
    outcome_seq: int | None = None
    outcome_status: str | None = None  # ok | changed | skipped | failed | unreachable
    changed: bool = False
    registered: dict[str, Any] | None = None
    duration: float | None = None
    msg: str = ""
    undo: Any = None
    evidence: str = ""
    #: what the step journaled before its change, over every attempt (``step_note`` events)
    notes: dict[str, Any] = field(default_factory=dict)
    #: a do-step in doubt because its latest undo is: "in doubt" or "failed" ("" otherwise).
    #: Its own attempt is closed (the outcome fields above are its do outcome).
    undo_pending: str = ""

    @property
    def open_attempt(self) -> bool:
        """An intent whose fate the journal does not know (no outcome, or "unknown"): the
        attempt an outcome may still close."""
        return self.status is StepVerdict.IN_DOUBT and not self.undo_pending

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.step, self.host, self.phase)


@dataclass
class JournalState:
    """Everything a run's journal says, as of its last valid record."""

    run_id: str
    path: Path
    header: dict[str, Any]
    records: list[dict[str, Any]]
    steps: dict[tuple[str, str, str], StepState]
    #: do-phase (step, host) in the order they first became done
    order: list[tuple[str, str]]
    events: list[dict[str, Any]]
    #: status of the last run_end event, or "interrupted" when work started after it or none exists
    run_status: str
    started: str | None
    ended: str | None
    last_seq: int
    last_ts: str | None
    #: the last line was a torn write and was ignored
    torn_tail: bool = False
    #: bytes of the file that hold valid records (where appending may resume)
    valid_size: int = 0
    warnings: list[str] = field(default_factory=list)

    def step(self, step_key: str, host: str, phase: str = "do") -> StepState | None:
        """The state of one step on one host, or None when it never started."""
        return self.steps.get((step_key, host, phase))

    def _with(self, verdict: StepVerdict, phase: str) -> list[StepState]:
        found = [s for s in self.steps.values() if s.phase == phase and s.status is verdict]
        return sorted(found, key=lambda s: s.intent_seq)

    def done(self, phase: str = "do") -> list[StepState]:
        return self._with(StepVerdict.DONE, phase)

    def failed(self, phase: str = "do") -> list[StepState]:
        return self._with(StepVerdict.FAILED, phase)

    def in_doubt(self, phase: str = "do") -> list[StepState]:
        return self._with(StepVerdict.IN_DOUBT, phase)

    def in_flight(self) -> list[StepState]:
        """Do-steps in doubt because their own attempt was cut short (not because of an undo)."""
        return [s for s in self.in_doubt("do") if not s.undo_pending]

    def undone(self) -> list[StepState]:
        """Do-steps whose effect a later undo reversed: resume runs them again."""
        return self._with(StepVerdict.UNDONE, "do")

    def done_with_undo(self) -> list[StepState]:
        """Do-steps with an undo record that is not undone yet, newest outcome first.

        Failed steps count too: a loop step that failed on its third item changed the first
        two, and its undo record holds theirs. An undo that failed or is in doubt is still
        pending (rollback re-probes it, see :meth:`undo_attempt`).
        """
        undo_pending = [s for s in self.in_doubt("do") if s.undo_pending]
        pending = [s for s in self.done("do") + self.failed("do") + undo_pending if s.undo is not None]
        return sorted(pending, key=lambda s: s.outcome_seq or 0, reverse=True)

    def undo_attempt(self, do: StepState) -> StepState | None:
        """The undo attempt made after ``do``'s outcome, if any (failed or in doubt: pending)."""
        undo = self.steps.get((do.step, do.host, "undo"))
        if undo is None or undo.intent_seq < (do.outcome_seq or do.intent_seq):
            return None
        return undo

    def undone_under(self, st: StepState) -> list[StepState]:
        """Do-steps undone (or whose undo started) *after* ``st`` was done, that were done
        *before* it: ``st`` may rest on their effect (a restore on the snapshot taken before it, a write on the fence), which
        is gone. Resume probes such a step again instead of trusting "done"."""
        if st.outcome_seq is None:
            return []
        out = []
        for u in self.undone() + [s for s in self.in_doubt("do") if s.undo_pending]:  # an undo cut short may have run
            undo = self.steps.get((u.step, u.host, "undo"))
            if (u.outcome_seq or 0) < st.outcome_seq and undo is not None and undo.intent_seq > st.outcome_seq:
                out.append(u)
        return out

    def rolled_back_stages(self) -> dict[str, int]:
        """Stage name -> seq of its latest ``stage_end`` with status ``rolled back``."""
        out: dict[str, int] = {}
        for e in self.events:
            if e.get("kind") == "stage_end" and e.get("status") == "rolled back" and isinstance(e.get("stage"), str):
                out[e["stage"]] = e["seq"]
        return out

    @property
    def check_mode(self) -> bool:
        return bool(self.header.get("check_mode"))


@dataclass
class RunSummary:
    """One line of ``runbook runs``. ``note`` says why a run could not be read."""

    run_id: str
    runbook: str | None
    started: str | None
    status: str  # a run_end status, "interrupted", "running", or "unreadable"
    duration: float | None
    done: int = 0
    failed: int = 0
    in_doubt: int = 0
    ended: str | None = None
    note: str = ""
    check_mode: bool = False


# --------------------------------------------------------------------------- parsing


def read_journal(dir: Path, run_id: str) -> JournalState:
    """Analysis of one run: parse its journal and fold it into step states.

    A torn last line is ignored (``torn_tail``); a bad line anywhere else raises
    :class:`JournalError` naming the file and line, since guessing past corruption could
    re-run a step that already ran.
    """
    path = run_path(Path(dir), run_id)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise JournalError(
            f"no run {run_id} in {dir}",
            hint="`runbook runs` lists the runs; pass the --journal-dir the run used",
        ) from None
    except OSError as exc:
        raise JournalError(f"cannot read the journal {path}: {exc.strerror}") from exc
    numbered, valid_size, torn = _parse(data, path)
    return _fold(numbered, path, run_id, valid_size, torn)


def _parse(data: bytes, path: Path) -> tuple[list[tuple[int, dict[str, Any]]], int, bool]:
    """(line number, record) pairs, the size of the valid prefix, and whether the tail was torn."""
    pieces = data.split(b"\n")  # the last piece is b"" when the file ends with a newline
    last = max((i for i, p in enumerate(pieces) if p.strip()), default=-1)
    numbered: list[tuple[int, dict[str, Any]]] = []
    offset = valid_size = 0
    prev_seq = -1
    for i, raw in enumerate(pieces):
        end = offset + len(raw) + (1 if i < len(pieces) - 1 else 0)
        offset, line_no = end, i + 1
        if not raw.strip():  # a blank line (an editor's trailing newline) is harmless
            valid_size = end
            continue
        record, problem = _record(raw)
        if record is None:
            if i == last:  # the crash hit in the middle of the last write
                return numbered, valid_size, True
            raise JournalError(
                f"corrupt journal record: {problem}",
                source=Source(str(path), line_no),
                hint="only the last line can be torn by a crash; this file was altered — restore it from a copy",
            )
        if record["seq"] <= prev_seq:
            raise JournalError(
                f"journal record seq {record['seq']} does not follow seq {prev_seq}",
                source=Source(str(path), line_no),
                hint="two processes wrote this run at once, or the file was edited",
            )
        prev_seq = record["seq"]
        numbered.append((line_no, record))
        valid_size = end
    return numbered, valid_size, False


def _record(raw: bytes) -> tuple[dict[str, Any] | None, str]:
    """The record on this line, or None and why it is not one."""
    try:
        record = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        return None, f"not valid JSON ({exc})"
    if not isinstance(record, dict):
        return None, "not a JSON object"
    if not isinstance(record.get("type"), str) or type(record.get("seq")) is not int:
        return None, "no type or seq"
    need: tuple[str, ...] = ()
    if record["type"] == "intent":
        need = ("step", "host", "digest", "attempt")
    elif record["type"] == "outcome":
        need = ("intent", "step", "host", "status")
    elif record["type"] == "event":
        need = ("kind",)
    missing = [k for k in need if k not in record]
    if missing:
        return None, f"{record['type']} record without {', '.join(missing)}"
    return record, ""


def _fold(
    numbered: list[tuple[int, dict[str, Any]]], path: Path, run_id: str, valid_size: int, torn: bool
) -> JournalState:
    """Replay the records in seq order into the state of each step and of the run."""
    if not numbered or numbered[0][1]["type"] != "header":
        raise JournalError(
            f"the journal {path} has no header: the run was interrupted while it was being created",
            hint="nothing ran in it; start the runbook again",
        )
    header = numbered[0][1]
    if type(header.get("version")) is not int or header["version"] > VERSION:
        raise JournalError(
            f"the journal {path} has format version {header.get('version')!r}; this engine reads up to {VERSION}",
            hint="use the runbook version that wrote this run",
        )
    steps: dict[tuple[str, str, str], StepState] = {}
    notes: dict[tuple[str, str, str], dict[str, Any]] = {}
    order: list[tuple[str, str]] = []
    in_order: set[tuple[str, str]] = set()  # a list lookup would make analysis quadratic
    events: list[dict[str, Any]] = []
    warnings: list[str] = []
    status: str | None = None
    ended: str | None = None
    for line_no, rec in numbered[1:]:
        kind = rec["type"]
        if kind == "intent":
            key = (rec["step"], rec["host"], rec.get("phase", "do"))
            prev = steps.get(key)
            steps[key] = StepState(
                step=key[0],
                host=key[1],
                phase=key[2],
                status=StepVerdict.IN_DOUBT,
                intent_seq=rec["seq"],
                attempt=rec["attempt"],
                digest=rec["digest"],
                extra=rec.get("extra") or {},
                intents=prev.intents + 1 if prev else 1,
                started=rec.get("ts"),
                notes=notes.setdefault(key, {}),
            )
        elif kind == "outcome":
            key = (rec["step"], rec["host"], rec.get("phase", "do"))
            state = steps.get(key)
            if state is None or state.intent_seq != rec["intent"] or (
                state.outcome_seq is not None and state.outcome_status != UNKNOWN_STATUS
            ):
                # Ignoring it leaves the step in doubt, which only costs a re-probe.
                warnings.append(
                    f"{path}:{line_no}: outcome names intent {rec['intent']}, not the open attempt of "
                    f"{key[0]} on {key[1]} ({key[2]}); ignored"
                )
                continue
            _close(state, rec)
            if state.outcome_status == UNKNOWN_STATUS:
                state.status = StepVerdict.IN_DOUBT
            elif state.outcome_status not in DONE_STATUSES | FAILED_STATUSES:
                warnings.append(f"{path}:{line_no}: unknown outcome status {state.outcome_status!r}; left in doubt")
                state.status = StepVerdict.IN_DOUBT
            elif state.status is StepVerdict.DONE and key[2] == "do" and key[:2] not in in_order:
                order.append(key[:2])
                in_order.add(key[:2])
        elif kind == "event":
            events.append(rec)
            if rec["kind"] == "step_note" and isinstance(rec.get("data"), dict):
                nkey = (str(rec.get("step")), str(rec.get("host")), str(rec.get("phase", "do")))
                notes.setdefault(nkey, {}).update(rec["data"])
            elif rec["kind"] == "run_end":
                status, ended = str(rec.get("status", "unknown")), rec.get("ts")
            elif rec["kind"] in _LIFECYCLE_STARTS:
                status = ended = None
        # other record types come from a newer minor version: kept in records, not interpreted
    _mark_undone(steps)
    return JournalState(
        run_id=run_id,
        path=path,
        header=header,
        records=[rec for _, rec in numbered],
        steps=steps,
        order=order,
        events=events,
        run_status=status or "interrupted",
        started=header.get("ts"),
        ended=ended,
        last_seq=numbered[-1][1]["seq"],
        last_ts=numbered[-1][1].get("ts"),
        torn_tail=torn,
        valid_size=valid_size,
        warnings=warnings,
    )


def _mark_undone(steps: dict[tuple[str, str, str], StepState]) -> None:
    """A do-step whose undo succeeded after its outcome is undone, not done (nor failed); one
    whose undo, started after its outcome, is in doubt or failed is in doubt: the undo may have
    reversed part of its effect (a rollback killed after it dropped the fence)."""
    for (step, host, phase), undo in steps.items():
        if phase != "undo":
            continue
        do = steps.get((step, host, "do"))
        if do is None or do.status not in (StepVerdict.DONE, StepVerdict.FAILED) or do.outcome_seq is None:
            continue
        if undo.status is StepVerdict.DONE and (undo.outcome_seq or 0) > do.outcome_seq:
            do.status = StepVerdict.UNDONE
        elif undo.status in (StepVerdict.IN_DOUBT, StepVerdict.FAILED) and undo.intent_seq > do.outcome_seq:
            do.status = StepVerdict.IN_DOUBT
            do.undo_pending = "in doubt" if undo.status is StepVerdict.IN_DOUBT else "failed"


def _close(state: StepState, rec: dict[str, Any]) -> None:
    """Fill a step's outcome fields from its outcome record."""
    state.outcome_seq = rec["seq"]
    state.outcome_status = rec["status"]
    state.status = StepVerdict.DONE if rec["status"] in DONE_STATUSES else StepVerdict.FAILED
    state.ended = rec.get("ts")
    state.changed = bool(rec.get("changed", False))
    state.registered = rec.get("registered")
    state.duration = rec.get("duration")
    state.msg = rec.get("msg", "")
    state.undo = rec.get("undo")
    state.evidence = rec.get("evidence", "")


# --------------------------------------------------------------------------- listing runs


def list_runs(dir: Path) -> list[RunSummary]:
    """Every run in the journal dir, oldest first. A run that cannot be read is listed with
    a ``note`` instead of stopping the listing: in an incident one bad dir must not hide the rest."""
    from engine.journal.lock import lock_holder

    root = Path(dir)
    if not root.is_dir():
        return []
    runs: list[RunSummary] = []
    for entry in sorted(root.iterdir()):
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        if (entry / "lab.json").exists():  # `runbook lab` lives in <journal dir>/lab: not a run
            continue
        if (_time_from_run_id(entry.name) is None and not (entry / JOURNAL_FILE).exists()
                and not (entry / LOCK_FILE).exists()):
            continue  # not a run (the lab lives in <journal dir>/lab), not a broken one
        try:
            if not (entry / JOURNAL_FILE).exists():
                raise JournalError("no journal file (the run stopped before it started)")
            state = read_journal(root, entry.name)
        except (RunbookError, OSError) as exc:
            note = exc.message if isinstance(exc, RunbookError) else str(exc)
            runs.append(RunSummary(entry.name, None, _time_from_run_id(entry.name), "unreadable", None, note=note))
            continue
        status = state.run_status
        if status == "interrupted" and lock_holder(root, entry.name) is not None:
            status = "running"
        runs.append(
            RunSummary(
                run_id=entry.name,
                runbook=_runbook_of(state.header),
                started=state.started,
                status=status,
                duration=_seconds(state.started, state.ended or state.last_ts),
                done=len(state.done()),
                failed=len(state.failed()),
                in_doubt=len(state.in_doubt()),
                ended=state.ended,
                note="torn last record ignored" if state.torn_tail else "",
                check_mode=state.check_mode,
            )
        )
    # Order by the start time the run id carries (to the second, set when the run was created),
    # then by the journal's own start (sub-second): the listing never depends on today's date.
    return sorted(runs, key=lambda r: (_time_from_run_id(r.run_id) or r.started or "", r.started or "", r.run_id))


def _runbook_of(header: dict[str, Any]) -> str | None:
    value = header.get("runbook")
    if isinstance(value, dict):  # {"path": ..., "digest": ...}
        value = value.get("path")
    return str(value) if value is not None else None


def _seconds(start: str | None, end: str | None) -> float | None:
    try:
        return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _time_from_run_id(run_id: str) -> str | None:
    """The start time a run id carries (``new_run_id`` format), or None for a foreign name."""
    try:
        return datetime.strptime(run_id[:15], "%Y%m%d-%H%M%S").strftime("%Y-%m-%dT%H:%M:%S") + ".000000+00:00"
    except ValueError:
        return None
