"""Writing the journal: one synced JSON line per record, appended, never rewritten.

```python
journal = Journal.create(journal_dir(None), new_run_id(), header)
seq = journal.intent("stage/step", "db1", digest, attempt=1)
...                                     # the side effect
journal.outcome(seq, "stage/step", "db1", "changed", changed=True, registered=reg, duration=1.2)
journal.close()
```
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from engine.errors import JournalError
from engine.journal.layout import JOURNAL_FILE, VERSION, _fsync_dir, ensure_run_dir, now
from engine.journal.analysis import read_journal
from engine.journal.encoding import encode, encode_header
from engine.model import Status

PHASES = ("do", "undo")
#: header keys the engine made from file names and ids: never masked (see encode_header)
HEADER_VERBATIM = frozenset({"run_id", "runbook", "files", "inventories", "vars_files", "cwd", "hosts"})


class JournalAborting(JournalError):
    """The run is being aborted (the operator's second Ctrl-C): no new step may start."""


# fdatasync skips the inode metadata flush that fsync does (mtime), which is all we can spare;
# the file size *is* synced by it, which is what an append needs. macOS has no fdatasync.
_fdatasync: Callable[[int], None] = getattr(os, "fdatasync", os.fsync)
# "unknown": the side effect was attempted and its fate is unknown (analysis: in doubt)
_STATUSES = frozenset(s.value for s in Status) | {"unknown"}


# --------------------------------------------------------------------------- the writer


# Fault injection for the crash tests: die by SIGKILL right after record number N is written
# (and synced, when it is synced), exactly as a power cut or `kill -9` at that boundary would.
_CRASH_AT: int | None = int(os.environ["RUNBOOK_FAULT_KILL_AT_SEQ"]) if os.environ.get("RUNBOOK_FAULT_KILL_AT_SEQ", "").isdigit() else None


# Fault injection for the interrupt tests: every fdatasync takes this many seconds more (a
# slow or overloaded disk), so that a Ctrl-C lands while threads wait in it.
_SLOW_SYNC: float = float(os.environ.get("RUNBOOK_FAULT_SLOW_SYNC_S") or 0)

# And between a side effect and its outcome: die right *before* the outcome record of step
# KEY (``stage/step``; ``undo:stage/step`` for its undo) is written — the side effect happened,
# the journal does not know it (a kill -9 between apply and outcome).
_CRASH_BEFORE_OUTCOME: str | None = os.environ.get("RUNBOOK_FAULT_KILL_BEFORE_OUTCOME") or None


def _crash(seq: int) -> None:
    import signal

    os.kill(os.getpid(), signal.SIGKILL)


class Journal:
    """The append-only journal of one run. Thread-safe: hosts run in parallel threads.

    Every record is written with one ``os.write`` on an ``O_APPEND`` descriptor before the
    call returns, so it survives a crash or SIGKILL of the process. Intents and events are
    also synced with ``fdatasync`` before the call returns: an intent must be on stable
    storage before its side effect starts (write-ahead). An outcome is made durable by the
    next sync — the next step's intent, the next event, or ``close()`` — which always comes
    before any further side effect; after a power loss in between, the step reads as in
    doubt and resume re-probes it, which is the safe side. This halves the syncs per step. Threads that append at the same time share
    one sync (group commit, as InnoDB's log writer does): a thread whose line was already
    covered by another thread's sync returns without syncing again.

    Hold a :class:`RunLock` on the run while a journal is open for writing: one writer per
    run is what makes a torn tail the only possible damage.
    """

    def __init__(self, path: Path, run_id: str, fd: int, last_seq: int):
        """Use :meth:`create` or :meth:`open`."""
        self.path = path
        self.run_id = run_id
        self._fd: int | None = fd
        self._seq = last_seq
        self._size = os.fstat(fd).st_size
        self._synced = self._size
        self._lock = threading.Lock()  # seq + write: lines and seqs are in the same order
        self._sync_lock = threading.Lock()  # one fdatasync at a time; the others ride along
        self._broken: str | None = None
        self._aborting = False  # set by abort(): no intent is accepted, outcomes are dropped
        # intent seq -> (step, host, phase) of attempts without an outcome yet
        self._open_intents: dict[int, tuple[str, str, str]] = {}

    # -- opening -------------------------------------------------------------------------
    @classmethod
    def create(cls, dir: Path, run_id: str, header: dict[str, Any]) -> Journal:
        """Start the journal of a new run and write its synced header (seq 0)."""
        reserved = {"type", "seq", "ts", "run_id", "version"} & set(header)
        if reserved:
            raise ValueError(f"header keys reserved by the journal: {sorted(reserved)}")
        run_dir = ensure_run_dir(Path(dir), run_id)
        path = run_dir / JOURNAL_FILE
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o600)
        except FileExistsError:
            raise JournalError(
                f"run {run_id} already exists in {dir}",
                hint=f"resume it with `runbook resume {run_id}`, or start a new run",
            ) from None
        except OSError as exc:
            raise JournalError(f"cannot create the journal {path}: {exc.strerror}") from exc
        os.fchmod(fd, 0o600)  # the umask may have left it wider or narrower
        journal = cls(path, run_id, fd, last_seq=-1)
        try:
            journal._append("header", {"run_id": run_id, "version": VERSION, **header}, verbatim=HEADER_VERBATIM)
            _fsync_dir(run_dir)
        except BaseException:
            journal.close()
            raise
        return journal

    @classmethod
    def open(cls, dir: Path, run_id: str) -> Journal:
        """Reopen an existing run for appending (resume, rollback); seqs continue.

        A torn last line (the crash hit mid-write) is cut off first, so that the next record
        does not land after it; the fragment is kept in a ``torn_tail_discarded`` event.
        """
        state = read_journal(dir, run_id)
        try:
            fd = os.open(state.path, os.O_RDWR | os.O_APPEND | os.O_CLOEXEC)
        except OSError as exc:
            raise JournalError(f"cannot open the journal {state.path} for writing: {exc.strerror}") from exc
        try:
            size = os.fstat(fd).st_size
            fragment = os.pread(fd, size - state.valid_size, state.valid_size) if size > state.valid_size else b""
            if fragment:
                os.ftruncate(fd, state.valid_size)
            last = os.pread(fd, 1, state.valid_size - 1) if state.valid_size else b"\n"
            if last != b"\n":  # a complete record whose newline never made it to disk
                os.write(fd, b"\n")
            if fragment or last != b"\n":
                _fdatasync(fd)
        except OSError as exc:
            os.close(fd)
            raise JournalError(f"cannot repair the tail of {state.path}: {exc.strerror}") from exc
        journal = cls(state.path, run_id, fd, last_seq=state.last_seq)
        journal._open_intents = {
            s.intent_seq: key for key, s in state.steps.items() if s.open_attempt
        }
        if fragment:
            text = fragment[:2048].decode("utf-8", "replace").replace("\x00", "")
            journal.event("torn_tail_discarded", bytes=len(fragment), fragment=text)
        return journal

    # -- records -------------------------------------------------------------------------
    def intent(
        self,
        step_key: str,
        host: str,
        digest: str,
        attempt: int,
        phase: str = "do",
        extra: dict[str, Any] | None = None,
        durable: bool = True,
    ) -> int:
        """Before a side effect: "step on host is about to run". Returns the record's seq.

        ``durable=False`` for a step that changes nothing: the record is written but not
        waited for on the disk (the next synced record covers it); lost in a power cut, the
        step simply runs again on resume."""
        _check_phase(phase)
        fields: dict[str, Any] = {"step": step_key, "host": host, "digest": digest, "attempt": attempt, "phase": phase}
        if extra:
            fields["extra"] = extra
        if self._aborting:
            raise JournalAborting("the run is being aborted: no new step starts")
        seq = self._append("intent", fields, opens=(step_key, host, phase), sync=durable)
        if self._aborting:  # aborted while this intent was being synced: its step must not start
            raise JournalAborting("the run is being aborted: no new step starts")
        return seq

    def outcome(
        self,
        intent_seq: int,
        step_key: str,
        host: str,
        status: str | Status,
        *,
        changed: bool,
        registered: dict[str, Any] | None,
        duration: float,
        msg: str = "",
        undo: object = None,
        phase: str = "do",
        evidence: str = "",
    ) -> int:
        """After a side effect: how the attempt opened by ``intent_seq`` ended."""
        _check_phase(phase)
        if _CRASH_BEFORE_OUTCOME is not None and (step_key if phase == "do" else f"{phase}:{step_key}") == _CRASH_BEFORE_OUTCOME:
            _crash(self._seq + 1)
        status = status.value if isinstance(status, Status) else status
        if status not in _STATUSES:
            raise ValueError(f"unknown step status {status!r}; expected one of {sorted(_STATUSES)}")
        fields: dict[str, Any] = {
            "intent": intent_seq,
            "step": step_key,
            "host": host,
            "phase": phase,
            "status": status,
            "changed": changed,
            "registered": registered,
            "duration": round(duration, 6),
            "msg": msg,
            "undo": undo,
            "evidence": evidence,
        }
        if self._aborting:
            # The operator aborted the run: whatever a step reports now is not trusted; its
            # intent stays without an outcome, in doubt, and resume re-probes it.
            return -1
        # An "unknown" outcome leaves its attempt open: resume's probe or the operator settles it.
        return self._append("outcome", fields, closes=(intent_seq, (step_key, host, phase)), sync=False,
                            keep_open=status == "unknown")

    def event(self, kind: str, **data: Any) -> int:
        """A run-level fact: run_start, run_end(status), stage_start, operator_decision, ..."""
        reserved = {"type", "seq", "ts"} & set(data)
        if reserved:
            raise ValueError(f"event fields reserved by the journal: {sorted(reserved)}")
        return self._append("event", {"kind": kind, **data})

    def abort(self) -> None:
        """The operator aborted the run: from now on no intent is written (its step must not
        start) and outcomes are dropped, so that every step still running stays in doubt.
        Events (the abort itself, run_end) are still written. Takes no lock: it is called
        while worker threads may hold them, in the middle of a write or a sync."""
        self._aborting = True

    @property
    def aborting(self) -> bool:
        return self._aborting

    @property
    def last_seq(self) -> int:
        """The seq of the last record written (0: only the header)."""
        return self._seq

    def close(self) -> None:
        """Sync what is not synced yet and close the file. Safe to call twice."""
        if self._fd is not None and self._synced < self._size and not self._broken:
            self._sync(self._size)
        with self._lock, self._sync_lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Journal({str(self.path)!r}, last_seq={self._seq})"

    # -- the write path ------------------------------------------------------------------
    def _append(
        self,
        kind: str,
        fields: dict[str, Any],
        opens: tuple[str, str, str] | None = None,
        closes: tuple[int, tuple[str, str, str]] | None = None,
        sync: bool = True,
        keep_open: bool = False,
        verbatim: frozenset[str] | None = None,
    ) -> int:
        # Masking and encoding the payload (possibly thousands of result rows) happens outside
        # the lock; only the seq and timestamp are spliced in under it, so that seqs, times
        # and the order of lines in the file always agree.
        payload = encode(fields) if verbatim is None else encode_header(fields, verbatim)
        body = "}" if payload == "{}" else "," + payload[1:]
        with self._lock:
            if self._fd is None:
                raise JournalError(f"the journal {self.path} is closed")
            if self._broken:
                raise JournalError(self._broken, hint=f"fix the cause, then `runbook resume {self.run_id}`")
            if closes is not None:
                intent_seq, key = closes
                if self._open_intents.get(intent_seq) != key:
                    raise ValueError(f"outcome for {key} names intent {intent_seq}, which is not its open attempt")
            seq = self._seq + 1
            line = f'{{"type":"{kind}","seq":{seq},"ts":"{now()}"{body}\n'
            # backslashreplace: a lone surrogate (undecodable output) must not lose the record
            self._write(line.encode("utf-8", "backslashreplace"))
            self._seq = seq
            if opens is not None:
                self._open_intents[seq] = opens
            if closes is not None and not keep_open:
                del self._open_intents[closes[0]]
            end = self._size
        if sync:
            self._sync(end)
        if _CRASH_AT is not None and seq == _CRASH_AT:
            _crash(seq)
        return seq

    def _write(self, data: bytes) -> None:
        """Append all of ``data``, or nothing: a half line in the middle would be corruption."""
        assert self._fd is not None
        start = self._size
        done = 0
        try:
            while done < len(data):  # a regular file may take less than asked (disk full)
                n = os.write(self._fd, data[done:])
                if n <= 0:
                    raise OSError(0, "write returned 0 bytes")
                done += n
        except OSError as exc:
            if done:
                try:
                    os.ftruncate(self._fd, start)
                except OSError:
                    self._broken = f"the journal {self.path} has a partial record that could not be removed"
            raise JournalError(
                f"cannot write the journal {self.path}: {exc.strerror}",
                hint="free disk space or fix the journal dir, then resume the run",
            ) from exc
        self._size = start + len(data)

    def _sync(self, end: int) -> None:
        """Return once bytes ``[0, end)`` are on stable storage."""
        with self._sync_lock:
            if self._synced >= end:  # another thread's fdatasync already covered this line
                return
            if self._fd is None:
                raise JournalError(f"the journal {self.path} was closed before its last record was synced")
            target = self._size  # everything written before this sync starts is covered by it
            try:
                if _SLOW_SYNC:
                    import time

                    time.sleep(_SLOW_SYNC)
                _fdatasync(self._fd)
            except OSError as exc:
                # After a failed fsync the kernel may have dropped the dirty pages and a retry
                # can "succeed" without writing them (the PostgreSQL fsyncgate lesson): nothing
                # written through this descriptor can be trusted any more.
                self._broken = f"syncing the journal {self.path} failed: {exc.strerror}"
                raise JournalError(self._broken, hint="check the disk; the run must be resumed") from exc
            self._synced = target


def _check_phase(phase: str) -> None:
    if phase not in PHASES:
        raise ValueError(f"phase must be one of {PHASES}, not {phase!r}")
