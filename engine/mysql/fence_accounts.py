"""Accounts a fence locks (``ALTER USER … ACCOUNT LOCK``) so application pools cannot
reconnect, and unlocks again — only those it locked.

Patterns (``stop_writes: {lock_accounts: [...]}``): ``app`` (every host of user app),
``app@%`` / ``app@10.0.0.%`` (that exact account, as ``SHOW GRANTS`` spells it), ``app_*``
(``*`` matches any characters, in the user or the host part; ``%`` too in the user part,
where MySQL allows no wildcard of its own).

Lock state: MariaDB keeps it in ``mysql.global_priv`` (JSON ``account_locked``, 10.4.2+);
MySQL/Percona in ``mysql.user.account_locked`` (5.7.6+). Roles are never accounts to lock.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from engine.errors import ActionError, SqlError
from engine.transport.base import Sql

# Accounts of the server itself (locked already, or never to be touched).
_SYSTEM_ACCOUNTS = ("mariadb.sys", "mysql.sys", "mysql.session", "mysql.infoschema")


@dataclass(frozen=True, order=True)
class Account:
    """One account, ``user@host`` in messages and in the journal."""

    user: str
    host: str

    def __str__(self) -> str:
        return f"{self.user}@{self.host}"

    @classmethod
    def parse(cls, text: str) -> Account:
        """``user@host`` back into the type (the host is after the last ``@``)."""
        user, sep, host = text.rpartition("@")
        return cls(user, host) if sep else cls(text, "%")

    @property
    def quoted(self) -> str:
        """``'user'@'host'`` as information_schema's GRANTEE column spells it."""
        return "'" + self.user.replace("'", "''") + "'@'" + self.host.replace("'", "''") + "'"


def account_locks(sql: Sql) -> dict[Account, bool]:
    """Every account (no roles) and whether it is locked now."""
    try:
        rows = sql.query("SELECT User AS user, Host AS host, JSON_VALUE(Priv, '$.account_locked') AS locked,"
                         " JSON_VALUE(Priv, '$.is_role') AS is_role FROM mysql.global_priv").rows
        return {Account(str(r["user"]), str(r["host"])): str(r["locked"]).lower() in ("1", "true")
                for r in rows if str(r.get("is_role") or "").lower() not in ("1", "true")}
    except SqlError as exc:
        if exc.errno not in (1146, 1305, 1064):  # no global_priv table (MySQL) / no JSON_VALUE
            raise
    rows = sql.query("SELECT User AS user, Host AS host, account_locked AS locked FROM mysql.user").rows
    return {Account(str(r["user"]), str(r["host"])): str(r["locked"]).upper() == "Y" for r in rows}


def current_account(sql: Sql) -> Account:
    return Account.parse(str(sql.query("SELECT CURRENT_USER() AS u").rows[0]["u"]))


def _glob(pattern: str, value: str, user_part: bool) -> bool:
    wild = pattern.replace("%", "*") if user_part else pattern
    if "*" not in wild:
        return value == wild
    return fnmatch.fnmatchcase(value, wild.replace("[", "[[]"))


def match_accounts(patterns: list[str], accounts: list[Account]) -> tuple[list[Account], list[str]]:
    """(the accounts the patterns name, the patterns that name none), system accounts left out."""
    found: dict[Account, None] = {}
    unmatched = []
    for p in patterns:
        user, sep, host = p.rpartition("@") if "@" in p else (p, "", "")
        hits = [a for a in accounts if a.user not in _SYSTEM_ACCOUNTS and _glob(user, a.user, True)
                and (not sep or _glob(host, a.host, False))]
        if not hits:
            unmatched.append(p)
        found.update(dict.fromkeys(hits))
    return sorted(found), unmatched


def set_locked(sql: Sql, account: Account, locked: bool) -> bool:
    """Lock or unlock on this server only: ``sql_log_bin = 0``, or the lock would replicate and
    lock the application out of the replicas too — and out of the one a failover promotes.
    Returns False when the account may not skip the binlog (BINLOG ADMIN on MariaDB 10.5.2+,
    SESSION_VARIABLES_ADMIN on MySQL, or SUPER): the change then replicates."""
    unlogged = False
    try:
        sql.query("SET SESSION sql_log_bin = 0")
        unlogged = True
    except SqlError as exc:
        if exc.errno not in (1227, 1193):  # no privilege to skip the binlog: the lock replicates
            raise
    try:
        sql.query(f"ALTER USER %s@%s ACCOUNT {'LOCK' if locked else 'UNLOCK'}", [account.user, account.host])
    except SqlError as exc:
        if exc.errno == 1064:
            raise ActionError(f"this server cannot lock accounts (ALTER USER … ACCOUNT LOCK needs MariaDB 10.4.2+ or MySQL 5.7.6+): "
                              f"{exc.message}", hint="remove lock_accounts from the step") from None
        raise
    finally:
        if unlogged:
            sql.query("SET SESSION sql_log_bin = 1")
    return unlogged
