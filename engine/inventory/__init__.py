"""Ansible inventories, read as Ansible reads them (SPEC §4): YAML and INI files, directories,
``group_vars/`` and ``host_vars/``, ranges, host patterns, and the connection settings of a host.

```yaml
all:
  vars: {mysql_user: root}
  hosts:
    db1: {ansible_host: 10.0.0.5, mysql_identity: db1.example}
  children:
    primary: {hosts: {db1: {}}}
```
Modules: :mod:`.sources` (which files), :mod:`.yamlsrc` and :mod:`.ini` (formats),
:mod:`.ranges` (``db[01:20]``, ``host:port``), :mod:`.data` (the group graph),
:mod:`.vars` (group_vars/host_vars, precedence, aliases), :mod:`.checks`,
:mod:`.build` (:func:`load_inventories`), :mod:`.patterns`, :mod:`.connection`,
:mod:`.listing` (``runbook inventory``).
"""

from engine.inventory.build import Inventory, connection_kind, load_inventories
from engine.inventory.connection import become_settings, mysql_settings, option_file_problem, ssh_settings, target_problems
from engine.inventory.patterns import PatternError, limit_pattern, match_pattern, pattern_problems, split_pattern
from engine.inventory.vars import ALIAS_FAMILIES, ALIASES

__all__ = [
    "ALIASES",
    "ALIAS_FAMILIES",
    "Inventory",
    "PatternError",
    "become_settings",
    "connection_kind",
    "limit_pattern",
    "load_inventories",
    "match_pattern",
    "mysql_settings",
    "option_file_problem",
    "pattern_problems",
    "split_pattern",
    "ssh_settings",
    "target_problems",
]
