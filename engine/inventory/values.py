"""Values an Ansible inventory may hold that are not plain data: ``!vault`` and ``!unsafe``.

```yaml
all:
  vars:
    mysql_password: !vault |
      $ANSIBLE_VAULT;1.1;AES256
      6232...
    motd: !unsafe "{{ not a template }}"
```
A vaulted value is kept (``runbook inventory --list`` shows it as Ansible does) and refused
only when a run reads it. An unsafe value is a plain string that templates leave alone.
"""

from __future__ import annotations

from typing import Any


from engine.templating.render import UnsafeText

__all__ = ["UnsafeText", "VaultValue", "template_view", "vault_hint"]


class VaultValue:
    """An ``!vault`` ciphertext. We do not decrypt it."""

    __slots__ = ("ciphertext",)

    def __init__(self, ciphertext: str):
        self.ciphertext = ciphertext

    def __repr__(self) -> str:
        return "VaultValue(…)"

    def listing(self) -> dict[str, str]:
        return {"__ansible_vault": self.ciphertext}


def vault_hint(name: str) -> str:
    return (f"{name} is encrypted with ansible-vault (!vault) and no vault password was given: "
            f"pass --vault-password-file FILE (or set ANSIBLE_VAULT_PASSWORD_FILE), "
            f"or give it with -e {name}=... or \"{{{{ lookup('env', 'VAR') }}}}\"")


def template_view(name: str, value: Any) -> Any:
    """What templates see: a vaulted value becomes undefined with a message naming the variable."""
    if isinstance(value, VaultValue):
        import jinja2  # only for a vaulted value without its password

        return jinja2.StrictUndefined(hint=vault_hint(name), name=name)
    return value


def has_vault(value: Any) -> bool:
    if isinstance(value, VaultValue):
        return True
    if isinstance(value, dict):
        return any(has_vault(v) for v in value.values())
    if isinstance(value, list):
        return any(has_vault(v) for v in value)
    return False
