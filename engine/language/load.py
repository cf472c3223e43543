"""The load that ``validate``, ``play``, ``resume`` and ``rollback`` share: runbook, inventory and
extra vars, with their cross-checks, every problem reported at once."""

from __future__ import annotations

import os
from typing import Any

from engine.errors import InputError, Problem, Source, ValidationFailed


def parse_extra_vars(values: tuple[str, ...], origins: dict[str, str] | None = None) -> dict[str, Any]:
    """``-e KEY=VALUE`` (a string), ``-e @vars.yml`` or ``-e '{"k": 1}'`` (YAML/JSON).
    ``origins``, when given, gets each name's ``-e`` (``-e #2 shema=shop2``, ``-e #1 @vars.yml``)."""
    import re

    from engine.secrets import mask_literal_secrets
    from engine.language.yamlio import load_yaml, load_yaml_text

    out: dict[str, Any] = {}
    problems: list[Problem] = []
    for i, raw in enumerate(values, 1):
        where = Source(f"-e #{i}")
        if raw.startswith("@"):
            try:
                data = load_yaml(raw[1:], what="vars file")
            except InputError as exc:
                problems.append(Problem(exc.source or where, "", exc.message, exc.hint))
                continue
            except ValidationFailed as exc:
                problems.extend(exc.problems)
                continue
            if not isinstance(data, dict):
                problems.append(Problem(Source(raw[1:], 1, 1), "", "a vars file is a mapping of names to values"))
                continue
            items = data
        elif raw.lstrip().startswith("{"):
            try:
                data = load_yaml_text(raw, f"-e #{i}", what="extra vars")
            except (InputError, ValidationFailed) as exc:
                problems.append(Problem(where, "", f"cannot parse {raw!r}: {exc.render()}"))
                continue
            items = data if isinstance(data, dict) else {}
        elif "=" in raw:
            key, _, value = raw.partition("=")
            items = {key.strip(): value}
        else:
            problems.append(Problem(where, "", f"{raw!r} is not KEY=VALUE, @file.yml or a JSON/YAML mapping", "e.g. -e schema=shop"))
            continue
        for key, value in items.items():
            if not isinstance(key, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
                problems.append(Problem(where, "", f"{key!r} is not a valid variable name", "use letters, digits and _"))
                continue
            mask_literal_secrets({key: value})  # -e db_password=... never reaches the output or the journal
            out[key] = value
            if origins is not None:
                origins[key] = f"-e #{i}"
    if problems:
        raise ValidationFailed(problems)
    return out


def vault_password(path: str | None) -> bytes | None:
    """The ansible-vault password of ``--vault-password-file`` (None without one)."""
    from engine.inventory.vault import read_password

    return read_password(path) if path else None


def load_all(runbook: str, inventories: tuple[str, ...], extra: tuple[str, ...], limit: str | None,
             vault_password_file: str | None = None, *, allow_unused_vars: bool = False) -> Any:
    """Runbook, inventory, extra vars and their cross-checks — every problem at once. An
    extra var that nothing reads is a problem unless ``allow_unused_vars`` (a typo in -e must
    not let the run use the default)."""
    from engine.inventory import limit_pattern, load_inventories
    from engine.language.loader import load_runbook
    from engine.language.crosscheck import cross_check

    problems: list[Problem] = []

    def attempt(fn: Any, fallback: str) -> Any:
        try:
            return fn()
        except ValidationFailed as exc:
            problems.extend(exc.problems)
        except InputError as exc:
            problems.append(Problem(exc.source or Source(fallback), "", exc.message, exc.hint))
        return None

    loaded = attempt(lambda: load_runbook(runbook, partial=True), runbook)
    if loaded is not None:
        problems.extend(loaded.problems)
    inv = attempt(lambda: load_inventories(list(inventories), playbook_dir=os.path.dirname(os.path.abspath(runbook)),
                                           vault_password=vault_password(vault_password_file)),
                  ",".join(inventories) or "inventory")
    origins: dict[str, str] = {}
    extra_vars = attempt(lambda: parse_extra_vars(extra, origins), "-e") or {}
    if loaded is not None and inv is not None:
        problems.extend(cross_check(loaded.runbook, inv, extra_vars, attempt(lambda: limit_pattern(limit), "--limit")))
        if not allow_unused_vars and extra_vars:
            problems.extend(_unused(loaded.runbook, inv, extra_vars, origins, os.path.dirname(os.path.abspath(runbook))))
    if problems:
        raise ValidationFailed(problems)
    return loaded, inv, extra_vars


def _unused(rb: Any, inv: Any, extra: dict[str, Any], origins: dict[str, str], base_dir: str) -> list[Problem]:
    from engine.language.var_reads import unused_extra_vars

    out = []
    for name, close in unused_extra_vars(rb, inv, extra, base_dir):
        declared = name in rb.vars
        what = ("is declared in the runbook's vars: but no template, condition or action reads it" if declared
                else "is read by no template, condition or action of the runbook, its inventory or its check suites")
        hint = (f"did you mean {close!r}? " if close else "") + "fix the name, or pass --allow-unused-vars to run with it anyway"
        out.append(Problem(Source(origins.get(name, "-e")), "", f"extra var {name!r} {what}", hint))
    return out
