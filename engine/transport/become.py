"""Ansible's ``become`` for commands: every command of a host runs through ``sudo -n -u USER``.

```yaml
db1: {ansible_become: true, ansible_become_user: mysql}   # commands run as mysql, via sudo
```
``sudo -n`` never prompts: a host whose sudo asks for a password fails the command with sudo's
own message ("a password is required") instead of hanging. Environment variables and the working
directory are set inside the sudo'ed shell (sudo resets the environment).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, replace
from typing import Any

from engine.model import CommandResult
from engine.transport.base import Shell


@dataclass(frozen=True)
class Become:
    user: str = "root"
    flags: tuple[str, ...] = ()

    def wrap(self, cmd: str, chdir: str | None, env: dict[str, str] | None) -> str:
        lines = [f"export {k}={shlex.quote(str(v))}" for k, v in (env or {}).items()]
        if chdir:
            where = '"$HOME"' + shlex.quote(chdir[1:]) if chdir == "~" or chdir.startswith("~/") else shlex.quote(chdir)
            lines.append(f"cd {where} || exit")
        lines.append(cmd)
        sudo = ["sudo", *self.flags, *(["-n"] if "-n" not in self.flags else []), "-u", self.user, "--", "/bin/sh", "-c"]
        return " ".join(shlex.quote(a) for a in sudo) + " " + shlex.quote("\n".join(lines))


class BecomeShell:
    """A :class:`Shell` whose commands run as another user; tunnels and the rest pass through."""

    def __init__(self, shell: Shell, become: Become):
        self._shell = shell
        self.become = become

    def run(self, cmd: str, *, stdin: bytes | str | None = None, chdir: str | None = None, timeout: float | None = None,
            env: dict[str, str] | None = None) -> CommandResult:
        result = self._shell.run(self.become.wrap(cmd, chdir, env), stdin=stdin, timeout=timeout)
        return replace(result, cmd=cmd)  # evidence shows the step's command, not the wrapper

    def close(self) -> None:
        self._shell.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._shell, name)
