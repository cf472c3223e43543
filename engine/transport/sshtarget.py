"""Where an SSH connection goes: the inventory's settings over ``~/.ssh/config`` (or the
inventory's ``config_file``), ProxyJump/ProxyCommand, and the client socket's TCP options.
Like the rest of :mod:`engine.transport`, no paramiko or OS exception leaves it."""

from __future__ import annotations

import getpass
import os
import re
import socket
from dataclasses import dataclass
from typing import Any

import paramiko

from engine.errors import ConnectError
from engine.model import SshSettings
from engine.transport.sshkeys import by_file


@dataclass(frozen=True)
class Target:
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


def resolve(s: SshSettings, use_config_jump: bool) -> Target:
    """Apply ~/.ssh/config (or ``config_file``) under the inventory's explicit settings."""
    cfg: dict[str, Any] = {}
    path = os.path.expanduser(s.config_file or "~/.ssh/config")
    if os.path.isfile(path):
        try:
            cfg = dict(by_file("ssh_config", path, paramiko.SSHConfig.from_path).lookup(s.host))
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
    return Target(
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


class QuickAckSocket(socket.socket):
    """A client socket that acknowledges every segment at once (Linux ``TCP_QUICKACK``).

    sshd leaves Nagle on until a session starts, so after authentication its answer to our
    first channel open waits for the ACK of its previous small write, which the kernel delays
    by 40 ms when we have nothing to send: 40 ms on every connection's first command."""

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        data = super().recv(bufsize, flags)
        try:
            self.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)  # the kernel clears it again: set it each time
        except OSError:
            pass
        return data
