"""YAML inventory files: Ansible's YAML inventory plugin, with positions for every error.

```yaml
all:
  hosts:
    db[01:03].example.com:     # a range
    "db4:2222":                # host:port
  children:
    primary: {hosts: {db01.example.com: {mysql_identity: db01}}}
```
"""

from __future__ import annotations

from typing import Any

import yaml

from engine.errors import InputError, Problem, Source
from engine.inventory.data import InventoryData
from engine.inventory.ranges import RangeError, expand_host_pattern
from engine.inventory.values import UnsafeText, VaultValue
from engine.language.schema_messages import did_you_mean
from engine.language import yamlio
from engine.language.yamlio import _Loader, key_source, source_at

SECTIONS = ("vars", "children", "hosts")


class _InventoryLoader(_Loader):
    """The runbook loader (positions, duplicate keys refused) plus Ansible's ``!vault`` and ``!unsafe``."""

    extra_tags = frozenset({"!vault", "!unsafe"})


def _vault(loader: yaml.SafeLoader, node: yaml.Node) -> VaultValue:
    return VaultValue(str(loader.construct_scalar(node)))  # type: ignore[arg-type]


def _unsafe(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return UnsafeText(loader.construct_scalar(node))
    raise yaml.constructor.ConstructorError(None, None, "!unsafe applies to a string", node.start_mark)


_InventoryLoader.add_constructor("!vault", _vault)
_InventoryLoader.add_constructor("!unsafe", _unsafe)


def read_text(path: str, what: str = "inventory") -> str:
    """A source file's text: the runbook's reader (a regular file, size-bounded, UTF-8, located errors)."""
    return yamlio.read_text(path, what=what)


def parse_yaml(text: str, name: str) -> Any:
    """YAML text → data with positions, through the runbook's YAML layer and its limits (depth,
    alias expansion, tags, control characters); every failure a located :class:`InputError`."""
    return yamlio.load_yaml_text(text, name, what="inventory", loader=_InventoryLoader)


class YamlInventory:
    """Walks one parsed YAML inventory into :class:`InventoryData`, collecting every problem."""

    def __init__(self, inv: InventoryData, file: str, root: Any, problems: list[Problem], warnings: list[str]):
        self.inv, self.file, self.root, self.problems, self.warnings = inv, file, root, problems, warnings

    def _at(self, path: list[Any]) -> Source:
        return source_at(self.root, path, self.file)

    def _where(self, path: list[Any]) -> str:
        return ".".join(map(str, path))

    def parse(self) -> None:
        if not isinstance(self.root, dict):
            self.problems.append(Problem(Source(self.file, 1, 1), "", "an inventory is a mapping of groups (all: ...)",
                                         "see inventory/lab.yml, or write an INI inventory"))
            return
        if self.root.get("plugin"):
            self.problems.append(Problem(key_source(self.root, "plugin", self.file), "plugin",
                                         f"inventory plugins (plugin: {self.root['plugin']}) are not supported",
                                         "export the hosts with `ansible-inventory -i THIS --list --yaml > hosts.yml` and use that"))
            return
        for name, body in self.root.items():
            self.group(name, body, [name])

    def group(self, name: Any, body: Any, path: list[Any], depth: int = 0) -> str | None:
        if depth > 200:
            self.problems.append(Problem(self._at(path), self._where(path), "groups nested more than 200 deep"))
            return None
        if not isinstance(name, str):
            self.problems.append(Problem(self._at(path), self._where(path), f"group name {name!r} must be a string", "quote it"))
            return None
        if not name:
            self.problems.append(Problem(self._at(path), self._where(path), "a group name must not be empty"))
            return None
        if body is not None and not isinstance(body, dict):
            # Ansible skips it with a warning; its hosts would vanish from the run: say so.
            self.problems.append(Problem(self._at(path), self._where(path), "a group must be a mapping with hosts, vars or children"))
            return None
        self.inv.add_group(name, self._at(path))
        if body is None:
            return name
        for key in list(body):
            section = body[key]
            if isinstance(section, str) and key in SECTIONS:
                if any(c in section for c in ", \t"):
                    # Ansible would make ONE host (or group) named "db1, db2": never what was meant.
                    self.problems.append(Problem(self._at(path + [key]), self._where(path + [key]),
                                                 f"{key} is written as the string {section!r}, which Ansible reads as one name",
                                                 f"write a mapping: {key}: {{{', '.join(f'{n.strip()}: {{}}' for n in section.replace(',', ' ').split())}}}"))
                    continue
                section = {section: None}  # Ansible reads "hosts: db1" as the one host db1
            if key not in SECTIONS:
                hint = did_you_mean(str(key), list(SECTIONS))
                self.problems.append(Problem(key_source(body, key, self.file), self._where(path), f"unknown key {key!r} in group {name}",
                                            hint or "a group has hosts, vars and children"))
                continue
            if section is None:
                continue
            if not isinstance(section, dict):
                self.problems.append(Problem(self._at(path + [key]), self._where(path + [key]),
                                             f"{key} must be a mapping" + (" of host names" if key == "hosts" else " of groups" if key == "children" else " of variables"),
                                             "e.g. hosts: {db1: {}, db2: {}}" if key == "hosts" else None))
                continue
            if key == "vars":
                for var, value in section.items():
                    if not isinstance(var, str):
                        self.problems.append(Problem(key_source(section, var, self.file), self._where(path + [key]), f"variable name {var!r} must be a string"))
                        continue
                    try:
                        self.inv.set_group_var(name, var, value, self._at(path + [key, var]))
                    except InputError as exc:
                        self.problems.append(Problem(exc.source or self._at(path), self._where(path + [key, var]), exc.message, exc.hint))
            elif key == "children":
                for child, child_body in section.items():
                    got = self.group(child, child_body, path + [key, child], depth + 1)
                    if got is not None:
                        try:
                            self.inv.add_child(name, got, self._at(path + [key, child]))
                        except InputError as exc:
                            self.problems.append(Problem(exc.source or self._at(path), self._where(path + [key, child]), exc.message, exc.hint))
            else:
                for pattern, hvars in section.items():
                    self.hosts(name, pattern, hvars, path + [key, pattern], section)
        return name

    def hosts(self, group: str, pattern: Any, hvars: Any, path: list[Any], section: Any) -> None:
        where = key_source(section, pattern, self.file)
        if not isinstance(pattern, str):
            self.problems.append(Problem(where, self._where(path), f"host name {pattern!r} must be a string", "enclose numbers in quotes"))
            return
        try:
            names, port = expand_host_pattern(pattern)
        except RangeError as exc:
            self.problems.append(Problem(where, self._where(path), str(exc)))
            return
        if hvars is None:
            hvars = {}
        if not isinstance(hvars, dict):
            self.problems.append(Problem(self._at(path), self._where(path), f"the variables of host {pattern} must be a mapping",
                                         "e.g. db1: {ssh_host: 10.0.0.5}"))
            return
        for h in names:
            self.inv.add_host(h, group, where)
            if port is not None:
                self.inv.set_host_var(h, "ansible_port", port, where)
            for var, value in hvars.items():
                if not isinstance(var, str):
                    self.problems.append(Problem(key_source(hvars, var, self.file), self._where(path), f"variable name {var!r} must be a string"))
                    continue
                self.inv.set_host_var(h, var, value, self._at(path + [var]))
