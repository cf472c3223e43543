"""The apply layer's failover mode: a second server catches up from the first one's binlogs with
the transactions' own GTIDs (``keep_gtids``), each alone; a statement in the window is refused."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from engine.errors import ActionError
from engine.mysql.binlog.apply import Applier, ApplyOptions
from engine.mysql.binlog.tables import live_tables
from engine.mysql.instance import MariadbInstance
from engine.transport.mysql import MysqlSession
from tests.integration.binlog_helpers import Server

pytestmark = pytest.mark.integration


def test_catch_up_under_the_original_gtids(binlog_server: Server, bschema: str, tmp_path: Path) -> None:
    src = binlog_server
    src.execute("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20)); INSERT INTO t VALUES (1, 'a')", bschema)
    dump = subprocess.run(["mariadb-dump", "-h127.0.0.1", f"-P{src.port}", "-uroot", "--single-transaction", bschema],
                          check=True, capture_output=True).stdout.decode()
    start = src.position()
    src.execute("INSERT INTO t VALUES (2, 'b'); UPDATE t SET v = 'A' WHERE id = 1; DELETE FROM t WHERE id = 2;"
                "INSERT INTO t VALUES (3, 'c')", bschema)
    end, last = src.position(), src.gtid()
    replica = MariadbInstance(tmp_path / "replica", server_id=12)
    replica.start()
    try:
        dst = Server(replica)
        dst.execute(f"CREATE DATABASE `{bschema}`")
        dst.execute(dump, bschema)
        session = MysqlSession(dst.settings())
        applier = Applier(session, live_tables(session, bschema, None), ApplyOptions(keep_gtids=True), progress=None)
        stats = applier.apply(src.reader(src.archive(), bschema, None, start, end).transactions())
        assert stats.transactions == 4 and stats.groups == 4
        assert dst.query(f"SELECT id, v FROM `{bschema}`.t ORDER BY id") == src.query(f"SELECT id, v FROM `{bschema}`.t ORDER BY id")
        assert dst.gtid().split(",")[0] == last  # the source's own GTIDs, in order
        src.execute("ALTER TABLE t ADD COLUMN w INT", bschema)
        with pytest.raises(ActionError, match="is a statement .*ALTER TABLE t ADD COLUMN w INT.*keep_gtids applies row events only"):
            applier.apply(src.reader(src.archive(), bschema, None, end, src.position()).transactions())
        session.close()
    finally:
        replica.stop()
