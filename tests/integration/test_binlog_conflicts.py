"""Conflicts: a row to update or delete that is missing or differs from the event's before image,
or an insert whose key is taken — ``error`` stops naming the event and the key, ``skip`` leaves
the row and counts it, ``overwrite`` writes the after image. And the comparison itself, column
type by column type: an unchanged row is the same, any one changed column differs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from engine.actions.binlog_replay import BinlogReplay
from engine.model import Status
from engine.mysql.binlog.conflicts import DIFFERS, SAME, RowCheck, states
from engine.mysql.binlog.tables import comparators, live_tables
from engine.transport.mysql import MysqlSession
from tests.integration.binlog_helpers import Server, ctx_for
from tests.integration.test_binlog_reader import ODD, ODD_ROW
from tests.integration.test_dr_actions import run_step

pytestmark = pytest.mark.integration

HISTORY = [
    "INSERT INTO acct VALUES (10, 100, 'new')",
    "UPDATE acct SET v = v + 1, note = 'bumped' WHERE id = 1",
    "DELETE FROM acct WHERE id = 2",
    "UPDATE kl SET b = 'changed' WHERE a = 1",
    "INSERT INTO acct VALUES (11, 110, 'clean')",
]


def _setup(srv: Server, schema: str, tmp: Path) -> tuple[str, dict[str, object]]:
    srv.execute("CREATE TABLE acct (id INT PRIMARY KEY, v INT, note VARCHAR(20));"
                "CREATE TABLE kl (a INT, b VARCHAR(20));"
                "INSERT INTO acct VALUES (1, 10, 'one'), (2, 20, 'two'), (3, 30, 'three');"
                "INSERT INTO kl VALUES (1, 'x'), (2, 'y')", schema)
    dump = tmp / "d.sql"
    dump.write_bytes(subprocess.run(["mariadb-dump", "-h127.0.0.1", f"-P{srv.port}", "-uroot", "--single-transaction",
                                     "--master-data=2", schema], check=True, capture_output=True).stdout)
    for stmt in HISTORY:
        srv.execute(stmt, schema)
    f, p = srv.position()
    return str(dump), {"schema": schema, "from_dump": str(dump), "stop_before": {"file": f, "pos": p}, "batch": 2}


def _restore_and_tamper(srv: Server, schema: str, dump: str) -> None:
    srv.execute("DROP TABLE acct, kl", schema)
    srv.execute(Path(dump).read_text(), schema)
    srv.execute("INSERT INTO acct VALUES (10, -1, 'squatter'); UPDATE acct SET v = 999 WHERE id = 1;"
                "DELETE FROM acct WHERE id = 2; DELETE FROM kl WHERE a = 1", schema)


def test_on_conflict_error_skip_overwrite(binlog_server: Server, bschema: str, tmp_path: Path) -> None:
    dump, args = _setup(binlog_server, bschema, tmp_path)
    _restore_and_tamper(binlog_server, bschema, dump)
    res = run_step(BinlogReplay, dict(args, on_conflict="error"), ctx_for(binlog_server))
    assert res.status is Status.FAILED
    assert f"INSERT of {bschema}.acct row (id)=(10) at binlog." in res.msg and "the row already exists" in res.msg
    assert "GTID 0-11-" in res.msg and res.data["transactions"] == 0
    assert binlog_server.query(f"SELECT v FROM `{bschema}`.acct WHERE id = 10") == [(-1,)]  # nothing of the group written

    res = run_step(BinlogReplay, dict(args, on_conflict="skip"), ctx_for(binlog_server))
    assert res.status is Status.CHANGED, res.msg
    assert res.data["conflicts"] == 4 and res.data["transactions"] == 5
    states_seen = sorted((c["op"], c["state"]) for c in res.data["conflict_rows"])
    assert states_seen == [("delete", "missing"), ("insert", "exists"), ("update", "differs"), ("update", "missing")]
    assert binlog_server.query(f"SELECT id, v, note FROM `{bschema}`.acct ORDER BY id") == \
        [(1, 999, "one"), (3, 30, "three"), (10, -1, "squatter"), (11, 110, "clean")]
    assert binlog_server.query(f"SELECT a, b FROM `{bschema}`.kl ORDER BY a") == [(2, "y")]

    _restore_and_tamper(binlog_server, bschema, dump)
    res = run_step(BinlogReplay, dict(args, on_conflict="overwrite"), ctx_for(binlog_server))
    assert res.status is Status.CHANGED, res.msg
    assert res.data["conflicts"] == 4
    assert binlog_server.query(f"SELECT id, v, note FROM `{bschema}`.acct ORDER BY id") == \
        [(1, 11, "bumped"), (3, 30, "three"), (10, 100, "new"), (11, 110, "clean")]
    assert binlog_server.query(f"SELECT a, b FROM `{bschema}`.kl ORDER BY a") == [(1, "changed"), (2, "y")]


def test_every_column_type_compares_exactly(binlog_server: Server, bschema: str) -> None:
    """The before images of an UPDATE of the awkward row are the same as the live rows; changing
    any one comparable column (on the server) makes that row differ."""
    binlog_server.execute(ODD, bschema)
    binlog_server.execute(ODD_ROW, bschema)
    binlog_server.execute("ALTER TABLE odd ADD COLUMN z INT DEFAULT 0", bschema)
    start = binlog_server.position()
    binlog_server.execute("UPDATE odd SET z = 1", bschema)
    sql = MysqlSession(binlog_server.settings())
    sql.query("SET SESSION time_zone = '+00:00'")
    live = live_tables(sql, bschema, ["odd"])
    r = binlog_server.reader(binlog_server.archive(), bschema, {"odd"}, start, binlog_server.position(),
                             unsigned=lambda s, t: live["odd"].unsigned)
    (txn,) = list(r.transactions())
    (ev,) = txn.rows
    cmp = comparators(ev.layout, live["odd"])
    checks = [RowCheck(live["odd"], cmp, ev.values(b)) for b, _ in ev.images]  # type: ignore[arg-type]
    binlog_server.execute("UPDATE odd SET z = 0", bschema)  # back to the before images
    assert states(sql, checks) == [SAME, SAME]
    changes = {"s": "CONCAT(s, 'x')", "bin": "0x01", "blb": "0x02", "j": "'[]'", "g": "ST_GeomFromText('POINT(9 9)')",
               "gst": None, "e": "'a'", "st": "'y'", "d1": "d1 + 0.000000000000000000000000000001", "d2": "d2 + 0.01",
               "f": "f * 2", "bt": "b'1'", "dt": "dt - INTERVAL 1 MICROSECOND", "ts": "ts - INTERVAL 1 SECOND",
               "u": "u - 1", "ti": "ti + 1", "ut": "ut - 1", "fl": "fl + 0.5", "tm": "'00:00:01.5'", "tm0": "'00:00:02'",
               "dte": "'2024-03-01'", "yr": "2001", "ch": "'ab '", "bn": "0x0103", "neg": "neg + 1", "ts0": "ts0 + INTERVAL 1 SECOND",
               "i24": "i24 + 1", "si": "si - 1", "dt0": "'1000-01-01 00:00:01'", "uu": "'00000000-0000-0000-0000-000000000001'"}
    for col, expr in changes.items():
        if expr is None:
            continue
        sql.query(f"UPDATE `{bschema}`.odd SET `{col}` = {expr} WHERE id = 1")
        got = states(sql, checks)
        binlog_server.execute(f"DELETE FROM odd; {ODD_ROW}; UPDATE odd SET z = 0", bschema)
        if col == "ch":  # CHAR(10) ignores trailing spaces: 'ab ' is 'ab', the same row
            assert got == [SAME, SAME], col
        else:
            assert got == [DIFFERS, SAME], col
    sql.close()
