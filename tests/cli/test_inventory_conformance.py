"""runbook reads an inventory as Ansible does: `runbook inventory --list` equals
`ansible-inventory --list`, and every pattern selects the same hosts in the same order as
ansible-core's InventoryManager (asked in one process per inventory, see tests/ansible_oracle.py).
Skipped when ansible-core is not installed (it is in the `test` extra)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from engine.inventory import PatternError, load_inventories, match_pattern
from engine.secrets import MASKER

HERE = Path(__file__).resolve().parent.parent
CORPUS = HERE / "data" / "inventories"
PLAYBOOK = CORPUS / "playbook"

pytestmark = pytest.mark.skipif(shutil.which("ansible-inventory") is None, reason="ansible-core is not installed")

COMMON = ["all", "*", "ungrouped", "ungr*", "nosuch", "all:!all", "!nosuch"]
PATTERNS: dict[str, list[str]] = {
    "yaml/hosts.yml": COMMON + [
        "dbs", "primary", "replicas", "web", "v6", "single", "tier", "zz_tier",
        # order of evaluation: unions, then &, then !, whatever the order written
        "dbs:!primary", "!primary:dbs", "primary:!db1.example.com:replicas", "!db2.example.com:dbs",
        "dbs:&tier", "&tier:dbs", "dbs:&tier:!db1.example.com", "web:&dbs",
        # result order follows the pattern
        "tier:zz_tier", "zz_tier:tier", "db3.example.com,db1.example.com", "web,db1.example.com", "web, lonely",
        "lonely:ctl.example.com", "primary replicas",
        # subscripts and slices
        "dbs[0]", "dbs[1]", "dbs[-1]", "dbs[-2]", "dbs[0:2]", "dbs[1:]", "dbs[2:0]", "replicas[0]", "web[0:1]:dbs[-1]",
        "dbs[99]", "dbs[-99]", "web[1:99]", "db*[0:2]",
        # regexes are anchored
        "~db[0-9]", "~b2", "~.*example", "~web-[ab]", "~(", "~web-[ab]:!web-a",
        # globs over groups and hosts
        "db*", "db?.example.com", "*.example.com", "w*", "db[2:4].example.com", "[dw]*",
        # leading ! and &: start from all
        "!lonely", "!db1.example.com", "&dbs", "!dbs:!web",
        # IPv6 names
        "2001:db8::10", "2001:db8::11", "v6,!2001:db8::10", "v6:&2001:db8::11",
    ],
    "ini/hosts.ini": COMMON + [
        "dbs", "primary", "replicas", "web", "dbs[0:3]", "replicas:!pdb1", "~rdb", "~pdb-", "10.1.0.5", "jump.example.com",
        "web[-1]", "pdb*", "*node", "primary:&replicas", "replicas,primary", "rdb*[1]", "!replicas",
    ],
    "ini-in-yaml/hosts.yml": COMMON + ["dbs", "web", "prod", "prod:!web", "web[0]", "~db"],
    "dir": COMMON + ["dbs", "apps", "late", "dbs:late", "late:dbs", "&late:dbs", "!dbs", "db[1:2]", "db[0:1]", "apps[-1]", "~app"],
    # several -i, each with its own group_vars/ (the second file's are the same directory's)
    "dir/20-more.yml+ini/hosts.ini+dir/sub/hosts": COMMON + ["dbs", "dbs[-1]", "late:apps:dbs", "!dbs:!late", "~pdb|db"],
}


def _sources(name: str) -> list[str]:
    return [str(CORPUS / n) for n in name.split("+")]


def _dash_i(name: str) -> list[str]:
    return [a for src in _sources(name) for a in ("-i", src)]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    root = str(HERE.parent)
    env = dict(os.environ, NO_COLOR="1", PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True, text=True, timeout=60, env=env, cwd=root)


def _ansible(*args: str) -> str:
    proc = subprocess.run(list(args), capture_output=True, text=True, timeout=120, cwd=str(CORPUS))
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _masked(listing: dict[str, Any]) -> dict[str, Any]:
    listing = dict(listing)
    listing["_meta"] = dict(listing["_meta"], hostvars=MASKER.data(listing["_meta"]["hostvars"]))
    return listing


@pytest.mark.parametrize("name", sorted(PATTERNS))
def test_list_is_ansible_inventorys(name: str) -> None:
    theirs = json.loads(_ansible("ansible-inventory", *_dash_i(name), "--list", "--playbook-dir", str(PLAYBOOK)))
    r = run_cli("inventory", *_dash_i(name), "--list", "--playbook-dir", str(PLAYBOOK))
    assert r.returncode == 0, r.stderr
    ours = json.loads(r.stdout)
    assert ours == _masked(theirs)


@pytest.mark.parametrize("name", sorted(PATTERNS))
def test_every_pattern_selects_what_ansible_selects(name: str) -> None:
    proc = subprocess.run([sys.executable, str(HERE / "ansible_oracle.py")], input=json.dumps({"sources": _sources(name), "patterns": PATTERNS[name]}),
                          capture_output=True, text=True, timeout=120, env=dict(os.environ, ANSIBLE_HOST_PATTERN_MISMATCH="ignore"))
    assert proc.returncode == 0, proc.stderr
    theirs = json.loads(proc.stdout)
    inv = load_inventories(_sources(name))
    wrong = {}
    for pattern in PATTERNS[name]:
        try:
            ours: Any = match_pattern(pattern, inv)
        except PatternError:
            ours = "error"
        want = "error" if isinstance(theirs[pattern], dict) else theirs[pattern]
        if ours != want:
            wrong[pattern] = {"ours": ours, "ansible": want}
    assert wrong == {}


def test_hosts_command_prints_the_pattern_in_order() -> None:
    source = str(CORPUS / "yaml" / "hosts.yml")
    r = run_cli("inventory", "-i", source, "--hosts", "zz_tier:dbs[-1]:&dbs")
    assert r.returncode == 0, r.stderr
    theirs = _ansible("ansible", "zz_tier:dbs[-1]:&dbs", "-i", source, "--list-hosts")
    assert r.stdout.split() == [ln.strip() for ln in theirs.splitlines()[1:] if ln.strip()]


def test_graph_is_ansible_inventorys() -> None:
    for name in PATTERNS:
        r = run_cli("inventory", *_dash_i(name), "--graph")
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == _ansible("ansible-inventory", *_dash_i(name), "--graph").strip()


def test_vaulted_inventory_is_ansible_inventorys() -> None:
    source, password = str(CORPUS / "vault" / "hosts.yml"), str(CORPUS / "vault" / "vault-password")
    theirs = json.loads(_ansible("ansible-inventory", "-i", source, "--list", "--vault-password-file", password))
    r = run_cli("inventory", "-i", source, "--list", "--vault-password-file", password)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == _masked(theirs)
