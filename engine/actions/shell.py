"""``shell``: a command over the host's connection (SSH, or local)."""

from __future__ import annotations

from typing import Any

from engine.actions._util import evidence
from engine.actions.base import Action, register
from engine.model import Status, StepResult


@register
class Shell(Action):
    """Run a command on the host.

    ```yaml
    - name: Datadir usage
      shell: du -sb /var/lib/mysql
      register: du
    - name: Import in a directory
      shell: {cmd: "zcat dump.sql.gz | mysql shop", chdir: /backups}
      creates: /backups/.imported
    ```
    """

    name = "shell"
    mutating = True
    idempotent = False
    free_form = True
    identity_guard = "known"
    params_schema = {
        "description": "a command string, or {cmd, chdir, stdin, env}",
        "anyOf": [
            {"type": "string", "minLength": 1},
            {
                "type": "object",
                "properties": {
                    "cmd": {"type": "string", "minLength": 1, "description": "the command, run by /bin/sh -c"},
                    "chdir": {"type": "string", "description": "directory to run it in"},
                    "stdin": {"type": "string", "description": "text written to the command's standard input"},
                    "env": {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}},
                },
                "required": ["cmd"],
                "additionalProperties": False,
            },
        ],
    }

    def _parts(self) -> tuple[str, str | None, str | None, dict[str, str] | None]:
        a: Any = self.args
        if isinstance(a, str):
            return a, None, None, None
        env = {str(k): str(v) for k, v in (a.get("env") or {}).items()} or None
        return str(a["cmd"]), a.get("chdir"), a.get("stdin"), env

    def check(self) -> StepResult:
        cmd, chdir, _, _ = self._parts()
        where = f" in {chdir}" if chdir else ""
        return StepResult(Status.SKIPPED, msg=f"check mode: would run{where}: {cmd}", diff=cmd)

    def apply(self) -> StepResult:
        cmd, chdir, stdin, env = self._parts()
        res = self.ctx.shell().run(cmd, stdin=stdin, chdir=chdir, timeout=self.ctx.remaining(), env=env)
        # As Ansible does: trailing newlines are not part of the value ("{{ r.stdout }}" in SQL).
        data = {
            "cmd": cmd,
            "rc": res.rc,
            "stdout": res.stdout.rstrip("\r\n"),
            "stderr": res.stderr.rstrip("\r\n"),
            "stdout_lines": res.stdout.splitlines(),
            "stderr_lines": res.stderr.splitlines(),
        }
        if res.rc != 0:
            return StepResult(Status.FAILED, msg=f"command exited with {res.rc}", data=data,
                              evidence=evidence(cmd, res.rc, res.stdout, res.stderr))
        return StepResult(Status.CHANGED, data=data)
