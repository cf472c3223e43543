"""Where a run's journal lives: the journal dir, run ids, the run directory and file names.

Shared by the writer (store), the reader (analysis) and the lock, so none of them needs another.
"""

from __future__ import annotations

import os
import re
import time
from datetime import UTC, datetime
from pathlib import Path

from engine.errors import InputError, JournalError

#: Format of the records; a journal written by a newer engine is refused, not misread.
VERSION = 1
JOURNAL_FILE = "journal.jsonl"
LOCK_FILE = "lock"


# A run id becomes a directory name and comes from the command line (`runbook resume ID`):
# one plain path component, so "../x" can never escape the journal dir.
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def new_run_id() -> str:
    """A sortable, readable run id: UTC start time plus 4 hex digits, e.g. ``20261122-031502-7f3a``."""
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S") + "-" + os.urandom(2).hex()


def journal_dir(option: str | os.PathLike[str] | None) -> Path:
    """The journal dir (SPEC §1): ``--journal-dir``, else ``$RUNBOOK_HOME``, else the user's
    state directory ``$XDG_STATE_HOME/runbook`` (``~/.local/state/runbook``), so ``runs`` and
    ``resume`` work from any directory."""
    if option:
        return Path(option).expanduser()
    env = os.environ.get("RUNBOOK_HOME")
    if env:
        return Path(env).expanduser()
    return state_dir()


def state_dir() -> Path:
    """``$XDG_STATE_HOME/runbook``, else ``~/.local/state/runbook``: the user's own state."""
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg).expanduser() if xdg and os.path.isabs(os.path.expanduser(xdg)) else Path.home() / ".local" / "state"
    return base / "runbook"


def journal_flag(jdir: str | os.PathLike[str] | None) -> str:
    """`` --journal-dir DIR`` for a command printed to the operator, or "" when ``jdir`` is
    the default (typed as shown, the command must find the run)."""
    import shlex

    if jdir is None:
        return ""
    try:
        same = Path(jdir).resolve() == journal_dir(None).resolve()
    except OSError:
        same = False
    return "" if same else f" --journal-dir {shlex.quote(str(Path(jdir).resolve()))}"


def check_run_id(run_id: str) -> None:
    """Refuse a run id that is not one plain path component."""
    if not isinstance(run_id, str) or not _RUN_ID.match(run_id):
        raise InputError(
            f"invalid run id {run_id!r}",
            hint="a run id looks like 20261122-031502-7f3a; `runbook runs` lists them",
        )


def run_path(dir: Path, run_id: str) -> Path:
    """``<dir>/<run_id>/journal.jsonl``, after checking the run id."""
    check_run_id(run_id)
    return Path(dir) / run_id / JOURNAL_FILE


def ensure_run_dir(dir: Path, run_id: str) -> Path:
    """Make ``<dir>/<run_id>/`` (mode 0700 whatever the umask) if it does not exist yet.

    Both :meth:`Journal.create` and :class:`RunLock` call this, so either may come first.
    """
    check_run_id(run_id)
    root = Path(dir)
    run_dir = root / run_id
    try:
        if not root.is_dir():
            root.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(root, 0o700)  # mkdir's mode is filtered by the umask
        try:
            os.mkdir(run_dir, 0o700)
        except FileExistsError:
            return run_dir
        os.chmod(run_dir, 0o700)
        _fsync_dir(root)  # the run dir entry itself must survive a crash
    except OSError as exc:
        raise JournalError(
            f"cannot create the run directory {run_dir}: {exc.strerror}",
            hint="check that --journal-dir / $RUNBOOK_HOME points to a writable directory",
        ) from exc
    return run_dir


_SECOND: tuple[int, str] = (-1, "")  # the whole second last formatted, and its text


def now() -> str:
    """The journal's timestamp: ISO 8601, UTC, microseconds, as
    ``datetime.now(UTC).isoformat(timespec="microseconds")`` writes it. The date and time of
    the second are formatted once per second (``isoformat`` costs more than the rest of a
    record's framing, and every step writes two records)."""
    global _SECOND
    sec, us = divmod(time.time_ns() // 1000, 1_000_000)
    known = _SECOND  # one tuple, replaced whole: a thread never pairs a second with another's text
    if known[0] != sec:
        known = (sec, datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%dT%H:%M:%S"))
        _SECOND = known
    return f"{known[1]}.{us:06d}+00:00"


def _fsync_dir(path: Path) -> None:
    """Make a new directory entry durable (a synced file is lost if its name is not)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError:  # some filesystems refuse fsync on a directory; the data itself is synced
        pass
    finally:
        os.close(fd)
