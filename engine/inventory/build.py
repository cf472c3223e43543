"""``load_inventories``: sources → graph → every host's variables → :class:`Inventory`.

```python
inv = load_inventories(["inventories/prod/hosts.ini"], playbook_dir="runbooks")
inv.select("dbs:!db3")        # hosts in Ansible's order
```
With no inventory the run has one host, ``localhost``, connection local.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from engine.errors import InputError, Problem, Source, ValidationFailed
from engine.inventory.checks import near_miss, value_problem
from engine.inventory.data import InventoryData
from engine.inventory.patterns import match_pattern
from engine.inventory.sources import load_sources
from engine.inventory.values import VaultValue, has_vault, template_view
from engine.inventory.vault import decrypt
from engine.inventory.vars import VarsDirs, source_dirs, with_aliases
from engine.model import Host
from engine.secrets import SECRET_KEY, Secret

# paramiko is what our SSH transport is; Ansible's ssh and paramiko connections both mean "SSH".
SSH_CONNECTIONS = frozenset({"ssh", "smart", "paramiko", "paramiko_ssh", "ansible.builtin.ssh", "ansible.builtin.paramiko_ssh",
                             "ansible.legacy.ssh", "ansible.legacy.paramiko_ssh"})
LOCAL_CONNECTIONS = frozenset({"local", "ansible.builtin.local", "ansible.legacy.local"})


@dataclass
class Inventory:
    """Hosts (inventory order), groups (name → hosts, Ansible's order) and what ``runbook
    inventory`` shows: the graph, each host's variables under the names they were written."""

    hosts: dict[str, Host]
    groups: dict[str, list[str]]
    files: list[str] = field(default_factory=list)
    data: InventoryData | None = None
    raw_vars: dict[str, dict[str, Any]] = field(default_factory=dict)  # Ansible's view, for --list
    warnings: list[str] = field(default_factory=list)

    def select(self, pattern: str | None, *, source: Source | None = None, what: str = "pattern") -> list[Host]:
        return [self.hosts[n] for n in match_pattern(pattern or "all", self, source=source)]


def connection_kind(value: Any) -> str:
    text = str(value)
    if text in LOCAL_CONNECTIONS:
        return "local"
    if text in SSH_CONNECTIONS:
        return "ssh"
    return text


def _local_only() -> Inventory:
    local = Host(name="localhost", vars={"connection": "local", "ansible_connection": "local"}, groups=("all", "ungrouped"), connection="local")
    return Inventory(hosts={"localhost": local}, groups={"all": ["localhost"], "ungrouped": ["localhost"]},
                     raw_vars={"localhost": {}})


def load_inventories(paths: list[str], *, playbook_dir: str | None = None, vault_password: bytes | None = None) -> Inventory:
    """Load and merge inventory sources; every problem reported at once. ``vault_password``
    decrypts ``!vault`` values and vaulted files (see :mod:`.vault`)."""
    if not paths:
        return _local_only()
    problems: list[Problem] = []
    warnings: list[str] = []
    data = InventoryData()
    files = load_sources(list(paths), data, problems, warnings, vault_password)
    if problems:
        raise ValidationFailed(problems)
    data.reconcile()
    dirs = VarsDirs(source_dirs(list(paths)), os.path.realpath(playbook_dir) if playbook_dir else None, problems,
                    vault_password=vault_password)
    hosts: dict[str, Host] = {}
    raw: dict[str, dict[str, Any]] = {}
    for name, hd in data.hosts.items():
        groups = [g for g in data.host_groups(name) if g != "all"]
        ordered = data.sorted_groups(groups)
        levels: list[tuple[dict[str, Any], Any]] = [(data.groups["all"].vars, ("group", "all"))]
        levels += [(data.groups[g].vars, ("group", g)) for g in ordered]
        levels += [(v, ("file", label)) for label, v in dirs.levels("group", ["all"])]
        levels += [(v, ("file", label)) for label, v in dirs.levels("group", ordered)]
        levels.append((hd.vars, ("host", name)))
        levels += [(v, ("file", label)) for label, v in dirs.levels("host", [name])]
        merged_raw: dict[str, Any] = {}
        merged: dict[str, Any] = {}
        origin: dict[str, Any] = {}
        for layer, where in levels:
            if not layer:
                continue
            merged_raw.update(layer)
            for k, v in with_aliases(layer).items():
                merged[k] = v
                origin[k] = (where, k if k in layer else None)
        raw[name] = merged_raw
        for k, v in merged.items():
            why = value_problem(k, v)
            if why:
                problems.append(Problem(_source_of(origin[k], data, dirs, hd.source), f"hosts.{name}.{k}", why[0], why[1]))
            hint = near_miss(k, v, merged) if isinstance(k, str) and k in merged_raw else None
            if hint:
                problems.append(Problem(_source_of(origin[k], data, dirs, hd.source), f"hosts.{name}.{k}", f"unknown connection variable {k!r}",
                                        f"{hint} (runbook reads the right name only; rename it)"))
        conn = connection_kind(merged.get("connection", "ssh"))
        if conn == "local" and merged.get("mysql_via") == "tunnel":
            problems.append(Problem(_source_of(origin.get("mysql_via", (("host", name), None)), data, dirs, hd.source), f"hosts.{name}.mysql_via",
                                    "mysql_via: tunnel needs an SSH connection, and this host is connection: local",
                                    "use mysql_via: direct (the default) for a local host"))
        view: dict[str, Any] = {}
        for k, v in merged.items():
            try:
                view[k] = _template_value(k, v, vault_password)
            except InputError as exc:
                problems.append(Problem(_source_of(origin[k], data, dirs, hd.source), f"hosts.{name}.{k}", exc.message, exc.hint))
        hosts[name] = Host(name=name, vars=view, groups=tuple(["all", *ordered]), connection=conn, source=hd.source)
    if problems:
        raise ValidationFailed(_unique(problems))
    members = {g: data.group_hosts(g) for g in data.groups}
    return Inventory(hosts=hosts, groups=members, files=files + dirs.files, data=data, raw_vars=raw, warnings=warnings)


def _template_value(key: str, value: Any, vault_password: bytes | None) -> Any:
    """What templates and connections read: secrets masked, vaulted values decrypted (a
    Secret) or, with no password, undefined with a message naming the variable."""
    if isinstance(value, VaultValue):
        if vault_password is None:
            return template_view(key, value)
        return Secret(decrypt(value.ciphertext, vault_password, key))
    if isinstance(value, str) and SECRET_KEY.search(key) and "{{" not in value:
        return Secret(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and SECRET_KEY.search(key):
        return Secret(str(value))  # an INI password=1234 is a number to Ansible, and still a secret
    if isinstance(value, dict) and has_vault(value):
        return {k: _template_value(str(k), v, vault_password) for k, v in value.items()}
    if isinstance(value, list) and has_vault(value):
        return [_template_value(key, v, vault_password) for v in value]
    return value


def _source_of(origin: Any, data: InventoryData, dirs: VarsDirs, fallback: Source | None) -> Source:
    (kind, what), key = origin
    if key is not None:
        if kind == "host" and key in data.hosts[what].var_sources:
            return data.hosts[what].var_sources[key]
        if kind == "group" and (what, key) in data.group_var_sources:
            return data.group_var_sources[(what, key)]
        if kind == "file":
            for (path, k), src in dirs.positions.items():
                if k == key and path.startswith(what):
                    return src
    return fallback or Source("inventory")


def _unique(problems: list[Problem]) -> list[Problem]:
    seen: set[tuple[str, str]] = set()
    out: list[Problem] = []
    for p in problems:
        key = (str(p.source), p.message)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out

