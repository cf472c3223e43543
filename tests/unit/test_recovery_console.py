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


class _Writes(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, s: str) -> int:
        self.writes += 1
        return super().write(s)


def test_a_batch_writes_its_lines_once_in_order_when_it_ends() -> None:
    out = _Writes()
    con = Console(out, color=False)
    with con.batch():
        con.line("one")
        with con.batch():  # nested: the outer batch writes
            con.line("two")
        con.line("three")
        assert out.getvalue() == ""  # held until the batch ends
    assert out.getvalue() == "one\ntwo\nthree\n"
    assert out.writes == 1
    con.line("four")  # after the batch: at once
    assert out.getvalue().endswith("four\n")


def test_a_batch_keeps_the_order_when_rich_prints_a_line_itself() -> None:
    out = io.StringIO()
    con = Console(out, color=True)
    from rich.console import Console as RichConsole

    con._rich = RichConsole(file=out, highlight=False, soft_wrap=True, force_terminal=True, color_system=None)
    with con.batch():
        con.line("held")
        con.line("by rich", "green")  # no colour system: rich prints it, after what is held
        con.line("last")
    assert out.getvalue().splitlines() == ["held", "by rich", "last"]
