"""A schema with one planted problem of every kind ``verify`` looks for, and its clean twin.

``build(db, schema, planted=True)`` creates:

* ``users`` (``email`` required; user 3 has ``''``), ``orders`` (``user_id`` nullable FK:
  order 7 has NULL, which is not an orphan; order 13 has total -5, a rule violation),
  ``order_items`` (composite PK), ``shipments`` (composite FK to order_items: shipment 2 points
  at (2, 9), which does not exist; shipment 3 at (2, NULL), not an orphan), ``staff``
  (self-reference: 5's manager 99 does not exist), ``logs`` (no primary key).
* ``copy`` of the same tables in ``<schema>_copy`` where orders 150 differs (chunk (100, 150]
  with chunk_rows 50) and ``logs`` holds ``{a, c, c}`` where the original holds ``{a, b, b}``:
  same COUNT and BIT_XOR (duplicates cancel), different SUM.
"""

from __future__ import annotations

from typing import Any

DDL = [
    "CREATE TABLE users (id INT PRIMARY KEY, email VARCHAR(100) NOT NULL, name VARCHAR(50) NULL, born DATE NULL)",
    "CREATE TABLE orders (id INT PRIMARY KEY, user_id INT NULL, total DECIMAL(10,2) NOT NULL, created_at DATETIME NOT NULL,"
    " CONSTRAINT fk_orders_user FOREIGN KEY (user_id) REFERENCES users (id))",
    "CREATE TABLE order_items (order_id INT NOT NULL, line INT NOT NULL, sku VARCHAR(20) NOT NULL, PRIMARY KEY (order_id, line),"
    " CONSTRAINT fk_items_order FOREIGN KEY (order_id) REFERENCES orders (id))",
    "CREATE TABLE shipments (id INT PRIMARY KEY, order_id INT NULL, line INT NULL,"
    " CONSTRAINT fk_ship_item FOREIGN KEY (order_id, line) REFERENCES order_items (order_id, line))",
    "CREATE TABLE staff (id INT PRIMARY KEY, manager_id INT NULL, CONSTRAINT fk_staff_manager FOREIGN KEY (manager_id) REFERENCES staff (id))",
    "CREATE TABLE logs (msg VARCHAR(20) NOT NULL)",
]


def _rows(planted: bool) -> dict[str, list[tuple[Any, ...]]]:
    users = [(i, f"user{i}@example.com", f"n{i}", "1990-01-01") for i in range(1, 11)]
    if planted:
        users[2] = (3, "", "n3", "1990-01-01")
    orders = [(i, (i % 10) + 1, 10.5 + i, "2024-01-01 10:00:00") for i in range(1, 201)]
    orders[6] = (7, None, 17.5, "2024-01-01 10:00:00")  # NULL FK: never an orphan
    if planted:
        orders[12] = (13, 4, -5, "2024-01-01 10:00:00")
    items = [(o, ln, f"sku{o}-{ln}") for o in range(1, 21) for ln in (1, 2)]
    shipments = [(1, 1, 1), (3, 2, None), (4, 3, 2)]
    if planted:
        shipments.append((2, 2, 9))
    staff = [(1, None), (2, 1), (3, 1), (4, 2)] + ([(5, 99)] if planted else [(5, 2)])
    logs = [("a",), ("b",), ("b",)]
    return {"users": users, "orders": orders, "order_items": items, "shipments": shipments, "staff": staff, "logs": logs}


def _fill(cur: Any, schema: str, rows: dict[str, list[tuple[Any, ...]]]) -> None:
    cur.execute(f"USE `{schema}`")
    cur.execute("SET SESSION foreign_key_checks = 0")
    for ddl in DDL:
        cur.execute(ddl)
    for table, values in rows.items():
        marks = "(" + ", ".join(["%s"] * len(values[0])) + ")"
        cur.executemany(f"INSERT INTO `{table}` VALUES {marks}", values)
    cur.execute("SET SESSION foreign_key_checks = 1")


def build(db: Any, schema: str, *, planted: bool = True, copy: bool = True) -> str | None:
    """Fill ``schema``; with ``copy``, also create ``<schema>_copy`` (dropped by :func:`drop_copy`)."""
    rows = _rows(planted)
    with db.cursor() as cur:
        _fill(cur, schema, rows)
        if not copy:
            return None
        other = f"{schema}_copy"
        cur.execute(f"DROP DATABASE IF EXISTS `{other}`")
        cur.execute(f"CREATE DATABASE `{other}`")
        theirs = {t: list(v) for t, v in rows.items()}
        if planted:
            theirs["orders"][149] = (150, 1, 999.99, "2024-01-01 10:00:00")
            theirs["logs"] = [("a",), ("c",), ("c",)]
        _fill(cur, other, theirs)
        cur.execute(f"USE `{schema}`")
        return other


def drop_copy(db: Any, schema: str) -> None:
    with db.cursor() as cur:
        cur.execute("SET SESSION foreign_key_checks = 0")
        cur.execute(f"DROP DATABASE IF EXISTS `{schema}_copy`")
