"""engine.mysql.binlog.judged: the replay's second pass passes on only the transactions the
first judged (file, position, digest), in order, from a resume's start on; none missing."""

from __future__ import annotations

import pytest

from engine.mysql.binlog.judged import BinlogChanged, Judged
from engine.mysql.binlog.reader import Transaction


def _t(file: str, pos: int, digest: int, *, touched: bool = True) -> Transaction:
    t = Transaction(file, pos, 0, end_pos=pos + 10, digest=digest)
    if touched:
        t.row_counts[("orders", "insert")] = 1
    return t


FIRST = [_t("b.000001", 100, 1), _t("b.000001", 200, 0, touched=False), _t("b.000001", 300, 3), _t("b.000002", 4, 4)]


def _judged() -> Judged:
    j = Judged()
    for t in FIRST:
        j.add(t)
    return j


def test_the_same_window_passes_whole_and_from_a_resume() -> None:
    assert [t.pos for t in _judged().verify(FIRST, ("b.000001", 4))] == [100, 200, 300, 4]
    assert [t.pos for t in _judged().verify(FIRST[2:], ("b.000001", 250))] == [300, 4]
    assert [t.pos for t in _judged().verify(FIRST[3:], ("b.000002", 4))] == [4]
    assert [t.pos for t in _judged().verify(FIRST[3:], ("b.000001", 350))] == [4]  # after the last of its file


@pytest.mark.parametrize("second, said", [
    ([FIRST[0], _t("b.000001", 300, 99), FIRST[3]], "b.000001:300: its events differ from the ones the check read"),
    ([FIRST[0], _t("b.000001", 250, 7), FIRST[2]], "b.000001:250: the check read the transaction at b.000001:300 there"),
    ([FIRST[0], FIRST[2], _t("b.000001", 4, 4)], "b.000001:4: the check read the transaction at b.000002:4 there"),
    (FIRST + [_t("b.000002", 90, 5)], "b.000002:90: the check read no transaction of these tables there"),
])
def test_a_transaction_not_judged_is_refused_before_it_is_passed_on(second: list[Transaction], said: str) -> None:
    passed: list[int] = []
    with pytest.raises(BinlogChanged) as exc:
        for t in _judged().verify(second, ("b.000001", 4)):
            passed.append(t.pos)
    assert "the binlog changed since the check" in exc.value.message and said in exc.value.message
    assert len(passed) == second.index(next(t for t in second if said.startswith(f"{t.file}:{t.pos}:")))


def test_one_missing_at_the_end_is_refused() -> None:
    with pytest.raises(BinlogChanged, match="the transaction at b.000002:4 the check read is not there any more"):
        list(_judged().verify(FIRST[:3], ("b.000001", 4)))


def test_an_untouched_transaction_changing_is_no_matter() -> None:
    second = [FIRST[0], _t("b.000001", 200, 42, touched=False), FIRST[2], FIRST[3]]
    assert len(list(_judged().verify(second, ("b.000001", 4)))) == 4
