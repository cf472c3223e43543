"""mysql_facts and disk_space on the real MariaDB; the identity guard on the private lab
server (its steps are stop_writes and resume_writes, which fence a server: never the machine's,
shared by everyone's tests; test_fence_actions.py has the fence itself).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest

from tests.datasets import DATASETS
from engine.actions.base import Action
from engine.actions.disk_space import DiskSpace
from engine.actions.mysql_facts import MysqlFacts
from engine.actions.resume_writes import ResumeWrites
from engine.actions.stop_writes import StopWrites
from engine.mysql.fence import read_fence_state
from engine.run.context import ActionContext, Connections
from engine.errors import ActionError
from engine.model import Host, Status, StepResult
from tests.conftest import MYSQL_HOST, MYSQL_PASSWORD, MYSQL_PORT, MYSQL_USER

pytestmark = pytest.mark.integration
DATASET = str(DATASETS / "employees-10k.sql.gz")


def make_ctx(host_vars: dict[str, Any] | None = None, *, run_state: dict[str, Any] | None = None,
             name: str = "db1", connection: str = "local", step_key: str = "stage/step") -> ActionContext:
    base: dict[str, Any] = {"mysql_host": MYSQL_HOST, "mysql_port": MYSQL_PORT, "mysql_user": MYSQL_USER}
    if MYSQL_PASSWORD:
        base["mysql_password"] = MYSQL_PASSWORD
    return ctx_of({**base, **(host_vars or {})}, run_state=run_state, name=name, connection=connection, step_key=step_key)


def ctx_of(host_vars: dict[str, Any], *, run_state: dict[str, Any] | None = None, name: str = "db1",
           connection: str = "local", step_key: str = "stage/step") -> ActionContext:
    """The context of one step on a host with exactly these vars, in a run of its own."""
    host = Host(name=name, vars=host_vars, groups=(), connection=connection)
    return ActionContext(host=host, conns=Connections(host), vars={}, run_id="t" + uuid.uuid4().hex[:12],
                         check_mode=False, step_key=step_key, source=None,
                         run_state={} if run_state is None else run_state)


def run_step(cls: type[Action], args: dict[str, Any], ctx: ActionContext) -> StepResult:
    """What the executor does: probe; done → ok; else apply and probe again (must converge)."""
    action = cls(args, ctx)
    before = action.probe()
    if before is not None and before.done:
        return StepResult(Status.OK, msg="nothing to do", data=dict(before.state))
    result = action.apply()
    if cls.mutating and before is not None and not result.failed:
        after = cls(args, ctx).probe()
        assert after is not None and after.done, f"{cls.name} did not converge: {after}"
    return result


@pytest.fixture
def lab_vars(lab_server: tuple[str, int]) -> Iterator[dict[str, Any]]:
    """Host vars of the lab server; whatever happens in the test, it is writable afterwards."""
    _, port = lab_server
    try:
        yield {"mysql_port": port, "mysql_user": "root", "mysql_password": ""}
    finally:
        conn = pymysql.connect(host=MYSQL_HOST, port=port, user="root", autocommit=True)
        with conn.cursor() as cur:
            cur.execute("SET GLOBAL read_only = OFF")
        conn.close()


# --------------------------------------------------------------------------- mysql_facts


def test_facts_known_values(schema: str, db: pymysql.connections.Connection) -> None:
    with db.cursor() as cur:
        cur.execute(f"CREATE TABLE `{schema}`.t (id INT PRIMARY KEY, v VARCHAR(20))")
        cur.execute(f"INSERT INTO `{schema}`.t SELECT seq, 'x' FROM `{schema}`.seq_1_to_1000")
        cur.execute(f"ANALYZE TABLE `{schema}`.t")
        cur.fetchall()
        cur.execute("SELECT @@datadir, @@hostname, @@server_id")
        datadir, hostname, server_id = cur.fetchone()
    ctx = make_ctx()
    res = run_step(MysqlFacts, {"schemas": [schema]}, ctx)
    f = res.data
    assert res.status is Status.OK
    json.dumps(f)  # JSON-able: no Decimal, bytes or datetime
    assert f["flavor"] == "mariadb" and f["version"].startswith("10.11")
    assert f["datadir"] == datadir and f["hostname"] == hostname and f["server_id"] == server_id
    assert f["server_uuid"] is None and f["super_read_only"] is None  # MariaDB has neither
    assert f["read_only"] is False and f["role"] == "primary" and f["replication"] is None
    assert f["tables"][f"{schema}.t"]["rows"] == 1000
    assert f["tables"][f"{schema}.t"]["data_bytes"] > 0
    assert f["schemas"][schema]["tables"] == 1
    assert set(f["binlog"]) >= {"enabled", "file", "position", "gtid"}
    assert f["innodb"]["lsn"] > 0 and f["innodb"]["checkpoint_age"] is not None
    assert f["uptime_s"] > 0 and f["connections"] >= 1
    assert ctx.run_state["identity"]["db1"]["hostname"] == hostname


def test_facts_default_skips_system_schemas() -> None:
    f = MysqlFacts({}, make_ctx()).apply().data
    assert not any(k.split(".")[0] in ("mysql", "sys", "performance_schema") for k in f["tables"])


# --------------------------------------------------------------------------- disk_space


def test_disk_space_fails_on_small_fs(small_fs: str) -> None:
    res = run_step(DiskSpace, {"path": small_fs, "need": "20M"}, make_ctx())
    assert res.status is Status.FAILED and res.data["ok"] is False
    assert res.data["free_bytes"] == 8 * 1024**2 and res.data["need_bytes"] == 20 * 1024**2
    assert res.msg == (f"need 20.0 MiB (+10% margin) at {small_fs} on db1, free 8.0 MiB: "
                       f"free at least 14.0 MiB on the filesystem of {small_fs}")


def test_disk_space_passes_and_walks_up(small_fs: str) -> None:
    path = os.path.join(small_fs, "not", "yet")
    res = run_step(DiskSpace, {"path": path, "need": 1048576, "margin": "50%"}, make_ctx())
    assert res.status is Status.OK and res.data["ok"]
    assert res.data["checked_path"] == small_fs and res.data["margin"] == 0.5
    assert res.data["need_with_margin_bytes"] == 1572864
    assert any("nearest existing parent" in n for n in res.data["notes"])


def test_disk_space_big_fs() -> None:
    res = run_step(DiskSpace, {"path": "/var/lib/mysql", "need": "1G"}, make_ctx())
    assert res.status is Status.OK and res.data["free_bytes"] > 1024**3


def test_disk_space_need_for_restore(small_fs: str) -> None:
    # employees-10k: 5,662,204 bytes of SQL x 1.16 = 6.3 MiB; +10% fits in 8 MiB, +50% does not.
    ok = run_step(DiskSpace, {"path": small_fs, "need_for_restore": DATASET}, make_ctx())
    assert ok.status is Status.OK, ok.msg
    assert ok.data["breakdown"][0]["sql_bytes"] == 5662204
    assert "exact" in ok.data["breakdown"][0]["estimate"]
    bad = run_step(DiskSpace, {"path": small_fs, "need_for_restore": DATASET, "margin": "50%"}, make_ctx())
    assert bad.status is Status.FAILED


def test_disk_space_need_for_snapshot(schema: str, db: pymysql.connections.Connection, small_fs: str) -> None:
    with db.cursor() as cur:
        cur.execute(f"CREATE TABLE `{schema}`.big (id INT PRIMARY KEY, pad CHAR(255)) ENGINE=InnoDB")
        cur.execute(f"INSERT INTO `{schema}`.big SELECT seq, REPEAT('x', 255) FROM `{schema}`.seq_1_to_40000")
        cur.execute(f"ANALYZE TABLE `{schema}`.big")
        cur.fetchall()
    res = run_step(DiskSpace, {"path": small_fs, "need_for_snapshot": {"schema": schema, "tables": ["big"]}}, make_ctx())
    assert res.status is Status.FAILED and res.data["need_bytes"] > 8 * 1024**2
    # a dropped table (the incident) is nothing to copy: counted as 0 bytes and said, never an error
    gone = run_step(DiskSpace, {"path": small_fs, "need_for_snapshot": {"schema": schema, "tables": ["big", "nope"]}}, make_ctx())
    assert gone.data["need_bytes"] == res.data["need_bytes"] and gone.data["breakdown"][0]["missing_tables"] == ["nope"]
    assert any("no table nope" in w and "counted as 0 bytes" in w for w in gone.warnings)


def test_disk_space_over_ssh(sshd: Any, small_fs: str) -> None:
    ctx = make_ctx({"ssh_host": sshd.host, "ssh_port": sshd.port, "ssh_user": sshd.user, "ssh_key": sshd.key_file,
                    "ssh_known_hosts": sshd.known_hosts, "ssh_config": sshd.config_file}, connection="ssh")
    try:
        res = run_step(DiskSpace, {"path": small_fs, "need": "20M"}, ctx)
        assert res.status is Status.FAILED and res.data["free_bytes"] == 8 * 1024**2
        res = run_step(DiskSpace, {"path": small_fs, "need_for_restore": DATASET}, ctx)
        assert res.status is Status.OK
    finally:
        ctx.conns.close()


# --------------------------------------------------------------------------- identity guard


def test_guard_refuses_pinned_wrong_host(lab_vars: dict[str, Any]) -> None:
    ctx = make_ctx({**lab_vars, "mysql_identity": "not-this-host"})
    with pytest.raises(ActionError) as err:
        StopWrites({}, ctx).apply()
    assert err.value.message.startswith(
        "refusing to stop writes on db1: expected not-this-host (pinned by mysql_identity in the inventory), but the server is ")
    assert read_fence_state(ctx.sql()).read_only is False  # nothing changed


def test_guard_refuses_identity_from_earlier_in_run(lab_vars: dict[str, Any]) -> None:
    state = {"identity": {"db1": {"hostname": "db-elsewhere", "server_uuid": None, "server_id": 77, "source": "mysql_facts"}}}
    with pytest.raises(ActionError, match=r"expected db-elsewhere \(server_id 77\) \(gathered by mysql_facts earlier in this run\)"):
        ResumeWrites({}, make_ctx(lab_vars, run_state=state)).apply()


def test_guard_accepts_the_right_host(lab_vars: dict[str, Any]) -> None:
    hostname = MysqlFacts({}, make_ctx(lab_vars)).apply().data["hostname"]
    ctx = make_ctx({**lab_vars, "mysql_identity": hostname.upper()})  # host names compare case-insensitively
    assert ResumeWrites({"to": {"read_only": False}}, ctx).apply().status is Status.OK
    assert ctx.run_state["identity"]["db1"]["hostname"] == hostname
