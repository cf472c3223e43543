"""The smaller defects of issue 7 item 10 that concern the transport, sql and wait_for."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cliutil import cli, out_of

pytestmark = pytest.mark.integration

LOCAL = "all:\n  vars: {mysql_user: root, mysql_host: 127.0.0.1}\n  hosts:\n    h: {connection: local}\n"


@pytest.fixture
def not_ssh() -> Iterator[int]:
    """A port that answers, but with HTTP."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    stop = threading.Event()

    def serve() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield srv.getsockname()[1]
    stop.set()
    t.join()
    srv.close()


def _play(tmp_path: Path, runbook: str, inventory: str = LOCAL, *extra: str):
    (tmp_path / "rb.yml").write_text(runbook)
    (tmp_path / "inv.yml").write_text(inventory)
    return cli("play", "rb.yml", "-i", "inv.yml", *extra, cwd=tmp_path, home=tmp_path / "home")


ONE_SHELL = "name: x\nstages:\n  - name: s\n    steps:\n      - name: a\n        shell: 'true'\n"


def test_a_port_that_is_not_ssh_is_a_clean_connect_error(tmp_path: Path, not_ssh: int) -> None:
    """Was: paramiko's traceback on stderr."""
    res = _play(tmp_path, ONE_SHELL, f"all:\n  hosts:\n    web: {{ssh_host: 127.0.0.1, ssh_port: {not_ssh}, ssh_user: root}}\n")
    out = res.stdout + res.stderr
    assert "Traceback" not in out, out
    assert res.returncode == 1
    assert "answers but does not speak SSH" in out


def test_the_1045_hint_is_printed_once(tmp_path: Path) -> None:
    res = _play(tmp_path, "name: x\nstages:\n  - name: s\n    steps:\n      - name: a\n        sql: SELECT 1\n",
                "all:\n  vars: {mysql_user: nobody_rbt, mysql_password: not-the-password-7, mysql_host: 127.0.0.1}\n"
                "  hosts:\n    h: {connection: local}\n")
    out = out_of(res)
    assert res.returncode == 1
    assert "1045" in out
    assert out.count("check mysql_user/mysql_password") == 1, out


def test_a_failed_statement_of_a_long_step_is_shown_truncated(tmp_path: Path, schema: str) -> None:
    """Was: the whole SQL text of the step, printed and journaled."""
    filler = ", ".join(f"({i})" for i in range(3000))
    res = _play(tmp_path, f"""
name: long
stages:
  - name: s
    steps:
      - name: Long
        sql: "CREATE TABLE `{schema}`.t (id INT PRIMARY KEY); INSERT INTO `{schema}`.t VALUES {filler}; INSERT INTO `{schema}`.nope VALUES (1)"
""")
    out = out_of(res)
    assert res.returncode == 1
    assert "statement 3 of 3 failed" in out and "nope" in out
    assert "(2999)" not in out  # the long second statement is not shown: it did not fail


def test_wait_for_a_port_from_the_host_under_dash(tmp_path: Path) -> None:
    """Was: `exec 3<>/dev/tcp/...` under /bin/sh (dash on Debian): the port always read closed."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    try:
        res = _play(tmp_path, f"""
name: port
stages:
  - name: s
    steps:
      - name: Port
        wait_for: {{port: {srv.getsockname()[1]}, host: 127.0.0.1, from: host, timeout: 5}}
""")
    finally:
        srv.close()
    assert res.returncode == 0, out_of(res)


def test_wait_for_timeout_bounds_one_poll(tmp_path: Path) -> None:
    """Was: a 2 s wait_for whose poll took 8 s was reported ok after 8 s."""
    res = _play(tmp_path, """
name: slow poll
stages:
  - name: s
    steps:
      - name: Slow
        wait_for: {sql: "SELECT SLEEP(8) = 0", timeout: 2}
""")
    out = out_of(res)
    assert res.returncode == 1, out
    assert "still not true after 2s" in out, out


def test_tags_that_select_nothing_are_said(tmp_path: Path) -> None:
    res = _play(tmp_path, ONE_SHELL, LOCAL, "--tags", "nosuchtag")
    out = out_of(res)
    assert "--tags nosuchtag: no stage or step has this tag" in out
    recap = out.split("RECAP", 1)[1]
    assert "select no step: nothing runs" in recap, out


def test_no_inventory_warns_that_the_run_targets_this_machine(tmp_path: Path) -> None:
    (tmp_path / "rb.yml").write_text(ONE_SHELL)
    res = cli("play", "rb.yml", cwd=tmp_path, home=tmp_path / "home")
    out = out_of(res)
    assert res.returncode == 0, out
    assert "no inventory given (-i): the run targets this machine" in out
