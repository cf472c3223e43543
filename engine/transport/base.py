"""What the executor needs from a connection. Adapters implement these; nothing else leaks.

Every adapter method raises only :class:`engine.errors.ConnectError` (host unreachable, auth,
host key), :class:`engine.errors.CommandTimeout` or :class:`engine.errors.SqlError`; paramiko,
socket and PyMySQL exceptions stop inside ``engine.transport``.
"""

from __future__ import annotations

from typing import Any, Protocol
from collections.abc import Sequence

from engine.model import CommandResult, SqlResult


class Shell(Protocol):
    """Runs commands on a host (over SSH, or locally)."""

    def run(
        self,
        cmd: str,
        *,
        stdin: bytes | str | None = None,
        chdir: str | None = None,
        timeout: float | None = None,
        env: dict[str, str] | None = None,
    ) -> CommandResult:
        """Run ``cmd`` through ``/bin/sh -c``; a non-zero exit is a result, not an error."""
        ...

    def close(self) -> None: ...


class Sql(Protocol):
    """One MySQL/MariaDB session, kept open for the whole run."""

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None, *, timeout: float | None = None) -> SqlResult:
        """One statement with ``%s`` placeholders bound by the driver."""
        ...

    def close(self) -> None: ...
