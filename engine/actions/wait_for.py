"""``wait_for``: until an SQL query, a shell command or a TCP port says yes, within a timeout."""

from __future__ import annotations

import socket
import time
from typing import Any

from engine.actions.base import Action, register
from engine.language.durations import parse_duration
from engine.errors import CommandTimeout, ConnectError, SqlError
from engine.model import Status, StepResult


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
    checked from the control machine, or from the host with ``from: host`` (uses bash's /dev/tcp).
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
        for key in ("timeout", "sleep", "delay"):
            if key in args and not (isinstance(args[key], str) and "{{" in args[key]):
                try:
                    parse_duration(args[key])
                except ValueError as exc:
                    return [(key, str(exc))]
        return []

    def _poll(self) -> tuple[bool, str]:
        a = self.args
        if "sql" in a:
            from engine.actions.probes import sql_truth

            try:
                return sql_truth(a["sql"], self.ctx), ""
            except (SqlError, ConnectError, CommandTimeout) as exc:
                self.ctx.conns.reset_sql()  # the server may be restarting: reconnect next time
                return False, exc.render()
        if "shell" in a:
            res = self.ctx.shell().run(a["shell"], timeout=self.ctx.timeout)
            return res.rc == 0, res.stderr.strip()[-200:]
        port = int(a["port"])
        host = a.get("host") or ("127.0.0.1" if self.ctx.host.connection == "local" else str(self.ctx.host.vars.get("ssh_host", self.ctx.host.name)))
        if a.get("from") == "host":
            res = self.ctx.shell().run(f"exec 3<>/dev/tcp/{host}/{port}", timeout=5)
            up = res.rc == 0
        else:
            try:
                with socket.create_connection((host, port), timeout=2):
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
            ok, last = self._poll()
            elapsed = time.monotonic() - start
            if ok:
                return StepResult(Status.OK, msg=f"true after {elapsed:.1f}s ({attempts} polls)",
                                  data={"elapsed": round(elapsed, 3), "attempts": attempts})
            if elapsed + sleep > timeout:
                what = a.get("sql") or a.get("shell") or f"port {a.get('port')}"
                return StepResult(Status.FAILED, msg=f"still not true after {timeout:g}s ({attempts} polls)",
                                  data={"elapsed": round(elapsed, 3), "attempts": attempts},
                                  evidence=f"waiting for: {what}\nlast poll: {last}")
            time.sleep(sleep)
