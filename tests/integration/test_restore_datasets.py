"""The sakila and employees sample databases come back exactly (dumped by mariadb-dump from a
copy loaded with the mysql client); a dump on an SSH host is read over SFTP (file_on: host)."""

from __future__ import annotations

import gzip
import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.datasets import DATASETS
from engine.actions.restore import Restore
from engine.model import Status
from tests.conftest import MYSQL_HOST, MYSQL_PORT, MYSQL_USER
from tests.integration.restore_helpers import checksums, dump, execute, query
from tests.integration.test_dr_actions import make_ctx, run_step

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _load(schema: str, files: list[str], db_name: str) -> None:
    """Feed the sample's SQL to the mysql client, with its database name replaced by ``schema``."""
    text = b"".join(gzip.decompress((DATASETS / f).read_bytes()) for f in files)
    text = re.sub(rb"\b(DROP|CREATE) (DATABASE|SCHEMA) (IF (NOT )?EXISTS )?" + db_name.encode() + rb"\b", b"SELECT 1", text)
    text = re.sub(rb"\bUSE " + db_name.encode() + rb"\b", b"USE `" + schema.encode() + b"`", text)
    text = re.sub(rb"\b" + db_name.encode() + rb"\.", b"`" + schema.encode() + b"`.", text)
    execute(None, f"CREATE DATABASE `{schema}`")
    res = subprocess.run(["mariadb", f"-h{MYSQL_HOST}", f"-P{MYSQL_PORT}", f"-u{MYSQL_USER}", schema], input=text,
                         capture_output=True)
    assert res.returncode == 0, res.stderr[-2000:]


def _tables(schema: str) -> list[str]:
    return [r[0] for r in query("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s"
                                " AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME", [schema])]


@pytest.fixture
def schemas() -> Iterator[tuple[str, str]]:
    pair = (f"rbt_dsrc_{uuid.uuid4().hex[:8]}", f"rbt_ddst_{uuid.uuid4().hex[:8]}")
    yield pair
    for s in pair:
        execute(None, f"SET foreign_key_checks = 0; DROP DATABASE IF EXISTS `{s}`")


@pytest.mark.parametrize("sample", ["sakila", "employees"])
def test_sample_database_exact(sample: str, schemas: tuple[str, str], tmp_path: Path) -> None:
    src, dst = schemas
    if sample == "sakila":
        _load(src, ["sakila-schema.sql.gz", "sakila-data.sql.gz"], "sakila")
    else:
        _load(src, ["employees-10k.sql.gz"], "employees")
    path = dump(src, str(tmp_path / "d.sql.gz"), "--routines", "--triggers", "--events")
    tables = _tables(src)
    res = run_step(Restore, {"file": path, "schema": dst, "schema_mismatch": "create_missing", "file_on": "control"}, make_ctx())
    assert res.status is Status.CHANGED, res.msg
    assert _tables(dst) == tables
    assert checksums(dst, tables) == checksums(src, tables)
    for kind in ("TRIGGERS", "VIEWS", "ROUTINES"):
        col = {"TRIGGERS": "TRIGGER_SCHEMA", "VIEWS": "TABLE_SCHEMA", "ROUTINES": "ROUTINE_SCHEMA"}[kind]
        assert query(f"SELECT COUNT(*) FROM information_schema.{kind} WHERE {col} = %s", [dst]) == \
            query(f"SELECT COUNT(*) FROM information_schema.{kind} WHERE {col} = %s", [src])
    assert res.data["rows"] == sum(query(f"SELECT COUNT(*) FROM `{src}`.`{t}`")[0][0] for t in tables)


def test_dump_read_over_sftp(sshd: Any, schemas: tuple[str, str], tmp_path: Path) -> None:
    src, dst = schemas
    execute(None, f"CREATE DATABASE `{src}`")
    execute(src, "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20)); INSERT INTO t SELECT seq, 'v' FROM seq_1_to_2000")
    path = dump(src, str(tmp_path / "remote.sql.gz"))
    os.chmod(tmp_path, 0o755)
    ctx = make_ctx({"ssh_host": sshd.host, "ssh_port": sshd.port, "ssh_user": sshd.user, "ssh_key": sshd.key_file,
                    "ssh_known_hosts": sshd.known_hosts, "ssh_config": sshd.config_file}, connection="ssh")
    try:
        res = run_step(Restore, {"file": path, "schema": dst, "schema_mismatch": "create_missing"}, ctx)
        assert res.status is Status.CHANGED, res.msg
        assert checksums(dst, ["t"]) == checksums(src, ["t"])
        with pytest.raises(Exception) as exc:
            Restore({"file": str(tmp_path / "nope.sql"), "schema": dst}, ctx).apply()
        assert "cannot read" in str(exc.value) and "nope.sql" in str(exc.value)
    finally:
        ctx.conns.close()
