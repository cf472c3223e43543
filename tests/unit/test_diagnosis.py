"""engine.mysql.diagnosis: every MySQL error class the SPEC names has a meaning and a next step."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from engine.mysql.diagnosis import diagnose, is_retryable, known_errnos

REQUIRED = [1044, 1045, 1062, 1114, 1146, 1205, 1213, 1290, 1451, 1452, 3730, 1153, 2006, 2013]
RETRYABLE = {1205, 1213, 2006, 2013}
NOT_RETRYABLE = {1044, 1045, 1062, 1114, 1146, 1290, 1451, 1452, 3730, 1153}


@pytest.mark.parametrize("errno", REQUIRED)
def test_required_codes_have_meaning_and_next_step(errno: int) -> None:
    diag = diagnose(errno)
    assert diag is not None, errno
    assert diag.errno == errno
    assert diag.name.startswith(("ER_", "CR_"))
    assert len(diag.meaning) > 10 and len(diag.next_step) > 10
    assert diag.hint() == f"{diag.meaning}; {diag.next_step}"


@pytest.mark.parametrize("errno", sorted(RETRYABLE))
def test_retryable(errno: int) -> None:
    assert is_retryable(errno)
    assert diagnose(errno).retryable  # type: ignore[union-attr]


@pytest.mark.parametrize("errno", sorted(NOT_RETRYABLE))
def test_not_retryable(errno: int) -> None:
    assert not is_retryable(errno)


def test_lost_connection_codes_drop_the_session() -> None:
    # The adapter drops its connection on these so the next query reconnects.
    for errno in (2006, 2013, 1927, 1153):
        assert diagnose(errno).lost_connection  # type: ignore[union-attr]
    for errno in (1205, 1213, 1062):
        assert not diagnose(errno).lost_connection  # type: ignore[union-attr]


def test_3730_is_mysql_only_but_known() -> None:
    # MariaDB reports a dropped FK parent as 1451; MySQL 8 as 3730. The table knows both.
    assert "foreign key" in diagnose(3730).meaning  # type: ignore[union-attr]
    assert "parent" in diagnose(1451).meaning  # type: ignore[union-attr]


def test_unknown_and_missing() -> None:
    assert diagnose(None) is None
    assert diagnose(99999) is None
    assert not is_retryable(None)
    assert not is_retryable(99999)


def test_access_errors_say_not_retryable() -> None:
    for errno in (1044, 1045):
        assert "not retryable" in diagnose(errno).next_step  # type: ignore[union-attr]


def test_no_duplicate_entries_in_source() -> None:
    # A second _d(...) for the same errno silently overwrites the first; forbid it.
    tree = ast.parse(Path(__file__).resolve().parents[2].joinpath("engine/mysql/diagnosis.py").read_text())
    seen: list[int] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "_d":
            first = node.args[0]
            assert isinstance(first, ast.Constant) and isinstance(first.value, int), "errno must be a literal"
            seen.append(first.value)
    assert len(seen) == len(set(seen)), sorted(e for e in seen if seen.count(e) > 1)
    assert sorted(seen) == known_errnos()
