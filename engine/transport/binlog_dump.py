"""The replication protocol over PyMySQL: a server's binlog events as a replica receives them.

The engine connects like ``mariadb-binlog --read-from-remote-server``: a session of its own
(the host's MySQL settings, direct or through the SSH tunnel), ``@master_binlog_checksum`` set
to the server's so events keep their CRC32, MariaDB's GTID capability (real GTID events, and
Annotate_rows on request), then ``COM_BINLOG_DUMP`` from a file and position with
``BINLOG_DUMP_NON_BLOCK``: the server sends what its binlogs hold and an EOF, never waits for
more. It presents its own ``server_id`` (needs REPLICATION SLAVE / REPLICA).

No PyMySQL or socket exception leaves this module (ConnectError, SqlError, LostConnection).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

import pymysql
import pymysql.err

from engine.errors import ConnectError, LostConnection, SqlError
from engine.model import MysqlSettings
from engine.transport.mysql import MysqlSession, TunnelFactory, _error

COM_BINLOG_DUMP = 0x12
BINLOG_DUMP_NON_BLOCK = 0x01
BINLOG_SEND_ANNOTATE_ROWS_EVENT = 0x02
MARIA_SLAVE_CAPABILITY_GTID = 4
#: a replica id unlikely to be any real server's (a server kicks an older replica with the same id)
DEFAULT_SERVER_ID = 0xEE000000 | 0x5EB1


class BinlogDump:
    """One replication connection. ``stream(file, pos)`` yields each event's bytes (header to
    checksum) until the end of the server's binlogs as they are when it gets there."""

    def __init__(self, settings: MysqlSettings, tunnel: TunnelFactory | None = None, *, server_id: int = DEFAULT_SERVER_ID):
        self.settings, self.tunnel, self.server_id = settings, tunnel, server_id
        self._session: MysqlSession | None = None

    def stream(self, file: str, pos: int, *, annotate: bool = True) -> Iterator[bytes]:
        self.close()
        session = MysqlSession(self.settings, tunnel=self.tunnel)
        self._session = session
        session.query("SET @master_binlog_checksum = @@global.binlog_checksum, @source_binlog_checksum = @@global.binlog_checksum")
        session.query("SET @mariadb_slave_capability = %s", [MARIA_SLAVE_CAPABILITY_GTID])
        conn: Any = session._ensure()
        flags = BINLOG_DUMP_NON_BLOCK | (BINLOG_SEND_ANNOTATE_ROWS_EVENT if annotate else 0)
        try:
            conn._execute_command(COM_BINLOG_DUMP, struct.pack("<IHI", pos, flags, self.server_id) + file.encode())
        except (pymysql.err.MySQLError, OSError) as exc:
            self.close()
            raise ConnectError(f"binlog dump from {self.settings.host}:{self.settings.port} could not start: {exc}") from None
        try:
            while True:
                try:
                    packet = conn._read_packet()
                except pymysql.err.OperationalError as exc:
                    err = _error(exc, None)
                    if err.errno in (2013, 2006):
                        raise LostConnection(f"the binlog dump from {self.settings.host}:{self.settings.port} was cut: "
                                             f"{err.message}", errno=err.errno) from None
                    raise SqlError(f"binlog dump of {file}:{pos}: {err.message}", errno=err.errno, sqlstate=err.sqlstate,
                                   hint=_hint(err.errno) or err.hint) from None
                except pymysql.err.MySQLError as exc:
                    err = _error(exc, None)
                    raise SqlError(f"binlog dump of {file}:{pos}: {err.message}", errno=err.errno, sqlstate=err.sqlstate,
                                   hint=_hint(err.errno) or err.hint) from None
                except OSError as exc:
                    raise LostConnection(f"the binlog dump from {self.settings.host}:{self.settings.port} was cut: {exc}",
                                         errno=2013) from None
                data = packet.get_all_data()
                if data[:1] == b"\xfe" and len(data) < 9:
                    return  # EOF: the end of the server's binlogs
                yield data[1:]
        finally:
            self.close()

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None


def _hint(errno: int | None) -> str | None:
    if errno in (1227, 1045, 1044):
        return "the host's mysql_user needs REPLICATION SLAVE (MariaDB: REPLICATION SLAVE; MySQL 8: REPLICATION SLAVE) to read binlogs"
    if errno == 1236:
        return ("the server no longer has that binlog (purged, or another server's name): point binlogs: at a directory "
                "of archived binlog files")
    return None
