"""SshShell against a real OpenSSH server (tests/sshd.py) and, through its tunnel, real MariaDB."""

from __future__ import annotations

import os
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.errors import CommandTimeout, ConnectError, OutcomeUnknown
from engine.model import HostKeyPolicy, MysqlSettings
from engine.mysql.instance import pid_alive
from engine.secrets import Secret
from engine.transport.mysql import MysqlSession
from engine.transport.ssh import SshShell
from tests.sshd import SshdServer, free_port

pytestmark = pytest.mark.integration


@pytest.fixture(params=["runner", "exec"])
def shell(sshd: SshdServer, request: pytest.FixtureRequest) -> Iterator[SshShell]:
    """Every command test runs on both paths: the long-lived runner (python3 on the host) and
    one exec channel per command (a host without python3)."""
    sh = SshShell(sshd.settings(), runner=request.param == "runner")
    if request.param == "runner":
        sh.run("true")  # the connection's first command launches the runner; the test's commands use it
    yield sh
    if request.param == "runner":
        assert sh.no_runner is None  # the runner really was used
    sh.close()


def connect_error(sshd: SshdServer, **overrides: object) -> ConnectError:
    sh = SshShell(sshd.settings(**overrides))
    try:
        with pytest.raises(ConnectError) as info:
            sh.run("true")
    finally:
        sh.close()
    assert "\n" not in str(info.value)
    return info.value


# --------------------------------------------------------------------------- commands


def test_run_returns_stdout_stderr_and_rc(shell: SshShell) -> None:
    res = shell.run("echo out; echo err >&2; exit 3")
    assert (res.rc, res.stdout, res.stderr) == (3, "out\n", "err\n")
    assert res.cmd == "echo out; echo err >&2; exit 3"
    assert res.duration > 0


def test_zero_rc_and_multiline_command(shell: SshShell) -> None:
    res = shell.run("a=1\nif [ $a = 1 ]; then echo yes; fi")
    assert (res.rc, res.stdout) == (0, "yes\n")


def test_runs_under_bin_sh_without_bashrc(shell: SshShell) -> None:
    # root's .bashrc sets PYENV_ROOT: the test sshd must not source it (it costs ~125 ms a command)
    res = shell.run('echo "${PYENV_ROOT:-unset}"; readlink /proc/$$/exe')
    first, exe = res.stdout.split()
    assert first == "unset"
    assert os.path.realpath("/bin/sh") == exe


def test_stdin_str_and_bytes(shell: SshShell) -> None:
    assert shell.run("cat", stdin="hello\nworld\n").stdout == "hello\nworld\n"
    assert shell.run("wc -c", stdin=b"\x00\x01\x02").stdout.strip() == "3"
    assert shell.run("cat", stdin="").stdout == ""


def test_large_stdin_does_not_deadlock(shell: SshShell) -> None:
    data = os.urandom(3 * 1024 * 1024).hex().encode()  # 6 MB, larger than any SSH window
    res = shell.run("cat", stdin=data, timeout=60)
    assert res.rc == 0
    assert res.stdout.encode() == data


def test_chdir(shell: SshShell, tmp_path: Path) -> None:
    (tmp_path / "marker").write_text("x")
    res = shell.run("pwd; ls", chdir=str(tmp_path))
    assert res.stdout.splitlines() == [str(tmp_path), "marker"]
    assert shell.run("pwd", chdir="~").stdout.strip() == os.path.expanduser("~")


def test_missing_chdir_fails_before_the_command(shell: SshShell, tmp_path: Path) -> None:
    res = shell.run("touch should-not-exist; echo ran", chdir=str(tmp_path / "nope"))
    assert res.rc != 0
    assert "ran" not in res.stdout
    assert "nope" in res.stderr


def test_env(shell: SshShell) -> None:
    env = {"GREETING": "it's a \"test\" $HOME `x`", "EMPTY": ""}
    res = shell.run('printf "%s|%s" "$GREETING" "$EMPTY"', env=env)
    assert res.stdout == "it's a \"test\" $HOME `x`|"


def test_large_output_on_both_streams(shell: SshShell) -> None:
    ten_mb = 10 * 1024 * 1024
    res = shell.run(f"head -c {ten_mb} /dev/zero | tr '\\0' x; head -c 3000000 /dev/zero | tr '\\0' y >&2", timeout=60)
    assert res.rc == 0
    assert len(res.stdout) == ten_mb and set(res.stdout) == {"x"}
    assert len(res.stderr) == 3_000_000


def test_timeout_raises_and_kills_the_command(shell: SshShell, tmp_path: Path) -> None:
    pidfile, finished = tmp_path / "pid", tmp_path / "finished"
    # Had run() waited for the command to end on its own, "finished" would be there: it was
    # stopped, not waited out (no clock: the sleep is only longer than any stop could take).
    with pytest.raises(CommandTimeout, match="timeout of 0.5s"):
        shell.run(f"echo $$ > {pidfile}; sleep 30; touch {finished}", timeout=0.5)
    assert not finished.exists()
    pid = int(pidfile.read_text())
    deadline = time.monotonic() + 60  # a guard against a hang, not a timing
    # sshd delivers the signal to the command's process group (asynchronously)
    while pid_alive(pid):
        assert time.monotonic() < deadline, "the timed-out command is still running"
        time.sleep(0.05)
    assert not finished.exists(), "the command was not killed: it ended on its own"
    assert shell.run("echo still usable").stdout == "still usable\n"


def test_one_connection_for_many_commands(shell: SshShell) -> None:
    # Every command of one connection is a child of the same sshd session process.
    first = shell.run("echo $PPID").stdout
    transport = shell._transport
    second = shell.run("echo $PPID").stdout
    assert first == second
    assert shell._transport is transport


def test_concurrent_commands_share_the_connection(shell: SshShell) -> None:
    results: list[str] = []

    def work(i: int) -> None:
        results.append(shell.run(f"sleep 0.1; echo {i}").stdout.strip())

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results, key=int) == [str(i) for i in range(8)]


def test_commands_that_close_their_output_before_exiting_end_among_quick_ones(shell: SshShell) -> None:
    """The runner learns that a command which closed its stdout/stderr early has exited only from
    SIGCHLD (no end of output marks it): the wake-up of each exit must reach the loop, also when
    it lands while the runner reaps another command. Were one lost, the command would end only
    at its timeout (a CommandTimeout here) instead of with its exit code."""
    results: dict[str, int] = {}
    shell.run("true")  # the runner is up: every command below goes to it

    def work(name: str, cmd: str) -> None:
        results[name] = shell.run(cmd, timeout=60).rc

    jobs = [(f"closed{i}", f"exec >/dev/null 2>&1; sleep 0.0{i % 10}; exit 3") for i in range(12)]
    jobs += [(f"quick{i}", "true") for i in range(12)]
    threads = [threading.Thread(target=work, args=job) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {name: 3 if name.startswith("closed") else 0 for name, _ in jobs}


def test_dropped_connection_mid_command_is_in_doubt_then_reconnects(shell: SshShell) -> None:
    # Was a ConnectError (unreachable: resume ran it again); the command was sent, so its
    # outcome is unknown (issue 7 item 3).
    shell.run("true")
    with pytest.raises(OutcomeUnknown, match="dropped during the command; whether it took effect is unknown"):
        # kills this connection's sshd process: the command's parent on an exec channel, the
        # runner's parent otherwise
        shell.run("p=$PPID; [ \"$(cat /proc/$p/comm)\" = python3 ] && p=$(cut -d' ' -f4 /proc/$p/stat); kill -9 $p; sleep 5")
    assert shell.run("echo back").stdout == "back\n"


# --------------------------------------------------------------------------- host keys


def test_strict_host_key_with_known_hosts_passes(shell: SshShell) -> None:
    assert shell.run("true").rc == 0


def test_hashed_known_hosts_entry(sshd: SshdServer, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text(sshd.host_key_line + "\n")
    subprocess.run(["ssh-keygen", "-q", "-H", "-f", str(known)], check=True, capture_output=True)
    assert known.read_text().startswith("|1|")
    sh = SshShell(sshd.settings(known_hosts=str(known)))
    try:
        assert sh.run("true").rc == 0
    finally:
        sh.close()


def test_bad_known_hosts_lines_are_skipped(sshd: SshdServer, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    junk = "@cert-authority *.example ssh-ed25519 AAAAnotbase64\ngarbage\nx ssh-ed25519 !!!\n"
    known.write_text(junk + sshd.host_key_line + "\n")
    sh = SshShell(sshd.settings(known_hosts=str(known)))
    try:
        assert sh.run("true").rc == 0
    finally:
        sh.close()


def test_unknown_host_is_refused_under_strict(sshd: SshdServer, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text("")
    err = connect_error(sshd, known_hosts=str(known))
    assert f"host key for [127.0.0.1]:{sshd.port} is not in {known}" in str(err)
    assert sshd.host_key_fingerprint in str(err)
    assert "ssh-keyscan" in str(err) and "accept-new" in str(err)


def test_accept_new_adds_the_key_then_strict_passes(sshd: SshdServer, tmp_path: Path) -> None:
    known = tmp_path / "ssh" / "known_hosts"  # neither the file nor its directory exist yet
    sh = SshShell(sshd.settings(known_hosts=str(known), host_key_checking=HostKeyPolicy.ACCEPT_NEW))
    try:
        assert sh.run("true").rc == 0
    finally:
        sh.close()
    assert known.read_text() == sshd.host_key_line + "\n"
    assert stat.S_IMODE(known.stat().st_mode) == 0o600
    strict = SshShell(sshd.settings(known_hosts=str(known)))
    try:
        assert strict.run("true").rc == 0
    finally:
        strict.close()


def test_accept_new_keeps_existing_lines(sshd: SshdServer, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    other = "otherhost " + " ".join(sshd.host_key_line.split()[1:])
    known.write_text(other)  # no trailing newline: our line must not be glued to it
    sh = SshShell(sshd.settings(known_hosts=str(known), host_key_checking=HostKeyPolicy.ACCEPT_NEW))
    try:
        sh.run("true")
    finally:
        sh.close()
    assert known.read_text().splitlines() == [other, sshd.host_key_line]


def _wrong_known_hosts(sshd: SshdServer, tmp_path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")], check=True)
    other_pub = " ".join((tmp_path / "other.pub").read_text().split()[:2])
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{sshd.port} {other_pub}\n")
    return known


@pytest.mark.parametrize("policy", [HostKeyPolicy.STRICT, HostKeyPolicy.ACCEPT_NEW])
def test_changed_host_key_is_refused(sshd: SshdServer, tmp_path: Path, policy: HostKeyPolicy) -> None:
    known = _wrong_known_hosts(sshd, tmp_path)
    before = known.read_text()
    err = connect_error(sshd, known_hosts=str(known), host_key_checking=policy)
    assert "CHANGED" in str(err) and "man-in-the-middle" in str(err)
    assert sshd.host_key_fingerprint in str(err)
    assert "ssh-keygen -R" in str(err)
    assert known.read_text() == before


def test_host_key_checking_off_accepts_anything(sshd: SshdServer, tmp_path: Path) -> None:
    known = _wrong_known_hosts(sshd, tmp_path)
    sh = SshShell(sshd.settings(known_hosts=str(known), host_key_checking=HostKeyPolicy.OFF))
    try:
        assert sh.run("true").rc == 0
    finally:
        sh.close()


# --------------------------------------------------------------------------- auth and reachability


def test_wrong_client_key_is_an_auth_error(sshd: SshdServer, tmp_path: Path) -> None:
    key = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    err = connect_error(sshd, key_file=str(key), password=Secret("hunter2-not-shown"))
    msg = str(err)
    assert f"authentication failed for {sshd.user}@127.0.0.1:{sshd.port}" in msg
    assert f"key {key}" in msg
    assert "hunter2-not-shown" not in msg


def test_missing_key_file(sshd: SshdServer, tmp_path: Path) -> None:
    err = connect_error(sshd, key_file=str(tmp_path / "absent"))
    assert "does not exist" in str(err)


def test_refused_port(sshd: SshdServer) -> None:
    port = free_port()
    err = connect_error(sshd, port=port)
    assert f"ssh to 127.0.0.1:{port} refused: is sshd running?" in str(err)


def test_stopped_server_is_refused(private_sshd: SshdServer) -> None:
    sh = SshShell(private_sshd.settings())
    try:
        assert sh.run("echo up").stdout == "up\n"
        private_sshd.stop()
        fresh = SshShell(private_sshd.settings())
        with pytest.raises(ConnectError, match="refused: is sshd running"):
            fresh.run("true")
    finally:
        sh.close()


def test_not_an_ssh_server(sshd: SshdServer) -> None:
    err = connect_error(sshd, port=3306)  # MariaDB answers, but not with an SSH banner
    assert "127.0.0.1:3306" in str(err)


def test_ssh_config_alias(sshd: SshdServer, tmp_path: Path) -> None:
    config = tmp_path / "ssh_config"
    config.write_text(
        f"Host myalias\n  HostName 127.0.0.1\n  Port {sshd.port}\n  User {sshd.user}\n  IdentityFile {sshd.key_file}\n"
    )
    sh = SshShell(sshd.settings(host="myalias", port=22, user=None, key_file=None, config_file=str(config)))
    try:
        assert sh.run("echo via alias").stdout == "via alias\n"
    finally:
        sh.close()


def test_ssh_config_proxy_jump(sshd: SshdServer, tmp_path: Path) -> None:
    config = tmp_path / "ssh_config"
    common = f"  HostName 127.0.0.1\n  Port {sshd.port}\n  User {sshd.user}\n  IdentityFile {sshd.key_file}\n"
    config.write_text(f"Host bastion\n{common}Host behind\n{common}  ProxyJump bastion\n")
    sh = SshShell(sshd.settings(host="behind", port=22, user=None, key_file=None, config_file=str(config)))
    try:
        assert sh.run("echo jumped").stdout == "jumped\n"
        assert sh._via is not None and sh._via._transport is not None  # the bastion carries us
    finally:
        sh.close()


# --------------------------------------------------------------------------- MySQL tunnel


def test_mysql_through_the_tunnel(shell: SshShell, mysql_settings: MysqlSettings) -> None:
    session = MysqlSession(MysqlSettings(host="127.0.0.1", port=3306, user="root"), tunnel=shell.open_tunnel)
    try:
        assert session.query("SELECT 1 AS x").rows == ({"x": 1},)
        assert session.query("SELECT REPEAT('a', 100000) AS big").rows[0]["big"] == "a" * 100000
    finally:
        session.close()


def test_load_data_local_through_the_tunnel(shell: SshShell, mysql_settings: MysqlSettings) -> None:
    """A restore batch goes as LOAD DATA LOCAL in parts (the rows, then the terminator), each cut
    into 1 MiB packets written from memoryviews of the batch: every row arrives, also over the
    SSH channel (paramiko takes the views as they are)."""
    session = MysqlSession(MysqlSettings(host="127.0.0.1", port=3306, user="root"), tunnel=shell.open_tunnel, local_infile=True)
    db = f"rbt_tunnel_{os.getpid()}"
    rows = [b"(%d,'%s')" % (i, b"v" * (i % 97)) for i in range(60000)]
    body = b",\n".join(rows)
    assert len(body) > (2 << 20)  # three packets, the last one partial
    try:
        session.query(f"CREATE DATABASE {db}")
        session.query(f"CREATE TABLE {db}.t (id INT PRIMARY KEY, v VARCHAR(100))")
        r = session.load_local(f"LOAD DATA LOCAL INFILE 'rb:t' INTO TABLE {db}.t FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY"
                               " '\\'' LINES STARTING BY '(' TERMINATED BY '),\\n'", "rb:t", (memoryview(body), b",\n"))
        assert r.rowcount == 60000 and r.warnings == 0
        got = session.query(f"SELECT COUNT(*) AS n, SUM(id) AS s, SUM(LENGTH(v)) AS l FROM {db}.t").rows[0]
        assert (got["n"], int(got["s"]), int(got["l"])) == (60000, sum(range(60000)), sum(i % 97 for i in range(60000)))
    finally:
        session.query(f"DROP DATABASE IF EXISTS {db}")
        session.close()


def test_mysql_timeout_through_the_tunnel(shell: SshShell, mysql_settings: MysqlSettings) -> None:
    session = MysqlSession(MysqlSettings(host="127.0.0.1", port=3306, user="root"), tunnel=shell.open_tunnel)
    try:
        with pytest.raises(CommandTimeout):
            session.query("SELECT SLEEP(3)", timeout=0.5)
        assert session.query("SELECT 2 AS x").rows == ({"x": 2},)  # a new channel, same SSH connection
    finally:
        session.close()


def test_tunnel_to_a_closed_port(shell: SshShell) -> None:
    with pytest.raises(ConnectError, match="refused"):
        shell.open_tunnel("127.0.0.1", free_port())


def test_interrupt_kills_the_remote_process_group_and_the_outcome_is_unknown(shell: SshShell, tmp_path: Path) -> None:
    """Issue 7 item 4: an abort closes the channel and kills the command's process group on the
    host (a child in the background included), and says the outcome is unknown."""
    import threading

    pidfile = tmp_path / "bg.pid"
    errors: list[BaseException] = []

    def run() -> None:
        try:
            shell.run(f"sleep 60 & echo $! > {pidfile}; sleep 60")
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=run)
    t.start()
    for _ in range(200):
        if pidfile.exists() and pidfile.read_text().strip():
            break
        time.sleep(0.02)
    assert shell.interrupt("aborted by the operator")
    t.join(20)
    assert not t.is_alive()
    assert errors and isinstance(errors[0], OutcomeUnknown) and "process group" in str(errors[0])
    pid = int(pidfile.read_text())
    for _ in range(100):
        if not os.path.exists(f"/proc/{pid}") or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the background child of the aborted command is still running")


# --------------------------------------------------------------------------- the runner (fast path)


def test_host_without_python3_runs_one_exec_channel_per_command(sshd: SshdServer, monkeypatch: pytest.MonkeyPatch) -> None:
    import engine.transport.sshrunner as sshrunner

    # What the runner's bootstrap does on a host without python3.
    monkeypatch.setattr(sshrunner, "BOOTSTRAP", "echo 'no python3 on this host' >&2; exit 127")
    sh = SshShell(sshd.settings())
    try:
        assert sh.run("true").rc == 0  # the first command launches the runner on the side
        res = sh.run("echo $$ $PPID; echo err >&2; exit 4")
        assert sh.no_runner == "no python3 on this host"
        assert (res.rc, res.stderr) == (4, "err\n")
        assert "python3" not in Path(f"/proc/{res.stdout.split()[1]}/comm").read_text()
        assert sh.run("echo again").stdout == "again\n"
    finally:
        sh.close()


def test_one_host_runs_its_first_command_on_an_exec_channel_while_the_runner_starts(sshd: SshdServer,
                                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import engine.transport.ssh as ssh

    monkeypatch.setattr(ssh, "_FLEET", 1000)  # however many connections other tests left open
    sh = SshShell(sshd.settings())
    try:
        res = sh.run("echo $PPID")
        assert sh._runner is None  # still starting: the command did not wait for it
        assert "python3" not in Path(f"/proc/{res.stdout.strip()}/comm").read_text()
        assert sh.run("true").rc == 0 and sh._runner is not None
    finally:
        sh.close()


def test_with_many_connections_open_the_first_command_waits_for_the_runner(sshd: SshdServer,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import engine.transport.ssh as ssh

    # A fleet: more connections up than _FLEET. The first command of each takes no exec channel
    # (a session, a login shell and sh on the host, CPU on the control node): it runs on the runner.
    monkeypatch.setattr(ssh, "_FLEET", 1)
    shells = [SshShell(sshd.settings()) for _ in range(3)]
    try:
        before = ssh._open
        for sh in shells:
            sh._ensure()
        assert ssh._open == before + 3
        res = shells[-1].run("echo $PPID; exit 3")
        assert res.rc == 3 and shells[-1]._runner is not None and shells[-1].no_runner is None
        assert Path(f"/proc/{res.stdout.strip()}/comm").read_text().startswith("python3")
    finally:
        for sh in shells:
            sh.close()
    assert ssh._open == before  # closing counts them out


def test_a_runner_that_died_between_commands_is_replaced_and_nothing_is_in_doubt(sshd: SshdServer) -> None:
    sh = SshShell(sshd.settings())
    try:
        sh.run("true")  # launches the runner
        first = sh.run("echo $PPID").stdout.strip()
        sh.run("(sleep 0.2; kill -9 $PPID) >/dev/null 2>&1 &")  # the runner dies after this command ended
        runner = sh._runner
        assert runner is not None
        deadline = time.monotonic() + 10
        while runner.alive and time.monotonic() < deadline:  # the engine learns it from the channel's EOF
            time.sleep(0.02)
        assert not runner.alive
        second = sh.run("echo $PPID").stdout.strip()
        assert first != second and sh.no_runner is None
    finally:
        sh.close()


def test_the_runner_keeps_each_command_in_a_session_of_its_own(shell: SshShell) -> None:
    # pid == process group == session: a kill of the group reaches everything the command starts
    fields = shell.run("cut -d' ' -f1,5,6 /proc/$$/stat").stdout.split()
    assert fields[0] == fields[1] == fields[2]


def test_a_handshake_the_server_drops_is_tried_again(sshd: SshdServer) -> None:
    """sshd at its MaxStartups (or a machine too loaded to answer in time) closes a connection
    during the handshake: nothing was sent, so connecting again is safe. A proxy drops the
    first connection at once and forwards the next one to the real sshd."""
    import socket as socket_mod

    listener = socket_mod.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    accepted: list[int] = []

    def pump(a: socket_mod.socket, b: socket_mod.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket_mod.SHUT_RDWR)
                except OSError:
                    pass

    def serve() -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            accepted.append(1)
            if len(accepted) == 1:
                client.close()  # dropped during the handshake
                continue
            upstream = socket_mod.create_connection((sshd.host, sshd.port))
            threading.Thread(target=pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=pump, args=(upstream, client), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    known = sshd.dir / "known_hosts_proxy"
    known.write_text(sshd.host_key_line.replace(f"]:{sshd.port} ", f"]:{port} ") + "\n")
    sh = SshShell(sshd.settings(port=port, known_hosts=str(known)))
    try:
        assert sh.run("echo through").stdout == "through\n"
        assert len(accepted) == 2
    finally:
        sh.close()
        listener.close()
