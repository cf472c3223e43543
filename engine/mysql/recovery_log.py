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
for event in parse_text(log_text_since_last_start):
    print(event.kind, event.values, event.fatal)     # folded by engine.mysql.recovery_state
```
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from engine.mysql.recovery_fatal import Fatal, match_fatal

__all__ = ["Event", "Fatal", "LogLine", "classify", "last_start", "parse_line", "parse_text"]

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


@functools.lru_cache(maxsize=1024)
def _ts(date: str, clock: str, fmt: str) -> datetime | None:
    """``2026-11-30`` / ``261130`` and ``4:41:11`` → datetime (cached: a log repeats its seconds)."""
    try:
        if fmt == "ymd":
            year, month, day = int(date[0:4]), int(date[5:7]), int(date[8:10])
        else:
            year, month, day = 2000 + int(date[0:2]), int(date[2:4]), int(date[4:6])
        hour, minute, second = (int(x) for x in clock.split(":"))
        return datetime(year, month, day, hour, minute, second)
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
        ts, level, body = _ts(m.group(1), m.group(2), "ymd"), m.group(3), m.group(4)
    elif (m := _MYSQL_TS.match(raw)) is not None:
        try:
            ts = datetime.fromisoformat(m.group(1))
        except ValueError:
            ts = None
        level, body = m.group(2), m.group(3)
    elif (m := _MARIADB_OLD_TS.match(raw)) is not None:
        ts, level, body = _ts(m.group(1), m.group(2), "yymmdd"), m.group(3), m.group(4)
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
        # Only a line with more brackets than its own header may hold a second entry
        # (MySQL 8's header has three: [Level] [MY-n] [Subsystem]).
        if line.count("[") >= (4 if line[10:11] == "T" else 2) and _EMBEDDED.search(line):
            yield from (part for part in _EMBEDDED.split(line) if part.strip())
        elif line.strip():
            yield line


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
    (READY, re.compile(r"^(?!X Plugin).*ready for connections"), ()),  # MySQL's X Plugin says it first
    (SHUTDOWN, re.compile(r"Shutdown complete"), ()),
    (FORCE_RECOVERY, re.compile(r"innodb_force_recovery is set to " + _N), ("level",)),
    (HINT, re.compile(r"(?:Set|set) innodb_force_recovery\s*=\s*\d|for information about forcing recovery"), ()),
]


#: every non-fatal pattern above contains one of these: a line with none of them is skipped
#: after a few substring tests instead of forty searches (most of a log is not about recovery)
_INTERESTING = ("as process", "crash recovery", "not shut", "checkpoint", "scanned up to", "redo log up to",
                "Multi-batch", "End of log", "To recover", "Progress in percent", "%", "batch", "must be rolled back",
                "prepared state", "ollback", "Rolling back", "Rolled back", "log sequence number",
                "ready for connections", "Shutdown complete", "force_recovery", "forcing recovery")


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
    if not any(key in text for key in _INTERESTING):
        return None
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
        if "as process" not in line:  # the only lines that can start a run
            pos += len(line)
            continue
        for part in _EMBEDDED.split(line):
            event = classify(parse_line(part)) if "as process" in part else None
            if event is not None and event.kind == START:
                offset = pos
            pos += len(part)
    return offset
