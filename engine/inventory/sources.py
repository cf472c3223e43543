"""Which files make an inventory, as Ansible decides: ``-i FILE`` (YAML or INI), ``-i DIR``
(every inventory file in it, recursively), ``-i 'db1,db2,'`` (a host list); several ``-i``.

```sh
runbook play dr.yml -i inventories/prod/          # hosts.ini + group_vars/ + host_vars/
runbook play dr.yml -i hosts.ini -i extra.yml
```
In a directory, names starting with ``.``, ``group_vars``, ``host_vars``, ``vars_plugins``
and files ending ``.pyc .pyo .swp .bak ~ .rpm .md .txt .rst .orig .cfg .retry`` are skipped.
``.yml``/``.yaml``/``.json`` (and extension-less YAML) files are YAML inventories; any other
file is INI. As in ansible-core, whose inventory plugins are tried in order (yaml, then ini), a
``.yml`` file whose text is not a YAML mapping (an INI inventory saved under a YAML name) is
read as INI, with a warning; when the INI parser fails too, the YAML error is the one reported.
A YAML mapping is never re-read as INI: it is a YAML inventory, and its own errors are the
useful ones. Inventory plugins (``plugin:``), scripts and TOML are refused with a message.
"""

from __future__ import annotations

import os
import re

from engine.errors import InputError, Problem, Source, ValidationFailed
from engine.inventory.data import InventoryData
from engine.inventory.ini import parse_ini
from engine.inventory.ranges import parse_address
from engine.inventory.vault import unvault
from engine.inventory.yamlsrc import YamlInventory, parse_yaml, read_text

IGNORED = re.compile(r"^\.|^host_vars$|^group_vars$|^vars_plugins$|(\.pyc|\.pyo|\.swp|\.bak|~|\.rpm|\.md|\.txt|\.rst|\.orig|\.cfg|\.retry)$")
YAML_EXTS = (".yml", ".yaml", ".json")


def load_sources(paths: list[str], inv: InventoryData, problems: list[Problem], warnings: list[str],
                 vault_password: bytes | None = None) -> list[str]:
    """Parse every source into ``inv``; returns the files read (for the journal's digests)."""
    files: list[str] = []
    for raw in paths:
        path = os.path.expanduser(raw)
        if "," in raw and not os.path.exists(path):
            _host_list(raw, inv)
        elif os.path.isdir(path):
            _directory(path, inv, problems, warnings, files, vault_password, depth=0)
        elif not os.path.exists(path):
            problems.append(Problem(Source(raw), "", f"inventory {raw} does not exist", "check the path given with -i"))
        else:
            _file(path, inv, problems, warnings, files, vault_password, strict=True)
    return files


def _host_list(text: str, inv: InventoryData) -> None:
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        try:
            name, port = parse_address(item)
        except ValueError:
            name, port = item, None
        inv.add_host(name, "ungrouped", Source("-i"))
        if port is not None:
            inv.set_host_var(name, "ansible_port", port)


def _directory(path: str, inv: InventoryData, problems: list[Problem], warnings: list[str], files: list[str],
               vault_password: bytes | None, depth: int) -> None:
    if depth > 20:
        problems.append(Problem(Source(path), "", "inventory directories nested more than 20 deep (a symlink loop?)"))
        return
    try:
        names = sorted(os.listdir(path))
    except OSError as exc:
        problems.append(Problem(Source(path), "", f"cannot read the inventory directory {path}: {exc.strerror}"))
        return
    for name in names:
        if IGNORED.search(name):
            continue
        full = os.path.join(path, name)
        if os.path.isdir(full):
            _directory(full, inv, problems, warnings, files, vault_password, depth + 1)
        elif os.path.isfile(full):
            _file(full, inv, problems, warnings, files, vault_password, strict=False)


def _file(path: str, inv: InventoryData, problems: list[Problem], warnings: list[str], files: list[str],
          vault_password: bytes | None, *, strict: bool) -> None:
    """One file. Given with ``-i`` (strict), a file no format accepts is an error; found in a
    directory, it is skipped with a warning, as Ansible does."""
    ext = os.path.splitext(path)[1].lower()
    mine: list[Problem] = []
    try:
        if ext == ".toml":
            raise InputError("TOML inventories are not supported", source=Source(path, 1, 1), hint="convert it to YAML or INI")
        text = _ini_tolerant_text(path) if ext not in YAML_EXTS else read_text(path)
        text = unvault(text, path, vault_password)
        if text.startswith("#!"):
            raise InputError("dynamic inventory scripts are not supported", source=Source(path, 1, 1),
                             hint="save its output with `ansible-inventory -i THIS --list --yaml > hosts.yml` and use that")
        if not text.strip() or all(not ln.strip() or ln.lstrip()[0] in "#;" for ln in text.splitlines()):
            raise InputError("inventory is empty", source=Source(path, 1, 1), hint="an inventory lists hosts: see inventory/lab.yml")
        if ext in YAML_EXTS:
            _yaml_then_ini(text, path, inv, mine, warnings)
        elif ext == "":
            data = _yaml_or_none(text, path)
            if isinstance(data, dict):
                YamlInventory(inv, path, data, mine, warnings).parse()
            else:
                parse_ini(text, path, inv, mine)
        else:
            parse_ini(text, path, inv, mine)
    except ValidationFailed as exc:
        mine.extend(exc.problems)
    except InputError as exc:
        mine.append(Problem(exc.source or Source(path), "", exc.message, exc.hint))
    files.append(path)
    if mine and not strict and all(p.message == "inventory is empty" for p in mine):
        warnings.append(f"{path}: empty, skipped")
        return
    problems.extend(mine)


def _yaml_then_ini(text: str, path: str, inv: InventoryData, problems: list[Problem], warnings: list[str]) -> None:
    """A file named as YAML: YAML if its text is a mapping, else INI if that parses, else the
    YAML error (ansible-core's plugin order: yaml, then ini)."""
    yaml_error: InputError | ValidationFailed | None = None
    try:
        data = parse_yaml(text, path)
    except (InputError, ValidationFailed) as exc:
        data, yaml_error = None, exc
    if isinstance(data, dict):
        YamlInventory(inv, path, data, problems, warnings).parse()
        return
    ini_problems: list[Problem] = []
    try:
        parse_ini(text, path, inv, ini_problems)
    except (InputError, ValidationFailed):
        ini_problems.append(Problem(Source(path), "", "not INI either"))
    if not ini_problems:
        warnings.append(f"{path}: not a YAML inventory, read as INI (as Ansible does); rename it .ini")
        return
    if yaml_error is not None:
        raise yaml_error
    YamlInventory(inv, path, data, problems, warnings).parse()  # says why a non-mapping is no inventory


def _yaml_or_none(text: str, path: str) -> object:
    try:
        return parse_yaml(text, path)
    except (InputError, ValidationFailed):
        return None


def _ini_tolerant_text(path: str) -> str:
    """As Ansible's INI reader: comment lines may hold any bytes (a Latin-1 "é" in a comment is
    common); every other line must be UTF-8, else a located error."""
    try:
        return read_text(path)
    except InputError as exc:
        if "not UTF-8" not in exc.message:
            raise
    with open(path, "rb") as fh:
        raw = fh.read()
    lines: list[str] = []
    for n, line in enumerate(raw.splitlines(), 1):
        if line.lstrip()[:1] in (b"#", b";"):
            lines.append("")
            continue
        try:
            lines.append(line.decode("utf-8"))
        except UnicodeDecodeError as err:
            raise InputError(f"inventory is not UTF-8 text (byte 0x{line[err.start]:02x})", source=Source(path, n, err.start + 1),
                             hint="save the file as UTF-8") from None
    return "\n".join(lines)
