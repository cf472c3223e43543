"""What a Query event's statement does to tables: DDL (drop, truncate, rename, alter, create)
and statement-based DML, with the tables it names.

A binlog written with ``binlog_format=ROW`` still logs DDL as statements; a ``MIXED`` or
``STATEMENT`` binlog also logs DML that way. Replay applies row events only, so a DDL of a
listed table inside the window, or a statement-based change of one, must be seen and refused by
name (unless that transaction is skipped). The parse is deliberately small: the tables follow
fixed keywords in DDL; for DML every name that is a listed table counts (a statement that only
reads a listed table is refused too: the safe side).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TOKEN = re.compile(r"""`((?:[^`]|``)*)`|"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.|'')*)'|([A-Za-z0-9_$\u0080-\uffff]+)|(\S)""", re.S)
_COMMENT = re.compile(r"/\*(!\d*|M!\d*)?(.*?)\*/|(?:--\s|#)[^\n]*", re.S)
DML_VERBS = frozenset({"insert", "replace", "update", "delete", "load"})
SESSION_VERBS = frozenset({"begin", "commit", "rollback", "savepoint", "release", "xa", "set", "use", "start"})


@dataclass(frozen=True)
class TableChange:
    """A table a statement changes: ``kind`` drop | truncate | rename | alter | create | dml."""

    schema: str
    table: str | None  # None: every table of the schema (DROP DATABASE)
    kind: str


def _strip_comments(text: str) -> str:
    return _COMMENT.sub(lambda m: f" {m.group(2)} " if m.group(1) is not None else " ", text)


def _tokens(text: str) -> list[tuple[str, bool]]:
    """(token, is_identifier_quoted): words lower-cased unless quoted; strings dropped."""
    out: list[tuple[str, bool]] = []
    for m in _TOKEN.finditer(_strip_comments(text)):
        if m.group(1) is not None:
            out.append((m.group(1).replace("``", "`"), True))
        elif m.group(4) is not None:
            out.append((m.group(4), False))
        elif m.group(5) is not None:
            out.append((m.group(5), False))
        else:
            out.append(("'", False))  # a string literal: never a name
    return out


def _name(toks: list[tuple[str, bool]], i: int, default: str) -> tuple[tuple[str, str] | None, int]:
    """A (schema, table) name at ``toks[i]``, and the index after it."""
    if i >= len(toks) or (not toks[i][1] and not re.match(r"^[A-Za-z0-9_$\u0080-\uffff]+$", toks[i][0])):
        return None, i
    first = toks[i][0]
    if i + 2 < len(toks) and toks[i + 1][0] == "." and not toks[i + 1][1]:
        return (first, toks[i + 2][0]), i + 3
    return (default, first), i + 1


def _kw(toks: list[tuple[str, bool]], i: int, *words: str) -> bool:
    return i < len(toks) and not toks[i][1] and toks[i][0].lower() in words


def _names_list(toks: list[tuple[str, bool]], i: int, default: str) -> list[tuple[str, str]]:
    names = []
    while True:
        n, i = _name(toks, i, default)
        if n is None:
            break
        names.append(n)
        if i < len(toks) and toks[i][0] == ",":
            i += 1
            continue
        break
    return names


def table_changes(text: str, default_schema: str, listed: set[tuple[str, str]] | None = None) -> list[TableChange]:
    """The tables ``text`` changes by DDL, or (for statement-based DML) the ``listed`` tables it names."""
    toks = _tokens(text)
    if not toks:
        return []
    verb = toks[0][0].lower()
    i = 1
    out: list[TableChange] = []
    if verb == "drop":
        if _kw(toks, i, "temporary"):
            return []
        if _kw(toks, i, "database", "schema"):
            i += 1
            if _kw(toks, i, "if"):
                i += 2
            n, _ = _name(toks, i, "")
            return [TableChange(n[1], None, "drop")] if n else []
        if _kw(toks, i, "index"):
            return _on_table(toks, default_schema, "alter")
        if _kw(toks, i, "table"):
            i += 1
            if _kw(toks, i, "if"):
                i += 2
            return [TableChange(s, t, "drop") for s, t in _names_list(toks, i, default_schema)]
        return []
    if verb == "truncate":
        if _kw(toks, i, "table"):
            i += 1
        return [TableChange(s, t, "truncate") for s, t in _names_list(toks, i, default_schema)[:1]]
    if verb == "rename":
        if not _kw(toks, i, "table", "tables"):
            return []
        i += 1
        while i < len(toks):
            a, i = _name(toks, i, default_schema)
            if a is None or not _kw(toks, i, "to"):
                break
            b, i = _name(toks, i + 1, default_schema)
            out += [TableChange(a[0], a[1], "rename")] + ([TableChange(b[0], b[1], "rename")] if b else [])
            if i < len(toks) and toks[i][0] == ",":
                i += 1
                continue
            break
        return out
    if verb == "alter":
        while _kw(toks, i, "online", "ignore"):
            i += 1
        if not _kw(toks, i, "table"):
            return []
        n, j = _name(toks, i + 1, default_schema)
        if n is None:
            return []
        kind = "rename" if any(_kw(toks, k, "rename") for k in range(j, len(toks))) else "alter"
        out.append(TableChange(n[0], n[1], kind))
        if kind == "rename":
            for k in range(j, len(toks) - 1):
                if _kw(toks, k, "rename"):
                    m = k + 1 + (1 if _kw(toks, k + 1, "to", "as") else 0)
                    b, _ = _name(toks, m, default_schema)
                    if b is not None:
                        out.append(TableChange(b[0], b[1], "rename"))
        return out
    if verb == "create":
        replace = False
        while _kw(toks, i, "or", "replace", "temporary", "unique", "fulltext", "spatial", "online", "definer"):
            replace = replace or _kw(toks, i, "replace")
            if _kw(toks, i, "temporary"):
                return []
            i += 1
        if _kw(toks, i, "index"):
            return _on_table(toks, default_schema, "alter")
        if not _kw(toks, i, "table"):
            return []
        i += 1
        if _kw(toks, i, "if"):
            i += 3
        n, _ = _name(toks, i, default_schema)
        return [TableChange(n[0], n[1], "drop" if replace else "create")] if n else []
    if verb in DML_VERBS and listed:
        names = {(s, t) for s, t in listed}
        for k in range(len(toks)):
            n, _ = _name(toks, k, default_schema)
            if n is not None and n in names:
                out.append(TableChange(n[0], n[1], "dml"))
        seen: set[tuple[str, str | None]] = set()
        return [c for c in out if not ((c.schema, c.table) in seen or seen.add((c.schema, c.table)))]  # type: ignore[func-returns-value]
    return []


def _on_table(toks: list[tuple[str, bool]], default: str, kind: str) -> list[TableChange]:
    for k in range(len(toks)):
        if _kw(toks, k, "on"):
            n, _ = _name(toks, k + 1, default)
            return [TableChange(n[0], n[1], kind)] if n else []
    return []


def is_session_statement(verb: str) -> bool:
    """BEGIN, COMMIT, SAVEPOINT, XA …, SET …: part of a transaction's frame, not a change."""
    return verb in SESSION_VERBS
