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

Lock files are opened as what they must be, never followed: ``O_NOFOLLOW`` (a symlink planted
at a lock path in a shared directory would otherwise make us truncate and overwrite the file
it points at), ``O_NONBLOCK`` (a FIFO would hang the open), then a plain file of ours with one
link, checked on the descriptor *before* anything is written to it. The host lock dir must be
ours or root's, and if others can write in it, ours and sticky: in a directory anyone can
write to without the sticky bit, anyone can replace a lock file and two runs then lock two
different files.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import socket
import stat
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
        fd = _open_lock_file(self.path)
        try:
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
            root.mkdir(mode=0o755, parents=True, exist_ok=True)
        except OSError as exc:
            raise JournalError(f"cannot create the host lock dir {root}: {exc.strerror}",
                               hint="set $RUNBOOK_LOCK_DIR to a writable directory") from exc
        _check_lock_dir(root)
        info = json.dumps({"run_id": self.run_id, "pid": os.getpid(), "host": socket.gethostname(),
                           "journal": str(self.dir.resolve()), "since": now()}).encode()
        for name in self.hosts:
            path = root / (hashlib.sha1(name.encode()).hexdigest()[:16] + ".lock")
            fd = _open_lock_file(path)
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
    ``$RUNBOOK_LOCK_DIR``, else ``/run/lock/runbook``, else ``hostlocks`` in the user's state
    dir. ``/run/lock/runbook`` belongs to whoever created it (0755): runs of that user (or
    root) share it; another user is refused there and names a lock dir of their own."""
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
        fd = os.open(Path(dir) / run_id / LOCK_FILE, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    except (OSError, InputError):  # no lock file, unreadable, a symlink, or not a run id
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
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


_REFUSE_HINT = "set $RUNBOOK_LOCK_DIR to a directory only you can write to (e.g. ~/.local/state/runbook/hostlocks)"


def _check_lock_dir(root: Path) -> None:
    """Refuse a host lock dir another user controls, or one where anyone can swap our files."""
    try:
        st = os.stat(root)
    except OSError as exc:
        raise JournalError(f"cannot use the host lock dir {root}: {exc.strerror}", hint=_REFUSE_HINT) from exc
    if not stat.S_ISDIR(st.st_mode):
        raise JournalError(f"the host lock dir {root} is not a directory", hint=_REFUSE_HINT)
    me = os.geteuid()
    if st.st_uid not in (me, 0):
        raise JournalError(f"refusing the host lock dir {root}: it is owned by uid {st.st_uid}, not by you or root",
                           hint=_REFUSE_HINT)
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not (st.st_mode & stat.S_ISVTX and st.st_uid == me):
        raise JournalError(f"refusing the host lock dir {root}: it is writable by others"
                           f" (mode {stat.S_IMODE(st.st_mode):04o}), who could replace the lock files",
                           hint=_REFUSE_HINT)


def _open_lock_file(path: Path) -> int:
    """Open (or create, 0600) a lock file without following a symlink or blocking on a FIFO,
    and make sure it is a plain file of ours with one link before anything writes to it."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise JournalError(f"refusing the lock file {path}: it is a symbolic link (someone may have planted it)",
                               hint=f"look at where it points, remove it, and run again; {_REFUSE_HINT}") from exc
        raise JournalError(f"cannot open the lock file {path}: {exc.strerror}") from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            kind = "a hard link to another file" if stat.S_ISREG(st.st_mode) else "a device, FIFO or socket"
            raise JournalError(f"refusing the lock file {path}: not a plain file ({kind})",
                               hint=f"remove it and run again; {_REFUSE_HINT}")
        if st.st_uid != os.geteuid():
            raise JournalError(f"refusing the lock file {path}: it is owned by uid {st.st_uid}",
                               hint=f"remove it and run again; {_REFUSE_HINT}")
        if stat.S_IMODE(st.st_mode) != 0o600:
            os.fchmod(fd, 0o600)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


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
