"""Error-log lines that end an InnoDB crash recovery, each with a diagnosis and a next step.

A DBA reading "Page [page id: space=6, page number=0] log sequence number 984866840 is in the
future!" at 3 a.m. needs to know what it means (the redo log is not this datadir's) and what
to do next (put the right one back; never delete the redo log to make the error go away).
The patterns cover MariaDB 10.x/11.x and MySQL 5.7/8.x/9.x wordings.

```python
fatal = match_fatal("Tablespace 6 was not found at ./t/u.ibd.", "ERROR")
print(fatal.title, fatal.diagnosis, fatal.next_step)
```
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Fatal:
    """A kind of fatal start-up problem."""

    kind: str
    title: str
    diagnosis: str
    next_step: str
    terminal: bool = False  # the generic "start-up aborted" line, not a cause of its own


_KEEP = "first copy the whole datadir and the error log aside (never delete ib_logfile*/#innodb_redo to 'fix' it)"

_FATALS: list[tuple[re.Pattern[str], Fatal]] = [
    (re.compile(r"Tablespace \d+ was not found at|Tablespace .* (?:is missing|was not found)|"
                r"Could not find a valid tablespace file for|Failed to find tablespace for table|"
                r"Recovery cannot access file"),
     Fatal("missing_tablespace", "missing tablespace file",
           "the redo log holds changes for a tablespace (.ibd) file that is not where the data dictionary says",
           "put the .ibd file back (from where it was moved, or restore it from a backup) and start again; "
           "innodb_force_recovery=1 starts without it but loses every change to that table")),
    (re.compile(r"log sequence number \d+ (?:\d+ )?is in the future|^is in the future! Current system log sequence"),
     Fatal("lsn_in_future", "log sequence number in the future",
           "data pages are newer than the redo log: the redo log files do not belong to these data files "
           "(data copied without its redo log, an old log put back, or a restore that mixed two copies)",
           f"{_KEEP}; put back the redo log files that belong to this datadir; if they are lost, restore from a "
           "backup (innodb_force_recovery only to dump what is readable)")),
    (re.compile(r"File \S*ib_logfile\d* was not found|Missing redo log file|Neither found #innodb_redo|"
                r"Cannot create redo log files because data files are corrupt"),
     Fatal("missing_redo_log", "missing redo log file",
           "a redo log file is missing: the changes made since the last checkpoint cannot be replayed",
           "put the redo log files back (ib_logfile0, or every #innodb_redo/#ib_redo* file) from where they "
           "went; without them the data files are inconsistent: restore from a backup")),
    (re.compile(r"The log was only scanned up to \d+, while the current LSN at the time of the latest checkpoint|"
                r"Malformed log record|Crash recovery was broken|Missing FILE_CHECKPOINT|[Ll]og block checksum mismatch|"
                r"redo log (?:is )?corrupt|Corrupted page identifier|No valid checkpoint|"
                r"Crash recovery is broken due to insufficient innodb_log_file_size|"
                r"Missing FILE_CREATE, FILE_DELETE or FILE_MODIFY|Missing FILE_DELETE or FILE_MODIFY|"
                r"Log scan aborted at LSN|Redo log .* (?:is|was) (?:truncated|corrupted)|Invalid log header checksum"),
     Fatal("redo_log_corrupt", "redo log damaged",
           "the redo log is damaged or truncated: recovery cannot replay it up to the last checkpoint",
           f"{_KEEP}; restore from a backup (plus binary logs for point in time), or start with "
           "innodb_force_recovery (6 skips the redo log) only to dump the data")),
    (re.compile(r"Database page corruption|Unable to apply log to corrupted page|The first page of file .* is corrupted|"
                r"[Cc]hecksum mismatch in (?:datafile|tablespace)|Apparent corruption|Page .* may be corrupted|"
                r"is corrupted\.?$"),
     Fatal("page_corrupt", "corrupt data page",
           "a data page is corrupt (torn write, disk or file system fault): recovery cannot apply the redo log to it",
           f"{_KEEP}; check the disk (dmesg, SMART); restore the table or the server from a backup; "
           "innodb_force_recovery=1 only to dump the readable rows")),
    (re.compile(r"[Cc]annot allocate memory for the buffer pool|mmap\(\d+ bytes\) failed|[Oo]ut of memory"),
     Fatal("out_of_memory", "out of memory",
           "the server could not allocate its memory (buffer pool) at start-up",
           "lower innodb_buffer_pool_size or free memory on the host, then start again")),
    (re.compile(r"No space left on device|OS error(?: number)?:? 28\b|[Ee]rrcode: 28\b|errno 28\b|ran out of space"),
     Fatal("disk_full", "disk full",
           "the file system of the datadir, the redo log or tmpdir is full",
           "free space on that file system (not by deleting ib_logfile*, ibdata*, undo or .ibd files), then start again")),
    (re.compile(r"Unable to lock \S+,? error: 11|Check that you do not already have another mysqld process"),
     Fatal("datadir_locked", "datadir in use",
           "another server process already holds this datadir's files",
           "stop the other mysqld/mariadbd that uses this datadir (ps, systemctl status), then start again")),
    (re.compile(r"Can't start server: Bind on TCP/IP port|Do you already have another (?:mysqld|server) server running on port"),
     Fatal("port_in_use", "port in use",
           "the server's port is taken by another process",
           "stop the process that listens on the port (ss -ltnp), or start the server on another port")),
    (re.compile(r"got signal \d+|Assertion failure|Failing assertion|^\[FATAL\]|InnoDB: Fatal error"),
     Fatal("crashed_during_recovery", "crashed during recovery",
           "the server crashed while recovering (signal or assertion)",
           f"{_KEEP}; try innodb_force_recovery=1 (then higher) only to dump the data; keep the stack trace for a bug report")),
    (re.compile(r"Plugin initialization aborted|registration as a STORAGE ENGINE failed|Plugin 'InnoDB' init function returned error|"
                r"^Aborting$|Data Dictionary initialization failed|Failed to initialize DD Storage Engine|"
                r"Unknown/unsupported storage engine: InnoDB"),
     Fatal("startup_aborted", "start-up aborted",
           "InnoDB failed to start and the server gave up; the error lines above it say why",
           "read the first [ERROR] line of this start in the error log; fix that cause, then start again",
           terminal=True)),
]

#: levels a fatal line can have; a Note or Warning that mentions corruption is not fatal
_FATAL_LEVELS = frozenset({None, "ERROR", "Error", "FATAL", "Fatal", "System"})


def match_fatal(text: str, level: str | None) -> Fatal | None:
    """The fatal kind of a message, or None. ``level`` is the bracketed level of the line."""
    if level not in _FATAL_LEVELS and not text.startswith("Error:"):
        return None
    if level is None and not (text.startswith("Error") or "Aborting" in text or "got signal" in text
                              or "is in the future" in text or "Assertion failure" in text):
        return None  # a header-less line (a continuation) is fatal only when it says so itself
    for pattern, fatal in _FATALS:
        if pattern.search(text):
            return fatal
    return None
