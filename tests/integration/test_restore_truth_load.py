"""Issue 15, what a restore does to the rows, keys, triggers and counters of a live target
(items 6, 7, 8, 9, 10, 12), through ``runbook play`` (and ``runbook resume``)."""

from __future__ import annotations

import signal
import uuid
from pathlib import Path

import pytest

from tests.cliutil import out_of, run_id_of
from tests.integration.restore_helpers import checksums, dump, execute, query
from tests.conftest import MYSQL_USER
from tests.integration.restore_play import (
    LOCAL,
    count,
    drop_snapshots_of,
    hand_dump,
    play,
    restore_step,
    resume,
    snapshot_step,
    src,
    table_section,
)

pytestmark = pytest.mark.integration
__all__ = ["src"]


# ---------------------------------------------------------------------------- item 6


def _myisam_source(src: str) -> None:
    execute(src, "CREATE TABLE m (id INT, v VARCHAR(40)) ENGINE=MyISAM;"
                 "INSERT INTO m SELECT seq % 300, CONCAT('row ', seq) FROM seq_1_to_900")


def test_myisam_killed_before_its_first_commit_is_reloaded_whole(tmp_path: Path, schema: str, src: str) -> None:
    """Was: every row twice (the rows of the batch stayed, its progress row did not)."""
    _myisam_source(src)
    path = dump(src, str(tmp_path / "m.sql"), "--net-buffer-length=4096")
    step = restore_step(file=path, schema=schema, schema_mismatch="create_missing", file_on="control", batch_bytes=4096,
                        parallel=1)
    killed = play(tmp_path, step, env={"RUNBOOK_FAULT_RESTORE_KILL": "before_commit:1"})
    assert killed.returncode == -signal.SIGKILL, out_of(killed)
    assert count(schema, "m") > 0  # the MyISAM rows of the batch stayed without their progress row
    run_id = next(d.name for d in (tmp_path / "home").iterdir() if d.is_dir())
    res = resume(tmp_path, run_id)
    out = out_of(res)
    assert res.returncode == 0, out
    assert checksums(schema, ["m"]) == checksums(src, ["m"])
    assert "reloaded whole" in out, out


def test_myisam_partial_load_of_a_table_it_did_not_create_is_in_doubt(tmp_path: Path, schema: str, src: str) -> None:
    """The table was there (empty) and no snapshot covers it: a resume cannot know which rows
    are the killed batch's, so it says so and writes nothing (it never doubles them)."""
    _myisam_source(src)
    execute(schema, "CREATE TABLE m (id INT, v VARCHAR(40)) ENGINE=MyISAM")
    path = dump(src, str(tmp_path / "m.sql"), "--net-buffer-length=4096")
    step = restore_step(file=path, schema=schema, file_on="control", batch_bytes=4096, parallel=1)
    killed = play(tmp_path, step, env={"RUNBOOK_FAULT_RESTORE_KILL": "before_commit:2"})
    assert killed.returncode == -signal.SIGKILL, out_of(killed)
    partial = count(schema, "m")
    assert 0 < partial < 900
    run_id = next(d.name for d in (tmp_path / "home").iterdir() if d.is_dir())
    res = resume(tmp_path, run_id)
    out = out_of(res)
    assert res.returncode == 1, out
    assert "MyISAM" in out and "m" in out and "partial" in out and "snapshot" in out, out
    assert count(schema, "m") == partial


def test_myisam_batch_is_never_retried_in_process(tmp_path: Path, schema: str, src: str) -> None:
    """A lost connection redoes an InnoDB batch; a MyISAM batch may have left rows: the table
    fails, and a resume reloads it whole (this step created it)."""
    _myisam_source(src)
    path = dump(src, str(tmp_path / "m.sql"), "--net-buffer-length=4096")
    step = restore_step(file=path, schema=schema, schema_mismatch="create_missing", file_on="control", batch_bytes=4096,
                        parallel=1)
    res = play(tmp_path, step, env={"RUNBOOK_FAULT_RESTORE_KILL_CONN": "2"})
    out = out_of(res)
    assert res.returncode == 1, out
    assert "not retried" in out, out
    res = resume(tmp_path, run_id_of(res))
    assert res.returncode == 0, out_of(res)
    assert checksums(schema, ["m"]) == checksums(src, ["m"])


# ---------------------------------------------------------------------------- item 7


@pytest.mark.parametrize("conflict", ["ignore", "upsert", "replace", "error"])
def test_keyless_table_with_rows_refused_unless_allow_duplicates(tmp_path: Path, schema: str, src: str, conflict: str) -> None:
    for s in (src, schema):
        execute(s, "CREATE TABLE k (a INT, b VARCHAR(10)); INSERT INTO k VALUES (1,'x'),(2,'y')")
    path = dump(src, str(tmp_path / "k.sql"))
    step = restore_step(file=path, schema=schema, on_conflict=conflict, file_on="control")
    check = play(tmp_path, step, "--check")
    assert "allow_duplicates" in out_of(check) and "k" in check.stdout, out_of(check)
    res = play(tmp_path, step)
    out = out_of(res)
    assert res.returncode == 1, out
    assert "no primary or unique key" in out and "allow_duplicates: true" in out and "nothing was written" in out, out
    assert count(schema, "k") == 2
    res = play(tmp_path, restore_step(file=path, schema=schema, on_conflict=conflict, file_on="control",
                                      allow_duplicates=True))
    assert res.returncode == 0, out_of(res)
    assert count(schema, "k") == 4  # what the user opted into


# ---------------------------------------------------------------------------- item 8

USERS = "CREATE TABLE users (id INT PRIMARY KEY, email VARCHAR(40) NOT NULL, name VARCHAR(40), UNIQUE KEY uq_email (email))"


def test_upsert_is_the_backups_row_for_each_primary_key(tmp_path: Path, schema: str, src: str) -> None:
    """Was: unique key columns left alone (a damaged email stayed damaged)."""
    execute(src, USERS + "; INSERT INTO users VALUES (1,'a@x','A'),(2,'b@x','B')")
    execute(schema, USERS + "; INSERT INTO users VALUES (1,'damaged@x','A?'),(2,'b@x','B?'),(3,'c@x','C')")
    path = dump(src, str(tmp_path / "u.sql"))
    res = play(tmp_path, restore_step(file=path, schema=schema, on_conflict="upsert", file_on="control"))
    assert res.returncode == 0, out_of(res)
    assert query(f"SELECT id, email, name FROM `{schema}`.users ORDER BY id") == [
        (1, "a@x", "A"), (2, "b@x", "B"), (3, "c@x", "C")]


def test_upsert_unique_collision_with_another_row_is_a_conflict(tmp_path: Path, schema: str, src: str) -> None:
    """Was: ODKU matched the unique key and overwrote live row 3 with backup row 1."""
    execute(src, USERS + "; INSERT INTO users VALUES (1,'a@x','A'),(2,'b@x','B')")
    execute(schema, USERS + "; INSERT INTO users VALUES (1,'new@x','A'),(3,'a@x','Carol')")
    path = dump(src, str(tmp_path / "u.sql"))
    res = play(tmp_path, restore_step(file=path, schema=schema, on_conflict="upsert", file_on="control"))
    out = out_of(res)
    assert res.returncode == 1, out
    assert "uq_email" in out and "id=1" in out and "id=3" in out and "a@x" in out, out
    assert query(f"SELECT id, email, name FROM `{schema}`.users ORDER BY id") == [(1, "new@x", "A"), (3, "a@x", "Carol")]


# ---------------------------------------------------------------------------- item 9


def test_auto_increment_after_truncate_stays_above_every_id_the_live_table_used(tmp_path: Path, schema: str,
                                                                                src: str) -> None:
    ddl = "CREATE TABLE o (id INT AUTO_INCREMENT PRIMARY KEY, v INT)"
    execute(src, ddl + "; INSERT INTO o (v) SELECT seq FROM seq_1_to_10")
    execute(schema, ddl + "; INSERT INTO o (v) SELECT seq FROM seq_1_to_25; DELETE FROM o WHERE id > 20")
    path = dump(src, str(tmp_path / "o.sql"))
    live = query("SELECT AUTO_INCREMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = 'o'", [schema])[0][0]
    assert live >= 26  # ids up to 25 were handed out (InnoDB may have reserved more for the INSERT … SELECT)
    try:
        res = play(tmp_path, snapshot_step(schema, ["o"]) + restore_step(file=path, schema=schema, truncate=True,
                                                                         file_on="control"))
        assert res.returncode == 0, out_of(res)
    finally:
        drop_snapshots_of(schema)
    execute(schema, "INSERT INTO o (v) VALUES (0)")
    assert query(f"SELECT MAX(id) FROM `{schema}`.o")[0][0] == live  # not 11: ids 11..25 were handed out


# ---------------------------------------------------------------------------- item 10


def test_target_triggers_are_put_back_after_a_fatal_stop(tmp_path: Path, schema: str, src: str) -> None:
    execute(src, "CREATE TABLE a (id INT PRIMARY KEY); CREATE TABLE b (id INT PRIMARY KEY);"
                 "INSERT INTO a SELECT seq FROM seq_1_to_500; INSERT INTO b VALUES (1)")
    path = dump(src, str(tmp_path / "ab.sql"))
    user = f"rbt_t_{uuid.uuid4().hex[:8]}"
    execute(schema, "CREATE TABLE a (id INT PRIMARY KEY); CREATE TABLE b (id INT PRIMARY KEY); CREATE TABLE log (n INT)")
    execute(None, f"CREATE USER '{user}'@'%'; GRANT ALL ON `{schema}`.`a` TO '{user}'@'%';"
                  f" GRANT SELECT, CREATE, DROP, TRIGGER ON `{schema}`.`b` TO '{user}'@'%';"
                  f" GRANT SELECT, INSERT ON `{schema}`.`log` TO '{user}'@'%'; GRANT ALL ON `_runbook`.* TO '{user}'@'%'")
    execute(schema, f"CREATE DEFINER='{user}'@'%' TRIGGER a_ins AFTER INSERT ON a FOR EACH ROW INSERT INTO log VALUES (NEW.id)")
    try:
        inventory = LOCAL.replace(f"mysql_user: {MYSQL_USER}", f"mysql_user: {user}")
        res = play(tmp_path, restore_step(file=path, schema=schema, file_on="control", parallel=1), inventory=inventory)
        out = out_of(res)
        assert res.returncode == 1, out
        assert "1142" in out, out
        assert query("SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s", [schema]) == [("a_ins",)], out
        assert count(schema, "log") == 0  # the load did not fire it
        # a trigger this account could not put back (another definer) is never set aside: refused first
        execute(schema, "DROP TRIGGER a_ins; DELETE FROM a;"
                        "CREATE DEFINER='root'@'localhost' TRIGGER a_ins AFTER INSERT ON a FOR EACH ROW INSERT INTO log VALUES (NEW.id)")
        res = play(tmp_path, restore_step(file=path, schema=schema, file_on="control", parallel=1), inventory=inventory)
        out = out_of(res)
        assert res.returncode == 1 and "SET USER" in out and "nothing was written" in out, out
        assert query("SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s", [schema]) == [("a_ins",)]
        assert count(schema, "a") == 0
    finally:
        execute(None, f"DROP USER IF EXISTS '{user}'@'%'")


def test_a_live_trigger_that_differs_from_the_dumps_is_reported(tmp_path: Path, schema: str, src: str) -> None:
    execute(src, "CREATE TABLE t (id INT PRIMARY KEY); CREATE TABLE log (n INT);"
                 "CREATE TRIGGER t_ins AFTER INSERT ON t FOR EACH ROW INSERT INTO log VALUES (NEW.id);"
                 "INSERT INTO t VALUES (1)")
    path = dump(src, str(tmp_path / "t.sql"), "--triggers", tables=["t"])
    execute(schema, "CREATE TABLE t (id INT PRIMARY KEY); CREATE TABLE log (n INT);"
                    "CREATE TRIGGER t_ins AFTER INSERT ON t FOR EACH ROW INSERT INTO log VALUES (NEW.id * 100)")
    res = play(tmp_path, restore_step(file=path, schema=schema, file_on="control"))
    out = out_of(res)
    assert res.returncode == 0, out
    assert "trigger t_ins" in out and "differs" in out, out
    execute(schema, "INSERT INTO t VALUES (2)")
    assert query(f"SELECT n FROM `{schema}`.log") == [(200,)]  # the live version is kept


# ---------------------------------------------------------------------------- item 12


def test_charset_difference_is_a_schema_mismatch(tmp_path: Path, schema: str, src: str) -> None:
    execute(src, "CREATE TABLE c (id INT PRIMARY KEY, s VARCHAR(20) CHARACTER SET utf8mb4); INSERT INTO c VALUES (1,'😀')")
    execute(schema, "CREATE TABLE c (id INT PRIMARY KEY, s VARCHAR(20) CHARACTER SET latin1)")
    path = dump(src, str(tmp_path / "c.sql"))
    res = play(tmp_path, restore_step(file=path, schema=schema, file_on="control"))
    out = out_of(res)
    assert res.returncode == 1, out
    assert "column s" in out and "latin1" in out and "utf8mb4" in out and "nothing was written" in out, out


def test_emoji_into_latin1_fails_the_table_with_its_rows(tmp_path: Path, schema: str, src: str) -> None:
    """Was: stored as '?' and the step 'changed'."""
    execute(src, "CREATE TABLE c (id INT PRIMARY KEY, s VARCHAR(20) CHARACTER SET utf8mb4);"
                 "INSERT INTO c VALUES (1,'plain'),(2,'smile 😀')")
    execute(schema, "CREATE TABLE c (id INT PRIMARY KEY, s VARCHAR(20) CHARACTER SET latin1)")
    path = dump(src, str(tmp_path / "c.sql"))
    res = play(tmp_path, restore_step(file=path, schema=schema, schema_mismatch="common_columns", file_on="control"))
    out = out_of(res)
    assert res.returncode == 1, out
    assert "table c" in out and "smile" in out, out
    assert count(schema, "c") == 0
    res = play(tmp_path, restore_step(file=path, schema=schema, schema_mismatch="common_columns", file_on="control",
                                      allow_warnings=True))
    out = out_of(res)
    assert res.returncode == 0, out
    assert "warning" in out.lower() and "table c" in out, out
    assert count(schema, "c") == 2


def test_common_columns_does_not_truncate_varchars_silently(tmp_path: Path, schema: str, src: str) -> None:
    execute(src, "CREATE TABLE v (id INT PRIMARY KEY, s VARCHAR(40)); INSERT INTO v VALUES (1,'ok'),(2,'much too long here')")
    execute(schema, "CREATE TABLE v (id INT PRIMARY KEY, s VARCHAR(5))")
    path = dump(src, str(tmp_path / "v.sql"))
    res = play(tmp_path, restore_step(file=path, schema=schema, schema_mismatch="common_columns", file_on="control"))
    out = out_of(res)
    assert res.returncode == 1, out
    assert "table v" in out and "much too long" in out, out
    assert count(schema, "v") == 0


def test_fk_rejected_rows_under_ignore_are_not_ignored_conflicts(tmp_path: Path, schema: str, src: str) -> None:
    ddl = ("CREATE TABLE p (id INT PRIMARY KEY); CREATE TABLE ch (id INT PRIMARY KEY, pid INT,"
           " CONSTRAINT fk_ch_p FOREIGN KEY (pid) REFERENCES p (id))")
    execute(src, ddl + "; INSERT INTO p VALUES (1),(2); INSERT INTO ch VALUES (10,1),(20,2)")
    execute(schema, ddl + "; INSERT INTO p VALUES (1); INSERT INTO ch VALUES (10,1)")
    path = dump(src, str(tmp_path / "ch.sql"), tables=["ch"])
    res = play(tmp_path, restore_step(file=path, schema=schema, on_conflict="ignore", file_on="control"))
    out = out_of(res)
    assert res.returncode == 1, out
    assert "table ch" in out and "fk_ch_p" in out and "20" in out, out
    assert query(f"SELECT id FROM `{schema}`.ch") == [(10,)]


def test_hand_dump_helper_is_loadable(tmp_path: Path, schema: str) -> None:
    """The hand-written mysqldump layout of these tests loads as it is (a control)."""
    path = hand_dump(tmp_path / "x.sql", "shop", table_section("x", "CREATE TABLE `x` (`id` int NOT NULL, PRIMARY KEY (`id`))",
                                                               "INSERT INTO `x` VALUES (1);"))
    res = play(tmp_path, restore_step(file=path, schema=schema, schema_mismatch="create_missing", file_on="control"))
    assert res.returncode == 0, out_of(res)


@pytest.mark.parametrize(("rows", "key", "value"), [("(1,'a'),(1,'b'),(2,'c')", "PRIMARY", "1"),
                                                    ("(1,'a'),(2,'a'),(3,'c')", "v", "a")])
def test_a_duplicate_in_the_first_batch_of_an_empty_table_names_its_key(tmp_path: Path, schema: str, rows: str, key: str,
                                                                         value: str) -> None:
    """Was: 1180 'Got error 1 "Operation not permitted" during COMMIT', no key, no value. With
    unique_checks=0 and foreign_key_checks=0, MariaDB 10.6+ turns the first insert into an empty
    InnoDB table into a bulk insert, which finds duplicates only when it sorts the rows."""
    create = "CREATE TABLE `d` (`id` int NOT NULL, `v` varchar(10) NOT NULL, PRIMARY KEY (`id`), UNIQUE KEY `v` (`v`))"
    path = hand_dump(tmp_path / "d.sql", "shop", table_section("d", create, f"INSERT INTO `d` VALUES {rows};"))
    res = play(tmp_path, restore_step(file=path, schema=schema, schema_mismatch="create_missing", file_on="control"))
    out = out_of(res)
    assert res.returncode == 1, out
    assert "1062" in out and f"Duplicate entry '{value}' for key '{key}'" in out, out
    assert count(schema, "d") == 0
