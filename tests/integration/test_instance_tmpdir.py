"""A private mariadbd keeps its temporary files to itself.

At start-up every mariadbd deletes each ``#sql*`` file of its tmpdir (``mysql_rm_tmp_tables``,
"temporary tables left by a crash"), whoever owns it. A private server that used the machine's
``/tmp`` (the default) therefore deleted the live internal temporary tables of every other server
using ``/tmp`` — the machine's MariaDB on 3306 among them. When the ``.MAI`` of an
information_schema temporary table vanished between its creation and its opening, MariaDB
10.11's cleanup dereferenced NULL (``ha_maria::drop_table`` ← ``free_tmp_table``) and the server
died with SIGSEGV, taking every session down (``bench/tmpdir_sweep.py`` reproduces it).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.mysql.instance import MariadbInstance

pytestmark = pytest.mark.integration


def test_a_private_server_leaves_the_machines_tmpdir_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    machine_tmp = tmp_path / "machine-tmp"
    machine_tmp.mkdir()
    # What another server keeps there while it runs: an internal temporary table in Aria.
    live = [machine_tmp / "#sql-temptable-2f05-54-1a0.MAI", machine_tmp / "#sql-temptable-2f05-54-1a0.MAD"]
    for f in live:
        f.write_bytes(b"\xfe\xfe\x07\x01")
    monkeypatch.setenv("TMPDIR", str(machine_tmp))  # mariadbd's default tmpdir (then /tmp)
    inst = MariadbInstance(tmp_path / "db", binlog=False, buffer_pool="32M")
    try:
        inst.start()
        assert [f.name for f in live if not f.exists()] == []
        tmpdir = Path(str(inst.sql("SELECT @@tmpdir")[0][0]))
        assert tmpdir.resolve().is_relative_to(inst.dir.resolve())
        # The server's own temporary tables work there (an information_schema join goes to Aria).
        assert inst.sql("SELECT COUNT(*) FROM information_schema.COLUMNS c JOIN information_schema.TABLES t"
                        " ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME"
                        " WHERE c.TABLE_SCHEMA = 'mysql'")[0][0]
    finally:
        inst.stop()


def test_the_start_command_names_the_private_tmpdir(tmp_path: Path) -> None:
    # What an inventory's mysql_start_cmd holds: a restart through it must not sweep /tmp either.
    inst = MariadbInstance(tmp_path / "db", binlog=False)
    cmd = inst.cmd()
    assert f"--tmpdir={inst.tmpdir}" in cmd and inst.tmpdir.is_dir()
    assert inst.tmpdir.resolve().is_relative_to(inst.dir.resolve())
