"""``mysql_service`` never signals another server because a stale pid file names it.

A pid file outlives a ``kill -9``; pids are reused. On a machine with several servers (the
shared one, private test and lab instances) the dead server's pid may by now belong to ANOTHER
``mariadbd``: its comm is ``mariadbd`` too, so a check on the program's name alone made
``mysql_service: {state: stopped}`` send SIGTERM to that other server. A pid counts only when
the process is this server: its command line names this datadir or its working directory is
this datadir (mysqld chdirs there at start-up) — or, when no datadir is known, its command line
names this port or socket. Two private instances here; the machine's server is never touched.
"""

from __future__ import annotations

import json
import subprocess
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cliutil import cli as _cli
from tests.cliutil import out_of
from tests.recovery_server import PrivateServer

STOP = """name: stop
stages:
  - name: s
    steps:
      - {name: status, mysql_service: {state: status}, register: st}
      - {name: stop, mysql_service: {state: stopped, timeout: 60s}}
"""
STATUS = """name: status
stages:
  - name: s
    steps:
      - {name: status, mysql_service: {state: status}, register: st}
"""


@pytest.fixture
def two_servers(tmp_path: Path) -> Iterator[tuple[PrivateServer, PrivateServer]]:
    mine, other = PrivateServer(tmp_path / "mine"), PrivateServer(tmp_path / "other")
    mine.start()
    try:
        other.start()
        try:
            yield mine, other
        finally:
            other.kill()
    finally:
        mine.kill()


def inventory(srv: PrivateServer, path: Path, *, datadir: bool) -> Path:
    """A local inventory for ``srv``: pid file, start command, and its datadir or not."""
    datadir_line = f"      datadir: {srv.datadir}\n" if datadir else ""
    path.write_text(f"""all:
  hosts:
    db1:
      connection: local
      mysql_host: 127.0.0.1
      mysql_port: {srv.port}
      mysql_user: root
      mysql_pid_file: {srv.pid_file}
{datadir_line}      mysql_start_cmd: "{shlex.join(srv.cmd())}"
""")
    return path


def play(tmp_path: Path, text: str, inv: Path) -> tuple[int, str, dict[str, dict]]:  # type: ignore[type-arg]
    (tmp_path / "rb.yml").write_text(text)
    res = _cli("play", "rb.yml", "-i", str(inv), "--report", "r.json", cwd=tmp_path, home=tmp_path / "home", timeout=180)
    out = out_of(res)
    steps = {s["step"]: s for s in json.loads((tmp_path / "r.json").read_text())["steps"]}
    return res.returncode, out, steps


@pytest.mark.parametrize("datadir", [True, False], ids=["datadir", "port-only"])
def test_a_stale_pid_file_naming_another_mariadbd_stops_nothing(
        two_servers: tuple[PrivateServer, PrivateServer], tmp_path: Path, datadir: bool) -> None:
    mine, other = two_servers
    other_pid = other.pids()[0]
    mine.kill()  # a crash: its pid file stays behind
    mine.pid_file.write_text(f"{other_pid}\n")  # ...and its pid is now the other server's
    rc, out, steps = play(tmp_path, STOP, inventory(mine, tmp_path / "inv.yml", datadir=datadir))
    assert rc == 0, out
    st = steps["status"]["registered"]
    assert st["running"] is False and st["pid"] is None, st
    assert steps["stop"]["status"] == "ok", out  # already stopped: nothing signalled
    assert other.pids() == [other_pid]
    other.connect().close()  # the other server still answers


@pytest.mark.parametrize("datadir", [True, False], ids=["datadir", "port-only"])
def test_the_running_server_is_found_past_a_pid_file_naming_another(
        two_servers: tuple[PrivateServer, PrivateServer], tmp_path: Path, datadir: bool) -> None:
    """This server runs, its pid file names the other one (a stale file from an old run): status
    names this server's pid, and a stop stops this server, not the other."""
    mine, other = two_servers
    mine_pid, other_pid = mine.pids()[0], other.pids()[0]
    mine.pid_file.write_text(f"{other_pid}\n")
    inv = inventory(mine, tmp_path / "inv.yml", datadir=datadir)
    rc, out, steps = play(tmp_path, STATUS, inv)
    assert rc == 0, out
    assert steps["status"]["registered"]["pid"] == mine_pid, out
    rc, out, steps = play(tmp_path, STOP, inv)
    assert rc == 0 and steps["stop"]["status"] == "changed", out
    assert mine.pids() == [] and other.pids() == [other_pid]
    other.connect().close()


def test_a_server_whose_datadir_is_in_its_option_file_is_found_by_its_working_directory(tmp_path: Path) -> None:
    """``mariadbd --defaults-file=my.cnf``: its command line names no datadir (the machine's
    own server runs that way). mysqld works in its datadir: status finds it by that, and a
    stop stops it."""
    srv = PrivateServer(tmp_path / "cnf")
    srv.initialize()
    cnf = tmp_path / "my.cnf"
    options = [o.removeprefix("--") for o in srv.cmd()[2:]]  # past the binary and --no-defaults
    cnf.write_text("[mysqld]\n" + "\n".join(options) + "\n")
    proc = subprocess.Popen([srv.cmd()[0], f"--defaults-file={cnf}"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        srv.wait_ready(120, proc)
        assert srv.pids() == []  # nothing on its command line names the datadir
        inv = inventory(srv, tmp_path / "inv.yml", datadir=True)
        rc, out, steps = play(tmp_path, STATUS, inv)
        assert rc == 0 and steps["status"]["registered"]["pid"] == proc.pid, out
        rc, out, steps = play(tmp_path, STOP, inv)
        assert rc == 0 and steps["stop"]["status"] == "changed", out
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
