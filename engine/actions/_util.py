"""Helpers shared by actions: evidence text and JSON-safe values."""

from __future__ import annotations


from engine.secrets import MASKER


def tail(text: str, lines: int = 8) -> str:
    parts = text.rstrip().splitlines()
    return "\n".join(parts[-lines:])


def evidence(cmd: str, rc: int | None = None, stdout: str = "", stderr: str = "") -> str:
    out = [f"$ {cmd}"]
    if rc is not None:
        out.append(f"exit code {rc}")
    if stderr.strip():
        out.append("stderr (last lines):\n" + tail(stderr))
    if stdout.strip():
        out.append("stdout (last lines):\n" + tail(stdout))
    return MASKER.text("\n".join(out))


from engine.mysql.values import plain  # noqa: E402,F401  (re-exported for actions)
