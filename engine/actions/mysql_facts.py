"""``mysql_facts``: what the server is and what it holds, in one read-only step.

The "assess" stage of the emergency SOP starts here: which server is this (the identity guard
remembers it for the rest of the run), is it a primary or a replica, is it fenced already, how
big are the tables, where do the datadir, tmpdir and binlogs live, how far is InnoDB behind
its checkpoint.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from engine.actions.base import Action, register
from engine.actions.guard import (
    as_bool,
    flavor_of,
    global_status,
    global_variables,
    identity_mismatch,
    record_identity,
    version_tuple,
)
from engine.errors import SqlError
from engine.model import Status, StepResult
from engine.mysql.spelling import UNKNOWN_SYNTAX, first_spelling
from engine.transport.base import Sql

SYSTEM_SCHEMAS = ("mysql", "information_schema", "performance_schema", "sys")

_VARS = [
    "version", "version_comment", "hostname", "server_uuid", "server_id", "datadir", "tmpdir",
    "read_only", "super_read_only", "log_bin", "log_bin_basename", "gtid_binlog_pos", "gtid_executed",
]


def _int(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _binlog(sql: Sql, v: dict[str, str | None], flavor: str) -> dict[str, Any]:
    enabled = bool(as_bool(v["log_bin"]))
    out: dict[str, Any] = {
        "enabled": enabled,
        "basename": v["log_bin_basename"] or None,
        "file": None,
        "position": None,
        "gtid": (v["gtid_binlog_pos"] if flavor == "mariadb" else v["gtid_executed"]) or None,
    }
    if not enabled:
        return out
    # 1227: needs BINLOG MONITOR (the facts are gathered without it)
    rows = first_spelling(sql, ("SHOW BINARY LOG STATUS", "SHOW MASTER STATUS"), skip=(UNKNOWN_SYNTAX, 1227))
    if rows:
        out["file"] = rows[0].get("File")
        out["position"] = _int(rows[0].get("Position"))
    return out


def _replication(sql: Sql) -> tuple[str | None, dict[str, Any] | None]:
    """(role, replication) from SHOW REPLICA/SLAVE STATUS; role None when not allowed to look."""
    try:
        rows = first_spelling(sql, ("SHOW REPLICA STATUS", "SHOW SLAVE STATUS"))
    except SqlError as exc:
        if exc.errno == 1227:  # needs REPLICATION CLIENT / SLAVE MONITOR
            return None, None
        raise
    if rows is None:
        return None, None
    if not rows:
        return "primary", None
    r = rows[0]

    def pick(*names: str) -> Any:
        return next((r[n] for n in names if n in r), None)

    return "replica", {
        "source_host": pick("Source_Host", "Master_Host"),
        "source_port": _int(pick("Source_Port", "Master_Port")),
        "io_running": pick("Replica_IO_Running", "Slave_IO_Running"),
        "sql_running": pick("Replica_SQL_Running", "Slave_SQL_Running"),
        "seconds_behind": _int(pick("Seconds_Behind_Source", "Seconds_Behind_Master")),
        "last_error": pick("Last_Error") or None,
    }


def _innodb(sql: Sql) -> dict[str, int | None]:
    s = global_status(sql, ["Innodb_lsn_current", "Innodb_lsn_last_checkpoint", "Innodb_checkpoint_age"])
    lsn, ckpt, age = (_int(s["Innodb_lsn_current"]), _int(s["Innodb_lsn_last_checkpoint"]), _int(s["Innodb_checkpoint_age"]))
    if lsn is None:
        # Oracle MySQL has no Innodb_lsn_* status: parse the LOG section of the monitor output.
        try:
            text = str(next(iter(sql.query("SHOW ENGINE INNODB STATUS").rows[0].values()), ""))
        except (SqlError, IndexError, StopIteration):
            text = ""
        m1 = re.search(r"Log sequence number\s+(\d+)", text)
        m2 = re.search(r"Last checkpoint at\s+(\d+)", text)
        lsn = int(m1.group(1)) if m1 else None
        ckpt = int(m2.group(1)) if m2 else None
    if age is None and lsn is not None and ckpt is not None:
        age = lsn - ckpt
    return {"lsn": lsn, "checkpoint_lsn": ckpt, "checkpoint_age": age}


def _tables(sql: Sql, schemas: list[str] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    if schemas:
        marks = ", ".join(["%s"] * len(schemas))
        where, params = f"s.SCHEMA_NAME IN ({marks})", list(schemas)
    else:
        marks = ", ".join(["%s"] * len(SYSTEM_SCHEMAS))
        where, params = f"s.SCHEMA_NAME NOT IN ({marks})", list(SYSTEM_SCHEMAS)
    res = sql.query(
        "SELECT s.SCHEMA_NAME AS sch, t.TABLE_NAME AS tbl, t.ENGINE AS engine, t.TABLE_ROWS AS row_est,"
        " t.DATA_LENGTH AS data_len, t.INDEX_LENGTH AS index_len, t.DATA_FREE AS free_len"
        " FROM information_schema.SCHEMATA s LEFT JOIN information_schema.TABLES t"
        "   ON t.TABLE_SCHEMA = s.SCHEMA_NAME AND t.TABLE_TYPE = 'BASE TABLE'"
        f" WHERE {where} ORDER BY s.SCHEMA_NAME, t.TABLE_NAME",
        params,
    )
    tables: dict[str, Any] = {}
    totals: dict[str, Any] = {}
    for r in res.rows:
        sch = str(r["sch"])
        tot = totals.setdefault(sch, {"tables": 0, "rows": 0, "data_bytes": 0, "index_bytes": 0, "free_bytes": 0})
        if r["tbl"] is None:  # an empty schema still shows up, with zero totals
            continue
        entry = {
            "rows": _int(r["row_est"]) or 0,
            "data_bytes": _int(r["data_len"]) or 0,
            "index_bytes": _int(r["index_len"]) or 0,
            "free_bytes": _int(r["free_len"]) or 0,
            "engine": r["engine"],
        }
        tables[f"{sch}.{r['tbl']}"] = entry
        tot["tables"] += 1
        for k in ("rows", "data_bytes", "index_bytes", "free_bytes"):
            tot[k] += entry[k]
    return tables, totals


def gather_facts(sql: Sql, schemas: list[str] | None = None) -> dict[str, Any]:
    """The registered structure of ``mysql_facts`` (JSON-able: ints, str, bool, None)."""
    v = global_variables(sql, _VARS)
    flavor = flavor_of(v["version"] or "", v["version_comment"] or "")
    if flavor != "mariadb":
        # MySQL 8 caches information_schema.TABLES statistics for 24 h by default.
        try:
            sql.query("SET SESSION information_schema_stats_expiry = 0")
        except SqlError:
            pass  # MySQL 5.7 has no such variable
    st = global_status(sql, ["Uptime", "Threads_connected"])
    role, replication = _replication(sql)
    tables, totals = _tables(sql, schemas)
    version = v["version"] or ""
    return {
        "flavor": flavor,
        "version": version,
        "version_tuple": list(version_tuple(version)),
        "version_comment": v["version_comment"],
        "hostname": v["hostname"],
        "server_uuid": v["server_uuid"],
        "server_id": _int(v["server_id"]),
        "datadir": v["datadir"],
        "tmpdir": v["tmpdir"],
        "read_only": bool(as_bool(v["read_only"])),
        "super_read_only": as_bool(v["super_read_only"]),
        "binlog": _binlog(sql, v, flavor),
        "role": role,
        "replication": replication,
        "tables": tables,
        "schemas": totals,
        "innodb": _innodb(sql),
        "uptime_s": _int(st["Uptime"]),
        "connections": _int(st["Threads_connected"]),
    }


@register
class MysqlFacts(Action):
    """Gather server facts (read-only; runs in check mode too) and register them.

    ```yaml
    - name: Gather server facts
      mysql_facts: {schemas: [shop]}      # default: every non-system schema
      register: facts
    - assert:
        that: [facts.role == 'primary', "facts.tables['shop.orders'].rows > 0"]
    ```

    Registers: ``flavor`` (mariadb|mysql|percona), ``version``, ``version_tuple``,
    ``hostname``, ``server_uuid`` (null on MariaDB), ``server_id``, ``datadir``, ``tmpdir``,
    ``read_only``, ``super_read_only`` (null where absent), ``binlog`` {enabled, basename,
    file, position, gtid}, ``role`` (primary|replica; null without the privilege to look),
    ``replication`` {source_host, source_port, io_running, sql_running, seconds_behind,
    last_error} or null, ``tables`` keyed ``schema.table`` {rows, data_bytes, index_bytes,
    free_bytes, engine}, ``schemas`` keyed name {tables, rows, data_bytes, index_bytes,
    free_bytes}, ``innodb`` {lsn, checkpoint_lsn, checkpoint_age}, ``uptime_s``,
    ``connections``. ``rows`` is InnoDB's estimate (``TABLE_ROWS``): run ``ANALYZE TABLE``
    for a fresh one, or ``verify`` for exact counts.

    The identity (hostname, server_uuid, server_id) is remembered for the run: every later
    destructive step on this host refuses a different server.
    """

    name = "mysql_facts"
    mutating = False
    idempotent = True
    params_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "schemas": {
                "type": "array",
                "items": {"type": "string", "minLength": 1},
                "description": "limit the table inventory to these schemas (default: all non-system schemas)",
            },
        },
    }

    def apply(self) -> StepResult:
        args = self.args or {}
        facts = gather_facts(self.ctx.sql(), args.get("schemas"))
        ident = {k: facts[k] for k in ("hostname", "server_uuid", "server_id")}
        warnings: list[str] = []
        why = identity_mismatch(self.ctx, ident)
        if why:
            # Read-only, so not refused here; but never re-pin the run to the wrong server.
            warnings.append(f"{why}; destructive steps will refuse this server")
        else:
            record_identity(self.ctx, ident, source="mysql_facts")
        role = facts["role"] or "unknown role"
        fenced = "read-only" if facts["read_only"] else "writable"
        msg = f"{facts['flavor']} {facts['version']} on {facts['hostname']}: {role}, {fenced}, {len(facts['tables'])} tables"
        return StepResult(Status.OK, msg=msg, data=facts, warnings=warnings)
