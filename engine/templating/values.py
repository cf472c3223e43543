"""The values templates deal with, in plain Python (no Jinja2): both :mod:`render` (which
``runbook validate`` imports) and :mod:`environment` (Jinja2's side, imported only when a
template is parsed or rendered) use them."""

from __future__ import annotations

import sys
from typing import Any

from engine.errors import TemplateError


class UnsafeText(str):
    """A string templates never render (Ansible's ``!unsafe``): ``{{`` in it is literal text."""

    __slots__ = ()


def has_template(value: Any) -> bool:
    if isinstance(value, UnsafeText):
        return False
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, dict):
        return any(has_template(k) or has_template(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(has_template(v) for v in value)
    return False


class LazyVar:
    """A variable definition that is a template, rendered when first read."""

    __slots__ = ("template",)

    def __init__(self, template: Any):
        self.template = template

    def __repr__(self) -> str:
        return f"LazyVar({self.template!r})"


def lazify(variables: dict[str, Any]) -> dict[str, Any]:
    """Wrap templated definitions in :class:`LazyVar`."""
    return {k: LazyVar(v) if has_template(v) else v for k, v in variables.items()}


def is_undefined(value: Any) -> bool:
    """``isinstance(value, jinja2.Undefined)`` without importing Jinja2: no such value exists
    before something imported it (validate need not pay for the import to ask)."""
    jinja2 = sys.modules.get("jinja2")
    return jinja2 is not None and isinstance(value, jinja2.Undefined)


def to_bool(value: Any) -> bool:
    if isinstance(value, str):
        v = value.strip().lower()
        if v in ("yes", "true", "on", "1", "y"):
            return True
        if v in ("no", "false", "off", "0", "n", ""):
            return False
        raise TemplateError(f"bool: cannot read {value!r} as a boolean")
    return bool(value)


def json_default(value: Any) -> Any:
    return str(value)  # a Secret too: its str() is the mask
