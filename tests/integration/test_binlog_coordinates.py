"""A dump's binlog coordinates, from real mariadb-dump output (plain, gzip, on the host over
SSH), and ``restore`` registering them as ``binlog_start``."""

from __future__ import annotations

import gzip
import subprocess
from pathlib import Path

import pytest

from engine.errors import ActionError
from engine.model import Status
from engine.mysql.dump.coordinates import parse_coordinates, read_coordinates
from engine.transport.ssh import SshShell
from tests.integration.binlog_helpers import Server
from tests.integration.restore_helpers import restore
from tests.sshd import SshdServer

pytestmark = pytest.mark.integration


def _dump(srv: Server, schema: str, path: Path, *options: str) -> Path:
    out = subprocess.run(["mariadb-dump", "-h127.0.0.1", f"-P{srv.port}", "-uroot", "--single-transaction", *options, schema],
                         check=True, capture_output=True).stdout
    path.write_bytes(gzip.compress(out) if path.suffix == ".gz" else out)
    return path


def test_mariadb_dump_coordinates(binlog_server: Server, bschema: str, tmp_path: Path, sshd: SshdServer) -> None:
    binlog_server.execute("CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1)", bschema)
    file, pos = binlog_server.position()
    gtid = binlog_server.gtid()
    both = read_coordinates(str(_dump(binlog_server, bschema, tmp_path / "a.sql", "--master-data=2", "--gtid")), None)
    assert (both.position.file, both.position.pos, both.position.gtid, both.of_source) == (file, pos, gtid, False)
    one = read_coordinates(str(_dump(binlog_server, bschema, tmp_path / "b.sql.gz", "--master-data=1")), None)
    assert (one.position.file, one.position.pos) == (file, pos)  # uncommented, gzip; 10.11 also writes the GTID at the end
    shell = SshShell(sshd.settings())
    try:
        remote = read_coordinates(str(tmp_path / "b.sql.gz"), shell)
        assert remote == one
        with pytest.raises(ActionError, match="holds no binlog coordinates") as err:
            read_coordinates(str(_dump(binlog_server, bschema, tmp_path / "c.sql")), shell)
        assert "--master-data=2" in (err.value.hint or "")
    finally:
        shell.close()


def test_mysql_forms() -> None:
    u = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
    head = (b"SET @@SESSION.SQL_LOG_BIN= 0;\n--\n-- GTID state at the beginning of the backup \n--\n\n"
            b"SET @@GLOBAL.GTID_PURGED=/*!80000 '+'*/ '" + u.encode() + b":1-5,\n" + u.replace("3e", "4f").encode() + b":1-3';\n"
            b"--\n-- Position to start replication or point-in-time recovery from (the source of this replica)\n--\n\n"
            b"-- CHANGE REPLICATION SOURCE TO SOURCE_HOST='db0', SOURCE_PORT=3306, SOURCE_LOG_FILE='binlog.000007', SOURCE_LOG_POS=157;\n")
    found = parse_coordinates(head)
    assert found is not None and found.of_source
    assert (found.position.file, found.position.pos) == ("binlog.000007", 157)
    assert found.position.gtid == f"{u}:1-5,{u.replace('3e', '4f')}:1-3"
    assert parse_coordinates(b"-- CHANGE MASTER TO MASTER_USE_GTID=slave_pos;\n") is None
    # any case, as the server reads them (each pattern is searched only where its word is, case-folded)
    low = parse_coordinates(b"-- change Master to master_log_file='b.000001', master_log_pos=4;\n", b"set global Gtid_Slave_Pos='0-1-5';\n")
    assert low is not None and (low.position.file, low.position.pos, low.position.gtid) == ("b.000001", 4, "0-1-5")
    assert parse_coordinates(b"SET @@global.gtid_Purged='" + u.encode() + b":1-2';\n").position.gtid == f"{u}:1-2"  # type: ignore[union-attr]


def test_restore_registers_binlog_start(binlog_server: Server, bschema: str, schema: str, tmp_path: Path) -> None:
    binlog_server.execute("CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1)", bschema)
    file, pos = binlog_server.position()
    path = _dump(binlog_server, bschema, tmp_path / "d.sql.gz", "--master-data=2", "--gtid")
    res = restore({"file": str(path), "schema": schema, "file_on": "control", "schema_mismatch": "create_missing"})
    assert res.status is Status.CHANGED, res.msg
    assert res.data["binlog_start"] == {"file": file, "pos": pos, "gtid": binlog_server.gtid()}
    plain = restore({"file": str(_dump(binlog_server, bschema, tmp_path / "e.sql")), "schema": schema, "file_on": "control",
                     "on_conflict": "ignore"})
    assert plain.data["binlog_start"] is None
