"""Replication knowledge shared by the ``replication`` action, the failover assessment and the lab.

One server's replication state, read in one go (:func:`read_state`), and the statements that
change it, in the dialect of the server (:class:`Dialect`):

* MariaDB: ``SHOW SLAVE STATUS``, ``CHANGE MASTER TO … MASTER_USE_GTID=slave_pos``,
  ``gtid_binlog_pos``/``gtid_slave_pos``, ``START/STOP SLAVE``, ``RESET SLAVE ALL``.
* MySQL 8.0.22+ (8.0.23 for ``CHANGE REPLICATION SOURCE TO``): ``SHOW REPLICA STATUS``,
  ``SOURCE_AUTO_POSITION=1``, ``gtid_executed``, ``START/STOP REPLICA``, ``RESET REPLICA ALL``;
  older MySQL the ``SLAVE``/``MASTER`` spellings with ``MASTER_AUTO_POSITION=1``.

Only the default replication channel/connection is handled (no multi-source).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from engine.actions.guard import as_bool, flavor_of, global_variables, version_tuple
from engine.errors import SqlError
from engine.mysql.binlog.position import BinlogPosition
from engine.mysql.gtid import GtidState, parse_gtids
from engine.transport.base import Sql

_VARS = ["version", "version_comment", "server_id", "read_only", "super_read_only", "log_bin", "log_slave_updates",
         "log_replica_updates", "gtid_binlog_pos", "gtid_slave_pos", "gtid_executed", "gtid_mode", "report_host", "port"]


@dataclass(frozen=True)
class Dialect:
    """The statements of one server flavor and version."""

    flavor: str
    version: tuple[int, int, int]

    @property
    def mariadb(self) -> bool:
        return self.flavor == "mariadb"

    @property
    def replica_words(self) -> bool:
        """MySQL 8.0.22+: REPLICA/SOURCE spellings (the old ones are deprecated, gone in 8.4)."""
        return not self.mariadb and self.version >= (8, 0, 22)

    def show_status(self) -> str:
        return "SHOW REPLICA STATUS" if self.replica_words else "SHOW SLAVE STATUS"

    def show_replicas(self) -> str:
        return "SHOW REPLICAS" if self.replica_words else "SHOW SLAVE HOSTS"

    def threads(self, verb: str, which: str = "both") -> str:
        """``START``/``STOP`` of the IO thread, the SQL thread or both."""
        word = "REPLICA" if self.replica_words else "SLAVE"
        part = {"both": "", "io": " IO_THREAD", "sql": " SQL_THREAD"}[which]
        return f"{verb} {word}{part}"

    def reset_all(self) -> str:
        return "RESET REPLICA ALL" if self.replica_words else "RESET SLAVE ALL"

    def change_source(self, host: str, port: int, user: str | None, password: bool, gtid: bool = True,
                      connect_retry: int | None = None, log_pos: int | None = None) -> str:
        """The CHANGE statement with ``%s`` placeholders for host, port, [user, [password]],
        [log file] (``log_pos`` given: classic coordinates instead of GTID). Options left out
        keep their values (a revert needs no password it never knew)."""
        modern = not self.mariadb and self.version >= (8, 0, 23)
        p = "SOURCE" if modern else "MASTER"
        parts = [f"{p}_HOST = %s", f"{p}_PORT = %s"]
        if user is not None:
            parts.append(f"{p}_USER = %s")
        if password:
            parts.append(f"{p}_PASSWORD = %s")
        if gtid:
            parts.append("MASTER_USE_GTID = slave_pos" if self.mariadb else f"{p}_AUTO_POSITION = 1")
        elif log_pos is not None:
            parts.append("MASTER_USE_GTID = no" if self.mariadb else f"{p}_AUTO_POSITION = 0")
        if connect_retry is not None:
            parts.append(f"{p}_CONNECT_RETRY = {int(connect_retry)}")
        if log_pos is not None:
            parts.append(f"{p}_LOG_FILE = %s")
            parts.append(f"{p}_LOG_POS = {int(log_pos)}")
        if not self.mariadb and self.version >= (8, 0, 4) and password:
            # caching_sha2_password without TLS needs the source's RSA key (MySQL 8 default)
            parts.append(f"GET_{p}_PUBLIC_KEY = 1")
        head = "CHANGE REPLICATION SOURCE TO" if modern else "CHANGE MASTER TO"
        return f"{head} " + ", ".join(parts)


@dataclass(frozen=True)
class ReplicaLink:
    """The server's own source connection (one row of SHOW REPLICA/SLAVE STATUS)."""

    source_host: str | None
    source_port: int | None
    source_user: str | None
    io_running: str | None  # Yes | No | Connecting
    sql_running: str | None  # Yes | No
    seconds_behind: int | None
    io_error: str | None
    sql_error: str | None
    received: str | None  # MariaDB Gtid_IO_Pos, MySQL Retrieved_Gtid_Set
    gtid_mode: str | None  # MariaDB Using_Gtid (Slave_Pos|Current_Pos|No), MySQL Auto_Position (1|0)
    source_log: BinlogPosition  # how far it has read the source's binlog (file/pos)
    exec_log: BinlogPosition  # how far it has applied it
    sql_delay: int | None
    source_server_id: int | None
    applied: str | None = None  # the GTIDs it has applied (MariaDB Gtid_Slave_Pos, MySQL Executed_Gtid_Set)

    @property
    def io(self) -> bool:
        return self.io_running in ("Yes", "Connecting")

    @property
    def sql(self) -> bool:
        return self.sql_running == "Yes"

    @property
    def uses_gtid(self) -> bool:
        return (self.gtid_mode or "").lower() in ("slave_pos", "current_pos", "1")

    @property
    def last_error(self) -> str | None:
        return "; ".join(e for e in (self.io_error, self.sql_error) if e) or None

    @property
    def source(self) -> str:
        return f"{self.source_host}:{self.source_port}"

    def applied_position(self) -> BinlogPosition:
        """Where the SQL thread stands: the source's coordinates it has applied up to, with the
        GTIDs it has applied (a frozen replica's copy is exactly that)."""
        return BinlogPosition(self.exec_log.file, self.exec_log.pos, self.applied)


@dataclass(frozen=True)
class ReplicationState:
    """What :func:`read_state` finds on one server."""

    dialect: Dialect
    server_id: int | None
    port: int | None
    read_only: bool
    super_read_only: bool | None
    log_bin: bool
    log_replica_updates: bool
    executed: str  # MariaDB: per domain max of gtid_binlog_pos and gtid_slave_pos; MySQL: gtid_executed
    binlog_pos: str | None  # MariaDB gtid_binlog_pos
    slave_pos: str | None  # MariaDB gtid_slave_pos
    gtid_mode: str | None  # MySQL gtid_mode
    link: ReplicaLink | None
    replicas: list[dict[str, Any]] = field(default_factory=list)

    @property
    def flavor(self) -> str:
        return self.dialect.flavor

    @property
    def role(self) -> str:
        return "replica" if self.link is not None else "primary"

    def gtids(self) -> GtidState:
        return parse_gtids(self.executed, self.flavor)

    def received(self) -> GtidState:
        """Executed plus what the IO thread received and the SQL thread has yet to apply."""
        mine = self.gtids()
        if self.link is None or not self.link.received:
            return mine
        return mine.union(parse_gtids(self.link.received, self.flavor))

    def unapplied(self) -> int:
        """Transactions received but not applied yet (0 when it cannot tell)."""
        return sum(r.count for r in self.gtids().missing(self.received()))


def _int(value: Any) -> int | None:
    try:
        return None if value in (None, "") else int(value)
    except (TypeError, ValueError):
        return None


def _link(row: dict[str, Any]) -> ReplicaLink:
    def pick(*names: str) -> Any:
        return next((row[n] for n in names if n in row and row[n] not in (None,)), None)

    def err(kind: str) -> str | None:
        no = _int(pick(f"Last_{kind}_Errno"))
        text = pick(f"Last_{kind}_Error")
        return f"{kind} thread error {no}: {text}" if no else None

    return ReplicaLink(
        source_host=pick("Source_Host", "Master_Host") or None,
        source_port=_int(pick("Source_Port", "Master_Port")),
        source_user=pick("Source_User", "Master_User") or None,
        io_running=pick("Replica_IO_Running", "Slave_IO_Running"),
        sql_running=pick("Replica_SQL_Running", "Slave_SQL_Running"),
        seconds_behind=_int(pick("Seconds_Behind_Source", "Seconds_Behind_Master")),
        io_error=err("IO"),
        sql_error=err("SQL"),
        received=pick("Gtid_IO_Pos", "Retrieved_Gtid_Set") or None,
        gtid_mode=str(pick("Using_Gtid", "Auto_Position")) if pick("Using_Gtid", "Auto_Position") is not None else None,
        source_log=BinlogPosition(pick("Source_Log_File", "Master_Log_File") or None, _int(pick("Read_Source_Log_Pos", "Read_Master_Log_Pos"))),
        exec_log=BinlogPosition(pick("Relay_Source_Log_File", "Relay_Master_Log_File") or None,
                                _int(pick("Exec_Source_Log_Pos", "Exec_Master_Log_Pos"))),
        sql_delay=_int(pick("SQL_Delay")),
        source_server_id=_int(pick("Source_Server_Id", "Master_Server_Id")),
        applied=pick("Executed_Gtid_Set", "Gtid_Slave_Pos") or None,
    )


def _replicas(sql: Sql, d: Dialect) -> list[dict[str, Any]]:
    """Replicas connected to this server: registered ones (report_host) and dump threads."""
    out: list[dict[str, Any]] = []
    try:
        for r in sql.query(d.show_replicas()).rows:
            out.append({"server_id": _int(r.get("Server_id") or r.get("Server_Id")), "host": r.get("Host") or None,
                        "port": _int(r.get("Port"))})
    except SqlError as exc:
        if exc.errno not in (1064, 1227):
            raise
    dumps: list[dict[str, Any]]
    try:
        dumps = list(sql.query("SELECT USER AS user, HOST AS host FROM information_schema.PROCESSLIST"
                               " WHERE COMMAND LIKE 'Binlog Dump%%'").rows)
    except SqlError:
        dumps = []
    if len(dumps) > len(out):  # replicas that did not register (no report_host)
        out += [{"server_id": None, "host": str(r["host"]).rsplit(":", 1)[0], "port": None, "user": r["user"]}
                for r in dumps[len(out):]]
    return out


def dialect_of(sql: Sql) -> Dialect:
    """The statements of the server behind ``sql``."""
    v = global_variables(sql, ["version", "version_comment"])
    return Dialect(flavor_of(v["version"] or "", v["version_comment"] or ""), version_tuple(v["version"] or ""))


def read_link(sql: Sql, dialect: Dialect | None = None, *, slave_pos: str | None = None) -> ReplicaLink | None:
    """The server's own source link (``SHOW REPLICA/SLAVE STATUS``), None when it is not a
    replica: what a fence that freezes a replica reads, without the rest of :func:`read_state`.
    ``slave_pos``: MariaDB's ``@@gtid_slave_pos`` when the caller has it already."""
    d = dialect or dialect_of(sql)
    rows = sql.query(d.show_status()).rows
    if not rows or not (rows[0].get("Master_Host") or rows[0].get("Source_Host")):
        return None
    link = _link(rows[0])
    if link.applied is None and d.mariadb:
        # MariaDB's SHOW SLAVE STATUS names no applied GTIDs (only SHOW ALL SLAVES STATUS does)
        if slave_pos is None:
            slave_pos = global_variables(sql, ["gtid_slave_pos"])["gtid_slave_pos"]
        link = replace(link, applied=slave_pos or None)
    return link


def read_state(sql: Sql) -> ReplicationState:
    """The server's replication state: variables, its source link, its replicas."""
    v = global_variables(sql, _VARS)
    d = Dialect(flavor_of(v["version"] or "", v["version_comment"] or ""), version_tuple(v["version"] or ""))
    link = read_link(sql, d, slave_pos=v["gtid_slave_pos"] or "")
    if d.mariadb:
        from engine.mysql.gtid import MariadbGtidPos

        executed = str(MariadbGtidPos.parse(v["gtid_binlog_pos"]).union(MariadbGtidPos.parse(v["gtid_slave_pos"])))
    else:
        executed = str(parse_gtids(v["gtid_executed"], d.flavor))
    return ReplicationState(
        dialect=d, server_id=_int(v["server_id"]), port=_int(v["port"]),
        read_only=bool(as_bool(v["read_only"])), super_read_only=as_bool(v["super_read_only"]),
        log_bin=bool(as_bool(v["log_bin"])),
        log_replica_updates=bool(as_bool(v["log_replica_updates"] if v["log_replica_updates"] is not None else v["log_slave_updates"])),
        executed=executed, binlog_pos=v["gtid_binlog_pos"], slave_pos=v["gtid_slave_pos"], gtid_mode=v["gtid_mode"],
        link=link, replicas=_replicas(sql, d) if link is None or as_bool(v["log_bin"]) else [],
    )
