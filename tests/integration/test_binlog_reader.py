"""The binlog reader on binlogs a real private mariadbd wrote: the same transactions whether the
events come over the replication protocol or from archived files (plain, gzip, over SSH), other
tables' events left out, values decoded exactly, and a corrupt or truncated file refused."""

from __future__ import annotations

import gzip
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from engine.mysql.binlog.events import BinlogError
from engine.mysql.binlog.covered import Covered
from engine.mysql.binlog.sources import ArchiveSource
from engine.transport.local import LocalShell
from engine.transport.ssh import SshShell
from tests.integration.binlog_helpers import Server
from tests.sshd import SshdServer
import itertools

pytestmark = pytest.mark.integration


def _summary(reader: Any) -> list[tuple[Any, ...]]:
    return [(t.gtid, t.file, t.pos, t.end_pos, [(r.table.table, r.kind, len(r)) for r in t.rows],
             [(c.table, c.kind) for c in t.changes]) for t in reader.transactions()]


def _history(srv: Server, schema: str) -> tuple[tuple[str, int], tuple[str, int], str]:
    srv.execute("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20), n DECIMAL(8,2));"
                "CREATE TABLE other (id INT PRIMARY KEY, b BLOB)", schema)
    start, gtid0 = srv.position(), srv.gtid()
    srv.execute("INSERT INTO t VALUES (1, 'a', 1.5), (2, 'b', NULL), (3, 'c', -2);"
                "INSERT INTO other VALUES (1, 0x00ff);"
                "BEGIN; UPDATE t SET v = 'B' WHERE id = 2; INSERT INTO other VALUES (2, NULL); DELETE FROM t WHERE id = 3; COMMIT;"
                "FLUSH BINARY LOGS;"
                "ALTER TABLE other ADD COLUMN x INT;"
                "DELETE FROM t WHERE id = 1;"
                "TRUNCATE TABLE t;", schema)
    return start, srv.position(), gtid0


def test_files_and_replication_protocol_agree(binlog_server: Server, bschema: str) -> None:
    start, end, gtid0 = _history(binlog_server, bschema)
    archive = binlog_server.reader(binlog_server.archive(), bschema, {"t"}, start, end)
    server = binlog_server.reader(binlog_server.server_source(), bschema, {"t"}, start, end)
    got = _summary(archive)
    assert got == _summary(server)
    assert archive.stopped_at == server.stopped_at == end
    rows = [r for (_, _, _, _, r, _) in got]
    assert rows == [[("t", "insert", 3)], [], [("t", "update", 1), ("t", "delete", 1)], [], [("t", "delete", 1)], []]
    assert [c for (*_, c) in got][-1] == [("t", "truncate")]  # DDL of a listed table is seen; other's ALTER is not
    assert got[3][5] == []
    assert got[0][1] != got[-1][1]  # the window crosses FLUSH BINARY LOGS
    domain, server_id, seq = (int(x) for x in gtid0.split("-"))
    assert [g for (g, *_) in got] == [f"{domain}-{server_id}-{seq + i}" for i in range(1, 7)]
    for (_, file, pos, end_pos, *_), nxt in itertools.pairwise(got):
        assert end_pos > pos and (nxt[1] != file or nxt[2] == end_pos)  # back to back within a file


def test_window_end_covered_and_stop(binlog_server: Server, bschema: str) -> None:
    start, end, _gtid0 = _history(binlog_server, bschema)
    all_txns = list(binlog_server.reader(binlog_server.archive(), bschema, {"t"}, start, end).transactions())
    third = all_txns[2]
    # end at a transaction's start: that one and all later are out
    r = binlog_server.reader(binlog_server.archive(), bschema, {"t"}, start, (third.file, third.pos))
    assert [t.gtid for t in r.transactions()] == [t.gtid for t in all_txns[:2]]
    # a GTID state covering the first two: they are not part of the window
    covered = Covered(all_txns[1].gtid or "")
    r = binlog_server.reader(binlog_server.archive(), bschema, {"t"}, start, end, covered=covered)
    assert [t.gtid for t in r.transactions()] == [t.gtid for t in all_txns[2:]]
    # stop before a GTID; a transaction not kept keeps no rows (counts them when asked)
    r = binlog_server.reader(binlog_server.archive(), bschema, {"t"}, start, end, stop=lambda t: t.gtid == third.gtid,
                             keep=lambda t: t.gtid != all_txns[0].gtid, count_rows=True)
    got = list(r.transactions())
    assert [t.gtid for t in got] == [t.gtid for t in all_txns[:2]] and r.stopped_by is not None
    assert got[0].rows == [] and got[0].row_counts == {("t", "insert"): 3}


ODD = """CREATE TABLE odd (
  id INT PRIMARY KEY, s VARCHAR(300) CHARACTER SET utf8mb4, bin VARBINARY(64), blb BLOB, j JSON, g POINT NULL,
  gen INT AS (id * 2) VIRTUAL, gst VARCHAR(310) CHARACTER SET utf8mb4 AS (CONCAT('x', s)) STORED, e ENUM('a','b','c d'), st SET('x','y','z'),
  d1 DECIMAL(65,30), d2 DECIMAL(5,2), f DOUBLE, bt BIT(5), dt DATETIME(6), ts TIMESTAMP NULL, u BIGINT UNSIGNED,
  ti TINYINT, ut TINYINT UNSIGNED, fl FLOAT, tm TIME(3), tm0 TIME, dte DATE, yr YEAR, ch CHAR(10), bn BINARY(4),
  neg DECIMAL(10,4), ts0 TIMESTAMP(3) NULL, i24 MEDIUMINT, si SMALLINT UNSIGNED, dt0 DATETIME, uu UUID)"""
ODD_ROW = """INSERT INTO odd (id, s, bin, blb, j, g, e, st, d1, d2, f, bt, dt, ts, u, ti, ut, fl, tm, tm0, dte, yr, ch, bn, neg,
  ts0, i24, si, dt0, uu) VALUES (1, CONCAT('it''s ', REPEAT('é', 280)), 0x00FF10275C0A, 0x89504E470D0A1A0A00,
  '{"k": [1, 2]}', ST_GeomFromText('POINT(1 2)'), 'c d', 'x,z', -12345678901234567890123456789012345.123456789012345678901234567890,
  -999.99, 1.5e300, b'10101', '2024-02-29 23:59:59.999999', FROM_UNIXTIME(2147483647), 18446744073709551615, -128, 255, 1.1,
  '-838:59:58.999', '12:34:56', '2024-02-29', 2155, 'ab', 0x0102, -12.3456, FROM_UNIXTIME(981173106.789), -8388608, 65535,
  '1000-01-01 00:00:00', '123e4567-e89b-12d3-a456-426655440000'), (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)"""


def test_values_decode_exactly(binlog_server: Server, bschema: str) -> None:
    binlog_server.execute(ODD, bschema)
    start = binlog_server.position()
    binlog_server.execute(ODD_ROW, bschema)
    unsigned = {16, 18, 29}  # u, ut, si
    r = binlog_server.reader(binlog_server.archive(), bschema, {"odd"}, start, binlog_server.position(),
                             unsigned=lambda s, t: unsigned)
    (txn,) = list(r.transactions())
    (ev,) = txn.rows
    first, second = (ev.values(a, after=True) for _, a in ev.images)
    s = ("it's " + "é" * 280).encode()
    expected = [1, s, b"\x00\xff\x10'\\\n", b"\x89PNG\r\n\x1a\n\x00", b'{"k": [1, 2]}', None, 0, b"x" + s, 3, 5,
                Decimal("-12345678901234567890123456789012345.123456789012345678901234567890"), Decimal("-999.99"), 1.5e300, 21,
                "2024-02-29 23:59:59.999999", Decimal(2147483647), 18446744073709551615, -128, 255, 1.100000023841858,
                "-838:59:58.999", "12:34:56", "2024-02-29", 2155, b"ab", b"\x01\x02", Decimal("-12.3456"),
                Decimal("981173106.789"), -8388608, 65535, "1000-01-01 00:00:00", bytes.fromhex("123e4567e89b12d3a456426655440000").rstrip(b"\0")]
    first[5] = None  # the POINT's bytes: compared on the server by the conflict tests
    first[6] = second[6] = 0  # a VIRTUAL column's logged value is whatever the server had at hand: never compared
    assert first == expected
    assert second == [2] + [None] * 5 + [0] + [None] * 25


def _copy(srv: Server, tmp: Path) -> Path:
    return srv.copy_binlogs(tmp / "arch")


def test_corrupt_and_truncated_files_are_refused(binlog_server: Server, bschema: str, tmp_path: Path) -> None:
    start, end, _ = _history(binlog_server, bschema)
    binlog_server.execute("FLUSH BINARY LOGS")  # the window's files are closed: copies are whole
    d = _copy(binlog_server, tmp_path)
    path = d / start[0]
    data = bytearray(path.read_bytes())
    data[start[1] + 40] ^= 0x01  # inside the first event of the window
    path.write_bytes(bytes(data))
    src = ArchiveSource(LocalShell(), str(d), local=True)
    with pytest.raises(BinlogError, match="checksum mismatch"):
        list(binlog_server.reader(src, bschema, {"t"}, start, end).transactions())
    data[start[1] + 40] ^= 0x01
    path.write_bytes(bytes(data[:start[1] + 60]))
    src = ArchiveSource(LocalShell(), str(d), local=True)
    with pytest.raises(BinlogError, match="truncated"):
        list(binlog_server.reader(src, bschema, {"t"}, start, end).transactions())


def test_gzip_and_ssh_archives(binlog_server: Server, bschema: str, tmp_path: Path, sshd: SshdServer) -> None:
    start, end, _ = _history(binlog_server, bschema)
    want = _summary(binlog_server.reader(binlog_server.archive(), bschema, {"t"}, start, end))
    binlog_server.execute("FLUSH BINARY LOGS")
    d = _copy(binlog_server, tmp_path)
    for p in list(d.iterdir()):
        p.with_name(p.name + ".gz").write_bytes(gzip.compress(p.read_bytes()))
        p.unlink()
    assert _summary(binlog_server.reader(ArchiveSource(LocalShell(), str(d), local=True), bschema, {"t"}, start, end)) == want
    shell = SshShell(sshd.settings())
    src = ArchiveSource(shell, str(d), host="db1")
    try:
        assert _summary(binlog_server.reader(src, bschema, {"t"}, start, end)) == want
    finally:
        src.close()
        shell.close()


def test_copies_of_a_killed_step_are_swept(tmp_path: Path, sshd: SshdServer, binlog_server: Server) -> None:
    import subprocess
    import tempfile

    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = Path(tempfile.gettempdir()) / f"runbook-binlog-{dead.pid}-x"
    stale.mkdir(exist_ok=True)
    (stale / "binlog.000001").write_bytes(b"old copy")
    shell = SshShell(sshd.settings())
    src = ArchiveSource(shell, binlog_server.binlog_dir, host="db1")
    try:
        first = src.files()[0].name
        next(iter(src.events(first, 4)))  # the first copy over SFTP sweeps what a killed step left
        assert not stale.exists()
    finally:
        src.close()
        shell.close()
