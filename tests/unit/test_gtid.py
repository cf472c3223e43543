"""GTID arithmetic (engine/mysql/gtid.py): MariaDB positions and MySQL sets."""

from __future__ import annotations

import pytest

from engine.mysql.gtid import MariadbGtidPos, MysqlGtidSet, missing_text, parse_gtids

U1 = "73f86016-978b-11ee-ade5-8d2a2a562feb"
U2 = "8a94f357-aab4-11df-86ab-c80aa9429562"


def test_mariadb_positions_compare_per_domain() -> None:
    have = MariadbGtidPos.parse("0-1-100")
    want = MariadbGtidPos.parse("0-1-105,1-3-2")
    assert [str(r) for r in have.missing(want)] == ["0-1-101..0-1-105", "1-3-1..1-3-2"]
    assert missing_text(have.missing(want)) == "0-1-101..0-1-105, 1-3-1..1-3-2 (7 transactions)"
    assert not have.contains(want) and want.contains(have)
    assert str(have.union(want)) == "0-1-105,1-3-2"
    # A new primary continues the domain's sequence: 0-2-106 has everything 0-1-105 had.
    assert MariadbGtidPos.parse("0-2-106,1-3-2").contains(want)
    assert MariadbGtidPos.parse("").empty and str(MariadbGtidPos.parse(" ")) == ""


def test_mariadb_binlog_state_keeps_the_last_of_each_domain() -> None:
    assert str(MariadbGtidPos.parse("0-1-10,0-2-12,0-1-11")) == "0-2-12"


def test_mariadb_same_seq_different_server_is_divergence() -> None:
    a, b = MariadbGtidPos.parse("0-2-19"), MariadbGtidPos.parse("0-1-19")
    assert a.missing(b) == [] and b.missing(a) == []
    assert a.diverged(b) == ["0-2-19 vs 0-1-19"]


def test_mysql_sets_are_exact() -> None:
    have = MysqlGtidSet.parse(f"{U1}:1-100:103")
    want = MysqlGtidSet.parse(f"{U1.upper()}:1-105,\n{U2}:7")
    assert [str(r) for r in have.missing(want)] == [f"{U1}:101-102", f"{U1}:104-105", f"{U2}:7"]
    assert sum(r.count for r in have.missing(want)) == 5
    assert str(have.union(want)) == f"{U1}:1-105,{U2}:7"
    assert have.union(want).contains(have) and have.union(want).count() == 106


def test_mysql_tagged_gtids() -> None:
    s = MysqlGtidSet.parse(f"{U1}:1-5:tag1:1-2")
    assert str(s) == f"{U1}:1-5,{U1}:tag1:1-2" and s.count() == 7


def test_bad_text_and_mixed_flavors_are_refused() -> None:
    with pytest.raises(ValueError, match="domain-server-seq"):
        MariadbGtidPos.parse("0-1")
    with pytest.raises(ValueError, match="uuid:1-5"):
        MysqlGtidSet.parse("abc:1-3")
    with pytest.raises(TypeError, match="cannot compare"):
        parse_gtids("0-1-2", "mariadb").missing(parse_gtids(f"{U1}:1", "mysql"))
