"""``verify`` ``row_counts: {from_dump: PATH}``: the backup's rows vs the live tables, nothing written."""

from __future__ import annotations

import gzip
import subprocess
from pathlib import Path
from typing import Any

import pymysql
import pytest

from engine.actions.verify import params
from engine.errors import ActionError
from tests.conftest import MYSQL_HOST, MYSQL_PASSWORD, MYSQL_PORT, MYSQL_USER
from tests.integration.test_verify import by_name, verify

pytestmark = pytest.mark.integration


def _dump(schema: str, path: Path) -> None:
    cmd = ["mariadb-dump", f"-h{MYSQL_HOST}", f"-P{MYSQL_PORT}", f"-u{MYSQL_USER}", "--single-transaction", schema]
    if MYSQL_PASSWORD:
        cmd.insert(1, f"-p{MYSQL_PASSWORD}")
    out = subprocess.run(cmd, check=True, capture_output=True).stdout
    path.write_bytes(gzip.compress(out))


def _setup(db: pymysql.connections.Connection, schema: str) -> None:
    with db.cursor() as cur:
        cur.execute(f"CREATE TABLE `{schema}`.users (id INT PRIMARY KEY, email VARCHAR(50) NOT NULL)")
        cur.execute(f"CREATE TABLE `{schema}`.orders (id INT PRIMARY KEY, user_id INT, FOREIGN KEY (user_id) REFERENCES `{schema}`.users(id))")
        cur.execute(f"CREATE TABLE `{schema}`.logs (id INT PRIMARY KEY)")
        cur.execute(f"INSERT INTO `{schema}`.users VALUES " + ",".join(f"({i}, 'u{i}@x')" for i in range(1, 51)))
        cur.execute(f"INSERT INTO `{schema}`.orders VALUES " + ",".join(f"({i}, {1 + i % 50})" for i in range(1, 121)))
        cur.execute(f"INSERT INTO `{schema}`.logs VALUES (1), (2)")


def test_damage_report_counts_rows_against_the_backup(db: Any, schema: str, tmp_path: Path) -> None:
    _setup(db, schema)
    backup = tmp_path / "shop.sql.gz"
    _dump(schema, backup)
    with db.cursor() as cur:  # the incident: a truncated table, deleted rows
        cur.execute("SET FOREIGN_KEY_CHECKS=0")
        cur.execute(f"DELETE FROM `{schema}`.users WHERE id > 40")
        cur.execute(f"TRUNCATE `{schema}`.orders")
    r = verify({"schema": schema, "tables": ["users", "orders"], "row_counts": {"from_dump": str(backup)}})
    checks = by_name(r)
    assert checks["rows users"]["count"] == 40 and checks["rows users"]["expected"] == 50
    assert checks["rows users"]["result"] == "fail" and "(dump)" in checks["rows users"]["detail"]
    assert checks["rows orders"]["count"] == 0 and checks["rows orders"]["expected"] == 120
    assert "rows logs" not in checks  # not listed: the damage report is about the listed tables
    assert r.failed


def test_a_table_the_schema_lost_is_reported_missing(db: Any, schema: str, tmp_path: Path) -> None:
    _setup(db, schema)
    backup = tmp_path / "shop.sql"
    _dump(schema, backup)
    backup.write_bytes(gzip.decompress(backup.read_bytes()))  # a plain dump works the same
    with db.cursor() as cur:
        cur.execute(f"DROP TABLE `{schema}`.logs")
    r = verify({"schema": schema, "row_counts": {"from_dump": str(backup)}})
    checks = by_name(r)
    assert checks["rows users"]["result"] == "pass" and checks["rows orders"]["result"] == "pass"
    assert checks["row count logs"]["result"] == "fail" and "does not exist" in checks["row count logs"]["detail"]
    # and nothing was written: the counts are unchanged and no restore bookkeeping appeared
    with db.cursor() as cur:
        cur.execute(f"SELECT COUNT(*) FROM `{schema}`.users")
        assert cur.fetchone()[0] == 50


def test_a_truncated_backup_is_refused_in_assess(db: Any, schema: str, tmp_path: Path) -> None:
    _setup(db, schema)
    backup = tmp_path / "shop.sql.gz"
    _dump(schema, backup)
    backup.write_bytes(backup.read_bytes()[:-40])
    with pytest.raises(ActionError, match="from_dump: refusing .*truncated or corrupt gzip"):
        verify({"schema": schema, "row_counts": {"from_dump": str(backup)}})


def test_from_dump_is_one_source() -> None:
    assert params.static_problems({"schema": "s", "row_counts": {"from_dump": "/b.sql", "users": 3}})
    assert params.static_problems({"schema": "s", "row_counts": {"file_on": "host", "users": 3}})
    assert not params.static_problems({"schema": "s", "row_counts": {"from_dump": "/b.sql", "file_on": "control"}})
