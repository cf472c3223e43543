"""snapshot and its undo on the real MariaDB: destroy the tables, undo, same checksums.

The tables have foreign keys between them (authors ← books ← tags), a table outside the
snapshot pointing in (reviews → books), a composite primary key (tags), a trigger (books) and
a generated column, so the swap has to get every constraint right.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest

from engine.actions.snapshot import Snapshot
from engine.errors import ActionError, SqlError
from engine.model import Status
from engine.mysql.snapshots import drop_snapshot, list_snapshots, snapshot_schema, table_checksum, table_shape
from tests.conftest import mysql_root
from tests.integration.test_dr_actions import make_ctx, run_step

pytestmark = pytest.mark.integration
SET = ["authors", "books", "tags"]


def _exec(db: pymysql.connections.Connection, *stmts: str) -> None:
    with db.cursor() as cur:
        for s in stmts:
            cur.execute(s)


def _one(db: pymysql.connections.Connection, sql: str) -> Any:
    with db.cursor() as cur:
        cur.execute(sql)
        row = cur.fetchone()
    return row[0] if row else None


@pytest.fixture
def shop(schema: str, db: pymysql.connections.Connection) -> str:
    s = f"`{schema}`"
    _exec(db,
          f"CREATE TABLE {s}.authors (id INT PRIMARY KEY, name VARCHAR(50) NOT NULL, born DATE NULL)",
          f"CREATE TABLE {s}.books (id INT PRIMARY KEY, author_id INT NOT NULL, title VARCHAR(100), price DECIMAL(8,2),"
          " title_len INT AS (CHAR_LENGTH(title)) VIRTUAL, created VARCHAR(20),"
          " CONSTRAINT fk_books_author FOREIGN KEY (author_id) REFERENCES authors (id) ON DELETE CASCADE)",
          f"CREATE TABLE {s}.tags (book_id INT NOT NULL, tag VARCHAR(20) NOT NULL, weight DOUBLE NULL,"
          " PRIMARY KEY (book_id, tag), FOREIGN KEY (book_id) REFERENCES books (id))",
          f"CREATE TABLE {s}.reviews (id INT PRIMARY KEY, book_id INT NOT NULL, stars TINYINT,"
          " CONSTRAINT fk_reviews_book FOREIGN KEY (book_id) REFERENCES books (id))",
          f"CREATE TRIGGER {s}.books_bi BEFORE INSERT ON {s}.books FOR EACH ROW SET NEW.created = 'trigger'",
          f"INSERT INTO {s}.authors SELECT seq, CONCAT('author ', seq), IF(seq % 3 = 0, NULL, '1970-01-01' + INTERVAL seq DAY)"
          f" FROM {s}.seq_1_to_50",
          f"INSERT INTO {s}.books (id, author_id, title, price) SELECT seq, 1 + seq % 50, CONCAT('book ', seq), seq / 7"
          f" FROM {s}.seq_1_to_500",
          f"INSERT INTO {s}.tags SELECT b.seq, CONCAT('t', t.seq), IF(t.seq = 2, NULL, b.seq / 3)"
          f" FROM {s}.seq_1_to_500 b JOIN {s}.seq_1_to_2 t",
          f"INSERT INTO {s}.reviews SELECT seq, seq, 1 + seq % 5 FROM {s}.seq_1_to_200")
    return schema


@pytest.fixture
def ctx() -> Iterator[Any]:
    c = make_ctx()
    yield c
    c.conns.close()
    conn = mysql_root()
    _exec(conn, "SET SESSION foreign_key_checks = 0", f"DROP DATABASE IF EXISTS `{snapshot_schema(c.run_id)}`")
    conn.close()


def sums(ctx: Any, schema: str) -> dict[str, tuple[int, str]]:
    sql = ctx.sql()
    return {t: table_checksum(sql, table_shape(sql, schema, t), chunk_rows=64) for t in SET}


def destroy(db: pymysql.connections.Connection, schema: str) -> None:
    s = f"`{schema}`"
    _exec(db, "SET SESSION foreign_key_checks = 0",
          f"DROP TABLE {s}.tags",
          f"UPDATE {s}.authors SET name = 'corrupted' WHERE id % 2 = 0",
          f"DELETE FROM {s}.books WHERE id > 250",
          f"TRUNCATE TABLE {s}.authors",
          f"INSERT INTO {s}.authors VALUES (999, 'intruder', NULL)",
          "SET SESSION foreign_key_checks = 1")


def test_snapshot_destroy_undo_same_checksums(shop: str, ctx: Any, db: pymysql.connections.Connection) -> None:
    before = sums(ctx, shop)
    args = {"schema": shop, "tables": SET, "chunk_rows": 37}
    res = run_step(Snapshot, args, ctx)
    assert res.status is Status.CHANGED, res.msg
    snap = snapshot_schema(ctx.run_id)
    assert res.data["snapshot_schema"] == snap
    assert {t: (v["rows"], v["checksum"]) for t, v in res.data["tables"].items()} == before
    assert res.data["disk"]["ok"] is True
    assert run_step(Snapshot, args, ctx).msg == "nothing to do"  # second run: already taken

    destroy(db, shop)
    assert sums_or_missing(ctx, shop) != before

    undone = Snapshot(args, ctx).undo(res.undo)
    assert undone.status is Status.CHANGED, undone.msg
    assert sums(ctx, shop) == before
    assert all(t["ok"] for t in undone.data["tables"].values())

    # Constraints are what they were: FKs between restored tables, from outside, and triggers.
    fks = {(r[0], r[1], r[2], r[3]) for r in _rows(db, (
        "SELECT TABLE_NAME, CONSTRAINT_NAME, UNIQUE_CONSTRAINT_SCHEMA, REFERENCED_TABLE_NAME"
        f" FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = '{shop}'"))}
    assert fks == {("books", "fk_books_author", shop, "authors"), ("tags", "tags_ibfk_1", shop, "books"),
                   ("reviews", "fk_reviews_book", shop, "books")}
    assert "ON DELETE CASCADE" in _rows(db, f"SHOW CREATE TABLE `{shop}`.books")[0][1]
    assert _one(db, f"SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = '{shop}'") == 1
    _exec(db, f"INSERT INTO `{shop}`.books (id, author_id, title) VALUES (9001, 1, 'new')")
    assert _one(db, f"SELECT created FROM `{shop}`.books WHERE id = 9001") == "trigger"
    with pytest.raises(pymysql.err.IntegrityError) as err:
        _exec(db, f"INSERT INTO `{shop}`.books (id, author_id) VALUES (9002, 12345)")
    assert err.value.args[0] == 1452
    # The displaced tables are kept, and hold nothing live.
    kept = {r[0] for r in _rows(db, f"SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{snap}'")}
    assert {f"{shop}__authors__displaced", f"{shop}__books__displaced"} <= kept
    assert _one(db, f"SELECT name FROM `{snap}`.`{shop}__authors__displaced`") == "intruder"
    assert _one(db, "SELECT COUNT(*) FROM information_schema.REFERENTIAL_CONSTRAINTS"
                    f" WHERE CONSTRAINT_SCHEMA = '{snap}' AND UNIQUE_CONSTRAINT_SCHEMA <> '{snap}'") == 0
    # ON DELETE CASCADE works again on the restored pair.
    _exec(db, f"DELETE FROM `{shop}`.tags WHERE book_id IN (SELECT id FROM `{shop}`.books WHERE author_id = 2)",
          f"DELETE FROM `{shop}`.reviews WHERE book_id IN (SELECT id FROM `{shop}`.books WHERE author_id = 2)",
          f"DELETE FROM `{shop}`.authors WHERE id = 2")
    assert _one(db, f"SELECT COUNT(*) FROM `{shop}`.books WHERE author_id = 2") == 0

    # Undo again: nothing left to swap, and the verification sees the deletes made since.
    again = Snapshot(args, ctx).undo(res.undo)
    assert again.status is Status.FAILED and again.data["swapped"] == []
    assert "authors" in again.msg


def sums_or_missing(ctx: Any, schema: str) -> Any:
    try:
        return sums(ctx, schema)
    except ActionError:
        return "missing table"


def _rows(db: pymysql.connections.Connection, sql: str) -> list[tuple[Any, ...]]:
    with db.cursor() as cur:
        cur.execute(sql)
        return list(cur.fetchall())


def test_undo_twice_right_after_restore_is_ok(shop: str, ctx: Any, db: pymysql.connections.Connection) -> None:
    args = {"schema": shop, "tables": ["authors", "books"]}
    res = run_step(Snapshot, args, ctx)
    _exec(db, f"UPDATE `{shop}`.books SET price = 0")
    assert Snapshot(args, ctx).undo(res.undo).status is Status.CHANGED
    second = Snapshot(args, ctx).undo(res.undo)
    assert second.status is Status.OK and second.msg == "snapshot already restored; checksums match"


def test_snapshot_default_tables_list_and_drop(shop: str, ctx: Any) -> None:
    res = run_step(Snapshot, {"schema": shop}, ctx)
    assert set(res.data["tables"]) == {"authors", "books", "tags", "reviews"}
    found = [s for s in list_snapshots(ctx.sql()) if s.run_id == ctx.run_id]
    assert len(found) == 1 and {t.source_table for t in found[0].tables} == set(res.data["tables"])
    assert found[0].hostname and found[0].bytes > 0 and found[0].tables[0].status == "complete"
    drop_snapshot(ctx.sql(), ctx.run_id)
    assert not [s for s in list_snapshots(ctx.sql()) if s.run_id == ctx.run_id]
    with pytest.raises(ActionError, match="no snapshot for run"):
        drop_snapshot(ctx.sql(), ctx.run_id)


def test_snapshot_refuses_wrong_host(shop: str) -> None:
    ctx = make_ctx({"mysql_identity": "not-this-host"})
    with pytest.raises(ActionError, match="refusing to snapshot .* expected not-this-host"):
        Snapshot({"schema": shop}, ctx).apply()
    assert not [s for s in list_snapshots(ctx.sql()) if s.run_id == ctx.run_id]


def test_snapshot_of_a_dropped_table_records_it_absent_and_undo_removes_it_again(
        shop: str, ctx: Any, db: pymysql.connections.Connection) -> None:
    """The classic P0: a table was dropped. The snapshot neither refuses nor invents a copy:
    the table is recorded absent; the restore then creates it; undo puts back the state before
    (no such table), keeping the created table aside in the snapshot schema."""
    _exec(db, f"DROP TABLE `{shop}`.tags")
    before = {t: table_checksum(ctx.sql(), table_shape(ctx.sql(), shop, t)) for t in ("authors", "books")}
    args = {"schema": shop, "tables": ["authors", "books", "tags"]}
    res = run_step(Snapshot, args, ctx)
    assert res.status is Status.CHANGED, res.msg
    assert res.data["tables"]["tags"]["absent"] is True and "1 absent: tags" in res.msg
    assert any("does not exist: recorded as absent" in w for w in res.warnings)
    assert run_step(Snapshot, args, ctx).msg == "nothing to do"  # taken, absent table included
    # the restore: tags created again (and rows changed elsewhere)
    _exec(db, f"CREATE TABLE `{shop}`.tags (book_id INT NOT NULL, tag VARCHAR(20) NOT NULL, weight DOUBLE NULL,"
              " PRIMARY KEY (book_id, tag), FOREIGN KEY (book_id) REFERENCES books (id))",
          f"INSERT INTO `{shop}`.tags VALUES (1, 'restored', 1)", f"UPDATE `{shop}`.authors SET name = 'x'")
    undone = Snapshot(args, ctx).undo(res.undo)
    assert undone.status is Status.CHANGED, undone.msg
    assert _one(db, f"SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{shop}' AND TABLE_NAME = 'tags'") == 0
    assert {t: table_checksum(ctx.sql(), table_shape(ctx.sql(), shop, t)) for t in ("authors", "books")} == before
    kept = _one(db, f"SELECT COUNT(*) FROM `{snapshot_schema(ctx.run_id)}`.`{undone.data['tables']['tags']['displaced_table']}`")
    assert kept == 1  # the created table is kept aside, never dropped
    assert Snapshot(args, ctx).undo(res.undo).status is Status.OK  # again: nothing left to do


def test_dump_snapshot_and_undo(shop: str, ctx: Any, db: pymysql.connections.Connection, tmp_path: Any) -> None:
    before = sums(ctx, shop)
    path = str(tmp_path / "snap" / "shop.sql")
    args = {"schema": shop, "tables": SET, "method": "dump", "path": path}
    res = run_step(Snapshot, args, ctx)
    assert res.status is Status.CHANGED, res.msg
    assert os.path.getsize(path) > 10000
    assert run_step(Snapshot, args, ctx).msg == "nothing to do"
    destroy(db, shop)
    undone = Snapshot(args, ctx).undo(res.undo)
    assert undone.status is Status.CHANGED, undone.msg
    assert sums(ctx, shop) == before
    assert _one(db, f"SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = '{shop}'") == 1


def test_dump_snapshot_does_not_fit(shop: str, ctx: Any, db: pymysql.connections.Connection, small_fs: str) -> None:
    _exec(db, f"CREATE TABLE `{shop}`.big (id INT PRIMARY KEY, pad CHAR(255))",
          f"INSERT INTO `{shop}`.big SELECT seq, REPEAT('x', 255) FROM `{shop}`.seq_1_to_40000",
          f"ANALYZE TABLE `{shop}`.big")
    res = Snapshot({"schema": shop, "tables": ["big"], "method": "dump", "path": f"{small_fs}/big.sql"}, ctx).apply()
    assert res.status is Status.FAILED and res.msg.startswith("snapshot would not fit: need ")
    assert not os.path.exists(f"{small_fs}/big.sql")


def test_undo_refuses_wrong_host(shop: str, ctx: Any) -> None:
    res = run_step(Snapshot, {"schema": shop, "tables": ["authors"]}, ctx)
    wrong = make_ctx({"mysql_identity": "not-this-host"})
    with pytest.raises(ActionError, match="refusing to restore the snapshot"):
        Snapshot({}, wrong).undo(res.undo)


def test_undo_detects_a_tampered_copy(shop: str, ctx: Any, db: pymysql.connections.Connection) -> None:
    res = run_step(Snapshot, {"schema": shop, "tables": ["authors"]}, ctx)
    _exec(db, f"UPDATE `{snapshot_schema(ctx.run_id)}`.`{shop}__authors` SET name = 'tampered' WHERE id = 7")
    bad = Snapshot({}, ctx).undo(res.undo)
    assert bad.status is Status.FAILED and "differ from the snapshot" in bad.msg


def test_undo_detects_two_rows_tampered_alike(shop: str, ctx: Any, db: pymysql.connections.Connection) -> None:
    """Two rows changed the same way: their CRC deltas are equal and a BIT_XOR cancels them."""
    res = run_step(Snapshot, {"schema": shop, "tables": ["authors"]}, ctx)
    _exec(db, f"UPDATE `{snapshot_schema(ctx.run_id)}`.`{shop}__authors` SET name = REPLACE(name, 'author', 'editor')"
              " WHERE id IN (13, 14)")
    bad = Snapshot({}, ctx).undo(res.undo)
    assert bad.status is Status.FAILED and "differ from the snapshot" in bad.msg


def test_sql_errors_stay_sql_errors(shop: str, ctx: Any) -> None:
    with pytest.raises(SqlError):
        ctx.sql().query(f"SELECT * FROM `{shop}`.nope")
