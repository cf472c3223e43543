"""Isolation (issue 7 item 9): what one step does to its MySQL session (USE, SET SESSION,
user variables, an open transaction) never reaches the next step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.model import Host
from engine.run.context import Connections
from tests.cliutil import cli, out_of

pytestmark = pytest.mark.integration


def test_session_settings_do_not_leak_into_the_next_step(tmp_path: Path, db, schema: str) -> None:
    """Was: the second step ran in `schema` with lock_wait_timeout = 10 and @x = 5."""
    (tmp_path / "inv.yml").write_text("all:\n  vars: {mysql_user: root, mysql_host: 127.0.0.1}\n  hosts:\n    h: {connection: local}\n")
    (tmp_path / "rb.yml").write_text(f"""
name: isolation
stages:
  - name: s
    steps:
      - name: Change the session
        sql: "USE `{schema}`; SET SESSION lock_wait_timeout = 10; SET @x = 5; SET SESSION sql_log_bin = 0"
      - name: Look
        sql: SELECT DATABASE() AS d, @@session.lock_wait_timeout AS l, @x AS x, @@session.sql_log_bin AS b
        register: r
      - name: Clean
        assert:
          that:
            - r.rows[0].d is none
            - r.rows[0].l != 10
            - r.rows[0].x is none
            - r.rows[0].b == 1
""")
    res = cli("play", "rb.yml", "-i", "inv.yml", cwd=tmp_path, home=tmp_path / "home")
    assert res.returncode == 0, out_of(res)


def test_an_open_transaction_does_not_reach_the_next_step(mysql_settings, db, schema: str) -> None:
    with db.cursor() as cur:
        cur.execute(f"CREATE TABLE `{schema}`.t (id INT PRIMARY KEY) ENGINE=InnoDB")
    conns = Connections(Host("h", {"mysql_user": "root", "mysql_host": "127.0.0.1"}, ("all",), connection="local"))
    try:
        conns.sql().query("START TRANSACTION")
        conns.sql().query(f"INSERT INTO `{schema}`.t VALUES (1)")
        first = conns.sql().connection_id  # type: ignore[attr-defined]
        conns.begin_step()
        assert conns.sql().query(f"SELECT COUNT(*) AS n FROM `{schema}`.t").rows == ({"n": 0},)
        assert conns.sql().connection_id == first  # type: ignore[attr-defined]  # reset, not reconnected
    finally:
        conns.close()


def test_own_sessions_come_from_a_per_host_pool(mysql_settings) -> None:
    conns = Connections(Host("h", {"mysql_user": "root", "mysql_host": "127.0.0.1"}, ("all",), connection="local"))
    seen: list[int] = []
    conns.on_sql_connect = lambda host, cid: seen.append(cid)
    try:
        main = conns.sql().connection_id  # type: ignore[attr-defined]
        with conns.own_sql() as own:
            own.query("SET @mine = 1")
            mine = own.connection_id  # type: ignore[attr-defined]
        with conns.own_sql() as again:  # the same session, reset
            assert again.connection_id == mine  # type: ignore[attr-defined]
            assert again.query("SELECT @mine AS m").rows == ({"m": None},)
        assert main != mine and seen == [main, mine]  # both journaled (resume can find them)
    finally:
        conns.close()


def test_a_plain_read_needs_no_reset_and_a_read_that_sets_state_gets_one(mysql_settings) -> None:
    """The session is reset only after a statement that may have changed it: a plain SELECT
    leaves it as it was (no round trip), ``SELECT @v := …``, ``LAST_INSERT_ID(x)`` or a call of a
    stored function do not count as plain."""
    conns = Connections(Host("h", {"mysql_user": "root", "mysql_host": "127.0.0.1"}, ("all",), connection="local"))
    try:
        s: Any = conns.sql()
        s.query("SELECT 1 AS one")
        conns.begin_step()
        # No COM_RESET_CONNECTION: the session's own counters still hold the first step's SELECT.
        assert int(s.query("SHOW SESSION STATUS LIKE 'Com_select'").rows[0]["Value"]) >= 1
        for leaky in ("SELECT @leak := 5 AS v", "SELECT LAST_INSERT_ID(42) AS v", "SELECT 1 INTO @leak"):
            s.query(leaky)
            conns.begin_step()
            row = s.query("SELECT @leak AS v, LAST_INSERT_ID() AS l").rows[0]
            assert row == {"v": None, "l": 0}, leaky
            conns.begin_step()
    finally:
        conns.close()
