"""Where binlog events come from: the host's server (replication protocol) or archived binlog
files in a directory on the host (read over the host's shell: the files themselves for a local
host, SFTP copies for an ssh host; ``.gz`` files are read through gzip).

Both give the same thing: :meth:`BinlogSource.events` from a file and position on, across the
files that follow, each event framed (``Event``: file, position, bytes) and the file's
Format_description first, so a reader knows how to read what follows.
"""

from __future__ import annotations

import functools
import gzip
import os
import re
import shlex
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from engine.errors import ActionError, FileReadError
from engine.mysql.binlog import events as E
from engine.mysql.binlog.events import BinlogError, Event

_NAME = re.compile(r"^(?P<base>.+)\.(?P<num>\d{6,})(?P<gz>\.gz)?$")


@functools.lru_cache(maxsize=4096)
def file_key(name: str) -> tuple[int, str]:
    """Binlog files in order: by their number (``binlog.000010`` after ``binlog.000009``)."""
    m = _NAME.match(name)
    return (int(m.group("num")), name) if m else (-1, name)


@dataclass(frozen=True)
class BinlogFile:
    name: str  # as the server names it (binlog.000042); archived .gz files drop the suffix
    size: int | None = None
    path: str | None = None  # archived: the file on the host (may end in .gz)


class BinlogSource(Protocol):
    """Binlog events of one server's history."""

    description: str

    def files(self) -> list[BinlogFile]: ...

    def events(self, file: str, pos: int) -> Iterator[Event]: ...

    def close(self) -> None: ...


CHUNK = 4 << 20


def read_stream(f: Any, name: str, start: int) -> Iterator[Event]:
    """Events of one binlog file object: its Format_description (at 4), then those from
    ``start``. Read in 4 MiB chunks, each event one slice of a chunk (memory stays bounded,
    whatever the file's size)."""
    buf = f.read(CHUNK)
    if buf[:4] != E.MAGIC:
        raise BinlogError(f"{name} is not a binlog file (no \\xfebin magic)")
    unpack, header, event = E.HEADER.unpack_from, E.HEADER_LEN, Event
    base, off, first = 0, 4, True  # base: the file offset of buf[0]
    while True:
        if len(buf) - off < header or len(buf) - off < unpack(buf, off)[3]:
            more = f.read(CHUNK)
            if more:
                buf, base, off = buf[off:] + more, base + off, 0
                continue
            if off < len(buf):
                raise BinlogError(f"{name} is truncated at {base + off} ({len(buf) - off} bytes of a partial event)")
            return
        ts, typ, sid, size, log_pos, flags = unpack(buf, off)
        if size < header:
            raise BinlogError(f"{name}:{base + off}: an event of {size} bytes: the file is corrupt")
        yield event(name, base + off, buf[off:off + size], typ, ts, sid, size, log_pos, flags)
        off += size
        if first and start > base + off:
            f.seek(start)
            buf, base, off = f.read(CHUNK), start, 0
        first = False


def open_binlog(path: str) -> Any:
    """A binlog file opened for reading, through gzip when it is compressed."""
    with open(path, "rb") as probe:
        magic = probe.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rb")
    return open(path, "rb", buffering=0)  # read_stream reads big chunks itself


class ArchiveSource:
    """Archived binlog files in ``directory`` on the host."""

    def __init__(self, shell: Any, directory: str, *, host: str = "the host", local: bool = False):
        self.shell, self.directory, self.local = shell, directory.rstrip("/") or "/", local
        self.description = f"archived binlogs in {directory} on {host}"
        self._files: list[BinlogFile] | None = None
        self._spooled: dict[str, str] = {}
        self._tmp: str | None = None

    def files(self) -> list[BinlogFile]:
        if self._files is None:
            res = self.shell.run(f"find {shlex.quote(self.directory)} -maxdepth 1 -type f -printf '%f\\t%s\\n'", timeout=60)
            if res.rc != 0:
                raise ActionError(f"cannot list {self.directory} on the host: {(res.stderr or res.stdout).strip()[-300:]}",
                                  hint="binlogs: names a directory of binlog files on the host (or `server`)")
            found: dict[str, BinlogFile] = {}
            for line in res.stdout.splitlines():
                name, _, size = line.partition("\t")
                m = _NAME.match(name)
                if m is None:
                    continue
                plain = name[:-3] if m.group("gz") else name
                found[plain] = BinlogFile(plain, int(size) if size.isdigit() and not m.group("gz") else None,
                                          f"{self.directory}/{name}")
            bases = {_NAME.match(n).group("base") for n in found}  # type: ignore[union-attr]
            if len(bases) > 1:
                raise ActionError(f"{self.directory} holds binlogs of {len(bases)} names ({', '.join(sorted(bases))})",
                                  hint="keep one server's binlogs per directory")
            self._files = sorted(found.values(), key=lambda f: file_key(f.name))
        return self._files

    def _local_path(self, f: BinlogFile) -> str:
        assert f.path is not None
        if self.local:
            return os.path.expanduser(f.path)
        if f.name not in self._spooled:
            if self._tmp is None:
                _sweep_stale(tempfile.gettempdir())
                self._tmp = tempfile.mkdtemp(prefix=f"runbook-binlog-{os.getpid()}-")
            local = os.path.join(self._tmp, os.path.basename(f.path))
            with open(local, "wb") as out:
                self.shell.copy_file(f.path, out)
            self._spooled[f.name] = local
        return self._spooled[f.name]

    def events(self, file: str, pos: int) -> Iterator[Event]:
        files = self.files()
        names = [f.name for f in files]
        if file not in names:
            raise ActionError(f"{file} is not among the {self.description} ({names[0] if names else 'none'} … "
                              f"{names[-1] if names else ''})", hint="archive every binlog from the dump's on, or read binlogs: server")
        for f in files[names.index(file):]:
            try:
                fh = open_binlog(self._local_path(f))
            except OSError as exc:  # listed a moment ago: purged or moved while the step ran
                raise FileReadError(f"binlog {f.path} cannot be read ({exc.strerror or exc}); it was among the "
                                    f"{self.description} when the step listed them",
                                    hint="keep the archive unchanged while the step runs (purged or moved?), then run it again") from None
            with fh:
                yield from read_stream(fh, f.name, pos if f.name == file else 4)

    def close(self) -> None:
        if self._tmp is not None:
            import shutil

            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
            self._spooled.clear()


def _sweep_stale(directory: str) -> None:
    """Remove the binlog copies of steps whose process is gone (killed: its finally never ran)."""
    import shutil

    def gone(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False  # another user's process: alive, not ours to judge
        return False

    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        parts = name.split("-")
        if len(parts) >= 4 and parts[:2] == ["runbook", "binlog"] and parts[2].isdigit() and gone(int(parts[2])):
            shutil.rmtree(os.path.join(directory, name), ignore_errors=True)


class ServerSource:
    """The server's own binlogs through the replication protocol (``binlogs: server``)."""

    def __init__(self, sql: Any, make_dump: Callable[[], Any], *, host: str = "the host"):
        self.sql, self.make_dump = sql, make_dump
        self.description = f"the binlogs of {host}'s server"

    def files(self) -> list[BinlogFile]:
        from engine.errors import SqlError

        try:
            rows = self.sql.query("SHOW BINARY LOGS").rows
        except SqlError as exc:
            if exc.errno == 1381:
                raise ActionError("the server has no binary log (log_bin is OFF): there is nothing to replay from it",
                                  hint="read archived binlog files instead: binlogs: /path/on/the/host") from None
            raise
        out = []
        for r in rows:
            vals = list(r.values())
            name = vals[0].decode() if isinstance(vals[0], bytes) else str(vals[0])
            out.append(BinlogFile(name, int(vals[1]) if len(vals) > 1 and vals[1] is not None else None))
        return out

    def events(self, file: str, pos: int) -> Iterator[Event]:
        alg = self.sql.query("SELECT @@global.binlog_checksum AS c").rows[0]["c"]
        tail = 4 if str(alg.decode() if isinstance(alg, bytes) else alg).upper() == "CRC32" else 0
        dump = self.make_dump()
        current, frame = file, E.frame
        try:
            for data in dump.stream(file, max(pos, 4)):
                ev = frame(data, current, None)
                if ev.type == E.ROTATE:
                    target = data[E.HEADER_LEN + 8:len(data) - tail].decode("utf-8", "replace")
                    if ev.log_pos == 0 or ev.flags & E.ARTIFICIAL_F:
                        current = target  # the server says which file the stream is in
                        continue
                    ev.pos = ev.log_pos - ev.size
                    yield ev
                    current = target
                    continue
                if ev.log_pos:
                    ev.pos = ev.log_pos - ev.size
                yield ev
        finally:
            dump.close()

    def close(self) -> None:
        pass
