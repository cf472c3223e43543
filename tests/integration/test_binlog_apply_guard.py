"""The server leaves rows events out silently when their Table_map comes after the statement's
first rows event (found while making replay fast: only the orders of each transaction were
written). The applier checks the session's handler counters after every BINLOG statement: a
replay built that way fails, names the transactions and commits nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.actions.binlog_replay import BinlogReplay
from engine.errors import ActionError
from engine.mysql.binlog import apply as A
from engine.mysql.binlog import build
from tests.integration.binlog_helpers import TABLES, Server, checksums, ctx_for, disaster, make_incident

pytestmark = pytest.mark.integration


def _late_maps(self: A.Applier, items: list[tuple[Any, Any]]) -> list[str]:
    """The defect: each Table_map right before its rows, one statement for all (STMT_END_F last only)."""
    evs: list[bytes] = []
    revs = [rev for rev, _ in items]
    for i, rev in enumerate(revs):
        evs.append(rev.table.event.data)
        evs.append(build.with_stmt_end(rev.event.data, rev, self._f(), i == len(revs) - 1))
    return [build.binlog_statement(evs)]


def test_rows_left_out_are_caught(binlog_server: Server, bschema: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inc = make_incident(binlog_server, bschema, tmp_path / "dump.sql", before=3, after=0)
    disaster(binlog_server, inc)
    restored = checksums(binlog_server, inc.schema)
    monkeypatch.setattr(A.Applier, "_statements", _late_maps)
    args = {"schema": inc.schema, "tables": TABLES, "from_dump": inc.dump, "skip": [{"gtid": inc.gtid}],
            "stop_before": {"file": inc.end[0], "pos": inc.end[1]}}
    with pytest.raises(ActionError, match=r"the server left rows out applying the transactions at .*inserts: \d+ in the events, \d+ applied"):
        BinlogReplay(args, ctx_for(binlog_server)).apply()
    assert checksums(binlog_server, inc.schema) == restored  # the group was rolled back
