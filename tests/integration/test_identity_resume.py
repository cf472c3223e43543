"""The identity guard outlives the process: a run resumed (or rolled back) against a server
that is not the one its first attempt gathered facts from refuses its destructive steps.
"A different server" is simulated by changing @@server_id of a private server (the lab) in
between: the machine's server is shared, and every sql and shell step checks the identity."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pymysql

import pytest

from tests.cliutil import cli, out_of, rows

pytestmark = pytest.mark.integration


@pytest.fixture
def private(lab_server: tuple[str, int]) -> Iterator[tuple[str, pymysql.connections.Connection, int]]:
    inv, port = lab_server
    db = pymysql.connect(host="127.0.0.1", port=port, user="root", autocommit=True)
    original = rows(db, "SELECT @@global.server_id")[0][0]
    with db.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS idschema")
        cur.execute("CREATE DATABASE idschema")
    yield inv, db, original
    with db.cursor() as cur:
        cur.execute("SET GLOBAL server_id = %s", (original,))
        cur.execute("SET GLOBAL read_only = OFF")
    db.close()


def test_resumed_run_refuses_a_different_server(tmp_path: Path, private) -> None:
    inv, db, server_id = private
    schema = "idschema"
    (tmp_path / "rb.yml").write_text(f"""
name: identity across resume
stages:
  - name: assess
    steps:
      - name: Facts
        mysql_facts: {{schemas: [{schema}]}}
  - name: gate
    steps:
      - name: Gate
        sql: SELECT COUNT(*) FROM `{schema}`.gate
  - name: fence
    steps:
      - name: Fence
        stop_writes: {{}}
""")
    home = tmp_path / "home"
    first = cli("play", str(tmp_path / "rb.yml"), "-i", inv, cwd=tmp_path, home=home)
    assert first.returncode == 1 and "1146" in out_of(first)
    run_id = next(p.name for p in home.iterdir() if p.is_dir())
    with db.cursor() as cur:
        cur.execute(f"CREATE TABLE `{schema}`.gate (id INT)")
        cur.execute("SET GLOBAL server_id = %s", (server_id + 4242,))

    other = cli("resume", run_id, cwd=tmp_path, home=home)
    out = out_of(other)
    assert other.returncode == 1, out
    assert "refusing to" in out and "gathered by mysql_facts" in out
    assert rows(db, "SELECT @@global.read_only")[0][0] == 0  # nothing was fenced

    with db.cursor() as cur:
        cur.execute("SET GLOBAL server_id = %s", (server_id,))
    same = cli("resume", run_id, cwd=tmp_path, home=home)
    assert same.returncode == 0, out_of(same)
    assert rows(db, "SELECT @@global.read_only")[0][0] == 1

    # Rolling back from another process checks the identity too.
    with db.cursor() as cur:
        cur.execute("SET GLOBAL server_id = %s", (server_id + 4242,))
    refused = cli("rollback", run_id, "--yes", cwd=tmp_path, home=home)
    assert refused.returncode == 1 and "refusing to" in out_of(refused)
    assert rows(db, "SELECT @@global.read_only")[0][0] == 1
    with db.cursor() as cur:
        cur.execute("SET GLOBAL server_id = %s", (server_id,))
    done = cli("rollback", run_id, "--yes", cwd=tmp_path, home=home)
    assert done.returncode == 0, out_of(done)
    assert rows(db, "SELECT @@global.read_only")[0][0] == 0
