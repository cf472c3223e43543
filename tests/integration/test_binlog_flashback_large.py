"""binlog_flashback of a transaction large enough to span several rows events (a 2000-row
UPDATE, a 3000-row DELETE): every row comes back, not only those of the event that ends the
statement. Before the fix, each inverse event carried the end-of-statement flag; the server
released the table map at the first one and dropped the rest without an error, while the step
said "reverted 2000 row(s)" (found by the emergency SOP's P1 test on the lab's shop)."""

from __future__ import annotations

import pytest

from engine.actions.binlog_find import BinlogFind
from engine.actions.binlog_flashback import BinlogFlashback
from engine.model import Status
from tests.integration.binlog_helpers import Server, ctx_for
from tests.integration.test_dr_actions import run_step

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("bad", ["UPDATE o SET status = 'new'", "DELETE FROM o WHERE id > 10"])
def test_a_transaction_of_many_rows_events_is_reverted_whole(binlog_server: Server, bschema: str, bad: str) -> None:
    srv = binlog_server
    srv.execute("CREATE TABLE o (id INT PRIMARY KEY, status ENUM('new','paid','shipped') NOT NULL, note VARCHAR(40));"
                "INSERT INTO o SELECT seq, ELT(1 + seq % 3, 'new','paid','shipped'), CONCAT('order ', seq) FROM seq_1_to_3000",
                bschema)
    want = srv.query("SELECT id, status, note FROM o ORDER BY id", schema=bschema)
    start = srv.query("SHOW MASTER STATUS")[0]
    srv.execute(bad, bschema)
    found = run_step(BinlogFind, {"schema": bschema, "start": {"file": start[0], "pos": start[1]}, "rows": 100}, ctx_for(srv))
    assert found.status is Status.OK and found.data["first"]["rows"] >= 2000, found.msg
    res = run_step(BinlogFlashback, {"event": found.data["first"], "schema": bschema}, ctx_for(srv))
    assert res.status is Status.CHANGED, res.msg
    assert srv.query("SELECT id, status, note FROM o ORDER BY id", schema=bschema) == want
