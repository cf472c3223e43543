"""Helpers of the issue-15 restore tests: a ``runbook play`` of restore steps against the shared
MariaDB, and dumps written by hand (MySQL's mysqldump layout, exports of GUI tools)."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cliutil import cli, cli_env
from tests.conftest import MYSQL_HOST, MYSQL_PORT, MYSQL_USER
from tests.integration.restore_helpers import execute, query

LOCAL = (f"all:\n  vars: {{mysql_user: {MYSQL_USER}, mysql_host: {MYSQL_HOST}, mysql_port: {MYSQL_PORT}}}\n"
         "  hosts:\n    h: {connection: local}\n")

MYSQL_HEAD = """-- MySQL dump 10.13  Distrib 8.0.36, for Linux (x86_64)
--
-- Host: localhost    Database: {db}
-- ------------------------------------------------------
-- Server version\t8.0.36

/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;
/*!40101 SET @OLD_CHARACTER_SET_RESULTS=@@CHARACTER_SET_RESULTS */;
/*!40101 SET @OLD_COLLATION_CONNECTION=@@COLLATION_CONNECTION */;
/*!50503 SET NAMES utf8mb4 */;
/*!40103 SET @OLD_TIME_ZONE=@@TIME_ZONE */;
/*!40103 SET TIME_ZONE='+00:00' */;
/*!40014 SET @OLD_UNIQUE_CHECKS=@@UNIQUE_CHECKS, UNIQUE_CHECKS=0 */;
/*!40014 SET @OLD_FOREIGN_KEY_CHECKS=@@FOREIGN_KEY_CHECKS, FOREIGN_KEY_CHECKS=0 */;
/*!40101 SET @OLD_SQL_MODE=@@SQL_MODE, SQL_MODE='NO_AUTO_VALUE_ON_ZERO' */;
/*!40111 SET @OLD_SQL_NOTES=@@SQL_NOTES, SQL_NOTES=0 */;

"""

MYSQL_TAIL = """
/*!40103 SET TIME_ZONE=@OLD_TIME_ZONE */;
/*!40101 SET SQL_MODE=@OLD_SQL_MODE */;
/*!40014 SET FOREIGN_KEY_CHECKS=@OLD_FOREIGN_KEY_CHECKS */;
/*!40014 SET UNIQUE_CHECKS=@OLD_UNIQUE_CHECKS */;
/*!40101 SET CHARACTER_SET_CLIENT=@OLD_CHARACTER_SET_CLIENT */;
/*!40101 SET CHARACTER_SET_RESULTS=@OLD_CHARACTER_SET_RESULTS */;
/*!40101 SET COLLATION_CONNECTION=@OLD_COLLATION_CONNECTION */;
/*!40111 SET SQL_NOTES=@OLD_SQL_NOTES */;

-- Dump completed on 2024-03-01 10:00:00
"""


def hand_dump(path: Path, db: str, body: str) -> str:
    """A dump in mysqldump's layout (header SETs, ``body``, footer, completion trailer)."""
    path.write_text(MYSQL_HEAD.format(db=db) + body.strip() + "\n" + MYSQL_TAIL)
    return str(path)


def table_section(name: str, create: str, inserts: str = "") -> str:
    """One table as mysqldump writes it: DROP, CREATE, LOCK, DISABLE KEYS, rows, UNLOCK."""
    out = (f"DROP TABLE IF EXISTS `{name}`;\n/*!40101 SET @saved_cs_client     = @@character_set_client */;\n"
           f"/*!50503 SET character_set_client = utf8mb4 */;\n{create.strip()};\n"
           "/*!40101 SET character_set_client = @saved_cs_client */;\n\n")
    if inserts:
        out += (f"LOCK TABLES `{name}` WRITE;\n/*!40000 ALTER TABLE `{name}` DISABLE KEYS */;\n{inserts.strip()}\n"
                f"/*!40000 ALTER TABLE `{name}` ENABLE KEYS */;\nUNLOCK TABLES;\n\n")
    return out


def restore_step(**args: object) -> str:
    """A restore step (YAML flow mapping) registering ``r``."""
    import json

    return "      - name: Load\n        restore: " + json.dumps(args) + "\n        register: r\n"


def snapshot_step(schema: str, tables: list[str]) -> str:
    import json

    return "      - name: Snapshot\n        snapshot: " + json.dumps({"schema": schema, "tables": tables}) + "\n"


def play(tmp_path: Path, steps: str, *extra: str, env: dict[str, str] | None = None, inventory: str = LOCAL,
         timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``runbook play --yes`` of one stage holding ``steps`` against the shared server."""
    (tmp_path / "rb.yml").write_text("name: restore truth\ntargets: h\nstages:\n  - name: s\n    steps:\n" + steps)
    (tmp_path / "inv.yml").write_text(inventory)
    args = ["play", "rb.yml", "-i", "inv.yml", *(extra if "--check" in extra else ("--yes", *extra))]
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], cwd=tmp_path,
                          env={**cli_env(tmp_path / "home"), **(env or {})}, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def resume(tmp_path: Path, run_id: str) -> subprocess.CompletedProcess[str]:
    return cli("resume", run_id, "--yes", cwd=tmp_path, home=tmp_path / "home", timeout=120)


@pytest.fixture
def src() -> Iterator[str]:
    """A second fresh schema (a source to dump from, or another schema beside the target)."""
    name = f"rbt_s_{uuid.uuid4().hex[:10]}"
    execute(None, f"CREATE DATABASE `{name}`")
    yield name
    execute(None, f"SET foreign_key_checks = 0; DROP DATABASE IF EXISTS `{name}`")


def count(schema: str, table: str) -> int:
    return int(query(f"SELECT COUNT(*) FROM `{schema}`.`{table}`")[0][0])


def drop_snapshots_of(schema: str) -> None:
    for r in query("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE '\\_rb\\_snap\\_%%'"):
        if query("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME LIKE %s",
                 [r[0], f"{schema}%"])[0][0]:
            execute(None, f"DROP DATABASE `{r[0]}`")
