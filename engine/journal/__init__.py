"""The write-ahead journal of a run, modelled on InnoDB crash recovery.

Every side effect is bracketed by two synced records: an ``intent`` before the step touches a
host and an ``outcome`` after. After a crash, :func:`read_journal` is the *analysis* pass (which
steps are done, failed or in doubt); the executor does *redo* (skip what is done, re-probe what
is in doubt) and, on rollback, *undo* newest first from :meth:`JournalState.done_with_undo`.

Storage decision: JSON lines, one file per run, ``<journal_dir>/<run_id>/journal.jsonl``, next
to ``<journal_dir>/<run_id>/lock``.

* Append-only: a record is one ``os.write`` on an ``O_APPEND`` descriptor followed by
  ``fdatasync``; nothing already on disk is ever rewritten, so a crash can only damage the tail.
* A torn write is trivially detected: it is the last line, without its newline or not valid
  JSON. Analysis ignores it (``torn_tail``); :meth:`Journal.open` cuts it off before appending,
  keeping the fragment as an event for forensics. A bad line anywhere else is real corruption
  and is refused, never guessed around.
* Human-readable in an incident, at 3 a.m., with ``cat``, ``tail -f`` or ``jq`` and no tool of
  ours; it can be copied into a ticket as-is (secrets are masked before writing).
* No library, no schema migration, no server.

SQLite in WAL mode was considered and rejected: it would add its own locking semantics across
processes (and its own recovery) that we do not need, since a run has exactly one writer,
enforced by :class:`RunLock`, and its file is opaque to an operator without the sqlite3 shell.

```python
journal = Journal.create(journal_dir(None), new_run_id(), {"runbook": "emergency.yml"})
seq = journal.intent("restore/stop writes", "db1", digest, attempt=1)
journal.outcome(seq, "restore/stop writes", "db1", "changed", changed=True, registered={}, duration=0.4)
state = read_journal(journal_dir(None), journal.run_id)   # after a crash: analysis
```
"""

from __future__ import annotations

from engine.journal.analysis import JournalState, RunSummary, StepState, StepVerdict, list_runs, read_journal
from engine.journal.lock import RunLock, lock_holder
from engine.journal.layout import JOURNAL_FILE, LOCK_FILE, VERSION, journal_dir, new_run_id
from engine.journal.store import Journal

__all__ = [
    "JOURNAL_FILE",
    "LOCK_FILE",
    "VERSION",
    "Journal",
    "JournalState",
    "RunLock",
    "RunSummary",
    "StepState",
    "StepVerdict",
    "journal_dir",
    "list_runs",
    "lock_holder",
    "new_run_id",
    "read_journal",
]
