"""The server's error log on its host: where it is, and reading it as it grows.

Everything goes through the host's shell (SSH or local), with POSIX tools only (``wc``,
``tail``, ``head``, ``base64``), so the bytes read are exact whatever the log holds.

Where the log is, in this order: the step's ``error_log:``; the inventory's
``mysql_error_log``; ``@@log_error`` when the server answers (relative to ``@@datadir``);
the server's option files (``my_print_defaults``: ``log-error``, ``datadir``; ignored when
their datadir or port is not this host's, as on a host running several servers); the newest
``*.err`` of the datadir (inventory ``datadir``, the option files', or ``/var/lib/mysql``).
A crashed server cannot answer, so for one that logs somewhere unusual give the path.

```python
path, how = locate_error_log(ctx, None)
tail = LogTail(ctx.shell(), path)
text = tail.since_last_start()      # the current (or last) server run
more = tail.read_new()              # what was written since
```
"""

from __future__ import annotations

import base64
import posixpath
import shlex
from typing import TYPE_CHECKING, Any

from engine.errors import ActionError, CommandTimeout, ConnectError, SqlError
from engine.mysql.recovery_log import _EMBEDDED, START, classify, parse_line
from engine.transport.base import Shell

if TYPE_CHECKING:
    from engine.run.context import ActionContext

#: how much of the end to read when no line says where the server started
START_WINDOW = 1024 * 1024
CHUNK = 4 * 1024 * 1024


class LogTail:
    """Reads a file on the host from a byte offset; copes with truncation and rotation."""

    def __init__(self, shell: Shell, path: str):
        self.shell = shell
        self.path = path
        self.offset = 0
        self._partial = b""

    def _read(self, offset: int, limit: int) -> tuple[int | None, bytes]:
        q = shlex.quote(self.path)
        cmd = (f"if [ -r {q} ]; then wc -c < {q}; tail -c +{offset + 1} {q} | head -c {limit} | base64; "
               f"elif [ -e {q} ]; then echo UNREADABLE; else echo MISSING; fi")
        res = self.shell.run(cmd, timeout=60)
        if res.rc != 0:
            raise ActionError(f"cannot read the error log {self.path}: {res.stderr.strip()[-300:] or f'exit {res.rc}'}",
                              hint="does the SSH user have read access to it?")
        first, _, rest = res.stdout.partition("\n")
        if first.strip() == "MISSING":
            return None, b""
        if first.strip() == "UNREADABLE":
            raise ActionError(f"the error log {self.path} exists but this connection's user cannot read it",
                              hint="let the SSH user read it (often: the adm or mysql group), or give a readable copy's path")
        try:
            size = int(first.strip())
            data = base64.b64decode("".join(rest.split()))
        except ValueError:
            raise ActionError(f"unexpected output while reading {self.path}: {res.stdout[:200]!r}") from None
        return size, data

    def exists(self) -> bool:
        return self._read(0, 0)[0] is not None

    def _start_offsets(self) -> list[int]:
        """Byte offsets of the last few lines that may start a server run (``grep -b`` on the host:
        the whole file, at grep's speed, instead of shipping it here)."""
        q = shlex.quote(self.path)
        res = self.shell.run(f"grep -a -b 'as process' {q} 2>/dev/null | tail -n 20", timeout=120)
        offsets = []
        for line in res.stdout.splitlines():
            head, _, rest = line.partition(":")
            if not head.isdigit():
                continue
            pos = int(head)
            for part in _EMBEDDED.split(rest):  # a start glued after an "Aborting" without newline
                if classify_start(part):
                    offsets.append(pos)
                pos += len(part.encode("utf-8", errors="replace"))
        return offsets

    def since_last_start(self) -> str:
        """The log from the line where the server last started; the offset moves past what was read."""
        size, _ = self._read(0, 0)
        self._partial = b""
        if size is None:
            self.offset = 0
            return ""
        starts = self._start_offsets()
        if starts:
            begin = starts[-1]
        else:  # no start line at all (another wording?): the tail of the file
            begin = max(0, size - START_WINDOW)
        self.offset = begin
        texts = []
        while True:
            _, data = self._read(self.offset, CHUNK)
            if begin and not starts and self.offset == begin:  # skip the first, probably cut, line
                cut = data.find(b"\n")
                self.offset += cut + 1
                data = data[cut + 1:]
            texts.append(self._take(data))
            if len(data) < CHUNK or self.offset >= size:
                return "".join(texts)

    def read_new(self) -> tuple[str, bool]:
        """(complete new lines, whether the file was truncated or replaced since the last read)."""
        texts = []
        while True:
            size, data = self._read(self.offset, CHUNK)
            if size is None or size < self.offset:
                self.offset = 0
                self._partial = b""
                return ("" if size is None else self.since_last_start()), True
            texts.append(self._take(data))
            if len(data) < CHUNK:  # caught up (a backlog is read in chunks, all at once)
                return "".join(texts), False

    @property
    def partial(self) -> str:
        """The last line while it is still being written (MySQL 5.7's "Progress in percent")."""
        return self._partial.decode("utf-8", errors="replace")

    def _take(self, data: bytes) -> str:
        """Consume complete lines; keep a trailing unfinished line for the next read."""
        self.offset += len(data)
        data = self._partial + data
        cut = data.rfind(b"\n")
        if cut < 0:
            self._partial = data
            return ""
        self._partial = data[cut + 1:]
        return data[: cut + 1].decode("utf-8", errors="replace")


def classify_start(line: str) -> bool:
    event = classify(parse_line(line))
    return event is not None and event.kind == START


def _server_answer(ctx: ActionContext) -> tuple[str | None, str | None]:
    """(@@log_error, @@datadir) when the server answers; never marks the host unreachable."""
    try:
        row = ctx.sql().query("SELECT @@log_error AS log_error, @@datadir AS datadir").rows[0]
        return (str(row["log_error"]) if row["log_error"] is not None else None,
                str(row["datadir"]) if row["datadir"] is not None else None)
    except (ConnectError, SqlError, CommandTimeout, IndexError):
        ctx.conns.reset_sql()  # a refused connection is no verdict on the host: try again later
        return None, None


def _option_files(shell: Shell) -> dict[str, str]:
    """``--log-error`` and ``--datadir`` from the server's option files, when the tool is there."""
    res = shell.run("my_print_defaults --mysqld mariadbd mariadb server mysqld_safe 2>/dev/null "
                    "|| my_print_defaults mysqld mariadbd server 2>/dev/null", timeout=30)
    out: dict[str, str] = {}
    for line in res.stdout.splitlines():
        key, _, value = line.strip().lstrip("-").partition("=")
        key = key.replace("_", "-")
        if key in ("log-error", "datadir", "port") and value:
            out[key] = value  # the last one wins, as in the server
    return out


def _same_server(ctx: ActionContext, opts: dict[str, str], datadir: Any) -> bool:
    """Do the option files describe this host's server (same datadir and port when known)?"""
    from engine.inventory import mysql_settings

    if datadir and opts.get("datadir") and posixpath.normpath(str(datadir)) != posixpath.normpath(opts["datadir"]):
        return False
    if opts.get("port") and "mysql_port" in ctx.host.vars:
        return str(mysql_settings(ctx.host).port) == opts["port"]
    return True


def _absolute(path: str, datadir: str | None) -> str:
    if posixpath.isabs(path) or not datadir:
        return path
    return posixpath.normpath(posixpath.join(datadir, path))


def locate_error_log(ctx: ActionContext, explicit: str | None) -> tuple[str, str]:
    """(path, how it was found). Raises :class:`ActionError` when nothing tells."""
    if explicit:
        return explicit, "error_log argument"
    from engine.inventory.connection import render_host_var

    inv = render_host_var(ctx.host, "mysql_error_log")
    if inv:
        return str(inv), "inventory mysql_error_log"
    log_error, datadir = _server_answer(ctx)
    if log_error and log_error not in ("stderr",):
        return _absolute(log_error, datadir), "@@log_error"
    shell = ctx.shell()
    opts = _option_files(shell)
    known = datadir or render_host_var(ctx.host, "datadir")
    if not _same_server(ctx, opts, known):
        opts = {}  # the host's option files describe another server (a multi-instance host)
    datadir = known or opts.get("datadir") or "/var/lib/mysql"
    if opts.get("log-error"):
        return _absolute(opts["log-error"], datadir), "option files (my_print_defaults)"
    q = shlex.quote(str(datadir).rstrip("/"))
    res = shell.run(f"ls -t {q}/*.err 2>/dev/null | head -n 1", timeout=30)
    found = res.stdout.strip()
    if found:
        return found, f"newest *.err in {datadir}"
    raise ActionError(
        "cannot tell where the server's error log is: the server does not answer (so @@log_error cannot be asked), "
        f"the option files name no log-error and {datadir} has no *.err",
        hint="give error_log: in the step, or mysql_error_log in the inventory "
             "(a server that logs to syslog/journald has no file to watch: set log_error in its my.cnf)")
