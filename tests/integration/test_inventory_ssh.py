"""An inventory host that names only an ~/.ssh/config alias: HostName, Port, User and
IdentityFile come from the config file, as they would for `ssh myalias`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cliutil import cli, out_of
from tests.sshd import SshdServer

pytestmark = pytest.mark.integration


def test_host_reached_through_ssh_config_alone(tmp_path: Path, sshd: SshdServer) -> None:
    config = tmp_path / "ssh_config"
    config.write_text(f"Host myalias\n  HostName {sshd.host}\n  Port {sshd.port}\n  User {sshd.user}\n  IdentityFile {sshd.key_file}\n")
    known = tmp_path / "known_hosts"
    # The known_hosts entry is for the real address, as OpenSSH records it.
    known.write_text(Path(sshd.known_hosts).read_text())
    (tmp_path / "inv.yml").write_text(f"all:\n  hosts:\n    myalias:\n      ssh_config: {config}\n      ssh_known_hosts: {known}\n")
    (tmp_path / "rb.yml").write_text("name: alias\nstages:\n  - name: s\n    steps:\n"
                                     "      - name: Where\n        shell: echo \"port=$(echo $SSH_CONNECTION | cut -d' ' -f4)\"\n"
                                     "        register: where\n"
                                     f"      - name: Check\n        assert: {{that: \"where.stdout == 'port={sshd.port}'\"}}\n")
    res = cli("play", str(tmp_path / "rb.yml"), "-i", str(tmp_path / "inv.yml"), cwd=tmp_path, home=tmp_path / "home")
    assert res.returncode == 0, out_of(res)
