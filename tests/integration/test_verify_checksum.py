"""``verify``'s checksums (and the snapshot's) say "identical" only when a comparison that
cannot cancel out says so (issue 15 item 11).

Each test builds a table and its copy in ``<schema>_copy`` that differ in one way the old
pt-table-checksum form (``BIT_XOR`` of ``CRC32(CONCAT_WS('#', …))``) could not see, or saw
only by luck: two rows changed identically (the CRC deltas are equal, XOR cancels them), a
FLOAT changed in its 8th digit (``CONCAT`` renders a FLOAT with 6), a ``#`` moved across a
column boundary, NULL against ``''`` and ``'NULL'``, duplicate rows in a table without a key.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest

from engine.mysql.checksum import table_checksum
from engine.mysql.introspect import table_shape
from tests.cliutil import cli, out_of
from tests.conftest import MYSQL_HOST, MYSQL_PASSWORD, MYSQL_PORT, MYSQL_USER
from tests.integration.test_verify import by_name, make_ctx, verify

pytestmark = pytest.mark.integration


def _exec(db: pymysql.connections.Connection, *stmts: str) -> None:
    with db.cursor() as cur:
        for s in stmts:
            cur.execute(s)


@pytest.fixture
def twin(db: pymysql.connections.Connection, schema: str) -> Iterator[str]:
    """``schema`` and an empty ``<schema>_copy``; the test creates the same table in both."""
    _exec(db, f"DROP DATABASE IF EXISTS `{schema}_copy`", f"CREATE DATABASE `{schema}_copy`")
    yield schema
    _exec(db, f"DROP DATABASE IF EXISTS `{schema}_copy`")


def both(db: pymysql.connections.Connection, schema: str, *stmts: str) -> None:
    """Run each statement (``{s}`` = the schema) in the schema and in its copy."""
    for target in (schema, f"{schema}_copy"):
        _exec(db, *(s.format(s=f"`{target}`") for s in stmts))


def checksum_of(schema: str, table: str, chunk_rows: int = 7) -> dict[str, object]:
    res = verify({"schema": schema, "checksums": {"against_schema": f"{schema}_copy", "tables": [table],
                                                  "chunk_rows": chunk_rows}})
    return by_name(res)[f"checksum {table} vs {schema}_copy"]


def test_two_rows_changed_identically_differ(db: pymysql.connections.Connection, twin: str) -> None:
    both(db, twin, "CREATE TABLE {s}.orders (id INT PRIMARY KEY, status TINYINT NOT NULL, total DECIMAL(10,2) NOT NULL)",
         "INSERT INTO {s}.orders SELECT seq, 1, 20.00 FROM {s}.seq_1_to_40")
    _exec(db, f"UPDATE `{twin}_copy`.orders SET status = 3 WHERE id IN (10, 11)")
    with db.cursor() as cur:  # the server sees it (the fixture is what the issue describes)
        cur.execute(f"CHECKSUM TABLE `{twin}`.orders, `{twin}_copy`.orders")
        sums = [r[1] for r in cur.fetchall()]
    assert sums[0] != sums[1]
    c = checksum_of(twin, "orders", chunk_rows=100)
    assert c["result"] == "fail", c
    assert c["count"] == 2
    assert c["sample"] == [{"id": 10, "diff": "differs"}, {"id": 11, "diff": "differs"}]
    assert "id 10" in str(c["detail"])


def test_four_rows_changed_identically_across_chunks(db: pymysql.connections.Connection, twin: str) -> None:
    both(db, twin, "CREATE TABLE {s}.orders (id INT PRIMARY KEY, status TINYINT NOT NULL)",
         "INSERT INTO {s}.orders SELECT seq, 1 FROM {s}.seq_1_to_40")
    _exec(db, f"UPDATE `{twin}_copy`.orders SET status = 3 WHERE id IN (12, 13, 14, 15, 31, 32)")
    c = checksum_of(twin, "orders", chunk_rows=10)
    assert c["result"] == "fail" and c["count"] == 6
    assert [s["id"] for s in c["sample"]] == [12, 13, 14, 15, 31, 32]


def test_float_changed_in_its_8th_digit_differs(db: pymysql.connections.Connection, twin: str) -> None:
    both(db, twin, "CREATE TABLE {s}.m (id INT PRIMARY KEY, f FLOAT NULL, d DOUBLE NULL)",
         "INSERT INTO {s}.m VALUES (1, 1.2345678, 0.1), (2, 16777216, 1e300), (3, NULL, NULL)")
    _exec(db, f"UPDATE `{twin}_copy`.m SET f = 1.2345679 WHERE id = 1",
          f"UPDATE `{twin}_copy`.m SET f = 16777218 WHERE id = 2")
    with db.cursor() as cur:  # the two FLOATs print alike: what the old form hashed
        cur.execute(f"SELECT CONCAT(a.f) = CONCAT(b.f) FROM `{twin}`.m a JOIN `{twin}_copy`.m b USING (id) WHERE id IN (1, 2)")
        assert [r[0] for r in cur.fetchall()] == [1, 1]
    c = checksum_of(twin, "m")
    assert c["result"] == "fail", c
    assert c["sample"] == [{"id": 1, "diff": "differs"}, {"id": 2, "diff": "differs"}]


def test_double_changed_in_its_last_bit_differs(db: pymysql.connections.Connection, twin: str) -> None:
    both(db, twin, "CREATE TABLE {s}.m (id INT PRIMARY KEY, d DOUBLE NOT NULL)", "INSERT INTO {s}.m VALUES (1, 0.1)")
    _exec(db, f"UPDATE `{twin}_copy`.m SET d = 0.10000000000000002 WHERE id = 1")
    assert checksum_of(twin, "m")["result"] == "fail"


def test_null_empty_and_the_word_null_differ(db: pymysql.connections.Connection, twin: str) -> None:
    both(db, twin, "CREATE TABLE {s}.t (id INT PRIMARY KEY, s VARCHAR(10) NULL, n INT NULL)")
    _exec(db, f"INSERT INTO `{twin}`.t VALUES (1, NULL, 1), (2, '', 2), (3, 'NULL', 3), (4, 'x', NULL), (5, 'y', 0)",
          f"INSERT INTO `{twin}_copy`.t VALUES (1, '', 1), (2, 'NULL', 2), (3, NULL, 3), (4, 'x', 0), (5, 'y', NULL)")
    c = checksum_of(twin, "t")
    assert c["result"] == "fail" and c["count"] == 5, c


def test_a_separator_moved_across_a_column_boundary_differs(db: pymysql.connections.Connection, twin: str) -> None:
    both(db, twin, "CREATE TABLE {s}.t (id INT PRIMARY KEY, a VARCHAR(10) NOT NULL, b VARCHAR(10) NOT NULL)")
    _exec(db, f"INSERT INTO `{twin}`.t VALUES (2, 'a#', 'b')", f"INSERT INTO `{twin}_copy`.t VALUES (2, 'a', '#b')")
    assert checksum_of(twin, "t")["result"] == "fail"


def test_column_boundaries_are_not_ambiguous(db: pymysql.connections.Connection, twin: str) -> None:
    both(db, twin, "CREATE TABLE {s}.t (id INT PRIMARY KEY, a VARCHAR(10) NOT NULL, b VARCHAR(10) NOT NULL)")
    _exec(db, f"INSERT INTO `{twin}`.t VALUES (1, 'a', 'bc'), (2, 'a#', 'b'), (3, 'a,1', 'b')",
          f"INSERT INTO `{twin}_copy`.t VALUES (1, 'ab', 'c'), (2, 'a', '#b'), (3, 'a', '1,b')")
    c = checksum_of(twin, "t")
    assert c["result"] == "fail" and c["count"] == 3, c


def test_identical_copies_pass(db: pymysql.connections.Connection, twin: str) -> None:
    both(db, twin, "CREATE TABLE {s}.t (id INT PRIMARY KEY, a VARCHAR(10) NULL, f FLOAT, ts TIMESTAMP(3) NULL, b BLOB, j BIT(5))",
         "INSERT INTO {s}.t VALUES (1, 'a#', 1.2345678, '2024-03-10 02:30:00.123', x'00ff', b'101'), (2, NULL, -0.5, NULL, NULL, NULL)")
    c = checksum_of(twin, "t")
    assert c["result"] == "pass" and c["count"] == 0, c


def test_duplicates_in_a_table_without_a_key(db: pymysql.connections.Connection, twin: str) -> None:
    both(db, twin, "CREATE TABLE {s}.logs (msg VARCHAR(20) NOT NULL, n INT NOT NULL)")
    _exec(db, f"INSERT INTO `{twin}`.logs VALUES ('a', 1), ('b', 1), ('b', 1), ('x', 1), ('x', 1), ('p', 1), ('q', 1)",
          f"INSERT INTO `{twin}_copy`.logs VALUES ('a', 1), ('c', 1), ('c', 1), ('y', 1), ('y', 1), ('p', 3), ('q', 3)")
    c = checksum_of(twin, "logs")
    assert c["result"] == "fail", c
    assert c["count"] == 12  # b b x x p q here, c c y y p' q' there
    assert {(s["msg"], s["n"], s["diff"]) for s in c["sample"]} >= {("b", 1, f"2 here, 0 in {twin}_copy"),
                                                                     ("c", 1, f"0 here, 2 in {twin}_copy")}


def test_rows_only_on_one_side_are_named(db: pymysql.connections.Connection, twin: str) -> None:
    both(db, twin, "CREATE TABLE {s}.items (o INT NOT NULL, line INT NOT NULL, sku VARCHAR(10), PRIMARY KEY (o, line))",
         "INSERT INTO {s}.items SELECT seq, 1, 'x' FROM {s}.seq_1_to_20")
    _exec(db, f"DELETE FROM `{twin}_copy`.items WHERE o = 5", f"INSERT INTO `{twin}_copy`.items VALUES (5, 2, 'x'), (99, 1, 'y')")
    c = checksum_of(twin, "items")
    assert c["sample"] == [{"o": 5, "line": 1, "diff": f"missing from {twin}_copy"},
                           {"o": 5, "line": 2, "diff": f"only in {twin}_copy"},
                           {"o": 99, "line": 1, "diff": f"only in {twin}_copy"}]


def test_a_key_duplicated_in_a_copy_without_a_primary_key(db: pymysql.connections.Connection, twin: str) -> None:
    _exec(db, f"CREATE TABLE `{twin}`.t (id INT PRIMARY KEY, v INT NOT NULL)", f"CREATE TABLE `{twin}_copy`.t (id INT NOT NULL, v INT NOT NULL)",
          f"INSERT INTO `{twin}`.t VALUES (4, 1), (5, 1), (6, 1)", f"INSERT INTO `{twin}_copy`.t VALUES (4, 1), (5, 1), (5, 1), (6, 1)")
    c = checksum_of(twin, "t")
    assert c["result"] == "fail" and c["sample"] == [{"id": 5, "diff": "differs"}], c


def test_digest_does_not_depend_on_the_session_time_zone(db: pymysql.connections.Connection, schema: str) -> None:
    _exec(db, f"CREATE TABLE `{schema}`.t (id INT PRIMARY KEY, ts TIMESTAMP NULL)",
          f"INSERT INTO `{schema}`.t VALUES (1, '2024-11-03 12:00:00'), (2, NULL)")
    ctx = make_ctx()
    try:
        sql = ctx.sql()
        shape = table_shape(sql, schema, "t")
        sql.query("SET SESSION time_zone = '+00:00'")
        utc = table_checksum(sql, shape)
        sql.query("SET SESSION time_zone = '+05:00'")
        assert table_checksum(sql, shape) == utc
    finally:
        ctx.conns.close()


def test_digest_of_a_float_change_in_its_8th_digit(db: pymysql.connections.Connection, schema: str) -> None:
    """The snapshot records this digest: it must see what verify sees."""
    _exec(db, f"CREATE TABLE `{schema}`.m (id INT PRIMARY KEY, f FLOAT)", f"INSERT INTO `{schema}`.m VALUES (1, 1.2345678), (2, 1.5)")
    ctx = make_ctx()
    try:
        sql = ctx.sql()
        before = table_checksum(sql, table_shape(sql, schema, "m"))
        _exec(db, f"UPDATE `{schema}`.m SET f = 1.2345679 WHERE id = 1")
        assert table_checksum(sql, table_shape(sql, schema, "m")) != before
    finally:
        ctx.conns.close()


def test_two_identical_changes_fail_a_play(tmp_path: Path, db: pymysql.connections.Connection, twin: str) -> None:
    both(db, twin, "CREATE TABLE {s}.orders (id INT PRIMARY KEY, status TINYINT NOT NULL)",
         "INSERT INTO {s}.orders SELECT seq, 1 FROM {s}.seq_1_to_30")
    _exec(db, f"UPDATE `{twin}_copy`.orders SET status = 3 WHERE id IN (20, 21)")
    (tmp_path / "inv.yml").write_text(textwrap.dedent(f"""\
        all:
          vars: {{mysql_host: {MYSQL_HOST}, mysql_port: {MYSQL_PORT}, mysql_user: {MYSQL_USER}{", mysql_password: " + MYSQL_PASSWORD if MYSQL_PASSWORD else ""}}}
          hosts:
            db1: {{connection: local}}
        """))
    (tmp_path / "rb.yml").write_text(textwrap.dedent("""\
        name: checksums through play
        targets: db1
        stages:
          - name: verify
            steps:
              - name: Same as the copy
                verify:
                  schema: "{{ schema }}"
                  checksums: {against_schema: "{{ schema }}_copy"}
        """))
    res = cli("play", "rb.yml", "-i", "inv.yml", "-e", f"schema={twin}", cwd=tmp_path, home=tmp_path / "home", timeout=120)
    out = out_of(res)
    assert res.returncode == 1, out
    assert "checksum orders" in out and "id 20" in out, out
