"""Pure logic of the restore: load order with cycles, statement heads per conflict strategy,
the LOAD DATA conversion and the server's info line."""

from __future__ import annotations

from engine.actions.restore.convert import Shape, counts, load_data_payload, strip_body, types_allow_load_data
from engine.actions.restore.order import order_tables
from engine.mysql.target import normalize_type


def shape(**kw: object) -> Shape:
    base: dict[str, object] = dict(table="t", columns=("id", "v", "g"), skip=frozenset({"g"}), explicit=False,
                                   conflict="error", charset="utf8mb4", load_data=True)
    base.update(kw)
    return Shape(**base)  # type: ignore[arg-type]


def test_order_parents_first_cycles_grouped() -> None:
    fks = [("child", "parent", "fk1"), ("grandchild", "child", "fk2"), ("a", "b", "fk3"), ("b", "a", "fk4"),
           ("tree", "tree", "fk5"), ("b", "parent", "fk6")]
    order, level, group, parents = order_tables(["grandchild", "child", "parent", "a", "b", "tree", "solo"], fks,
                                                {"solo": 10, "parent": 5})
    assert order.index("parent") < order.index("child") < order.index("grandchild")
    assert order.index("parent") < order.index("a") and order.index("parent") < order.index("b")
    assert group["a"] == group["b"] is not None and group["tree"] is not None and group["tree"] != group["a"]
    assert group["parent"] is None and group["solo"] is None
    assert parents["grandchild"] == {"child"} and parents["a"] == {"parent"} and parents["b"] == {"parent"}
    assert order[0] == "solo"  # level 0, largest first
    assert level["grandchild"] == 2


def test_heads_per_strategy() -> None:
    body = b"(1,'a',2),\n(2,'b',4)"
    assert shape().insert(body) == b"INSERT INTO `t` VALUES " + body
    assert shape(conflict="ignore").insert(body).startswith(b"INSERT IGNORE INTO `t` VALUES ")
    assert shape(conflict="replace", explicit=True).insert(body).startswith(b"REPLACE INTO `t` (`id`, `v`, `g`) VALUES ")
    # upsert never sends ON DUPLICATE KEY UPDATE (it matches any unique key): plain INSERT, staged when rows exist
    assert shape(conflict="upsert").insert(body) == b"INSERT INTO `t` VALUES " + body
    assert shape().insert(body, table="_rb_stage_x").startswith(b"INSERT INTO `_rb_stage_x` VALUES ")
    assert shape(conflict="replace").insert(body, force_insert=True).startswith(b"INSERT INTO")


def test_load_data_conversion() -> None:
    sql = shape(conflict="ignore").load_data_sql("rb:t:0:0", True)
    assert sql.startswith("LOAD DATA LOCAL INFILE 'rb:t:0:0' IGNORE INTO TABLE `t` CHARACTER SET utf8mb4")
    assert sql.endswith("LINES STARTING BY '(' TERMINATED BY '),\\n' (`id`, `v`, @rb_skip)")
    assert "TERMINATED BY ')," + "'" in shape().load_data_sql("x", False)
    assert b"".join(load_data_payload(b"(1),\n(2)", True)) == b"(1),\n(2),\n"
    v = shape(verify_literals=True)
    assert v.uses_load_data(b"(1,'a',2)") and shape().uses_load_data(b"(1,0x00ff,2)")  # the scan vouched for the table
    assert not v.uses_load_data(b"(1,0x00ff,2)") and not v.uses_load_data(b"(1,_binary 'x',2)")
    assert not v.uses_load_data(b"(1,b'101',2)") and shape(conflict="upsert").uses_load_data(b"(1,'a',2)")
    assert not shape(load_data=False).uses_load_data(b"(1,'a',2)")
    assert not types_allow_load_data(["int(11)", "point"]) and types_allow_load_data(["int(11)", "varchar(3)"])


def test_info_line_and_body() -> None:
    assert counts("&Records: 3  Duplicates: 1  Warnings: 1", 2) == (3, 1)
    assert counts("Records: 5  Deleted: 0  Skipped: 2  Warnings: 2", 3) == (5, 2)
    assert counts("", 1) == (1, 0)
    text = b"INSERT INTO `t` VALUES (1,'a;'),\n(2,NULL);\n"
    assert bytes(strip_body(text, text.index(b"("))) == b"(1,'a;'),\n(2,NULL)"
    assert normalize_type("INT(11) UNSIGNED") == normalize_type("int unsigned")
    assert normalize_type("varchar(20) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin") == "varchar(20)"
