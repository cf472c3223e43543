"""SSH adapter (paramiko): one connection per host, one long-lived runner on it for commands.

The first ``run()`` connects; commands go to the connection's runner
(:mod:`engine.transport.sshrunner`: one frame out and one back per command), or, on a host
without ``python3``, one exec channel each (:mod:`engine.transport.sshexec`); MySQL tunnels and
SFTP open channels on the same transport. No paramiko or socket exception leaves this module:
failures become a one-line :class:`ConnectError` (unreachable, refused, host key,
authentication, dropped connection), :class:`CommandTimeout` or :class:`OutcomeUnknown`.
Where to connect is :mod:`engine.transport.sshtarget`; host keys and key loading
:mod:`engine.transport.sshkeys`, under the same rule.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import Any

import paramiko

from engine.errors import CommandTimeout, ConnectError, FileReadError, OutcomeUnknown
from engine.model import CommandResult, SshSettings
from engine.secrets import MASKER
from engine.transport.sshcmd import shell_script
from engine.transport.sshexec import ExecChannels
from engine.transport.sshrunner import HOW_DEADLINE, HOW_KILLED, Job, Launch, RemoteRunner, RunnerGone
from engine.transport.sshtarget import QuickAckSocket, Target, resolve
from engine.transport.sshkeys import agent_keys, check_host_key, fingerprint, known_keys, load_key, prefer_known_key_types

_DEFAULT_KEYS = ("id_ed25519", "id_ecdsa", "id_rsa")
_IDLE_WAKE = 1.0
_AEAD = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")
_DEADLINE_GRACE = 2.0  # the host kills a command at its deadline; the engine waits this much longer for word of it
_KILL_WAIT = 5.0  # then the engine asks for the kill itself and waits this long for its confirmation
_CONNECT_TRIES = 3  # a handshake dropped by the server is tried again (nothing was sent yet)
_MAX_HOPS = 5  # ProxyJump chains longer than this are a config loop
_NET_ERRORS = (paramiko.SSHException, OSError, EOFError)
# With more connections than this open at once, a connection's first command waits for its
# runner instead of taking an exec channel while python starts (see SshShell._runner_on).
_FLEET = os.cpu_count() or 2
_OPEN_LOCK = threading.Lock()
_open = 0  # connections of this process that are up now

# paramiko's transport thread logs its failures (a port that answers but does not speak SSH)
# with a traceback, which Python's last-resort handler prints on stderr. Ours is the one-line
# ConnectError; the library's log stays out of the operator's way.
logging.getLogger("paramiko").addHandler(logging.NullHandler())


class _Packetizer(paramiko.Packetizer):
    """paramiko's handshake timeout kept as a deadline: paramiko starts a ``threading.Timer``
    for it, one more thread started (and cancelled) per connection. The reader thread asks
    :meth:`handshake_timed_out` as it waits for the server, as it asked about the timer."""

    _handshake_deadline: float | None = None
    _handshake_done = False

    def start_handshake(self, timeout: float) -> None:
        if self._handshake_deadline is None:
            self._handshake_deadline = time.monotonic() + float(timeout)

    def handshake_timed_out(self) -> bool:
        deadline = self._handshake_deadline
        return deadline is not None and not self._handshake_done and time.monotonic() >= deadline

    def complete_handshake(self) -> None:
        if self._handshake_deadline is not None:
            self._handshake_done = True


class _Transport(paramiko.Transport):
    # paramiko's reader thread wakes every 0.1 s to look at its flags while it waits for the
    # server, from the handshake on (35 ms of CPU a second for 100 idle connections; with a
    # hundred handshakes at once, each waiting seconds for a busy sshd, thousands of wakeups).
    # Once a second is enough: closing does not wait for it, the keepalive is every 30 s, the
    # banner and handshake timeouts are 15 s.
    _active_check_timeout = _IDLE_WAKE

    def _parse_debug(self, m: paramiko.Message) -> None:
        """sshd sends an SSH_MSG_DEBUG on every login (``authorized_keys:1: key options:
        ...``); paramiko escapes it byte by byte in Python (~0.1 M instructions per
        connection) for a DEBUG log line that the NullHandler above drops. Read and ignored."""
        m.get_boolean()  # always_display
        m.get_string()  # the message
        m.get_string()  # its language


class _HandshakeLost(ConnectError):
    """The connection ended during the SSH handshake (a server at its MaxStartups, a machine
    too loaded to answer in time, a port that is not sshd): worth one more try or two."""


class SshShell:
    """Runs commands on one host over a single reused SSH connection.

    ```yaml
    db1: {ssh_host: 10.0.0.5, ssh_user: dba, ssh_key: ~/.ssh/id_ed25519, ssh_host_key_checking: strict}
    ```
    """

    def __init__(self, settings: SshSettings, *, jump: SshShell | None = None, hops: int = 0, runner: bool = True) -> None:
        self.settings = settings
        self._via = jump  # set for ProxyJump hops: the shell whose transport carries ours
        self._hops = hops
        self._jumps: list[SshShell] = []  # jump shells this one created and must close
        self._target: Target | None = None
        self._transport: paramiko.Transport | None = None
        self._lock = threading.Lock()
        self._exec = ExecChannels(lambda: self.name, self._kill_command)
        #: why this connection runs one exec channel per command (None: the runner is used)
        self.no_runner: str | None = None if runner else "disabled"
        self._runner: RemoteRunner | None = None
        self._runner_transport: paramiko.Transport | None = None
        self._launch: Launch | None = None  # the runner being started
        self._replaced = False  # a runner worked on this connection: its successor is waited for
        self._runner_lock = threading.Lock()
        self._jobs_lock = threading.Lock()
        self._jobs: dict[Job, RemoteRunner] = {}  # commands running on the runner now
        self._stopped: dict[Job, str] = {}  # job -> why interrupt() stopped it

    @property
    def name(self) -> str:
        return self._target.where if self._target else f"{self.settings.host}:{self.settings.port}"

    # -- connection ---------------------------------------------------------------------
    def _ensure(self) -> paramiko.Transport:
        """The live transport; (re)connects after the first call or a dropped connection."""
        transport = self._transport
        if transport is not None and transport.is_active():
            return transport
        with self._lock:  # one connect per host even when several threads start at once
            if self._transport is None or not self._transport.is_active():
                if self._transport is not None:
                    self._transport.close()
                for attempt in range(_CONNECT_TRIES):
                    try:
                        fresh = self._transport is None
                        self._transport = self._connect()
                        if fresh:
                            _count_open(+1)
                        break
                    except _HandshakeLost:
                        # The server (or a loaded machine) dropped the handshake: nothing was sent
                        # yet, so connecting again is safe; a refusal, a host key or an
                        # authentication failure is not retried.
                        if attempt == _CONNECT_TRIES - 1:
                            raise
                        time.sleep(0.5 * (attempt + 1))
            assert self._transport is not None
            return self._transport

    def _connect(self) -> paramiko.Transport:
        if self._target is None:
            self._target = resolve(self.settings, use_config_jump=self._via is None)
        t = self._target
        known_path = os.path.expanduser(self.settings.known_hosts or "~/.ssh/known_hosts")
        known = known_keys(known_path, t.known_name)
        sock = self._open_socket(t)
        transport: paramiko.Transport | None = None
        try:
            transport = _Transport(sock, packetizer_class=_Packetizer)
            transport.set_keepalive(30)  # long silent steps must not lose the connection to a NAT
            prefer_known_key_types(transport, known)
            opts = transport.get_security_options()
            # AEAD first: paramiko checks a separate MAC in Python, byte by byte, on every packet
            opts.ciphers = (*(c for c in _AEAD if c in opts.ciphers), *(c for c in opts.ciphers if c not in _AEAD))
            _negotiate(transport, self.settings.connect_timeout)
            check_host_key(transport.get_remote_server_key(), known, known_path, policy=self.settings.host_key_checking,
                           known_name=t.known_name, hostname=t.hostname, port=t.port)
            self._authenticate(t, transport)
            return transport
        except ConnectError:
            (transport or sock).close()
            raise
        except _NET_ERRORS as exc:
            (transport or sock).close()
            if "protocol banner" in str(exc):
                raise _HandshakeLost(f"ssh to {t.where}: the port answers but does not speak SSH ({exc})",
                                     hint="check ssh_host and ssh_port: is sshd listening there?") from None
            raise _HandshakeLost(f"ssh to {t.where} failed: {exc or type(exc).__name__}") from None

    def _open_socket(self, t: Target) -> Any:
        timeout = self.settings.connect_timeout
        if self._via is None and t.proxy_jump and not self._jumps:
            self._via = self._jump_shell(t.proxy_jump)  # made once: a reconnect reuses the jump's connection
        if self._via is not None:
            return self._via.open_tunnel(t.hostname, t.port)
        if t.proxy_command and not t.proxy_jump:
            try:
                return paramiko.ProxyCommand(t.proxy_command)
            except (paramiko.SSHException, OSError) as exc:
                raise ConnectError(f"ssh to {t.where}: ProxyCommand {t.proxy_command!r} failed: {exc}") from None
        try:
            sock = socket.create_connection((t.hostname, t.port), timeout=timeout)
        except ConnectionRefusedError:
            raise ConnectError(f"ssh to {t.where} refused: is sshd running?", hint="check ssh_host and ssh_port") from None
        except TimeoutError:
            raise ConnectError(f"ssh to {t.where} timed out after {timeout:g}s", hint="host down or port filtered?") from None
        except socket.gaierror as exc:
            raise ConnectError(f"ssh to {t.where}: cannot resolve {t.hostname}: {exc.strerror}") from None
        except OSError as exc:
            raise ConnectError(f"ssh to {t.where} unreachable: {exc.strerror or exc}") from None
        # paramiko leaves Nagle on: each small packet would wait for a delayed ACK (~40 ms/command).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if not hasattr(socket, "TCP_QUICKACK"):
            return sock
        return QuickAckSocket(sock.family, sock.type, sock.proto, fileno=sock.detach())

    def _jump_shell(self, spec: str) -> SshShell:
        """The last hop of ``ProxyJump a,b``: b reached through a, each with the same policies."""
        if self._hops >= _MAX_HOPS:
            raise ConnectError(f"ssh to {self.name}: ProxyJump chain longer than {_MAX_HOPS} hops (a config loop?)")
        shell: SshShell | None = None
        for hop in spec.split(","):
            user, _, hostport = hop.strip().removeprefix("ssh://").rpartition("@")
            host, sep, port = hostport.rpartition(":")
            if not sep or not port.isdigit():
                host, port = hostport, "22"
            s = self.settings
            hop_settings = SshSettings(
                host=host.strip("[]"), port=int(port), user=user or None, host_key_checking=s.host_key_checking,
                known_hosts=s.known_hosts, config_file=s.config_file, connect_timeout=s.connect_timeout,
            )
            shell = SshShell(hop_settings, jump=shell, hops=self._hops + 1)
            self._jumps.append(shell)
        assert shell is not None  # split() yields at least one hop
        return shell

    # -- authentication -----------------------------------------------------------------
    def _authenticate(self, t: Target, transport: paramiko.Transport) -> None:
        tried: list[str] = []
        allowed: list[str] = []

        def attempt(label: str, key: paramiko.PKey | None = None, password: str | None = None) -> bool:
            tried.append(label)
            try:
                if key is not None:
                    _auth(transport, lambda done: transport.auth_publickey(t.user, key, done))
                else:
                    _auth(transport, lambda done: transport.auth_password(t.user, password or "", done))
            except paramiko.BadAuthenticationType as exc:
                allowed[:] = list(exc.allowed_types)
                return False
            except paramiko.AuthenticationException:
                return False
            return bool(transport.is_authenticated())

        for path in t.key_files:
            key = load_key(path, required=t.explicit_key)
            if key is not None and attempt(f"key {path}", key):
                return
        secret = self.settings.password
        if secret and attempt("password", password=secret.reveal()):
            return
        if not t.key_files and not secret:
            # Like ssh without IdentityFile: the agent's keys, then the default key files.
            for key in agent_keys():
                if attempt(f"agent key {fingerprint(key)}", key):
                    return
            for base in _DEFAULT_KEYS:
                path = os.path.expanduser(f"~/.ssh/{base}")
                key = load_key(path, required=False)
                if key is not None and attempt(f"key {path}", key):
                    return
        what = ", ".join(tried) if tried else "nothing: no ssh_key, password, agent or ~/.ssh/id_* key"
        accepts = f"; the server accepts {', '.join(allowed)}" if allowed else ""
        raise ConnectError(
            f"authentication failed for {t.user}@{t.where} (tried {what}){accepts}",
            hint="check ssh_user and ssh_key: the public key must be in the server's authorized_keys",
        )

    # -- commands -----------------------------------------------------------------------
    def run(
        self,
        cmd: str,
        *,
        stdin: bytes | str | None = None,
        chdir: str | None = None,
        timeout: float | None = None,
        env: dict[str, str] | None = None,
    ) -> CommandResult:
        """Run ``cmd`` through ``/bin/sh -c`` on the host; a non-zero exit is a result, not an error.

        ``rc`` is -1 when the command died of a signal.
        """
        data = stdin.encode() if isinstance(stdin, str) else stdin
        script = shell_script(cmd, chdir, env)  # a bad env name fails here, before anything is sent
        what = MASKER.text(cmd)
        shown = what[:200]
        transport = self._ensure()
        runner = self._runner_on(transport)
        if runner is None:
            return self._exec.run(transport, cmd, shown, what, data, chdir, timeout, env, self.settings.connect_timeout)
        return self._run_on(runner, cmd, script, shown, what, data, timeout)

    def _runner_on(self, transport: paramiko.Transport) -> RemoteRunner | None:
        """The connection's runner (None: the host has none, or this is the connection's first
        command: that one launches the runner and takes an exec channel while python starts,
        unless more than ``_FLEET`` connections are up)."""
        runner = self._runner
        if runner is not None and runner.alive and self._runner_transport is transport:
            return runner
        with self._runner_lock:
            if self.no_runner is not None:
                return None
            runner = self._runner
            if runner is not None and runner.alive and self._runner_transport is transport:
                return runner
            if runner is not None:
                runner.close()
                self._runner = None
            if self._launch is None or self._runner_transport is not transport:
                if self._launch is not None:
                    self._launch.cancel()
                try:
                    self._launch, self._runner_transport = Launch(transport, self.settings.connect_timeout), transport
                except _NET_ERRORS as exc:
                    raise ConnectError(f"ssh to {self.name}: cannot open a session: {exc}") from None
                if not self._replaced and _open <= _FLEET:
                    # The connection's first command does not wait for python to start (~15 ms)
                    # on one host or a few. With many hosts at once it does: the extra exec
                    # channel costs the control node ~0.8 ms of CPU per host (shared by all of
                    # them) and each host a session, a login shell and sh (~4 ms of its CPU).
                    return None
            started = self._launch.poll(wait=True)  # the next ones do: from the second on, one path
            self._launch = None
            if isinstance(started, str):
                self.no_runner = started  # one exec channel per command from now on
                return None
            self._runner, self._replaced = started, True
            return started

    def _run_on(self, runner: RemoteRunner, cmd: str, script: str, shown: str, what: str, data: bytes | None,
                timeout: float | None) -> CommandResult:
        start = time.perf_counter()
        deadline = None if timeout is None else time.monotonic() + timeout
        finished = False
        job = runner.new_job()
        with self._jobs_lock:
            self._jobs[job] = runner  # an abort from now on kills it (its K frame follows the command's)
        try:
            try:
                runner.send(job, script, data, timeout)  # from here on, the command may be running
            except RunnerGone as exc:
                raise OutcomeUnknown(self._gone(exc, "while the command was sent") + f"; whether it took effect is unknown: "
                                     f"{shown}", what=what) from None
            # The host kills the command at its deadline and says so; the engine waits a little
            # longer, then kills it from here (a host that does not answer stays in doubt).
            finished = runner.wait(job, None if deadline is None else deadline + _DEADLINE_GRACE)
            if not finished:
                runner.kill(job)
                finished = runner.wait(job, time.monotonic() + _KILL_WAIT)
        except RunnerGone as exc:
            raise OutcomeUnknown(self._gone(exc, "during the command") + f"; whether it took effect is unknown: {shown}",
                                 what=what) from None
        finally:
            with self._jobs_lock:
                self._jobs.pop(job, None)
                why = self._stopped.pop(job, "")
            if not finished:
                runner.forget(job)
        if not finished:
            raise CommandTimeout(f"command ran past its timeout of {timeout:g}s on {self.name} and the host did not confirm "
                                 f"the kill of its process group: it may still be running; whether it took effect is "
                                 f"unknown: {shown}", what=what, stopped="kill of its process group (unconfirmed)")
        if why or job.how == HOW_KILLED:
            fate = f"its process group {job.pid} was " + ("killed" if job.how == HOW_KILLED else "gone already")
            if not why:  # killed by us after the host missed its deadline
                raise CommandTimeout(f"command ran past its timeout of {timeout:g}s on {self.name}: {fate}; whether it took "
                                     f"effect is unknown: {shown}", what=what, stopped="kill of its process group")
            raise OutcomeUnknown(f"command {why} on {self.name}: {fate}; whether it took effect is unknown: {shown}",
                                 what=what, stopped="kill of its process group")
        if job.how == HOW_DEADLINE:
            raise CommandTimeout(f"command ran past its timeout of {timeout:g}s on {self.name}: its process group {job.pid} "
                                 f"was killed; whether it took effect is unknown: {shown}", what=what,
                                 stopped="kill of its process group")
        return CommandResult(cmd=cmd, rc=job.rc, stdout=b"".join(job.out).decode(errors="replace"),
                             stderr=b"".join(job.err).decode(errors="replace"), duration=time.perf_counter() - start)

    def _gone(self, exc: RunnerGone, when: str) -> str:
        transport = self._transport
        if transport is None or not transport.is_active():
            return f"ssh connection to {self.name} dropped {when}"
        return f"the command runner on {self.name} ended {when} ({exc})"

    def _kill_command(self, cmd: str) -> CommandResult:
        """The exec path's kill of a process group: on a fresh channel of the same connection."""
        return self._exec.run(self._ensure(), cmd, cmd, cmd, None, None, 10, None, self.settings.connect_timeout)

    def interrupt(self, why: str = "aborted by the operator") -> bool:
        """Stop every command running on this host now (from any thread): its process group
        is killed on the host, and the thread that ran it reports it in doubt."""
        with self._jobs_lock:
            jobs = list(self._jobs.items())
            for job, _ in jobs:
                self._stopped[job] = why
        for job, runner in jobs:
            runner.kill(job)
        return self._exec.interrupt(why) or bool(jobs)

    def copy_file(self, path: str, dest: Any, *, chunk: int = 1 << 20) -> int:
        """Copy the host's file ``path`` into the binary file object ``dest`` over SFTP.

        Returns the byte count. A missing or unreadable file is a :class:`FileReadError`; a
        connection that drops half way is a :class:`ConnectError` (never a short copy)."""
        transport = self._ensure()
        try:
            sftp = paramiko.SFTPClient.from_transport(transport)
        except _NET_ERRORS as exc:
            raise ConnectError(f"ssh to {self.name}: cannot open SFTP: {exc}") from None
        if sftp is None:
            raise ConnectError(f"ssh to {self.name}: the server offers no SFTP subsystem")
        total = 0
        try:
            try:
                f = sftp.open(path, "rb")
            except OSError as exc:  # paramiko maps SFTP status codes to IOError/FileNotFoundError
                raise FileReadError(f"cannot read {path} on {self.name}: {exc.strerror or exc}",
                                    hint="check the path: it is read on the host (file_on: host)") from None
            with f:
                size = f.stat().st_size
                f.prefetch(size)  # pipelined reads: without it each read is one round trip
                while True:
                    data = f.read(chunk)
                    if not data:
                        break
                    dest.write(data)
                    total += len(data)
            if size is not None and total != size:
                raise ConnectError(f"SFTP copy of {path} from {self.name} stopped at {total} of {size} bytes")
        except (OSError, paramiko.SSHException, EOFError) as exc:
            raise ConnectError(f"ssh connection to {self.name} dropped while reading {path}: {exc}") from None
        finally:
            try:
                sftp.close()
            except _NET_ERRORS:
                pass
        return total

    def open_tunnel(self, host: str, port: int) -> paramiko.Channel:
        """A TCP connection from the remote host to ``host:port``, as a socket-like channel.

        PyMySQL accepts it in ``Connection.connect(sock)``: a channel has ``settimeout``,
        ``makefile('rb')``, ``sendall`` and ``close``.
        """
        transport = self._ensure()
        try:
            return transport.open_channel("direct-tcpip", (host, port), ("127.0.0.1", 0), timeout=self.settings.connect_timeout)
        except paramiko.ChannelException as exc:
            hint = "is a server listening there, and does sshd allow it (AllowTcpForwarding)?"
            raise ConnectError(f"ssh tunnel from {self.name} to {host}:{port} refused: {exc.text}", hint=hint) from None
        except _NET_ERRORS as exc:
            raise ConnectError(f"ssh tunnel from {self.name} to {host}:{port} failed: {exc}") from None

    def close(self) -> None:
        with self._runner_lock:
            if self._runner is not None:
                self._runner.close()
                self._runner = None
            if self._launch is not None:
                self._launch.cancel()
                self._launch = None
        with self._lock:
            if self._transport is not None:
                self._transport.close()
                self._transport = None
                _count_open(-1)
            for jump in reversed(self._jumps):
                jump.close()  # kept: a later run() reconnects through the same hops


# paramiko's own waits for the handshake and for an answer to authentication wake every 0.1 s
# (a lock with a timeout, the flags, the clock): with a hundred connections at once, each
# waiting seconds for a busy sshd, thousands of wakeups of the control node. Given an event,
# paramiko sets it when it is done or has failed; these wait for it once, then decide as
# paramiko's waits do (Transport.start_client, AuthHandler.wait_for_response).
def _negotiate(transport: paramiko.Transport, timeout: float) -> None:
    """The handshake; a transport that is still negotiating at ``timeout`` is left to the
    caller's next step to fail (``get_remote_server_key``: "No existing session"), as paramiko does."""
    done = threading.Event()
    transport.start_client(event=done)
    done.wait(timeout)
    if not transport.is_active():
        raise transport.get_exception() or paramiko.SSHException("Negotiation failed.")


def _auth(transport: paramiko.Transport, start: Any) -> None:
    """One authentication attempt, ``start(event)``: returns once the server accepted it;
    raises :class:`paramiko.AuthenticationException` (or its BadAuthenticationType) otherwise."""
    done = threading.Event()
    start(done)
    if not done.wait(transport.auth_timeout) and transport.is_active():
        raise paramiko.AuthenticationException("Authentication timeout.")
    if not transport.is_active():
        exc = transport.get_exception()
        if exc is None or isinstance(exc, EOFError):
            exc = paramiko.AuthenticationException("Authentication failed: transport shut down or saw EOF")
        raise exc
    if not transport.is_authenticated():
        exc = transport.get_exception()
        if isinstance(exc, paramiko.ssh_exception.PartialAuthentication):
            return  # more methods wanted: not authenticated, as paramiko's return value says
        raise exc or paramiko.AuthenticationException("Authentication failed.")


def _count_open(delta: int) -> None:
    global _open
    with _OPEN_LOCK:
        _open += delta
