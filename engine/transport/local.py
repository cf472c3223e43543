"""Commands on the control machine (``connection: local``) through subprocess.

Each command runs in a session (process group) of its own, so that a terminal's Ctrl-C does
not reach it, and so that a timeout or an abort kills the *whole* group — ``sh -c 'a | b &'``
leaves grandchildren that killing ``sh`` alone would orphan, still writing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from typing import Any

from engine.errors import CommandTimeout, ConnectError, FileReadError, OutcomeUnknown
from engine.model import CommandResult
from engine.secrets import MASKER


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # start_new_session: the group id is the child's pid
    except (ProcessLookupError, PermissionError):
        pass


def _reap(proc: subprocess.Popen[bytes]) -> None:
    """Collect a killed command; a descendant that left the group (setsid) may hold its pipes."""
    try:
        proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        proc.wait()


class LocalShell:
    """``/bin/sh -c`` on the control machine.

    ```yaml
    ctl: {connection: local}
    ```
    """

    def __init__(self) -> None:
        self._running: dict[int, subprocess.Popen[bytes]] = {}
        self._stopped: dict[int, str] = {}
        self._lock = threading.Lock()

    def run(
        self,
        cmd: str,
        *,
        stdin: bytes | str | None = None,
        chdir: str | None = None,
        timeout: float | None = None,
        env: dict[str, str] | None = None,
    ) -> CommandResult:
        start = time.perf_counter()
        data = stdin.encode() if isinstance(stdin, str) else stdin
        full_env = None
        if env:
            full_env = dict(os.environ)
            full_env.update(env)
        try:
            proc = subprocess.Popen(
                ["/bin/sh", "-c", cmd],
                stdin=subprocess.PIPE if data is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=os.path.expanduser(chdir) if chdir else None,
                env=full_env,
                start_new_session=True,  # Ctrl-C on the engine must not kill the step mid-way
            )
        except FileNotFoundError as exc:
            raise ConnectError(f"cannot run local command: {exc}", hint="does the chdir directory exist?") from None
        except OSError as exc:
            raise ConnectError(f"cannot run local command: {exc}") from None
        with self._lock:
            self._running[proc.pid] = proc
        try:
            try:
                out, err = proc.communicate(data, timeout=timeout)
            except subprocess.TimeoutExpired:
                _kill_group(proc)
                _reap(proc)
                raise CommandTimeout(f"command ran past its timeout of {timeout:g}s and was killed (its whole process group); "
                                     f"whether it took effect is unknown: {MASKER.text(cmd)[:200]}",
                                     what=MASKER.text(cmd), stopped="SIGKILL to its process group") from None
        finally:
            with self._lock:
                self._running.pop(proc.pid, None)
                why = self._stopped.pop(proc.pid, "")
        if why:
            raise OutcomeUnknown(f"command {why}: its process group was killed; whether it took effect is unknown: "
                                 f"{MASKER.text(cmd)[:200]}", what=MASKER.text(cmd), stopped="SIGKILL to its process group")
        return CommandResult(
            cmd=cmd,
            rc=proc.returncode,
            stdout=out.decode(errors="replace"),
            stderr=err.decode(errors="replace"),
            duration=time.perf_counter() - start,
        )

    def interrupt(self, why: str = "aborted by the operator") -> bool:
        """Kill every running command's process group (from any thread); True if there was one."""
        with self._lock:
            procs = list(self._running.values())
            for proc in procs:
                self._stopped[proc.pid] = why
        for proc in procs:
            _kill_group(proc)
        return bool(procs)

    def copy_file(self, path: str, dest: Any, *, chunk: int = 1 << 20) -> int:
        """Copy the local file ``path`` into the binary file object ``dest``; returns the byte count."""
        total = 0
        try:
            with open(os.path.expanduser(path), "rb") as f:
                while data := f.read(chunk):
                    dest.write(data)
                    total += len(data)
        except OSError as exc:
            raise FileReadError(f"cannot read {path}: {exc.strerror or exc}", hint="check the path") from None
        return total

    def close(self) -> None:
        pass
