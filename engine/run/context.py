"""Per-host connections and what an action sees while it runs."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Callable

from engine.model import Host
from engine.transport.base import Shell, Sql


class Connections:
    """One SSH (or local) shell and one MySQL session per host, opened on first use, reused
    by every step of the run, closed at the end."""

    def __init__(self, host: Host):
        self.host = host
        self._shell: Shell | None = None
        self._sql: Sql | None = None
        self._lock = threading.Lock()

    def shell(self) -> Shell:
        with self._lock:
            return self._open_shell()

    def sql(self) -> Sql:
        with self._lock:
            if self._sql is None:
                from engine.inventory import mysql_settings
                from engine.transport.mysql import MysqlSession

                settings = mysql_settings(self.host)
                # mysql_via: tunnel on a connection: local host is refused when the inventory loads.
                tunnel = self._open_shell().open_tunnel if settings.via == "tunnel" else None  # type: ignore[attr-defined]
                self._sql = MysqlSession(settings, tunnel=tunnel)
            return self._sql

    def _open_shell(self) -> Shell:
        """The host's shell, opened on first use; the caller holds the lock."""
        if self._shell is None:
            if self.host.connection == "local":
                from engine.transport.local import LocalShell

                self._shell = LocalShell()
            else:
                from engine.inventory import ssh_settings
                from engine.transport.ssh import SshShell

                self._shell = SshShell(ssh_settings(self.host))
            from engine.inventory import become_settings

            become = become_settings(self.host)
            if become is not None:  # ansible_become: commands run through sudo -n -u USER
                from engine.transport.become import BecomeShell

                self._shell = BecomeShell(self._shell, become)
        return self._shell

    def reset_sql(self) -> None:
        """Drop a broken MySQL session (after 2006/2013) so the next use reconnects."""
        with self._lock:
            if self._sql is not None:
                self._sql.close()
                self._sql = None

    def close(self) -> None:
        with self._lock:
            for conn in (self._sql, self._shell):
                if conn is not None:
                    try:
                        conn.close()
                    except Exception:  # closing is best effort: the run is over
                        pass
            self._sql = None
            self._shell = None


@dataclass
class ActionContext:
    """Everything an action may use. Built by the executor for one step on one host."""

    host: Host
    conns: Connections
    vars: dict[str, Any]
    run_id: str
    check_mode: bool
    step_key: str
    source: Any
    timeout: float | None = None
    journal_dir: str = ".runbook"
    progress: Callable[[int, int | None, str], None] = lambda done, total, label: None
    warn: Callable[[str], None] = lambda msg: None
    #: identities seen per host during the run (hostname, server_uuid), shared across steps
    run_state: dict[str, Any] = field(default_factory=dict)
    #: another inventory host's connections by name (reading a replica); None outside a play
    peers: Callable[[str], Connections] | None = None
    #: the loader's checks of rendered arguments, for an action that renders its own (supplied
    #: by the executor, so that actions never import the language layer)
    args_problems: Callable[[type, Any], list[str]] | None = None
    #: what earlier attempts of this step on this host journaled before their change
    notes: dict[str, Any] = field(default_factory=dict)
    #: journal (synced) facts about the state *before* a change, for a later probe or undo
    note_fn: Callable[[dict[str, Any]], None] = lambda data: None

    def note(self, **data: Any) -> None:
        """Write-ahead: journal ``data`` for this step before changing anything it describes."""
        self.notes.update(data)
        self.note_fn(data)

    def shell(self) -> Shell:
        return self.conns.shell()

    def sql(self) -> Sql:
        return self.conns.sql()

    def peer_sql(self, name: str) -> Sql:
        """The MySQL session of another inventory host, opened with that host's own settings
        (direct or through its SSH tunnel), exactly as its own steps would open it."""
        if name == self.host.name:
            return self.sql()
        if self.peers is None:
            from engine.errors import ActionError

            raise ActionError(f"cannot reach host {name!r} from here: no inventory in this context")
        return self.peers(name).sql()
