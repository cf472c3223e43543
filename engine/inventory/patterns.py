"""Host patterns, evaluated as ansible-core's ``InventoryManager`` evaluates them.

```yaml
targets: "primary:replicas:!db3"   # unions first, then &, then !  → primary + replicas − db3
targets: "db[0]"                    # the first host of group db (db[-1]: the last; db[0:2]: three)
targets: "~db[0-9]+\\.prod"        # a regex, anchored at the start (re.match)
targets: "!db1"                     # all hosts but db1
```
Rules (from Ansible's pattern documentation and ``InventoryManager``): a pattern splits on
``,`` (or, when it has none and is not one address such as ``::1`` or ``db[1:3]``, on ``:``
and whitespace); the parts are applied unions first, then ``&`` intersections, then ``!``
exclusions, whatever order they were written in; a pattern of only ``&``/``!`` parts starts
from ``all``. A part names a host, or matches group names (its hosts, in group order) and —
when it matched no group or is a glob/regex — host names. ``[i]`` / ``[i:j]`` subscripts
select from a part's hosts. The result keeps the order in which hosts were first selected.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from engine.errors import InputError, Source
from engine.inventory.ranges import parse_address


class PatternError(InputError):
    """A host pattern that cannot be evaluated (bad regex, subscript out of range)."""


class Selectable(Protocol):
    @property
    def hosts(self) -> Mapping[str, Any]: ...  # host name -> host, in inventory order

    @property
    def groups(self) -> Mapping[str, Sequence[str]]: ...  # group name -> its hosts (children's included), in Ansible's order


_SUBSCRIPT = re.compile(r"^(.+)\[(?:(-?[0-9]+)|([0-9]+)([:-])([0-9]*))\]$")
_COLON_PARTS = re.compile(r"(?:[^\s:\[\]]|\[[^\]]*\])+")


def split_pattern(pattern: str) -> list[str]:
    """``'a,b[1], c[2:3] , d'`` → ``['a', 'b[1]', 'c[2:3]', 'd']``; ``'a:!b'`` → ``['a', '!b']``."""
    if "," in pattern:
        parts = pattern.split(",")
    else:
        try:
            parse_address(pattern, allow_ranges=True)
            parts = [pattern]  # one address: an IPv6 address or a range, whose ':' is no separator
        except ValueError:
            parts = _COLON_PARTS.findall(pattern)
            left = _COLON_PARTS.sub("", pattern).replace(":", "").strip()
            if left:  # an unclosed '[' would be dropped silently: '~[' read as '~', i.e. every host
                raise PatternError(f"invalid host pattern {pattern!r}: unbalanced {left[0]!r}",
                                   hint="close the brackets, or quote the pattern differently") from None
    return [p.strip() for p in parts if p.strip()]


def order_parts(parts: list[str]) -> list[str]:
    plain = [p for p in parts if p[0] not in "!&"]
    inter = [p for p in parts if p[0] == "&"]
    excl = [p for p in parts if p[0] == "!"]
    return (plain or ["all"]) + inter + excl


def _compile(part: str, source: Source | None) -> re.Pattern[str]:
    try:
        return re.compile(part[1:]) if part.startswith("~") else re.compile(fnmatch.translate(part))
    except (re.error, RecursionError, OverflowError) as exc:
        raise PatternError(f"invalid host pattern {part!r}: {exc}", source=source,
                           hint="a pattern starting with ~ is a Python regular expression") from None


def _split_subscript(part: str) -> tuple[str, tuple[int, int | None] | None]:
    if part.startswith("~"):
        return part, None  # a regex keeps its brackets
    m = _SUBSCRIPT.match(part)
    if not m:
        return part, None
    expr, idx, start, _sep, end = m.groups()
    if idx is not None:
        return expr, (int(idx), None)
    return expr, (int(start), int(end) if end else -1)


def _apply_subscript(names: list[str], sub: tuple[int, int | None] | None, part: str, source: Source | None) -> list[str]:
    if not names or sub is None:
        return names
    start, end = sub
    if end:  # as Ansible: an end of 0 reads as "no end", i.e. a single index
        last = len(names) - 1 if end == -1 else end
        return names[start:last + 1]
    try:
        return [names[start]]
    except IndexError:
        raise PatternError(f"no host matched the subscripted pattern {part!r}: it selects {len(names)} host(s)",
                           source=source, hint=f"indexes run from 0 to {len(names) - 1} (or -1 for the last)") from None


def _enumerate(expr: str, inv: Selectable, source: Source | None) -> list[str]:
    rx = _compile(expr, source)
    out: list[str] = []
    matched_groups = [g for g in inv.groups if rx.match(g)]
    for g in matched_groups:
        out.extend(inv.groups[g])
    if not matched_groups or expr.startswith("~") or any(c in expr for c in ".?*["):
        out.extend(h for h in inv.hosts if rx.match(h))
    return out


def _one(part: str, inv: Selectable, source: Source | None) -> list[str]:
    if part[0] in "&!":
        part = part[1:]
    if not part:
        return []
    expr, sub = _split_subscript(part)
    return _apply_subscript(_enumerate(expr, inv, source), sub, part, source)


def match_pattern(pattern: str | None, inv: Selectable, *, source: Source | None = None) -> list[str]:
    """Host names a pattern selects, in Ansible's order. Raises :class:`PatternError`."""
    hosts: list[str] = []
    for part in order_parts(split_pattern(pattern or "all")):
        if part in inv.hosts:
            hosts.append(part)  # a plain host name (also when a group has the same name)
            continue
        these = _one(part, inv, source)
        if part[0] == "!":
            drop = set(these)
            hosts = [h for h in hosts if h not in drop]
        elif part[0] == "&":
            keep = set(these)
            hosts = [h for h in hosts if h in keep]
        else:
            have = set(hosts)
            hosts.extend(h for h in these if h not in have)
    return list(dict.fromkeys(hosts))


def pattern_problems(pattern: str, inv: Selectable) -> str | None:
    """Why a pattern selects nothing (or cannot be read), or None when it selects a host."""
    from engine.language.schema_messages import did_you_mean

    try:
        if match_pattern(pattern, inv):
            return None
    except PatternError as exc:
        return exc.message
    known = sorted(set(inv.hosts) | set(inv.groups))
    words = [p.lstrip("&!~") for p in split_pattern(pattern)]
    local = [w for w in words if w in ("localhost", "127.0.0.1", "::1")]
    if local:
        return (f"pattern {pattern!r} matches no host: runbook does not create Ansible's implicit {local[0]}; "
                f"add it to the inventory: {local[0]}: {{ansible_connection: local}}")
    unknown = [w for w in words if w and w not in known and not any(c in w for c in "*?[")]
    hint = did_you_mean(unknown[0], known) if unknown else None
    return f"pattern {pattern!r} matches no host" + (f" ({hint})" if hint else f"; hosts and groups: {', '.join(known[:12])}")


def limit_pattern(limit: str | None) -> str | None:
    """``--limit`` as Ansible reads it: a part ``@FILE`` stands for the host names in FILE,
    one per line (a ``.retry`` file, say)."""
    if not limit or "@" not in limit:
        return limit
    parts: list[str] = []
    for part in split_pattern(limit):
        if not part.startswith("@"):
            parts.append(part)
            continue
        path = part[1:]
        try:
            with open(path, encoding="utf-8") as fh:
                parts.extend(line.strip() for line in fh.read().split("\n") if line.strip())
        except IsADirectoryError:
            raise InputError(f"--limit {part}: {path} is a directory, not a file of host names", source=Source("--limit")) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"--limit {part}: cannot read {path}: {getattr(exc, 'strerror', None) or exc}", source=Source("--limit"),
                             hint="a limit file lists host names, one per line") from None
    return ",".join(parts)
