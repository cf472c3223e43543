"""engine/mysql/introspect.py on the real server: what it reads, and what reading it costs.

The FK and column lookups run on every snapshot, swap, restore and verify. Written as joins of
two information_schema tables, each made MariaDB fill the second table for every schema of the
server (~80 temporary tables, a dozen Aria files, per lookup); they read one table at a time now.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from engine.model import MysqlSettings
from engine.mysql.introspect import ForeignKey, columns, foreign_keys, foreign_keys_touching, schema_foreign_keys
from engine.transport.mysql import MysqlSession
from tests.conftest import MYSQL_HOST, MYSQL_PORT, MYSQL_USER, root_execute

pytestmark = pytest.mark.integration


@pytest.fixture
def sql(schema: str) -> Iterator[MysqlSession]:
    s = MysqlSession(MysqlSettings(host=MYSQL_HOST, port=MYSQL_PORT, user=MYSQL_USER, password=None))
    yield s
    s.close()


@pytest.fixture
def shop(schema: str) -> Iterator[tuple[str, str]]:
    """``schema``: parents, a composite FK, a self-reference, a view; ``other``: a child of ``schema``."""
    other = f"rbt_{uuid.uuid4().hex[:10]}"
    s = f"`{schema}`"
    for stmt in (
        f"CREATE TABLE {s}.customers (id INT PRIMARY KEY)",
        f"CREATE TABLE {s}.skus (shop INT, code INT, PRIMARY KEY (code, shop))",
        f"CREATE TABLE {s}.orders (id INT PRIMARY KEY, customer INT, shop INT, code INT, parent INT,"
        f" total INT AS (id * 2) VIRTUAL, note TEXT NULL,"
        f" CONSTRAINT fk_customer FOREIGN KEY (customer) REFERENCES {s}.customers (id) ON DELETE CASCADE,"
        f" CONSTRAINT fk_sku FOREIGN KEY (code, shop) REFERENCES {s}.skus (code, shop) ON UPDATE SET NULL,"
        f" CONSTRAINT fk_parent FOREIGN KEY (parent) REFERENCES {s}.orders (id))",
        f"CREATE VIEW {s}.big_orders AS SELECT id FROM {s}.orders",
        f"CREATE DATABASE `{other}`",
        f"CREATE TABLE `{other}`.invoices (id INT PRIMARY KEY, customer INT,"
        f" CONSTRAINT fk_inv FOREIGN KEY (customer) REFERENCES {s}.customers (id))",
    ):
        root_execute(stmt)
    yield schema, other
    root_execute(f"DROP DATABASE IF EXISTS `{other}`")


def test_foreign_keys_composite_self_and_rules(sql: MysqlSession, shop: tuple[str, str]) -> None:
    schema, other = shop
    got = schema_foreign_keys(sql, schema)
    assert got == [
        ForeignKey(schema, "orders", "fk_customer", ("customer",), schema, "customers", ("id",), "RESTRICT", "CASCADE"),
        ForeignKey(schema, "orders", "fk_parent", ("parent",), schema, "orders", ("id",), "RESTRICT", "RESTRICT"),
        ForeignKey(schema, "orders", "fk_sku", ("code", "shop"), schema, "skus", ("code", "shop"), "SET NULL", "RESTRICT"),
    ]
    assert schema_foreign_keys(sql, schema, "orders") == got and schema_foreign_keys(sql, schema, "customers") == []
    assert [f["name"] for f in foreign_keys(sql, schema, "orders")] == ["fk_customer", "fk_parent", "fk_sku"]
    touching = foreign_keys_touching(sql, schema)
    assert touching == got + [ForeignKey(other, "invoices", "fk_inv", ("customer",), schema, "customers", ("id",),
                                         "RESTRICT", "RESTRICT")]


def test_columns_of_base_tables_only(sql: MysqlSession, shop: tuple[str, str]) -> None:
    schema, _ = shop
    cols = columns(sql, schema)
    assert sorted(cols) == ["customers", "orders", "skus"]  # not the view
    assert [(c.name, c.data_type, c.nullable, c.generated) for c in cols["orders"]] == [
        ("id", "int", False, False), ("customer", "int", True, False), ("shop", "int", True, False),
        ("code", "int", True, False), ("parent", "int", True, False), ("total", "int", True, True),
        ("note", "text", True, False)]
    assert sorted(columns(sql, schema, ["skus"])) == ["skus"]


def _created_tmp_tables(sql: MysqlSession) -> int:
    return int(sql.query("SHOW SESSION STATUS LIKE 'Created_tmp_tables'").rows[0]["Value"])


def test_a_lookup_reads_its_schema_not_the_whole_server(sql: MysqlSession, shop: tuple[str, str]) -> None:
    # Joined, each lookup built ~80 temporary tables here (the `sys` views of the server are
    # opened to fill the join's second table for every schema); one table at a time, two.
    schema, _ = shop
    for lookup in (lambda: schema_foreign_keys(sql, schema, "orders"), lambda: schema_foreign_keys(sql, schema),
                   lambda: columns(sql, schema)):
        before = _created_tmp_tables(sql)
        lookup()
        assert _created_tmp_tables(sql) - before <= 4
