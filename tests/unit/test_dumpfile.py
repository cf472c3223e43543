"""The mysqldump reader on hand-written snippets: splitting, classification, rows, DDL, refusals."""

from __future__ import annotations

import gzip
import io

import pytest

from engine.errors import RunbookError
from engine.mysql.dump import (
    DumpError,
    DumpReader,
    Kind,
    Statement,
    count_rows,
    iter_rows,
    parse_create_table,
    scan_dump,
)
from engine.mysql.dump.split import ByteSource, Splitter
from tests.unit.dumpfuzz import mangle

HEADER = (b"/*M!999999\\- enable the sandbox mode */ \n"
          b"-- MariaDB dump 10.19  Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64)\n--\n"
          b"-- Host: 127.0.0.1    Database: shop\n"
          b"-- ------------------------------------------------------\n-- Server version\t10.11.19-MariaDB-0+deb12u1\n\n"
          b"/*!40101 SET NAMES utf8mb4 */;\n/*!40103 SET TIME_ZONE='+00:00' */;\n")
TRAILER = b"\n-- Dump completed on 2026-11-30  4:43:02\n"


def split(data: bytes, chunk: int = 1 << 20) -> list[bytes]:
    return [r.text for r in Splitter(ByteSource(io.BytesIO(data), "t"), chunk=chunk)]


def stmts(data: bytes, chunk: int | None = None) -> list[Statement]:
    return list(DumpReader(fileobj=io.BytesIO(data), chunk=chunk).statements())


# ------------------------------------------------------------------------------ splitting

@pytest.mark.parametrize(("sql", "expected"), [
    (b"SELECT 1;SELECT 2;", [b"SELECT 1", b"SELECT 2"]),
    (b"INSERT INTO t VALUES ('a;b'),('c'';d');", [b"INSERT INTO t VALUES ('a;b'),('c'';d')"]),
    (b"INSERT INTO t VALUES ('it\\'s;'),('\\\\');x;", [b"INSERT INTO t VALUES ('it\\'s;'),('\\\\')", b"x"]),
    (b'INSERT INTO t VALUES ("a;\\"b");', [b'INSERT INTO t VALUES ("a;\\"b")']),
    (b"CREATE TABLE `a;b``c` (x int);", [b"CREATE TABLE `a;b``c` (x int)"]),
    (b"SELECT 1 /* ; */ ;", [b"SELECT 1 /* ; */ "]),
    (b"SELECT 1 -- ;\n;", [b"SELECT 1 -- ;\n"]),
    (b"SELECT 1 # ;\n;", [b"SELECT 1 # ;\n"]),
    (b"SELECT 1--1;", [b"SELECT 1--1"]),  # "--" without a space is minus minus
    (b"/*!40101 SET x='a;b' */;", [b"/*!40101 SET x='a;b' */"]),
    (b"/*!40101 SET x=1; */;", [b"/*!40101 SET x=1", b"*/"]),  # the delimiter inside a version comment is live
    (b"/*M!100101 SET x=1 */;", [b"/*M!100101 SET x=1 */"]),
    (b"INSERT INTO t VALUES ('a\x00b\nc\r\n');", [b"INSERT INTO t VALUES ('a\x00b\nc\r\n')"]),
    (b"INSERT INTO t VALUES (_binary 'x;y', 0x3B3B, X'3b', b'0101');", [b"INSERT INTO t VALUES (_binary 'x;y', 0x3B3B, X'3b', b'0101')"]),
    (b"INSERT INTO t VALUES ('\xf0\x9f\x98\x80;');", [b"INSERT INTO t VALUES ('\xf0\x9f\x98\x80;')"]),
    (b"-- only a comment\n\n/* and another */\n", []),
    (b"SELECT 'a''';", [b"SELECT 'a'''"]),
    (b"SELECT '';SELECT 2;", [b"SELECT ''", b"SELECT 2"]),
    (b"\xef\xbb\xbf-- saved by an editor\nSELECT 1;", [b"SELECT 1"]),
])
def test_split(sql: bytes, expected: list[bytes]) -> None:
    assert split(sql) == expected


def test_delimiter_blocks() -> None:
    sql = (b"DELIMITER ;;\nCREATE PROCEDURE p() BEGIN SELECT ';;'; /* ;; */ SELECT \";;\"; END;;\n"
           b"CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.a = 1;;\nDELIMITER ;\nSELECT 1;\n"
           b"DELIMITER //\nCREATE FUNCTION f() RETURNS INT RETURN 1 / 2//\nDELIMITER ;\n")
    raws = list(Splitter(ByteSource(io.BytesIO(sql), "t")))
    assert [(r.what, r.text) for r in raws] == [
        ("delimiter", b"DELIMITER ;;"),
        ("sql", b"CREATE PROCEDURE p() BEGIN SELECT ';;'; /* ;; */ SELECT \";;\"; END"),
        ("sql", b"CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.a = 1"),
        ("delimiter", b"DELIMITER ;"),
        ("sql", b"SELECT 1"),
        ("delimiter", b"DELIMITER //"),
        ("sql", b"CREATE FUNCTION f() RETURNS INT RETURN 1 / 2"),
        ("delimiter", b"DELIMITER ;"),
    ]
    assert raws[1].delimiter == b";;" and raws[4].delimiter == b";"


def test_offsets_and_lengths_cover_the_statement() -> None:
    data = HEADER + b"INSERT INTO `t` VALUES (1,'x;');\n" + TRAILER
    for st in stmts(data):
        assert data[st.offset:st.offset + len(st.text)] == st.text
        assert data[st.offset:st.offset + st.length].endswith(st.delimiter) or st.kind is Kind.SKIP


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64])
def test_tiny_chunks_give_the_same_statements(chunk: int) -> None:
    data = (HEADER + b"INSERT INTO `t` VALUES (1,'a\\'b;c'),(2,'--;'),(3,'/*;*/');\n-- x;\n"
            b"DELIMITER ;;\n/*!50003 CREATE*/ /*!50003 TRIGGER tr BEFORE INSERT ON `t` FOR EACH ROW SET NEW.a = ';' */;;\n"
            b"DELIMITER ;\n" + TRAILER)
    want = [(s.kind, s.text, s.offset, s.length) for s in stmts(data)]
    got = [(s.kind, s.text, s.offset, s.length) for s in stmts(data, chunk=chunk)]
    assert got == want and len(want) == 7


def test_gzip_is_detected_by_magic_and_multi_member() -> None:
    data = HEADER + b"INSERT INTO `t` VALUES (1);\n" + TRAILER
    gz = gzip.compress(data[:50]) + gzip.compress(data[50:])  # two members, as `cat a.gz b.gz`
    assert [s.text for s in stmts(gz)] == [s.text for s in stmts(data)]
    r = DumpReader(fileobj=io.BytesIO(gz))
    assert r.header.gzip and r.header.tool == "mariadb-dump"


# ------------------------------------------------------------------------- classification

def test_header() -> None:
    h = DumpReader(fileobj=io.BytesIO(HEADER + TRAILER)).header
    assert (h.tool, h.tool_version, h.server_version, h.charset) == ("mariadb-dump", "10.19", "10.11.19-MariaDB-0+deb12u1", "utf8mb4")
    assert h.has_sandbox_line and h.databases == ["shop"] and h.looks_like_sql


def test_mysql_header_and_gtid_lines() -> None:
    data = (b"-- MySQL dump 10.13  Distrib 8.0.36, for Linux (x86_64)\n--\n-- Host: db    Database: shop\n"
            b"-- Server version\t8.0.36\n/*!40101 SET NAMES utf8mb4 */;\n"
            b"SET @MYSQLDUMP_TEMP_LOG_BIN = @@SESSION.SQL_LOG_BIN;\nSET @@SESSION.SQL_LOG_BIN= 0;\n"
            b"SET @@GLOBAL.GTID_PURGED=/*!80000 '+'*/ '3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5,\n"
            b"4E11FA47-71CA-11E1-9E33-C80AA9429562:1-3';\nSET GLOBAL gtid_slave_pos='0-1-5';\n"
            b"SET @@SESSION.SQL_LOG_BIN = @MYSQLDUMP_TEMP_LOG_BIN;\n" + TRAILER)
    r = DumpReader(fileobj=io.BytesIO(data))
    assert r.header.tool == "mysqldump" and r.header.server_version == "8.0.36"
    kinds = [s.kind for s in r.statements()]
    assert kinds == [Kind.SESSION] + [Kind.SKIP] * 5
    assert len(r.header.gtid) == 5


def test_classification_of_a_table_section() -> None:
    data = HEADER + (
        b"\n--\n-- Table structure for table `t`\n--\n\nDROP TABLE IF EXISTS `t`;\n"
        b"/*!40101 SET @saved_cs_client     = @@character_set_client */;\n"
        b"CREATE TABLE `t` (\n  `id` int(11) NOT NULL,\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB;\n"
        b"LOCK TABLES `t` WRITE;\n/*!40000 ALTER TABLE `t` DISABLE KEYS */;\n"
        b"INSERT INTO `t` VALUES (1),(2);\nINSERT IGNORE INTO `t` (`id`) VALUES (3);\nREPLACE INTO t VALUES (4);\n"
        b"INSERT DELAYED INTO `t` VALUES (5);\n/*!40000 ALTER TABLE `t` ENABLE KEYS */;\nUNLOCK TABLES;\n" + TRAILER)
    got = [(s.kind, s.table, s.ordinal, s.verb, s.columns, s.scope) for s in stmts(data)]
    assert got == [
        (Kind.SKIP, None, -1, "", None, ""),
        (Kind.SESSION, None, -1, "", None, "header"),
        (Kind.SESSION, None, -1, "", None, "header"),
        (Kind.TABLE_DDL, "t", -1, "", None, ""),
        (Kind.SESSION, None, -1, "", None, "table"),
        (Kind.TABLE_DDL, "t", -1, "", None, ""),
        (Kind.SKIP, "t", -1, "", None, ""),
        (Kind.SKIP, "t", -1, "", None, ""),
        (Kind.DATA, "t", 0, "INSERT", None, ""),
        (Kind.DATA, "t", 1, "INSERT IGNORE", ("id",), ""),
        (Kind.DATA, "t", 2, "REPLACE", None, ""),
        (Kind.DATA, "t", 3, "INSERT DELAYED", None, ""),
        (Kind.SKIP, "t", -1, "", None, ""),
        (Kind.SKIP, None, -1, "", None, ""),
    ]
    data_st = next(s for s in stmts(data) if s.kind is Kind.DATA)
    assert data_st.text[data_st.values_at:] == b"(1),(2)"


def test_databases_views_standins_triggers_routines_events() -> None:
    data = HEADER + (
        b"CREATE DATABASE /*!32312 IF NOT EXISTS*/ `shop` /*!40100 DEFAULT CHARACTER SET utf8mb4 */;\nUSE `shop`;\n"
        b"--\n-- Temporary table structure for view `v`\n--\n\nDROP TABLE IF EXISTS `v`;\n/*!50001 DROP VIEW IF EXISTS `v`*/;\n"
        b"SET character_set_client = utf8mb4;\n/*!50001 CREATE VIEW `v` AS SELECT\n 1 AS `id` */;\n"
        b"\n--\n-- Table structure for table `t`\n--\nDROP TABLE IF EXISTS `t`;\nCREATE TABLE `t` (`id` int);\n"
        b"DELIMITER ;;\n/*!50003 CREATE*/ /*!50017 DEFINER=`root`@`localhost`*/ /*!50003 TRIGGER `tr` BEFORE INSERT ON `t` FOR EACH ROW"
        b" SET NEW.id = 1 */;;\nDELIMITER ;\n"
        b"--\n-- Dumping routines\n--\n/*!50003 DROP PROCEDURE IF EXISTS `pr` */;\nDELIMITER ;;\n"
        b"CREATE DEFINER=`root`@`localhost` PROCEDURE `pr`()\nBEGIN SELECT 1; END ;;\nDELIMITER ;\n"
        b"/*!50106 DROP EVENT IF EXISTS `ev` */;\nDELIMITER ;;\n"
        b"/*!50106 CREATE*/ /*!50117 DEFINER=`root`@`localhost`*/ /*!50106 EVENT `ev` ON SCHEDULE EVERY 1 DAY DO DELETE FROM t */ ;;\n"
        b"DELIMITER ;\n--\n-- Final view structure for view `v`\n--\n/*!50001 DROP VIEW IF EXISTS `v`*/;\n"
        b"/*!50001 CREATE ALGORITHM=UNDEFINED */\n/*!50013 DEFINER=`root`@`localhost` SQL SECURITY DEFINER */\n"
        b"/*!50001 VIEW `v` AS select 1 AS `id` */;\n/*!40101 SET NAMES x_old_value */;\n/*!40103 SET TIME_ZONE=@OLD_TIME_ZONE */;\n"
        + TRAILER)
    got = [(s.kind, s.post_kind, s.name, s.table, s.schema, s.scope) for s in stmts(data) if s.kind is not Kind.SKIP]
    assert got[2:] == [
        (Kind.SCHEMA, "", None, None, "shop", ""),
        (Kind.SCHEMA, "", None, None, "shop", ""),
        (Kind.POST, "standin_view", "v", "v", "shop", ""),
        (Kind.POST, "standin_view", "v", "v", "shop", ""),
        (Kind.SESSION, "", None, None, "shop", "post"),
        (Kind.POST, "standin_view", "v", "v", "shop", ""),
        (Kind.TABLE_DDL, "", None, "t", "shop", ""),
        (Kind.TABLE_DDL, "", None, "t", "shop", ""),
        (Kind.POST, "trigger", "tr", "t", "shop", ""),
        (Kind.POST, "routine", "pr", None, "shop", ""),
        (Kind.POST, "routine", "pr", None, "shop", ""),
        (Kind.POST, "event", "ev", None, "shop", ""),
        (Kind.POST, "event", "ev", None, "shop", ""),
        (Kind.POST, "view", "v", "v", "shop", ""),
        (Kind.POST, "view", "v", "v", "shop", ""),
        (Kind.SESSION, "", None, None, "shop", "body"),
        (Kind.SESSION, "", None, None, "shop", "footer"),
    ]
    scan = scan_dump(io.BytesIO(data))
    assert scan.views == ["v"] and scan.routines == ["pr"] and scan.events == ["ev"] and scan.triggers == {"tr": "t"}
    assert scan.tables["t"].has_triggers and scan.tables["v"].is_view and scan.databases == ["shop"]


def test_standin_without_comments() -> None:
    data = (b"/*!40101 SET NAMES utf8mb4 */;\nDROP TABLE IF EXISTS `v`;\n/*!50001 DROP VIEW IF EXISTS `v`*/;\n"
            b"/*!50001 CREATE VIEW `v` AS SELECT 1 AS `id` */;\nDROP TABLE IF EXISTS `t`;\nCREATE TABLE `t` (a int);\n")
    got = [(s.kind, s.post_kind, s.table) for s in stmts(data)][1:]
    assert got == [(Kind.POST, "standin_view", "v")] * 3 + [(Kind.TABLE_DDL, "", "t")] * 2


def test_qualified_names_and_ordinals_per_schema() -> None:
    data = b"INSERT INTO `a`.`t` VALUES (1);\nINSERT INTO `b`.`t` VALUES (1);\nINSERT INTO `a`.`t` VALUES (2);\n"
    got = [(s.schema, s.table, s.ordinal) for s in stmts(data)]
    assert got == [("a", "t", 0), ("b", "t", 0), ("a", "t", 1)]


def test_client_commands_are_flagged() -> None:
    sts = stmts(b"SELECT 1;\nsource other.sql;\nSELECT 2 \\G;\n")
    assert [s.client_command for s in sts] == [False, True, True]
    with pytest.raises(DumpError, match="client command"):
        scan_dump(io.BytesIO(b"SELECT 1;\nsource other.sql;\n"), require_trailer=False)


def test_unsafe_charset_is_refused() -> None:
    with pytest.raises(DumpError, match="sjis"):
        DumpReader(fileobj=io.BytesIO(b"/*!40101 SET NAMES sjis */;\nSELECT 1;\n"))


# ------------------------------------------------------------------------------------ rows

def _data(text: bytes) -> Statement:
    (st,) = stmts(text + b";\n")
    assert st.kind is Kind.DATA
    return st


@pytest.mark.parametrize(("text", "rows"), [
    (b"INSERT INTO t VALUES (1,'a'),(2,'b')", [b"(1,'a')", b"(2,'b')"]),
    (b"INSERT INTO t VALUES\n(1,'(x),(y)'),\n(2,'it\\'s'),\n(3,'\\\\'),\n(4,NULL)",
     [b"(1,'(x),(y)')", b"(2,'it\\'s')", b"(3,'\\\\')", b"(4,NULL)"]),
    (b"INSERT INTO t VALUES (1,ST_GeomFromText('POINT(1 1)'),POINT(1,2))", [b"(1,ST_GeomFromText('POINT(1 1)'),POINT(1,2))"]),
    (b"INSERT INTO t (`a`,`b`) VALUES ('a''b',\"c)\")", [b"('a''b',\"c)\")"]),
    (b"INSERT INTO t VALUES ('\x00\n')", [b"('\x00\n')"]),
])
def test_rows(text: bytes, rows: list[bytes]) -> None:
    st = _data(text)
    assert list(iter_rows(st)) == rows
    assert count_rows(st) == len(rows)


def test_iter_rows_refuses_a_tail() -> None:
    st = _data(b"INSERT INTO t VALUES (1) ON DUPLICATE KEY UPDATE a=1")
    with pytest.raises(DumpError, match="cannot split"):
        list(iter_rows(st))


def test_load_data_safety() -> None:
    from engine.mysql.dump.rows import row_stats
    assert row_stats(_data(b"INSERT INTO t VALUES (1,'0x12 _binary b''1'' X'),(2,NULL)")) == (2, True)
    for unsafe in (b"0x00FF", b"_binary 'a'", b"b'101'", b"X'ff'", b"x'ff'"):
        assert row_stats(_data(b"INSERT INTO t VALUES (1," + unsafe + b")"))[1] is False, unsafe


# ------------------------------------------------------------------------------------ DDL

def test_parse_create_table_mariadb() -> None:
    t = parse_create_table(
        "CREATE TABLE `c` (\n  `id` int(11) NOT NULL AUTO_INCREMENT,\n  `pid` int(11) DEFAULT NULL,\n"
        "  `d` decimal(10,2) unsigned NOT NULL DEFAULT 0.00,\n  `e` enum('a','b,c') DEFAULT 'a',\n"
        "  `g` int(11) GENERATED ALWAYS AS (`id` * 2) VIRTUAL,\n"
        "  `ts` timestamp NOT NULL DEFAULT current_timestamp() ON UPDATE current_timestamp(),\n"
        "  PRIMARY KEY (`id`),\n  UNIQUE KEY `u` (`pid`,`d`),\n  KEY `fk1` (`pid`),\n"
        "  CONSTRAINT `fk1` FOREIGN KEY (`pid`) REFERENCES `other`.`p` (`id`) ON DELETE SET NULL ON UPDATE CASCADE\n"
        ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4")
    assert t.name == "c" and t.engine == "InnoDB" and t.primary_key == ("id",) and t.unique_keys == [("pid", "d")]
    assert [(c.name, c.type, c.nullable, c.default, c.generated, c.auto_increment) for c in t.columns] == [
        ("id", "int(11)", False, None, False, True),
        ("pid", "int(11)", True, "NULL", False, False),
        ("d", "decimal(10,2) unsigned", False, "0.00", False, False),
        ("e", "enum('a','b,c')", True, "'a'", False, False),
        ("g", "int(11)", True, None, True, False),
        ("ts", "timestamp", False, "current_timestamp()", False, False),
    ]
    (fk,) = t.foreign_keys
    assert (fk.name, fk.columns, fk.ref_schema, fk.ref_table, fk.ref_columns, fk.on_delete, fk.on_update) == (
        "fk1", ("pid",), "other", "p", ("id",), "SET NULL", "CASCADE")


def test_parse_create_table_hand_written() -> None:
    t = parse_create_table(b"CREATE TABLE IF NOT EXISTS titles (emp_no INT NOT NULL, title VARCHAR(50) PRIMARY KEY,"
                           b" note TEXT, FOREIGN KEY (emp_no) REFERENCES employees (emp_no) ON DELETE CASCADE)")
    assert t.primary_key == ("title",) and t.foreign_keys[0].on_update == "RESTRICT"
    assert [c.nullable for c in t.columns] == [False, False, True]
    with pytest.raises(DumpError):
        parse_create_table("CREATE VIEW v AS SELECT 1")


# ------------------------------------------------------------------------------ refusals

@pytest.mark.parametrize(("data", "message"), [
    (HEADER + b"INSERT INTO t VALUES ('abc", "unterminated '-quoted string"),
    (HEADER + b"SELECT 1 /* no end", "unterminated /\\* comment"),
    (HEADER + b"INSERT INTO t VALUES (1)", "without its delimiter"),
    (HEADER + b"INSERT INTO t VALUES (1);\n", "no completion trailer"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not a mysqldump"),
    (b"name: x\nhosts: all\nsteps:\n  - sql: SELECT 1;\n", "not a mysqldump"),
    (gzip.compress(HEADER + TRAILER)[:-9], "truncated"),
    (b"", "not a mysqldump"),
])
def test_refusals(data: bytes, message: str) -> None:
    with pytest.raises(DumpError, match=message) as err:
        scan_dump(io.BytesIO(data))
    assert isinstance(err.value, RunbookError) and "\n" not in str(err.value)


def test_flipped_byte_in_gzip() -> None:
    gz = bytearray(gzip.compress(HEADER + b"INSERT INTO t VALUES (1);\n" * 50 + TRAILER))
    gz[len(gz) // 2] ^= 0x40
    with pytest.raises(DumpError, match="corrupt"):
        scan_dump(io.BytesIO(bytes(gz)))


def test_missing_table_did_you_mean() -> None:
    data = HEADER + b"CREATE TABLE `users` (a int);\nINSERT INTO `users` VALUES (1);\n" + TRAILER
    with pytest.raises(DumpError, match=r"table user not in the dump \(it has: users\).*did you mean 'users'"):
        scan_dump(io.BytesIO(data), tables=["user"])
    scan = scan_dump(io.BytesIO(data), tables=["users"])
    assert scan.tables["users"].rows == 1 and scan.has_trailer and len(scan.sha256) == 64


# ------------------------------------------------------------------------------ more edges

def test_fast_path_counts_rows_and_general_path_agrees() -> None:
    mariadb = b"INSERT INTO `t` VALUES\n(1,'a),\\n(b',NULL),\n(2,'\\'',-3.5e-2),\n(3,'x''y',0);\n"
    mysql = b"INSERT INTO `t` VALUES (1,'a),(b',NULL),(2,'\\'',-3.5e-2),(3,'x''y',0);\n"
    crlf = mariadb.replace(b"\n", b"\r\n")
    multiline_string = b"INSERT INTO `t` VALUES\n(1,'a),\n(b'),\n(2,'c');\n"  # a raw newline in a string: not the fast path
    for data, fast, rows in ((mariadb, True, 3), (mysql, False, 3), (crlf, False, 3), (multiline_string, False, 2)):
        (st,) = stmts(data)
        assert (st.rows >= 0) is fast, data
        assert count_rows(st) == rows == len(list(iter_rows(st))), data
        assert st.rows in (-1, rows)


def test_fast_path_leaves_unsafe_literals_to_the_general_path() -> None:
    from engine.mysql.dump.rows import row_stats
    for value in (b"_binary 'a'", b"/* c */ 1", b"CONCAT('a')"):
        (st,) = stmts(b"INSERT INTO `t` VALUES\n(1," + value + b"),\n(2,NULL);\n")
        assert st.rows == -1 and st.load_data_safe is None and count_rows(st) == 2, value
    for value in (b"0x00FF", b"0xBB", b"X'41'", b"x'41'", b"b'1'", b"DEFAULT", b"TRUE"):  # --hex-blob: its own fast path, exact rows, not LOAD DATA safe
        (st,) = stmts(b"INSERT INTO `t` VALUES\n(1," + value + b"),\n(2,NULL);\n")
        assert (st.rows, st.load_data_safe, row_stats(st)) == (2, False, (2, False)), value
    (st,) = stmts(b"INSERT INTO `t` VALUES\n(1,'0x00 X''41'' z'),\n(2,NULL);\n")
    assert (st.rows, st.load_data_safe) == (2, True)


def test_delimiter_and_sandbox_at_eof_without_newline() -> None:
    assert [s.text for s in stmts(b"SELECT 1;\nDELIMITER ;;")] == [b"SELECT 1", b"DELIMITER ;;"]
    assert [s.kind for s in stmts(b"/*M!999999\\- enable the sandbox mode */")] == [Kind.SKIP]


def test_comment_at_eof_is_the_tail() -> None:
    r = DumpReader(fileobj=io.BytesIO(b"SELECT 1;\n-- Dump completed on 2026-11-30\n--"))
    assert [s.text for s in r.statements()] == [b"SELECT 1"]
    assert b"Dump completed" in r.tail


def test_scope_of_session_statements() -> None:
    data = HEADER + (b"CREATE TABLE `t` (a int);\n/*!40101 SET character_set_client = utf8mb4 */;\nSET @x = 1;\n"
                     b"/*!50003 SET sql_mode = '' */ ;\nDELIMITER ;;\nSET @y = 1;;\nDELIMITER ;\n"
                     b"/*!40101 SET SQL_MODE=@OLD_SQL_MODE */;\n")
    assert [s.scope for s in stmts(data) if s.kind is Kind.SESSION] == ["header", "header", "table", "body", "post", "post", "footer"]


def test_several_schemas_key_tables_by_schema() -> None:
    data = (b"-- MariaDB dump 10.19  Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64)\n"
            b"CREATE DATABASE `a`;\nUSE `a`;\nCREATE TABLE `t` (x int);\nINSERT INTO `t` VALUES (1);\n"
            b"CREATE DATABASE `b`;\nUSE `b`;\nCREATE TABLE `t` (x int);\nINSERT INTO `t` VALUES (1),(2);\n" + TRAILER)
    scan = scan_dump(io.BytesIO(data))
    assert {k: t.rows for k, t in scan.tables.items()} == {"a.t": 1, "b.t": 2} and scan.databases == ["a", "b"]


def test_measure_dump_and_sizes() -> None:
    from engine.mysql.dump import measure_dump
    data = HEADER + b"INSERT INTO `t` VALUES (1);\n" * 1000 + TRAILER
    gz = gzip.compress(data)
    m = measure_dump(io.BytesIO(gz))
    assert (m.total_bytes, m.compressed_bytes, m.gzip) == (len(data), len(gz), True)
    assert measure_dump(io.BytesIO(data)).total_bytes == len(data)
    scan = scan_dump(io.BytesIO(gz))
    assert (scan.total_bytes, scan.compressed_bytes, scan.rows, scan.tables["t"].data_statements) == (len(data), len(gz), 1000, 1000)
    assert scan.largest_statement_bytes == max(st.length for st in stmts(data)) == 41  # the sandbox line
    import hashlib
    assert scan.sha256 == hashlib.sha256(gz).hexdigest()
    with pytest.raises(DumpError, match="not a mysqldump"):
        measure_dump(io.BytesIO(b"\x89PNG\r\n\x1a\n"))


def test_tool_from_sandbox_line_and_header_gtid_of_mariadb() -> None:
    h = DumpReader(fileobj=io.BytesIO(b"/*M!999999\\- enable the sandbox mode */ \n/*!40101 SET NAMES utf8mb4 */;\n"
                                      b"-- CHANGE MASTER TO MASTER_LOG_FILE='b.000001', MASTER_LOG_POS=4;\n"
                                      b"SET GLOBAL gtid_slave_pos='0-1-5';\n")).header
    assert h.tool == "mariadb-dump" and h.gtid == ["SET GLOBAL gtid_slave_pos='0-1-5'"]


def test_a_reader_on_a_path_reads_twice_and_a_stream_once(tmp_path: object) -> None:
    from pathlib import Path
    assert isinstance(tmp_path, Path)
    p = tmp_path / "d.sql"
    p.write_bytes(HEADER + TRAILER)
    r = DumpReader(p)
    assert list(r.statements()) == list(r.statements())

    class OneWay(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self.inner = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, b: bytearray) -> int:  # type: ignore[override]
            chunk = self.inner.read(len(b))
            b[:len(chunk)] = chunk
            return len(chunk)

    data = HEADER + b"INSERT INTO `t` VALUES (1);\n" * 5000 + TRAILER  # more than the 64 KiB the header sniff takes
    for blob in (data, gzip.compress(data)):
        one = DumpReader(fileobj=OneWay(blob))  # type: ignore[arg-type]
        assert len(list(one.statements())) == 5003 and one.header.tool == "mariadb-dump"
        with pytest.raises(DumpError, match="cannot be read twice"):
            list(one.statements())
        seekable = io.BytesIO(b"junk" + blob)
        seekable.seek(4)
        two = DumpReader(fileobj=seekable)
        assert len(list(two.statements())) == len(list(two.statements())) == 5003


MYSQL8 = b"""-- MySQL dump 10.13  Distrib 8.0.36, for Linux (x86_64)
--
-- Host: 127.0.0.1    Database: shop
-- ------------------------------------------------------
-- Server version\t8.0.36

/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;
/*!50503 SET NAMES utf8mb4 */;
/*!40103 SET TIME_ZONE='+00:00' */;
SET @MYSQLDUMP_TEMP_LOG_BIN = @@SESSION.SQL_LOG_BIN;
SET @@SESSION.SQL_LOG_BIN= 0;

--
-- GTID state at the beginning of the backup
--

SET @@GLOBAL.GTID_PURGED=/*!80000 '+'*/ '3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5';

--
-- Table structure for table `t`
--

DROP TABLE IF EXISTS `t`;
/*!40101 SET @saved_cs_client     = @@character_set_client */;
/*!50503 SET character_set_client = utf8mb4 */;
CREATE TABLE `t` (
  `id` int NOT NULL AUTO_INCREMENT,
  `b` varbinary(10) DEFAULT NULL,
  `s` varchar(20) COLLATE utf8mb4_0900_ai_ci DEFAULT NULL,
  PRIMARY KEY (`id`)
) ENGINE=InnoDB AUTO_INCREMENT=4 DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_0900_ai_ci;
/*!40101 SET character_set_client = @saved_cs_client */;

LOCK TABLES `t` WRITE;
/*!40000 ALTER TABLE `t` DISABLE KEYS */;
INSERT INTO `t` VALUES (1,_binary 'a;b\\'),(',' ;'),(2,_binary '',NULL),(3,NULL,'x),(y');
/*!40000 ALTER TABLE `t` ENABLE KEYS */;
UNLOCK TABLES;
/*!50003 SET @saved_sql_mode       = @@sql_mode */ ;
DELIMITER ;;
/*!50003 CREATE*/ /*!50017 DEFINER=`root`@`%`*/ /*!50003 TRIGGER `t_bi` BEFORE INSERT ON `t` FOR EACH ROW SET NEW.s = ';;' */;;
DELIMITER ;
/*!50003 SET sql_mode              = @saved_sql_mode */ ;

--
-- Temporary view structure for view `v`
--

DROP TABLE IF EXISTS `v`;
/*!50001 DROP VIEW IF EXISTS `v`*/;
SET @saved_cs_client     = @@character_set_client;
/*!50503 SET character_set_client = utf8mb4 */;
/*!50001 CREATE VIEW `v` AS SELECT
 1 AS `id`*/;
SET character_set_client = @saved_cs_client;
SET @@SESSION.SQL_LOG_BIN = @MYSQLDUMP_TEMP_LOG_BIN;

--
-- Final view structure for view `v`
--

/*!50001 DROP VIEW IF EXISTS `v`*/;
/*!50001 CREATE ALGORITHM=UNDEFINED */
/*!50013 DEFINER=`root`@`%` SQL SECURITY DEFINER */
/*!50001 VIEW `v` AS select `t`.`id` AS `id` from `t` */;

-- Dump completed on 2026-11-30 10:00:00
"""


def test_a_mysql8_dump() -> None:
    r = DumpReader(fileobj=io.BytesIO(MYSQL8))
    assert (r.header.tool, r.header.charset, r.header.server_version) == ("mysqldump", "utf8mb4", "8.0.36")
    assert [g[:30] for g in r.header.gtid] == ["SET @MYSQLDUMP_TEMP_LOG_BIN = ", "SET @@SESSION.SQL_LOG_BIN= 0",
                                               "SET @@GLOBAL.GTID_PURGED=/*!80", "SET @@SESSION.SQL_LOG_BIN = @M"]
    got = [(s.kind.name, s.post_kind, s.table) for s in r.statements()]
    assert got == [
        ("SESSION", "", None), ("SESSION", "", None), ("SESSION", "", None), ("SKIP", "", None), ("SKIP", "", None),
        ("SKIP", "", None), ("TABLE_DDL", "", "t"), ("SESSION", "", None), ("SESSION", "", None), ("TABLE_DDL", "", "t"),
        ("SESSION", "", None), ("SKIP", "", "t"), ("SKIP", "", "t"), ("DATA", "", "t"), ("SKIP", "", "t"), ("SKIP", "", None),
        ("SESSION", "", None), ("SKIP", "", None), ("POST", "trigger", "t"), ("SKIP", "", None), ("SESSION", "", None),
        ("POST", "standin_view", "v"), ("POST", "standin_view", "v"), ("SESSION", "", None), ("SESSION", "", None),
        ("POST", "standin_view", "v"), ("SESSION", "", None), ("SKIP", "", None), ("POST", "view", "v"), ("POST", "view", "v"),
    ]
    scan = scan_dump(io.BytesIO(MYSQL8))
    t = scan.tables["t"]
    assert (t.rows, t.load_data_safe, t.has_triggers) == (3, False, True)
    data = next(s for s in DumpReader(fileobj=io.BytesIO(MYSQL8)).statements() if s.kind is Kind.DATA)
    assert list(iter_rows(data)) == [b"(1,_binary 'a;b\\'),(',' ;')", b"(2,_binary '',NULL)", b"(3,NULL,'x),(y')"]


def test_mariadb_sequences_are_table_ddl() -> None:
    data = HEADER + (b"DROP SEQUENCE IF EXISTS `s`;\nCREATE SEQUENCE `s` start with 100 minvalue 1 maxvalue 9223372036854775806"
                     b" increment by 5 cache 1000 nocycle ENGINE=InnoDB;\nDO SETVAL(`s`, 5100, 0);\n" + TRAILER)
    assert [(s.kind, s.table) for s in stmts(data)][3:] == [(Kind.TABLE_DDL, "s")] * 3
    t = scan_dump(io.BytesIO(data)).tables["s"]
    assert t.is_sequence and t.create is None and t.rows == 0


def test_create_table_like_is_loadable_but_undescribed() -> None:
    data = HEADER + b"CREATE TABLE `a` (x int);\nCREATE TABLE `b` LIKE `a`;\nINSERT INTO `b` VALUES (1);\n" + TRAILER
    scan = scan_dump(io.BytesIO(data))
    assert scan.tables["b"].create is None and scan.tables["b"].rows == 1 and not scan.tables["b"].load_data_safe
    assert scan.notes and scan.notes[0].startswith("b: no column definition read")


def test_mangled_dumps_raise_only_dump_errors() -> None:
    """Random damage (inserted quotes, comment marks, delimiters, cut or flipped bytes, gzip or not):
    the reader either reads the file or refuses it with a DumpError, never another exception."""
    import random

    base = MYSQL8 + HEADER + (b"CREATE TABLE `p` (`id` int NOT NULL, `v` varchar(9), PRIMARY KEY (`id`),"
                              b" CONSTRAINT `f` FOREIGN KEY (`v`) REFERENCES `q` (`w`));\n"
                              b"INSERT INTO `p` VALUES\n(1,'a;b'),\n(2,0x41);\nDELIMITER ;;\nCREATE PROCEDURE x() BEGIN SELECT ';;'; END;;\n"
                              b"DELIMITER ;\n") + TRAILER
    pieces = [b"'", b'"', b"`", b"/*", b"*/", b"-- ", b"#", b";", b";;", b"\\", b"DELIMITER ;;\n", b"(", b")", b",", b"\n",
              b"/*!50001 ", b"CREATE TABLE x (", b"INSERT INTO t VALUES (", b"\x00", b"\xff", b"PRIMARY KEY", b"REFERENCES"]
    rnd = random.Random(20261130)
    for _ in range(300):
        data = mangle(base, pieces, rnd)
        if rnd.random() < 0.3:
            data = gzip.compress(data)
        if rnd.random() < 0.2:
            data = data[:rnd.randrange(len(data))]
        try:
            scan_dump(io.BytesIO(data), require_trailer=rnd.random() < 0.5)
            for st in DumpReader(fileobj=io.BytesIO(data)).statements():
                if st.kind is Kind.DATA:
                    count_rows(st)
                    list(iter_rows(st, strict=False))
        except DumpError:
            pass
