"""verify's pure logic: server-side time limits, argument checks, suite lookup."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.actions.verify.params import split_qualified, static_problems
from engine.actions.verify.suites import find_suite, suite_problems
from engine.errors import InputError
from engine.mysql.checksum import Chunk, Digest, row_text
from engine.mysql.introspect import TableShape
from engine.mysql.limits import bounded


def test_bounded_per_flavor() -> None:
    assert bounded("SELECT 1", "mariadb", 2.5) == "SET STATEMENT max_statement_time = 2.5 FOR SELECT 1"
    assert bounded("  select a from t", "mysql", 2.5) == "  select /*+ MAX_EXECUTION_TIME(2500) */ a from t"
    assert bounded("SHOW TABLES", "mysql", 3) == "SHOW TABLES"  # the hint exists for SELECT only
    assert bounded("SELECT 1", "mariadb", None) == "SELECT 1"


def test_row_text_marks_nulls_lengths_and_exact_values() -> None:
    shape = TableShape("s", "t", ("id", "na`me", "f", "ts", "b"), ("id",), ("int", "varchar", "float", "timestamp", "blob"))
    assert row_text(shape) == (
        "CONCAT_WS('#', CONCAT_WS(',', ISNULL(`id`), IFNULL(LENGTH(CAST(`na``me` AS BINARY)), 'N'), ISNULL(`f`),"
        " ISNULL(`ts`), IFNULL(LENGTH(CAST(`b` AS BINARY)), 'N')),"
        " `id`, CAST(`na``me` AS BINARY), CAST(`f` AS DOUBLE), UNIX_TIMESTAMP(`ts`), CAST(`b` AS BINARY))")


def test_row_text_needs_the_column_types() -> None:
    with pytest.raises(ValueError):
        row_text(TableShape("s", "t", ("id",), ("id",)))


def test_digests_add_up_and_print_16_hex_digits() -> None:
    d = Digest(2, (1 << 64) + 255) + Digest(1, 1)
    assert (d.rows, d.total, d.hex) == (3, (1 << 64) + 256, "0000000000000100")


def test_chunk_describes_its_range() -> None:
    c = Chunk(3, "", (), (1, "x"), (5, "y"))
    assert c.describe(("a", "b")) == {"chunk": 3, "lower": {"a": 1, "b": "x"}, "upper": {"a": 5, "b": "y"}}
    assert Chunk(0, "1 = 1", (), None, None).describe(()) == {"chunk": 0, "lower": None, "upper": None}


@pytest.mark.parametrize(("args", "where", "words"), [
    ({"schema": "s"}, "", "nothing to verify"),
    ({"schema": "s", "checksums": {}}, "checksums", "say what to compare with"),
    ({"schema": "s", "checksums": {"against_snapshot": True, "against_schema": "x"}}, "checksums", "cannot be combined"),
    ({"schema": "s", "checksums": {"against_schema": "s"}}, "checksums.against_schema", "compared with itself"),
    ({"schema": "s", "row_counts": {"from": {}, "users": 3}}, "row_counts", "not several"),
    ({"schema": "s", "rules": [{"name": "a", "sql": "SELECT 1"}, {"name": "a", "sql": "SELECT 2"}]}, "rules.1.name", "two rules"),
    ({"schema": "s", "rules": [{"name": "a", "sql": "DELETE FROM t"}]}, "rules.0.sql", "read-only"),
    ({"schema": "s", "rules": [{"name": "a", "sql": "SELECT 1; SELECT 2"}]}, "rules.0.sql", "one query"),
    ({"schema": "s", "foreign_keys": True, "record_to": "results"}, "record_to", "not schema.table"),
    ({"schema": "s", "row_counts": "from_dump"}, "row_counts", "register the restore step"),
])
def test_static_problems(args: dict, where: str, words: str) -> None:
    found = static_problems(args)
    assert [w for w, _ in found] == [where] and words in found[0][1], found


def test_good_arguments_have_no_problem() -> None:
    assert static_problems({"schema": "s", "foreign_keys": True, "checksums": {"against_host": "r1"},
                            "record_to": "`ops db`.results", "rules": [{"name": "a", "sql": "WITH x AS (SELECT 1) SELECT * FROM x"}]}) == []
    assert split_qualified("`ops db`.`res`") == ("ops db", "res")


def test_suite_lookup_order(tmp_path: Path) -> None:
    (tmp_path / "checks").mkdir()
    mine = tmp_path / "checks" / "referential.yml"
    mine.write_text("foreign_keys: true\n")
    assert find_suite("checks/referential.yml", str(tmp_path)) == mine  # the runbook's own wins
    assert find_suite("referential", str(tmp_path)) == mine
    assert find_suite("business-example", str(tmp_path)).name == "business-example.yml"  # the project's
    with pytest.raises(InputError, match="not found"):
        find_suite("nope", str(tmp_path))


def test_suite_problems_have_positions(tmp_path: Path) -> None:
    p = tmp_path / "s.yml"
    p.write_text("vars: {a: 1}\nrules:\n  - {name: r, sql: 'SELECT 1', severity: fatal}\n")
    (problem,) = suite_problems(p)
    assert (problem.source.line, problem.path) == (3, "rules[0].severity") and "fatal" in problem.message
    p.write_text("description: nothing\n")
    assert "checks nothing" in suite_problems(p)[0].message
