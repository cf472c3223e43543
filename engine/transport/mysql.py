"""PyMySQL adapter: one session per host, direct or through the host's SSH connection.

No PyMySQL or socket exception leaves this module: errors become :class:`SqlError` (with errno,
SQLSTATE and a diagnosis) or :class:`ConnectError` (server unreachable, auth failure).
"""

from __future__ import annotations

import os
import re
import time
from typing import Any
from collections.abc import Callable, Sequence

import pymysql
import pymysql.err

from engine.mysql.diagnosis import diagnose
from engine.errors import CommandTimeout, ConnectError, SqlError
from engine.model import MysqlSettings, SqlResult
from engine.secrets import MASKER, reveal

_SQLSTATE = re.compile(r"^#?([0-9A-Z]{5})")

TunnelFactory = Callable[[str, int], Any]  # (host, port) -> socket-like channel

# PyMySQL drops the SQLSTATE of the error packet (it keeps errno and text only), but the server
# always sends the same SQLSTATE for a given errno, so the common ones are looked up here.
_SQLSTATE_BY_ERRNO = {
    1044: "42000", 1045: "28000", 1048: "23000", 1049: "42000", 1050: "42S01", 1051: "42S02",
    1054: "42S22", 1062: "23000", 1064: "42000", 1142: "42000", 1146: "42S02", 1148: "42000",
    1153: "08S01", 1213: "40001", 1227: "42000", 1317: "70100", 1406: "22001", 1451: "23000",
    1452: "23000", 1927: "70100", 1969: "70100",
}  # fmt: skip


class _LocalResult(pymysql.connections.MySQLResult):
    """Answers the server's ``LOAD DATA LOCAL`` request from memory, never from disk.

    PyMySQL would open whatever file name the server asks for (a malicious server could ask
    for ``/etc/shadow``); here only the payload registered for this very statement is sent."""

    def _read_load_local_packet(self, first_packet: Any) -> None:
        conn = self.connection
        load = pymysql.connections.LoadLocalPacketWrapper(first_packet)  # type: ignore[attr-defined]
        payload = getattr(conn, "_rb_payload", None)
        try:
            name = load.filename.decode("utf-8", "replace") if isinstance(load.filename, bytes) else str(load.filename)
            if payload is None or name != payload[0]:
                raise pymysql.err.OperationalError(1148, f"LOAD DATA LOCAL of {name!r} was not asked for")
            view = memoryview(payload[1])
            step = 1 << 20  # PyMySQL sends 16 KiB packets; 1 MiB ones cut the per-packet cost
            for i in range(0, len(view), step):
                conn.write_packet(bytes(view[i:i + step]))  # type: ignore[union-attr]
        finally:
            conn.write_packet(b"")  # type: ignore[union-attr]  # end of data
            ok = conn._read_packet()  # type: ignore[union-attr]
        if not ok.is_ok_packet():
            raise pymysql.err.OperationalError(2014, "Commands Out of Sync")
        self._read_ok_packet(ok)  # type: ignore[attr-defined]


class _Connection(pymysql.connections.Connection):
    """A PyMySQL connection whose LOAD DATA LOCAL reads a registered in-memory payload."""

    _rb_payload: tuple[str, bytes | bytearray | memoryview] | None = None

    def _read_query_result(self, unbuffered: bool = False) -> int:
        if unbuffered:
            return int(super()._read_query_result(unbuffered))  # type: ignore[misc]
        self._result = None
        result = _LocalResult(self)
        result.read()
        self._result = result
        if result.server_status is not None:
            self.server_status = result.server_status
        return int(result.affected_rows or 0)


def _text(sql: str | bytes) -> str:
    """SQL for a message: bytes (a restore batch) are cut to their first 2000 bytes."""
    if isinstance(sql, (bytes, bytearray, memoryview)):
        head = bytes(sql[:2000]).decode("utf-8", "replace")
        return head + (f"… ({len(sql)} bytes)" if len(sql) > 2000 else "")
    return sql


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
    """A lazily connected, reused MySQL/MariaDB session in autocommit mode."""

    def __init__(self, settings: MysqlSettings, tunnel: TunnelFactory | None = None, *, local_infile: bool = False):
        self.settings = settings
        self._tunnel = tunnel
        self.local_infile = local_infile
        self._conn: pymysql.connections.Connection | None = None

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
            conn = _Connection(**kwargs)
            sock = None
            if self._tunnel is not None:
                sock = self._tunnel(s.host, s.port)
            conn.connect(sock)
            return conn
        except pymysql.err.OperationalError as exc:
            err = _error(exc, None)
            if err.errno in (1044, 1045, 1049):
                raise ConnectError(f"MySQL at {where}: {err.render()}", hint=err.hint) from None
            raise ConnectError(f"MySQL at {where} is unreachable: {err.message}", hint="is the server running and the port right?") from None
        except (OSError, pymysql.err.MySQLError) as exc:
            raise ConnectError(f"MySQL at {where} is unreachable: {MASKER.text(str(exc))}") from None

    def _ensure(self) -> pymysql.connections.Connection:
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    @property
    def connection_id(self) -> int:
        conn = self._ensure()
        return int(conn.thread_id())

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
        sock = getattr(conn, "_sock", None)
        try:
            if timeout is not None and sock is not None:
                sock.settimeout(timeout)
            with conn.cursor() as cur:
                # PyMySQL formats %s only when params is given; a bare '%' in SQL stays intact.
                rowcount = cur.execute(sql, params if params else None)  # type: ignore[arg-type]  # bytes: a restore batch
                columns: tuple[str, ...] = tuple(d[0] for d in cur.description) if cur.description else ()
                rows: tuple[dict[str, Any], ...] = ()
                result = getattr(cur, "_result", None)
                warnings = int(getattr(result, "warning_count", 0) or 0)
                raw_info = getattr(result, "message", None)  # "Records: 3  Duplicates: 1  Warnings: 1"
                info = raw_info.decode("utf-8", "replace") if isinstance(raw_info, bytes) else str(raw_info or "")
                if columns:
                    rows = tuple(dict(zip(columns, r)) for r in cur.fetchall())
                    rowcount = len(rows)
        except pymysql.err.MySQLError as exc:
            if timeout is not None and isinstance(exc.__context__, TimeoutError):
                # PyMySQL turns a socket timeout into 2013 "Lost connection": it is our timeout.
                self._drop()
                raise CommandTimeout(f"query ran past its timeout of {timeout}s: {MASKER.text(_text(sql))[:200]}") from None
            err = _error(exc, sql)
            diag = diagnose(err.errno)
            if (diag is not None and diag.lost_connection) or isinstance(exc, pymysql.err.InterfaceError):
                self._drop()
            raise err from None
        except TimeoutError:
            self._drop()  # the server may still be running it; this session is unusable now
            raise CommandTimeout(f"query ran past its timeout of {timeout}s: {MASKER.text(_text(sql))[:200]}") from None
        except OSError as exc:
            self._drop()
            raise SqlError(f"lost connection: {exc}", errno=2013, sql=MASKER.text(_text(sql)), hint=diagnose(2013).hint()) from None  # type: ignore[union-attr]
        finally:
            if timeout is not None and sock is not None and self._conn is not None:
                try:
                    sock.settimeout(None)
                except OSError:
                    pass
        return SqlResult(sql=sql if isinstance(sql, str) else _text(sql)[:200], columns=columns, rows=rows, rowcount=int(rowcount or 0), duration=time.perf_counter() - start,
                         warnings=warnings, info=info)

    def load_local(self, sql: str | bytes, name: str, data: bytes | bytearray | memoryview, *, timeout: float | None = None) -> SqlResult:
        """Run ``LOAD DATA LOCAL INFILE '<name>' …`` feeding ``data`` from memory.

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
