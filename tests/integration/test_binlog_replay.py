"""Point-in-time recovery on a private mariadbd: find the mass DELETE, restore the dump, replay
every transaction since it but the DELETE — the tables equal (CHECKSUM TABLE) a reference copy
that never saw it; from the server (replication protocol) and from archived binlog files; new
GTIDs, nothing skipped; check mode writes nothing; what must be refused is, by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.actions.binlog_find import BinlogFind
from engine.actions.binlog_replay import BinlogReplay
from engine.errors import ActionError
from engine.model import Status
from tests.integration.binlog_helpers import Server, checksums, ctx_for, disaster, make_incident
from tests.integration.test_dr_actions import run_step

pytestmark = pytest.mark.integration


def _find(srv: Server, inc: object, **extra: object) -> dict[str, object]:
    res = run_step(BinlogFind, {"schema": inc.schema, "tables": ["customers", "orders", "items"],  # type: ignore[attr-defined]
                                "from_dump": inc.dump, "rows": 20, "stop_before": {"file": inc.end[0], "pos": inc.end[1]},  # type: ignore[attr-defined]
                                **extra}, ctx_for(srv))
    assert res.status is Status.OK, res.msg
    return res.data


@pytest.mark.parametrize("where", ["server", "archive"])
def test_replay_all_but_the_mass_delete(binlog_server: Server, bschema: str, tmp_path: Path, where: str) -> None:
    inc = make_incident(binlog_server, bschema, tmp_path / "dump.sql")
    found = _find(binlog_server, inc)
    first = found["first"]
    assert isinstance(first, dict)
    assert (first["kind"], first["table"], first["gtid"], first["rows"]) == ("delete", "items", inc.gtid, 45)
    assert "DELETE FROM items WHERE qty >= 2" in first["statement"]
    assert [e["kind"] for e in found["events"]] == ["delete"]  # type: ignore[union-attr]
    binlogs = "server"
    if where == "archive":  # the binlog files as an archive would hold them (copied; the server keeps writing its own)
        binlog_server.execute("FLUSH BINARY LOGS")
        binlogs = str(binlog_server.copy_binlogs(tmp_path / "archive"))
    disaster(binlog_server, inc)
    args = {"schema": inc.schema, "tables": ["customers", "orders", "items"], "from_dump": inc.dump, "binlogs": binlogs,
            "skip": [first], "stop_before": {"file": inc.end[0], "pos": inc.end[1]}, "batch": 5}
    ctx = ctx_for(binlog_server)
    res = run_step(BinlogReplay, args, ctx)
    assert res.status is Status.CHANGED, res.msg
    assert checksums(binlog_server, inc.schema) == checksums(binlog_server, inc.ref)
    assert res.data["transactions"] == inc.before + inc.after + 1 and len(res.data["skipped_transactions"]) == 1 and res.data["conflicts"] == 0
    left_out = res.data["skipped_transactions"][0]  # what the report says was left out: the rows of the mass delete
    assert (left_out["gtid"], left_out["rows"], left_out["changes"], left_out["statement"]) == (inc.gtid, 45, ["items delete"], None)
    assert res.data["stopped_at"]["file"] == inc.end[0] and res.data["stopped_at"]["pos"] == inc.end[1]
    again = run_step(BinlogReplay, args, ctx)  # the step again in the same run: its probe says done
    assert again.status is Status.OK and again.data["transactions"] == res.data["transactions"]
    other_run = run_step(BinlogReplay, args, ctx_for(binlog_server))  # another run replaying the same window: conflicts, named
    assert other_run.status is Status.FAILED and "conflict: INSERT of" in other_run.msg and "already exists" in other_run.msg
    assert checksums(binlog_server, inc.schema) == checksums(binlog_server, inc.ref)


def test_new_gtids_and_nothing_skipped(binlog_server: Server, bschema: str, tmp_path: Path) -> None:
    """Replayed into the server that wrote the binlogs, under gtid_strict_mode: each replayed
    group gets a new GTID after the originals (a reused one would be refused as out of order),
    and every transaction is applied."""
    inc = make_incident(binlog_server, bschema, tmp_path / "dump.sql", before=6, after=6)
    disaster(binlog_server, inc)
    last_original = binlog_server.gtid()
    binlog_server.execute("SET GLOBAL gtid_strict_mode = ON")
    try:
        args = {"schema": inc.schema, "tables": ["customers", "orders", "items"], "from_dump": inc.dump, "skip": [{"gtid": inc.gtid}],
                "stop_before": {"file": inc.end[0], "pos": inc.end[1]}, "batch": 1}
        start = binlog_server.position()
        res = run_step(BinlogReplay, args, ctx_for(binlog_server))
        assert res.status is Status.CHANGED, res.msg
    finally:
        binlog_server.execute("SET GLOBAL gtid_strict_mode = OFF")
    assert checksums(binlog_server, inc.schema) == checksums(binlog_server, inc.ref)
    replayed = [t.gtid for t in binlog_server.reader(binlog_server.archive(), inc.schema, None, start, binlog_server.position())
                .transactions() if t.rows]
    seq0 = int(last_original.split("-")[2])
    assert len(replayed) == res.data["transactions"] == 13
    assert all(int(g.split("-")[2]) > seq0 for g in replayed if g), (last_original, replayed)


def test_check_mode_reports_and_writes_nothing(binlog_server: Server, bschema: str, tmp_path: Path) -> None:
    inc = make_incident(binlog_server, bschema, tmp_path / "dump.sql", before=4, after=3)
    disaster(binlog_server, inc)
    before = checksums(binlog_server, inc.schema)
    pos = binlog_server.position()
    ctx = ctx_for(binlog_server)
    ctx.check_mode = True
    res = BinlogReplay({"schema": inc.schema, "tables": ["customers", "orders", "items"], "from_dump": inc.dump,
                        "skip": [{"gtid": inc.gtid}], "stop_before": {"file": inc.end[0], "pos": inc.end[1]}}, ctx).check()
    assert res.status is Status.CHANGED, res.msg
    assert res.data["transactions"] == 8 and len(res.data["skipped_transactions"]) == 1
    assert res.data["rows"] == sum(res.data["rows_by_table"].values()) > 0
    assert res.data["first_time"] and res.data["last_time"] and "would replay 8 transaction(s)" in res.msg
    assert checksums(binlog_server, inc.schema) == before and binlog_server.position() == pos  # not one event written


def test_refusals_name_what_and_write_nothing(binlog_server: Server, bschema: str, tmp_path: Path) -> None:
    inc = make_incident(binlog_server, bschema, tmp_path / "dump.sql", before=3, after=4, ddl_of_listed=True)
    disaster(binlog_server, inc)
    before, pos = checksums(binlog_server, inc.schema), binlog_server.position()
    base = {"schema": inc.schema, "tables": ["customers", "orders", "items"], "from_dump": inc.dump}
    ctx = ctx_for(binlog_server)
    with pytest.raises(ActionError, match="did not fence the host .* no stop_before"):
        BinlogReplay(base, ctx).apply()
    end = {"file": inc.end[0], "pos": inc.end[1]}
    with pytest.raises(ActionError) as err:
        BinlogReplay(dict(base, stop_before=end, skip=[{"gtid": "0-11-999999"}]), ctx).apply()
    text = err.value.message
    assert f"a DDL of {inc.schema}.customers inside the window" in text and "ALTER TABLE customers ADD INDEX" in text
    assert "skip: GTID 0-11-999999 is not a transaction of the window" in text
    assert checksums(binlog_server, inc.schema) == before and binlog_server.position() == pos
    # the DDL skipped too (binlog_find names it): the replay goes through, the tables equal the reference
    found = run_step(BinlogFind, dict(base, stop_before=end, rows=40), ctx).data
    ddl = [e for e in found["events"] if e["kind"] == "alter" and e["table"] == "customers"]
    assert len(ddl) == 1 and "ADD INDEX" in ddl[0]["statement"]
    res = run_step(BinlogReplay, dict(base, stop_before=end, skip=[found["first"], ddl[0]]), ctx)
    assert res.status is Status.CHANGED and len(res.data["skipped_transactions"]) == 2, res.msg
    left_ddl = [t for t in res.data["skipped_transactions"] if t["statement"]]
    assert len(left_ddl) == 1 and left_ddl[0]["rows"] is None and "ADD INDEX" in left_ddl[0]["statement"]
    assert checksums(binlog_server, inc.schema) == checksums(binlog_server, inc.ref)
    # a statement-based change of a listed table
    binlog_server.execute("SET SESSION binlog_format = 'STATEMENT'; UPDATE customers SET name = 'sbr' WHERE id = 1", inc.schema)
    sbr_end = {"file": binlog_server.position()[0], "pos": binlog_server.position()[1]}
    with pytest.raises(ActionError, match=rf"a statement-based change of {inc.schema}.customers at .*UPDATE customers SET name"):
        BinlogReplay(dict(base, stop_before=sbr_end, skip=[{"gtid": inc.gtid}]), ctx).apply()


def test_replay_into_another_schema(binlog_server: Server, bschema: str, tmp_path: Path) -> None:
    """``into:``: the binlogs of one schema replayed into a copy (Table_maps renamed), the source untouched."""
    inc = make_incident(binlog_server, bschema, tmp_path / "dump.sql", before=4, after=4)
    copy = f"{bschema}_copy"
    binlog_server.execute(f"CREATE DATABASE `{copy}`")
    binlog_server.execute(Path(inc.dump).read_text(), copy)
    source_before = checksums(binlog_server, inc.schema)
    try:
        res = run_step(BinlogReplay, {"schema": inc.schema, "into": copy, "tables": ["customers", "orders", "items"],
                                      "from_dump": inc.dump, "skip": [{"gtid": inc.gtid}],
                                      "stop_before": {"file": inc.end[0], "pos": inc.end[1]}}, ctx_for(binlog_server))
        assert res.status is Status.CHANGED, res.msg
        assert checksums(binlog_server, copy) == checksums(binlog_server, inc.ref)
        assert checksums(binlog_server, inc.schema) == source_before
    finally:
        binlog_server.execute(f"SET SESSION foreign_key_checks = 0; DROP DATABASE IF EXISTS `{copy}`")
