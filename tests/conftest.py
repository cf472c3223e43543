"""Shared fixtures: a real MariaDB (one schema per test) and a real sshd (see tests/sshd.py)."""

from __future__ import annotations

import os
import subprocess
import tempfile
import uuid
from collections.abc import Iterator

import pymysql
import pytest

from engine.model import MysqlSettings

pytest_plugins = ["tests.sshd", "tests.integration.binlog_helpers"]

# Host locks are machine-wide (engine.journal.lock.host_lock_dir): test sessions of several
# people at once, all naming their host "ctl" or "db1", must not lock each other out.
os.environ.setdefault("RUNBOOK_LOCK_DIR", tempfile.mkdtemp(prefix="rbt_locks_"))
# The cache of template analyses (engine/templating/shared_cache.py) of the session's own: the
# tests' `runbook` processes share it (so it is exercised), the user's ~/.cache is left alone.
os.environ.setdefault("RUNBOOK_CACHE_DIR", tempfile.mkdtemp(prefix="rbt_cache_"))

# Every `runbook` a test starts (python -m engine.cli, scripts) imports the engine of this
# checkout, not whichever checkout `pip install -e` last pointed at (git worktrees side by side).
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ["PYTHONPATH"] = os.pathsep.join([_ROOT, *filter(None, [os.environ.get("PYTHONPATH")])])

# ... and with its bytecode cached, as an installed engine has it: where PYTHONDONTWRITEBYTECODE
# is set (this lab sets it), every one of the suite's ~2,000 `runbook` processes compiled the
# engine's ~240 modules again (≈0.3 s of CPU each). The cache is outside the checkout (a prefix
# per checkout; Python checks each .pyc against its source, so a stale one is never used).
if os.environ.pop("PYTHONDONTWRITEBYTECODE", None) is not None:
    os.environ.setdefault("PYTHONPYCACHEPREFIX", os.path.join(
        tempfile.gettempdir(), "runbook-tests-pycache", _ROOT.strip(os.sep).replace(os.sep, "+")))

MYSQL_HOST = os.environ.get("RUNBOOK_TEST_MYSQL_HOST", "127.0.0.1")
MYSQL_PORT = int(os.environ.get("RUNBOOK_TEST_MYSQL_PORT", "3306"))
MYSQL_USER = os.environ.get("RUNBOOK_TEST_MYSQL_USER", "root")
MYSQL_PASSWORD = os.environ.get("RUNBOOK_TEST_MYSQL_PASSWORD", "")

#: an inventory of one local host, db1, whose MySQL is the test server
DB1_INVENTORY = f"""
all:
  hosts:
    db1:
      connection: local
      mysql_host: {MYSQL_HOST}
      mysql_port: {MYSQL_PORT}
      mysql_user: {MYSQL_USER}
"""


def mysql_root() -> pymysql.connections.Connection:
    return pymysql.connect(host=MYSQL_HOST, port=MYSQL_PORT, user=MYSQL_USER, password=MYSQL_PASSWORD, autocommit=True)


def root_execute(sql: str) -> None:
    """One statement as root on a connection of its own."""
    conn = mysql_root()
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


@pytest.fixture
def small_fs() -> Iterator[str]:
    """An 8 MiB tmpfs (the tests run as root): a filesystem that really fills up."""
    d = tempfile.mkdtemp(prefix="rbt_tmpfs_")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", d], check=True)
    try:
        yield d
    finally:
        subprocess.run(["umount", d], check=False)
        os.rmdir(d)


@pytest.fixture(scope="session")
def mysql_settings() -> MysqlSettings:
    try:
        mysql_root().close()
    except pymysql.err.MySQLError as exc:  # a missing server is a broken test machine, not a skip
        pytest.fail(f"MariaDB is not reachable at {MYSQL_HOST}:{MYSQL_PORT}: {exc} (run scripts/setup.sh)")
    return MysqlSettings(host=MYSQL_HOST, port=MYSQL_PORT, user=MYSQL_USER, password=None)


@pytest.fixture
def db() -> Iterator[pymysql.connections.Connection]:
    """A root connection to the test server."""
    conn = mysql_root()
    yield conn
    conn.close()


@pytest.fixture
def schema(db: pymysql.connections.Connection) -> Iterator[str]:
    """A fresh, empty schema for this test, dropped afterwards."""
    name = f"rbt_{uuid.uuid4().hex[:10]}"
    with db.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}`")
    yield name
    with db.cursor() as cur:
        cur.execute("SET SESSION foreign_key_checks = 0")
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture(scope="session")
def lab_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """A private MariaDB + sshd (``runbook lab``'s), for tests that fence a server or change
    its globals (read_only, server_id): the machine's server is shared by every test of
    everyone working at once. Yields (inventory path, MariaDB port); host ``db1``."""
    from engine.cli.lab import Lab, down, up
    from engine.errors import RunbookError

    lab = Lab(tmp_path_factory.mktemp("lab") / "lab")
    try:
        up(lab)
    except RunbookError:  # a start-up slower than the lab's patience on a loaded machine: once more
        up(lab)
    try:
        yield str(lab.inventory), int(lab.state()["mysql_port"])  # type: ignore[call-overload]
    finally:
        down(lab, quiet=True)
