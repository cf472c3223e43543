"""Checks of inventory variables made when the inventory loads: connection values that cannot
work, and near-miss names of the variables the engine reads (``mysql_prot``, ``ssh_hots``,
``mysql_pasword``), which would otherwise be ignored silently and send a step to the wrong
port, host or account.

```yaml
db1: {mysql_prot: 3307}   # error: unknown variable 'mysql_prot' — did you mean 'mysql_port'?
```
"""

from __future__ import annotations

from typing import Any

from engine.inventory.vars import ALIAS_FAMILIES, ALIASES
from engine.language.durations import MAX_SECONDS
from engine.language.schema_messages import did_you_mean

ENGINE_KEYS = frozenset({
    "connection", "ssh_host", "ssh_port", "ssh_user", "ssh_key", "ssh_password", "ssh_host_key_checking", "ssh_known_hosts",
    "ssh_config", "ssh_connect_timeout", "mysql_host", "mysql_port", "mysql_user", "mysql_password", "mysql_database",
    "mysql_socket", "mysql_option_file", "mysql_via", "mysql_connect_timeout", "mysql_identity",
})
# Ansible variables that are real (not misspellings of ours) although close to one of ours.
ANSIBLE_KNOWN = frozenset({
    "ansible_become", "ansible_become_user", "ansible_become_method", "ansible_become_pass", "ansible_become_password",
    "ansible_become_exe", "ansible_become_flags", "ansible_python_interpreter", "ansible_ssh_common_args",
    "ansible_ssh_extra_args", "ansible_ssh_args", "ansible_ssh_pipelining", "ansible_pipelining", "ansible_shell_type",
    "ansible_shell_executable", "ansible_network_os", "ansible_ssh_timeout", "ansible_timeout", "ansible_ssh_retries",
    "ansible_ssh_executable", "ansible_private_key", "ansible_ssh_private_key", "ansible_private_key_passphrase",
    "ansible_ssh_private_key_passphrase", "ansible_sftp_extra_args", "ansible_scp_extra_args", "ansible_control_path",
    "ansible_control_path_dir", "ansible_ssh_use_tty", "ansible_ssh_transfer_method", "ansible_sudo_pass",
    "ansible_group_priority", "ansible_winrm_transport", "ansible_winrm_scheme", "ansible_winrm_server_cert_validation",
})
KNOWN = ENGINE_KEYS | frozenset(ALIASES) | frozenset(ALIAS_FAMILIES)
_PREFIXES = ("mysql_", "ssh_", "ansible_", "conn")

CHOICES: dict[str, tuple[Any, ...]] = {
    "mysql_via": ("direct", "tunnel"),
    "ssh_host_key_checking": ("strict", "accept-new", "off", True, False, "true", "false", "yes", "no", "True", "False"),
}


def _distance(a: str, b: str) -> int:
    """Edit distance with transpositions (optimal string alignment)."""
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[-1]


def near_miss(key: str, value: Any, defined: Any) -> str | None:
    """A did-you-mean when ``key`` looks like a misspelt engine variable that is not set.
    Lists and mappings (``mysql_users: [...]`` of a MySQL role) and plurals are not ours."""
    if isinstance(value, (list, dict)) or key in KNOWN or key in ANSIBLE_KNOWN or not key.startswith(_PREFIXES) or len(key) > 40:
        return None
    close = [c for c in sorted(KNOWN) if abs(len(c) - len(key)) <= 2 and _distance(key, c) <= (1 if len(c) < 10 else 2)]
    close = [c for c in close if c not in defined and key != c + "s"]
    if not close:
        return None
    return did_you_mean(key, close) or f"did you mean {close[0]!r}?"


def value_problem(key: str, value: Any) -> tuple[str, str] | None:
    """Connection values that cannot work; templated values are checked once rendered."""
    if isinstance(value, str) and "{{" in value:
        return None
    if key in ("ssh_port", "mysql_port"):
        port = value if isinstance(value, int) and not isinstance(value, bool) else (int(value) if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 6 else None)
        if port is None or not 1 <= port <= 65535:
            return f"{key} must be a port number (1-65535), not {value!r}", f"e.g. {key}: {22 if key == 'ssh_port' else 3306}"
    if key in CHOICES and value not in CHOICES[key]:
        shown = [c for c in CHOICES[key] if isinstance(c, str)][:3]
        return f"{key} must be one of {', '.join(shown)}, not {value!r}", "fix the inventory"
    # .inf or 1e300 would pass "> 0" and overflow the socket's timeout when the host is reached
    if key in ("ssh_connect_timeout", "mysql_connect_timeout") and not (
            isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value <= MAX_SECONDS):
        return f"{key} must be a positive number of seconds (at most {MAX_SECONDS:.0f}), not {value!r}", "e.g. 10"
    return None
