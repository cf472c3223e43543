"""Variables of each host, merged with Ansible's precedence, and Ansible's variable names
kept as aliases of ours.

Lowest to highest (ansible-core's default ``VARIABLE_PRECEDENCE``):

1. ``all``'s vars from the inventory files, then every other group of the host in order of
   depth, ``ansible_group_priority`` and name;
2. ``group_vars/all`` beside each inventory source, then beside the runbook;
3. ``group_vars/<group>`` beside each inventory source (groups in the order above), then
   beside the runbook;
4. the host's vars from the inventory files, then ``host_vars/<host>`` beside each
   inventory source, then beside the runbook.

```text
inventories/prod/hosts.ini
inventories/prod/group_vars/dbs.yml          # or group_vars/dbs/*.yml, group_vars/dbs, .yaml, .json
inventories/prod/host_vars/db1.example.com.yml
```
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from engine.errors import InputError, Problem, Source, ValidationFailed
from engine.inventory.vault import unvault
from engine.inventory.yamlsrc import parse_yaml, read_text

VARS_EXTS = ("", ".yml", ".yaml", ".json")

# Our name first, then Ansible's names in the order Ansible's ssh connection reads them (the
# last one set wins in Ansible). One level that sets any of them sets all of them.
ALIAS_FAMILIES: dict[str, tuple[str, ...]] = {
    "ssh_host": ("ansible_host", "ansible_ssh_host"),
    "ssh_port": ("ansible_port", "ansible_ssh_port"),
    "ssh_user": ("ansible_user", "ansible_ssh_user"),
    "ssh_key": ("ansible_private_key_file", "ansible_ssh_private_key_file"),
    "ssh_password": ("ansible_password", "ansible_ssh_pass", "ansible_ssh_password"),
    "connection": ("ansible_connection",),
    "ssh_host_key_checking": ("ansible_host_key_checking", "ansible_ssh_host_key_checking"),
}
ALIASES = {a: ours for ours, names in ALIAS_FAMILIES.items() for a in names}


def with_aliases(layer: dict[str, Any]) -> dict[str, Any]:
    """A level of variables with every alias family it touches filled in under all its names."""
    if not any(k in ALIASES or k in ALIAS_FAMILIES for k in layer):
        return layer
    out = dict(layer)
    for ours, names in ALIAS_FAMILIES.items():
        present = [n for n in names if n in layer]
        if ours in layer:
            value = layer[ours]
        elif present:
            value = layer[present[-1]]
        else:
            continue
        for n in (ours, *names):
            out[n] = value
    return out


def vars_files(directory: str, name: str, listing: set[str] | None = None) -> list[str]:
    """Ansible's lookup of ``name`` in ``group_vars``/``host_vars``: the first of ``name``,
    ``name.yml``, ``name.yaml``, ``name.json``; a directory gives every file in it (sorted,
    recursively, hidden and ``~`` backups skipped, extensions as above). ``listing``: the
    directory's entries when known (one listdir instead of four stats per host)."""
    if not name or name[0] == os.sep:
        return []
    base = os.path.join(directory, name)
    for ext in VARS_EXTS:
        path = base + ext
        if (name + ext in listing) if listing is not None and os.sep not in name else os.path.exists(path):
            return _dir_files(path) if os.path.isdir(path) else [path]
    return []


def _dir_files(path: str, depth: int = 0) -> list[str]:
    out: list[str] = []
    if depth > 20:
        return out
    for entry in sorted(os.listdir(path)):
        if entry.startswith(".") or entry.endswith("~"):
            continue
        full = os.path.join(path, entry)
        ext = os.path.splitext(entry)[1]
        if os.path.isdir(full) and not ext:
            out.extend(_dir_files(full, depth + 1))
        elif os.path.isfile(full) and (not ext or ext in VARS_EXTS):
            out.append(full)
    return out


@dataclass
class VarsDirs:
    """``group_vars``/``host_vars`` files beside the inventory sources and the runbook, each
    file read once."""

    inventory_dirs: list[str]
    playbook_dir: str | None
    problems: list[Problem]
    files: list[str] = field(default_factory=list)
    vault_password: bytes | None = None
    _cache: dict[str, dict[str, Any]] = field(default_factory=dict)
    _merged_cache: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    _listings: dict[str, set[str]] = field(default_factory=dict)
    positions: dict[tuple[str, str], Source] = field(default_factory=dict)  # (file, var) -> where

    def _load(self, path: str) -> dict[str, Any]:
        if path in self._cache:
            return self._cache[path]
        data: dict[str, Any] = {}
        try:
            text = unvault(read_text(path, "vars file"), path, self.vault_password)
            if text.strip() and not all(not ln.strip() or ln.lstrip().startswith("#") for ln in text.splitlines()):
                loaded = parse_yaml(text, path)
                if isinstance(loaded, dict):
                    data = loaded
                    for k in loaded:
                        self.positions[(path, str(k))] = _key_pos(loaded, k, path)
                elif loaded is not None:
                    self.problems.append(Problem(Source(path, 1, 1), "", "a vars file is a mapping of names to values"))
        except ValidationFailed as exc:
            self.problems.extend(exc.problems)
        except InputError as exc:
            self.problems.append(Problem(exc.source or Source(path), "", exc.message, exc.hint))
        self._cache[path] = data
        self.files.append(path)
        return data

    def _merged(self, directory: str | None, subdir: str, name: str) -> dict[str, Any]:
        if directory is None:
            return {}
        key = (directory, subdir, name)
        if key not in self._merged_cache:  # each group's files are looked up once, not once per host
            out: dict[str, Any] = {}
            where = os.path.join(directory, subdir)
            if where not in self._listings:
                try:
                    self._listings[where] = set(os.listdir(where)) if os.path.isdir(where) else set()
                except OSError:
                    self._listings[where] = set()
            for f in vars_files(where, name, self._listings[where]):
                out.update(self._load(f))
            self._merged_cache[key] = out
        return self._merged_cache[key]

    def levels(self, kind: str, names: list[str]) -> list[tuple[str, dict[str, Any]]]:
        """(label, vars) levels for groups or a host: inventory sources first (each over the
        named entities in order), then the runbook's directory."""
        subdir = "group_vars" if kind == "group" else "host_vars"
        out: list[tuple[str, dict[str, Any]]] = []
        for d in self.inventory_dirs:
            for n in names:
                out.append((f"{d}/{subdir}/{n}", self._merged(d, subdir, n)))
        for n in names:
            out.append((f"{self.playbook_dir}/{subdir}/{n}", self._merged(self.playbook_dir, subdir, n)))
        return out

    def sources_of(self, kind: str, name: str) -> list[str]:
        subdir = "group_vars" if kind == "group" else "host_vars"
        out: list[str] = []
        for d in [*self.inventory_dirs, *([self.playbook_dir] if self.playbook_dir else [])]:
            out.extend(vars_files(os.path.join(d, subdir), name))
        return out


def _key_pos(mapping: Any, key: Any, file: str) -> Source:
    from engine.language.yamlio import key_source

    return key_source(mapping, key, file)


def source_dirs(paths: list[str]) -> list[str]:
    """The directory whose group_vars/ and host_vars/ belong to each ``-i`` (host lists have none)."""
    out: list[str] = []
    for raw in paths:
        p = os.path.expanduser(raw)
        if "," in raw and not os.path.exists(p):
            continue
        d = p if os.path.isdir(p) else os.path.dirname(p) or "."
        out.append(os.path.realpath(d))
    return out
