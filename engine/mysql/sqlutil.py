"""Small SQL helpers: identifier quoting and statement classification."""

from __future__ import annotations

import functools
import re


def quote_ident(name: str) -> str:
    """A backtick-quoted identifier; backticks inside are doubled, as MySQL requires."""
    if "\x00" in name:
        raise ValueError("an identifier cannot contain a NUL byte")
    return "`" + name.replace("`", "``") + "`"


def qualified(schema: str, table: str) -> str:
    return f"{quote_ident(schema)}.{quote_ident(table)}"


_LEADING_NOISE = re.compile(r"^(\s+|--[^\n]*\n|#[^\n]*\n|/\*(?!!).*?\*/)+", re.S)
_READ_ONLY = ("select", "show", "describe", "desc", "explain", "with", "help", "values", "table")


def first_keyword(sql: str) -> str:
    text = _LEADING_NOISE.sub("", sql.lstrip())
    m = re.match(r"\(*\s*([A-Za-z]+)", text)
    return m.group(1).lower() if m else ""


def is_read_only(sql: str) -> bool:
    """True for statements that cannot change data: SELECT (without INTO/FOR UPDATE), SHOW,
    DESCRIBE, EXPLAIN. Used by check mode to decide what may run."""
    kw = first_keyword(sql)
    if kw not in _READ_ONLY:
        return False
    low = sql.lower()
    if kw in ("select", "with", "values", "table"):
        # SELECT ... INTO OUTFILE / @var, FOR UPDATE, LOCK IN SHARE MODE take locks or write.
        if re.search(r"\binto\s+(outfile|dumpfile|@)", low) or re.search(r"\bfor\s+(update|share)\b|\block\s+in\s+share\s+mode\b", low):
            return False
        if kw == "with" and re.search(r"\b(update|delete|insert)\b", low):
            return False
    # MySQL 8's EXPLAIN ANALYZE executes the statement it explains
    explain_analyze = kw in ("explain", "describe", "desc") and re.search(r"\banalyze\b", low)
    return not (explain_analyze and re.search(r"\b(update|delete|insert|replace)\b", low))


_IDEMPOTENT = re.compile(
    r"^\s*(create\s+(or\s+replace\s+)?(temporary\s+)?(table|database|schema|index|view|user|procedure|function|trigger|event)\s+(if\s+not\s+exists\b|)"
    r"|drop\s+(temporary\s+)?\w+\s+if\s+exists\b|replace\b|truncate\b|set\b|use\b|analyze\b|optimize\b|flush\b|do\s+sleep)",
    re.I,
)


def is_idempotent(sql: str) -> bool:
    """True for statements that give the same result when run twice: read-only ones,
    ``CREATE … IF NOT EXISTS`` / ``CREATE OR REPLACE``, ``DROP … IF EXISTS``, ``REPLACE``,
    ``TRUNCATE``, ``SET``. Plain INSERT/UPDATE/DELETE and ``CREATE`` without a guard are not
    (an UPDATE may be, but only the runbook's author can say so: ``idempotent: true``)."""
    if is_read_only(sql):
        return True
    text = _LEADING_NOISE.sub("", sql.lstrip())
    m = _IDEMPOTENT.match(text)
    if not m:
        return False
    if text.lower().startswith("create") and not re.match(r"^create\s+or\s+replace\b", text, re.I):
        return bool(re.search(r"\bif\s+not\s+exists\b", text[:200], re.I))
    return True


def split_statements(sql: str) -> list[str]:
    """Split SQL text on ``;`` outside quotes, backticks and comments. Empty statements dropped."""
    return list(_split(sql)) if len(sql) <= _CACHED_TEXT else _split_text(sql)


_CACHED_TEXT = 16384  # a step's SQL text, not a file's


@functools.lru_cache(maxsize=1024)
def _split(sql: str) -> tuple[str, ...]:
    # The same step text is split for its digest, its identity guard and its run, on every host.
    return tuple(_split_text(sql))


def _split_text(sql: str) -> list[str]:
    out: list[str] = []
    buf: list[str] = []
    i, n = 0, len(sql)
    quote: str | None = None
    while i < n:
        c = sql[i]
        if quote:
            buf.append(c)
            if c == "\\" and quote != "`" and i + 1 < n:
                buf.append(sql[i + 1])
                i += 2
                continue
            if c == quote:
                if i + 1 < n and sql[i + 1] == quote:  # doubled quote
                    buf.append(sql[i + 1])
                    i += 2
                    continue
                quote = None
            i += 1
            continue
        if c in ("'", '"', "`"):
            quote = c
            buf.append(c)
        elif (c == "-" and sql.startswith("-- ", i)) or c == "#":
            j = sql.find("\n", i)
            j = n if j < 0 else j
            buf.append(sql[i:j])
            i = j
            continue
        elif c == "/" and sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            j = n if j < 0 else j + 2
            buf.append(sql[i:j])
            i = j
            continue
        elif c == "{" and sql.startswith("{{", i):
            j = sql.find("}}", i + 2)
            j = n if j < 0 else j + 2
            buf.append(sql[i:j])  # a template expression may contain ';' inside a string
            i = j
            continue
        elif c == ";":
            stmt = "".join(buf).strip()
            if stmt and not _only_comments(stmt):
                out.append(stmt)
            buf = []
            i += 1
            continue
        else:
            buf.append(c)
        i += 1
    stmt = "".join(buf).strip()
    if stmt and not _only_comments(stmt):
        out.append(stmt)
    return out


def _only_comments(stmt: str) -> bool:
    return not _LEADING_NOISE.sub("", stmt + "\n").strip()


def quoted_placeholders(sql: str) -> list[str]:
    """The ``{{ ... }}`` blocks written inside a quoted SQL string or identifier.

    ``WHERE name = '{{ v }}'`` looks right to anyone used to string templating, but the value
    is bound as a parameter that brings its own quotes: ``'' + 'v' + ''``, i.e. an empty string
    followed by the value as *unquoted* SQL text. A value like `` OR 1=1 -- `` then injects.
    """
    return list(_quoted(sql)) if len(sql) <= _CACHED_TEXT else _quoted_text(sql)


@functools.lru_cache(maxsize=1024)
def _quoted(sql: str) -> tuple[str, ...]:
    return tuple(_quoted_text(sql))


def _quoted_text(sql: str) -> list[str]:
    out: list[str] = []
    quote: str | None = None
    i, n = 0, len(sql)
    while i < n:
        if sql.startswith("{{", i):
            j = sql.find("}}", i + 2)
            j = n if j < 0 else j + 2
            if quote:
                out.append(sql[i:j])
            i = j
            continue
        c = sql[i]
        if quote:
            if c == "\\" and quote != "`":
                i += 2
                continue
            if c == quote:
                if i + 1 < n and sql[i + 1] == quote:  # doubled quote inside the string
                    i += 2
                    continue
                quote = None
        elif c in ("'", '"', "`"):
            quote = c
        elif (c == "-" and sql.startswith("-- ", i)) or c == "#":
            j = sql.find("\n", i)
            i = n if j < 0 else j
            continue
        elif sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            i = n if j < 0 else j + 2
            continue
        i += 1
    return out
