"""Issue 15, what a dump may make a restore do (items 2, 3, 13, 14, 15), through ``runbook play``:
a data statement's own column list, schema qualifiers, the dump's SETs, the statements a
restore replays or refuses, and an empty target schema."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cliutil import out_of
from tests.integration.restore_helpers import execute, query
from tests.integration.restore_play import (
    count,
    drop_snapshots_of,
    hand_dump,
    play,
    restore_step,
    snapshot_step,
    src,
    table_section,
)

pytestmark = pytest.mark.integration
__all__ = ["src"]

GEN_CREATE = """CREATE TABLE `g` (
  `id` int NOT NULL,
  `a` int DEFAULT NULL,
  `b` int GENERATED ALWAYS AS ((`a` * 2)) VIRTUAL,
  `c` varchar(10) DEFAULT NULL,
  PRIMARY KEY (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"""


# ---------------------------------------------------------------------------- item 2


def test_generated_column_left_out_by_mysqldump_is_loaded_by_name(tmp_path: Path, schema: str) -> None:
    """MySQL's mysqldump names the columns and leaves the generated one out: ``c`` must get
    its values (was: mapped by CREATE position, ``c`` loaded as NULL, row counts passed)."""
    path = hand_dump(tmp_path / "g.sql", "shop", table_section(
        "g", GEN_CREATE, "INSERT INTO `g` (`id`, `a`, `c`) VALUES (1,1,'x'),(2,2,'y');"))
    res = play(tmp_path, restore_step(file=path, schema=schema, schema_mismatch="create_missing", file_on="control"))
    assert res.returncode == 0, out_of(res)
    assert query(f"SELECT id, a, b, c FROM `{schema}`.g ORDER BY id") == [(1, 1, 2, "x"), (2, 2, 4, "y")]


def test_generated_column_into_existing_table_by_name(tmp_path: Path, schema: str) -> None:
    execute(schema, GEN_CREATE)
    path = hand_dump(tmp_path / "g.sql", "shop", table_section(
        "g", GEN_CREATE, "INSERT INTO `g` (`id`, `a`, `c`) VALUES (1,1,'x'),(2,2,'y');"))
    res = play(tmp_path, restore_step(file=path, schema=schema, file_on="control"))
    assert res.returncode == 0, out_of(res)
    assert query(f"SELECT id, a, b, c FROM `{schema}`.g ORDER BY id") == [(1, 1, 2, "x"), (2, 2, 4, "y")]


@pytest.mark.parametrize("second", ["INSERT INTO `g` (`id`, `c`, `a`) VALUES (3,'z',3);",
                                    "INSERT INTO `g` (`id`, `a`, `nope`) VALUES (3,3,'z');"], ids=["disagree", "unknown"])
def test_data_statements_that_disagree_are_refused(tmp_path: Path, schema: str, second: str) -> None:
    path = hand_dump(tmp_path / "g.sql", "shop", table_section(
        "g", GEN_CREATE, "INSERT INTO `g` (`id`, `a`, `c`) VALUES (1,1,'x'),(2,2,'y');\n" + second))
    res = play(tmp_path, restore_step(file=path, schema=schema, schema_mismatch="create_missing", file_on="control"))
    out = out_of(res)
    assert res.returncode == 1, out
    assert "table g" in out and "(id, a, c)" in out and "nothing was written" in out, out
    if "nope" in second:
        assert "(id, a, nope)" in out and "nope" in out
    else:
        assert "(id, c, a)" in out
    assert query("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s", [schema])[0][0] == 0


# ---------------------------------------------------------------------------- item 3


def _qualified_dump(tmp_path: Path, qualifier: str) -> str:
    body = (f"DROP TABLE IF EXISTS `{qualifier}`.`q`;\n"
            f"CREATE TABLE `{qualifier}`.`q` (`id` int NOT NULL, `v` varchar(10) DEFAULT NULL, PRIMARY KEY (`id`))"
            " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;\n"
            f"INSERT INTO `{qualifier}`.`q` VALUES (1,'dump'),(2,'dump');\n")
    return hand_dump(tmp_path / "q.sql", qualifier, body)


def test_qualified_statements_go_to_the_target_not_the_schema_they_name(tmp_path: Path, schema: str, src: str) -> None:
    """A HeidiSQL/Workbench export qualifies every statement with its schema (here ``src``,
    standing for ``prod``): restoring it into a scratch schema must not touch ``src``."""
    execute(src, "CREATE TABLE q (id INT PRIMARY KEY, v VARCHAR(10)); INSERT INTO q VALUES (1,'prod'),(2,'prod'),(3,'prod')")
    path = _qualified_dump(tmp_path, src)
    res = play(tmp_path, restore_step(file=path, schema=schema, schema_mismatch="create_missing", file_on="control"))
    assert res.returncode == 0, out_of(res)
    assert query(f"SELECT id, v FROM `{src}`.q ORDER BY id") == [(1, "prod"), (2, "prod"), (3, "prod")]
    assert query(f"SELECT id, v FROM `{schema}`.q ORDER BY id") == [(1, "dump"), (2, "dump")]


def test_a_qualifier_other_than_the_dumps_schema_is_refused(tmp_path: Path, schema: str, src: str) -> None:
    execute(src, "CREATE TABLE q (id INT PRIMARY KEY, v VARCHAR(10)); INSERT INTO q VALUES (1,'prod')")
    body = ("CREATE TABLE `q` (`id` int NOT NULL, `v` varchar(10) DEFAULT NULL, PRIMARY KEY (`id`)) ENGINE=InnoDB;\n"
            "INSERT INTO `q` VALUES (1,'dump');\n"
            f"DELETE FROM `{src}`.`q`;\nINSERT INTO `{src}`.`q` VALUES (7,'x');\n")
    path = hand_dump(tmp_path / "q.sql", "shop", "USE `shop`;\n" + body)
    res = play(tmp_path, restore_step(file=path, schema=schema, schema_mismatch="create_missing", file_on="control"))
    out = out_of(res)
    assert res.returncode == 1, out
    assert src in out and "nothing was written" in out, out
    assert query(f"SELECT id, v FROM `{src}`.q") == [(1, "prod")]
    assert query("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s", [schema])[0][0] == 0


def test_recreate_requires_this_runs_snapshot(tmp_path: Path, schema: str) -> None:
    execute(schema, "CREATE TABLE q (id INT PRIMARY KEY, v VARCHAR(10), extra INT); INSERT INTO q VALUES (9,'live',1)")
    path = _qualified_dump(tmp_path, "shop")
    res = play(tmp_path, restore_step(file=path, schema=schema, schema_mismatch="recreate", file_on="control"))
    out = out_of(res)
    assert res.returncode == 1, out
    assert "recreate" in out and "snapshot" in out and "nothing was written" in out, out
    assert query(f"SELECT id, v FROM `{schema}`.q") == [(9, "live")]
    try:
        res = play(tmp_path, snapshot_step(schema, ["q"]) + restore_step(file=path, schema=schema, schema_mismatch="recreate",
                                                                         file_on="control"))
        assert res.returncode == 0, out_of(res)
        assert query(f"SELECT id, v FROM `{schema}`.q ORDER BY id") == [(1, "dump"), (2, "dump")]
    finally:
        drop_snapshots_of(schema)


# ---------------------------------------------------------------------------- item 13

SIMPLE = table_section("t", "CREATE TABLE `t` (`id` int NOT NULL, PRIMARY KEY (`id`)) ENGINE=InnoDB",
                       "INSERT INTO `t` VALUES (1),(2);")


# The server is shared: every statement here is harmless even where a restore would run it (an
# unknown variable fails, read_only is already OFF), and still must be refused at the scan.
@pytest.mark.parametrize("statement, named", [
    ("SET GLOBAL read_only = 0;", "SET GLOBAL"),
    ("/*!40101 SET @@GLOBAL.rbt_no_such_variable = 1 */;", "GLOBAL"),
    ("SET PASSWORD FOR 'rbt_nobody'@'localhost' = PASSWORD('x');", "SET PASSWORD"),
    ("SET STATEMENT max_statement_time=100 FOR DELETE FROM {other}.w;", "SET STATEMENT"),
    ("SET SESSION sql_log_bin = 0, GLOBAL rbt_no_such_variable = ON;", "GLOBAL"),
    ("SET @x = (SELECT COUNT(*) FROM {other}.w);", "@x"),
    ("SET default_storage_engine = MyISAM;", "default_storage_engine"),
], ids=["global", "global-at", "password", "statement", "mixed", "subquery", "other-var"])
def test_dump_set_statements_outside_the_safe_list_are_refused(tmp_path: Path, schema: str, src: str, statement: str,
                                                              named: str) -> None:
    execute(src, "CREATE TABLE w (id INT); INSERT INTO w VALUES (1)")
    path = hand_dump(tmp_path / "s.sql", "shop", SIMPLE + statement.format(other=f"`{src}`") + "\n")
    res = play(tmp_path, restore_step(file=path, schema=schema, schema_mismatch="create_missing", file_on="control"))
    out = out_of(res)
    assert res.returncode == 1, out
    assert named in out and "line " in out and "nothing was written" in out, out
    assert query("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s", [schema])[0][0] == 0
    assert count(src, "w") == 1


def test_the_dumps_own_sets_are_accepted(tmp_path: Path, schema: str) -> None:
    """mysqldump's header/footer, a routine's saved sql_mode and the MariaDB note_verbosity."""
    extra = ("/*M!100616 SET @OLD_NOTE_VERBOSITY=@@NOTE_VERBOSITY, NOTE_VERBOSITY=0 */;\n"
             "/*!50003 SET @saved_sql_mode       = @@sql_mode */ ;\n/*!50003 SET sql_mode = 'STRICT_TRANS_TABLES' */ ;\n"
             "/*!50003 SET sql_mode              = @saved_sql_mode */ ;\n"
             "SET @@SESSION.SQL_LOG_BIN= 0;\nSET time_zone = \"+00:00\";\n")
    path = hand_dump(tmp_path / "s.sql", "shop", SIMPLE + extra)
    res = play(tmp_path, restore_step(file=path, schema=schema, schema_mismatch="create_missing", file_on="control"))
    assert res.returncode == 0, out_of(res)
    assert count(schema, "t") == 2


# ---------------------------------------------------------------------------- item 14

PMA = """CREATE TABLE `p` (`id` int(11) NOT NULL, `email` varchar(40) NOT NULL, `n` int DEFAULT NULL)
ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
START TRANSACTION;
INSERT INTO `p` (`id`, `email`, `n`) VALUES (1, 'a@x', 1), (2, 'b@x', 2);
ALTER TABLE `p`
  ADD PRIMARY KEY (`id`),
  ADD UNIQUE KEY `email` (`email`),
  ADD KEY `n` (`n`);
ALTER TABLE `p`
  MODIFY `id` int(11) NOT NULL AUTO_INCREMENT, AUTO_INCREMENT=3;
CREATE INDEX `n2` ON `p` (`n`, `email`);
COMMIT;
"""


def test_phpmyadmin_style_keys_after_the_data_are_replayed(tmp_path: Path, schema: str) -> None:
    """Was: every ALTER TABLE … ADD KEY dropped silently (the table came back without keys)."""
    path = hand_dump(tmp_path / "p.sql", "shop", PMA)
    res = play(tmp_path, restore_step(file=path, schema=schema, schema_mismatch="create_missing", file_on="control"))
    assert res.returncode == 0, out_of(res)
    keys = {r[0] for r in query("SELECT INDEX_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = %s AND"
                                " TABLE_NAME = 'p'", [schema])}
    assert keys == {"PRIMARY", "email", "n", "n2"}
    assert query(f"SELECT AUTO_INCREMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{schema}'"
                 " AND TABLE_NAME = 'p'")[0][0] == 3
    assert count(schema, "p") == 2


@pytest.mark.parametrize("statement, named", [
    ("DELETE FROM `t` WHERE id = 1;", "DELETE"),
    ("GRANT ALL ON *.* TO 'x'@'%';", "GRANT"),
    ("UPDATE `t` SET id = 3;", "UPDATE"),
    ("TRUNCATE TABLE `t`;", "TRUNCATE"),
    ("ALTER TABLE `t` DROP COLUMN `id`;", "DROP COLUMN"),
    ("ALTER TABLE `elsewhere` ADD KEY `k` (`id`);", "elsewhere"),
    ("CALL cleanup();", "CALL"),
], ids=["delete", "grant", "update", "truncate", "drop-column", "not-restored", "call"])
def test_statements_a_restore_does_not_replay_are_refused_by_name(tmp_path: Path, schema: str, statement: str,
                                                                 named: str) -> None:
    path = hand_dump(tmp_path / "s.sql", "shop", SIMPLE + statement + "\n")
    res = play(tmp_path, restore_step(file=path, schema=schema, schema_mismatch="create_missing", file_on="control"))
    out = out_of(res)
    assert res.returncode == 1, out
    assert named in out and "nothing was written" in out, out
    assert query("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s", [schema])[0][0] == 0


# ---------------------------------------------------------------------------- item 15


def test_empty_target_schema_is_not_a_mismatch(tmp_path: Path, schema: str) -> None:
    path = hand_dump(tmp_path / "s.sql", "shop", SIMPLE)
    res = play(tmp_path, restore_step(file=path, schema=schema, file_on="control"))
    assert res.returncode == 0, out_of(res)
    assert count(schema, "t") == 2


def test_missing_target_schema_is_not_a_mismatch(tmp_path: Path, schema: str) -> None:
    execute(None, f"DROP DATABASE `{schema}`")
    path = hand_dump(tmp_path / "s.sql", "shop", SIMPLE)
    res = play(tmp_path, restore_step(file=path, schema=schema, file_on="control"))
    assert res.returncode == 0, out_of(res)
    assert count(schema, "t") == 2


def test_missing_table_beside_existing_ones_stays_a_mismatch(tmp_path: Path, schema: str) -> None:
    execute(schema, "CREATE TABLE other (id INT PRIMARY KEY)")
    path = hand_dump(tmp_path / "s.sql", "shop", SIMPLE)
    res = play(tmp_path, restore_step(file=path, schema=schema, file_on="control"))
    out = out_of(res)
    assert res.returncode == 1, out
    assert "table t is missing on the target" in out and "create_missing" in out
