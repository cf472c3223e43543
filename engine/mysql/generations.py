"""Table generations: how many times a table's content was replaced wholesale behind the back of
the steps that loaded it.

A snapshot's undo swaps its copies back in place of the live tables (one ``RENAME TABLE``): the
rows a restore (or a binlog replay) committed are then in the displaced table, no longer live,
yet their progress rows still say "committed". Progress that can be overtaken this way is keyed
by the generation of its tables: the swap bumps it first, so the next attempt of the step finds
no progress under the new generation and loads again, instead of "already in the desired state"
on the tables the undo brought back.

``_runbook.table_generations`` holds one row per table ever swapped (schema, table, generation,
when, by which run and step). A table never swapped is generation 0, so keys made before this
table existed, or on a server where no undo ever ran, do not change.

```python
bump(sql, "shop", ["orders", "order_items"], run_id=run, step_key="restore/Snapshot")  # the swap, first
signature(sql, "shop", ["orders"])   # 1: a restore of orders keys its progress by it
```
"""

from __future__ import annotations

from collections.abc import Iterable

from engine.mysql.introspect import table_exists
from engine.mysql.sqlutil import qualified, quote_ident
from engine.transport.base import Sql

SCHEMA = "_runbook"
TABLE = "table_generations"

DDL = """CREATE TABLE IF NOT EXISTS {table} (
  schema_name VARCHAR(64) NOT NULL,
  table_name VARCHAR(64) NOT NULL,
  generation BIGINT UNSIGNED NOT NULL DEFAULT 0,
  changed_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  run_id VARCHAR(128) NULL COMMENT 'the run whose undo replaced the table last',
  step_key VARCHAR(255) NULL,
  PRIMARY KEY (schema_name, table_name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"""


def bump(sql: Sql, schema: str, tables: Iterable[str], *, run_id: str, step_key: str) -> None:
    """The content of these tables is about to be replaced wholesale: every progress keyed by
    their generation is stale from now on. Called *before* the replacement: a crash between the
    two only costs a load that was not needed, never a load skipped that was."""
    names = sorted(set(tables))
    if not names:
        return
    sql.query(f"CREATE DATABASE IF NOT EXISTS {quote_ident(SCHEMA)}")
    sql.query(DDL.format(table=qualified(SCHEMA, TABLE)))
    for name in names:
        sql.query(f"INSERT INTO {qualified(SCHEMA, TABLE)} (schema_name, table_name, generation, run_id, step_key)"
                  " VALUES (%s, %s, 1, %s, %s) ON DUPLICATE KEY UPDATE generation = generation + 1,"
                  " changed_at = CURRENT_TIMESTAMP(6), run_id = VALUES(run_id), step_key = VALUES(step_key)",
                  [schema, name, run_id, step_key])


def signature(sql: Sql, schema: str, tables: Iterable[str] | None = None, exclude: Iterable[str] = ()) -> int:
    """The sum of the generations of ``tables`` of ``schema`` (every table of it when None,
    but ``exclude``): 0 until one of them is swapped, and it only grows. Read-only."""
    if not table_exists(sql, SCHEMA, TABLE):
        return 0
    where, params = "schema_name = %s", [schema]
    if tables is not None:
        names = sorted(set(tables))
        if not names:
            return 0
        where += " AND table_name IN (" + ", ".join(["%s"] * len(names)) + ")"
        params += names
    skip = sorted(set(exclude))
    if skip:
        where += " AND table_name NOT IN (" + ", ".join(["%s"] * len(skip)) + ")"
        params += skip
    row = sql.query(f"SELECT COALESCE(SUM(generation), 0) AS g FROM {qualified(SCHEMA, TABLE)} WHERE {where}", params).rows[0]
    return int(row["g"] or 0)
