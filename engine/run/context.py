"""Per-host connections and what an action sees while it runs."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Callable, Iterator

from engine.errors import DeadlinePassed

from engine.model import Host
from engine.transport.base import Shell, Sql


class Connections:
    """One SSH (or local) shell and one MySQL session per host, opened on first use, reused
    by every step of the run (each step starts on a reset session: nothing one step set
    leaks into the next), closed at the end. Actions that need a session of their own borrow
    one from the host's pool (:meth:`own_sql`).

    ``on_sql_connect(host, connection_id)`` is told every MySQL connection the engine opens
    for the host, so that the journal can name the statements of a process that died."""

    def __init__(self, host: Host, on_sql_connect: Callable[[str, int], None] | None = None):
        self.host = host
        self._shell: Shell | None = None
        self._sql: Sql | None = None
        self._lock = threading.Lock()
        self._pool: list[Any] = []  # idle sessions of our own, reset, ready to lend
        self._lent: list[Any] = []
        self.on_sql_connect = on_sql_connect

    def sql_connected(self, conn_id: int) -> None:
        """Tell the run of a MySQL connection opened for this host (its server connection id):
        the ``on_connect`` of every session the engine opens, also an action's own (a restore's
        loaders), so that a resume can stop what a dead process left running."""
        if self.on_sql_connect is not None:
            self.on_sql_connect(self.host.name, conn_id)

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
                self._sql = MysqlSession(settings, tunnel=tunnel, on_connect=self.sql_connected)
            return self._sql

    @contextmanager
    def own_sql(self) -> Iterator[Sql]:
        """A MySQL session for this action alone (a sibling of the host's), from the pool."""
        with self._lock:
            session = self._pool.pop() if self._pool else None
        if session is None:
            main: Any = self.sql()
            session = main.sibling()
            session.on_connect = self.sql_connected
        with self._lock:
            self._lent.append(session)
        try:
            yield session
        finally:
            with self._lock:
                self._lent.remove(session)
            try:
                session.reset()
            except Exception:  # a broken session is simply not pooled
                session.close()
                return
            with self._lock:
                self._pool.append(session)

    def session_ids(self) -> list[int]:
        """Server connection ids of every MySQL session the engine holds open for this host
        (its own session, pooled and lent ones): what a fence must never kill."""
        with self._lock:
            sessions: list[Any] = [self._sql, *self._pool, *self._lent]
        ids = []
        for s in sessions:
            conn = getattr(s, "_conn", None)
            if conn is not None:
                try:
                    ids.append(int(conn.thread_id()))
                except Exception:  # a session being closed: nothing to protect
                    pass
        return ids

    def begin_step(self) -> None:
        """A step starts: whatever the last one did to the MySQL session is forgotten."""
        sql: Any = self._sql
        if sql is not None and getattr(sql, "dirty", False):
            sql.reset()

    def interrupt(self, why: str = "aborted by the operator") -> None:
        """Stop what runs on this host now (a statement: KILL QUERY; a command: its process
        group is killed), from any thread. The connections stay open."""
        with self._lock:
            targets: list[Any] = [self._sql, self._shell, *self._lent]
        for conn in targets:
            stop = getattr(conn, "interrupt", None)
            if stop is not None:
                try:
                    stop(why)
                except Exception:  # best effort: the step is in doubt either way
                    pass

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
            for conn in (self._sql, self._shell, *self._pool, *self._lent):
                if conn is not None:
                    try:
                        conn.close()
                    except Exception:  # closing is best effort: the run is over
                        pass
            self._sql = None
            self._shell = None
            self._pool.clear()


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
    timeout: float | None = None  # the step's whole timeout; actions use remaining()
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
    #: when the step's ``timeout:`` runs out (time.monotonic()); None: no limit
    deadline: float | None = None
    #: set at the operator's first Ctrl-C (a pause ends at once)
    interrupted: threading.Event = field(default_factory=threading.Event)
    #: ask the operator (on the main thread) and return the answer; None: no terminal
    ask: Callable[[str], str | None] | None = None
    #: the runbook declared the step ``idempotent: true`` (it may be replayed whole)
    idempotent: bool = False

    #: what earlier attempts of this step on this host journaled before their change
    notes: dict[str, Any] = field(default_factory=dict)
    #: journal (synced) facts about the state *before* a change, for a later probe or undo
    note_fn: Callable[[dict[str, Any]], None] = lambda data: None
    #: journal (synced) a run-wide fact about this host, restored into ``run_state`` by resume
    #: and rollback (what this run's fence changed, for ``resume_writes``)
    share_fn: Callable[[str, Any], None] = lambda key, value: None

    def __post_init__(self) -> None:
        if self.deadline is None and self.timeout is not None:
            self.deadline = time.monotonic() + self.timeout

    def remaining(self) -> float | None:
        """Seconds left of the step's ``timeout:`` (which bounds the whole step: every
        statement, command, retry and poll), None without one. Past it: DeadlinePassed."""
        if self.deadline is None:
            return None
        left = self.deadline - time.monotonic()
        if left <= 0:
            limit = f" of {self.timeout:g}s" if self.timeout else ""
            raise DeadlinePassed(f"the step ran past its timeout{limit} before its next statement or command was sent")
        return left

    def note(self, **data: Any) -> None:
        """Write-ahead: journal ``data`` for this step before changing anything it describes."""
        self.notes.update(data)
        self.note_fn(data)

    def share(self, key: str, value: Any) -> None:
        """Remember ``value`` as ``run_state[key][host]`` for the rest of the run, in every
        process of it (journaled before the change it describes, like :meth:`note`)."""
        self.run_state.setdefault(key, {})[self.host.name] = value
        self.share_fn(key, value)

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
