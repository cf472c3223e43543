"""``runbook lab up|down|status|crash``: a disposable local lab for drills.

The lab is a private MariaDB server (its own datadir, port, socket and binary log) and a
private OpenSSH server on loopback, with generated host and client keys, plus an inventory
that reaches the database the way a remote database host is reached: shell over SSH, SQL
through the SSH connection (``mysql_via: tunnel``). Nothing of the machine's own MariaDB or
SSH configuration is touched, so a drill can fence, snapshot and roll back freely.

```
runbook lab up        # prints the inventory path: .runbook/lab/inventory.yml
runbook play runbooks/drill.yml -i .runbook/lab/inventory.yml --yes
runbook lab crash     # kill -9 its MariaDB under load, with a transaction open (engine.cli.lab_crash)
runbook lab up        # a crashed or stopped lab restarts on its own datadir: crash recovery runs
runbook lab down      # stops everything and removes the lab
```
"""

from __future__ import annotations

import getpass
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from engine.errors import RunbookError

MARIADBD = "/usr/sbin/mariadbd"
SSHD = "/usr/sbin/sshd"
HOST = "127.0.0.1"


class LabError(RunbookError):
    """The lab could not be started or stopped."""


@dataclass
class Lab:
    dir: Path

    @property
    def state_file(self) -> Path:
        return self.dir / "lab.json"

    @property
    def inventory(self) -> Path:
        return self.dir / "inventory.yml"

    def state(self) -> dict[str, object]:
        try:
            return dict(json.loads(self.state_file.read_text()))
        except (OSError, ValueError):
            return {}


def lab_dir(journal_dir: Path) -> Path:
    return journal_dir.resolve() / "lab"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:  # a zombie is not alive
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return True


def _wait_port(port: int, proc: subprocess.Popen[bytes], log: Path, what: str, limit: float = 30.0) -> None:
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


def _run(cmd: list[str], what: str) -> None:
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LabError(f"{what} failed: {exc}") from None
    if res.returncode != 0:
        raise LabError(f"{what} failed (exit {res.returncode}): {(res.stderr or res.stdout).strip()[-800:]}")


def _start(cmd: list[str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        # A session of its own: the lab outlives this command and ignores the operator's Ctrl-C.
        return subprocess.Popen(cmd, stdout=out, stderr=out, stdin=subprocess.DEVNULL, start_new_session=True)


def mysqld_cmd(d: Path, port: int) -> list[str]:
    """The lab server's command line (also the inventory's ``mysql_start_cmd``)."""
    return [MARIADBD, "--no-defaults", f"--datadir={d / 'mysql'}", f"--socket={d / 'mysqld.sock'}", f"--port={port}",
            f"--bind-address={HOST}", f"--pid-file={d / 'mysqld.pid'}", f"--log-error={d / 'mysqld.err'}",
            "--user=root", "--innodb-buffer-pool-size=128M", "--skip-name-resolve",
            f"--log-bin={d / 'binlog'}", "--server-id=1", "--max-allowed-packet=64M"]


def mysql_pid(lab: Lab) -> int | None:
    """The lab server's pid: its pid file, the one the lab started, or (during crash recovery,
    before the pid file exists) a process whose command line names the lab's datadir."""
    try:
        pid: object = int((lab.dir / "mysqld.pid").read_text().strip())
    except (OSError, ValueError):
        pid = None
    if _alive(pid):
        return pid  # type: ignore[return-value]
    pid = lab.state().get("mysql_pid")
    if _alive(pid):
        return pid  # type: ignore[return-value]
    data = re.escape(str(lab.dir / "mysql"))
    res = subprocess.run(["pgrep", "-f", f"[d]atadir={data}( |$)"], capture_output=True, text=True)
    first = res.stdout.split()
    return int(first[0]) if res.returncode == 0 and first and first[0].isdigit() else None


def _restart(lab: Lab, st: dict[str, object]) -> str:
    """Start what is down of an existing lab, on its own datadir: never wiped, so a crashed
    server goes through InnoDB crash recovery, which is what a drill practises."""
    d = lab.dir
    did = []
    if mysql_pid(lab) is None:
        port = int(str(st["mysql_port"]))
        mysqld = _start(mysqld_cmd(d, port), d / "mysqld.out")
        _wait_port(port, mysqld, d / "mysqld.err", "mariadbd (crash recovery runs first after a crash)", limit=600)
        st["mysql_pid"] = mysqld.pid
        did.append(f"MariaDB restarted on its datadir {d / 'mysql'} (its error log: {d / 'mysqld.err'})")
    if not _alive(st.get("sshd_pid")):
        sshd = _start([SSHD, "-D", "-e", "-f", str(d / "sshd_config")], d / "sshd.log")
        _wait_port(int(str(st["ssh_port"])), sshd, d / "sshd.log", "sshd")
        st["sshd_pid"] = sshd.pid
        did.append("sshd restarted")
    lab.state_file.write_text(json.dumps(st))
    return "; ".join(did) + f"\ninventory: {lab.inventory}"


def up(lab: Lab) -> str:
    """Start the lab (or report it is already up). Returns a summary for the operator."""
    st = lab.state()
    if st and mysql_pid(lab) is not None and _alive(st.get("sshd_pid")):
        return f"lab already up: inventory {lab.inventory}"
    if st and (lab.dir / "mysql").is_dir() and lab.inventory.exists():
        return _restart(lab, st)
    down(lab, quiet=True)
    for exe in (MARIADBD, SSHD):
        if not os.path.exists(exe):
            raise LabError(f"{exe} is missing", hint="run scripts/setup.sh (installs openssh-server)")
    d = lab.dir
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    data = d / "mysql"
    _run(["mariadb-install-db", "--no-defaults", f"--datadir={data}", "--user=root",
          "--auth-root-authentication-method=normal", "--skip-test-db",
                    f"--tmpdir={d}"], "mariadb-install-db")
    mysql_port = _free_port()
    mysqld = _start(mysqld_cmd(d, mysql_port), d / "mysqld.out")
    _wait_port(mysql_port, mysqld, d / "mysqld.err", "mariadbd")

    for name in ("host_key", "client_key"):
        for f in (d / name, d / f"{name}.pub"):
            f.unlink(missing_ok=True)
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"runbook-lab-{name}", "-f", str(d / name)], "ssh-keygen")
    shutil.copy(d / "client_key.pub", d / "authorized_keys")
    os.makedirs("/run/sshd", exist_ok=True)
    ssh_port = _free_port()
    (d / "sshd_config").write_text("\n".join([
        f"ListenAddress {HOST}", f"Port {ssh_port}", f"HostKey {d / 'host_key'}",
        f"AuthorizedKeysFile {d / 'authorized_keys'}", f"PidFile {d / 'sshd.pid'}",
        "StrictModes no", "UsePAM no", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
        "PermitRootLogin prohibit-password", "AllowTcpForwarding yes", "MaxSessions 50",
        # restore and verify's from_dump read a backup on the host over SFTP
        "Subsystem sftp internal-sftp",
        # Debian's bash sources ~/.bashrc over ssh when SHLVL < 2; a database host's login
        # shell would not run the control machine's pyenv set-up either.
        "SetEnv SHLVL=1", ""]))
    host_pub = " ".join((d / "host_key.pub").read_text().split()[:2])
    (d / "known_hosts").write_text(f"[{HOST}]:{ssh_port} {host_pub}\n")
    os.chmod(d / "known_hosts", 0o600)
    sshd = _start([SSHD, "-D", "-e", "-f", str(d / "sshd_config")], d / "sshd.log")
    _wait_port(ssh_port, sshd, d / "sshd.log", "sshd")

    lab.inventory.write_text(f"""# The local lab (runbook lab up): shell over SSH, SQL through the SSH tunnel.
all:
  vars:
    mysql_user: root
    mysql_port: {mysql_port}
    mysql_via: tunnel
  hosts:
    db1:
      ssh_host: {HOST}
      ssh_port: {ssh_port}
      ssh_user: {getpass.getuser()}
      ssh_key: {d / 'client_key'}
      ssh_known_hosts: {d / 'known_hosts'}
      ssh_config: {d / 'ssh_config'}
      datadir: {data}
      # what mysql_service and innodb_recovery need to start and watch the lab's server
      mysql_pid_file: {d / 'mysqld.pid'}
      mysql_error_log: {d / 'mysqld.err'}
      mysql_start_cmd: "{shlex.join(mysqld_cmd(d, mysql_port))}"
  children:
    primary:
      hosts:
        db1: {{}}
""")
    (d / "ssh_config").write_text("")
    lab.state_file.write_text(json.dumps({"mysql_pid": mysqld.pid, "sshd_pid": sshd.pid, "mysql_port": mysql_port,
                                          "ssh_port": ssh_port, "datadir": str(data)}))
    return (f"lab up: MariaDB on {HOST}:{mysql_port} (datadir {data}), sshd on {HOST}:{ssh_port}\n"
            f"inventory: {lab.inventory}")


def down(lab: Lab, *, quiet: bool = False) -> str:
    st = lab.state()
    stopped = []
    pids = {"sshd_pid": st.get("sshd_pid"), "mysql_pid": mysql_pid(lab) if st else None}
    for key, name in (("sshd_pid", "sshd"), ("mysql_pid", "mariadbd")):
        pid = pids[key]
        if _alive(pid):
            assert isinstance(pid, int)
            os.kill(pid, signal.SIGTERM)
            end = time.monotonic() + 30
            while _alive(pid) and time.monotonic() < end:
                time.sleep(0.1)
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
            stopped.append(name)
    if lab.dir.exists():
        shutil.rmtree(lab.dir, ignore_errors=True)
    if quiet:
        return ""
    return f"lab down ({', '.join(stopped) or 'nothing was running'}); removed {lab.dir}"


def is_up(lab: Lab) -> bool:
    """Is the lab's MariaDB running? (``lab status`` exits non-zero when it is not.)"""
    return bool(lab.state()) and mysql_pid(lab) is not None


def status(lab: Lab) -> str:
    st = lab.state()
    if not st:
        return f"lab is down (no lab in {lab.dir})"
    db = "running" if mysql_pid(lab) is not None else "STOPPED (crashed or stopped: `runbook lab up` restarts it on its datadir)"
    ssh = "running" if _alive(st.get("sshd_pid")) else "STOPPED"
    return (f"MariaDB {db} on {HOST}:{st.get('mysql_port')} (datadir {st.get('datadir')})\n"
            f"sshd    {ssh} on {HOST}:{st.get('ssh_port')}\ninventory {lab.inventory}")
