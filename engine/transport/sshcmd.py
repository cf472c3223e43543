"""The command line that runs a step's command over SSH, and the pid it reports first."""

from __future__ import annotations

import re
import shlex

from engine.errors import InputError

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PID_LINE = re.compile(rb"^__runbook_pid=(\d+)\n")


def shell_script(cmd: str, chdir: str | None, env: dict[str, str] | None) -> str:
    """The ``/bin/sh -c`` script of a command: its env exported, then ``cd``, then ``cmd``.

    Env vars are exported in the script rather than sent as SSH ``env`` requests, which sshd
    drops unless ``AcceptEnv`` lists them. ``cd ... || exit`` keeps a failed chdir from running
    the command in the wrong directory even when ``cmd`` has several statements.
    """
    lines = []
    for name, value in (env or {}).items():
        if not _ENV_NAME.match(name):
            raise InputError(f"environment variable name {name!r} is not valid", hint="use letters, digits and _")
        lines.append(f"export {name}={shlex.quote(str(value))}")
    if chdir:
        if chdir == "~" or chdir.startswith("~/"):  # quoting would stop the remote ~ expansion
            where = '"$HOME"' + (shlex.quote(chdir[1:]) if len(chdir) > 1 else "")
        else:
            where = shlex.quote(chdir)
        lines.append(f"cd {where} || exit")
    lines.append(cmd)
    return "\n".join(lines)


def remote_command(cmd: str, chdir: str | None, env: dict[str, str] | None, timeout: float | None) -> str:
    """The exec string of one command on its own channel: its :func:`shell_script` under
    ``/bin/sh -c``, whatever the user's login shell is.

    A timeout is also enforced on the host by ``timeout(1)``, which kills the command's whole
    process group: closing the channel alone would leave it running (sshd does not kill it, and
    refuses the SSH ``signal`` request for root logins).
    """
    script = "/bin/sh -c " + shlex.quote(shell_script(cmd, chdir, env))
    # sshd made the login shell a session leader: its pid, printed first, is the process
    # group every later process of the command shares (exec keeps it), so it can be killed.
    pid = "echo __runbook_pid=$$; "
    if timeout is None:
        return pid + "exec " + script
    limit = f"{max(timeout, 0.001):.3f}"  # 0 would mean "no limit" to timeout(1)
    return pid + f"if command -v timeout >/dev/null 2>&1; then exec timeout -k 5 {limit} {script}; else exec {script}; fi"


def split_pid(stdout: bytes) -> tuple[int | None, bytes]:
    """The pid line the command line printed first, and the command's own output."""
    m = _PID_LINE.match(stdout)
    if m is None:
        return None, stdout
    return int(m.group(1)), stdout[m.end():]
