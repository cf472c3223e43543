"""Freezing a replica: its SQL thread stopped so that it keeps the copy it has (a delayed
replica still holds the data from before the incident), its IO thread left running so that it
keeps receiving the primary's binlog.

``SHOW REPLICA STATUS`` (MariaDB 10.5.1+, MySQL 8.0.22+) or ``SHOW SLAVE STATUS`` before; the
column names differ (``Slave_SQL_Running`` / ``Replica_SQL_Running``,
``Relay_Master_Log_File`` / ``Relay_Source_Log_File``). Only the default replication
connection is frozen (MariaDB multi-source: name the connection in a ``sql`` step instead).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.errors import SqlError
from engine.mysql.binlog.position import BinlogPosition
from engine.transport.base import Sql


@dataclass(frozen=True)
class ReplicaStatus:
    """What a fence needs of ``SHOW REPLICA STATUS``."""

    source: str
    sql_running: bool
    io_running: bool
    delay: int | None
    executed: BinlogPosition  # the source's coordinates the SQL thread has executed up to

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "sql_running": self.sql_running, "io_running": self.io_running,
                "delay": self.delay, "executed": self.executed.to_dict()}


def _col(row: dict[str, Any], *names: str) -> Any:
    for n in names:
        if n in row:
            return row[n]
    return None


def replica_status(sql: Sql) -> ReplicaStatus | None:
    """The default connection's status; None when the server is not a replica."""
    rows: list[dict[str, Any]] = []
    for stmt in ("SHOW REPLICA STATUS", "SHOW SLAVE STATUS"):
        try:
            rows = list(sql.query(stmt).rows)
            break
        except SqlError as exc:
            if exc.errno != 1064:  # REPLICA unknown before MariaDB 10.5.1 / MySQL 8.0.22
                raise
    if not rows:
        return None
    r = rows[0]
    host, port = _col(r, "Source_Host", "Master_Host"), _col(r, "Source_Port", "Master_Port")
    delay = _col(r, "SQL_Delay")
    gtid = _col(r, "Executed_Gtid_Set") or _col(r, "Gtid_Slave_Pos")
    if not gtid:
        try:
            gtid = sql.query("SELECT @@GLOBAL.gtid_slave_pos AS g").rows[0]["g"]
        except SqlError:
            gtid = None
    pos = _col(r, "Exec_Source_Log_Pos", "Exec_Master_Log_Pos")
    return ReplicaStatus(
        source=f"{host}:{port}",
        sql_running=str(_col(r, "Replica_SQL_Running", "Slave_SQL_Running")).lower() == "yes",
        io_running=str(_col(r, "Replica_IO_Running", "Slave_IO_Running")).lower() == "yes",
        delay=None if delay is None else int(delay),
        executed=BinlogPosition(file=_col(r, "Relay_Source_Log_File", "Relay_Master_Log_File") or None,
                                pos=None if pos in (None, "") else int(pos), gtid=str(gtid) if gtid else None),
    )


def stop_sql_thread(sql: Sql) -> None:
    _run(sql, "STOP")


def start_sql_thread(sql: Sql) -> None:
    _run(sql, "START")


def _run(sql: Sql, verb: str) -> None:
    for stmt in (f"{verb} REPLICA SQL_THREAD", f"{verb} SLAVE SQL_THREAD"):
        try:
            sql.query(stmt)
            return
        except SqlError as exc:
            if exc.errno != 1064:  # REPLICA unknown before MariaDB 10.5.1 / MySQL 8.0.22
                raise
