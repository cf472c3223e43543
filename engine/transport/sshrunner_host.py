"""The program :class:`engine.transport.sshrunner.RemoteRunner` starts on a host, once per SSH
connection (``python3 -I -S -c <this file's text>``), to run every command of that connection.

It is never imported by the engine: its text is sent. Python 3.6+ and the standard library only,
so that it runs on any host with a ``python3`` (a host without one keeps the per-command exec
channel). One select loop, no threads.

Protocol, frames both ways: ``kind`` (1 byte), ``id`` (4), payload length (4), payload.

* ``R`` (engine → host): run a command. Payload: timeout (double, < 0: none), has-stdin (byte),
  script length (4), the ``/bin/sh -c`` script, then the stdin bytes.
* ``K`` (engine → host): kill job ``id``'s whole process group now (SIGKILL).
* ``H`` (host → engine): hello, sent once: ``runbook-runner 1 <pid>``.
* ``O``/``E`` (host → engine): stdout/stderr bytes of job ``id``.
* ``X`` (host → engine): job ``id`` ended. Payload: pid (4), rc (4, signed; -1: died of a
  signal), how (1 byte: 0 exited, 1 killed on ``K``, 2 killed at its deadline, 3 could not start).

Each command runs in a new session (``setsid``), so its pid is its process group and a kill
reaches everything it started (``sh -c 'a | b &'`` included). A command has ended when it has
exited *and* its stdout and stderr are closed by every process that holds them (what sshd waits
for before it closes an exec channel), or when it was killed. The deadline is kept here, on the
host, as ``timeout(1)`` would: a command is killed at its deadline even when the engine is gone.
When the engine goes away (EOF on stdin), running commands are left to finish (each still held
to its deadline) and the program exits after the last one, as sshd leaves a command running when
its connection drops.
"""

import errno
import select
import struct
import sys
import time

# The built-in modules, not their Python wrappers: ``os`` imports posixpath, stat and abc, and
# ``signal`` imports enum (and through it functools, collections, operator): together 37% of
# the instructions of a runner's start (56 -> 35 million; python3 -I -S alone is 21), paid once
# per connection on every host. The names used here are the same in both (posix.environ holds
# bytes, which posix_spawn takes as they are).
import posix as os

try:
    import _signal as signal
except ImportError:  # a Python without the C module under that name
    import signal

HEAD = struct.Struct(">cII")
RUN = struct.Struct(">dBI")
END = struct.Struct(">iiB")
CHUNK = 65536
OUT_HIGH = 1 << 20  # stop reading commands' output while this much waits for the engine


class Job:
    __slots__ = ("deadline", "fds", "how", "id", "out", "pid", "status", "stdin", "stdin_fd")

    def __init__(self, jid, pid, deadline):
        self.id = jid
        self.pid = pid
        self.fds = {}  # fd -> b"O" | b"E"
        self.stdin_fd = None
        self.stdin = b""
        self.deadline = deadline
        self.status = None  # waitpid status once reaped
        self.how = 0
        self.out = {b"O": [], b"E": []}


SIGDEF = (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGCHLD, signal.SIGINT)


def spawn(script, with_stdin):
    """``/bin/sh -c script`` in a new session; returns (pid, stdin_w, out_r, err_r)."""
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    in_r, in_w = os.pipe() if with_stdin else (None, None)
    try:
        if hasattr(os, "posix_spawn"):
            # vfork-like: no copy of this process's page tables, no copy-on-write faults after
            # (a fork of a Python process costs ~1 ms of them)
            actions = [(os.POSIX_SPAWN_DUP2, in_r, 0) if in_r is not None else (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                       (os.POSIX_SPAWN_DUP2, out_w, 1), (os.POSIX_SPAWN_DUP2, err_w, 2)]
            try:
                pid = os.posix_spawn("/bin/sh", ["/bin/sh", "-c", script], os.environ, file_actions=actions,
                                     setsid=True, setsigdef=SIGDEF)
                return pid, in_w, out_r, err_r
            except NotImplementedError:  # no POSIX_SPAWN_SETSID in this libc
                pass
        pid = os.fork()
        if pid == 0:  # the child: only async-safe work, then exec
            try:
                os.setsid()
                for sig in SIGDEF:
                    signal.signal(sig, signal.SIG_DFL)
                if in_r is None:
                    in_r = os.open("/dev/null", os.O_RDONLY)
                os.dup2(in_r, 0)
                os.dup2(out_w, 1)
                os.dup2(err_w, 2)
                os.execv("/bin/sh", ["/bin/sh", "-c", script])
            except BaseException as exc:  # the child must never return into the loop
                try:
                    os.write(2, f"runbook runner: cannot run /bin/sh: {exc}\n".encode())
                finally:
                    os._exit(127)
        return pid, in_w, out_r, err_r
    except BaseException:
        for fd in (out_r, in_w):
            if fd is not None:
                os.close(fd)
        os.close(err_r)
        raise
    finally:
        os.close(out_w)
        os.close(err_w)
        if in_r is not None:
            os.close(in_r)


def main():
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.signal(signal.SIGCHLD, lambda *a: None)
    signal.set_wakeup_fd(wake_w)
    os.set_blocking(1, False)
    jobs = {}  # id -> Job
    by_fd = {}  # output or stdin fd -> Job
    inbuf = bytearray()
    hello = f"runbook-runner 1 {os.getpid()}".encode()
    outbuf = bytearray(HEAD.pack(b"H", 0, len(hello)) + hello)
    engine_gone = False

    def emit(kind, jid, payload):
        if not engine_gone:
            outbuf.extend(HEAD.pack(kind, jid, len(payload)))
            outbuf.extend(payload)

    def send():
        """As much of ``outbuf`` as the engine's pipe takes now; a write error other than a
        full pipe means the engine is gone (its output is dropped, commands run on)."""
        nonlocal engine_gone
        try:
            n = os.write(1, outbuf)
            del outbuf[:n]
        except OSError as exc:
            if exc.errno != errno.EAGAIN:
                engine_gone = True
                del outbuf[:]

    def kill(job, how):
        if job.how == 0:
            job.how = how
        try:
            os.killpg(job.pid, signal.SIGKILL)
        except OSError:
            # No such group: the child has not called setsid yet (it has started nothing), or
            # the group is gone. The pid is only ours while it is not reaped.
            if job.status is None:
                try:
                    os.kill(job.pid, signal.SIGKILL)
                except OSError:
                    pass

    def close_fd(fd):
        by_fd.pop(fd, None)
        try:
            os.close(fd)
        except OSError:
            pass

    def finish(job):
        for fd in list(job.fds):
            close_fd(fd)
        job.fds.clear()
        if job.stdin_fd is not None:
            close_fd(job.stdin_fd)
            job.stdin_fd = None
        for kind in (b"O", b"E"):
            if job.out[kind]:
                emit(kind, job.id, b"".join(job.out[kind]))
        st = job.status
        rc = os.WEXITSTATUS(st) if os.WIFEXITED(st) else -1
        emit(b"X", job.id, END.pack(job.pid, rc, job.how))
        del jobs[job.id]

    def handle(kind, jid, payload):
        if kind == b"R":
            timeout, with_stdin, n = RUN.unpack_from(payload)
            script = bytes(payload[RUN.size:RUN.size + n])
            try:
                pid, in_w, out_r, err_r = spawn(script, bool(with_stdin))
            except OSError as exc:
                emit(b"E", jid, f"runbook runner: cannot start the command: {exc}\n".encode())
                emit(b"X", jid, END.pack(0, 127, 3))
                return
            job = Job(jid, pid, None if timeout < 0 else time.monotonic() + timeout)
            jobs[jid] = job
            for fd, k in ((out_r, b"O"), (err_r, b"E")):
                os.set_blocking(fd, False)
                job.fds[fd] = k
                by_fd[fd] = job
            if in_w is not None:
                job.stdin = bytes(payload[RUN.size + n:])
                os.set_blocking(in_w, False)
                job.stdin_fd = in_w
                by_fd[in_w] = job
                if not job.stdin:
                    close_fd(in_w)
                    job.stdin_fd = None
        elif kind == b"K":
            job = jobs.get(jid)
            if job is not None and job.status is None:
                kill(job, 1)
            elif job is not None:
                job.how = job.how or 1

    while True:
        now = time.monotonic()
        for job in list(jobs.values()):
            if job.how == 0 and job.deadline is not None and now >= job.deadline:
                kill(job, 2)
        if engine_gone and not jobs:
            return
        reading = [] if engine_gone else [0]
        reading.append(wake_r)
        if len(outbuf) < OUT_HIGH:
            for job in jobs.values():
                reading.extend(job.fds)
        writing = [job.stdin_fd for job in jobs.values() if job.stdin_fd is not None]
        if outbuf and not engine_gone:
            writing.append(1)
        deadlines = [j.deadline for j in jobs.values() if j.deadline is not None and j.how == 0]
        wait = max(0.0, min(deadlines) - now) if deadlines else None
        try:
            readable, writable, _ = select.select(reading, writing, [], wait)
        except InterruptedError:
            continue
        for fd in readable:
            if fd == 0:
                try:
                    data = os.read(0, CHUNK * 4)
                except OSError:
                    data = b""
                if not data:
                    engine_gone = True
                    del outbuf[:]
                    continue
                inbuf.extend(data)
                while len(inbuf) >= HEAD.size:
                    kind, jid, n = HEAD.unpack_from(inbuf)
                    if len(inbuf) < HEAD.size + n:
                        break
                    payload = memoryview(inbuf)[HEAD.size:HEAD.size + n].tobytes()
                    del inbuf[:HEAD.size + n]
                    handle(kind, jid, payload)
            elif fd == wake_r:
                try:
                    while os.read(wake_r, 512):
                        pass
                except OSError:
                    pass
            else:
                job = by_fd.get(fd)
                if job is None or fd not in job.fds:
                    continue
                try:
                    data = os.read(fd, CHUNK)
                except OSError as exc:
                    if exc.errno == errno.EAGAIN:
                        continue
                    data = b""
                if data and not engine_gone:
                    kind = job.fds[fd]
                    job.out[kind].append(data)
                    if len(job.out[kind]) > 1 or len(data) >= CHUNK:  # small output goes with X
                        emit(kind, job.id, b"".join(job.out[kind]))
                        job.out[kind] = []
                elif data:
                    pass  # nobody to send it to
                else:
                    del job.fds[fd]
                    close_fd(fd)
        for fd in writable:
            if fd == 1:
                send()
                continue
            job = by_fd.get(fd)
            if job is None or job.stdin_fd != fd:
                continue
            try:
                n = os.write(fd, job.stdin[:CHUNK])
                job.stdin = job.stdin[n:]
            except OSError as exc:
                if exc.errno == errno.EAGAIN:
                    continue
                job.stdin = b""  # the command exited without reading: like EPIPE, not a failure
            if not job.stdin:
                close_fd(fd)
                job.stdin_fd = None
        # Reap: a command has ended once exited and its output is closed (or it was killed).
        for job in list(jobs.values()):
            if job.status is None:
                try:
                    pid, st = os.waitpid(job.pid, os.WNOHANG)
                except ChildProcessError:
                    pid, st = job.pid, 0
                if pid:
                    job.status = st
            if job.status is not None and (not job.fds or job.how):
                finish(job)
        if outbuf and not engine_gone:
            send()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
