"""``wait_for``: until an SQL query, a shell command or a TCP port says yes, within a timeout."""

from __future__ import annotations

import shlex
import socket
import time
from typing import Any

from engine.actions.base import Action, duration_problem, register
from engine.language.durations import parse_duration
from engine.errors import ConnectError, OutcomeUnknown, SqlError
from engine.model import CommandResult, Status, StepResult


@register
class WaitFor(Action):
    """Poll until a condition is true.

    ```yaml
    - name: Replica caught up
      wait_for: {sql: "SELECT Seconds_Behind_Master = 0 FROM ...", timeout: 10m}
    - name: Server back after restart
      wait_for: {port: 3306, host: 127.0.0.1, timeout: 2m}
    - name: Recovery finished
      wait_for: {shell: "grep -q 'ready for connections' /var/log/mysql/error.log", sleep: 5s}
    ```
    SQL: true when the first column of the first row is truthy. Shell: true on exit 0.
    Port: true when a TCP connection succeeds (``state: stopped``: when it fails). The port is
    checked from the control machine, or from the host with ``from: host`` (bash's /dev/tcp, else nc).
    """

    name = "wait_for"
    mutating = False
    idempotent = True
    params_schema = {
        "type": "object",
        "properties": {
            "sql": {"type": "string"},
            "shell": {"type": "string"},
            "port": {"anyOf": [{"type": "integer", "minimum": 1, "maximum": 65535}, {"type": "string"}]},
            "host": {"type": "string", "description": "for port: the address (default: the host's ssh_host, or 127.0.0.1)"},
            "state": {"enum": ["started", "stopped"]},
            "from": {"enum": ["control", "host"]},
            "timeout": {"anyOf": [{"type": "number", "minimum": 0}, {"type": "string"}], "description": "default 300s"},
            "sleep": {"anyOf": [{"type": "number", "minimum": 0}, {"type": "string"}], "description": "between polls, default 1s"},
            "delay": {"anyOf": [{"type": "number", "minimum": 0}, {"type": "string"}], "description": "before the first poll"},
        },
        "additionalProperties": False,
    }

    @classmethod
    def static_problems(cls, args: Any) -> list[tuple[str, str]]:
        kinds = [k for k in ("sql", "shell", "port") if k in (args or {})]
        if len(kinds) != 1:
            return [("", "wait_for needs exactly one of sql, shell or port")]
        return duration_problem(args, "timeout", "sleep", "delay")

    def _poll(self, limit: float) -> tuple[bool, str]:
        """One poll, bounded by ``limit`` seconds (what is left of wait_for's timeout and of the
        step's): a poll that hangs (a query waiting on a lock) must not outlive either."""
        a = self.args
        if "sql" in a:
            from engine.actions.probes import sql_truth

            try:
                return sql_truth(a["sql"], self.ctx, timeout=limit), ""
            except (SqlError, ConnectError, OutcomeUnknown) as exc:
                self.ctx.conns.reset_sql()  # the server may be restarting: reconnect next time
                return False, exc.render()
        if "shell" in a:
            try:
                done = self.ctx.shell().run(a["shell"], timeout=limit)
            except OutcomeUnknown as exc:  # a read-only check: its fate does not matter
                return False, exc.message
            return done.rc == 0, done.stderr.strip()[-200:]
        port = int(a["port"])
        host = a.get("host") or ("127.0.0.1" if self.ctx.host.connection == "local" else str(self.ctx.host.vars.get("ssh_host", self.ctx.host.name)))
        if a.get("from") == "host":
            # /dev/tcp is bash's, not the /bin/sh (dash) the command runs under: ask bash, or nc.
            target = f"{shlex.quote(host)} {int(port)}"
            probe = (f"if command -v bash >/dev/null 2>&1; then exec bash -c 'exec 3<>/dev/tcp/$0/$1' {target}; "
                     f"elif command -v nc >/dev/null 2>&1; then exec nc -z -w 2 {target}; else echo 'no bash or nc' >&2; exit 2; fi")
            res: CommandResult | None = None
            try:
                res = self.ctx.shell().run(probe, timeout=min(5.0, limit))
            except OutcomeUnknown:
                pass
            up = res is not None and res.rc == 0
        else:
            try:
                with socket.create_connection((host, port), timeout=max(0.01, min(2.0, limit))):
                    up = True
            except OSError:
                up = False
        want_up = a.get("state", "started") == "started"
        return up == want_up, f"{host}:{port} is {'open' if up else 'closed'}"

    def apply(self) -> StepResult:
        a = self.args
        timeout = parse_duration(a.get("timeout", 300))
        sleep = parse_duration(a.get("sleep", 1))
        if "delay" in a:
            time.sleep(parse_duration(a["delay"]))
        start = time.monotonic()
        attempts = 0
        last = ""
        while True:
            attempts += 1
            step_left = self.ctx.remaining()
            left = max(0.01, timeout - (time.monotonic() - start))
            ok, last = self._poll(left if step_left is None else min(left, step_left))
            elapsed = time.monotonic() - start
            if ok:
                return StepResult(Status.OK, msg=f"true after {elapsed:.1f}s ({attempts} polls)",
                                  data={"elapsed": round(elapsed, 3), "attempts": attempts})
            step_left = self.ctx.remaining()
            if elapsed + sleep > timeout or (step_left is not None and step_left < sleep):
                what = a.get("sql") or a.get("shell") or f"port {a.get('port')}"
                return StepResult(Status.FAILED, msg=f"still not true after {timeout:g}s ({attempts} polls)",
                                  data={"elapsed": round(elapsed, 3), "attempts": attempts},
                                  evidence=f"waiting for: {what}\nlast poll: {last}")
            time.sleep(sleep)
