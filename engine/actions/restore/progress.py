"""The restore's progress table on the target: what makes every batch exactly-once.

``_runbook.restore_progress`` holds one row per committed batch, written **first** in the
batch's own transaction as a plain INSERT: if the batch already committed (a resume, a re-run of
the step, a retry after a lost connection whose COMMIT did reach the server), the server itself
refuses the row with ER_DUP_ENTRY (1062) and the batch is rolled back and skipped. The guarantee
lives in the target's primary key, not in the client's memory.

``_runbook.restore_runs`` holds one row per restore step: the dump's size and sha256 (resume
refuses a different file), the batching that cut the dump (so resume cuts it the same way), and
the registered result once the step finished.

A table's *preparation* (DDL, truncate) is a row with ``batch = -1``: written after the DDL, so a
crash in between re-runs the DDL — which is safe because no batch of that table committed yet.
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
PROGRESS = "restore_progress"
RUNS = "restore_runs"
PREPARED = -1  # batch ordinal of a table's preparation row
ALTERED = -3  # batch ordinal of a replayed ALTER TABLE … ADD KEY of the dump (part: its place in the dump)
TABLES = "restore_tables"

PROGRESS_DDL = """CREATE TABLE IF NOT EXISTS {table} (
  step_id CHAR(40) NOT NULL COMMENT 'sha1 of run id, step key, host and target schema',
  tbl VARCHAR(64) NOT NULL,
  batch INT NOT NULL COMMENT 'ordinal of the first data statement of the table in the dump; -1: table prepared',
  part INT NOT NULL DEFAULT 0 COMMENT 'row-split part of a statement larger than a batch',
  last_ordinal INT NOT NULL,
  run_id VARCHAR(128) NOT NULL,
  step_key VARCHAR(255) NOT NULL,
  host VARCHAR(255) NOT NULL,
  `rows` BIGINT NOT NULL DEFAULT 0,
  ignored BIGINT NOT NULL DEFAULT 0,
  bytes BIGINT NOT NULL DEFAULT 0,
  done_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (step_id, tbl, batch, part)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"""

RUNS_DDL = """CREATE TABLE IF NOT EXISTS {table} (
  step_id CHAR(40) NOT NULL PRIMARY KEY,
  run_id VARCHAR(128) NOT NULL,
  step_key VARCHAR(255) NOT NULL,
  host VARCHAR(255) NOT NULL,
  target_schema VARCHAR(64) NOT NULL,
  dump_path VARCHAR(1024) NOT NULL,
  dump_size BIGINT UNSIGNED NOT NULL,
  dump_sha256 CHAR(64) NOT NULL,
  options LONGTEXT NOT NULL COMMENT 'JSON: batching and policies the dump was cut with',
  batches_total INT NULL,
  started_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  finished_at DATETIME(6) NULL,
  result LONGTEXT NULL COMMENT 'JSON: the registered result of the finished step'
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"""


TRIGGERS = "restore_triggers"
TRIGGERS_DDL = """CREATE TABLE IF NOT EXISTS {table} (
  step_id CHAR(40) NOT NULL,
  tbl VARCHAR(64) NOT NULL,
  name VARCHAR(64) NOT NULL,
  statement LONGTEXT NOT NULL COMMENT 'SHOW CREATE TRIGGER: re-created after the load',
  sql_mode VARCHAR(1024) NOT NULL,
  restored TINYINT NOT NULL DEFAULT 0,
  PRIMARY KEY (step_id, tbl, name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"""


TABLES_DDL = """CREATE TABLE IF NOT EXISTS {table} (
  step_id CHAR(40) NOT NULL,
  tbl VARCHAR(64) NOT NULL,
  created TINYINT NOT NULL DEFAULT 0 COMMENT '1: this step created or re-created the table (its rows are all the dump''s)',
  auto_increment_before BIGINT UNSIGNED NULL COMMENT 'the live AUTO_INCREMENT before truncate/recreate: kept at least there',
  PRIMARY KEY (step_id, tbl)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"""


def step_id(run_id: str, step_key: str, host: str, schema: str, generation: int = 0) -> str:
    """The key of a restore step's progress. ``generation``: of the tables it loads (see
    :mod:`engine.mysql.generations`): after a snapshot undo swapped them back, the step's
    earlier progress no longer describes the live tables, and the new key finds none of it."""
    parts = (run_id, step_key, host, schema) + ((f"generation {generation}",) if generation else ())
    return hashlib.sha1("\0".join(parts).encode()).hexdigest()


def progress_table() -> str:
    return qualified(SCHEMA, PROGRESS)


def runs_table() -> str:
    return qualified(SCHEMA, RUNS)


@dataclass(frozen=True)
class Done:
    """A committed batch (or a table's preparation)."""

    rows: int
    ignored: int
    bytes: int


def ensure(sql: Sql) -> None:
    sql.query(f"CREATE DATABASE IF NOT EXISTS {quote_ident(SCHEMA)}")
    sql.query(PROGRESS_DDL.format(table=progress_table()))
    sql.query(RUNS_DDL.format(table=runs_table()))
    sql.query(TRIGGERS_DDL.format(table=qualified(SCHEMA, TRIGGERS)))
    sql.query(TABLES_DDL.format(table=qualified(SCHEMA, TABLES)))


def save_counter(sql: Sql, sid: str, table: str, value: int) -> None:
    """The live AUTO_INCREMENT before the table is emptied or re-created (the first value wins:
    a resume after the truncate must not record the truncated table's)."""
    sql.query(f"INSERT INTO {qualified(SCHEMA, TABLES)} (step_id, tbl, auto_increment_before) VALUES (%s, %s, %s)"
              " ON DUPLICATE KEY UPDATE auto_increment_before = COALESCE(auto_increment_before, VALUES(auto_increment_before))",
              [sid, table, value])


def saved_counters(sql: Sql, sid: str) -> dict[str, int]:
    if not table_exists(sql, SCHEMA, TABLES):
        return {}
    rows = sql.query(f"SELECT tbl, auto_increment_before AS v FROM {qualified(SCHEMA, TABLES)} WHERE step_id = %s"
                     " AND auto_increment_before IS NOT NULL", [sid]).rows
    return {_s(r["tbl"]): int(r["v"]) for r in rows}


def mark_created(sql: Sql, sid: str, table: str) -> None:
    sql.query(f"INSERT INTO {qualified(SCHEMA, TABLES)} (step_id, tbl, created) VALUES (%s, %s, 1)"
              " ON DUPLICATE KEY UPDATE created = 1", [sid, table])


def created_tables(sql: Sql, sid: str) -> set[str]:
    if not table_exists(sql, SCHEMA, TABLES):
        return set()
    return {_s(r["tbl"]) for r in sql.query(f"SELECT tbl FROM {qualified(SCHEMA, TABLES)} WHERE step_id = %s AND created = 1",
                                            [sid]).rows}


def mark_altered(sql: Sql, sid: str, table: str, ordinal: int, *, run_id: str, step_key: str, host: str) -> None:
    sql.query(f"INSERT IGNORE INTO {progress_table()} (step_id, tbl, batch, part, last_ordinal, run_id, step_key, host)"
              " VALUES (%s, %s, %s, %s, -1, %s, %s, %s)", [sid, table, ALTERED, ordinal, run_id, step_key, host])


def forget_alters(sql: Sql, sid: str, table: str) -> None:
    """The table's DDL runs again: the ALTERs replayed on its earlier version run again too."""
    sql.query(f"DELETE FROM {progress_table()} WHERE step_id = %s AND tbl = %s AND batch = %s", [sid, table, ALTERED])


def save_triggers(sql: Sql, sid: str, table: str, found: list[dict[str, Any]]) -> None:
    """Keep the target's own triggers of ``table`` before they are dropped for the load (a
    load never fires a trigger); a resume finds them here, already dropped."""
    for t in found:
        sql.query(f"INSERT INTO {qualified(SCHEMA, TRIGGERS)} (step_id, tbl, name, statement, sql_mode)"
                  " VALUES (%s, %s, %s, %s, %s) ON DUPLICATE KEY UPDATE statement = VALUES(statement),"
                  " sql_mode = VALUES(sql_mode), restored = 0", [sid, table, t["name"], t["statement"], t["sql_mode"]])


def saved_triggers(sql: Sql, sid: str) -> list[dict[str, Any]]:
    if not sql.query("SELECT 1 AS x FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
                     [SCHEMA, TRIGGERS]).rows:
        return []
    rows = sql.query(f"SELECT tbl, name, statement, sql_mode, restored FROM {qualified(SCHEMA, TRIGGERS)} WHERE step_id = %s"
                     " ORDER BY tbl, name", [sid]).rows
    return [{k: _s(v) if isinstance(v, (bytes, bytearray)) else v for k, v in r.items()} for r in rows]


def trigger_restored(sql: Sql, sid: str, table: str, name: str) -> None:
    sql.query(f"UPDATE {qualified(SCHEMA, TRIGGERS)} SET restored = 1 WHERE step_id = %s AND tbl = %s AND name = %s",
              [sid, table, name])


def run_row(sql: Sql, sid: str) -> dict[str, Any] | None:
    """The run row of a step, or None (also when the tables do not exist: a read-only probe)."""
    out = step_run_row(sql, SCHEMA, RUNS, sid)
    if out is not None:
        out["options"] = json.loads(out["options"] or "{}")
    return out


def begin(sql: Sql, sid: str, *, run_id: str, step_key: str, host: str, schema: str, path: str, size: int,
          sha256: str, options: dict[str, Any]) -> dict[str, Any]:
    """Record the run (first attempt) or check that a resume uses the same dump; returns the
    options the dump was first cut with (resume must cut it the same way)."""
    prior = run_row(sql, sid)
    if prior is not None:
        if prior["dump_sha256"] != sha256 or int(prior["dump_size"]) != size:
            raise ActionError(
                f"this restore step began with another dump ({prior['dump_path']}, {prior['dump_size']} bytes, sha256 "
                f"{prior['dump_sha256'][:12]}…); {path} is {size} bytes, sha256 {sha256[:12]}…",
                hint="resume with the same file, or start a new run to restore a different dump")
        return dict(prior["options"])
    sql.query(f"INSERT INTO {runs_table()} (step_id, run_id, step_key, host, target_schema, dump_path, dump_size,"
              " dump_sha256, options) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
              [sid, run_id, step_key, host, schema, path, size, sha256, json.dumps(options, sort_keys=True)])
    return options


def done(sql: Sql, sid: str) -> dict[tuple[str, int, int], Done]:
    """Every committed batch of the step: ``(table, batch, part) → Done``."""
    if not table_exists(sql, SCHEMA, RUNS):
        return {}
    rows = sql.query(f"SELECT tbl, batch, part, `rows`, ignored, bytes FROM {progress_table()} WHERE step_id = %s", [sid]).rows
    return {(_s(r["tbl"]), int(r["batch"]), int(r["part"])): Done(int(r["rows"]), int(r["ignored"]), int(r["bytes"]))
            for r in rows}


def mark_prepared(sql: Sql, sid: str, table: str, *, run_id: str, step_key: str, host: str, empty: bool) -> None:
    """The table's DDL/truncate is done; ``rows`` = 1 when it was empty once prepared."""
    sql.query(f"INSERT INTO {progress_table()} (step_id, tbl, batch, part, last_ordinal, run_id, step_key, host, `rows`)"
              " VALUES (%s, %s, %s, 0, -1, %s, %s, %s, %s) ON DUPLICATE KEY UPDATE `rows` = VALUES(`rows`)",
              [sid, table, PREPARED, run_id, step_key, host, int(empty)])


def forget_table(sql: Sql, sid: str, table: str) -> None:
    """Drop a table's batch rows (a non-transactional table emptied to be reloaded whole)."""
    sql.query(f"DELETE FROM {progress_table()} WHERE step_id = %s AND tbl = %s AND batch >= 0", [sid, table])


def finish(sql: Sql, sid: str, batches: int, result: dict[str, Any]) -> None:
    sql.query(f"UPDATE {runs_table()} SET finished_at = CURRENT_TIMESTAMP(6), batches_total = %s, result = %s"
              " WHERE step_id = %s", [batches, json.dumps(result, sort_keys=True, default=str), sid])


def unfinish(sql: Sql, sid: str) -> None:
    """A re-run found work to do: the stored result is stale until it finishes again."""
    try:
        sql.query(f"UPDATE {runs_table()} SET finished_at = NULL WHERE step_id = %s", [sid])
    except SqlError:
        pass


BATCH_INSERT = (f"INSERT INTO {qualified(SCHEMA, PROGRESS)} (step_id, tbl, batch, part, last_ordinal, run_id, step_key,"
                " host, bytes) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)")
BATCH_UPDATE = (f"UPDATE {qualified(SCHEMA, PROGRESS)} SET `rows` = %s, ignored = %s WHERE step_id = %s AND tbl = %s"
                " AND batch = %s AND part = %s")
BATCH_LOOKUP = (f"SELECT `rows`, ignored, bytes FROM {qualified(SCHEMA, PROGRESS)} WHERE step_id = %s AND tbl = %s"
                " AND batch = %s AND part = %s")


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, (bytes, bytearray)) else str(v)
