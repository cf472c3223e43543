"""The snapshot's swap, any number of times in one run (issue 20 item 1): foreign key names are
unique per schema, and every swap moves the live tables' constraint names into the snapshot
schema. The second swap used to fail with ERROR 1050 "table ... __displaced2 already exists",
naming a table when the clash was a constraint."""

from __future__ import annotations

from typing import Any

import pymysql
import pytest

from engine.actions.snapshot import Snapshot
from engine.errors import ActionError
from engine.model import Status
from engine.mysql.snapshots import snapshot_schema
from tests.integration.test_dr_actions import run_step
from tests.integration.test_dr_snapshot import SET, _exec, _rows, ctx, destroy, shop, sums  # noqa: F401  (fixtures)

pytestmark = pytest.mark.integration


def _fk_names(db: pymysql.connections.Connection, schema: str) -> set[tuple[str, str]]:
    return {(r[0], r[1]) for r in _rows(db, "SELECT TABLE_NAME, CONSTRAINT_NAME FROM information_schema.REFERENTIAL_CONSTRAINTS"
                                            f" WHERE CONSTRAINT_SCHEMA = '{schema}'")}


def test_three_swaps_in_one_run(shop: str, ctx: Any, db: pymysql.connections.Connection) -> None:  # noqa: F811
    args = {"schema": shop, "tables": SET}
    live_fks = _fk_names(db, shop)
    snap = snapshot_schema(ctx.run_id)
    for n in range(1, 4):
        before = sums(ctx, shop)
        taken = run_step(Snapshot, args, ctx)  # after a swap the copies are live: the snapshot copies again
        assert taken.status is Status.CHANGED, (n, taken.msg)
        destroy(db, shop)
        undone = Snapshot(args, ctx).undo(taken.undo)
        assert undone.status is Status.CHANGED, (n, undone.msg)
        assert sums(ctx, shop) == before, n
        assert _fk_names(db, shop) == live_fks, n
    kept = {r[0] for r in _rows(db, f"SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{snap}'")}
    for t in ("authors", "books"):  # tags was dropped by destroy(): nothing of it to displace
        assert {f"{shop}__{t}__displaced", f"{shop}__{t}__displaced2", f"{shop}__{t}__displaced3"} <= kept
    names = [c for _, c in _fk_names(db, snap)]
    assert len(names) == len(set(names))


def test_a_clash_with_a_table_that_is_no_displaced_copy_names_the_constraint(
        shop: str, ctx: Any, db: pymysql.connections.Connection) -> None:  # noqa: F811
    args = {"schema": shop, "tables": ["authors", "books"]}
    taken = run_step(Snapshot, args, ctx)
    snap = snapshot_schema(ctx.run_id)
    # someone added a constraint of the live table's name to a copy (the copies have none)
    _exec(db, f"ALTER TABLE `{snap}`.`{shop}__books` ADD CONSTRAINT fk_books_author FOREIGN KEY (author_id)"
              f" REFERENCES `{snap}`.`{shop}__authors` (id)")
    with pytest.raises(ActionError) as exc:
        Snapshot(args, ctx).undo(taken.undo)
    text = exc.value.render()
    assert "fk_books_author" in text and f"{shop}__books" in text and "1050" in text, text
    assert "foreign key names are unique per schema" in text
