"""jsonschema errors → :class:`Problem`s with a file:line:col and a message a DBA can act on.

jsonschema says ``'20' is not valid under any of the given schemas``; a runbook author needs
``'20' is not a percentage (e.g. 20%)`` at the line of the value (STYLE §7), and a did-you-mean
for a misspelt key. Positions come from the YAML marks that :mod:`engine.language.yamlio` keeps.
"""

from __future__ import annotations

import difflib
from typing import Any

from engine.errors import Problem
from engine.templating.render import has_template
from engine.language.yamlio import MDict, MList, key_source, source_at


def did_you_mean(word: str, choices: list[str]) -> str | None:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else None


def path_str(path: list[Any]) -> str:
    """``['stages', 2, 'steps', 4, 'sql']`` → ``stages[2].steps[4].sql``."""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
            MList: "a list", dict: "a mapping", MDict: "a mapping"}.get(type(value), type(value).__name__)


def templated(value: Any) -> bool:
    """A value whose schema errors are not reported: a template, checked once rendered."""
    if type(value) is str:  # has_template's test of plain text, inline: this runs on every value
        return "{{" in value or "{%" in value
    return isinstance(value, str) and has_template(value)


def schema_problems(validator: Any, instance: Any, root: Any, base: list[Any], file: str,
                    allowed_for: Any = None) -> list[Problem]:
    """jsonschema errors → Problems with positions and plain-English messages. Errors on values
    that are templates are dropped: they can only be checked once rendered."""
    problems: list[Problem] = []
    for err in validator.iter_errors(instance):
        path = base + list(err.absolute_path)
        if templated(err.instance):
            continue
        src = source_at(root, path, file)
        where = path_str(path)
        v = err.validator
        if "propertyNames" in err.schema_path:  # a key of the mapping, not a value: `~: 1`, `1x: 2`
            owner = _node_at(root, path)
            problems.append(Problem(key_source(owner, err.instance, file) if owner is not None else src, where,
                                    f"{err.instance!r} is not a valid variable name", "use letters, digits and _ (e.g. db_host)"))
            continue
        if v == "additionalProperties":
            allowed = sorted((err.schema.get("properties") or {}).keys())
            # The instance may be a filtered copy (the top level is checked without its stages):
            # take key positions from the document itself.
            owner = err.instance if isinstance(err.instance, MDict) else _node_at(root, path)
            for key in err.instance:
                if key in allowed or not isinstance(err.instance, dict):
                    continue
                hint = did_you_mean(str(key), allowed + (allowed_for(path) if allowed_for else []))
                problems.append(Problem(key_source(owner, key, file), where, f"unknown key {key!r}",
                                        hint or f"allowed: {', '.join(allowed[:15])}"))
        elif v == "required":
            missing = err.message.split("'")[1] if "'" in err.message else err.message
            problems.append(Problem(src, where, f"missing required key {missing!r}"))
        elif v == "type":
            want = err.validator_value if isinstance(err.validator_value, list) else [err.validator_value]
            problems.append(Problem(src, where, f"must be {' or '.join(type_name({'string': '', 'integer': 0, 'number': 0.5, 'boolean': True, 'array': [], 'object': {}, 'null': None}.get(w)) for w in want)}, not {type_name(err.instance)}"))
        elif v == "enum":
            problems.append(Problem(src, where, f"{err.instance!r} is not allowed", f"use one of: {', '.join(map(str, err.validator_value))}"))
        elif v == "minItems":
            problems.append(Problem(src, where, "must not be empty"))
        elif v == "pattern" and err.schema.get("pattern", "").startswith("^[A-Za-z_]"):
            problems.append(Problem(src, where, f"{err.instance!r} is not a valid name", "use letters, digits and _"))
        elif v in ("anyOf", "oneOf") and _pattern_kind(err.schema):
            problems.append(Problem(src, where, f"{err.instance!r} is not {_pattern_kind(err.schema)}"))
        elif v in ("anyOf", "oneOf"):
            desc = err.schema.get("description")
            problems.append(Problem(src, where, f"{err.instance!r} is not valid here" + (f": expected {desc}" if desc else "")))
        elif v == "propertyNames":
            problems.append(Problem(src, where, f"{err.instance!r} is not a valid variable name" if not isinstance(err.instance, dict) else err.message))
        else:
            problems.append(Problem(src, where, err.message))
    return problems


def _pattern_kind(schema: Any) -> str | None:
    """'a size (e.g. 20G)' when a schema is the sizes module's size or percentage, so the
    message says what was expected (STYLE: ``'20' is not a percentage (e.g. 20%)``)."""
    from engine.language.sizes import PERCENT_PATTERN, SIZE_PATTERN

    patterns = {sub.get("pattern") for sub in schema.get("anyOf", schema.get("oneOf", [])) if isinstance(sub, dict)}
    if PERCENT_PATTERN in patterns:
        return "a percentage (e.g. 20%)"
    if SIZE_PATTERN in patterns:
        return "a size (e.g. 20G, 512M, 1.5T)"
    return None


def _node_at(root: Any, path: list[Any]) -> Any:
    node = root
    for part in path:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return None
    return node
