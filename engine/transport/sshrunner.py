"""One long-lived process per SSH connection that runs every command of it.

Opening a channel and exec'ing a login shell for each command costs two round trips, a fork of
sshd's session process and a login shell (~3.5 ms a command here). Instead, the first command of
a connection starts ``python3`` on the host with the small program in
:mod:`engine.transport.sshrunner_host`, on one channel, and every command after that is one
frame out and one frame back: the host forks ``/bin/sh -c`` itself and reports the exit status
and the pid (the process group it killed, if it did) in band.

Every guarantee of the per-command channel is kept:

* a command is *sent* when its frame is handed to the channel; from then on any failure (the
  connection or the runner ends, a timeout, an abort) leaves its outcome unknown;
* each command runs in a session of its own; a timeout (kept on the host, like ``timeout(1)``,
  and by the engine) or an abort kills its whole process group, and the engine is told so
  before it reports the step;
* a command has ended when it exited and every process holding its stdout/stderr closed them.

A host without ``python3`` (or whose runner does not say hello) keeps the per-command exec
channel: :meth:`RemoteRunner.start` returns the reason instead of a runner.
"""

from __future__ import annotations

import select
import shlex
import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import paramiko

HEAD = struct.Struct(">cII")  # kind, id, payload length (see sshrunner_host)
RUN = struct.Struct(">dBI")
END = struct.Struct(">iiB")
HOW_EXITED, HOW_KILLED, HOW_DEADLINE, HOW_NOT_STARTED = 0, 1, 2, 3
_NET_ERRORS = (paramiko.SSHException, OSError, EOFError)
_CHUNK = 1 << 16

_PROGRAM = (Path(__file__).with_name("sshrunner_host.py")).read_text()
#: the exec string of the runner's channel (through the user's login shell, like any command)
# Bytes, encoded once: paramiko would encode the ~13 kB string (not all ASCII) for every
# connection (~0.15 M instructions each).
BOOTSTRAP = ("command -v python3 >/dev/null 2>&1 || { echo 'no python3 on this host' >&2; exit 127; }; "
             "exec python3 -I -S -c " + shlex.quote(_PROGRAM)).encode()


def wait_readable(fd: int, timeout: float | None) -> None:
    """Until ``fd`` is readable or ``timeout`` seconds pass. poll(), not select(): a control
    node with hundreds of hosts has descriptors above select's limit of 1024."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    poller.poll(None if timeout is None else max(0, int(timeout * 1000 + 0.999)))


class RunnerGone(Exception):
    """The runner's channel ended (the connection dropped, or the process on the host died)."""


@dataclass(eq=False)
class Job:
    """One command sent to the runner."""

    id: int
    out: list[bytes] = field(default_factory=list)
    err: list[bytes] = field(default_factory=list)
    done: bool = False
    pid: int | None = None
    rc: int = -1
    how: int = HOW_EXITED


class RemoteRunner:
    """The client side of one runner: send commands, wait for them, kill them (thread-safe).

    Whichever thread waits reads the channel for everybody (one at a time): no reader thread
    per host, and no hand-off between threads for the common case of one command at a time.
    """

    def __init__(self, chan: paramiko.Channel, pid: int):
        self.chan = chan
        self.pid = pid  # the runner's own pid on the host
        self._send_lock = threading.Lock()
        self._cond = threading.Condition()
        self._reading = False
        self._jobs: dict[int, Job] = {}
        self._next = 1
        self._buf = bytearray()
        self._stderr = bytearray()  # the runner's own complaints, for the message when it dies
        self._gone: str | None = None

    # -- start ----------------------------------------------------------------------------
    @classmethod
    def start(cls, transport: paramiko.Transport, timeout: float) -> RemoteRunner | str:
        """A runner on a new channel of ``transport``, or why there is none (no python3, a
        restricted shell, ...): then the caller uses one exec channel per command."""
        started = Launch(transport, timeout).poll(wait=True)
        assert started is not None  # poll(wait=True) gives a runner or a reason
        return started

    @property
    def alive(self) -> bool:
        return self._gone is None and not self.chan.closed and not self.chan.eof_received

    # -- commands -------------------------------------------------------------------------
    def new_job(self) -> Job:
        """A job to :meth:`send`: known (and so killable) before its frame is on the wire."""
        with self._cond:
            job = Job(self._next)
            self._next += 1
            self._jobs[job.id] = job
        return job

    def send(self, job: Job, script: str, stdin: bytes | None, timeout: float | None) -> None:
        """Send the job's command. Raises :class:`RunnerGone` when it could not be sent whole:
        the caller treats that as in doubt (the host runs a command only once its frame is
        whole, but whether it got all of it is unknown). A kill asked meanwhile follows it."""
        body = script.encode()
        frame_body = RUN.pack(-1.0 if timeout is None else max(timeout, 0.0), stdin is not None, len(body)) + body + (stdin or b"")
        self._send(HEAD.pack(b"R", job.id, len(frame_body)) + frame_body)

    def kill(self, job: Job) -> bool:
        """Ask the host to kill the job's process group now (from any thread)."""
        if job.done:
            return False
        try:
            self._send(HEAD.pack(b"K", job.id, 0))
        except RunnerGone:
            return False
        return True

    def wait(self, job: Job, deadline: float | None) -> bool:
        """Until the job ends (True) or ``deadline`` (time.monotonic()) passes (False).
        Raises :class:`RunnerGone` if the runner ends first."""
        while True:
            with self._cond:
                while self._reading and not job.done and self._gone is None:
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        return False
                    self._cond.wait(left)
                if job.done:
                    self._jobs.pop(job.id, None)
                    return True
                if self._gone is not None:
                    self._jobs.pop(job.id, None)
                    raise RunnerGone(self._gone)
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._reading = True
            try:
                self._pump(left)
            finally:
                with self._cond:
                    self._reading = False
                    self._cond.notify_all()

    def forget(self, job: Job) -> None:
        with self._cond:
            self._jobs.pop(job.id, None)

    def close(self) -> None:
        with self._cond:
            if self._gone is None:
                self._gone = "closed"
            self._cond.notify_all()
        self.chan.close()

    # -- the wire -------------------------------------------------------------------------
    def _send(self, frame: bytes) -> None:
        with self._send_lock:
            if self._gone is not None:
                raise RunnerGone(self._gone)
            try:
                self.chan.sendall(frame)
            except _NET_ERRORS as exc:
                self._mark_gone(f"sending to it failed: {exc or type(exc).__name__}")
                raise RunnerGone(self._gone or "gone") from None

    def _pump(self, wait: float | None) -> None:
        """Read what the channel has (waiting up to ``wait`` seconds for something) and hand
        every complete frame to its job. Called by one thread at a time."""
        chan = self.chan
        got = False
        while True:
            if chan.recv_ready():
                self._buf += chan.recv(_CHUNK)
                got = True
                continue
            if chan.recv_stderr_ready():
                self._stderr = (self._stderr + chan.recv_stderr(_CHUNK))[-4096:]
                continue
            if got:
                break
            if chan.eof_received or chan.closed:
                self._frames()
                text = self._stderr.decode(errors="replace").strip().splitlines()
                self._mark_gone("it ended" + (f": {text[-1][:200]}" if text else ""))
                return
            try:
                wait_readable(chan.fileno(), wait)
            except (OSError, ValueError):  # the channel was closed under us
                pass
            if not (chan.recv_ready() or chan.recv_stderr_ready() or chan.eof_received or chan.closed):
                return  # the wait ran out
        self._frames()

    def _frames(self) -> None:
        buf = self._buf
        pos = 0
        done: list[Job] = []
        with self._cond:
            while len(buf) - pos >= HEAD.size:
                kind, jid, n = HEAD.unpack_from(buf, pos)
                if len(buf) - pos - HEAD.size < n:
                    break
                start = pos + HEAD.size
                job = self._jobs.get(jid)
                if job is not None:
                    if kind == b"O":
                        job.out.append(bytes(buf[start:start + n]))
                    elif kind == b"E":
                        job.err.append(bytes(buf[start:start + n]))
                    elif kind == b"X":
                        job.pid, job.rc, job.how = END.unpack_from(buf, start)
                        job.done = True
                        done.append(job)
                pos = start + n
            if pos:
                del buf[:pos]
            if done:
                self._cond.notify_all()

    def _mark_gone(self, why: str) -> None:
        with self._cond:
            if self._gone is None:
                self._gone = why
            self._cond.notify_all()


class Launch:
    """A runner being started: its channel is open and the program is on its way; its hello is
    not waited for. The first commands of a connection need not wait for python to start:
    they take exec channels until :meth:`poll` gives the runner."""

    def __init__(self, transport: paramiko.Transport, timeout: float):
        self.deadline = time.monotonic() + timeout
        self._chan = transport.open_session(timeout=timeout)
        try:
            self._chan.exec_command(BOOTSTRAP)
        except BaseException:
            self._chan.close()
            raise
        self._buf = bytearray()

    def poll(self, wait: bool = False) -> RemoteRunner | str | None:
        """The runner once it said hello; why there is none; or None: not yet (``wait``: block
        until one of the first two, up to the launch's timeout)."""
        chan = self._chan
        buf = self._buf
        while len(buf) < HEAD.size or len(buf) < HEAD.size + HEAD.unpack_from(buf)[2]:
            if chan.recv_ready():
                buf += chan.recv(_CHUNK)
                continue
            if chan.eof_received or chan.closed:
                err = b""
                while chan.recv_stderr_ready():
                    err += chan.recv_stderr(_CHUNK)
                chan.close()
                text = err.decode(errors="replace").strip().splitlines()
                return text[-1][:200] if text else "the runner ended before saying hello"
            left = self.deadline - time.monotonic()
            if left <= 0:
                chan.close()
                return "the runner did not say hello in time"
            if not wait:
                return None
            wait_readable(chan.fileno(), left)
        kind, _, n = HEAD.unpack_from(buf)
        hello = bytes(buf[HEAD.size:HEAD.size + n]).decode(errors="replace").split()
        if kind != b"H" or len(hello) != 3 or hello[:2] != ["runbook-runner", "1"]:
            chan.close()
            return f"unexpected answer from the runner: {bytes(buf[:60])!r}"
        runner = RemoteRunner(chan, int(hello[2]))
        runner._buf = buf[HEAD.size + n:]
        return runner

    def cancel(self) -> None:
        self._chan.close()
