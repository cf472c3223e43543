"""``mysql_service``: start, stop, restart or look at the database server process on its host.

systemd when the host has the unit (``mariadb``, ``mysql`` or ``mysqld``, or inventory
``mysql_service_name``), otherwise a start command (``start_cmd:`` or inventory
``mysql_start_cmd``, e.g. the ``mariadbd`` command line) and a signal to stop it.

Is it running? A server doing crash recovery has no pid file yet (MariaDB and MySQL write it
once InnoDB has started) and does not listen yet, so the probe asks, in order: systemd's
state; the pid file (``pid_file:`` / ``mysql_pid_file``); any ``mysqld``/``mariadbd`` process;
the port. A process counts only when it is THIS server — its command line names the datadir
(``datadir:`` / inventory ``datadir``, else ``@@datadir`` when the server answers) or its
working directory is the datadir; with no datadir known, its command line names the port or
socket: a stale pid file whose pid another server now holds never gets that server stopped.
Starting a server that is already running would start a second one on the same files: the
probe makes ``started`` idempotent.
"""

from __future__ import annotations

import shlex
import time
from typing import Any, ClassVar

from engine.actions.base import Action, Probe, duration_problem, register
from engine.language.durations import format_duration, parse_duration
from engine.errors import ActionError, CommandTimeout, ConnectError, SqlError
from engine.model import Status, StepResult

STATES = ("started", "stopped", "restarted", "status")
UNITS = ("mariadb", "mysql", "mysqld")


@register
class MysqlService(Action):
    """Start, stop or restart the server process, or report its status.

    ```yaml
    - name: Start the crashed server (do not wait: recovery may take long; watch it instead)
      mysql_service: {state: started, wait: false}
    - innodb_recovery: {timeout: 30m}
    - name: Is it running?
      mysql_service: {state: status}
      register: svc          # running, pid, accepting, method, unit
    ```

    ``state``: ``started`` | ``stopped`` | ``restarted`` | ``status``. ``wait`` (default
    true): after a start, until the server accepts connections (``false``: once its process
    runs). A stop always waits until the process is gone. Both within ``timeout`` (default 10m). ``method``: ``auto`` (systemd when the
    unit exists, else the command) | ``systemd`` | ``command``. Inventory variables:
    ``mysql_service_name``, ``mysql_start_cmd``, ``mysql_stop_cmd``, ``mysql_pid_file``,
    ``datadir``, ``mysql_port``. Registers ``running``, ``pid``, ``accepting``, ``method``,
    ``unit``. Stopping a server that answers checks its identity first (``mysql_identity``).

    ``options`` (e.g. ``[--read-only]``: a crashed server comes back fenced until verified) apply
    to this start only: appended to the start command, or given to systemd as ``MYSQLD_OPTS``
    for the one start (MariaDB's ``mariadb.service`` passes it to the server; MySQL's units do
    not — check the effect, e.g. ``@@read_only``, once it answers).
    """

    name = "mysql_service"
    mutating = True
    idempotent = True
    # Not the executor's guard: a server that is down has no identity to read; stopping one
    # that answers is checked here (_guard), starting one is harmless.
    identity_guard = ""
    params_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["state"],
        "properties": {
            "state": {"enum": list(STATES)},
            "wait": {"anyOf": [{"type": "boolean"}, {"type": "string"}]},
            "timeout": {"anyOf": [{"type": "number", "minimum": 0}, {"type": "string"}], "description": "default 10m"},
            "method": {"enum": ["auto", "systemd", "command"]},
            "service": {"type": "string", "minLength": 1, "description": "systemd unit"},
            "start_cmd": {"type": "string", "minLength": 1},
            "stop_cmd": {"type": "string", "minLength": 1},
            "pid_file": {"type": "string", "minLength": 1},
            "datadir": {"type": "string", "minLength": 1},
            "port": {"anyOf": [{"type": "integer", "minimum": 1, "maximum": 65535}, {"type": "string"}]},
            "options": {"type": "array", "items": {"type": "string", "pattern": "^--[A-Za-z0-9_-]+(=.*)?$"},
                        "description": "server options for this start only (e.g. [--read-only]): appended to the start "
                                       "command, or passed through systemd's MYSQLD_OPTS (MariaDB's units read it)"},
        },
    }

    @classmethod
    def static_problems(cls, args: Any) -> list[tuple[str, str]]:
        return duration_problem(args, "timeout")

    # -- settings ------------------------------------------------------------------------------
    def _opt(self, key: str, host_var: str | None = None) -> Any:
        from engine.inventory.connection import render_host_var

        value = (self.args or {}).get(key)
        if value is None and host_var is not None:
            value = render_host_var(self.ctx.host, host_var)
        return value

    def _run(self, cmd: str, timeout: float = 60) -> tuple[int, str, str]:
        res = self.ctx.shell().run(cmd, timeout=timeout)
        return res.rc, res.stdout, res.stderr

    def _unit(self) -> str | None:
        """The systemd unit to use, or None for the command method (asked once per step)."""
        if not hasattr(self, "_unit_found"):
            self._unit_found = self._find_unit()
        return self._unit_found

    def _find_unit(self) -> str | None:
        method = (self.args or {}).get("method", "auto")
        if method == "command":
            return None
        unit = self._opt("service", "mysql_service_name")
        if method == "auto" and self._opt("start_cmd", "mysql_start_cmd"):
            return None  # an explicit start command wins over guessing a unit
        rc, _, _ = self._run("command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]")
        if rc != 0:
            if method == "systemd":
                raise ActionError("method: systemd, but systemd does not run on this host", hint="use method: command with start_cmd")
            return None
        for candidate in [unit] if unit else UNITS:
            rc, out, _ = self._run(f"systemctl show -p LoadState --value {shlex.quote(str(candidate))}")
            if rc == 0 and out.strip() == "loaded":
                return str(candidate)
        if method == "systemd" or unit:
            raise ActionError(f"no systemd unit {unit or ' / '.join(UNITS)} on this host", hint="set service: or mysql_service_name")
        return None

    def _port(self) -> int:
        from engine.inventory import mysql_settings

        port = self._opt("port")
        return int(port) if port is not None else mysql_settings(self.ctx.host).port

    # -- the probe -------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        unit = self._unit()
        pid: int | None = None
        running = False
        how = ""
        if unit is not None:
            _, out, _ = self._run(f"systemctl show -p ActiveState -p MainPID {shlex.quote(unit)}")
            props = dict(line.partition("=")[::2] for line in out.splitlines() if "=" in line)
            active = props.get("ActiveState", "?")
            # "activating": a Type=notify server still doing crash recovery
            running = active in ("active", "activating", "reloading")
            main_pid = props.get("MainPID", "0")
            pid = int(main_pid) if running and main_pid.isdigit() and main_pid != "0" else None
            how = f"systemd unit {unit}: {active}"
        else:
            found = self._find_process()
            if found is not None:
                pid, how = found
                running = True
        accepting = self._accepting()
        if not running and accepting:
            running, how = True, f"port {self._port()} accepts connections"
        return {"running": running, "pid": pid, "accepting": accepting, "method": "systemd" if unit else "command",
                "unit": unit, "seen_by": how or "no process found"}

    def _datadir(self) -> str | None:
        """This server's datadir: ``datadir:`` / inventory ``datadir``, else what the server says
        (``@@datadir``, asked once per step: a server that is down says nothing)."""
        datadir = self._opt("datadir", "datadir")
        if datadir:
            return str(datadir)
        if not hasattr(self, "_server_datadir"):
            from engine.actions.guard import global_variables

            self._server_datadir: str | None = None
            try:
                self._server_datadir = global_variables(self.ctx.sql(), ["datadir"])["datadir"] or None
            except (ConnectError, SqlError, CommandTimeout):
                self.ctx.conns.reset_sql()  # down or recovering: the port and socket identify it
        return self._server_datadir

    def _ours_sh(self) -> str:
        """A shell function ``ours PID``: true when PID is THIS server — a live (not zombie)
        ``mysqld``/``mariadbd`` whose command line names this datadir or whose working directory
        is this datadir (mysqld chdirs there at start-up, however the datadir was given); with
        no datadir known, whose command line names this port or socket. A pid file outlives a
        ``kill -9`` and pids are reused: on a machine with several servers the pid of a dead one
        may by now be another ``mariadbd``, whose name alone proves nothing."""
        alive = ("kill -0 \"$1\" 2>/dev/null && ! grep -q ') Z ' /proc/$1/stat 2>/dev/null"
                 " && grep -Eqx 'mysqld|mariadbd' /proc/$1/comm 2>/dev/null")
        datadir = self._datadir()
        cwd = ""
        if datadir:
            d = datadir.rstrip("/") or "/"
            names = [f"--datadir={d}", f"--datadir={d}/"]
            cwd = (f" || {{ c=$(readlink /proc/$1/cwd 2>/dev/null) && [ -n \"$c\" ]"
                   f" && [ \"$c\" = \"$(readlink -f {shlex.quote(d)} 2>/dev/null)\" ]; }}")
        else:
            from engine.inventory import mysql_settings

            socket = mysql_settings(self.ctx.host).socket
            names = [f"--port={self._port()}", *([f"--socket={socket}"] if socket else [])]
        args = " ".join(f"-e {shlex.quote(n)}" for n in names)
        return (f"ours() {{ {alive} && {{ tr '\\0' '\\n' </proc/$1/cmdline 2>/dev/null | grep -Fqx {args}{cwd}; }}; }}")

    def _find_process(self) -> tuple[int, str] | None:
        """(pid, how it was found) of this server's process: the pid file's pid when it is this
        server (see ``_ours_sh``), else a ``mysqld``/``mariadbd`` that is (a server doing crash
        recovery has no pid file yet); None when none runs."""
        pid_file = self._opt("pid_file", "mysql_pid_file")
        read = f"p=$(cat {shlex.quote(str(pid_file))} 2>/dev/null); " if pid_file else "p=; "
        rc, out, _ = self._run(f"{self._ours_sh()}; {read}"
                               "if [ -n \"$p\" ] && ours \"$p\"; then echo \"$p pid_file\"; exit 0; fi; "
                               "for p in $(pgrep -x 'mysqld|mariadbd'); do ours \"$p\" && { echo \"$p search\"; exit 0; }; done; "
                               "exit 1")
        words = out.split()
        if rc != 0 or len(words) != 2 or not words[0].isdigit():
            return None
        datadir = self._datadir()
        whose = f"datadir {datadir}" if datadir else f"port {self._port()}"
        how = f"pid file {pid_file}" if words[1] == "pid_file" else f"a server process of {whose}"
        return int(words[0]), how

    def _accepting(self) -> bool | None:
        """Does the server's port accept a TCP connection on the host (loopback or mysql_host)?
        None when the host has neither bash nor nc to try."""
        from engine.inventory import mysql_settings

        port = self._port()
        hosts = ["127.0.0.1"]
        configured = mysql_settings(self.ctx.host).host
        if configured not in hosts and configured != "localhost":
            hosts.append(configured)  # a server bound to one address only
        probes = " || ".join(f"bash -c {shlex.quote(f'exec 3<>/dev/tcp/{h}/{port}')} 2>/dev/null || "
                             f"nc -z -w 2 {shlex.quote(h)} {port} 2>/dev/null" for h in hosts)
        rc, _, _ = self._run(probes, timeout=15)
        if rc == 0:
            return True
        if not hasattr(self, "_port_tool"):
            self._port_tool = self._run("command -v bash >/dev/null 2>&1 || command -v nc >/dev/null 2>&1")[0] == 0
        return False if self._port_tool else None

    def _ready(self) -> bool:
        """Accepting connections; without a tool to test the port, the pid file (the server
        writes it once InnoDB has started, just before it listens)."""
        accepting = self._accepting()
        if accepting is not None:
            return accepting
        pid_file = self._opt("pid_file", "mysql_pid_file")
        return bool(pid_file) and self._run(f"test -s {shlex.quote(str(pid_file))}")[0] == 0

    def probe(self) -> Probe | None:
        state = self.args["state"]
        if state in ("restarted", "status"):
            return None
        st = self.status()
        if state == "started":
            would = "start the server"
            if not st["running"]:
                diagnosis, _ = self._log_diagnosis()
                would += f" (its last start failed: {diagnosis})" if diagnosis else ""
            return Probe(done=st["running"], state=st, would=would)
        return Probe(done=not st["running"], state=st, would=f"stop the server (pid {st['pid']})")

    def check(self) -> StepResult:
        if self.args["state"] == "status":
            return self.apply()  # read-only
        return super().check()

    # -- changes ---------------------------------------------------------------------------------
    def apply(self) -> StepResult:
        state = self.args["state"]
        timeout = parse_duration((self.args or {}).get("timeout", "10m"))
        wait = (self.args or {}).get("wait", True)
        wait = wait if isinstance(wait, bool) else str(wait).lower() in ("1", "true", "yes", "on")
        if state == "status":
            st = self.status()
            word = "running" if st["running"] else "not running"
            extra = ", accepting connections" if st["accepting"] else ", not accepting connections"
            return StepResult(Status.OK, msg=f"server {word}{extra if st['running'] else ''} ({st['seen_by']})", data=st)
        start = time.monotonic()
        if state in ("stopped", "restarted"):
            self._stop(timeout, True)  # a stop always waits for the process to exit: the probe confirms it
        if state in ("started", "restarted"):
            self._start(timeout, wait)
        st = self.status()
        verb = {"started": "started", "stopped": "stopped", "restarted": "restarted"}[state]
        note = "" if wait or state == "stopped" else " (not waiting for connections: watch it with innodb_recovery)"
        return StepResult(Status.CHANGED, msg=f"server {verb} in {format_duration(time.monotonic() - start)}{note} ({st['seen_by']})",
                          data=st)

    def _start(self, timeout: float, wait: bool) -> None:
        unit = self._unit()
        launched: int | None = None
        options = [str(o) for o in (self.args or {}).get("options") or []]
        if unit is not None:
            start = f"systemctl start {'--no-block ' if not wait else ''}{shlex.quote(unit)}"
            if options:  # for this start only: the environment is unset again whatever happens
                env = shlex.quote("MYSQLD_OPTS=" + " ".join(options))
                start = f"systemctl set-environment {env} && {{ {start}; rc=$?; systemctl unset-environment MYSQLD_OPTS; exit $rc; }}"
            rc, out, err = self._run(start, timeout=timeout)
            if rc != 0:
                raise self._start_failed(f"systemctl start {unit} failed (exit {rc}): {(err or out).strip()[-400:]}",
                                         f"journalctl -u {unit} -n 50 says more")
        else:
            cmd = self._opt("start_cmd", "mysql_start_cmd")
            if not cmd:
                raise ActionError("no way to start the server: no systemd unit and no start command",
                                  hint="set start_cmd: or mysql_start_cmd in the inventory (the server's command line)")
            # A session of its own, detached from this shell: the server outlives the SSH channel.
            cmd = " ".join([str(cmd), *(shlex.quote(o) for o in options)])
            rc, out, err = self._run(f"setsid sh -c {shlex.quote('exec ' + cmd)} </dev/null >/dev/null 2>&1 & echo $!")
            if rc != 0 or not out.strip().isdigit():
                raise ActionError(f"start command failed (exit {rc}): {err.strip()[-400:]}")
            launched = int(out.strip())
        end = time.monotonic() + 60
        while not self.status()["running"]:
            if launched is not None and self._run(f"kill -0 {launched} 2>/dev/null")[0] != 0:
                raise self._start_failed("the server exited right after it was started", "")
            if unit is not None and self._run(f"systemctl is-failed --quiet {shlex.quote(unit)}")[0] == 0:
                raise self._start_failed(f"systemd unit {unit} failed to start", f"journalctl -u {unit} -n 50 says more")
            if time.monotonic() > end:
                raise ActionError("waited 1m for the server process to appear", hint="see the server's error log")
            time.sleep(0.5)
        if wait:
            end = time.monotonic() + timeout
            while not self._ready():
                if not self.status()["running"]:
                    raise self._start_failed("the server stopped before it accepted connections", "")
                if time.monotonic() > end:
                    raise ActionError(f"waited {format_duration(timeout)} for the server to accept connections",
                                      hint="crash recovery may still run: watch it with innodb_recovery")
                time.sleep(0.5)

    def _log_diagnosis(self) -> tuple[str | None, str]:
        """(what the error log says went wrong at the server's last start, or None; its last lines)."""
        from engine.mysql.error_log import LogTail, locate_error_log
        from engine.mysql.recovery_log import parse_text
        from engine.mysql.recovery_state import RecoveryState

        try:
            path, _ = locate_error_log(self.ctx, None)
            text = LogTail(self.ctx.shell(), path).since_last_start()
        except ActionError:
            return None, ""
        st = RecoveryState().feed_all(parse_text(text))
        last = " | ".join(line.strip() for line in text.strip().splitlines()[-3:])
        if st.fatal is not None and st.fatal.fatal is not None:
            f = st.fatal.fatal
            return (f"{f.title}: {f.diagnosis} (error log {path}: {st.fatal.line.raw.strip()}) — next: {f.next_step}",
                    last)
        return None, f"error log {path}: {last or 'nothing written'}"

    def _start_failed(self, what: str, hint: str) -> ActionError:
        """The start failed: say why from the error log when it tells (a fatal recovery line)."""
        diagnosis, last = self._log_diagnosis()
        if diagnosis:
            return ActionError(f"{what}: {diagnosis}")
        return ActionError(f"{what} ({last or 'no error log found'})", hint=hint or None)

    def _stop(self, timeout: float, wait: bool) -> None:
        self._guard()
        unit = self._unit()
        if unit is not None:
            rc, out, err = self._run(f"systemctl stop {'--no-block ' if not wait else ''}{shlex.quote(unit)}", timeout=timeout)
            if rc != 0:
                raise ActionError(f"systemctl stop {unit} failed (exit {rc}): {(err or out).strip()[-400:]}")
            return
        cmd = self._opt("stop_cmd", "mysql_stop_cmd")
        if cmd:
            rc, out, err = self._run(str(cmd), timeout=timeout)
            if rc != 0:
                raise ActionError(f"stop command failed (exit {rc}): {(err or out).strip()[-400:]}")
        else:
            st = self.status()
            if st["pid"] is None:
                raise ActionError("the server answers but no process id is known to stop it",
                                  hint="set pid_file:/mysql_pid_file or datadir:, or stop_cmd:")
            # mysqld's clean shutdown; the pid is checked again right before the signal (it may
            # have exited since, and its pid been reused)
            pid = int(st["pid"])
            rc, _, err = self._run(f"{self._ours_sh()}; ours {pid} || {{ echo gone; exit 0; }}; kill -TERM {pid}")
            if rc != 0:
                raise ActionError(f"kill -TERM {pid} failed: {err.strip()}")
        if wait:
            self._until(lambda: not self.status()["running"], timeout, "the server to shut down")

    def _guard(self) -> None:
        """Stopping is destructive: refuse another server than the one this host must be."""
        from engine.actions.guard import check_identity

        try:
            check_identity(self.ctx, "stop the server")
        except (ConnectError, SqlError, CommandTimeout):
            self.ctx.conns.reset_sql()  # not answering (down or recovering): nothing to compare

    def _until(self, cond: Any, timeout: float, what: str) -> None:
        end = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > end:
                raise ActionError(f"waited {format_duration(timeout)} for {what}", hint="see the server's error log")
            time.sleep(0.5)
