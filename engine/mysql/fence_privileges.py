"""The privileges a fence needs, checked before it changes anything.

What the engine's own account must hold (any one of each line; MariaDB split SUPER in 10.5.2,
and from 10.11 SUPER no longer bypasses read_only, MDEV-29596):

| to …                               | MariaDB ≥ 10.11   | MariaDB 10.5.2–10.10      | MySQL 8 / Percona                   |
|------------------------------------|-------------------|---------------------------|-------------------------------------|
| set read_only                      | READ_ONLY ADMIN   | READ_ONLY ADMIN or SUPER  | SYSTEM_VARIABLES_ADMIN or SUPER     |
| write under read_only (later steps)| READ_ONLY ADMIN   | READ_ONLY ADMIN or SUPER  | CONNECTION_ADMIN or SUPER           |
| see every session                  | PROCESS           | PROCESS                   | PROCESS                             |
| kill other accounts' sessions      | CONNECTION ADMIN  | CONNECTION ADMIN or SUPER | CONNECTION_ADMIN or SUPER           |
| lock/unlock accounts               | CREATE USER       | CREATE USER               | CREATE USER                         |
| read the binlog position           | BINLOG MONITOR    | BINLOG MONITOR or SUPER   | REPLICATION CLIENT or SUPER         |
| stop/start a replica's SQL thread  | REPLICATION SLAVE ADMIN | … or SUPER          | REPLICATION_SLAVE_ADMIN or SUPER    |

Read from ``SHOW GRANTS`` (the account's global grants and, on MariaDB, its current role's).
Privileges that come through roles cannot all be seen there (nested roles; MySQL shows a role's
grants only with ``USING``): when the account has a role, a need not seen is reported as
unconfirmed rather than missing, and the step goes on (a failure after the fence keeps its
undo).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from engine.errors import SqlError
from engine.transport.base import Sql


@dataclass(frozen=True)
class Need:
    """One thing the fence will do, and the privileges any one of which allows it."""

    what: str
    any_of: tuple[str, ...]

    def grant(self, account: str) -> str:
        return f"GRANT {self.any_of[0]} ON *.* TO {account}"


def _mariadb_split(version: tuple[int, int, int]) -> bool:
    return version >= (10, 5, 2)


def write_under_read_only(flavor: str, version: tuple[int, int, int]) -> tuple[str, ...]:
    """The privileges that let an account write while read_only is ON."""
    if flavor == "mariadb":
        if version >= (10, 11, 0):
            return ("READ_ONLY ADMIN",)
        return ("READ_ONLY ADMIN", "SUPER") if _mariadb_split(version) else ("SUPER",)
    return ("CONNECTION_ADMIN", "SUPER")


def needs(flavor: str, version: tuple[int, int, int], *, set_read_only: bool, engine_writes: bool, see_sessions: bool,
          kill: bool, lock: bool, binlog: bool, replica: bool) -> list[Need]:
    """What a fence with these parts needs on this server."""
    maria = flavor == "mariadb"
    split = maria and _mariadb_split(version)

    def priv(maria_name: str, mysql_name: str) -> tuple[str, ...]:
        if maria:
            return (maria_name, "SUPER") if split else ("SUPER",)
        return (mysql_name, "SUPER")

    out: list[Need] = []
    if set_read_only:
        if maria:
            out.append(Need("set read_only", write_under_read_only(flavor, version)))
        else:
            out.append(Need("set read_only", ("SYSTEM_VARIABLES_ADMIN", "SUPER")))
    if engine_writes:
        out.append(Need("write under read_only (the later snapshot and restore steps)", write_under_read_only(flavor, version)))
    if see_sessions:
        out.append(Need("see every session", ("PROCESS",)))
    if kill:
        out.append(Need("kill other accounts' sessions", priv("CONNECTION ADMIN", "CONNECTION_ADMIN")))
    if lock:
        out.append(Need("lock and unlock accounts", ("CREATE USER",)))
    if binlog:
        out.append(Need("read the binlog position", ("BINLOG MONITOR", "SUPER") if split else
                        (("SUPER", "REPLICATION CLIENT") if maria else ("REPLICATION CLIENT", "SUPER"))))
    if replica:
        out.append(Need("stop and start the replica's SQL thread", priv("REPLICATION SLAVE ADMIN", "REPLICATION_SLAVE_ADMIN")))
    return out


@dataclass(frozen=True)
class Grants:
    """The global privileges ``SHOW GRANTS`` shows, and whether roles may add more."""

    privileges: frozenset[str]
    has_roles: bool
    all_privileges: bool

    def holds(self, need: Need) -> bool:
        if self.all_privileges:
            return True
        return any(p in self.privileges for p in need.any_of)


_GLOBAL = re.compile(r"^GRANT\s+(?P<privs>.+?)\s+ON\s+\*\.\*\s+TO\s", re.I)
_ROLE = re.compile(r"^GRANT\s+(?!.*\sON\s)\S.*\sTO\s", re.I)


def parse_grants(lines: list[str]) -> Grants:
    privs: set[str] = set()
    roles = everything = False
    for line in lines:
        m = _GLOBAL.match(line.strip())
        if m:
            for p in m.group("privs").split(","):
                name = " ".join(p.split()).upper()
                if name in ("ALL", "ALL PRIVILEGES"):
                    everything = True
                privs.add(name)
        elif _ROLE.match(line.strip()):
            roles = True
    return Grants(frozenset(privs), roles, everything)


def own_grants(sql: Sql) -> Grants:
    rows = sql.query("SHOW GRANTS").rows
    return parse_grants([str(next(iter(r.values()))) for r in rows])


def check(grants: Grants, wanted: list[Need], account: str) -> tuple[list[str], list[str]]:
    """(missing: one line each with the GRANT that fixes it, unconfirmed: needs that roles may
    cover). Missing is only said when no role could hold the privilege."""
    missing: list[str] = []
    unconfirmed: list[str] = []
    for need in wanted:
        if grants.holds(need):
            continue
        line = f"to {need.what} it needs {' or '.join(need.any_of)} ({need.grant(account)})"
        (unconfirmed if grants.has_roles else missing).append(line)
    return missing, unconfirmed


def holders(sql: Sql, privileges: list[str]) -> set[str]:
    """GRANTEEs (``'user'@'host'``) holding any of these global privileges: the static ones
    from information_schema.USER_PRIVILEGES, MySQL's dynamic ones (CONNECTION_ADMIN, …) from
    mysql.global_grants (USER_PRIVILEGES shows only mysql.user's columns there)."""
    marks = ", ".join(["%s"] * len(privileges))
    res = sql.query(f"SELECT DISTINCT GRANTEE AS g FROM information_schema.USER_PRIVILEGES WHERE PRIVILEGE_TYPE IN ({marks})",
                    list(privileges))
    found = {str(r["g"]) for r in res.rows}
    dynamic = [p for p in privileges if "_" in p]
    if dynamic:
        try:
            res = sql.query("SELECT DISTINCT USER AS u, HOST AS h FROM mysql.global_grants WHERE PRIV IN "
                            f"({', '.join(['%s'] * len(dynamic))})", dynamic)
            found |= {"'" + str(r["u"]) + "'@'" + str(r["h"]) + "'" for r in res.rows}
        except SqlError as exc:
            if exc.errno not in (1146, 1142):  # MariaDB has no such table; no right to read it
                raise
    return found


def admin_accounts(sql: Sql, flavor: str, version: tuple[int, int, int]) -> set[str]:
    """GRANTEEs holding a privilege that lets them write under read_only or run the server:
    never locked by ``lock_accounts: true`` (list them to lock them)."""
    return holders(sql, sorted({*write_under_read_only(flavor, version), "SUPER", "CONNECTION ADMIN", "CONNECTION_ADMIN",
                                "CREATE USER"}))
