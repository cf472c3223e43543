"""The inventory graph as sources build it: groups with their direct hosts, children and
variables, hosts with theirs — the shape of ansible-core's ``InventoryData``, so that group
order, host order, depth and ``ungrouped`` come out as Ansible gives them.

```yaml
all:
  children:
    dbs:                       # depth 1
      children:
        primary: {hosts: {db1: {}}}   # depth 2: its vars beat dbs' vars
```
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.errors import InputError, Source


@dataclass
class GroupData:
    name: str
    hosts: list[str] = field(default_factory=list)  # direct members, in the order they were added
    children: list[str] = field(default_factory=list)
    parents: list[str] = field(default_factory=list)
    vars: dict[str, Any] = field(default_factory=dict)
    priority: int = 1
    depth: int = 0
    source: Source | None = None
    member_set: set[str] = field(default_factory=set, repr=False)  # ``hosts`` as a set: large groups stay fast


@dataclass
class HostData:
    name: str
    vars: dict[str, Any] = field(default_factory=dict)
    source: Source | None = None
    var_sources: dict[str, Source] = field(default_factory=dict)  # where each inventory variable was written


class InventoryData:
    """Groups and hosts in the order sources added them; ``all`` and ``ungrouped`` always exist."""

    def __init__(self) -> None:
        self.groups: dict[str, GroupData] = {}
        self.hosts: dict[str, HostData] = {}
        self.group_var_sources: dict[tuple[str, str], Source] = {}
        self._direct: dict[str, list[str]] | None = None
        self._ancestors: dict[str, set[str]] = {}
        for g in ("all", "ungrouped"):
            self.add_group(g)
        self.add_child("all", "ungrouped")

    # -- building -------------------------------------------------------------------------
    def add_group(self, name: str, source: Source | None = None) -> GroupData:
        if name not in self.groups:
            self.groups[name] = GroupData(name, source=source)
        return self.groups[name]

    def add_host(self, name: str, group: str | None, source: Source | None = None) -> HostData:
        host = self.hosts.get(name)
        if host is None:
            host = self.hosts[name] = HostData(name, source=source)
        g = self.groups[group] if group is not None else None
        if g is not None and name not in g.member_set:
            g.hosts.append(name)
            g.member_set.add(name)
            self._direct = None
        return host

    def ancestors(self, group: str) -> set[str]:
        seen: set[str] = set()
        todo = list(self.groups[group].parents)
        while todo:
            g = todo.pop()
            if g not in seen:
                seen.add(g)
                todo.extend(self.groups[g].parents)
        return seen

    def add_child(self, parent: str, child: str, source: Source | None = None) -> None:
        p, c = self.groups[parent], self.groups[child]
        if child in p.children:
            return
        if parent == child or child in self.ancestors(parent):
            raise InputError(f"adding group {child!r} as a child of {parent!r} makes a loop", source=source,
                             hint="a group cannot contain itself, directly or through its children")
        p.children.append(child)
        self._direct = None
        if parent not in c.parents:
            c.parents.append(parent)
        self._deepen(child, p.depth + 1)

    def _deepen(self, name: str, depth: int) -> None:
        todo = [(name, depth)]
        while todo:
            g, d = todo.pop()
            group = self.groups[g]
            if group.depth < d:
                group.depth = d
                todo.extend((c, d + 1) for c in group.children)

    def set_group_var(self, group: str, key: str, value: Any, source: Source | None = None) -> None:
        if key == "ansible_group_priority":
            try:
                self.groups[group].priority = int(value)
            except (TypeError, ValueError):
                raise InputError(f"ansible_group_priority of group {group} must be an integer, not {value!r}", source=source) from None
            return
        self.groups[group].vars[key] = value
        if source is not None:
            self.group_var_sources[(group, key)] = source

    def set_host_var(self, host: str, key: str, value: Any, source: Source | None = None) -> None:
        h = self.hosts[host]
        h.vars[key] = value
        if source is not None:
            h.var_sources[key] = source

    # -- after every source ---------------------------------------------------------------
    def reconcile(self) -> None:
        """Every group hangs under ``all``; ``ungrouped`` holds exactly the hosts in no other group."""
        for name in list(self.groups):
            if name != "all" and not self.groups[name].parents:
                self.add_child("all", name)
        ungrouped = self.groups["ungrouped"]
        member_of: dict[str, set[str]] = {h: set() for h in self.hosts}
        for g in self.groups.values():
            for h in g.hosts:
                member_of[h].add(g.name)
        drop: set[str] = set()
        for h, groups in member_of.items():
            others = groups - {"all", "ungrouped"}
            if "ungrouped" in groups and others:
                drop.add(h)
            elif not others and "ungrouped" not in groups:
                ungrouped.hosts.append(h)
                ungrouped.member_set.add(h)
        if drop:
            ungrouped.hosts = [h for h in ungrouped.hosts if h not in drop]
            ungrouped.member_set -= drop
        self._direct = None

    def descendants(self, group: str) -> list[str]:
        """The group, its children in order, then deeper levels breadth first."""
        ordered = [group] + list(self.groups[group].children)
        seen = set(ordered)
        level = list(self.groups[group].children)
        while level:
            nxt: list[str] = []
            for g in level:
                for c in self.groups[g].children:
                    if c not in seen:
                        seen.add(c)
                        nxt.append(c)
            ordered.extend(nxt)
            level = nxt
        return ordered

    def group_hosts(self, group: str) -> list[str]:
        out: dict[str, None] = {}
        for g in self.descendants(group):
            for h in self.groups[g].hosts:
                out.setdefault(h)
        return list(out)

    def host_groups(self, host: str) -> list[str]:
        """Every group a host belongs to, directly or through a child group (``all`` included)."""
        if self._direct is None:  # built once, after reconcile: membership by host, ancestors by group
            self._direct = {}
            for grp in self.groups.values():
                for h in grp.hosts:
                    self._direct.setdefault(h, []).append(grp.name)
            self._ancestors = {name: self.ancestors(name) for name in self.groups}
        out: set[str] = set(self._direct.get(host, []))
        for name in list(out):
            out |= self._ancestors[name]
        out.add("all")
        return [g for g in self.groups if g in out]

    def sorted_groups(self, groups: list[str]) -> list[str]:
        """Ansible's precedence order: depth, then ansible_group_priority, then name."""
        return sorted(groups, key=lambda g: (self.groups[g].depth, self.groups[g].priority, g))
