"""The restore's safe list for a dump's statements (issue 15 items 3, 13, 14): which SETs run,
which are skipped, which are refused; which other statements are an alter of a table's keys;
the dump's own schema qualifier rewritten away."""

from __future__ import annotations

import pytest

from engine.mysql.dump.safety import ALTER, REFUSE, RUN, SKIP, judge_other, judge_set, strip_qualifier

DUMP_SETS = [
    b"/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */",
    b"/*!40101 SET NAMES utf8mb4 */",
    b"/*!50503 SET NAMES utf8mb4 COLLATE utf8mb4_unicode_ci */",
    b"/*!40103 SET TIME_ZONE='+00:00' */",
    b"/*!40014 SET @OLD_UNIQUE_CHECKS=@@UNIQUE_CHECKS, UNIQUE_CHECKS=0 */",
    b"/*!40014 SET @OLD_FOREIGN_KEY_CHECKS=@@FOREIGN_KEY_CHECKS, FOREIGN_KEY_CHECKS=0 */",
    b"/*!40101 SET @OLD_SQL_MODE=@@SQL_MODE, SQL_MODE='NO_AUTO_VALUE_ON_ZERO' */",
    b"/*!40111 SET @OLD_SQL_NOTES=@@SQL_NOTES, SQL_NOTES=0 */",
    b"/*M!100616 SET @OLD_NOTE_VERBOSITY=@@NOTE_VERBOSITY, NOTE_VERBOSITY=0 */",
    b"/*!40101 SET @saved_cs_client     = @@character_set_client */",
    b"/*!40101 SET character_set_client = @saved_cs_client */",
    b"/*!50003 SET sql_mode              = @saved_sql_mode */",
    b"/*!50106 SET @save_time_zone= @@TIME_ZONE */",
    b"/*!50106 SET TIME_ZONE= @save_time_zone */",
    b"/*!40101 SET COLLATION_CONNECTION=@OLD_COLLATION_CONNECTION */",
    b'SET time_zone = "+00:00"',
    b'SET SQL_MODE = "NO_AUTO_VALUE_ON_ZERO"',
    b"SET CHARACTER SET utf8",
]
SKIPPED_SETS = [
    b"SET @@SESSION.SQL_LOG_BIN= 0",
    b"SET @MYSQLDUMP_TEMP_LOG_BIN = @@SESSION.SQL_LOG_BIN",
    b"SET @@SESSION.SQL_LOG_BIN = @MYSQLDUMP_TEMP_LOG_BIN",
    b"SET @@GLOBAL.GTID_PURGED=/*!80000 '+'*/ '3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5'",
    b"SET GLOBAL gtid_slave_pos='0-1-100'",
    b"SET AUTOCOMMIT = 0",
]
REFUSED_SETS = [
    (b"SET GLOBAL read_only = 0", "SET GLOBAL read_only"),
    (b"/*!40101 SET @@GLOBAL.max_connections = 1 */", "GLOBAL"),
    (b"SET PERSIST max_connections = 1", "PERSIST"),
    (b"SET PASSWORD FOR 'root'@'%' = PASSWORD('x')", "SET PASSWORD"),
    (b"SET STATEMENT max_statement_time=1 FOR DELETE FROM other.t", "SET STATEMENT"),
    (b"SET ROLE admin", "SET ROLE"),
    (b"SET DEFAULT ROLE admin FOR u", "SET DEFAULT ROLE"),
    (b"SET GLOBAL TRANSACTION ISOLATION LEVEL READ UNCOMMITTED", "SET GLOBAL TRANSACTION"),
    (b"SET @x = (SELECT COUNT(*) FROM other.t)", "@x"),
    (b"SET @OLD_SQL_MODE = (SELECT 1)", "expression"),
    (b"SET sql_mode = CONCAT(@@sql_mode, ',X')", "expression"),
    (b"SET default_storage_engine = MyISAM", "default_storage_engine"),
    (b"SET SESSION sql_log_bin = 0, GLOBAL event_scheduler = ON", "GLOBAL event_scheduler"),
    (b"SET @@SESSION.SQL_LOG_BIN = 0, NAMES utf8", "mixes"),
]


@pytest.mark.parametrize("text", DUMP_SETS)
def test_the_dumps_own_sets_run(text: bytes) -> None:
    assert judge_set(text).action == RUN, judge_set(text)


@pytest.mark.parametrize("text", SKIPPED_SETS)
def test_binlog_and_gtid_sets_are_skipped(text: bytes) -> None:
    assert judge_set(text).action == SKIP, judge_set(text)


@pytest.mark.parametrize("text, named", REFUSED_SETS)
def test_other_sets_are_refused_by_name(text: bytes, named: str) -> None:
    v = judge_set(text)
    assert v.action == REFUSE and named in v.reason, v


@pytest.mark.parametrize("text, table", [
    (b"ALTER TABLE `p`\n  ADD PRIMARY KEY (`id`),\n  ADD UNIQUE KEY `email` (`email`),\n  ADD KEY `n` (`n`)", "p"),
    (b"ALTER TABLE `p` MODIFY `id` int(11) NOT NULL AUTO_INCREMENT, AUTO_INCREMENT=3", "p"),
    (b"ALTER TABLE p ADD CONSTRAINT fk FOREIGN KEY (a) REFERENCES q (id) ON DELETE CASCADE", "p"),
    (b"ALTER TABLE `p` DROP FOREIGN KEY `fk`, DROP INDEX `n`", "p"),
    (b"CREATE UNIQUE INDEX `ix` ON `p` (`a`, `b`)", "p"),
    (b"DROP INDEX ix ON p", "p"),
    (b"/*!50100 ALTER TABLE `p` ADD FULLTEXT KEY `ft` (`body`) */", "p"),
])
def test_alters_of_keys_are_replayable(text: bytes, table: str) -> None:
    v = judge_other(text)
    assert v.action == ALTER and v.table == table, v


def test_a_qualified_alter_says_its_schema() -> None:
    v = judge_other(b"ALTER TABLE `prod`.`q` ADD KEY k (a)")
    assert (v.action, v.qualifier, v.table) == (ALTER, "prod", "q")


@pytest.mark.parametrize("text", [b"START TRANSACTION", b"COMMIT", b"BEGIN", b"/*!40101 COMMIT */"])
def test_transaction_brackets_are_skipped(text: bytes) -> None:
    assert judge_other(text).action == SKIP


@pytest.mark.parametrize("text, named", [
    (b"DELETE FROM t WHERE id = 1", "DELETE"), (b"UPDATE t SET a = 1", "UPDATE"), (b"GRANT ALL ON *.* TO x", "GRANT"),
    (b"TRUNCATE TABLE t", "TRUNCATE"), (b"CALL p()", "CALL"), (b"RENAME TABLE a TO b", "RENAME TABLE"),
    (b"ALTER TABLE t DROP COLUMN c", "DROP COLUMN"), (b"ALTER TABLE t ADD COLUMN c INT", "ADD COLUMN"),
    (b"ALTER TABLE t RENAME TO u", "RENAME"), (b"ALTER TABLE t ENGINE=MyISAM", "ENGINE"), (b"FLUSH PRIVILEGES", "FLUSH"),
    (b"INSERT INTO t SELECT * FROM other.t", "INSERT"), (b"ROLLBACK", "ROLLBACK"),
])
def test_anything_else_is_refused_by_name(text: bytes, named: str) -> None:
    v = judge_other(text)
    assert v.action == REFUSE and named in v.reason, v


def test_the_dumps_own_qualifier_is_rewritten_away() -> None:
    assert strip_qualifier(b"DROP TABLE IF EXISTS `prod`.`q`", "prod") == b"DROP TABLE IF EXISTS `q`"
    assert strip_qualifier(b"CREATE TABLE `prod` . `q` (id int)", "prod") == b"CREATE TABLE `q` (id int)"
    assert strip_qualifier(b"CREATE VIEW `prod`.v AS SELECT `prod`.`q`.`id` FROM `prod`.`q`", "prod") == \
        b"CREATE VIEW v AS SELECT `q`.`id` FROM `q`"
    assert strip_qualifier(b"INSERT INTO prod.`q` VALUES ('`prod`.`q`')", "prod") == b"INSERT INTO `q` VALUES ('`prod`.`q`')"
    assert strip_qualifier(b"SELECT `production`.`q`.a, `other`.`q`.b", "prod") == b"SELECT `production`.`q`.a, `other`.`q`.b"
    text = b"/*!50001 CREATE VIEW `v` AS select `q`.`id` AS `id` from `q` */"
    assert strip_qualifier(text, "prod") is text  # nothing to do: the same bytes
