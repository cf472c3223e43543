"""Template syntax checks at load time: a broken ``{{ }}`` or condition is reported with its
file:line before any host is touched, not when its step finally runs in the middle of a recovery.

Conditions (``when``, ``until``, ``failed_when``, ``changed_when``) are Jinja2 expressions
written without braces, as in Ansible; :func:`condition_text` gives them their braces back.
"""

from __future__ import annotations

from typing import Any

from engine.errors import Problem
from engine.language.schema_messages import path_str
from engine.templating.render import ENGINE
from engine.language.yamlio import source_at


def check_templates(value: Any, root: Any, path: list[Any], file: str, problems: list[Problem]) -> None:
    """Append a Problem for every string under ``value`` whose template does not parse."""
    if isinstance(value, str):
        if "{{" in value or "{%" in value:
            err = ENGINE.syntax_error(value)
            if err:
                problems.append(Problem(source_at(root, path, file), path_str(path), err, "check the {{ }} braces and the expression"))
    elif isinstance(value, dict):
        for k, v in value.items():
            check_templates(v, root, path + [k], file, problems)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            check_templates(v, root, path + [i], file, problems)


def check_condition(value: Any, root: Any, path: list[Any], file: str, problems: list[Problem]) -> None:
    """Append a Problem for every condition in ``value`` (one or a list) that does not parse."""
    items = value if isinstance(value, list) else [value]
    for i, cond in enumerate(items):
        if isinstance(cond, str):
            text = cond if "{{" in cond else "{{ " + cond + " }}"
            err = ENGINE.syntax_error(text)
            if err:
                p = path + [i] if isinstance(value, list) else path
                problems.append(Problem(source_at(root, p, file), path_str(p), err, "a condition is a Jinja2 expression without braces, e.g. facts.read_only == false"))


def condition_text(cond: Any) -> list[str]:
    """A condition (one or a list) as templates: ``x == 1`` → ``{{ x == 1 }}``."""
    items = cond if isinstance(cond, list) else [cond]
    return [c if "{{" in c else "{{ " + c + " }}" for c in items if isinstance(c, str)]
