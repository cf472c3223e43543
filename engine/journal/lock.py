"""One live process per run, and never two live runs on the same host.

```python
with RunLock(journal_dir(None), run_id, ["db1", "db2"]):
    ...   # play, resume or rollback the run
```

``flock`` rather than a pid file: the kernel drops the lock when the process dies however it
dies (``kill -9``, OOM, power loss), so a stale lock file never blocks a resume and no one is
ever told to delete one by hand. The file keeps who holds it (pid, control host, target
hosts) as JSON, for the message and for the host check; its content only counts while its
``flock`` is held. Each target host also gets a flock in the machine-wide host lock dir
(:func:`host_lock_dir`), so runs kept in different journal dirs cannot change one host at once. Locks are per open file description, so the descriptor stays open for as
long as the lock is held. ``flock`` is local to one machine: runs started from two control
hosts on a shared (NFS) journal dir are not seen by each other.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import socket
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from engine.errors import InputError, JournalError, RunLocked
from engine.journal.layout import LOCK_FILE, check_run_id, ensure_run_dir, now, state_dir

# Another process probing our lock file (the host check, `runbook runs`) holds a shared lock
# on it for a few microseconds; retrying this long keeps that from passing for a live run.
_ACQUIRE_PATIENCE = 0.25


class RunLock:
    """Exclusive lock on ``<dir>/<run_id>/lock``, plus a check that no other live run in the
    same journal dir targets any of ``hosts``. Raises :class:`RunLocked` otherwise."""

    def __init__(self, dir: Path, run_id: str, hosts: Iterable[str]):
        check_run_id(run_id)
        self.dir = Path(dir)
        self.run_id = run_id
        self.hosts = sorted(set(hosts))
        self.path = self.dir / run_id / LOCK_FILE
        self._fd: int | None = None
        self._host_fds: list[int] = []

    def acquire(self) -> None:
        """Take the lock or raise :class:`RunLocked`; never waits for another run."""
        if self._fd is not None:
            return
        ensure_run_dir(self.dir, self.run_id)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise JournalError(f"cannot open the lock file {self.path}: {exc.strerror}") from exc
        try:
            os.fchmod(fd, 0o600)
            if not _flock_nb(fd, fcntl.LOCK_EX, patience=_ACQUIRE_PATIENCE):
                holder = _read_info(fd)
                raise RunLocked(
                    f"run {self.run_id} is already running in process {holder.get('pid', '?')} "
                    f"on {holder.get('host', '?')}",
                    hint="wait for it to end or stop it; a lock of a dead process frees itself",
                )
            # Write our hosts *before* looking at the other runs: of two runs starting at the
            # same instant, at least the later one then sees the other's hosts and stops.
            info = {
                "run_id": self.run_id,
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "hosts": self.hosts,
                "since": now(),
            }
            data = json.dumps(info).encode()
            os.ftruncate(fd, 0)
            os.pwrite(fd, data, 0)
            self._fd = fd
            self._check_other_runs()
            self._lock_hosts()
        except BaseException:
            self._release_hosts()
            self._fd = None
            os.close(fd)  # closing the descriptor drops the flock too
            raise

    def _lock_hosts(self) -> None:
        """One flock per target host in the machine-wide host lock dir: another journal dir
        (another ``--journal-dir``, another ``$RUNBOOK_HOME``) is no way around it."""
        if not self.hosts:
            return
        root = host_lock_dir()
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise JournalError(f"cannot create the host lock dir {root}: {exc.strerror}",
                               hint="set $RUNBOOK_LOCK_DIR to a writable directory") from exc
        info = json.dumps({"run_id": self.run_id, "pid": os.getpid(), "host": socket.gethostname(),
                           "journal": str(self.dir.resolve()), "since": now()}).encode()
        for name in self.hosts:
            path = root / (hashlib.sha1(name.encode()).hexdigest()[:16] + ".lock")
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
            except OSError as exc:
                raise JournalError(f"cannot open the host lock {path}: {exc.strerror}") from exc
            if not _flock_nb(fd, fcntl.LOCK_EX, patience=_ACQUIRE_PATIENCE):
                holder = _read_info(fd)
                os.close(fd)
                raise RunLocked(
                    f"run {holder.get('run_id', '?')} (process {holder.get('pid', '?')}, journal dir "
                    f"{holder.get('journal', '?')}) is running against {name}",
                    hint="two runs must not change the same host at once: wait for it, or --limit to other hosts")
            os.ftruncate(fd, 0)
            os.pwrite(fd, info, 0)
            self._host_fds.append(fd)

    def _release_hosts(self) -> None:
        for fd in self._host_fds:
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)
        self._host_fds = []

    def release(self) -> None:
        """Drop the lock. The file stays: unlinking a flock file races with its next user."""
        self._release_hosts()
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def _check_other_runs(self) -> None:
        if not self.hosts:
            return
        for entry in sorted(self.dir.iterdir()):
            if entry.name == self.run_id or entry.name.startswith("."):
                continue
            holder = lock_holder(self.dir, entry.name)
            if holder is None:
                continue
            common = sorted(set(self.hosts) & set(holder.get("hosts") or []))
            if common:
                raise RunLocked(
                    f"run {entry.name} (process {holder.get('pid', '?')} on {holder.get('host', '?')}) "
                    f"is running against {', '.join(common)}",
                    hint="two runs must not change the same host at once: wait for it, or --limit to other hosts",
                )

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"RunLock({self.run_id!r}, hosts={self.hosts}, held={self.held})"


def host_lock_dir() -> Path:
    """Where host locks live, one per control machine whatever the journal dir:
    ``$RUNBOOK_LOCK_DIR``, else ``/run/lock/runbook`` (shared by every user of the machine),
    else ``hostlocks`` in the user's state dir."""
    env = os.environ.get("RUNBOOK_LOCK_DIR")
    if env:
        return Path(env).expanduser()
    run_lock = Path("/run/lock")
    if run_lock.is_dir() and os.access(run_lock, os.W_OK):
        return run_lock / "runbook"
    return state_dir() / "hostlocks"


def lock_holder(dir: Path, run_id: str) -> dict[str, Any] | None:
    """Who holds the lock of a run (pid, host, hosts), or None when no live process does.

    Tested with a non-blocking *shared* lock: it fails only while a live process holds the
    exclusive one; the file left behind by a dead process is ignored.
    """
    try:
        check_run_id(run_id)
        fd = os.open(Path(dir) / run_id / LOCK_FILE, os.O_RDONLY | os.O_CLOEXEC)
    except (OSError, InputError):  # no lock file, unreadable, or not a run id
        return None
    try:
        if _flock_nb(fd, fcntl.LOCK_SH):
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        # Live. Its content may be empty for a few microseconds (being written): that run will
        # in turn see ours, so an unknown host list is not a conflict here.
        return _read_info(fd)
    finally:
        os.close(fd)


def _flock_nb(fd: int, op: int, patience: float = 0.0) -> bool:
    """Try ``flock(op | LOCK_NB)``, retrying for ``patience`` seconds. True when taken."""
    deadline = time.monotonic() + patience
    while True:
        try:
            fcntl.flock(fd, op | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)


def _read_info(fd: int) -> dict[str, Any]:
    try:
        info = json.loads(os.pread(fd, 65536, 0) or b"{}")
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}
