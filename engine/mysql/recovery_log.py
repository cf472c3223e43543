"""InnoDB crash recovery as the error log tells it: lines → events → the state of a recovery.

The message texts come from the servers' sources (MariaDB ``log0recv.cc``, ``trx0roll.cc``,
``srv0start.cc``; MySQL the same files and ``share/messages_to_error_log.txt``) and from real
logs of MariaDB 10.11 crashed with ``kill -9``; ``tests/data/recovery_logs/`` keeps excerpts of
each server version. What each version prints:

* MariaDB 10.5+: ``Starting crash recovery from checkpoint LSN=N``, ``End of log at LSN=N``,
  ``To recover: LSN a/b; N pages`` (multi-batch) or ``To recover: N pages``,
  ``N transaction(s) which must be rolled back or cleaned up in total M row operations to
  undo``, ``Starting in background the rollback of recovered transactions``, ``Rolled back
  recovered transaction N``, ``Rollback of non-prepared transactions completed``.
* MariaDB 10.2-10.4 / MySQL 5.7: ``Doing recovery: scanned up to log sequence number N``,
  ``Starting an apply batch of log records to the database...``, ``Progress in percent: 5 6 7``
  (one growing line, no timestamp), ``Apply batch completed``.
* MySQL 8.x/9.x: ``[MY-013883] The latest found checkpoint is at lsn = N``, ``[MY-012552]
  Starting crash recovery.``, ``[MY-012532] Applying a batch of N redo log records ...``,
  ``[MY-012533] 10%``, ``[MY-012535] Apply batch completed!``, ``[MY-013014] Starting in
  background the rollback of uncommitted transactions``, ``[MY-013011] Rolling back trx with id
  N, M rows to undo``, ``[MY-013015] Rollback of non-prepared transactions completed``.

```python
state = RecoveryState()
for event in parse_text(log_text_since_last_start):
    state.feed(event)
print(state.phase, state.checkpoint_lsn, state.fraction("redo"), state.fatal)
```
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from engine.mysql.recovery_fatal import Fatal, match_fatal

__all__ = ["Event", "Fatal", "LogLine", "Phase", "RecoveryState", "last_start", "parse_line", "parse_text"]

# ---------------------------------------------------------------------------- lines

_MARIADB_TS = re.compile(r"^(\d{4}-\d{2}-\d{2})\s+(\d{1,2}:\d{2}:\d{2})\s+(?:\d+\s+)?\[(\w+)\]\s?(.*)$")
_MARIADB_OLD_TS = re.compile(r"^(\d{6})\s+(\d{1,2}:\d{2}:\d{2})\s+(?:\d+\s+)?(?:\[(\w+)\]\s?)?(.*)$")
_MYSQL_TS = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?)\s+(?:\d+\s+)?\[(\w+)\]\s?(.*)$")
# A header that starts a new entry in the middle of a line (a message written without its
# newline, e.g. MariaDB's "[ERROR] Aborting" followed by the next entry).
_EMBEDDED = re.compile(r"(?<=\S)(?=\d{4}-\d{2}-\d{2}(?:T|\s+)\d{1,2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?\s+\d+\s+\[)")
_CODE = re.compile(r"^\[(MY-\d+)\]\s*")
_SUBSYS = re.compile(r"^\[(InnoDB|Server|Repl|Xtrabackup|Warning|Note)\]\s*")


@dataclass(frozen=True)
class LogLine:
    """One entry of an error log: its time (as the server wrote it), level, MySQL code and text."""

    raw: str
    text: str  # the message without "InnoDB: " / "[InnoDB]" prefixes
    ts: datetime | None = None
    level: str | None = None  # Note | Warning | ERROR | System | FATAL
    code: str | None = None  # MY-013883 (MySQL 8+)
    innodb: bool = False


def _ts(date: str, clock: str, fmt: str) -> datetime | None:
    try:
        return datetime.strptime(f"{date} {clock}", fmt)
    except ValueError:
        return None


def parse_line(raw: str) -> LogLine:
    """Split a line into time, level, code and message; a line without a header keeps its text."""
    raw = raw.rstrip("\r\n")
    ts: datetime | None = None
    level = None
    body = raw.strip()
    m = _MARIADB_TS.match(raw)
    if m:
        ts, level, body = _ts(m.group(1), m.group(2), "%Y-%m-%d %H:%M:%S"), m.group(3), m.group(4)
    elif (m := _MYSQL_TS.match(raw)) is not None:
        try:
            ts = datetime.fromisoformat(m.group(1))
        except ValueError:
            ts = None
        level, body = m.group(2), m.group(3)
    elif (m := _MARIADB_OLD_TS.match(raw)) is not None:
        ts, level, body = _ts(m.group(1), m.group(2), "%y%m%d %H:%M:%S"), m.group(3), m.group(4)
    code = None
    if (c := _CODE.match(body)) is not None:
        code, body = c.group(1), body[c.end():]
    innodb = False
    if (s := _SUBSYS.match(body)) is not None:
        innodb = s.group(1) == "InnoDB"
        body = body[s.end():]
    if body.startswith("InnoDB: "):
        innodb, body = True, body[8:]
    return LogLine(raw=raw, text=body.strip(), ts=ts, level=level, code=code, innodb=innodb)


def split_entries(text: str) -> Iterator[str]:
    """The lines of a log, with entries glued onto one line split apart."""
    for line in text.splitlines():
        yield from (part for part in _EMBEDDED.split(line) if part.strip())


# ---------------------------------------------------------------------------- events

START = "start"  # a server process starts: everything before belongs to an earlier run
CRASHED = "crashed"  # the server was not shut down cleanly
RECOVERY_START = "recovery_start"
CHECKPOINT = "checkpoint"
SCANNED = "scanned"
END_OF_LOG = "end_of_log"
REDO_BATCH = "redo_batch"
REDO_PROGRESS = "redo_progress"
REDO_DONE = "redo_done"
UNDO_FOUND = "undo_found"
PREPARED = "prepared"
UNDO_START = "undo_start"
UNDO_TRX = "undo_trx"
UNDO_TRX_DONE = "undo_trx_done"
UNDO_DONE = "undo_done"
INNODB_STARTED = "innodb_started"
READY = "ready"
SHUTDOWN = "shutdown"
FORCE_RECOVERY = "force_recovery"
HINT = "hint"
FATAL = "fatal"

_N = r"(\d+)"
#: (kind, pattern, names of the numbers it captures); first match wins, fatal lines are tried first
_PATTERNS: list[tuple[str, re.Pattern[str], tuple[str, ...]]] = [
    (START, re.compile(r"^Starting MariaDB .* as process \d+|(?:mysqld|mariadbd)(?:\.exe)? (?:\([^)]*\) )?starting as process \d+"), ()),
    (RECOVERY_START, re.compile(r"Starting crash recovery from checkpoint LSN=" + _N), ("checkpoint_lsn",)),
    (RECOVERY_START, re.compile(r"^Starting crash recovery\.?$"), ()),
    (CRASHED, re.compile(r"Database was not shut ?down normally"), ()),
    (CHECKPOINT, re.compile(r"The latest found checkpoint is at lsn = " + _N), ("checkpoint_lsn",)),
    (CHECKPOINT, re.compile(r"Log scan progressed past the checkpoint lsn " + _N), ("checkpoint_lsn",)),
    (CHECKPOINT, re.compile(r"Starting to parse redo log at lsn = \d+, whereas checkpoint_lsn = " + _N), ("checkpoint_lsn",)),
    (SCANNED, re.compile(r"Doing recovery: scanned up to log sequence number " + _N), ("lsn",)),
    (SCANNED, re.compile(r"Read redo log up to LSN=" + _N), ("lsn",)),
    (SCANNED, re.compile(r"Multi-batch recovery needed at LSN " + _N), ("lsn",)),
    (SCANNED, re.compile(r"Parsed redo log up to LSN=" + _N + r"; to recover: " + _N + " pages"), ("lsn", "pages")),
    (END_OF_LOG, re.compile(r"End of log at LSN=" + _N), ("lsn",)),
    (REDO_PROGRESS, re.compile(r"To recover: LSN " + _N + "/" + _N + "; " + _N + " pages"), ("lsn", "end_lsn", "pages")),
    (REDO_BATCH, re.compile(r"To recover: " + _N + " pages"), ("pages",)),
    (REDO_BATCH, re.compile(r"Starting (?:a|final) batch to recover " + _N + " pages"), ("pages",)),
    (REDO_BATCH, re.compile(r"Applying a batch of " + _N + " redo log records"), ("records",)),
    (REDO_BATCH, re.compile(r"Starting an apply batch of log records"), ()),
    (REDO_PROGRESS, re.compile(r"Progress in percents?:((?:\s+\d{1,3})+)\s*$"), ("percent_list",)),
    (REDO_PROGRESS, re.compile(r"^((?:\d{1,3}%\s*)+)$"), ("percent_list",)),
    (REDO_DONE, re.compile(r"Apply batch completed"), ()),
    (UNDO_FOUND, re.compile(_N + r" transaction\(s\) which must be rolled back or cleaned up in total " + _N + r"\S* row"),
     ("transactions", "rows")),
    (PREPARED, re.compile(_N + r" transactions? in prepared state after recovery"), ("transactions",)),
    (PREPARED, re.compile(r"Transaction " + _N + r" was in the XA prepared state"), ("trx_id",)),
    (UNDO_START, re.compile(r"Starting in background the rollback"), ()),
    (UNDO_START, re.compile(r"Starting rollback of (?:uncommitted|incomplete|recovered) transactions"), ()),
    (UNDO_TRX, re.compile(r"Rolling back trx with id " + _N + ", " + _N + " rows to undo"), ("trx_id", "rows")),
    (UNDO_TRX_DONE, re.compile(r"Rolled back recovered transaction " + _N), ("trx_id",)),
    (UNDO_TRX_DONE, re.compile(r"Rollback of trx with id " + _N + " completed"), ("trx_id",)),
    (UNDO_DONE, re.compile(r"Rollback of non-prepared transactions completed|Rollback of (?:incomplete|uncommitted) transactions completed"), ()),
    (INNODB_STARTED, re.compile(r"^(?:\S+ started; )?log sequence number " + _N + r"(?:;|\.?$)"), ("lsn",)),
    (READY, re.compile(r"ready for connections"), ()),
    (SHUTDOWN, re.compile(r"Shutdown complete"), ()),
    (FORCE_RECOVERY, re.compile(r"innodb_force_recovery is set to " + _N), ("level",)),
    (HINT, re.compile(r"(?:Set|set) innodb_force_recovery\s*=\s*\d|for information about forcing recovery"), ()),
]


@dataclass(frozen=True)
class Event:
    """What one log line means for a recovery."""

    kind: str
    line: LogLine
    values: dict[str, int] = field(default_factory=dict)
    fatal: Fatal | None = None

    @property
    def ts(self) -> datetime | None:
        return self.line.ts


def classify(line: LogLine) -> Event | None:
    """The event of one line, or None when the line says nothing about recovery."""
    text = line.text
    if not text:
        return None
    fatal = match_fatal(text, line.level)
    if fatal is not None:
        return Event(FATAL, line, fatal=fatal)
    for kind, pattern, names in _PATTERNS:
        m = pattern.search(text)
        if m is None:
            continue
        values: dict[str, int] = {}
        for name, group in zip(names, m.groups()):
            if name == "percent_list":
                numbers = re.findall(r"\d+", group)
                values["percent"] = int(numbers[-1])
            else:
                values[name] = int(group)
        return Event(kind, line, values)
    return None


def parse_text(text: str) -> Iterator[Event]:
    """Every recovery event of a log text, in order. Lines without a time take the last one seen."""
    last_ts: datetime | None = None
    for raw in split_entries(text):
        line = parse_line(raw)
        if line.ts is None and last_ts is not None:
            line = LogLine(raw=line.raw, text=line.text, ts=last_ts, level=line.level, code=line.code, innodb=line.innodb)
        last_ts = line.ts or last_ts
        event = classify(line)
        if event is not None:
            yield event


def last_start(text: str) -> int:
    """Offset in ``text`` of the line where the server last started (0 when none is in it)."""
    offset = 0
    pos = 0
    for line in text.splitlines(keepends=True):
        for part in _EMBEDDED.split(line):
            event = classify(parse_line(part)) if part.strip() else None
            if event is not None and event.kind == START:
                offset = pos
            pos += len(part)
    return offset


# ---------------------------------------------------------------------------- state

PHASES = ("analysis", "redo", "undo")


@dataclass
class Phase:
    """One phase of crash recovery as the log dates it (server time)."""

    name: str
    started: datetime | None
    ended: datetime | None = None

    @property
    def seconds(self) -> float | None:
        if self.started is None or self.ended is None:
            return None
        return max(0.0, (self.ended - self.started).total_seconds())

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "started": self.started.isoformat() if self.started else None,
                "ended": self.ended.isoformat() if self.ended else None, "seconds": self.seconds}


@dataclass
class RecoveryState:
    """The fold of a run's events: what phase recovery is in, its LSNs, and how it ended."""

    started: datetime | None = None
    crashed: bool = False
    checkpoint_lsn: int | None = None
    scanned_lsn: int | None = None
    end_lsn: int | None = None
    applied_lsn: int | None = None
    redo_percent: int | None = None
    pages_to_recover: int | None = None
    transactions_to_roll_back: int | None = None
    rows_to_undo: int | None = None
    rolled_back: list[int] = field(default_factory=list)
    prepared: int = 0
    undo_done: bool = False
    innodb_lsn: int | None = None
    ready: bool = False
    ready_at: datetime | None = None
    shutdown: bool = False
    force_recovery: int | None = None
    fatal: Event | None = None  # the first fatal line: the cause
    aborted: Event | None = None  # the line where start-up gave up
    hints: list[str] = field(default_factory=list)
    phases: dict[str, Phase] = field(default_factory=dict)
    last_ts: datetime | None = None
    events: int = 0

    # -- folding --------------------------------------------------------------------------
    def feed_all(self, events: Iterable[Event]) -> RecoveryState:
        for e in events:
            self.feed(e)
        return self

    def feed(self, e: Event) -> None:
        if e.kind == START:
            self.__init__()  # type: ignore[misc]  # a new server process: a new story
            self.started = e.ts
            self.last_ts = e.ts
            return
        self.events += 1
        self.last_ts = e.ts or self.last_ts
        v = e.values
        handler = getattr(self, "_on_" + e.kind, None)
        if handler is not None:
            handler(e, v)

    def _open(self, name: str, ts: datetime | None) -> None:
        for earlier in PHASES[: PHASES.index(name)]:
            self._close(earlier, ts)
        if name not in self.phases:
            self.phases[name] = Phase(name, ts)

    def _close(self, name: str, ts: datetime | None) -> None:
        p = self.phases.get(name)
        if p is not None and p.ended is None:
            p.ended = ts

    def _on_recovery_start(self, e: Event, v: dict[str, int]) -> None:
        self.crashed = True
        if "checkpoint_lsn" in v:
            self.checkpoint_lsn = v["checkpoint_lsn"]
        self._open("analysis", e.ts)

    def _on_crashed(self, e: Event, v: dict[str, int]) -> None:
        self.crashed = True
        self._open("analysis", e.ts)

    def _on_checkpoint(self, e: Event, v: dict[str, int]) -> None:
        self.checkpoint_lsn = v["checkpoint_lsn"]

    def _on_scanned(self, e: Event, v: dict[str, int]) -> None:
        self.scanned_lsn = max(self.scanned_lsn or 0, v["lsn"])
        if "pages" in v:
            self.pages_to_recover = v["pages"]

    def _on_end_of_log(self, e: Event, v: dict[str, int]) -> None:
        self.scanned_lsn = self.end_lsn = v["lsn"]

    def _redo(self, e: Event) -> None:
        if self.crashed and "redo" not in self.phases:
            self._open("redo", e.ts)

    def _on_redo_batch(self, e: Event, v: dict[str, int]) -> None:
        self._redo(e)
        if "pages" in v:
            self.pages_to_recover = v["pages"]
        if "pages" not in v:
            self.redo_percent = 0  # MySQL counts each batch from 0 %

    def _on_redo_progress(self, e: Event, v: dict[str, int]) -> None:
        self._redo(e)
        if "percent" in v:
            self.redo_percent = v["percent"]
        if "lsn" in v:
            self.applied_lsn = v["lsn"]
            self.end_lsn = v["end_lsn"]
            self.pages_to_recover = v["pages"]

    def _on_redo_done(self, e: Event, v: dict[str, int]) -> None:
        self._redo(e)
        self.redo_percent = 100
        self._close("redo", e.ts)

    def _on_undo_found(self, e: Event, v: dict[str, int]) -> None:
        self.crashed = True
        self.transactions_to_roll_back = v["transactions"]
        self.rows_to_undo = v["rows"]

    def _on_prepared(self, e: Event, v: dict[str, int]) -> None:
        self.prepared = v.get("transactions", self.prepared + 1)

    def _on_undo_start(self, e: Event, v: dict[str, int]) -> None:
        self._close("analysis", e.ts)
        self._close("redo", e.ts)
        self._open("undo", e.ts)

    def _on_undo_trx(self, e: Event, v: dict[str, int]) -> None:
        if "undo" not in self.phases:
            self._open("undo", e.ts)

    def _on_undo_trx_done(self, e: Event, v: dict[str, int]) -> None:
        self.rolled_back.append(v["trx_id"])

    def _on_undo_done(self, e: Event, v: dict[str, int]) -> None:
        if "undo" not in self.phases:
            self._open("undo", e.ts)
        self.undo_done = True
        self._close("undo", e.ts)

    def _on_innodb_started(self, e: Event, v: dict[str, int]) -> None:
        self.innodb_lsn = v["lsn"]
        self._close("analysis", e.ts)
        self._close("redo", e.ts)

    def _on_ready(self, e: Event, v: dict[str, int]) -> None:
        self.ready, self.ready_at = True, e.ts
        self._close("analysis", e.ts)
        self._close("redo", e.ts)

    def _on_shutdown(self, e: Event, v: dict[str, int]) -> None:
        self.shutdown, self.ready = True, False

    def _on_force_recovery(self, e: Event, v: dict[str, int]) -> None:
        self.force_recovery = v["level"]

    def _on_hint(self, e: Event, v: dict[str, int]) -> None:
        if e.line.text not in self.hints:
            self.hints.append(e.line.text)

    def _on_fatal(self, e: Event, v: dict[str, int]) -> None:
        assert e.fatal is not None
        if e.fatal.terminal:
            self.aborted = self.aborted or e
        if self.fatal is None or (self.fatal.fatal is not None and self.fatal.fatal.terminal and not e.fatal.terminal):
            self.fatal = e  # the first specific cause wins over a generic "aborted"

    # -- reading --------------------------------------------------------------------------
    @property
    def failed(self) -> bool:
        return self.fatal is not None

    @property
    def rollback_pending(self) -> bool:
        """Recovered transactions may still be rolling back in the background."""
        if self.undo_done:
            return False
        todo = (self.transactions_to_roll_back or 0) - self.prepared
        return todo > 0 and len(self.rolled_back) < todo

    @property
    def phase(self) -> str:
        if self.fatal is not None:
            return "failed"
        if self.shutdown:
            return "stopped"
        if self.ready and not self.rollback_pending:
            return "ready"
        open_ = [p.name for p in self.phases.values() if p.ended is None]
        if open_:
            return open_[-1]
        if self.ready:
            return "undo"
        return "starting"

    def fraction(self, phase: str) -> float | None:
        """How far a phase is, 0..1, when the log says enough to tell."""
        if phase == "redo":
            if self.applied_lsn is not None and self.end_lsn and self.checkpoint_lsn is not None and self.end_lsn > self.checkpoint_lsn:
                return min(1.0, max(0.0, (self.applied_lsn - self.checkpoint_lsn) / (self.end_lsn - self.checkpoint_lsn)))
            if self.redo_percent is not None:
                return self.redo_percent / 100
        if phase == "undo" and self.transactions_to_roll_back:
            return min(1.0, len(self.rolled_back) / self.transactions_to_roll_back)
        return None

    @property
    def recovered_to_lsn(self) -> int | None:
        """The LSN redo reached: the end of the log once scanned, else the furthest applied."""
        return self.innodb_lsn or self.end_lsn or self.applied_lsn or self.scanned_lsn

    def phase_list(self) -> list[dict[str, Any]]:
        return [p.as_dict() for p in self.phases.values()]
