"""``restore`` on the real MariaDB: dumps made by mariadb-dump in every common option set from
an awkward schema come back checksum-identical without firing the trigger; conflict and
schema-mismatch policies against a damaged copy; refusals write nothing."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from engine.errors import ActionError, RunbookError
from engine.model import Status
from tests.integration.restore_helpers import AWKWARD, BASE_TABLES, checksums, dump, execute, progress_rows, query, restore

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    name = f"rbt_src_{uuid.uuid4().hex[:8]}"
    execute(None, f"CREATE DATABASE `{name}`")
    execute(name, AWKWARD)
    yield name
    execute(None, f"SET foreign_key_checks = 0; DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture
def target() -> Iterator[str]:
    name = f"rbt_dst_{uuid.uuid4().hex[:8]}"
    yield name
    execute(None, f"SET foreign_key_checks = 0; DROP DATABASE IF EXISTS `{name}`")


OPTION_SETS = [
    (), ("--skip-extended-insert",), ("--complete-insert",), ("--hex-blob",), ("--insert-ignore",), ("--replace",),
    ("--routines", "--triggers", "--events"), ("--single-transaction", "--tz-utc"), ("--databases",), ("--skip-tz-utc",),
]


@pytest.mark.parametrize("options", OPTION_SETS, ids=lambda o: " ".join(o) or "defaults")
def test_roundtrip_awkward(source: str, target: str, tmp_path: str, options: tuple[str, ...]) -> None:
    path = dump(source, os.path.join(tmp_path, "d.sql.gz" if "--hex-blob" in options else "d.sql"), *options, "--routines")
    res = restore({"file": path, "schema": target, "schema_mismatch": "create_missing", "file_on": "control"})
    assert res.status is Status.CHANGED, res.msg
    assert checksums(target, BASE_TABLES) == checksums(source, BASE_TABLES)
    # the trigger came back but did not fire during the load: its log equals the source's
    assert query(f"SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = '{target}'")[0][0] == 1
    assert query(f"SELECT COUNT(*) FROM `{target}`.trigger_log")[0][0] == query(f"SELECT COUNT(*) FROM `{source}`.trigger_log")[0][0]
    assert query(f"SELECT COUNT(*) FROM `{target}`.child_names")[0][0] == 3
    # the sequence came back past every value it had handed out (100): mariadb-dump's SETVAL position
    assert query(f"SELECT NEXTVAL(`{target}`.ticket_no)")[0][0] >= 105
    assert res.data["core_ok"] and not res.data["partial"] and res.data["failed_tables"] == []
    order = res.data["load_order"]
    assert order.index("parent") < order.index("child")


def test_rerun_same_step_is_done(source: str, target: str, tmp_path: str) -> None:
    path = dump(source, os.path.join(tmp_path, "d.sql"))
    run_id = "t" + uuid.uuid4().hex[:12]
    args = {"file": path, "schema": target, "schema_mismatch": "create_missing", "file_on": "control"}
    first = restore(args, run_id=run_id)
    assert first.status is Status.CHANGED, first.msg
    second = restore(args, run_id=run_id)
    assert second.status is Status.OK and second.data["rows"] == first.data["rows"]
    rows = progress_rows(run_id)
    assert len(rows) == len(set((r[0], r[1], r[2]) for r in rows)) and sum(r[3] for r in rows) == first.data["rows"]


def _damaged(source: str, target: str, tmp_path: str) -> str:
    path = dump(source, os.path.join(tmp_path, "d.sql"))
    assert restore({"file": path, "schema": target, "schema_mismatch": "create_missing", "file_on": "control"}).status is Status.CHANGED
    execute(target, "SET foreign_key_checks = 0; DELETE FROM parent WHERE id = 4; UPDATE parent SET name = 'changed' WHERE id = 2;"
                    " INSERT INTO parent VALUES (99, 'extra', NULL); DELETE FROM nopk WHERE b = 'x'")
    return path


@pytest.mark.parametrize("conflict", ["error", "ignore", "replace", "upsert"])
def test_on_conflict(source: str, target: str, tmp_path: str, conflict: str) -> None:
    path = _damaged(source, target, tmp_path)
    if conflict == "replace":  # refused over a CASCADE parent (next test): make parent a plain table
        execute(target, "ALTER TABLE child DROP FOREIGN KEY fk_child_parent")
    res = restore({"file": path, "schema": target, "tables": ["parent"], "on_conflict": conflict, "file_on": "control"})
    names = dict(query(f"SELECT id, name FROM `{target}`.parent"))
    if conflict == "error":
        assert res.status is Status.FAILED
        assert "1062" in res.msg and "Duplicate entry" in res.msg and "PRIMARY" in res.msg and "parent" in res.msg
        assert 4 not in names  # the failed batch rolled back whole
        return
    assert res.status is Status.CHANGED, res.msg
    assert sorted(names) == [1, 2, 3, 4, 99]
    expected = {"ignore": "changed", "replace": "emoji 😀 ünï", "upsert": "emoji 😀 ünï"}[conflict]
    assert names[2] == expected
    t = res.data["tables"]["parent"]
    assert t["rows"] == (1 if conflict == "ignore" else 4)
    assert t["ignored"] == (3 if conflict == "ignore" else 0)


def test_replace_refused_over_cascade_parent(source: str, target: str, tmp_path: str) -> None:
    path = _damaged(source, target, tmp_path)
    before = checksums(target, ["parent", "child"])
    with pytest.raises(ActionError) as exc:
        restore({"file": path, "schema": target, "tables": ["parent"], "on_conflict": "replace", "file_on": "control"})
    assert "fk_child_parent" in exc.value.message and "upsert" in exc.value.message
    assert checksums(target, ["parent", "child"]) == before


def test_schema_mismatch_error_and_recreate(source: str, target: str, tmp_path: str) -> None:
    path = _damaged(source, target, tmp_path)
    execute(target, "ALTER TABLE nopk ADD COLUMN extra INT NULL")
    with pytest.raises(ActionError) as exc:
        restore({"file": path, "schema": target, "tables": ["nopk"], "file_on": "control"})
    assert "extra" in exc.value.message and "nothing was written" in exc.value.message
    with pytest.raises(ActionError) as exc:  # recreate drops live tables: only over this run's snapshot (issue 15 item 3)
        restore({"file": path, "schema": target, "schema_mismatch": "recreate", "file_on": "control"})
    assert "took no snapshot" in exc.value.message and "nothing was written" in exc.value.message
    res = restore({"file": path, "schema": target, "schema_mismatch": "recreate", "file_on": "control",
                   "allow_without_snapshot": True})
    assert res.status is Status.CHANGED, res.msg
    assert checksums(target, BASE_TABLES) == checksums(source, BASE_TABLES)


def test_schema_mismatch_common_columns(source: str, target: str, tmp_path: str) -> None:
    path = dump(source, os.path.join(tmp_path, "d.sql"), tables=["nopk"])
    execute(None, f"CREATE DATABASE `{target}`")
    execute(target, "CREATE TABLE nopk (b VARCHAR(20), added INT DEFAULT 7)")  # a dropped, b moved, added new
    res = restore({"file": path, "schema": target, "schema_mismatch": "common_columns", "file_on": "control"})
    assert res.status is Status.CHANGED, res.msg
    got = sorted(query(f"SELECT COALESCE(b, '-'), added FROM `{target}`.nopk"))
    assert got == [("-", 7), ("dup", 7), ("dup", 7), ("x", 7)]


def test_create_missing_only_creates(source: str, target: str, tmp_path: str) -> None:
    """A table missing beside existing ones is a mismatch (an empty target schema is not: issue 15 item 15)."""
    path = dump(source, os.path.join(tmp_path, "d.sql"))
    execute(None, f"CREATE DATABASE `{target}`")
    execute(target, "CREATE TABLE unrelated (id INT PRIMARY KEY)")
    with pytest.raises(ActionError) as exc:
        restore({"file": path, "schema": target, "file_on": "control"})
    assert "missing on the target" in exc.value.message and "create_missing" in exc.value.message
    assert query(f"SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{target}'")[0][0] == 1


@pytest.mark.parametrize("case", ["truncated_gz", "not_a_dump", "missing_table", "no_trailer"])
def test_bad_files_refused(source: str, target: str, tmp_path: str, case: str) -> None:
    path = dump(source, os.path.join(tmp_path, "d.sql.gz"))
    args = {"file": path, "schema": target, "schema_mismatch": "create_missing", "file_on": "control"}
    import gzip
    from pathlib import Path

    f = Path(path)
    if case == "truncated_gz":
        f.write_bytes(f.read_bytes()[:-40])
    elif case == "not_a_dump":
        f.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(4000))
    elif case == "no_trailer":
        text = gzip.decompress(f.read_bytes())
        f.write_bytes(gzip.compress(text[: text.rindex(b"-- Dump completed")]))
    else:
        args["tables"] = ["parent", "no_such_table"]
    with pytest.raises(RunbookError) as exc:
        restore(args)
    assert "nothing was written" in exc.value.render() or case == "not_a_dump"
    assert query("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", [target])[0][0] == 0


def test_target_trigger_not_fired_and_put_back(source: str, target: str, tmp_path: str) -> None:
    path = dump(source, os.path.join(tmp_path, "d.sql"), tables=["nopk"])
    execute(None, f"CREATE DATABASE `{target}`")
    execute(target, "CREATE TABLE nopk (a INT, b VARCHAR(20)); CREATE TABLE log (n INT);"
                    "CREATE TRIGGER nopk_ins AFTER INSERT ON nopk FOR EACH ROW INSERT INTO log VALUES (NEW.a)")
    res = restore({"file": path, "schema": target, "file_on": "control"})
    assert res.status is Status.CHANGED, res.msg
    assert query(f"SELECT COUNT(*) FROM `{target}`.nopk")[0][0] == 4
    assert query(f"SELECT COUNT(*) FROM `{target}`.log")[0][0] == 0
    execute(target, "INSERT INTO nopk VALUES (5, 'after')")  # the trigger is back and fires again
    assert query(f"SELECT n FROM `{target}`.log") == [(5,)]


def test_check_mode_plan_writes_nothing(source: str, target: str, tmp_path: str) -> None:
    from engine.actions.restore import Restore
    from tests.integration.test_dr_actions import make_ctx

    path = dump(source, os.path.join(tmp_path, "d.sql"))
    res = Restore({"file": path, "schema": target, "schema_mismatch": "create_missing", "file_on": "control"}, make_ctx()).check()
    assert res.status is Status.CHANGED
    lines = res.msg.splitlines()
    assert lines[0].startswith("check mode: would restore 8 table(s)")
    plan = [p["table"] for p in res.data["plan"]]
    assert plan.index("parent") < plan.index("child") and plan.index("tree") >= 0
    assert {p["table"]: p["rows"] for p in res.data["plan"]}["parent"] == 4
    assert any("cycle group" in p["strategy"] for p in res.data["plan"] if p["table"] == "cyc_a")
    assert query("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", [target])[0][0] == 0


def test_partial_success_and_1452(source: str, target: str, tmp_path: str) -> None:
    """child's parents are not on the target: 1452 names the constraint; child is not a core
    table, so the step succeeds as a partial restore (seed §7); as a core table it fails."""
    path = dump(source, os.path.join(tmp_path, "d.sql"), tables=["parent", "child", "nopk"])
    execute(None, f"CREATE DATABASE `{target}`")
    execute(target, "CREATE TABLE parent (id INT PRIMARY KEY, name VARCHAR(100) CHARACTER SET utf8mb4, note TEXT);"
                    "CREATE TABLE child (id INT PRIMARY KEY, parent_id INT, v VARCHAR(50), CONSTRAINT fk_child_parent"
                    " FOREIGN KEY (parent_id) REFERENCES parent (id) ON DELETE CASCADE)")
    args = {"file": path, "schema": target, "tables": ["child", "nopk"], "schema_mismatch": "create_missing", "file_on": "control",
            "core_tables": ["nopk"]}
    res = restore(args)
    assert res.status is Status.CHANGED, res.msg
    assert res.data["partial"] and res.data["core_ok"] and res.data["failed_tables"] == ["child"]
    assert res.data["tables"]["child"]["status"] == "failed" and "1452" in res.data["tables"]["child"]["error"]
    assert "fk_child_parent" in res.data["tables"]["child"]["error"]
    assert res.data["tables"]["nopk"]["status"] == "loaded" and res.data["tables"]["nopk"]["rows"] == 4
    assert any("partial restore" in w and "1452" in w for w in res.warnings)
    assert query(f"SELECT COUNT(*) FROM `{target}`.child")[0][0] == 0
    core = restore({**args, "core_tables": ["child"], "tables": ["child"]})
    assert core.status is Status.FAILED and "fk_child_parent" in core.msg and not core.data["core_ok"]


def test_access_denied_names_the_privilege(source: str, target: str, tmp_path: str) -> None:
    from engine.actions.restore import Restore
    from tests.integration.test_dr_actions import make_ctx, run_step

    path = dump(source, os.path.join(tmp_path, "d.sql"), tables=["nopk"])
    execute(None, f"CREATE DATABASE `{target}`")
    user, password = f"rbt_r_{uuid.uuid4().hex[:8]}", "pw-" + uuid.uuid4().hex[:10]
    execute(None, f"CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'; GRANT ALL ON `{target}`.* TO '{user}'@'%'")
    try:
        ctx = make_ctx({"mysql_user": user, "mysql_password": password})
        with pytest.raises(ActionError) as exc:
            run_step(Restore, {"file": path, "schema": target, "schema_mismatch": "create_missing", "file_on": "control"}, ctx)
        assert "1044" in exc.value.message and "_runbook" in exc.value.message and user in exc.value.message
        assert query(f"SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{target}'")[0][0] == 0
    finally:
        execute(None, f"DROP USER IF EXISTS '{user}'@'%'")
