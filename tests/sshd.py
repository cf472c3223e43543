"""A real OpenSSH server for the integration tests (a pytest plugin loaded by tests/conftest.py).

``sshd`` (session scope) starts ``/usr/sbin/sshd -D -e`` on a free loopback port with its own
host key, client key, authorized_keys and known_hosts in a temporary directory. ``start_sshd``
starts another one (for tests that must break or restart a server).

Why ``SetEnv SHLVL=1``: sshd runs every command through the user's login shell, and Debian's
bash sources ``~/.bashrc`` for a non-interactive shell when it sees ``SSH_CLIENT`` and a shell
level below 2. Here root's ``.bashrc`` runs ``pyenv init`` (~125 ms a command). With SHLVL=1
in the session environment bash starts at level 2 and skips ``.bashrc``; nothing else changes
(``ForceCommand`` would not help: it also runs through the login shell).
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from engine.model import HostKeyPolicy, SshSettings

SSHD = "/usr/sbin/sshd"
HOST = "127.0.0.1"


def free_port() -> int:
    """A loopback port nothing listens on (at the moment of asking)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _fingerprint(pub_line: str) -> str:
    blob = base64.b64decode(pub_line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)], check=True)


@dataclass
class SshdServer:
    """A running sshd: where it listens and the files a client needs to reach it."""

    dir: Path
    host: str
    port: int
    user: str
    key_file: str
    known_hosts: str
    host_key_fingerprint: str
    host_key_line: str  # ``[127.0.0.1]:PORT ssh-ed25519 AAAA...`` as in known_hosts
    config_file: str  # an empty ssh config, so the developer's ~/.ssh/config cannot interfere
    log: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def settings(self, **overrides: Any) -> SshSettings:
        base = SshSettings(
            host=self.host,
            port=self.port,
            user=self.user,
            key_file=self.key_file,
            host_key_checking=HostKeyPolicy.STRICT,
            known_hosts=self.known_hosts,
            config_file=self.config_file,
            connect_timeout=5.0,
        )
        return replace(base, **overrides)

    def host_vars_yaml(self, indent: int = 6) -> str:
        """The ``ssh_*`` inventory variables that reach this server, as YAML lines."""
        pad = " " * indent
        pairs = [("ssh_host", self.host), ("ssh_port", self.port), ("ssh_user", self.user), ("ssh_key", self.key_file),
                 ("ssh_known_hosts", self.known_hosts), ("ssh_config", self.config_file)]
        return "\n".join(f"{pad}{k}: {v}" for k, v in pairs)

    def drop_connections(self) -> None:
        """SIGKILL the per-connection sshd processes (this server's children): every TCP
        connection drops, the server keeps listening."""
        assert self.proc is not None
        children = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout.split()
        for pid in children:
            os.kill(int(pid), signal.SIGKILL)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


def _config(d: Path, port: int, extra: tuple[str, ...] = ()) -> str:
    return "\n".join(
        [
            f"ListenAddress {HOST}",
            f"Port {port}",
            f"HostKey {d / 'host_key'}",
            f"AuthorizedKeysFile {d / 'authorized_keys'}",
            f"PidFile {d / 'sshd.pid'}",
            "StrictModes no",  # the tmp dir is not owned the way sshd wants a home to be
            "UsePAM no",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PermitRootLogin yes",  # the tests run as root in the lab container
            "AllowTcpForwarding yes",  # MySQL through the SSH tunnel
            "MaxSessions 50",
            "Subsystem sftp internal-sftp",
            "SetEnv SHLVL=1",  # keep bash from sourcing ~/.bashrc (see the module docstring)
            *extra,
            "",
        ]
    )


def start_sshd(d: Path, extra: tuple[str, ...] = ()) -> SshdServer:
    """Start a fresh sshd with its own keys in ``d``; the caller calls ``stop()``. ``extra``:
    more sshd_config lines (the scale bench raises ``MaxStartups`` for hundreds of clients)."""
    if not os.path.exists(SSHD) or shutil.which("ssh-keygen") is None:
        pytest.fail(f"{SSHD} or ssh-keygen is missing: install openssh-server (run scripts/setup.sh)")
    if os.geteuid() == 0 and not os.path.isdir("/run/sshd"):
        os.makedirs("/run/sshd", mode=0o755)  # sshd's privilege separation directory
    d.mkdir(parents=True, exist_ok=True)
    _keygen(d / "host_key")
    _keygen(d / "client_key")
    shutil.copy(d / "client_key.pub", d / "authorized_keys")
    (d / "ssh_config").write_text("")
    host_pub = (d / "host_key.pub").read_text().strip()
    last_error = ""
    for _ in range(3):  # the free port may be taken between asking and binding: try again
        port = free_port()
        known_line = f"[{HOST}]:{port} {' '.join(host_pub.split()[:2])}"
        (d / "known_hosts").write_text(known_line + "\n")
        (d / "sshd_config").write_text(_config(d, port, extra))
        log = d / "sshd.log"
        server = SshdServer(
            dir=d,
            host=HOST,
            port=port,
            user=getpass.getuser(),
            key_file=str(d / "client_key"),
            known_hosts=str(d / "known_hosts"),
            host_key_fingerprint=_fingerprint(host_pub),
            host_key_line=known_line,
            config_file=str(d / "ssh_config"),
            log=log,
        )
        with open(log, "ab") as out:
            server.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(d / "sshd_config")], stdout=out, stderr=out)
        if _wait_ready(server):
            return server
        server.stop()
        last_error = log.read_text(errors="replace")[-2000:]
    pytest.fail(f"sshd did not start:\n{last_error}")


def _wait_ready(server: SshdServer, limit: float = 10.0) -> bool:
    """True once the port answers with an SSH banner; False if sshd died or never answered."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if server.proc is None or server.proc.poll() is not None:
            return False
        try:
            with socket.create_connection((server.host, server.port), timeout=1) as s:
                if s.recv(8).startswith(b"SSH-"):
                    return True
        except OSError:
            time.sleep(0.02)
    return False


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshdServer]:
    """A real OpenSSH server on loopback, shared by the whole test session."""
    server = start_sshd(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()


@pytest.fixture
def private_sshd(tmp_path: Path) -> Iterator[SshdServer]:
    """An sshd of this test's own, for tests that stop it or break its files."""
    server = start_sshd(tmp_path / "sshd")
    yield server
    server.stop()
