"""The console keeps one progress line/bar per "name | detail" label while the detail changes."""

from __future__ import annotations

import io

from engine.report.console import Console


def test_a_label_with_a_detail_keeps_one_key_per_name() -> None:
    out = io.StringIO()
    con = Console(out, color=False)
    con.progress("db1", 0, 1000, "InnoDB redo | LSN 1/100, 0%")
    con.progress("db1", 420, 1000, "InnoDB redo | LSN 42/100, 42%, ETA 3.0s")
    con.progress("db1", 450, 1000, "InnoDB redo | LSN 45/100, 45%, ETA 2.5s")  # same 10 % bucket: quiet
    con.progress("db1", 1, 1, "InnoDB redo | done")
    lines = out.getvalue().splitlines()
    assert lines == ["    db1 InnoDB redo: LSN 42/100, 42%, ETA 3.0s (42%)", "    db1 InnoDB redo: done (100%)"]


def test_a_plain_label_is_unchanged() -> None:
    out = io.StringIO()
    Console(out, color=False).progress("db1", 5, 10, "orders")
    assert out.getvalue() == "    db1 orders: 5/10 (50%)\n"
