"""INI inventory files, read as Ansible's INI inventory plugin reads them.

```ini
db1 ansible_host=10.0.0.5          # before any section: ungrouped
[dbs]
db[01:03].example.com mysql_port=3307
[dbs:vars]
mysql_user=dba
[prod:children]
dbs
```
Values (inline and in ``:vars``) go through Python's ``ast.literal_eval`` as in Ansible:
``3307`` is a number, ``True`` a boolean, ``[1, 2]`` a list, ``yes`` and ``FALSE`` strings.
"""

from __future__ import annotations

import ast
import re
import shlex
import warnings
from typing import Any

from engine.errors import InputError, Problem, Source
from engine.inventory.data import InventoryData
from engine.inventory.ranges import RangeError, expand_host_pattern

_SECTION = re.compile(r"^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:#.*)?$")
_GROUPNAME = re.compile(r"^([^:\]\s]+)\s*(?:#.*)?$")
_MAX_VALUE = 10_000  # literal_eval of a huge or deeply nested value costs memory and recursion


def ini_value(text: str) -> Any:
    """An INI value as Ansible types it (literal_eval, tuples/sets as lists, else the string)."""
    value: Any = text
    if len(text) <= _MAX_VALUE:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", SyntaxWarning)
                value = ast.literal_eval(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            value = text
    return _coerce(value)


def _coerce(value: Any) -> Any:
    if isinstance(value, (list, tuple, set)):
        return [_coerce(v) for v in value]
    if isinstance(value, dict):
        return {_coerce(k): _coerce(v) for k, v in value.items()}
    if value is ...:
        return "..."
    if isinstance(value, complex):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return value


def parse_ini(text: str, file: str, inv: InventoryData, problems: list[Problem]) -> None:
    """Add the groups, hosts and variables of one INI file; problems carry file:line."""
    pending: dict[str, dict[str, Any]] = {}  # groups named before they are declared
    group, state = "ungrouped", "hosts"
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        here = Source(file, lineno, len(raw) - len(raw.lstrip()) + 1)
        try:
            m = _SECTION.match(line)
            if m:
                group, state = m.group(1), m.group(2) or "hosts"
                if state not in ("hosts", "children", "vars"):
                    state = "skip"  # its lines are not read: the section itself is the error
                    raise InputError(f"section [{m.group(1)}:{m.group(2)}] has an unknown type {m.group(2)!r}", source=here,
                                     hint="use [group], [group:vars] or [group:children]")
                if group not in inv.groups:
                    if state == "vars" and group not in pending:
                        pending[group] = {"line": here, "state": "vars", "parents": []}
                    inv.add_group(group, here)
                if group in pending and state != "vars":
                    if pending[group]["state"] == "children":
                        _resolve_pending(group, pending, inv)
                    else:
                        del pending[group]
                continue
            if line.startswith("[") and line.endswith("]"):
                raise InputError(f"invalid section {line!r}", source=here, hint="no spaces inside [ ]: [group], [group:vars], [group:children]")
            if state == "skip":
                continue
            if state == "hosts":
                _host_line(line, group, here, inv)
            elif state == "vars":
                if "=" not in line:
                    raise InputError(f"expected key=value in [{group}:vars], got {line!r}", source=here)
                key, value = (e.strip() for e in line.split("=", 1))
                inv.set_group_var(group, key, ini_value(value), here)
            else:
                cm = _GROUPNAME.match(line)
                if not cm:
                    raise InputError(f"expected a group name in [{group}:children], got {line!r}", source=here)
                child = cm.group(1)
                if child not in inv.groups:
                    pending.setdefault(child, {"line": here, "state": "children", "parents": []})["parents"].append(group)
                else:
                    inv.add_child(group, child, here)
        except InputError as exc:
            problems.append(Problem(exc.source or here, "", exc.message, exc.hint))
    for name, decl in pending.items():
        if decl["state"] == "vars":
            problems.append(Problem(decl["line"], "", f"section [{name}:vars] is for a group that is never declared",
                                    f"declare it with a [{name}] or [{name}:children] section"))
        else:
            problems.append(Problem(decl["line"], "", f"section [{decl['parents'][-1]}:children] names the undeclared group {name!r}",
                                    f"declare it with a [{name}] section (an empty one will do)"))


def _resolve_pending(group: str, pending: dict[str, dict[str, Any]], inv: InventoryData) -> None:
    decl = pending.pop(group)
    for parent in decl["parents"]:
        inv.add_child(parent, group, decl["line"])
        if parent in pending and pending[parent]["state"] == "children":
            _resolve_pending(parent, pending, inv)


_SHLEX_SPECIAL = re.compile(r"""['"\\#]""")
_SHLEX_SPACE = re.compile(r"[ \t\r\n]+")


def _host_line(line: str, group: str, here: Source, inv: InventoryData) -> None:
    try:
        # shlex is slow (a large inventory spends most of its load there); a line without quotes,
        # backslashes or comments splits the same on shlex's whitespace.
        tokens = [t for t in _SHLEX_SPACE.split(line) if t] if not _SHLEX_SPECIAL.search(line) else shlex.split(line, comments=True)
    except ValueError as exc:
        raise InputError(f"cannot read the host line {line!r}: {exc}", source=here, hint="check the quotes") from None
    if not tokens:
        return
    pattern = tokens[0]
    try:
        names, port = expand_host_pattern(pattern)
    except RangeError as exc:
        raise InputError(str(exc), source=here) from None
    if pattern.strip().endswith(":") and port is None:
        raise InputError(f"host {pattern!r} ends with ':', which is reserved for a port", source=here, hint="e.g. db1:2222")
    if any(n.strip() == "---" for n in names):
        raise InputError("'---' is not a host: is this a YAML file?", source=here, hint="name YAML inventories *.yml")
    variables: dict[str, Any] = {}
    for tok in tokens[1:]:
        if "=" not in tok:
            raise InputError(f"expected key=value after the host name, got {tok!r}", source=here,
                             hint="host variables are written name=value, with quotes around values that have spaces")
        key, value = tok.split("=", 1)
        variables[key] = ini_value(value)
    for h in names:
        inv.add_host(h, group, here)
        if port is not None:
            inv.set_host_var(h, "ansible_port", port, here)
        for key, value in variables.items():
            inv.set_host_var(h, key, value, here)
