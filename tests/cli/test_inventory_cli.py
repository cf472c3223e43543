"""`runbook inventory` and what `runbook validate` says about hosts, without Ansible."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
CORPUS = ROOT / "tests" / "data" / "inventories"


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, NO_COLOR="1", PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True, text=True, timeout=60, env=env, cwd=cwd)


def test_validate_prints_the_hosts_of_each_stage(tmp_path: Path) -> None:
    (tmp_path / "rb.yml").write_text("name: t\ntargets: dbs\nstages:\n  - name: first\n    steps:\n      - name: a\n        shell: 'true'\n"
                                     "  - name: last\n    targets: 'dbs[-1]:pdb-x'\n    steps:\n      - name: b\n        shell: 'true'\n")
    r = run("validate", str(tmp_path / "rb.yml"), "-i", str(CORPUS / "ini" / "hosts.ini"), "--limit", "!pdb1")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[1] == "  stage first: pdb2, pdb-x, pdb-y, pdb-z, rdb01.prod, rdb04.prod, rdb07.prod, rdb10.prod"
    assert lines[2] == "  stage last: rdb10.prod, pdb-x"


def test_inventory_command_forms() -> None:
    inv = str(CORPUS / "yaml" / "hosts.yml")
    listed = json.loads(run("inventory", "-i", inv, "--list").stdout)
    assert listed["_meta"]["hostvars"]["db1.example.com"]["mysql_password"] == "********"  # secrets masked
    host = json.loads(run("inventory", "-i", inv, "--host", "db9.example.com").stdout)
    assert (host["ansible_port"], host["ansible_user"], host["level"]) == (2222, "dba", "replicas")
    assert run("inventory", "-i", inv, "--hosts", "single,lonely").stdout.split() == ["db3.example.com", "lonely"]
    assert run("inventory", "-i", inv, "--graph", "v6").stdout.split() == ["@v6:", "|--2001:db8::10", "|--2001:db8::11"]


def test_inventory_command_mistakes_exit_2() -> None:
    inv = str(CORPUS / "yaml" / "hosts.yml")
    for args, needle in ((("--list", "--graph"), "cannot be used together"), ((), "say what to show"),
                         (("--host", "db1.example.co"), "did you mean 'db1.example.com'?"), (("--hosts", "dbs[40]"), "subscripted"),
                         (("--graph", "nosuch"), "no such group")):
        r = run("inventory", "-i", inv, *args)
        assert r.returncode == 2 and needle in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)


def test_no_inventory_is_localhost() -> None:
    r = run("inventory", "--hosts", "all")
    assert r.returncode == 0 and r.stdout.split() == ["localhost"]


VAULT = CORPUS / "vault"
VAULT_RUNBOOK = """\
name: vault
stages:
  - name: s
    steps:
      - name: Plain
        shell: echo "{{ vaulted_all if vaulted_all is defined else 'none' }} {{ motd }}"
        register: plain
      - name: Check plain
        assert: {that: ["plain.stdout.startswith('%s ')", "plain.stdout.endswith(' not_rendered ' ~ '}' ~ '}')"]}
      - name: Secret
        shell: test "{{ mysql_password }}" = tunnel-S3cret && echo "pw={{ mysql_password }} ep={{ endpoint }}"
        register: secret
      - name: Check secret
        assert: {that: "secret.stdout.endswith(' ep=not-a-secret-name')"}
"""


def test_vault_values_are_decrypted_with_a_password_file(tmp_path: Path) -> None:
    (tmp_path / "rb.yml").write_text(VAULT_RUNBOOK % "from-a-vaulted-file")
    r = run("play", str(tmp_path / "rb.yml"), "-i", str(VAULT / "hosts.yml"), "--vault-password-file", str(VAULT / "vault-password"),
            "-v", "--journal-dir", str(tmp_path / "j"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "tunnel-S3cret" not in r.stdout  # decrypted (the shell test passed), and masked on output
    journal = "".join(p.read_text() for p in (tmp_path / "j").rglob("*.jsonl"))
    assert "tunnel-S3cret" not in journal


def test_without_the_vault_password_the_inventory_says_so(tmp_path: Path) -> None:
    (tmp_path / "rb.yml").write_text(VAULT_RUNBOOK % "none")
    r = run("play", str(tmp_path / "rb.yml"), "-i", str(VAULT / "hosts.yml"), "--journal-dir", str(tmp_path / "j"))
    assert r.returncode == 2 and "group_vars/all.yml is encrypted with ansible-vault" in r.stderr, r.stdout + r.stderr
