"""Pure helpers of the DR actions (no server): df parsing, gzip size correction, keyset SQL, names.

(Pure logic; it lives next to the DR integration tests so the DR work stays in one place.)
"""

from __future__ import annotations

import pytest

from engine.actions.disk_space import GZIP_WRAP, parse_df, pick_wrap
from engine.actions.guard import flavor_of, version_tuple
from engine.errors import ActionError
from engine.mysql.snapshots import _keyset, _keyset_params, fit, snap_table_name, snapshot_schema


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Filesystem 1-blocks Used Available Capacity Mounted on\n/dev/vda 270553174016 23766114304 85178179584 22% /\n",
         ("/dev/vda", 270553174016, 85178179584, "/")),
        ("Filesystem 1024-blocks Used Available Capacity Mounted on\nmy fs 100 50 40 56% /mnt/my dir\n",
         ("my fs", 100, 40, "/mnt/my dir")),
        # a long device name wrapped onto two lines (df without -P)
        ("Filesystem 1K-blocks Used Available Use% Mounted on\n/dev/mapper/very-long-volume-name\n 100 50 40 56% /data\n",
         ("/dev/mapper/very-long-volume-name", 100, 40, "/data")),
        ("Filesystem 1-blocks Used Available Capacity Mounted on\nnone 0 0 0 - /proc/x\n", ("none", 0, 0, "/proc/x")),
    ],
)
def test_parse_df(text: str, expected: tuple[str, int, int, str]) -> None:
    assert parse_df(text) == expected


def test_parse_df_garbage() -> None:
    with pytest.raises(ActionError, match="cannot parse df output"):
        parse_df("df: /x: No such file or directory\n")


def test_pick_wrap_small_file_keeps_isize() -> None:
    assert pick_wrap(5662204, 1163031) == 5662204


def test_pick_wrap_adds_the_missing_4gib() -> None:
    # A 2 GiB .gz of SQL is ~10 GiB uncompressed; ISIZE says 1.5 GiB (10 GiB mod 4 GiB).
    true_size = 10 * 1024**3
    assert pick_wrap(true_size % GZIP_WRAP, 2 * 1024**3) == true_size
    # A 1 GiB .gz whose ISIZE is 0.9 GiB: 4.9 GiB (ratio 4.9) beats 0.9 GiB (ratio 0.9).
    assert pick_wrap(int(0.9 * 1024**3), 1024**3) == int(0.9 * 1024**3) + GZIP_WRAP


def test_keyset_composite() -> None:
    assert _keyset(("a",), ">") == "`a` > %s"
    assert _keyset(("a", "b"), ">") == "(`a` > %s OR (`a` = %s AND `b` > %s))"
    assert _keyset(("a", "b"), "<=") == "(`a` < %s OR (`a` = %s AND `b` <= %s))"
    assert _keyset_params((1, "x", 3)) == [1, 1, "x", "x", 3]


def test_names() -> None:
    assert snapshot_schema("20261122-012313-1086") == "_rb_snap_20261122_012313_1086"
    long = snapshot_schema("x" * 100)
    assert len(long) == 64 and long != snapshot_schema("x" * 99)
    assert fit("a" * 64) == "a" * 64
    assert snap_table_name("shop", "orders", set(), "s/1") == "shop__orders"
    other = snap_table_name("shop", "orders", {"shop__orders"}, "s/2")
    assert other.startswith("shop__orders__") and other != "shop__orders"


def test_flavor_and_version() -> None:
    assert flavor_of("10.11.19-MariaDB-0+deb12u1", "Debian 12") == "mariadb"
    assert flavor_of("8.0.36-28", "Percona Server (GPL), Release 28") == "percona"
    assert flavor_of("8.4.0", "MySQL Community Server - GPL") == "mysql"
    assert version_tuple("5.5.5-10.6.12-MariaDB") == (10, 6, 12)
    assert version_tuple("8.0.36-28") == (8, 0, 36)
    assert version_tuple("garbage") == (0, 0, 0)
