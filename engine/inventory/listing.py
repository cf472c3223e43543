"""``runbook inventory``: the inventory as ``ansible-inventory`` prints it.

```sh
runbook inventory -i hosts.ini --list          # JSON: groups, children, _meta.hostvars (secrets masked)
runbook inventory -i hosts.ini --graph         # @all: / |--@dbs: / |  |--db1
runbook inventory -i hosts.ini --host db1      # one host's variables
runbook inventory -i hosts.ini --hosts 'dbs:!db3'   # the hosts a pattern selects, in order
```
"""

from __future__ import annotations

import json
from typing import Any

from engine.inventory.build import Inventory
from engine.inventory.values import UnsafeText, VaultValue
from engine.secrets import MASKER, Secret


def _plain(value: Any) -> Any:
    if isinstance(value, VaultValue):
        return value.listing()
    if isinstance(value, Secret):
        return str(value)
    if isinstance(value, UnsafeText):
        return {"__ansible_unsafe": str(value)}  # as ansible-inventory marks it
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def host_vars(inv: Inventory, name: str) -> dict[str, Any]:
    """A host's variables under the names they were written, secrets masked."""
    return masked(_plain(inv.raw_vars.get(name, {})))


def masked(data: Any) -> Any:
    out = MASKER.data(data)
    return {k: v for k, v in out.items()} if isinstance(out, dict) else out


def dump(data: Any) -> str:
    return json.dumps(data, sort_keys=True, indent=4, default=str)


def as_list(inv: Inventory) -> dict[str, Any]:
    """ansible-inventory --list: each group's direct hosts and children, plus _meta.hostvars."""
    data = inv.data
    out: dict[str, Any] = {}
    if data is None:  # no inventory: the implicit localhost
        return {"_meta": {"hostvars": {}, "profile": "inventory_legacy"}, "all": {"children": ["ungrouped"]},
                "ungrouped": {"hosts": list(inv.hosts)}}
    seen: set[str] = set()

    def visit(name: str) -> None:
        g = data.groups[name]
        entry: dict[str, Any] = {}
        if name != "all" and g.hosts:
            entry["hosts"] = list(g.hosts)
        if g.children:
            entry["children"] = list(g.children)
        if entry:
            out[name] = entry
        for c in g.children:
            if c not in seen:
                seen.add(c)
                visit(c)

    visit("all")
    hostvars = {h: v for h in inv.groups.get("all", []) if (v := host_vars(inv, h))}
    out["_meta"] = {"hostvars": hostvars, "profile": "inventory_legacy"}
    return out


def graph(inv: Inventory, group: str = "all") -> str:
    data = inv.data
    if data is None:
        return "@all:\n  |--@ungrouped:\n  |  |--localhost"
    if group not in data.groups:
        from engine.errors import InputError

        raise InputError(f"--graph {group}: no such group", hint=", ".join(list(data.groups)[:12]))
    lines: list[str] = []

    def name(text: str, depth: int) -> str:
        return "  |" * depth + "--" + text if depth else text

    def walk(g: str, depth: int) -> None:
        lines.append(name(f"@{g}:", depth))
        for c in data.groups[g].children:
            walk(c, depth + 1)
        if g != "all":
            for h in data.groups[g].hosts:
                lines.append(name(h, depth + 1))

    walk(group, 0)
    return "\n".join(lines)
