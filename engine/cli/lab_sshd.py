"""The lab's private OpenSSH server: generated host and client keys, loopback only.

Every lab host (``db1``, ``db2``…) is reached through it, as a remote database host is: shell
over SSH, SQL through the SSH connection (``mysql_via: tunnel``), SFTP for files.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from engine.errors import RunbookError
from engine.mysql.instance import HOST, free_port

SSHD = "/usr/sbin/sshd"


class LabError(RunbookError):
    """The lab could not be started or stopped."""


def run(cmd: list[str], what: str) -> None:
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LabError(f"{what} failed: {exc}") from None
    if res.returncode != 0:
        raise LabError(f"{what} failed (exit {res.returncode}): {(res.stderr or res.stdout).strip()[-800:]}")


def wait_port(port: int, proc: subprocess.Popen[bytes], log: Path, what: str, limit: float = 30.0) -> None:
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise LabError(f"{what} exited at start-up: {log.read_text(errors='replace')[-800:] if log.exists() else ''}")
        try:
            with socket.create_connection((HOST, port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise LabError(f"{what} did not listen on {HOST}:{port} within {limit:.0f}s (log: {log})")


def configure(d: Path) -> int:
    """Keys, sshd_config, known_hosts for a new lab in ``d``; returns the port sshd will use."""
    if not os.path.exists(SSHD):
        raise LabError(f"{SSHD} is missing", hint="run scripts/setup.sh (installs openssh-server)")
    for name in ("host_key", "client_key"):
        for f in (d / name, d / f"{name}.pub"):
            f.unlink(missing_ok=True)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"runbook-lab-{name}", "-f", str(d / name)], "ssh-keygen")
    shutil.copy(d / "client_key.pub", d / "authorized_keys")
    os.makedirs("/run/sshd", exist_ok=True)
    port = free_port()
    (d / "sshd_config").write_text("\n".join([
        f"ListenAddress {HOST}", f"Port {port}", f"HostKey {d / 'host_key'}",
        f"AuthorizedKeysFile {d / 'authorized_keys'}", f"PidFile {d / 'sshd.pid'}",
        "StrictModes no", "UsePAM no", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
        "PermitRootLogin prohibit-password", "AllowTcpForwarding yes", "MaxSessions 50", "MaxStartups 50:30:100",
        # restore and verify's from_dump read a backup on the host over SFTP
        "Subsystem sftp internal-sftp",
        # Debian's bash sources ~/.bashrc over ssh when SHLVL < 2; a database host's login
        # shell would not run the control machine's pyenv set-up either.
        "SetEnv SHLVL=1", ""]))
    host_pub = " ".join((d / "host_key.pub").read_text().split()[:2])
    (d / "known_hosts").write_text(f"[{HOST}]:{port} {host_pub}\n")
    os.chmod(d / "known_hosts", 0o600)
    (d / "ssh_config").write_text("")
    return port


def start(d: Path, port: int) -> int:
    """Start the lab's sshd (configured by :func:`configure`); returns its pid."""
    with open(d / "sshd.log", "ab") as out:
        # A session of its own: the lab outlives this command and ignores the operator's Ctrl-C.
        proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(d / "sshd_config")], stdout=out, stderr=out,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    wait_port(port, proc, d / "sshd.log", "sshd")
    return proc.pid
