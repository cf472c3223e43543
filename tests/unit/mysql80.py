"""A fake MySQL 8.0 session for the fence's MySQL path (only MariaDB runs on this machine).

It answers exactly the statements ``stop_writes``/``resume_writes`` send, with MySQL 8.0's
answers: column names, value spellings and error numbers/messages as MySQL 8.0.36 gives them
(transcribed from the MySQL 8.0 reference manual — SHOW GRANTS with its separate line of
dynamic privileges, SHOW MASTER STATUS with ``Executed_Gtid_Set``, SHOW REPLICA STATUS with
``Replica_*``/``Source_*`` columns, ``mysql.user.account_locked`` 'Y'/'N', no
``mysql.global_priv``, no ``SHOW BINARY LOG STATUS`` before 8.2 — not recorded from a live
server: there is none here). It also keeps the state those statements change (read_only,
super_read_only, account locks, sessions, the replica's SQL thread) and applies MySQL's rules
to them: super_read_only implies read_only and read_only=OFF clears it; under read_only only
CONNECTION_ADMIN/SUPER may write, under super_read_only nobody; KILL of another account's
session needs CONNECTION_ADMIN/SUPER (else 1095). Any other statement fails the test, so the
test sees everything the engine sends (``sent``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from engine.errors import SqlError
from engine.model import SqlResult

STATIC_ROOT = ("SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, RELOAD, SHUTDOWN, PROCESS, FILE, REFERENCES, INDEX, ALTER, "
               "SHOW DATABASES, SUPER, CREATE TEMPORARY TABLES, LOCK TABLES, EXECUTE, REPLICATION SLAVE, REPLICATION CLIENT, "
               "CREATE VIEW, SHOW VIEW, CREATE ROUTINE, ALTER ROUTINE, CREATE USER, EVENT, TRIGGER, CREATE TABLESPACE, "
               "CREATE ROLE, DROP ROLE")
DYNAMIC_ROOT = ("APPLICATION_PASSWORD_ADMIN,AUDIT_ABORT_EXEMPT,AUDIT_ADMIN,AUTHENTICATION_POLICY_ADMIN,BACKUP_ADMIN,"
                "BINLOG_ADMIN,BINLOG_ENCRYPTION_ADMIN,CLONE_ADMIN,CONNECTION_ADMIN,ENCRYPTION_KEY_ADMIN,FIREWALL_EXEMPT,"
                "FLUSH_OPTIMIZER_COSTS,FLUSH_STATUS,FLUSH_TABLES,FLUSH_USER_RESOURCES,GROUP_REPLICATION_ADMIN,"
                "GROUP_REPLICATION_STREAM,INNODB_REDO_LOG_ARCHIVE,INNODB_REDO_LOG_ENABLE,PASSWORDLESS_USER_ADMIN,"
                "PERSIST_RO_VARIABLES_ADMIN,REPLICATION_APPLIER,REPLICATION_SLAVE_ADMIN,RESOURCE_GROUP_ADMIN,"
                "RESOURCE_GROUP_USER,ROLE_ADMIN,SENSITIVE_VARIABLES_OBSERVER,SERVICE_CONNECTION_ADMIN,"
                "SESSION_VARIABLES_ADMIN,SET_USER_ID,SHOW_ROUTINE,SYSTEM_USER,SYSTEM_VARIABLES_ADMIN,"
                "TABLE_ENCRYPTION_ADMIN,TELEMETRY_LOG_ADMIN,XA_RECOVER_ADMIN")
UUID = "3e11fa47-71ca-11e1-9e33-c80aa9429562"


@dataclass
class Proc:
    id: int
    user: str
    host: str
    command: str = "Sleep"
    db: str | None = None
    time: int = 3


@dataclass
class Mysql80:
    """One fake MySQL 8.0.36 server and the engine's session on it (``runbook``@``%``)."""

    static: str = STATIC_ROOT  # the engine account's global static privileges (SHOW GRANTS line 1)
    dynamic: str = DYNAMIC_ROOT  # … and dynamic ones (line 2), "" for none
    read_only: bool = False
    super_read_only: bool = False
    log_bin: bool = True
    version: str = "8.0.36"
    accounts: dict[tuple[str, str], bool] = field(default_factory=lambda: {
        ("runbook", "%"): False, ("root", "localhost"): False, ("app", "%"): False, ("app", "10.0.0.%"): False,
        ("report", "%"): True, ("repl", "%"): False, ("mysql.sys", "localhost"): True, ("mysql.session", "localhost"): True,
        ("mysql.infoschema", "localhost"): True})
    account_static: dict[tuple[str, str], list[str]] = field(default_factory=lambda: {
        ("root", "localhost"): ["SUPER", "CREATE USER", "PROCESS"], ("app", "%"): ["USAGE"], ("repl", "%"): ["REPLICATION SLAVE"]})
    account_dynamic: dict[tuple[str, str], list[str]] = field(default_factory=lambda: {("root", "localhost"): ["CONNECTION_ADMIN"]})
    procs: list[Proc] = field(default_factory=lambda: [
        Proc(5, "event_scheduler", "localhost", "Daemon"),
        Proc(7, "system user", "", "Connect"),
        Proc(11, "repl", "10.0.0.9:40112", "Binlog Dump GTID"),
        Proc(20, "app", "10.0.0.5:51234", "Sleep", "shop"),
        Proc(21, "app", "10.0.0.6:51300", "Query", "shop"),
        Proc(22, "root", "localhost", "Sleep"),
    ])
    replica: dict[str, Any] | None = None  # SHOW REPLICA STATUS row (None: not a replica)
    binlog_file: str = "binlog.000042"
    binlog_pos: int = 1187
    gtid_executed: str = f"{UUID}:1-5031"
    my_id: int = 30
    sent: list[str] = field(default_factory=list)

    # -- helpers --------------------------------------------------------------------------
    def _privs(self) -> set[str]:
        out = {p.strip().upper() for p in self.static.split(",") if p.strip()}
        return out | {p.strip().upper() for p in self.dynamic.split(",") if p.strip()}

    def _may_write_under_read_only(self) -> bool:
        return not self.super_read_only and bool({"SUPER", "CONNECTION_ADMIN"} & self._privs())

    def _result(self, sql: str, rows: list[dict[str, Any]]) -> SqlResult:
        cols = tuple(rows[0]) if rows else ()
        return SqlResult(sql=sql, columns=cols, rows=tuple(rows), rowcount=len(rows), duration=0.0)

    @staticmethod
    def _error(errno: int, message: str, sql: str, state: str = "HY000") -> SqlError:
        return SqlError(message, errno=errno, sqlstate=state, sql=sql)

    def _read_only_error(self, sql: str) -> SqlError:
        opt = "--super-read-only" if self.super_read_only else "--read-only"
        return self._error(1290, f"The MySQL server is running with the {opt} option so it cannot execute this statement", sql)

    # -- the session ----------------------------------------------------------------------
    def query(self, sql: str, params: Any = None, *, timeout: float | None = None) -> SqlResult:
        p = list(params or [])
        rendered = sql.replace("%%", "%")
        for v in p:
            rendered = rendered.replace("%s", repr(v) if isinstance(v, str) else str(v), 1)
        self.sent.append(rendered)
        s = " ".join(sql.split())
        if s.startswith("SHOW GLOBAL VARIABLES WHERE Variable_name IN"):
            names = p or re.findall(r"'(\w+)'", s)
            values = {"version": self.version, "version_comment": "MySQL Community Server - GPL", "hostname": "db1.prod",
                      "server_uuid": UUID, "server_id": "1", "read_only": "ON" if self.read_only else "OFF",
                      "super_read_only": "ON" if self.super_read_only else "OFF", "log_bin": "ON" if self.log_bin else "OFF",
                      "gtid_executed": self.gtid_executed.replace(",", ",\n")}
            return self._result(sql, [{"Variable_name": n, "Value": values[n]} for n in names if n in values])
        if s == "SELECT CURRENT_USER() AS u":
            return self._result(sql, [{"u": "runbook@%"}])
        if s == "SHOW GRANTS":
            col = "Grants for runbook@%"
            rows = [{col: f"GRANT {self.static or 'USAGE'} ON *.* TO `runbook`@`%`"}]
            if self.dynamic:
                rows.append({col: f"GRANT {self.dynamic} ON *.* TO `runbook`@`%`"})
            return self._result(sql, rows)
        if "FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID()" in s:
            return self._processlist(sql, s, p)
        if s == "SELECT MAX(ID) AS m FROM information_schema.PROCESSLIST":
            return self._result(sql, [{"m": max([self.my_id, *(x.id for x in self.procs)])}])
        if s.startswith("SELECT ID AS id FROM information_schema.PROCESSLIST WHERE ID IN"):
            return self._result(sql, [{"id": x.id} for x in self.procs if x.id in p])
        if s == "KILL CONNECTION %s":
            return self._kill(sql, int(p[0]))
        if s == "SET SESSION lock_wait_timeout = %s" or re.fullmatch(r"SET SESSION sql_log_bin = [01]", s):
            return self._result(sql, [])
        m = re.fullmatch(r"SET GLOBAL (super_read_only|read_only) = (ON|OFF)", s)
        if m:
            return self._set(sql, m.group(1), m.group(2) == "ON")
        if "FROM mysql.global_priv" in s:
            raise self._error(1146, "Table 'mysql.global_priv' doesn't exist", sql, "42S02")
        if s == "SELECT User AS user, Host AS host, account_locked AS locked FROM mysql.user":
            return self._result(sql, [{"user": u, "host": h, "locked": "Y" if lk else "N"} for (u, h), lk in self.accounts.items()])
        m = re.fullmatch(r"ALTER USER %s@%s ACCOUNT (LOCK|UNLOCK)", s)
        if m:
            return self._alter_user(sql, (str(p[0]), str(p[1])), m.group(1) == "LOCK")
        if s.startswith("SELECT DISTINCT GRANTEE AS g FROM information_schema.USER_PRIVILEGES"):
            return self._result(sql, [{"g": f"'{u}'@'{h}'"} for (u, h), privs in self.account_static.items()
                                      if set(privs) & set(p)])
        if s.startswith("SELECT DISTINCT USER AS u, HOST AS h FROM mysql.global_grants"):
            return self._result(sql, [{"u": u, "h": h} for (u, h), privs in self.account_dynamic.items() if set(privs) & set(p)])
        if s == "SHOW BINARY LOG STATUS":
            raise self._error(1064, "You have an error in your SQL syntax; check the manual that corresponds to your MySQL "
                                    "server version for the right syntax to use near 'BINARY LOG STATUS' at line 1", sql, "42000")
        if s == "SHOW MASTER STATUS":
            if not self.log_bin:
                return self._result(sql, [])
            return self._result(sql, [{"File": self.binlog_file, "Position": self.binlog_pos, "Binlog_Do_DB": "",
                                       "Binlog_Ignore_DB": "", "Executed_Gtid_Set": self.gtid_executed}])
        if s.startswith("DELETE FROM `_rb_fence_probe_"):
            if self.read_only and not self._may_write_under_read_only():
                raise self._read_only_error(sql)
            db = s.split("`")[1]
            raise self._error(1146, f"Table '{db}.t' doesn't exist", sql, "42S02")
        if s == "SHOW REPLICA STATUS":
            return self._result(sql, [dict(self.replica)] if self.replica else [])
        m = re.fullmatch(r"(STOP|START) REPLICA SQL_THREAD", s)
        if m and self.replica is not None:
            self.replica["Replica_SQL_Running"] = "Yes" if m.group(1) == "START" else "No"
            return self._result(sql, [])
        raise AssertionError(f"the fake MySQL 8.0 does not know this statement: {rendered}")

    def _processlist(self, sql: str, s: str, p: list[Any]) -> SqlResult:
        system_users, system_commands, rest = p[:2], p[2:7], p[7:]
        rows = [x for x in self.procs if x.user not in system_users and x.command not in system_commands
                and not x.command.startswith("Binlog Dump")]
        for clause in re.findall(r"USER (NOT IN|IN) \(([^)]*)\)", s)[1:]:  # the first is the system users
            n = clause[1].count("%s")
            names, rest = rest[:n], rest[n:]
            rows = [x for x in rows if (x.user in names) == (clause[0] == "IN")]
        return self._result(sql, [{"id": x.id, "user": x.user, "host": x.host, "db": x.db, "command": x.command, "time": x.time}
                                  for x in rows])

    def _kill(self, sql: str, conn_id: int) -> SqlResult:
        proc = next((x for x in self.procs if x.id == conn_id), None)
        if proc is None:
            raise self._error(1094, f"Unknown thread id: {conn_id}", sql)
        if proc.user != "runbook" and not {"SUPER", "CONNECTION_ADMIN"} & self._privs():
            raise self._error(1095, f"You are not owner of thread {conn_id}", sql)
        self.procs.remove(proc)
        return self._result(sql, [])

    def _set(self, sql: str, name: str, on: bool) -> SqlResult:
        if not {"SUPER", "SYSTEM_VARIABLES_ADMIN"} & self._privs():
            raise self._error(1227, "Access denied; you need (at least one of) the SUPER or SYSTEM_VARIABLES_ADMIN "
                                    "privilege(s) for this operation", sql, "42000")
        if name == "super_read_only":
            self.super_read_only = on
            self.read_only = self.read_only or on
        else:
            self.read_only = on
            self.super_read_only = self.super_read_only and on
        return self._result(sql, [])

    def _alter_user(self, sql: str, account: tuple[str, str], lock: bool) -> SqlResult:
        if "CREATE USER" not in self._privs():
            raise self._error(1227, "Access denied; you need (at least one of) the CREATE USER privilege(s) for this operation",
                              sql, "42000")
        if self.read_only and not self._may_write_under_read_only():
            raise self._read_only_error(sql)
        if account not in self.accounts:
            raise self._error(1396, f"Operation ALTER USER failed for '{account[0]}'@'{account[1]}'", sql)
        self.accounts[account] = lock
        return self._result(sql, [])

    def close(self) -> None:
        pass
