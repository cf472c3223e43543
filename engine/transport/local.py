"""Commands on the control machine (``connection: local``) through subprocess."""

from __future__ import annotations

import os
import subprocess
import time
from typing import Any

from engine.errors import CommandTimeout, ConnectError, FileReadError
from engine.model import CommandResult
from engine.secrets import MASKER


class LocalShell:
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
            proc = subprocess.run(
                ["/bin/sh", "-c", cmd],
                input=data,
                stdin=None if data is not None else subprocess.DEVNULL,
                capture_output=True,
                cwd=os.path.expanduser(chdir) if chdir else None,
                timeout=timeout,
                env=full_env,
                start_new_session=True,  # Ctrl-C on the engine must not kill the step mid-way
            )
        except subprocess.TimeoutExpired:
            raise CommandTimeout(f"command ran past its timeout of {timeout}s: {MASKER.text(cmd)[:200]}") from None
        except FileNotFoundError as exc:
            raise ConnectError(f"cannot run local command: {exc}", hint="does the chdir directory exist?") from None
        except OSError as exc:
            raise ConnectError(f"cannot run local command: {exc}") from None
        return CommandResult(
            cmd=cmd,
            rc=proc.returncode,
            stdout=proc.stdout.decode(errors="replace"),
            stderr=proc.stderr.decode(errors="replace"),
            duration=time.perf_counter() - start,
        )

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
