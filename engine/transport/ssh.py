"""SSH adapter (paramiko): one connection per host, one channel per command.

The first ``run()`` connects; every later command and every MySQL tunnel opens a channel on the
same transport, so a command costs one channel round trip, not a handshake. No paramiko or socket
exception leaves this module: failures become a one-line :class:`ConnectError` (unreachable,
refused, host key, authentication, dropped connection) or :class:`CommandTimeout`. Host-key
checks and key loading live in :mod:`engine.transport.sshkeys`, under the same rule.
"""

from __future__ import annotations

import getpass
import logging
import os
import re
import select
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import paramiko

from engine.errors import CommandTimeout, ConnectError, FileReadError, OutcomeUnknown
from engine.model import CommandResult, SshSettings
from engine.secrets import MASKER
from engine.transport.sshcmd import remote_command, split_pid
from engine.transport.sshkeys import agent_keys, check_host_key, fingerprint, known_keys, load_key, prefer_known_key_types

_DEFAULT_KEYS = ("id_ed25519", "id_ecdsa", "id_rsa")
_CHUNK = 65536
_INLINE_STDIN = 16 * 1024  # within any server's first window (OpenSSH 2 MB, dropbear 24 KB): sendall cannot block
_MAX_HOPS = 5  # ProxyJump chains longer than this are a config loop
_NET_ERRORS = (paramiko.SSHException, OSError, EOFError)

# paramiko's transport thread logs its failures (a port that answers but does not speak SSH)
# with a traceback, which Python's last-resort handler prints on stderr. Ours is the one-line
# ConnectError; the library's log stays out of the operator's way.
logging.getLogger("paramiko").addHandler(logging.NullHandler())


@dataclass(frozen=True)
class _Target:
    """Where to connect once ``~/.ssh/config`` is applied: inventory settings win, config fills gaps."""

    hostname: str
    port: int
    user: str
    key_files: tuple[str, ...]
    explicit_key: bool  # ssh_key from the inventory: a missing or unreadable file is an error
    known_name: str  # the known_hosts name: ``host`` or ``[host]:port``
    proxy_jump: str | None
    proxy_command: str | None = None

    @property
    def where(self) -> str:
        return f"{self.hostname}:{self.port}"


def _resolve(s: SshSettings, use_config_jump: bool) -> _Target:
    """Apply ~/.ssh/config (or ``config_file``) under the inventory's explicit settings."""
    cfg: dict[str, Any] = {}
    path = os.path.expanduser(s.config_file or "~/.ssh/config")
    if os.path.isfile(path):
        try:
            cfg = dict(paramiko.SSHConfig.from_path(path).lookup(s.host))
        except (paramiko.SSHException, OSError, ValueError, KeyError) as exc:
            raise ConnectError(f"cannot read ssh config {path}: {exc}", hint="fix the file or set ssh config_file") from None
    elif s.config_file:
        raise ConnectError(f"ssh config file {s.config_file} does not exist", hint="fix the path in the inventory")
    hostname = str(cfg.get("hostname") or s.host)
    # SshSettings cannot tell an explicit port 22 from the default, so a config Port applies then.
    config_port = str(cfg.get("port", 22))
    if not config_port.isdigit():
        raise ConnectError(f"ssh config {path}: Port {config_port!r} of {s.host} is not a number")
    port = s.port if s.port != 22 else int(config_port)
    user = s.user or cfg.get("user") or getpass.getuser()
    if s.key_file:
        keys: tuple[str, ...] = (os.path.expanduser(s.key_file),)
    else:
        keys = tuple(os.path.expanduser(k) for k in cfg.get("identityfile", ()))
    alias = str(cfg.get("hostkeyalias") or hostname)
    jump = (s.proxy_jump or cfg.get("proxyjump")) if use_config_jump else None  # a hop of a chain ignores its own
    command = s.proxy_command
    if command:
        command = _expand_tokens(command, hostname, port if s.port != 22 else int(config_port), str(user))
    else:
        command = cfg.get("proxycommand")  # paramiko has expanded its tokens
    return _Target(
        hostname=hostname,
        port=port,
        user=str(user),
        key_files=keys,
        explicit_key=bool(s.key_file),
        known_name=alias if port == 22 else f"[{alias}]:{port}",
        proxy_jump=None if not jump or jump.lower() == "none" else str(jump),
        proxy_command=None if not command or str(command).lower() == "none" or not use_config_jump else str(command),
    )


def _expand_tokens(command: str, host: str, port: int, user: str) -> str:
    """OpenSSH's %h %p %r %% in a ProxyCommand."""
    return re.sub(r"%([hpr%])", lambda m: {"h": host, "p": str(port), "r": user, "%": "%"}[m.group(1)], command)


class SshShell:
    """Runs commands on one host over a single reused SSH connection.

    ```yaml
    db1: {ssh_host: 10.0.0.5, ssh_user: dba, ssh_key: ~/.ssh/id_ed25519, ssh_host_key_checking: strict}
    ```
    """

    def __init__(self, settings: SshSettings, *, jump: SshShell | None = None, hops: int = 0) -> None:
        self.settings = settings
        self._via = jump  # set for ProxyJump hops: the shell whose transport carries ours
        self._hops = hops
        self._jumps: list[SshShell] = []  # jump shells this one created and must close
        self._target: _Target | None = None
        self._transport: paramiko.Transport | None = None
        self._lock = threading.Lock()
        self._channels: dict[int, paramiko.Channel] = {}  # commands running now
        self._stopped: dict[int, str] = {}  # channel -> why interrupt() stopped it

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
                self._transport = self._connect()
            return self._transport

    def _connect(self) -> paramiko.Transport:
        if self._target is None:
            self._target = _resolve(self.settings, use_config_jump=self._via is None)
        t = self._target
        known_path = os.path.expanduser(self.settings.known_hosts or "~/.ssh/known_hosts")
        known = known_keys(known_path, t.known_name)
        sock = self._open_socket(t)
        transport: paramiko.Transport | None = None
        try:
            transport = paramiko.Transport(sock)
            transport.set_keepalive(30)  # long silent steps must not lose the connection to a NAT
            prefer_known_key_types(transport, known)
            transport.start_client(timeout=self.settings.connect_timeout)
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
                raise ConnectError(f"ssh to {t.where}: the port answers but does not speak SSH ({exc})",
                                   hint="check ssh_host and ssh_port: is sshd listening there?") from None
            raise ConnectError(f"ssh to {t.where} failed: {exc or type(exc).__name__}") from None

    def _open_socket(self, t: _Target) -> Any:
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
        return sock

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
    def _authenticate(self, t: _Target, transport: paramiko.Transport) -> None:
        tried: list[str] = []
        allowed: list[str] = []

        def attempt(label: str, key: paramiko.PKey | None = None, password: str | None = None) -> bool:
            tried.append(label)
            try:
                if key is not None:
                    transport.auth_publickey(t.user, key)
                else:
                    transport.auth_password(t.user, password or "")
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

        ``rc`` is -1 when the command died of a signal (paramiko does not decode ``exit-signal``).
        """
        start = time.perf_counter()
        remote = remote_command(cmd, chdir, env, timeout)
        data = stdin.encode() if isinstance(stdin, str) else stdin
        transport = self._ensure()
        try:
            chan = transport.open_session(timeout=self.settings.connect_timeout)
        except _NET_ERRORS as exc:
            raise ConnectError(f"ssh to {self.name}: cannot open a session: {exc}") from None
        # The timeout is the command's: connecting has its own (connect_timeout).
        deadline = None if timeout is None else time.perf_counter() + timeout
        shown = MASKER.text(cmd)[:200]
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
                raise OutcomeUnknown(f"command {why} on {self.name}: {self._kill_remote(out)}; whether it took effect is unknown: "
                                     f"{shown}", what=MASKER.text(cmd), stopped="kill of its process group")
            if not finished:
                raise CommandTimeout(f"command ran past its timeout of {timeout:g}s on {self.name}: {self._kill_remote(out)}; "
                                     f"whether it took effect is unknown: {shown}", what=MASKER.text(cmd),
                                     stopped="kill of its process group")
            if not transport.is_active():
                raise OutcomeUnknown(f"ssh connection to {self.name} dropped during the command; whether it took effect "
                                     f"is unknown: {shown}", what=MASKER.text(cmd))
            rc = chan.exit_status
        except _NET_ERRORS as exc:
            raise OutcomeUnknown(f"ssh connection to {self.name} dropped during the command ({exc or type(exc).__name__}); "
                                 f"whether it took effect is unknown: {shown}", what=MASKER.text(cmd)) from None
        finally:
            with self._lock:
                self._channels.pop(id(chan), None)
                self._stopped.pop(id(chan), None)
            chan.close()
        _, stdout = split_pid(b"".join(out))
        return CommandResult(
            cmd=cmd,
            rc=rc,
            stdout=stdout.decode(errors="replace"),
            stderr=b"".join(err).decode(errors="replace"),
            duration=time.perf_counter() - start,
        )

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
                select.select([fd], [], [], wait)

    def _kill_remote(self, out: list[bytes]) -> str:
        """Kill the command's process group on the host, by the pid it printed first: closing
        the channel alone leaves it running (sshd neither kills it nor, for root, relays
        signals). Says what was done."""
        pid, _ = split_pid(b"".join(out))
        if pid is None:
            return "it had not started, or its pid is unknown: it may still be running"
        try:
            # "kill -9 -PGID": dash's kill takes no "--"
            res = self.run(f"kill -9 -{pid} 2>/dev/null || kill -9 {pid} 2>/dev/null", timeout=10)
        except (ConnectError, OutcomeUnknown) as exc:
            return f"its process group {pid} could not be killed ({exc.message}): it may still be running"
        return f"its process group {pid} was killed" if res.rc == 0 else f"its process group {pid} was gone already"

    def interrupt(self, why: str = "aborted by the operator") -> bool:
        """Stop every command running on this host now (from any thread): its channel is
        closed, and the thread that ran it kills its process group on the host."""
        with self._lock:
            chans = list(self._channels.items())
            for key, _ in chans:
                self._stopped[key] = why
        for _, chan in chans:
            chan.close()
        return bool(chans)

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
        with self._lock:
            if self._transport is not None:
                self._transport.close()
                self._transport = None
            for jump in reversed(self._jumps):
                jump.close()  # kept: a later run() reconnects through the same hops
