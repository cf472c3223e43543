"""``verify`` on the real MariaDB: every planted problem found, nothing else; a clean schema passes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest

from engine.actions.verify import Verify
from engine.run.context import ActionContext, Connections
from engine.model import Host, Status, StepResult
from tests.conftest import MYSQL_HOST, MYSQL_PASSWORD, MYSQL_PORT, MYSQL_USER, root_execute
from tests.integration.verify_fixtures import build, drop_copy

pytestmark = pytest.mark.integration


def make_ctx(*, check_mode: bool = False, timeout: float | None = None, peers: dict[str, Host] | None = None,
             run_id: str | None = None) -> ActionContext:
    base: dict[str, Any] = {"mysql_host": MYSQL_HOST, "mysql_port": MYSQL_PORT, "mysql_user": MYSQL_USER}
    if MYSQL_PASSWORD:
        base["mysql_password"] = MYSQL_PASSWORD
    host = Host(name="db1", vars=base, groups=(), connection="local")
    opened: dict[str, Connections] = {}

    def peer(name: str) -> Connections:
        assert peers is not None
        return opened.setdefault(name, Connections(peers[name]))

    return ActionContext(host=host, conns=Connections(host), vars={}, run_id=run_id or "t" + uuid.uuid4().hex[:12],
                         check_mode=check_mode, step_key="verify/consistency", source=None, timeout=timeout,
                         peers=peer if peers else None)


def verify(args: dict[str, Any], **kw: Any) -> StepResult:
    ctx = make_ctx(**kw)
    try:
        return Verify(args, ctx).apply()
    finally:
        ctx.conns.close()


def by_name(result: StepResult) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in result.data["checks"]}


def not_passing(result: StepResult) -> dict[str, str]:
    return {c["name"]: c["result"] for c in result.data["checks"] if c["result"] != "pass"}


@pytest.fixture
def planted(db: pymysql.connections.Connection, schema: str) -> Iterator[str]:
    build(db, schema, planted=True)
    yield schema
    drop_copy(db, schema)


@pytest.fixture
def clean(db: pymysql.connections.Connection, schema: str) -> Iterator[str]:
    build(db, schema, planted=False)
    yield schema
    drop_copy(db, schema)


ALL = {
    "foreign_keys": True,
    "required": {"users": ["email", "name"], "orders": ["total"]},
    "rules": [{"name": "no negative totals", "sql": "SELECT COUNT(*) FROM orders WHERE total < 0", "severity": "fail", "table": "orders"}],
    "parallel": 3,
}


def test_planted_problems_are_found_exactly(planted: str) -> None:
    res = verify({"schema": planted, **ALL, "checksums": {"against_schema": f"{planted}_copy", "chunk_rows": 50}})
    assert res.status is Status.FAILED
    assert not_passing(res) == {
        "fk shipments.fk_ship_item": "fail",       # composite key (2, 9)
        "fk staff.fk_staff_manager": "fail",       # self-reference to 99
        "required users.email": "fail",            # ''
        "no negative totals": "fail",
        "checksum orders vs " + planted + "_copy": "fail",
        "checksum logs vs " + planted + "_copy": "fail",  # {a,b,b} vs {a,c,c}: a XOR would cancel the pairs
    }
    checks = by_name(res)
    ship = checks["fk shipments.fk_ship_item"]
    assert (ship["count"], ship["sample"], ship["kind"], ship["table"]) == (1, [{"id": 2, "order_id": 2, "line": 9}], "foreign_key", "shipments")
    assert checks["fk staff.fk_staff_manager"]["sample"] == [{"id": 5, "manager_id": 99}]
    assert checks["fk orders.fk_orders_user"]["count"] == 0  # order 7's NULL user_id is no orphan
    assert checks["required users.email"]["count"] == 1 and checks["required users.email"]["sample"] == [{"id": 3, "email": ""}]
    assert checks["required users.name"]["result"] == "pass"
    assert checks["no negative totals"]["count"] == 1
    orders = checks["checksum orders vs " + planted + "_copy"]
    assert orders["count"] == 1
    assert orders["sample"] == [{"id": 150, "diff": "differs"}]
    assert "id 150 (differs)" in orders["detail"] and "id in (100, 150]" in orders["detail"]
    logs = checks["checksum logs vs " + planted + "_copy"]
    assert logs["count"] == 4 and {s["msg"]: s["diff"] for s in logs["sample"]} == {
        "b": f"2 here, 0 in {planted}_copy", "c": f"0 here, 2 in {planted}_copy"}
    assert checks["checksum order_items vs " + planted + "_copy"]["result"] == "pass"
    assert res.data["summary"] == {"pass": len(res.data["checks"]) - 6, "fail": 6, "warn": 0}
    assert res.data["rows_checked"] > 0 and res.data["rows_per_s"] > 0
    for name in ("fk shipments.fk_ship_item", "no negative totals", "checksum orders"):
        assert name in res.msg


def test_clean_schema_passes(clean: str) -> None:
    res = verify({"schema": clean, **ALL, "required": "auto", "checksums": {"against_schema": f"{clean}_copy", "chunk_rows": 7}})
    assert res.status is Status.OK, res.msg
    assert not_passing(res) == {}
    kinds = {c["kind"] for c in res.data["checks"]}
    assert kinds == {"foreign_key", "required", "checksum", "rule"}
    assert len([c for c in res.data["checks"] if c["kind"] == "foreign_key"]) == 4


def test_required_auto_finds_empty_strings_and_zero_dates(planted: str) -> None:
    # a lax sql_mode lets a zero date in (the session of a careless load)
    conn = pymysql.connect(host=MYSQL_HOST, port=MYSQL_PORT, user=MYSQL_USER, password=MYSQL_PASSWORD, autocommit=True)
    with conn.cursor() as cur:
        cur.execute("SET SESSION sql_mode = ''")
        cur.execute(f"UPDATE `{planted}`.users SET born = '0000-00-00' WHERE id = 4")
    conn.close()
    res = verify({"schema": planted, "required": "auto", "tables": ["users"]})
    assert res.status is Status.OK  # auto is a heuristic: it warns
    assert not_passing(res) == {"required users.email": "warn", "required users.born": "warn"}
    assert by_name(res)["required users.born"]["sample"] == [{"id": 4, "born": "0000-00-00"}]


def test_row_counts_explicit_and_from_a_restore_result(planted: str) -> None:
    res = verify({"schema": planted, "row_counts": {"users": 10, "orders": 199, "nope": 1}})
    assert not_passing(res) == {"rows orders": "fail", "row count nope": "fail"}
    assert by_name(res)["rows orders"]["count"] == 200 and by_name(res)["rows orders"]["expected"] == 199
    restore = {"tables": {"users": {"rows": 10, "status": "loaded"}, "staff": {"rows": 4, "status": "loaded"},
                          "logs": {"rows": 0, "status": "failed"}, "orders": {"rows": 0, "status": "skipped"}}}
    res = verify({"schema": planted, "row_counts": {"from": restore}})
    assert not_passing(res) == {"rows staff": "fail", "rows logs": "fail"}
    res = verify({"schema": planted, "row_counts": {"from": restore, "compare": "at_least"}})
    assert not_passing(res) == {"rows logs": "fail"}


def test_a_rule_that_runs_past_the_timeout_is_stopped_by_the_server(planted: str) -> None:
    res = verify({"schema": planted, "rules": [{"name": "slow", "sql": "SELECT SLEEP(30)"},
                                                {"name": "fast", "sql": "SELECT 0"}]}, timeout=1)
    checks = by_name(res)
    assert checks["slow"]["result"] == "fail" and "time limit" in checks["slow"]["error"]
    assert checks["fast"]["result"] == "pass"


def test_rule_severity_warn_does_not_fail_the_step(planted: str) -> None:
    res = verify({"schema": planted, "rules": [{"name": "negative", "sql": "SELECT COUNT(*) FROM orders WHERE total < 0",
                                                "severity": "warn"}]})
    assert res.status is Status.OK and res.data["summary"] == {"pass": 0, "fail": 0, "warn": 1}
    assert any("negative" in w for w in res.warnings)


def test_record_to_writes_verdicts_once_per_run(planted: str, db: pymysql.connections.Connection) -> None:
    run_id = "rec-" + uuid.uuid4().hex[:8]
    target = f"{planted}.consistency_check_results"
    args = {"schema": planted, "foreign_keys": True, "record_to": target, "tables": ["staff", "orders"]}
    for _ in range(2):  # a resumed run records its verdicts once
        res = verify(args, run_id=run_id)
        assert res.data["recorded"] == {"table": target, "rows": 2}
    with db.cursor() as cur:
        cur.execute(f"SELECT run_id, check_name, check_result, error_count FROM `{planted}`.consistency_check_results ORDER BY check_name")
        got = cur.fetchall()
    assert got == ((run_id, "fk orders.fk_orders_user", "PASS", 0), (run_id, "fk staff.fk_staff_manager", "FAIL", 1))


def test_record_to_an_existing_seed_table_uses_its_columns(planted: str, db: pymysql.connections.Connection) -> None:
    with db.cursor() as cur:  # the seed's own layout (§9.2)
        cur.execute(f"CREATE TABLE `{planted}`.ccr (check_id INT AUTO_INCREMENT PRIMARY KEY, check_name VARCHAR(100),"
                    " check_result ENUM('PASS','FAIL','WARNING'), error_count INT DEFAULT 0,"
                    " check_time TIMESTAMP DEFAULT CURRENT_TIMESTAMP, description TEXT)")
    res = verify({"schema": planted, "foreign_keys": True, "tables": ["staff"], "record_to": f"{planted}.ccr"})
    assert res.data["recorded"]["rows"] == 1
    with db.cursor() as cur:
        cur.execute(f"SELECT check_name, check_result, error_count, description FROM `{planted}`.ccr")
        (name, result, count, desc), = cur.fetchall()
    assert (name, result, count) == ("fk staff.fk_staff_manager", "FAIL", 1) and "99" in desc


def test_check_mode_runs_checks_and_skips_record_to(planted: str, db: pymysql.connections.Connection) -> None:
    res = verify({"schema": planted, "foreign_keys": True, "record_to": f"{planted}.results"}, check_mode=True)
    assert res.status is Status.FAILED and "not recorded" in res.msg and res.data["recorded"] is None
    with db.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = 'results'", [planted])
        assert cur.fetchone() == (0,)


def test_checksums_against_another_host(planted: str, sshd: Any) -> None:
    """replica1 is the same MariaDB reached through the test sshd's tunnel, its copy schema mapped."""
    replica = Host(name="replica1", groups=(), connection="ssh", vars={
        "ssh_host": sshd.host, "ssh_port": sshd.port, "ssh_user": sshd.user, "ssh_key": sshd.key_file,
        "ssh_known_hosts": sshd.known_hosts, "ssh_config": sshd.config_file,
        "mysql_via": "tunnel", "mysql_port": MYSQL_PORT, "mysql_user": MYSQL_USER})
    res = verify({"schema": planted, "checksums": {"against_host": "replica1", "against_schema": f"{planted}_copy",
                                                   "chunk_rows": 50, "tables": ["orders", "staff"]}},
                 peers={"replica1": replica})
    assert not_passing(res) == {f"checksum orders vs replica1:{planted}_copy": "fail"}
    assert by_name(res)[f"checksum orders vs replica1:{planted}_copy"]["sample"] == [{"id": 150, "diff": "differs"}]


def test_missing_copy_and_different_columns_fail(planted: str) -> None:
    root_execute(f"ALTER TABLE `{planted}_copy`.staff ADD COLUMN extra INT NULL")
    root_execute(f"DROP TABLE `{planted}_copy`.logs")
    res = verify({"schema": planted, "checksums": {"against_schema": f"{planted}_copy", "tables": ["staff", "logs", "users"]}})
    checks = by_name(res)
    assert "columns differ" in checks[f"checksum staff vs {planted}_copy"]["detail"]
    assert "has no table logs" in checks[f"checksum logs vs {planted}_copy"]["detail"]
    assert checks[f"checksum users vs {planted}_copy"]["result"] == "pass"


def test_against_the_runs_snapshot(planted: str, db: pymysql.connections.Connection) -> None:
    from engine.actions.snapshot import Snapshot
    from engine.mysql.snapshots import snapshot_schema

    run_id = "snap-" + uuid.uuid4().hex[:8]
    ctx = make_ctx(run_id=run_id)
    try:
        assert not Snapshot({"schema": planted, "tables": ["orders", "staff"], "chunk_rows": 64}, ctx).apply().failed
        with db.cursor() as cur:  # after the snapshot: one order changes, one staff row goes
            cur.execute(f"UPDATE `{planted}`.orders SET total = 1 WHERE id = 180")
            cur.execute(f"DELETE FROM `{planted}`.staff WHERE id = 4")
        res = verify({"schema": planted, "row_counts": {"from_snapshot": True},
                      "checksums": {"against_snapshot": True, "chunk_rows": 50}}, run_id=run_id)
        assert not_passing(res) == {"rows staff": "fail", "checksum orders vs snapshot": "fail", "checksum staff vs snapshot": "fail"}
        assert by_name(res)["checksum orders vs snapshot"]["sample"] == [{"id": 180, "diff": "differs"}]
        assert by_name(res)["checksum staff vs snapshot"]["sample"] == [{"id": 4, "diff": "only in snapshot"}]
        assert by_name(res)["rows staff"]["expected"] == 5
    finally:
        root_execute(f"DROP DATABASE IF EXISTS `{snapshot_schema(run_id)}`")
        ctx.conns.close()


def test_no_snapshot_in_this_run_is_an_error(planted: str) -> None:
    from engine.errors import ActionError

    with pytest.raises(ActionError, match="this run took no snapshot"):
        verify({"schema": planted, "checksums": {"against_snapshot": True}})


def test_a_missing_schema_is_an_error() -> None:
    from engine.errors import ActionError

    with pytest.raises(ActionError, match="does not exist"):
        verify({"schema": "rbt_no_such_schema_" + uuid.uuid4().hex[:6], "foreign_keys": True})


def test_check_mode_cannot_compare_with_a_snapshot_not_taken_yet(planted: str) -> None:
    res = verify({"schema": planted, "checksums": {"against_snapshot": True}}, check_mode=True)
    assert res.status is Status.SKIPPED and "this run took no snapshot" in res.msg


def test_check_mode_after_a_restore_that_only_planned(planted: str) -> None:
    plan = {"tables": {"users": {"rows": 10, "status": "planned"}}}
    res = verify({"schema": planted, "row_counts": {"from": plan}}, check_mode=True)
    assert res.status is Status.SKIPPED and "not loaded yet" in res.msg
    res = verify({"schema": planted, "row_counts": {"from": plan}})
    assert not_passing(res) == {"rows users": "fail"}  # outside check mode, "planned" is not "loaded"


def test_a_differing_chunk_of_a_composite_key(planted: str) -> None:
    root_execute(f"UPDATE `{planted}_copy`.order_items SET sku = 'zz' WHERE order_id = 15 AND line = 2")
    res = verify({"schema": planted, "checksums": {"against_schema": f"{planted}_copy", "tables": ["order_items"], "chunk_rows": 10}})
    (check,) = res.data["checks"]
    assert check["sample"] == [{"order_id": 15, "line": 2, "diff": "differs"}]
    assert "order_id 15 line 2 (differs)" in check["detail"]
    assert "(order_id, line) in ((10, 2), (15, 2)]" in check["detail"]


def test_after_a_real_restore(db: pymysql.connections.Connection, schema: str, tmp_path: Any) -> None:
    """restore → verify: counts from the restore's own result, orphans, checksums against the source."""
    from tests.integration.restore_helpers import dump, restore

    build(db, schema, planted=False, copy=False)
    target = schema + "_r"
    try:
        r = restore({"file": dump(schema, str(tmp_path / "d.sql")), "file_on": "control", "schema": target,
                     "schema_mismatch": "create_missing"})
        assert not r.failed, r.msg
        args = {"schema": target, "foreign_keys": True, "row_counts": {"from": r.registered()},
                "checksums": {"against_schema": schema, "chunk_rows": 64}}
        res = verify(args)
        assert res.status is Status.OK, res.msg
        assert {c["kind"] for c in res.data["checks"]} == {"foreign_key", "row_count", "checksum"}
        assert by_name(res)["rows orders"]["expected"] == 200
        root_execute(f"DELETE FROM `{target}`.orders WHERE id = 199")
        assert not_passing(verify(args)) == {"rows orders": "fail", f"checksum orders vs {schema}": "fail"}
    finally:
        root_execute(f"DROP DATABASE IF EXISTS `{target}`")
