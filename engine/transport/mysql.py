"""PyMySQL adapter: one session per host, direct or through the host's SSH connection.

No PyMySQL or socket exception leaves this module: errors become :class:`SqlError` (with errno,
SQLSTATE and a diagnosis) or :class:`ConnectError` (server unreachable, auth failure).
"""

from __future__ import annotations

import importlib
import os
import re
import threading
import time
from types import ModuleType
from typing import TYPE_CHECKING, Any
from collections.abc import Callable, Sequence

from engine.mysql.diagnosis import diagnose
from engine.mysql.sqlutil import keeps_session
from engine.errors import CommandTimeout, ConnectError, LostConnection, OutcomeUnknown, SqlError
from engine.model import MysqlSettings, SqlResult
from engine.secrets import MASKER, reveal


class _OnFirstUse:
    """A module imported when one of its names is first read (from any thread): PyMySQL, and
    the cryptography it imports, cost ~50 ms at start-up, and a runbook, ``validate`` or a
    play with no SQL step needs neither."""

    def __init__(self, name: str):
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attr: str) -> Any:
        module = self._module
        if module is None:
            module = self._module = importlib.import_module(self._name)  # the import system's own lock
        return getattr(module, attr)


if TYPE_CHECKING:
    import pymysql
    import pymysql.err

    from engine.transport.mysql_local import Payload
else:
    pymysql = _OnFirstUse("pymysql")


def _text(sql: str | bytes) -> str:
    """SQL for a message: bytes (a restore batch) are cut to their first 2000 bytes."""
    if isinstance(sql, (bytes, bytearray, memoryview)):
        head = bytes(sql[:2000]).decode("utf-8", "replace")
        return head + (f"… ({len(sql)} bytes)" if len(sql) > 2000 else "")
    return sql

_SQLSTATE = re.compile(r"^#?([0-9A-Z]{5})")

TunnelFactory = Callable[[str, int], Any]  # (host, port) -> socket-like channel
OnConnect = Callable[[int], None]  # called with the server's connection id after each connect

_COM_RESET_CONNECTION = 0x1F  # MySQL 5.7.3+, MariaDB 10.2.4+: a fresh session on the same socket
# Statements after which the default database may differ (USE, a procedure that runs USE).
_MAY_CHANGE_DB = re.compile(r"\b(use|call|execute)\b", re.I)
_SERVER_STATUS_IN_TRANS = 0x0001
_SERVER_STATUS_AUTOCOMMIT = 0x0002
# After our KILL QUERY the server answers at once; if it has not within this grace, the
# connection (or the network) is dead: the connection is killed and dropped instead.
_KILL_GRACE = 5.0

# PyMySQL drops the SQLSTATE of the error packet (it keeps errno and text only), but the server
# always sends the same SQLSTATE for a given errno, so the common ones are looked up here.
_SQLSTATE_BY_ERRNO = {
    1044: "42000", 1045: "28000", 1048: "23000", 1049: "42000", 1050: "42S01", 1051: "42S02",
    1054: "42S22", 1062: "23000", 1064: "42000", 1142: "42000", 1146: "42S02", 1148: "42000",
    1153: "08S01", 1213: "40001", 1227: "42000", 1317: "70100", 1406: "22001", 1451: "23000",
    1452: "23000", 1927: "70100", 1969: "70100",
}  # fmt: skip


def _error(exc: BaseException, sql: str | bytes | None) -> SqlError:
    errno: int | None = None
    message = str(exc)
    if isinstance(exc, pymysql.err.MySQLError) and exc.args and isinstance(exc.args[0], int):
        errno = exc.args[0]
        message = str(exc.args[1]) if len(exc.args) > 1 else ""
    sqlstate = None
    m = _SQLSTATE.match(message)
    if m:
        sqlstate = m.group(1)
    elif errno is not None:
        # Client-side errors (2000-2999) carry HY000, as the mysql client prints them.
        sqlstate = _SQLSTATE_BY_ERRNO.get(errno, "HY000" if 2000 <= errno < 3000 else None)
    diag = diagnose(errno)
    return SqlError(
        MASKER.text(message),
        errno=errno,
        sqlstate=sqlstate,
        sql=MASKER.text(_text(sql)) if sql else None,
        hint=diag.hint() if diag else None,
    )


class MysqlSession:
    """A lazily connected, reused MySQL/MariaDB session in autocommit mode.

    A statement that runs past its ``timeout`` is stopped *on the server* (``KILL QUERY`` from
    a sibling session, as the mysql client's Ctrl-C does), and :class:`CommandTimeout` says its
    fate is unknown. A connection lost after a statement was sent raises
    :class:`LostConnection`. Both are :class:`OutcomeUnknown`: the step is in doubt.
    """

    def __init__(self, settings: MysqlSettings, tunnel: TunnelFactory | None = None, on_connect: OnConnect | None = None,
                 *, local_infile: bool = False):
        self.settings = settings
        self._tunnel = tunnel
        self.local_infile = local_infile
        self._conn: pymysql.connections.Connection | None = None
        self.on_connect = on_connect
        self.dirty = False  # a statement ran since the last reset: session state may have changed
        self._db_may_change = False  # ... and one of them may have changed the default database
        # The statement on the wire, and how another thread stopped it ("" while it was not).
        self._state = threading.Lock()
        self._running_id: int | None = None
        self._stopped = ""

    # -- connection ---------------------------------------------------------------------
    def _connect(self) -> pymysql.connections.Connection:
        s = self.settings
        kwargs: dict[str, Any] = dict(
            host=s.host,
            port=s.port,
            connect_timeout=s.connect_timeout,
            autocommit=True,
            charset="utf8mb4",
            local_infile=self.local_infile,
            client_flag=0,
            defer_connect=True,
        )
        if s.user is not None:
            kwargs["user"] = s.user
        if s.password is not None:
            kwargs["password"] = reveal(s.password)
        if s.database:
            kwargs["database"] = s.database
        if s.socket and self._tunnel is None:
            kwargs["unix_socket"] = s.socket
        if s.option_file:
            path = os.path.expanduser(s.option_file)
            if not os.path.isfile(path):
                raise ConnectError(f"mysql_option_file {s.option_file} does not exist", hint="fix the path in the inventory")
            kwargs["read_default_file"] = path
            kwargs["read_default_group"] = "client"
        where = f"{s.host}:{s.port}" + (" (through the SSH tunnel)" if self._tunnel else "")
        try:
            from engine.transport.mysql_local import Connection as _Connection

            conn = _Connection(**kwargs)
            sock = None
            if self._tunnel is not None:
                sock = self._tunnel(s.host, s.port)
            conn.connect(sock)
        except pymysql.err.OperationalError as exc:
            err = _error(exc, None)
            if err.errno in (1044, 1045, 1049):
                # err.message, not err.render(): the hint is given once, as the ConnectError's.
                raise ConnectError(f"MySQL at {where}: ERROR {err.errno} ({err.sqlstate}): {err.message}", hint=err.hint) from None
            raise ConnectError(f"MySQL at {where} is unreachable: {err.message}", hint="is the server running and the port right?") from None
        except (OSError, pymysql.err.MySQLError) as exc:
            raise ConnectError(f"MySQL at {where} is unreachable: {MASKER.text(str(exc))}") from None
        if self.on_connect is not None:
            self.on_connect(int(conn.thread_id()))
        return conn

    def _ensure(self) -> pymysql.connections.Connection:
        if self._conn is None:
            self._conn = self._connect()
            self.dirty = self._db_may_change = False
        return self._conn

    @property
    def connection_id(self) -> int:
        conn = self._ensure()
        return int(conn.thread_id())

    @property
    def in_transaction(self) -> bool:
        """An explicit transaction is open (or autocommit is off): a statement that failed
        is one piece of a unit the server may have rolled back as a whole."""
        conn = self._conn
        if conn is None:
            return False
        status = int(getattr(conn, "server_status", 0) or 0)
        return bool(status & _SERVER_STATUS_IN_TRANS) or not status & _SERVER_STATUS_AUTOCOMMIT

    def sibling(self) -> MysqlSession:
        """A new session to the same server by the same way (tunnel or not)."""
        return MysqlSession(self.settings, tunnel=self._tunnel)

    def reset(self) -> None:
        """Forget what earlier statements did to the session (``USE``, session variables,
        user variables, temporary tables, an open transaction): ``COM_RESET_CONNECTION``, or
        a new connection when the server does not support it."""
        conn = self._conn
        if conn is None or not self.dirty:
            return
        try:
            conn._execute_command(_COM_RESET_CONNECTION, b"")  # type: ignore[attr-defined]
            conn._read_ok_packet()  # type: ignore[attr-defined]
            conn.autocommit(True)
            # The reset keeps the default database: a step's USE must not reach the next one.
            if not self._db_may_change:
                self.dirty = False
                return
            self._db_may_change = False
            with conn.cursor() as cur:
                cur.execute("SELECT DATABASE()")
                row = cur.fetchone()
            current = row[0] if row else None
            if current != self.settings.database:
                if not self.settings.database:
                    self._drop()  # no way to "un-USE" a database but a new session
                    return
                conn.select_db(self.settings.database)
            self.dirty = False
        except (pymysql.err.MySQLError, OSError):
            self._drop()  # next use reconnects: a new session is a clean one

    # -- stopping a running statement from another thread ---------------------------------
    def interrupt(self, why: str = "aborted by the operator") -> bool:
        """Stop the statement running on this session now (from any thread); True if one was."""
        return self._stop_running(why)

    def _stop_running(self, why: str) -> bool:
        with self._state:
            target = self._running_id
            if target is None or self._stopped:
                return False
            self._stopped = why
            try:
                kill_on_server(self, target, query_only=True)
            except (ConnectError, SqlError) as exc:
                self._stopped = f"{why}; KILL QUERY failed: {exc.message}"
            return True

    # -- queries ------------------------------------------------------------------------
    def query(
        self,
        sql: str | bytes,
        params: Sequence[Any] | dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> SqlResult:
        conn = self._ensure()
        start = time.perf_counter()
        conn_id = int(conn.thread_id())
        watchdog = None
        if timeout is not None:
            watchdog = threading.Timer(max(timeout, 0.0), self._stop_running, args=(f"ran past its timeout ({timeout:.3g}s)",))
            watchdog.daemon = True
            conn._read_timeout = max(timeout, 0.0) + _KILL_GRACE  # type: ignore[attr-defined]  # the KILL's answer comes first
        with self._state:
            self._running_id, self._stopped = conn_id, ""
        if not self.dirty and not (isinstance(sql, str) and keeps_session(sql)):
            self.dirty = True  # the next step starts on a reset session (a plain read needs none)
        if not self._db_may_change and _MAY_CHANGE_DB.search(sql if isinstance(sql, str) else "use"):
            self._db_may_change = True
        if watchdog is not None:
            watchdog.start()
        try:
            with conn.cursor() as cur:
                # PyMySQL formats %s only when params is given; a bare '%' in SQL stays intact.
                rowcount = cur.execute(sql, params if params else None)  # type: ignore[arg-type]  # bytes: a restore batch
                columns: tuple[str, ...] = tuple(d[0] for d in cur.description) if cur.description else ()
                rows: tuple[dict[str, Any], ...] = ()
                if columns:
                    rows = tuple(dict(zip(columns, r)) for r in cur.fetchall())
                    rowcount = len(rows)
                result = getattr(cur, "_result", None)
                warnings = int(getattr(result, "warning_count", 0) or 0)
                raw_info = getattr(result, "message", None)  # "Records: 3  Duplicates: 1  Warnings: 1"
                info = raw_info.decode("utf-8", "replace") if isinstance(raw_info, bytes) else str(raw_info or "")
        except pymysql.err.MySQLError as exc:
            stopped = self._settle(watchdog)
            if stopped or isinstance(exc.__context__, TimeoutError):
                raise self._stopped_error(sql, timeout, stopped, conn_id) from None
            err = _error(exc, sql)
            if err.errno in (2013, 1927):  # sent, then the connection broke: it may have run
                self._drop()
                raise LostConnection(f"{err.message} (the statement was sent: whether it took effect is unknown)",
                                     errno=err.errno, sqlstate=err.sqlstate, sql=err.sql, hint=err.hint) from None
            diag = diagnose(err.errno)
            if (diag is not None and diag.lost_connection) or isinstance(exc, pymysql.err.InterfaceError):
                self._drop()
            raise err from None
        except TimeoutError:
            stopped = self._settle(watchdog)
            raise self._stopped_error(sql, timeout, stopped, conn_id) from None
        except OSError as exc:  # the tunnel's channel broke
            self._settle(watchdog)
            self._drop()
            raise LostConnection(f"lost connection: {exc} (the statement was sent: whether it took effect is unknown)",
                                 errno=2013, sql=MASKER.text(_text(sql)), hint=diagnose(2013).hint()) from None  # type: ignore[union-attr]
        finally:
            if self._conn is not None:
                self._conn._read_timeout = None  # type: ignore[attr-defined]
        stopped = self._settle(watchdog)
        if stopped:  # the KILL came as it finished (SLEEP() returns 1 when killed): still our stop
            raise self._stopped_error(sql, timeout, stopped, conn_id)
        return SqlResult(sql=sql if isinstance(sql, str) else _text(sql)[:200], columns=columns, rows=rows, rowcount=int(rowcount or 0),
                         duration=time.perf_counter() - start, warnings=warnings, info=info)

    def load_local(self, sql: str | bytes, name: str, data: Payload, *, timeout: float | None = None) -> SqlResult:
        """Run ``LOAD DATA LOCAL INFILE '<name>' …`` feeding ``data`` from memory (a tuple of
        buffers: their concatenation, sent part after part without joining them).

        The session must have been made with ``local_infile=True``; only ``name`` is served."""
        if not self.local_infile:
            raise SqlError("LOAD DATA LOCAL needs a session opened with local_infile", errno=1148, sql=_text(sql)[:200])
        conn = self._ensure()
        conn._rb_payload = (name, data)  # type: ignore[attr-defined]
        try:
            return self.query(sql, timeout=timeout)
        finally:
            if self._conn is not None:
                self._conn._rb_payload = None  # type: ignore[attr-defined]

    def _settle(self, watchdog: threading.Timer | None) -> str:
        """The statement is off the wire: disarm the watchdog; how it was stopped, if it was."""
        with self._state:  # waits for a KILL in progress, so its verdict is known here
            self._running_id = None
            stopped, self._stopped = self._stopped, ""
        if watchdog is not None:
            watchdog.cancel()
        return stopped

    def _stopped_error(self, sql: str | bytes, timeout: float | None, stopped: str, conn_id: int) -> OutcomeUnknown:
        """The statement was stopped (or never answered): make sure it is gone from the server,
        drop this session, and say its outcome is unknown."""
        how = "KILL QUERY"
        if not stopped:  # the socket timed out: no answer even to the KILL (or no KILL at all)
            how = "KILL CONNECTION"
            try:
                kill_on_server(self, conn_id, query_only=False)
            except (ConnectError, SqlError) as exc:
                how = f"KILL CONNECTION failed ({exc.message}); it may still be running"
        self._drop()
        text = MASKER.text(_text(sql))
        shown = text
        shown = shown if len(shown) <= 200 else shown[:199] + "…"
        why = stopped or (f"ran past its timeout ({timeout:.3g}s)" if timeout is not None else "the server stopped answering")
        if timeout is not None and why.startswith("ran past"):
            return CommandTimeout(f"query {why}, stopped on the server with {how}; whether it took effect is unknown: {shown}",
                                  what=text, stopped=how)
        return OutcomeUnknown(f"query {why}, stopped on the server with {how}; whether it took effect is unknown: {shown}",
                              what=text, stopped=how)

    def scalar(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> Any:
        """First column of the first row, or None."""
        res = self.query(sql, params)
        if not res.rows:
            return None
        return next(iter(res.rows[0].values()))

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # already broken
                pass
            self._conn = None

    def close(self) -> None:
        self._drop()


def kill_on_server(session: MysqlSession, conn_id: int, *, query_only: bool, wait: float = 10.0) -> None:
    """``KILL [QUERY]`` a connection of this server from a sibling session, then wait (up to
    ``wait`` seconds) until it no longer runs a statement: its effect is rolled back or done."""
    other = session.sibling()
    try:
        other.query(("KILL QUERY %s" if query_only else "KILL CONNECTION %s"), (conn_id,))
    except SqlError as exc:
        if exc.errno != 1094:  # ER_NO_SUCH_THREAD: it ended by itself meanwhile
            other.close()
            raise
    try:
        wait_until_idle(other, [conn_id], wait)
    finally:
        other.close()


def running_statements(session: MysqlSession, conn_ids: Sequence[int]) -> list[dict[str, Any]]:
    """The connections among ``conn_ids`` that are running a statement (or rolling it back)."""
    if not conn_ids:
        return []
    marks = ", ".join(["%s"] * len(conn_ids))
    res = session.query(
        "SELECT ID AS id, USER AS user, COMMAND AS command, TIME AS seconds, STATE AS state, LEFT(INFO, 200) AS info "
        f"FROM information_schema.PROCESSLIST WHERE ID IN ({marks}) AND COMMAND NOT IN ('Sleep', 'Daemon')",
        list(conn_ids))
    return [dict(r) for r in res.rows]


def wait_until_idle(session: MysqlSession, conn_ids: Sequence[int], wait: float) -> list[dict[str, Any]]:
    """Poll until none of ``conn_ids`` runs a statement; what still runs after ``wait`` seconds."""
    deadline = time.monotonic() + wait
    while True:
        busy = running_statements(session, conn_ids)
        if not busy or time.monotonic() >= deadline:
            return busy
        time.sleep(0.05)
