"""The rows of a data statement: count them, split them, tell whether LOAD DATA can carry them.

A ``VALUES`` list is ``(…),(…),…``; strings may hold parentheses, commas and escaped quotes,
so both functions tokenize (C-speed regexes, no per-byte Python).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from engine.mysql.dump.split import DumpError

if TYPE_CHECKING:
    from engine.mysql.dump.types import Statement

_STR = rb"'[^'\\]*+(?:(?:\\.|'')[^'\\]*+)*+'|\"[^\"\\]*+(?:(?:\\.|\"\")[^\"\\]*+)*+\""
_STRINGS = re.compile(_STR, re.S)
_PLAIN = rb"[^()'\"\\]*+"
# Literals LOAD DATA would not carry exactly: hex, _binary/_charset introducers, b'…', X'…'.
# Checked after every string was replaced by '' (so a prefixed literal reads x'' or _binary '').
_UNSAFE = re.compile(rb"0[xX][0-9A-Fa-f]|(?<![A-Za-z0-9_$])(?:[bBxX]|_[A-Za-z0-9]+\s*+)''")
_MAYBE_UNSAFE = (b"0x", b"0X", b"_binary", b"b'", b"B'", b"x'", b"X'")  # mysqldump writes no other introducer


def _level(inner: bytes) -> bytes:
    """A row's inside, unrolled like the splitter (plain runs absorbed after each token)."""
    alts = _STR + rb"|\\." + ((rb"|\(" + inner + rb"\)") if inner else b"")
    return _PLAIN + rb"(?:(?:" + alts + rb")" + _PLAIN + rb")*+"


_ROW = rb"\(" + _level(_level(_level(b""))) + rb"\)"  # function calls nest up to 3 levels: POINT(1, 2) inside ST_…(…)
_ROWS = re.compile(_ROW, re.S)
_ROW_ITEM = re.compile(rb"\s*+(" + _ROW + rb")\s*+(,?)", re.S)


def _values(stmt: Statement) -> bytes:
    if stmt.values_at < 0:
        raise DumpError("not a data statement with a VALUES list", offset=stmt.offset, snippet=stmt.text[:60])
    return stmt.text[stmt.values_at:]


def row_stats(stmt: Statement) -> tuple[int, bool]:
    """(rows, load_data_safe) of a DATA statement.

    Rows: every top-level tuple removed in one C pass; what is left must be separators, else
    the anchored row-by-row scan decides. Safety: a byte search first (most statements have
    no ``0x``, ``_`` or ``b'``), the exact check only when it hits.
    """
    if stmt.rows >= 0 and stmt.load_data_safe is not None:  # the reader's fast path counted them
        return stmt.rows, stmt.load_data_safe
    body = _values(stmt)
    residue, rows = _ROWS.subn(b"", body)
    if residue.strip(b" \t\r\n,"):
        rows = sum(1 for _ in iter_rows(stmt, strict=False))
    safe = True
    if any(m in body for m in _MAYBE_UNSAFE):
        safe = _UNSAFE.search(_STRINGS.sub(b"''", body)) is None
    return rows, safe


def count_rows(stmt: Statement) -> int:
    """Rows of a DATA statement: the tuples at the top level of its VALUES list, outside quotes."""
    return row_stats(stmt)[0]


def iter_rows(stmt: Statement, *, strict: bool = True) -> Iterator[bytes]:
    """The raw row tuples ``(…)`` of a DATA statement, in order (to split a statement bigger
    than ``max_allowed_packet`` into several, by rows). ``strict``: anything after the list
    other than whitespace (e.g. ``ON DUPLICATE KEY UPDATE``) is an error."""
    body = _values(stmt)
    pos, n = 0, len(body)
    while pos < n:
        m = _ROW_ITEM.match(body, pos)
        if not m:
            break
        yield m.group(1)
        pos = m.end()
        if not m.group(2):
            break
    if strict and body[pos:].strip():
        raise DumpError("cannot split this statement's VALUES list into rows", offset=stmt.offset + stmt.values_at + pos,
                        snippet=body[pos:pos + 60])
