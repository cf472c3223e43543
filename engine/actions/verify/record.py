"""``record_to``: the verdicts written into a table, with the run id (the seed's
``consistency_check_results``). The only write ``verify`` makes, never to the data it checks;
skipped in check mode.

The table is created when missing. A table the DBA made before (the seed's layout: check_name,
check_result ENUM('PASS','FAIL','WARNING'), error_count, check_time, description) is written
in the columns it has. Rows of the same run, step and host are replaced, so a resumed run
does not record its verdicts twice.
"""

from __future__ import annotations

import json
from typing import Any

from engine.actions.verify.model import Check
from engine.errors import ActionError
from engine.mysql.sqlutil import qualified, quote_ident
from engine.transport.base import Sql

DDL = """CREATE TABLE IF NOT EXISTS {table} (
  check_id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  run_id VARCHAR(128) NULL,
  host VARCHAR(255) NULL,
  step VARCHAR(255) NULL,
  check_name VARCHAR(255) NOT NULL,
  kind VARCHAR(16) NULL,
  table_name VARCHAR(64) NULL,
  check_result ENUM('PASS','FAIL','WARNING') NOT NULL,
  error_count BIGINT NULL,
  expected VARCHAR(255) NULL,
  check_time TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
  description TEXT NULL,
  KEY by_run (run_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"""

RESULT_WORD = {"pass": "PASS", "fail": "FAIL", "warn": "WARNING"}


def record(sql: Sql, schema: str, table: str, checks: list[Check], *, run_id: str, host: str, step: str) -> dict[str, Any]:
    """Write one row per check; returns ``{table, rows}``."""
    target = qualified(schema, table)
    sql.query(f"CREATE DATABASE IF NOT EXISTS {quote_ident(schema)}")
    sql.query(DDL.format(table=target))
    have = {str(r["c"]).lower() for r in sql.query(
        "SELECT COLUMN_NAME AS c FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
        [schema, table]).rows}
    if not {"check_name", "check_result"} <= have:
        raise ActionError(f"record_to: {schema}.{table} exists without check_name/check_result columns",
                          hint="name another table, or add those columns")
    rows = []
    for c in checks:
        values = {"run_id": run_id, "host": host, "step": step, "check_name": c.name[:255], "kind": c.kind,
                  "table_name": c.table, "check_result": RESULT_WORD[c.result], "error_count": c.count,
                  "expected": None if c.expected is None else json.dumps(c.expected, default=str)[:255],
                  "description": c.detail + (f" — sample: {json.dumps(c.sample, default=str)}" if c.sample else "")}
        rows.append({k: v for k, v in values.items() if k in have})
    cols = list(rows[0]) if rows else []
    sql.query("START TRANSACTION")
    try:
        if {"run_id", "host", "step"} <= have:
            sql.query(f"DELETE FROM {target} WHERE run_id = %s AND host = %s AND step = %s", [run_id, host, step])
        if rows:
            marks = "(" + ", ".join(["%s"] * len(cols)) + ")"
            sql.query(f"INSERT INTO {target} ({', '.join(quote_ident(c) for c in cols)}) VALUES "
                      + ", ".join([marks] * len(rows)), [r[c] for r in rows for c in cols])
        sql.query("COMMIT")
    except BaseException:
        try:
            sql.query("ROLLBACK")
        except Exception:  # the connection may be gone; the server rolls back on its own
            pass
        raise
    return {"table": f"{schema}.{table}", "rows": len(rows)}
