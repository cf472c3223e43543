"""What makes a replay (and a flashback) exactly-once: ``_runbook.binlog_progress`` on the target.

Each group of replayed transactions commits in one transaction that *first* inserts its row:
``(step_id, start_file, start_pos)`` — where the group began in the source — is the primary key.
A group that committed before (a resume, a retry after a lost connection whose COMMIT did land)
is refused by the server itself with ER_DUP_ENTRY and rolled back. The next group begins where
the last committed one ended, so after kill -9 a resume continues exactly there.

``_runbook.binlog_runs`` holds one row per step: the window it replays (a resume refuses another
one) and the registered result once it finished.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from engine.mysql.introspect import step_run_row, table_exists
from engine.errors import ActionError, SqlError
from engine.mysql.sqlutil import qualified, quote_ident
from engine.transport.base import Sql

SCHEMA = "_runbook"
PROGRESS = "binlog_progress"
RUNS = "binlog_runs"

PROGRESS_DDL = """CREATE TABLE IF NOT EXISTS {table} (
  step_id CHAR(40) NOT NULL COMMENT 'sha1 of run id, step key, host and schema',
  start_file VARCHAR(255) NOT NULL COMMENT 'where this group of source transactions begins',
  start_pos BIGINT UNSIGNED NOT NULL,
  end_file VARCHAR(255) NOT NULL COMMENT 'where it ends: the next group begins here',
  end_pos BIGINT UNSIGNED NOT NULL,
  first_gtid VARCHAR(255) NULL COMMENT 'the source GTIDs of its first and last transactions',
  last_gtid VARCHAR(255) NULL,
  run_id VARCHAR(128) NOT NULL,
  step_key VARCHAR(255) NOT NULL,
  host VARCHAR(255) NOT NULL,
  transactions INT NOT NULL,
  `rows` BIGINT NOT NULL,
  conflicts INT NOT NULL DEFAULT 0,
  done_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (step_id, start_file, start_pos)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"""

RUNS_DDL = """CREATE TABLE IF NOT EXISTS {table} (
  step_id CHAR(40) NOT NULL PRIMARY KEY,
  run_id VARCHAR(128) NOT NULL,
  step_key VARCHAR(255) NOT NULL,
  host VARCHAR(255) NOT NULL,
  action VARCHAR(64) NOT NULL,
  window_json LONGTEXT NOT NULL COMMENT 'JSON: source, start, end, skip, tables (a resume must replay the same)',
  started_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  finished_at DATETIME(6) NULL,
  result LONGTEXT NULL COMMENT 'JSON: the registered result of the finished step'
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"""

CLAIM = (f"INSERT INTO {qualified(SCHEMA, PROGRESS)} (step_id, start_file, start_pos, end_file, end_pos, first_gtid, last_gtid,"
         " run_id, step_key, host, transactions, `rows`) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)")
CONFLICTS = (f"UPDATE {qualified(SCHEMA, PROGRESS)} SET conflicts = %s, `rows` = %s WHERE step_id = %s AND start_file = %s"
             " AND start_pos = %s")


def step_id(run_id: str, step_key: str, host: str, what: str) -> str:
    return hashlib.sha1("\0".join((run_id, step_key, host, what)).encode()).hexdigest()


def ensure(sql: Sql) -> None:
    sql.query(f"CREATE DATABASE IF NOT EXISTS {quote_ident(SCHEMA)}")
    sql.query(PROGRESS_DDL.format(table=qualified(SCHEMA, PROGRESS)))
    sql.query(RUNS_DDL.format(table=qualified(SCHEMA, RUNS)))


def run_row(sql: Sql, sid: str) -> dict[str, Any] | None:
    """The step's run row (None also when the tables do not exist: a read-only probe)."""
    out = step_run_row(sql, SCHEMA, RUNS, sid)
    if out is not None:
        out["window"] = json.loads(out.pop("window_json") or "{}")
    return out


def begin(sql: Sql, sid: str, *, run_id: str, step_key: str, host: str, action: str, window: dict[str, Any]) -> None:
    """Record the step's window (first attempt), or refuse a resume that would replay another."""
    prior = run_row(sql, sid)
    if prior is not None:
        if prior["window"] != json.loads(json.dumps(window, sort_keys=True, default=str)):
            raise ActionError(f"this step began replaying another window ({_brief(prior['window'])}); now: {_brief(window)}; "
                              "nothing was written", hint="resume with the same arguments, or start a new run")
        sql.query(f"UPDATE {qualified(SCHEMA, RUNS)} SET finished_at = NULL WHERE step_id = %s", [sid])
        return
    sql.query(f"INSERT INTO {qualified(SCHEMA, RUNS)} (step_id, run_id, step_key, host, action, window_json)"
              " VALUES (%s, %s, %s, %s, %s, %s)", [sid, run_id, step_key, host, action, json.dumps(window, sort_keys=True, default=str)])


def _brief(w: dict[str, Any]) -> str:
    return ", ".join(f"{k} {w.get(k)}" for k in ("start", "end", "skip") if w.get(k) is not None)


@dataclass
class Committed:
    """What earlier attempts of a step committed."""

    groups: int = 0
    transactions: int = 0
    rows: int = 0
    conflicts: int = 0
    last: tuple[str, int] | None = None  # where the last committed group ended


def committed(sql: Sql, sid: str) -> Committed:
    if not table_exists(sql, SCHEMA, RUNS):
        return Committed()
    t = qualified(SCHEMA, PROGRESS)
    agg = sql.query(f"SELECT COUNT(*) AS g, COALESCE(SUM(transactions), 0) AS t, COALESCE(SUM(`rows`), 0) AS r,"
                    f" COALESCE(SUM(conflicts), 0) AS c FROM {t} WHERE step_id = %s", [sid]).rows[0]
    if not int(agg["g"]):
        return Committed()
    last = sql.query(f"SELECT end_file, end_pos FROM {t} WHERE step_id = %s"
                     " ORDER BY LENGTH(end_file) DESC, end_file DESC, end_pos DESC LIMIT 1", [sid]).rows[0]
    f = last["end_file"]
    return Committed(int(agg["g"]), int(agg["t"]), int(agg["r"]), int(agg["c"]),
                     (f.decode() if isinstance(f, bytes) else str(f), int(last["end_pos"])))


def finish(sql: Sql, sid: str, result: dict[str, Any]) -> None:
    sql.query(f"UPDATE {qualified(SCHEMA, RUNS)} SET finished_at = CURRENT_TIMESTAMP(6), result = %s WHERE step_id = %s",
              [json.dumps(result, sort_keys=True, default=str), sid])


def is_duplicate(exc: SqlError) -> bool:
    return exc.errno == 1062
