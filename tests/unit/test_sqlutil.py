"""engine.mysql.sqlutil: statement splitting, read-only classification (check mode trusts it) and
identifier quoting."""

from __future__ import annotations

import pytest

from engine.mysql.sqlutil import first_keyword, is_read_only, qualified, quote_ident, quoted_placeholders, split_statements


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT 1", ["SELECT 1"]),
        ("SELECT 1; SELECT 2;", ["SELECT 1", "SELECT 2"]),
        ("  SELECT 1 ;\n\n ; ;SELECT 2  ", ["SELECT 1", "SELECT 2"]),
        ("SELECT 'a;b'; SELECT 2", ["SELECT 'a;b'", "SELECT 2"]),
        ('SELECT "c;d"; SELECT 2', ['SELECT "c;d"', "SELECT 2"]),
        ("SELECT `we;ird` FROM t; SELECT 2", ["SELECT `we;ird` FROM t", "SELECT 2"]),
        ("SELECT 'it''s; fine'; SELECT 2", ["SELECT 'it''s; fine'", "SELECT 2"]),
        ("SELECT 'back\\'slash;'; SELECT 2", ["SELECT 'back\\'slash;'", "SELECT 2"]),
        ("SELECT `a``;b`; SELECT 2", ["SELECT `a``;b`", "SELECT 2"]),
        ("SELECT 1 -- no; split\n; SELECT 2", ["SELECT 1 -- no; split", "SELECT 2"]),
        ("SELECT 1 # no; split\n; SELECT 2", ["SELECT 1 # no; split", "SELECT 2"]),
        ("SELECT /* ; */ 1; SELECT 2", ["SELECT /* ; */ 1", "SELECT 2"]),
        ("SELECT 1--2; SELECT 3", ["SELECT 1--2", "SELECT 3"]),  # -- without a space is minus minus
        ("SELECT {{ 'a;b' }} ; SELECT {{ x | ident }}", ["SELECT {{ 'a;b' }}", "SELECT {{ x | ident }}"]),
        ("INSERT INTO t VALUES ({{ v }}); DELETE FROM t", ["INSERT INTO t VALUES ({{ v }})", "DELETE FROM t"]),
        ("/*!40101 SET NAMES utf8 */; SELECT 1", ["/*!40101 SET NAMES utf8 */", "SELECT 1"]),
    ],
)
def test_split_statements(sql: str, expected: list[str]) -> None:
    assert split_statements(sql) == expected


@pytest.mark.parametrize("sql", ["", "   ", ";;", "-- just a comment", "/* c */ ; # c\n"])
def test_split_statements_empty(sql: str) -> None:
    assert split_statements(sql) == []


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1",
        "  select * from t",
        "(SELECT 1) UNION (SELECT 2)",
        "-- why\nSELECT 1",
        "/* why */ SELECT 1",
        "SHOW TABLES",
        "show slave status",
        "DESCRIBE t",
        "DESC t",
        "EXPLAIN SELECT * FROM t",
        "EXPLAIN UPDATE t SET a = 1",  # EXPLAIN without ANALYZE does not run the statement
        "WITH x AS (SELECT 1) SELECT * FROM x",
        "SELECT * FROM updates",  # a table named like a keyword
        "SELECT 'into outfile', \"for update\" FROM t",  # words in strings are not code
        "SELECT `into`, `nextval` FROM t",  # nor quoted identifiers
        "SELECT * FROM t -- INTO OUTFILE '/tmp/x'",
        "SELECT * FROM t # INTO OUTFILE '/tmp/x'",
        "SELECT /* FOR UPDATE */ * FROM t",
        "SELECT /*+ MAX_EXECUTION_TIME(1000) */ * FROM t",
        "SELECT 'it''s; INTO OUTFILE' FROM t",
        "SELECT LASTVAL(s), PREVIOUS VALUE FOR s",
    ],
)
def test_read_only(sql: str) -> None:
    assert is_read_only(sql) is True


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO t VALUES (1)",
        "UPDATE t SET a = 1",
        "DELETE FROM t",
        "REPLACE INTO t VALUES (1)",
        "CREATE TABLE t (a INT)",
        "DROP TABLE t",
        "SET GLOBAL read_only = 1",
        "KILL 42",
        "SELECT * FROM t FOR UPDATE",
        "select * from t for  update nowait",
        "SELECT * FROM t FOR SHARE",
        "SELECT * FROM t LOCK IN SHARE MODE",
        "SELECT * INTO OUTFILE '/tmp/x' FROM t",
        "SELECT * FROM t INTO DUMPFILE '/tmp/x'",
        "SELECT 1 INTO @x",
        "WITH x AS (SELECT 1) DELETE FROM t WHERE a IN (SELECT * FROM x)",
        "EXPLAIN ANALYZE DELETE t FROM t JOIN u ON t.id = u.id",
        "/*!50000 DROP TABLE t */",
        "-- looks harmless\nDELETE FROM t",
        "SELECT 1 INTO/**/OUTFILE '/tmp/x'",
        "SELECT 1 INTO/* a comment */OUTFILE '/tmp/x'",
        "SELECT 1 INTO\n-- a comment\nOUTFILE '/tmp/x'",
        "SELECT 1 INTO#a comment\nDUMPFILE '/tmp/x'",
        "SELECT 1 INTO\r\n\tOUTFILE '/tmp/x'",
        "SELECT 1 /*!50100 INTO OUTFILE '/tmp/x' */",  # executable comments run
        "SELECT 1 /*!INTO OUTFILE '/tmp/x'*/",
        "SELECT 1 /*M!100100 INTO DUMPFILE '/tmp/x' */",
        "(SELECT 1) INTO OUTFILE '/tmp/x'",
        "TABLE t INTO OUTFILE '/tmp/x'",
        "SELECT * FROM t FOR/**/UPDATE",
        "SELECT * FROM t LOCK/**/IN SHARE\nMODE",
        "SELECT NEXTVAL(s)",  # sequences move
        "SELECT NEXT VALUE FOR s",
        "SELECT SETVAL(s, 100)",
        "SELECT GET_LOCK('x', 10)",
        "SELECT 1; DROP TABLE t",
        "WITH x AS (SELECT 1)/**/DELETE FROM t",
        "SELECT 'a\\' INTO OUTFILE '/tmp/x' -- '",  # under NO_BACKSLASH_ESCAPES 'a\' is the whole string
    ],
)
def test_not_read_only(sql: str) -> None:
    assert is_read_only(sql) is False


def test_first_keyword() -> None:
    assert first_keyword("  -- c\n/* d */ (select 1)") == "select"
    assert first_keyword("") == ""


def test_quote_ident() -> None:
    assert quote_ident("users") == "`users`"
    assert quote_ident("we`ird") == "`we``ird`"
    assert quote_ident("``") == "``````"
    assert quote_ident("a b; DROP") == "`a b; DROP`"
    assert qualified("shop", "order items") == "`shop`.`order items`"
    with pytest.raises(ValueError):
        quote_ident("nul\x00byte")


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT {{ a }}", []),
        ("SELECT '{{ a }}'", ["{{ a }}"]),
        ('SELECT "x{{ a }}y"', ["{{ a }}"]),
        ("SELECT `{{ a }}`", ["{{ a }}"]),
        ("SELECT 'it''s {{ a }}'", ["{{ a }}"]),
        ("SELECT 'a\\'{{ b }}'", ["{{ b }}"]),  # an escaped quote does not close the string
        ("SELECT '' , {{ a }}, ''", []),
        ("SELECT {{ \"a'b\" }}, {{ c }}", []),  # quotes inside the expression are not SQL quotes
        ("SELECT 1 -- '{{ a }}'\n, '{{ b }}'", ["{{ b }}"]),
        ("SELECT /* '{{ a }}' */ {{ b }}", []),
    ],
)
def test_quoted_placeholders(sql: str, expected: list[str]) -> None:
    assert quoted_placeholders(sql) == expected


def test_keeps_session_only_for_plain_reads() -> None:
    from engine.mysql.sqlutil import keeps_session

    for sql in ("SELECT 1", "SELECT %s AS n", "SELECT COUNT(*) FROM t WHERE id IN (1, 2)", "SHOW TABLES",
                "SELECT @@version", "SELECT * FROM (SELECT 1) x", "SELECT CONCAT('a', b) FROM t"):
        assert keeps_session(sql), sql
    for sql in ("SELECT @y := 7", "SELECT LAST_INSERT_ID(42)", "SELECT db.f(1)", "SELECT `f`(1)", "SELECT myfunc(1)",
                "SELECT SQL_CALC_FOUND_ROWS * FROM t", "SELECT GET_LOCK('a', 0)", "SELECT 1 INTO @a", "SET @a = 1",
                "USE db", "INSERT INTO t VALUES (1)", "SELECT * FROM t FOR UPDATE", "SELECT /*! @x := 1 */ 2"):
        assert not keeps_session(sql), sql


def test_code_words_of_plain_text_are_the_scans_words() -> None:
    """The regex path of code_words (text without quotes, comments, variables) gives exactly the
    words of the character scan, on random text of the characters that matter to either."""
    import random

    from engine.mysql.sqlutil import _PLAIN_TEXT, _scanned_words, code_words

    alphabet = list("aZ09_$.,;:=()*+-/<>!%&|^~?[]{} \t\n\r\x0b\x0c\x1c\x1f\x00") + ["--", "/*", "*/", "-- ", "select", "into", "é", "'", "@", "\\", "#", "`", '"']
    rng = random.Random(19)
    plain = 0
    for _ in range(20000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 14)))
        for escapes in (True, False):
            assert code_words(text, backslash_escapes=escapes) == _scanned_words(text, escapes), repr(text)
        plain += bool(text.isascii() and _PLAIN_TEXT.match(text))
    assert plain > 2000  # the fast path was taken often enough to be tested
    for text in ("SELECT 1 AS n", "select a.b, 1.5, .5, x$y FROM t WHERE c<=3", "SELECT 1-2, 4/2, a--b", "SHOW TABLES"):
        assert code_words(text) == _scanned_words(text, True), text
