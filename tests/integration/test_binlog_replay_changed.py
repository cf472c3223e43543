"""A binlog that changes between the replay's two passes (an archive copied over, a file of the
same name with other content, a file cut short): the second pass applies nothing the first did
not judge — it stops before the first transaction that differs, names it, and the outcome says
what was committed before. An in-process hook runs between the passes (no timing)."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from engine.actions.binlog_replay import BinlogReplay
from engine.errors import RunbookError
from engine.model import Status
from engine.mysql.binlog import events as E
from engine.mysql.binlog.sources import read_stream
from tests.integration.binlog_helpers import Incident, Server, checksums, ctx_for, disaster, make_incident
from tests.integration.test_dr_actions import run_step

pytestmark = pytest.mark.integration


def _archive(srv: Server, tmp_path: Path) -> Path:
    srv.execute("FLUSH BINARY LOGS")
    return srv.copy_binlogs(tmp_path / "archive")


def _between_passes(monkeypatch: pytest.MonkeyPatch, hook: Callable[[], None]) -> None:
    """Run ``hook`` once the first pass (the plan) is done, before the second reads anything."""
    plan = BinlogReplay._plan

    def planned(self: BinlogReplay, *a: Any, **kw: Any) -> Any:
        out = plan(self, *a, **kw)
        hook()
        return out

    monkeypatch.setattr(BinlogReplay, "_plan", planned)


def _rewrite_note(path: Path, end: int, old: bytes, new: bytes) -> int:
    """Change an orders row's note inside the file (the last such row before ``end``: earlier
    tests' histories share the file), its event's CRC32 made right again (a valid binlog of the
    same name with other content); the event's position."""
    data = bytearray(path.read_bytes())
    at = data.rindex(b"\x07\x00" + old, 0, end)  # TEXT: a 2-byte length, then the bytes (the Annotate has it quoted)
    with open(path, "rb") as f:
        ev = next(e for e in read_stream(f, path.name, 4) if e.pos <= at < e.pos + e.size)
    assert ev.type in E.ROWS_KIND
    data[at + 2:at + 2 + len(new)] = new
    crc = zlib.crc32(bytes(data[ev.pos:ev.pos + ev.size - 4]))
    data[ev.pos + ev.size - 4:ev.pos + ev.size] = struct.pack("<I", crc)
    path.write_bytes(bytes(data))
    return ev.pos


def _replay(srv: Server, inc: Incident, binlogs: str) -> Any:
    args = {"schema": inc.schema, "tables": ["customers", "orders", "items"], "from_dump": inc.dump, "binlogs": binlogs,
            "skip": [{"gtid": inc.gtid}], "stop_before": {"file": inc.end[0], "pos": inc.end[1]}, "batch": 5}
    return run_step(BinlogReplay, args, ctx_for(srv))


def test_a_file_rewritten_between_the_passes_is_refused_there(binlog_server: Server, bschema: str, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    inc = make_incident(binlog_server, bschema, tmp_path / "dump.sql")
    arch = _archive(binlog_server, tmp_path)
    disaster(binlog_server, inc)
    where: list[int] = []
    _between_passes(monkeypatch, lambda: where.append(_rewrite_note(arch / inc.end[0], inc.end[1], b"order 7", b"ORDER 7")))
    res = _replay(binlog_server, inc, str(arch))
    assert res.status is Status.FAILED, res.msg
    assert "the binlog changed since the check" in res.msg and f"{inc.end[0]}:" in res.msg, res.msg
    assert "its events differ from the ones the check read" in res.msg, res.msg
    # nothing it read after the check was applied: not the changed row, nor the rest of its group
    assert binlog_server.query(f"SELECT COUNT(*) FROM `{bschema}`.orders WHERE BINARY note LIKE 'ORDER%'")[0][0] == 0
    assert binlog_server.query(f"SELECT COUNT(*) FROM `{bschema}`.orders WHERE note = 'order 4'")[0][0] == 1
    assert binlog_server.query(f"SELECT COUNT(*) FROM `{bschema}`.orders WHERE note = 'order 5'")[0][0] == 0
    # truthful: the groups committed before it (orders 0-4), and so says the outcome
    assert res.data["transactions"] == 5 and res.data["groups"] == 1
    assert "5 transaction(s) committed before it" in (res.evidence or "")


def test_a_file_cut_short_between_the_passes_is_refused(binlog_server: Server, bschema: str, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    inc = make_incident(binlog_server, bschema, tmp_path / "dump.sql")
    arch = _archive(binlog_server, tmp_path)
    disaster(binlog_server, inc)
    path = arch / inc.end[0]
    with open(path, "rb") as f:  # cut at a transaction's start: what is left is a valid (shorter) binlog
        cut = [e.pos for e in read_stream(f, path.name, 4) if e.type == E.MARIA_GTID and e.pos < inc.end[1]][-6]
    _between_passes(monkeypatch, lambda: path.write_bytes(path.read_bytes()[:cut]))
    res = _replay(binlog_server, inc, str(arch))
    assert res.status is Status.FAILED, res.msg
    assert "the binlog changed since the check" in res.msg and "is not there any more" in res.msg, res.msg
    assert checksums(binlog_server, inc.schema) != checksums(binlog_server, inc.ref)


def test_unchanged_binlogs_replay_as_before(binlog_server: Server, bschema: str, tmp_path: Path) -> None:
    """The check costs nothing to a window that did not change (the server's binlogs growing
    past the end included: the window ends at the fence)."""
    inc = make_incident(binlog_server, bschema, tmp_path / "dump.sql")
    disaster(binlog_server, inc)
    res = _replay(binlog_server, inc, "server")
    assert res.status is Status.CHANGED, res.msg
    assert checksums(binlog_server, inc.schema) == checksums(binlog_server, inc.ref)


def test_reset_master_between_the_passes_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """From the server: RESET MASTER between the passes numbers the binlogs from .000001 again,
    other transactions at the positions the check read (a server of its own: RESET MASTER)."""
    from engine.mysql.instance import MariadbInstance

    inst = MariadbInstance(tmp_path / "db", server_id=12)
    inst.start()
    try:
        srv = Server(inst)
        srv.execute("CREATE DATABASE rbt_reset")
        inc = make_incident(srv, "rbt_reset", tmp_path / "dump.sql")
        disaster(srv, inc)
        assert inc.end[0] == "binlog.000001"  # the window lies in the file RESET MASTER starts again

        def reset() -> None:  # the dump restored again (the replay's target as it was), another history written
            srv.execute("RESET MASTER")
            srv.execute("CREATE DATABASE other; CREATE TABLE other.t (a INT PRIMARY KEY, b TEXT)")
            for i in range(60):
                srv.execute(f"INSERT INTO other.t VALUES ({i}, REPEAT('x', {i}))")

        _between_passes(monkeypatch, reset)
        try:
            res = _replay(srv, inc, "server")
            said = res.msg
            assert res.status is Status.FAILED and res.data["transactions"] == 0, res.msg
            # the server refuses to stream the new binlog.000001 from the old position: a read error of
            # the second pass, which ends the step with what was committed (none), as a change does
            assert "the binlog changed since the check" in said or "reading the binlogs again failed" in said, said
        except RunbookError as exc:  # the new binlog.000001 has no event at the start position: the server refuses the dump
            said = exc.render()
        assert "binlog.000001:" in said, said
        assert srv.query("SELECT COUNT(*) FROM rbt_reset.orders WHERE note LIKE 'order %'")[0][0] == 0  # nothing applied
    finally:
        inst.stop()


def test_a_file_purged_between_the_passes_fails_the_step_with_what_was_committed(
        binlog_server: Server, bschema: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file of the window gone when the second pass opens it (purged, moved): the step fails
    with one line naming it and what was committed before — not an internal error."""
    inc = make_incident(binlog_server, bschema, tmp_path / "dump.sql")
    arch = _archive(binlog_server, tmp_path)
    disaster(binlog_server, inc)
    _between_passes(monkeypatch, lambda: (arch / inc.end[0]).unlink())
    res = _replay(binlog_server, inc, str(arch))
    assert res.status is Status.FAILED, res.msg
    assert f"{inc.end[0]} cannot be read" in res.msg and "internal" not in res.msg.lower(), res.msg
    assert "\n" not in res.msg and "Traceback" not in res.msg
    assert res.data["transactions"] == 0
    assert "0 transaction(s) committed before it" in (res.evidence or "")
