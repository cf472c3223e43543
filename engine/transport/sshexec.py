"""Commands over one SSH exec channel each: the path for hosts without the runner
(:mod:`engine.transport.sshrunner` needs ``python3`` on the host).

A command costs a channel round trip, an exec request and a login shell on the host; its pid,
printed first, is the process group killed on a timeout or an abort.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import paramiko

from engine.errors import CommandTimeout, ConnectError, OutcomeUnknown
from engine.model import CommandResult
from engine.transport.sshcmd import remote_command, split_pid
from engine.transport.sshrunner import wait_readable

_CHUNK = 65536
_INLINE_STDIN = 16 * 1024  # within any server's first window (OpenSSH 2 MB, dropbear 24 KB): sendall cannot block
_NET_ERRORS = (paramiko.SSHException, OSError, EOFError)


class ExecChannels:
    """The commands running on exec channels of one connection (so that they can be stopped
    from another thread)."""

    def __init__(self, name: Callable[[], str], run_kill: Callable[[str], CommandResult]):
        self._name = name
        self._run_kill = run_kill  # runs the kill command (a fresh exec channel)
        self._lock = threading.Lock()
        self._channels: dict[int, paramiko.Channel] = {}  # commands running now
        self._stopped: dict[int, str] = {}  # channel -> why interrupt() stopped it

    def run(self, transport: paramiko.Transport, cmd: str, shown: str, what: str, data: bytes | None, chdir: str | None,
            timeout: float | None, env: dict[str, str] | None, open_timeout: float) -> CommandResult:
        start = time.perf_counter()
        name = self._name()
        remote = remote_command(cmd, chdir, env, timeout)
        try:
            chan = transport.open_session(timeout=open_timeout)
        except _NET_ERRORS as exc:
            raise ConnectError(f"ssh to {name}: cannot open a session: {exc}") from None
        # The timeout is the command's: connecting has its own (connect_timeout).
        deadline = None if timeout is None else time.perf_counter() + timeout
        out: list[bytes] = []
        with self._lock:
            self._channels[id(chan)] = chan
        try:
            chan.exec_command(remote)  # from here on, the command may be running
            self._feed(chan, data)
            out, err, finished = self._drain(chan, deadline)
            if finished and not chan.status_event.wait(None if deadline is None else max(0.0, deadline - time.perf_counter())):
                finished = False
            why = self._stopped.pop(id(chan), "")
            if why:
                raise OutcomeUnknown(f"command {why} on {name}: {self._kill_remote(out)}; whether it took effect is unknown: "
                                     f"{shown}", what=what, stopped="kill of its process group")
            if not finished:
                raise CommandTimeout(f"command ran past its timeout of {timeout:g}s on {name}: {self._kill_remote(out)}; "
                                     f"whether it took effect is unknown: {shown}", what=what,
                                     stopped="kill of its process group")
            if not transport.is_active():
                raise OutcomeUnknown(f"ssh connection to {name} dropped during the command; whether it took effect "
                                     f"is unknown: {shown}", what=what)
            rc = chan.exit_status
        except _NET_ERRORS as exc:
            raise OutcomeUnknown(f"ssh connection to {name} dropped during the command ({exc or type(exc).__name__}); "
                                 f"whether it took effect is unknown: {shown}", what=what) from None
        finally:
            with self._lock:
                self._channels.pop(id(chan), None)
                self._stopped.pop(id(chan), None)
            chan.close()
        _, stdout = split_pid(b"".join(out))
        return CommandResult(cmd=cmd, rc=rc, stdout=stdout.decode(errors="replace"),
                             stderr=b"".join(err).decode(errors="replace"), duration=time.perf_counter() - start)

    @staticmethod
    def _feed(chan: paramiko.Channel, data: bytes | None) -> None:
        """Send stdin, then EOF. Large input goes from a thread, or a remote command that writes
        before it reads would fill our receive window while we block on its send window."""

        def send() -> None:
            try:
                if data:
                    chan.sendall(data)
                chan.shutdown_write()
            except _NET_ERRORS:  # the command exited without reading: like EPIPE, not our failure
                pass

        if data is not None and len(data) > _INLINE_STDIN:
            threading.Thread(target=send, name="ssh-stdin", daemon=True).start()
        else:
            send()

    @staticmethod
    def _drain(chan: paramiko.Channel, deadline: float | None) -> tuple[list[bytes], list[bytes], bool]:
        """Read stdout and stderr together until EOF; False when the deadline passes first."""
        out: list[bytes] = []
        err: list[bytes] = []
        fd = chan.fileno()  # a pipe paramiko makes readable when either stream has data or ends
        while True:
            ended = chan.eof_received or chan.closed  # sampled first: data before EOF is buffered by now
            if chan.recv_ready():
                out.append(chan.recv(_CHUNK))
            elif chan.recv_stderr_ready():
                err.append(chan.recv_stderr(_CHUNK))
            elif ended:
                return out, err, True
            else:
                wait = None if deadline is None else deadline - time.perf_counter()
                if wait is not None and wait <= 0:
                    return out, err, False
                wait_readable(fd, wait)

    def _kill_remote(self, out: list[bytes]) -> str:
        """Kill the command's process group on the host, by the pid it printed first: closing
        the channel alone leaves it running (sshd neither kills it nor, for root, relays
        signals). Says what was done."""
        pid, _ = split_pid(b"".join(out))
        if pid is None:
            return "it had not started, or its pid is unknown: it may still be running"
        try:
            # "kill -9 -PGID": dash's kill takes no "--"
            res = self._run_kill(f"kill -9 -{pid} 2>/dev/null || kill -9 {pid} 2>/dev/null")
        except (ConnectError, OutcomeUnknown) as exc:
            return f"its process group {pid} could not be killed ({exc.message}): it may still be running"
        return f"its process group {pid} was killed" if res.rc == 0 else f"its process group {pid} was gone already"

    def interrupt(self, why: str) -> bool:
        """Close every running command's channel; the thread that ran it kills its group."""
        with self._lock:
            chans = list(self._channels.items())
            for key, _ in chans:
                self._stopped[key] = why
        for _, chan in chans:
            chan.close()
        return bool(chans)
