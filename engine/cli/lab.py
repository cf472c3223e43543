"""``runbook lab up [--replicas N]|down|status|crash|load``: a disposable local lab for drills.

The lab is one primary ``db1`` and ``N`` replicas ``db2``… — private MariaDB servers
(``engine/mysql/instance.py``: own datadir, port, binary log; GTID replication, ROW binlogs,
``log_slave_updates``, replicas ``read_only``) — and a private OpenSSH server on loopback
through which every host is reached the way a remote database host is: shell over SSH, SQL
through the SSH connection (``mysql_via: tunnel``). Nothing of the machine's own MariaDB or SSH
configuration is touched, so a drill can fence, kill, fail over and roll back freely.

It lives in ``<journal dir>/lab`` (``$RUNBOOK_HOME/lab``, by default
``~/.local/state/runbook/lab``): ``lab up`` prints the inventory's path.

```
runbook lab up --replicas 2     # db1 primary, db2 and db3 replicas; prints the inventory path
runbook lab load shop           # the drill's shop on db1 (replicated) and a backup of it on the host
runbook lab status              # topology, lag, GTID positions; exits 1 when a server is down
runbook lab crash               # kill -9 db1's MariaDB under load, a transaction open (lab_crash)
runbook lab up                  # a crashed or stopped lab restarts on its own datadirs: crash recovery runs
runbook lab down                # stops everything and removes the lab
```
"""

from __future__ import annotations

import getpass
import json
import os
import secrets
import shlex
import shutil
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.cli import lab_sshd
from engine.cli.lab_sshd import LabError
from engine.mysql.instance import HOST, InstanceError, MariadbInstance, pid_runs

__all__ = ["HOST", "Lab", "LabError", "down", "is_up", "lab_dir", "mysql_pid", "status", "up"]

REPL_USER = "repl"
PRIMARY = "db1"


@dataclass
class Lab:
    dir: Path

    @property
    def state_file(self) -> Path:
        return self.dir / "lab.json"

    @property
    def inventory(self) -> Path:
        return self.dir / "inventory.yml"

    def state(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self.state_file.read_text()))
        except (OSError, ValueError):
            return {}

    def save(self, st: dict[str, Any]) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(st, indent=1))
        os.replace(tmp, self.state_file)

    def servers(self, st: dict[str, Any] | None = None) -> dict[str, MariadbInstance]:
        """The lab's servers by inventory name, primary first (as created; a failover does
        not rename them)."""
        st = self.state() if st is None else st
        return {name: server(self.dir, name, int(h["port"]), int(h["server_id"]), h["role"] == "replica")
                for name, h in dict(st.get("hosts") or {}).items()}


def server(d: Path, name: str, port: int, server_id: int, replica: bool) -> MariadbInstance:
    return MariadbInstance(d / name, port=port, server_id=server_id, replica=replica)


def lab_dir(journal_dir: Path) -> Path:
    return journal_dir.resolve() / "lab"


def sshd_alive(lab: Lab, st: dict[str, Any]) -> bool:
    """The lab's sshd runs (its pid, still running the lab's sshd_config: pids are reused)."""
    return pid_runs(st.get("sshd_pid"), str(lab.dir / "sshd_config"))


def mysql_pid(lab: Lab) -> int | None:
    """The primary's (``db1``'s) pid, also during crash recovery before its pid file exists."""
    srv = lab.servers().get(PRIMARY)
    pids = srv.pids() if srv is not None else []
    return pids[0] if pids else None


def _parallel(fn: Any, items: list[Any]) -> list[Any]:
    with ThreadPoolExecutor(max_workers=max(1, len(items))) as pool:
        return list(pool.map(fn, items))


def _start(srv: MariadbInstance, limit: float) -> None:
    try:
        srv.start(wait=limit)
    except InstanceError as exc:
        raise LabError(f"{srv.dir.name}: {exc.message}", hint=exc.hint) from None


def _restart(lab: Lab, st: dict[str, Any]) -> str:
    """Start what is down of an existing lab, on its own datadirs: never wiped, so a crashed
    server goes through InnoDB crash recovery, which is what a drill practises. A replica
    resumes replicating by itself (its position is crash-safe, in the datadir)."""
    did: list[str] = []
    down_now = [(n, s) for n, s in lab.servers(st).items() if not s.running]
    if down_now:
        _parallel(lambda ns: _start(ns[1], 600), down_now)
        did += [f"{n}: MariaDB restarted on its datadir {s.datadir} (its error log: {s.error_log})" for n, s in down_now]
    if not sshd_alive(lab, st):
        st["sshd_pid"] = lab_sshd.start(lab.dir, int(st["ssh_port"]))
        did.append("sshd restarted")
    lab.save(st)
    return "\n".join(did) + f"\ninventory: {lab.inventory}"


def up(lab: Lab, replicas: int | None = None) -> str:
    """Start the lab (or report it is already up, or restart what is down). Returns a summary."""
    st = lab.state()
    have = len(st.get("hosts") or {}) - 1
    if st and lab.inventory.exists() and all(s.initialized for s in lab.servers(st).values()) and have >= 0:
        if replicas is not None and replicas != have:
            raise LabError(f"the lab in {lab.dir} has {have} replica(s), not {replicas}",
                           hint="runbook lab down, then runbook lab up --replicas N (a new lab)")
        if is_up(lab):
            return f"lab already up: inventory {lab.inventory}"
        return _restart(lab, st)
    return _create(lab, replicas or 0)


def _create(lab: Lab, replicas: int) -> str:
    from engine.cli.lab_topology import replicate

    if replicas < 0 or replicas > 8:
        raise LabError(f"--replicas {replicas}: a lab has 0 to 8 replicas")
    down(lab, quiet=True)
    d = lab.dir
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    names = [f"db{i}" for i in range(1, replicas + 2)]
    servers = {n: server(d, n, 0, i + 1, i > 0) for i, n in enumerate(names)}
    password = secrets.token_hex(12)
    st: dict[str, Any] = {"hosts": {n: {"port": s.port, "server_id": s.server_id, "role": "replica" if s.replica else "primary"}
                                    for n, s in servers.items()},
                          "mysql_port": servers[PRIMARY].port, "datadir": str(servers[PRIMARY].datadir),
                          "replication": {"user": REPL_USER, "password": password}}
    lab.save(st)  # before anything starts: `lab down` finds what to stop whatever fails next
    ssh_port = lab_sshd.configure(d)
    st["ssh_port"] = ssh_port
    _parallel(lambda s: _start(s, 120), list(servers.values()))
    replicate(servers[PRIMARY], [servers[n] for n in names[1:]], REPL_USER, password)
    st["sshd_pid"] = lab_sshd.start(d, ssh_port)
    _write_inventory(lab, servers, ssh_port, password)
    lab.save(st)
    lines = [f"lab up: {n} MariaDB on {HOST}:{s.port} ({'replica of db1, read-only' if s.replica else 'primary'};"
             f" datadir {s.datadir})" for n, s in servers.items()]
    lines.append(f"sshd on {HOST}:{ssh_port}; replication user {REPL_USER} (GTID, ROW binlogs)")
    return "\n".join(lines) + f"\ninventory: {lab.inventory}"


def _write_inventory(lab: Lab, servers: dict[str, MariadbInstance], ssh_port: int, password: str) -> None:
    d = lab.dir
    hosts = []
    for n, s in servers.items():
        hosts.append(f"""    {n}:
      mysql_port: {s.port}
      datadir: {s.datadir}
      mysql_binlog_dir: {s.binlog_dir}
      # what mysql_service and innodb_recovery need to start and watch this server
      mysql_pid_file: {s.pid_file}
      mysql_error_log: {s.error_log}
      mysql_start_cmd: "{shlex.join(s.cmd())}"
""")
    listed = "".join(f"        {n}: {{}}\n" for n in list(servers)[1:])
    replicas = f"      hosts:\n{listed}" if listed else "      hosts: {}\n"
    lab.inventory.write_text(f"""# The local lab (runbook lab up): shell over SSH, SQL through the SSH tunnel.
# db1 is the primary; db2… replicate from it (GTID, ROW binlogs, log_slave_updates, read_only).
all:
  vars:
    ssh_host: {HOST}
    ssh_port: {ssh_port}
    ssh_user: {getpass.getuser()}
    ssh_key: {d / 'client_key'}
    ssh_known_hosts: {d / 'known_hosts'}
    ssh_config: {d / 'ssh_config'}
    mysql_user: root
    mysql_via: tunnel
    # the account replicas use to reach their source (replication: state following)
    replication_host: {HOST}
    replication_user: {REPL_USER}
    replication_password: {password}
  hosts:
{''.join(hosts)}  children:
    primary:
      hosts:
        {PRIMARY}: {{}}
    replicas:
{replicas}    drill:
      # the lab is scratch: runbooks/drill.yml targets this group (never a production one)
      hosts:
        {PRIMARY}: {{}}
""")


def down(lab: Lab, *, quiet: bool = False) -> str:
    st = lab.state()
    stopped = []
    if sshd_alive(lab, st):
        pid = int(st["sshd_pid"])
        os.kill(pid, signal.SIGTERM)
        end = time.monotonic() + 30
        while sshd_alive(lab, st) and time.monotonic() < end:
            time.sleep(0.05)
        if sshd_alive(lab, st):
            os.kill(pid, signal.SIGKILL)
        stopped.append("sshd")
    running = [(n, s) for n, s in lab.servers(st).items() if s.running]
    _parallel(lambda ns: ns[1].stop(30), running)
    stopped += [f"{n} mariadbd" for n, _ in running]
    if lab.dir.exists():
        shutil.rmtree(lab.dir, ignore_errors=True)
    if quiet:
        return ""
    return f"lab down ({', '.join(stopped) or 'nothing was running'}); removed {lab.dir}"


def is_up(lab: Lab) -> bool:
    """Is every server of the lab running? (``lab status`` exits non-zero when one is not.)"""
    servers = lab.servers()
    return bool(servers) and all(s.running for s in servers.values())


def status(lab: Lab) -> str:
    from engine.cli.lab_topology import describe

    st = lab.state()
    if not st:
        return f"lab is down (no lab in {lab.dir})"
    lines = describe(lab.servers(st))
    ssh = "running" if sshd_alive(lab, st) else "STOPPED"
    lines.append(f"sshd    {ssh} on {HOST}:{st.get('ssh_port')}")
    lines.append(f"inventory {lab.inventory}")
    return "\n".join(lines)
