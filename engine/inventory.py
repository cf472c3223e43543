"""Inventory: the Ansible-compatible YAML subset of SPEC §4, and host patterns.

```yaml
all:
  vars: {mysql_user: root}
  hosts:
    db1: {ssh_host: 127.0.0.2, ssh_port: 2222, mysql_identity: db1.example}
  children:
    primary: {hosts: {db1: {}}}
```
Variables merge as all < parent groups < child groups < host. ``ansible_*`` names are
accepted as aliases. With no inventory, the run has one host, ``localhost``, local connection.
"""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass, field
from typing import Any

from engine.errors import ConnectError, InputError, Problem, Source, ValidationFailed
from engine.model import Host, HostKeyPolicy, MysqlSettings, SshSettings
from engine.language.schema_messages import did_you_mean
from engine.secrets import SECRET_KEY, Secret
from engine.templating.render import ENGINE, lazify
from engine.language.yamlio import key_source, load_yaml, source_at

ALIASES = {
    "ansible_host": "ssh_host",
    "ansible_ssh_host": "ssh_host",
    "ansible_port": "ssh_port",
    "ansible_ssh_port": "ssh_port",
    "ansible_user": "ssh_user",
    "ansible_ssh_user": "ssh_user",
    "ansible_ssh_private_key_file": "ssh_key",
    "ansible_private_key_file": "ssh_key",
    "ansible_password": "ssh_password",
    "ansible_ssh_pass": "ssh_password",
    "ansible_connection": "connection",
    "ansible_host_key_checking": "ssh_host_key_checking",
}

GROUP_KEYS = {"hosts", "vars", "children"}


@dataclass
class Inventory:
    hosts: dict[str, Host]
    groups: dict[str, list[str]]  # group -> host names (transitively)
    files: list[str] = field(default_factory=list)

    def select(self, pattern: str | None, *, source: Source | None = None, what: str = "pattern") -> list[Host]:
        names = match_pattern(pattern or "all", self)
        return [self.hosts[n] for n in names]


def _canon(key: str) -> str:
    return ALIASES.get(key, key)


def _normalise_vars(vars_: Any, file: str, path: list[Any], problems: list[Problem], root: Any) -> dict[str, Any]:
    if vars_ is None:
        return {}
    if not isinstance(vars_, dict):
        problems.append(Problem(source_at(root, path, file), ".".join(map(str, path)), "must be a mapping of variables"))
        return {}
    out: dict[str, Any] = {}
    for k, v in vars_.items():
        if not isinstance(k, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", k):
            problems.append(Problem(key_source(vars_, k, file), ".".join(map(str, path)), f"{k!r} is not a valid variable name"))
            continue
        why = _connection_value_problem(_canon(k), v)
        if why:
            problems.append(Problem(source_at(root, path + [k], file), ".".join(map(str, path + [k])), why[0], why[1]))
        out[_canon(k)] = v
    return out


_CHOICES = {
    "connection": ("ssh", "local"),
    "mysql_via": ("direct", "tunnel"),
    "ssh_host_key_checking": ("strict", "accept-new", "off", True, False),
}


def _connection_value_problem(key: str, value: Any) -> tuple[str, str] | None:
    """Connection variables are checked when the inventory loads, not when a step first
    connects halfway through a run. Templated values are checked once rendered."""
    if isinstance(value, str) and "{{" in value:
        return None
    if key in ("ssh_port", "mysql_port"):
        port = value if isinstance(value, int) and not isinstance(value, bool) else (int(value) if isinstance(value, str) and value.isdigit() else None)
        if port is None or not 1 <= port <= 65535:
            return f"{key} must be a port number (1-65535), not {value!r}", f"e.g. {key}: {22 if key == 'ssh_port' else 3306}"
    if key in _CHOICES and value not in _CHOICES[key]:
        return f"{key} must be one of {', '.join(str(c) for c in _CHOICES[key] if not isinstance(c, bool))}, not {value!r}", "fix the inventory"
    if key in ("ssh_connect_timeout", "mysql_connect_timeout") and not (isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0):
        return f"{key} must be a positive number of seconds, not {value!r}", "e.g. 10"
    return None


def load_inventories(paths: list[str]) -> Inventory:
    """Load and merge inventory files; every problem reported at once."""
    if not paths:
        local = Host(name="localhost", vars={"connection": "local"}, groups=("all", "ungrouped"), connection="local")
        return Inventory(hosts={"localhost": local}, groups={"all": ["localhost"], "ungrouped": ["localhost"]})
    problems: list[Problem] = []
    host_vars: dict[str, dict[str, Any]] = {}
    host_src: dict[str, Source] = {}
    group_vars: dict[str, dict[str, Any]] = {}
    group_hosts: dict[str, list[str]] = {}
    group_children: dict[str, list[str]] = {}
    order: list[str] = []  # groups in parent-before-child order for var precedence

    def walk_group(name: str, body: Any, file: str, path: list[Any], root: Any) -> None:
        if name not in order:
            order.append(name)
        group_hosts.setdefault(name, [])
        group_children.setdefault(name, [])
        if body is None:
            return
        if not isinstance(body, dict):
            problems.append(Problem(source_at(root, path, file), ".".join(map(str, path)), "a group must be a mapping with hosts, vars or children"))
            return
        for key in body:
            if key not in GROUP_KEYS:
                hint = did_you_mean(str(key), sorted(GROUP_KEYS))
                problems.append(Problem(key_source(body, key, file), ".".join(map(str, path)), f"unknown key {key!r} in group {name}", hint))
        group_vars.setdefault(name, {}).update(_normalise_vars(body.get("vars"), file, path + ["vars"], problems, root))
        hosts = body.get("hosts") or {}
        if not isinstance(hosts, dict):
            problems.append(Problem(source_at(root, path + ["hosts"], file), ".".join(map(str, path + ["hosts"])), "hosts must be a mapping of host names"))
            hosts = {}
        for hname, hbody in hosts.items():
            hname = str(hname)
            group_hosts[name].append(hname)
            host_src.setdefault(hname, key_source(hosts, hname, file))
            host_vars.setdefault(hname, {}).update(_normalise_vars(hbody, file, path + ["hosts", hname], problems, root))
        children = body.get("children") or {}
        if not isinstance(children, dict):
            problems.append(Problem(source_at(root, path + ["children"], file), ".".join(map(str, path + ["children"])), "children must be a mapping of groups"))
            children = {}
        for cname, cbody in children.items():
            group_children[name].append(str(cname))
            walk_group(str(cname), cbody, file, path + ["children", cname], root)

    for p in paths:
        data = load_yaml(os.path.expanduser(p), what="inventory")
        if not isinstance(data, dict):
            problems.append(Problem(Source(p, 1, 1), "", "an inventory is a mapping with an 'all' group", "see inventory/lab.yml"))
            continue
        for top, body in data.items():
            walk_group(str(top), body, p, [top], data)
            if top != "all":
                group_children.setdefault("all", [])
                if str(top) not in group_children["all"]:
                    group_children["all"].append(str(top))
    if problems:
        raise ValidationFailed(problems)

    group_children.setdefault("all", [])
    if "all" not in order:
        order.insert(0, "all")

    # Transitive membership, with a cycle guard.
    def members(g: str, seen: tuple[str, ...] = ()) -> list[str]:
        if g in seen:
            raise InputError(f"inventory groups form a cycle: {' -> '.join(seen + (g,))}")
        out = list(group_hosts.get(g, []))
        for c in group_children.get(g, []):
            out.extend(members(c, seen + (g,)))
        return list(dict.fromkeys(out))

    groups = {g: members(g) for g in order}
    groups["all"] = list(dict.fromkeys(list(host_vars) + groups.get("all", [])))
    grouped = {h for g, hs in groups.items() if g != "all" for h in hs}
    groups["ungrouped"] = [h for h in groups["all"] if h not in grouped]

    # Depth of each group: parents before children, so child group vars win.
    depth: dict[str, int] = {"all": 0}

    def set_depth(g: str, d: int, seen: tuple[str, ...] = ()) -> None:
        if g in seen:
            return
        depth[g] = max(depth.get(g, 0), d)
        for c in group_children.get(g, []):
            set_depth(c, d + 1, seen + (g,))

    set_depth("all", 0)
    hosts: dict[str, Host] = {}
    for h in groups["all"]:
        mine = sorted((g for g in groups if h in groups[g] and g != "ungrouped"), key=lambda g: (depth.get(g, 1), g))
        merged: dict[str, Any] = {}
        for g in mine:
            merged.update(group_vars.get(g, {}))
        merged.update(host_vars.get(h, {}))
        conn = str(merged.get("connection", "ssh"))
        if conn not in ("ssh", "local"):
            raise ValidationFailed([Problem(host_src.get(h, Source(paths[0])), f"hosts.{h}.connection", f"connection must be ssh or local, not {conn!r}")])
        if conn == "local" and merged.get("mysql_via") == "tunnel":
            raise ValidationFailed([Problem(host_src.get(h, Source(paths[0])), f"hosts.{h}.mysql_via",
                                            "mysql_via: tunnel needs an SSH connection, and this host is connection: local",
                                            "use mysql_via: direct (the default) for a local host")])
        merged = {k: (Secret(v) if isinstance(v, str) and SECRET_KEY.search(k) and "{{" not in v else v) for k, v in merged.items()}
        hosts[h] = Host(name=h, vars=merged, groups=tuple(g for g in mine), connection=conn, source=host_src.get(h))
    return Inventory(hosts=hosts, groups=groups, files=list(paths))


# --------------------------------------------------------------------------- patterns


def match_pattern(pattern: str, inv: Inventory) -> list[str]:
    """Ansible host patterns: ``all``, host, group, wildcards, ``~regex``, ``a:b`` (union),
    ``a:&b`` (intersection), ``a:!b`` (exclusion); ``,`` works like ``:``. Hosts keep
    inventory order."""
    all_hosts = list(inv.hosts)
    terms = [t.strip() for t in re.split(r"[:,]", pattern) if t.strip()]
    if not terms:
        return []
    selected: list[str] = []
    for term in terms:
        op = ""
        if term[0] in "&!":
            op, term = term[0], term[1:].strip()
        names = _term(term, inv, all_hosts)
        if op == "&":
            selected = [h for h in selected if h in names]
        elif op == "!":
            selected = [h for h in selected if h not in names]
        else:
            selected += [h for h in names if h not in selected]
    order = {h: i for i, h in enumerate(all_hosts)}
    return sorted(selected, key=lambda h: order.get(h, 0))


def _term(term: str, inv: Inventory, all_hosts: list[str]) -> list[str]:
    if term in ("all", "*"):
        return all_hosts
    if term in inv.groups:
        return list(inv.groups[term])
    if term in inv.hosts:
        return [term]
    if term.startswith("~"):
        rx = re.compile(term[1:])
        names = [h for h in all_hosts if rx.search(h)]
        for g, hs in inv.groups.items():
            if rx.search(g):
                names += [h for h in hs if h not in names]
        return names
    if any(ch in term for ch in "*?["):
        names = [h for h in all_hosts if fnmatch.fnmatchcase(h, term)]
        for g, hs in inv.groups.items():
            if fnmatch.fnmatchcase(g, term):
                names += [h for h in hs if h not in names]
        return names
    return []


def pattern_problems(pattern: str, inv: Inventory) -> str | None:
    """Why a pattern selects nothing, or None when it selects at least one host."""
    if match_pattern(pattern, inv):
        return None
    known = sorted(set(inv.hosts) | set(inv.groups))
    hint = did_you_mean(pattern.lstrip("&!~"), known)
    return f"pattern {pattern!r} matches no host" + (f" ({hint})" if hint else f"; hosts and groups: {', '.join(known[:12])}")


# --------------------------------------------------------------------------- connection settings


def _render_host_var(host: Host, key: str, default: Any = None) -> Any:
    value = host.vars.get(key, default)
    if isinstance(value, str) and "{{" in value:
        value = ENGINE.render(value, dict(lazify(host.vars), inventory_hostname=host.name))
        if SECRET_KEY.search(key) and isinstance(value, str):
            value = Secret(value)
    return value


def _secret(value: Any) -> Secret | None:
    if value is None:
        return None
    return value if isinstance(value, Secret) else Secret(str(value))


def ssh_settings(host: Host) -> SshSettings:
    try:
        return _ssh_settings(host)
    except (ValueError, TypeError) as exc:  # a templated port or timeout that rendered to nonsense
        raise ConnectError(f"host {host.name}: bad SSH settings: {exc}", hint="fix the inventory variables") from None


def mysql_settings(host: Host) -> MysqlSettings:
    try:
        return _mysql_settings(host)
    except (ValueError, TypeError) as exc:
        raise ConnectError(f"host {host.name}: bad MySQL settings: {exc}", hint="fix the inventory variables") from None


def _ssh_settings(host: Host) -> SshSettings:
    v = lambda k, d=None: _render_host_var(host, k, d)
    policy = str(v("ssh_host_key_checking", "strict")).lower()
    if policy in ("true", "yes", "on"):
        policy = "strict"
    if policy in ("false", "no"):
        policy = "off"
    try:
        hk = HostKeyPolicy(policy)
    except ValueError:
        raise InputError(f"host {host.name}: ssh_host_key_checking must be strict, accept-new or off, not {policy!r}", source=host.source) from None
    key = v("ssh_key")
    return SshSettings(
        host=str(v("ssh_host", host.name)),
        # 22 also means "not set": a Port in ~/.ssh/config then applies (see transport.ssh).
        port=int(v("ssh_port", 22) or 22),
        user=v("ssh_user"),
        key_file=os.path.expanduser(str(key)) if key else None,
        password=_secret(v("ssh_password")),
        host_key_checking=hk,
        known_hosts=os.path.expanduser(str(v("ssh_known_hosts"))) if v("ssh_known_hosts") else None,
        config_file=os.path.expanduser(str(v("ssh_config"))) if v("ssh_config") else None,
        connect_timeout=float(v("ssh_connect_timeout", 10)),
    )


def _mysql_settings(host: Host) -> MysqlSettings:
    v = lambda k, d=None: _render_host_var(host, k, d)
    via = str(v("mysql_via", "direct"))
    if via not in ("direct", "tunnel"):
        raise InputError(f"host {host.name}: mysql_via must be direct or tunnel, not {via!r}", source=host.source)
    default_host = "127.0.0.1" if host.connection == "local" or via == "tunnel" else str(v("ssh_host", host.name))
    opt = v("mysql_option_file")
    return MysqlSettings(
        host=str(v("mysql_host", default_host)),
        port=int(v("mysql_port", 3306)),
        user=v("mysql_user"),
        password=_secret(v("mysql_password")),
        database=v("mysql_database"),
        socket=v("mysql_socket"),
        option_file=os.path.expanduser(str(opt)) if opt else None,
        via=via,
        connect_timeout=float(v("mysql_connect_timeout", 10)),
        identity=v("mysql_identity"),
    )
