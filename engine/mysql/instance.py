"""Private ``mariadbd`` instances: the one place that initialises, starts, stops and kills them.

The lab (``runbook lab up [--replicas N]``), the tests that kill, fill or fence a server, and the
benches each need a MariaDB of their own: own datadir, port, socket, pid file, error log and
binary log, started with ``--no-defaults`` so nothing of the machine's server (port 3306) is
read or touched. Each instance lives in one directory::

    DIR/data/             the datadir (mariadb-install-db; relay logs too: data/relay-bin.*)
    DIR/binlogs/binlog.*  the binary logs and their index (ROW format, GTIDs)
    DIR/tmp/              the tmpdir (never the machine's /tmp: see ``tmpdir``)
    DIR/mysqld.sock  DIR/mysqld.pid  DIR/mysqld.err

```python
inst = MariadbInstance(Path("/tmp/x/db1"), server_id=1)
inst.initialize()          # once; mariadb-install-db
inst.start()               # waits until it accepts connections
conn = inst.connect()      # PyMySQL as root over TCP
inst.kill()                # SIGKILL (a crash); inst.stop() is a clean shutdown
```
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pymysql

from engine.errors import RunbookError

MARIADBD = "/usr/sbin/mariadbd"
INSTALL_DB = "mariadb-install-db"
HOST = "127.0.0.1"


class InstanceError(RunbookError):
    """A private mariadbd could not be initialised, started or stopped."""


def free_port(host: str = HOST) -> int:
    """A TCP port nobody listens on right now (the kernel's choice)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def pid_runs(pid: object, needle: str) -> bool:
    """Is ``pid`` a live process whose command line holds ``needle`` (``--datadir=…``)?

    A pid file outlives a ``kill -9``, and pids are reused (pid_max is often 32768): a stale
    pid may by now be another program — the machine's own MariaDB, someone's shell. Nothing
    is signalled on a pid's word alone."""
    if not pid_alive(pid):
        return False
    try:
        # NUL-separated arguments, or one string when the program rewrote its title (sshd)
        text = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return re.search(re.escape(needle) + r"(\s|$)", text) is not None


def pid_alive(pid: object) -> bool:
    """Is ``pid`` a live process (a zombie is not)?"""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (OSError, IndexError):
        return True


@dataclass
class MariadbInstance:
    """One private MariaDB server in ``dir`` (see the module docstring for the layout).

    ``binlog``: write ROW binary logs with GTIDs and ``log_slave_updates`` (what point-in-time
    recovery and replication need; any server of a lab may become a replica or the primary).
    ``replica``: also start ``read_only`` (a replica of the lab).
    ``extra``: more ``--option=value`` arguments (buffer pool, packet size, InnoDB file sizes...);
    they are given to ``mariadb-install-db`` too, so InnoDB's file layout matches at start.
    """

    dir: Path
    port: int = 0
    server_id: int = 1
    binlog: bool = True
    replica: bool = False
    buffer_pool: str = "128M"
    extra: list[str] = field(default_factory=list)
    host: str = HOST
    _procs: list[subprocess.Popen[bytes]] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self.dir = Path(self.dir)
        if not self.port:
            self.port = free_port(self.host)

    # -- layout ---------------------------------------------------------------------------
    @property
    def datadir(self) -> Path:
        return self.dir / "data"

    @property
    def socket(self) -> Path:
        return self.dir / "mysqld.sock"

    @property
    def pid_file(self) -> Path:
        return self.dir / "mysqld.pid"

    @property
    def error_log(self) -> Path:
        return self.dir / "mysqld.err"

    @property
    def binlog_dir(self) -> Path:
        return self.dir / "binlogs"

    @property
    def binlog_basename(self) -> Path:
        return self.binlog_dir / "binlog"

    @property
    def tmpdir(self) -> Path:
        """The server's own tmpdir. At start-up mariadbd deletes every ``#sql*`` file of its
        tmpdir, whoever owns it: with the default (``$TMPDIR`` or ``/tmp``) each private start
        deleted the live internal temporary tables of every other server there, and MariaDB
        10.11 dies with SIGSEGV when the ``.MAI`` of an information_schema temporary table
        vanishes before it is opened (the machine's server on 3306 crashed that way)."""
        return self.dir / "tmp"

    def cmd(self) -> list[str]:
        """The server's command line (also what an inventory's ``mysql_start_cmd`` holds)."""
        args = [MARIADBD, "--no-defaults", f"--datadir={self.datadir}", f"--socket={self.socket}",
                f"--port={self.port}", f"--bind-address={self.host}", f"--pid-file={self.pid_file}",
                f"--log-error={self.error_log}", "--user=root", f"--innodb-buffer-pool-size={self.buffer_pool}",
                "--skip-name-resolve", f"--server-id={self.server_id}", "--max-allowed-packet=64M",
                f"--tmpdir={self.tmpdir}"]
        self.tmpdir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self.binlog:
            # report-host/port: the primary's SHOW SLAVE HOSTS names its replicas' addresses.
            args += [f"--log-bin={self.binlog_basename}", "--binlog-format=ROW", "--binlog-row-image=FULL",
                     "--log-slave-updates", f"--relay-log={self.datadir / 'relay-bin'}",
                     f"--report-host={self.host}", f"--report-port={self.port}"]
        if self.replica:
            # Replication resumes by itself after a restart, as on a real replica.
            args += ["--read-only"]
        return args + list(self.extra)

    # -- life cycle -----------------------------------------------------------------------
    @property
    def initialized(self) -> bool:
        return (self.datadir / "mysql").is_dir()

    def initialize(self) -> None:
        """``mariadb-install-db`` into an empty datadir (root over TCP, no password)."""
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.tmpdir.mkdir(exist_ok=True, mode=0o700)
        try:
            res = subprocess.run([INSTALL_DB, "--no-defaults", f"--datadir={self.datadir}", "--user=root",
                                  "--auth-root-authentication-method=normal", "--skip-test-db", f"--tmpdir={self.tmpdir}",
                                  *self.extra],
                                 capture_output=True, text=True, timeout=180)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise InstanceError(f"{INSTALL_DB} failed: {exc}", hint="run scripts/setup.sh") from None
        if res.returncode != 0:
            raise InstanceError(f"{INSTALL_DB} failed (exit {res.returncode}): {(res.stderr or res.stdout).strip()[-800:]}")

    def start(self, wait: float = 120.0) -> int:
        """Start the server (initialising it first when its datadir is empty) and wait until
        it accepts connections; ``wait=0`` returns at once (crash recovery may take long).
        Returns the pid."""
        if not os.path.exists(MARIADBD):
            raise InstanceError(f"{MARIADBD} is missing", hint="run scripts/setup.sh")
        if not self.initialized:
            self.initialize()
        if self.binlog:
            self.binlog_dir.mkdir(exist_ok=True, mode=0o700)
        with open(self.dir / "mysqld.out", "ab") as out:
            # A session of its own: it outlives the starting command and ignores its Ctrl-C.
            proc = subprocess.Popen(self.cmd(), stdout=out, stderr=out, stdin=subprocess.DEVNULL, start_new_session=True)
        self._procs.append(proc)
        if wait:
            self.wait_ready(wait, proc)
        return proc.pid

    def wait_ready(self, limit: float = 120.0, proc: subprocess.Popen[bytes] | None = None) -> None:
        """Until a root login succeeds; an exit at start-up fails with the error log's tail."""
        end = time.monotonic() + limit
        while True:
            if proc is not None and proc.poll() is not None:
                raise InstanceError(f"mariadbd on port {self.port} exited at start-up: {self.log_tail()}")
            try:
                self.connect(connect_timeout=2).close()
                return
            except pymysql.err.MySQLError:
                if time.monotonic() > end:
                    raise InstanceError(f"mariadbd did not accept connections on {self.host}:{self.port} within "
                                        f"{limit:.0f}s (log: {self.error_log})") from None
                time.sleep(0.1)

    def wait_exit(self, limit: float = 60.0) -> int | None:
        """Until the server this object started last exits (one that refuses to start);
        its exit code, None when it still runs after ``limit``."""
        if not self._procs:
            return None
        try:
            return self._procs[-1].wait(limit)
        except subprocess.TimeoutExpired:
            return None

    def log_tail(self, chars: int = 1500) -> str:
        try:
            return self.error_log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def pids(self) -> list[int]:
        """Live server processes of this datadir (the pid file is absent during crash recovery,
        and stale after a kill -9: a pid counts only when its command line names this datadir)."""
        found: list[int] = []
        mine = f"--datadir={self.datadir}"
        try:
            pid = int(self.pid_file.read_text().strip())
            if pid_runs(pid, mine):
                found.append(pid)
        except (OSError, ValueError):
            pass
        res = subprocess.run(["pgrep", "-f", f"[d]atadir={re.escape(str(self.datadir))}( |$)"],
                             capture_output=True, text=True)
        for p in res.stdout.split():
            if p.isdigit() and int(p) not in found and pid_runs(int(p), mine):
                found.append(int(p))
        return found

    @property
    def running(self) -> bool:
        return bool(self.pids())

    def _signal_and_wait(self, sig: int, limit: float) -> bool:
        for pid in self.pids():
            if not pid_runs(pid, f"--datadir={self.datadir}"):
                continue  # it ended (and its pid may be someone else's) since pids() looked
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        end = time.monotonic() + limit
        while self.pids() and time.monotonic() < end:
            time.sleep(0.05)
        for proc in self._procs:  # reap ours: a zombie would still answer kill -0
            try:
                proc.wait(0.5 if proc.poll() is None else 0)
            except subprocess.TimeoutExpired:
                pass
        return not self.pids()

    def stop(self, limit: float = 60.0) -> None:
        """A clean shutdown (SIGTERM), SIGKILL when it does not stop within ``limit``."""
        if not self._signal_and_wait(signal.SIGTERM, limit):
            self.kill()

    def kill(self) -> None:
        """SIGKILL: a crash (InnoDB recovers at the next start)."""
        if not self._signal_and_wait(signal.SIGKILL, 60):
            raise InstanceError(f"mariadbd of {self.datadir} survived SIGKILL")

    # -- SQL ------------------------------------------------------------------------------
    def connect(self, *, autocommit: bool = True, connect_timeout: float = 5,
                database: str | None = None) -> pymysql.connections.Connection:  # type: ignore[type-arg]
        return pymysql.connect(host=self.host, port=self.port, user="root", password="", autocommit=autocommit,
                               connect_timeout=connect_timeout, database=database)

    def sql(self, text: str, args: object = None) -> list[tuple[object, ...]]:
        """One statement on a connection of its own; its rows."""
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(text, args)
                return list(cur.fetchall())
        finally:
            conn.close()
