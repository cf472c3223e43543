"""`runbook play … -i inventory.ini` over a real sshd: an Ansible INI inventory with
host:port, ansible_* names, group_vars/ and host_vars/ beside it, a host we cannot use that the
run does not target, and hostvars of a host outside --limit."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cliutil import cli, out_of
from tests.sshd import SshdServer

pytestmark = pytest.mark.integration

RUNBOOK = """\
name: ini inventory
targets: dbs
stages:
  - name: s
    steps:
      - name: Where
        shell: echo "port=$(echo $SSH_CONNECTION | cut -d' ' -f4) to={{ ansible_host }}:{{ ansible_port }} pin={{ site }}"
        register: where
      - name: Check
        assert:
          that:
            - "where.stdout == 'port={port} to=127.0.0.1:{port} pin=pinned-in-host-vars'"
            - "hostvars['db2']['role'] == 'spare'"
            - "groups['dbs'] == ['db1', 'db2']"
"""


def _layout(tmp_path: Path, sshd: SshdServer) -> Path:
    inv = tmp_path / "inventory"
    (inv / "group_vars").mkdir(parents=True)
    (inv / "host_vars").mkdir()
    (inv / "hosts.ini").write_text(
        f"[dbs]\ndb1:{sshd.port} ansible_host={sshd.host} ansible_user={sshd.user}\n"
        f"db2 ansible_host=127.0.0.9 role=spare\n\n[net]\nswitch1 ansible_connection=network_cli\n")
    (inv / "group_vars" / "all.yml").write_text(
        f"ansible_ssh_private_key_file: {sshd.key_file}\nssh_known_hosts: {sshd.known_hosts}\nssh_config: {sshd.config_file}\n")
    (inv / "host_vars" / "db1.yml").write_text("site: pinned-in-host-vars\n")  # any host variable; mysql_identity would (rightly) refuse the shell step here
    (tmp_path / "rb.yml").write_text(RUNBOOK.replace("{port}", str(sshd.port)))
    return inv / "hosts.ini"


def test_play_with_an_ini_inventory(tmp_path: Path, sshd: SshdServer) -> None:
    ini = _layout(tmp_path, sshd)
    res = cli("play", str(tmp_path / "rb.yml"), "-i", str(ini), "--limit", "db1", cwd=tmp_path, home=tmp_path / "home")
    assert res.returncode == 0, out_of(res)
    listed = cli("inventory", "-i", str(ini), "--hosts", "dbs[-1]:switch1", cwd=tmp_path, home=tmp_path / "home")
    assert listed.stdout.split() == ["db2", "switch1"]


def test_a_targeted_host_we_cannot_use_is_refused_before_anything_runs(tmp_path: Path, sshd: SshdServer) -> None:
    ini = _layout(tmp_path, sshd)
    res = cli("play", str(tmp_path / "rb.yml"), "-i", str(ini), "--limit", "db1:switch1", "-e", "x=1", "--allow-unused-vars", cwd=tmp_path, home=tmp_path / "home")
    # the runbook targets dbs: switch1 is in the limit but not targeted, so nothing refuses it
    assert res.returncode == 0, out_of(res)
    (tmp_path / "rb2.yml").write_text("name: all\ntargets: all\nstages:\n  - name: s\n    steps:\n      - name: x\n        shell: 'true'\n")
    res = cli("play", str(tmp_path / "rb2.yml"), "-i", str(ini), cwd=tmp_path, home=tmp_path / "home")
    assert res.returncode == 2, out_of(res)
    assert "switch1 uses connection 'network_cli', which runbook cannot use" in out_of(res)


def test_become_runs_commands_through_sudo(tmp_path: Path, sshd: SshdServer) -> None:
    import shutil

    if shutil.which("sudo") is None:
        pytest.skip("sudo is not installed (scripts/setup.sh installs it)")
    ini = _layout(tmp_path, sshd)
    ini.write_text(ini.read_text() + "\n[dbs:vars]\nansible_become=true\nansible_become_user=nobody\n")
    (tmp_path / "rb3.yml").write_text(
        "name: become\ntargets: db1\nstages:\n  - name: s\n    steps:\n"
        "      - name: Who\n        shell: {cmd: 'echo \"$(id -un) $GREETING $(pwd)\"', chdir: /tmp, env: {GREETING: hi}}\n"
        "        register: who\n"
        "      - name: Check\n        assert: {that: \"who.stdout == 'nobody hi /tmp'\"}\n")
    res = cli("play", str(tmp_path / "rb3.yml"), "-i", str(ini), cwd=tmp_path, home=tmp_path / "home")
    assert res.returncode == 0, out_of(res)
    ini.write_text(ini.read_text() + "ansible_become_password=secret\n")
    res = cli("play", str(tmp_path / "rb3.yml"), "-i", str(ini), cwd=tmp_path, home=tmp_path / "home")
    assert res.returncode == 2 and "runs sudo -n, which never types one" in out_of(res)


def _proxy_play(tmp_path: Path, sshd: SshdServer, args: str, *, port: int | None = None, config: bool = True) -> str:
    known = tmp_path / "known_hosts"
    known.write_text("")  # accept-new: the name differs from the real address when the proxy is the only way in
    inv = tmp_path / "proxied.yml"
    inv.write_text("all:\n  hosts:\n    behind:\n"
                   f"      ansible_host: 127.0.0.1\n      ansible_port: {port or sshd.port}\n      ansible_user: {sshd.user}\n"
                   f"      ansible_ssh_private_key_file: {sshd.key_file}\n      ssh_known_hosts: {known}\n"
                   f"      ssh_host_key_checking: accept-new\n" + (f"      ssh_config: {sshd.config_file}\n" if config else "") +
                   f"      ansible_ssh_common_args: {args!r}\n")
    (tmp_path / "rb.yml").write_text("name: proxied\nstages:\n  - name: s\n    steps:\n"
                                     "      - name: Hop\n        shell: echo hop\n")
    res = cli("play", str(tmp_path / "rb.yml"), "-i", str(inv), cwd=tmp_path, home=tmp_path / "home")
    assert res.returncode == 0, out_of(res)
    return out_of(res)


def test_proxy_command_in_ssh_common_args_is_honoured(tmp_path: Path, sshd: SshdServer) -> None:
    import shutil

    from tests.sshd import free_port

    if shutil.which("ssh") is None:
        pytest.skip("no ssh client for the ProxyCommand")
    # The inventory's port is closed: only the ProxyCommand (to the real port) gets through.
    proxy = (f"ssh -F {sshd.config_file} -i {sshd.key_file} -p {sshd.port} -o UserKnownHostsFile={sshd.known_hosts} "
             f"-o StrictHostKeyChecking=yes -o BatchMode=yes -W 127.0.0.1:{sshd.port} {sshd.user}@127.0.0.1")
    _proxy_play(tmp_path, sshd, f"-o ControlMaster=auto -o ProxyCommand=\"{proxy}\"", port=free_port())


def test_proxy_jump_in_ssh_common_args_is_honoured(tmp_path: Path, sshd: SshdServer) -> None:
    from engine.inventory import load_inventories, ssh_settings
    from engine.transport.ssh import SshShell

    config = tmp_path / "jump_config"
    config.write_text(f"Host bastion\n  HostName 127.0.0.1\n  Port {sshd.port}\n  User {sshd.user}\n  IdentityFile {sshd.key_file}\n")
    _proxy_play(tmp_path, sshd, f"-F {config} -J bastion", config=False)
    host = load_inventories([str(tmp_path / "proxied.yml")]).hosts["behind"]
    settings = ssh_settings(host)
    assert settings.proxy_jump == "bastion" and settings.config_file == str(config)
    sh = SshShell(settings)
    try:
        assert sh.run("echo jumped").stdout == "jumped\n"
        assert sh._via is not None and sh._via._transport is not None  # the bastion carries us
    finally:
        sh.close()


def test_ssh_args_we_cannot_pass_are_refused(tmp_path: Path, sshd: SshdServer) -> None:
    with pytest.raises(AssertionError) as info:
        _proxy_play(tmp_path, sshd, "-o ForwardX11=yes -R 9000:localhost:9000")
    assert "SSH arguments runbook cannot pass" in str(info.value) and "ForwardX11" in str(info.value)
