"""Bringing a dump file to where the restore reads it: a plain, local, seekable file.

* ``file_on: host`` reads the file over the host's connection (SFTP for an ssh host, the file
  itself for ``connection: local``); ``file_on: control`` reads it on the control machine.
* A ``.gz`` (by its magic bytes, not its name) is decompressed into a temporary file: the
  loader reads batches at their offsets, from several connections at once, which a gzip stream
  cannot do. Decompressing checks the CRC and the end-of-stream marker: a truncated or corrupt
  file is refused here, before anything is written.
"""

from __future__ import annotations

import gzip
import os
import tempfile
import zlib
from dataclasses import dataclass
from typing import Any

from engine.errors import ActionError, FileReadError
from engine.transport.local import LocalShell

GZIP_MAGIC = b"\x1f\x8b"
CHUNK = 1 << 20


@dataclass
class LocalDump:
    """The dump as a plain local file (``path``), and what it came from."""

    path: str
    source: str
    compressed: bool
    source_bytes: int
    temps: list[str]

    def close(self) -> None:
        for p in self.temps:
            try:
                os.unlink(p)
            except OSError:
                pass
        self.temps = []


def spool_file(kind: str, suffix: str, tmpdir: str | None = None) -> tuple[int, str]:
    """A new temporary file ``runbook-<kind>-<pid>-*`` (``mkstemp``'s fd and path). The pid in
    the name lets the next restore remove what a killed one left behind (a multi-GB copy of a
    dump must not pile up in ``$TMPDIR`` over a night of kill -9 and resume)."""
    directory = tmpdir or tempfile.gettempdir()
    sweep_stale(directory)
    return tempfile.mkstemp(prefix=f"runbook-{kind}-{os.getpid()}-", suffix=suffix, dir=directory)


def sweep_stale(directory: str) -> list[str]:
    """Remove the spool files of restores whose process is gone; returns what it removed."""
    removed: list[str] = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        parts = name.split("-")
        if len(parts) < 4 or parts[0] != "runbook" or parts[1] not in ("dump", "restore") or not parts[2].isdigit():
            continue
        pid = int(parts[2])
        if pid == os.getpid() or _alive(pid):
            continue
        try:
            os.unlink(os.path.join(directory, name))
            removed.append(name)
        except OSError:
            pass
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: alive, not ours to judge
    return True


def _temp(tmpdir: str | None, suffix: str) -> tuple[Any, str]:
    fd, path = spool_file("dump", suffix, tmpdir)
    return os.fdopen(fd, "wb"), path


def _gunzip(src: str, tmpdir: str | None, shown: str) -> str:
    out, path = _temp(tmpdir, ".sql")
    try:
        with out, gzip.open(src, "rb") as f:
            while data := f.read(CHUNK):
                out.write(data)
    except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as exc:
        os.unlink(path)
        raise ActionError(f"refusing {shown}: it is a truncated or corrupt gzip file ({exc}); nothing was written",
                          hint="check the backup: `gzip -t` says the same; take the file again from where it came from") from None
    return path


def fetch_dump(path: str, *, shell: Any | None, tmpdir: str | None = None) -> LocalDump:
    """A plain local copy of ``path``; ``shell`` reads it on the host (None: the control machine)."""
    temps: list[str] = []
    local = path
    shown = path
    if shell is not None and not isinstance(shell, LocalShell):
        out, local = _temp(tmpdir, ".copy")
        temps.append(local)
        try:
            with out:
                shell.copy_file(path, out)
        except BaseException:
            os.unlink(local)
            raise
    else:
        local = os.path.expanduser(path)
        if not os.path.isfile(local):
            raise FileReadError(f"no dump file {path}" + (" on the control machine" if shell is None else ""),
                                hint="check file: (and file_on: host | control)")
    size = os.path.getsize(local)
    with open(local, "rb") as f:
        magic = f.read(2)
    if magic == GZIP_MAGIC:
        plain = _gunzip(local, tmpdir, shown)
        for t in temps:
            os.unlink(t)
        return LocalDump(plain, path, True, size, [plain])
    return LocalDump(local, path, False, size, temps)
