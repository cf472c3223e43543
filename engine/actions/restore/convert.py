"""Turning the dump's INSERT rows into what the target gets: the statement head for the
conflict strategy, and ``LOAD DATA LOCAL`` where that is exact.

A batch body is always the dump's row list as it is — ``(1,'a'),\\n(2,'b')`` — never parsed
into values: mysqldump's string escapes are exactly LOAD DATA's (``\\0 \\n \\r \\\\ \\' \\" \\Z``),
an unquoted ``NULL`` is NULL, and numbers are plain text. What LOAD DATA cannot read the same
way is a hex (``0x…``, ``X'…'``), bit (``b'…'``) or ``_binary`` literal, so a batch holding one
goes by INSERT, as do tables with BIT or spatial columns (the dump writes those as raw bytes).
LOCAL turns duplicate keys into warnings: with ``on_conflict: error`` the loader compares the
rows read with the rows inserted and falls back to the INSERT (which names the key) on a gap.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from engine.mysql.sqlutil import quote_ident

#: literals LOAD DATA would read as text: hex, bit, _binary introducers (false positives inside
#: quoted strings only cost the faster path)
_INEXACT = re.compile(rb"[(,](?:0x|_binary|[xXbB]')")
_NO_LOAD_DATA_TYPES = re.compile(r"^(bit|geometry|point|linestring|polygon|multipoint|multilinestring|multipolygon|"
                                 r"geometrycollection)\b", re.I)
_INFO = re.compile(r"Records:\s*(\d+)\s+(?:Duplicates|Deleted):\s*(\d+)(?:\s+Skipped:\s*(\d+))?")

VERBS = {"error": "INSERT", "ignore": "INSERT IGNORE", "replace": "REPLACE", "upsert": "INSERT"}


@dataclass(frozen=True)
class Shape:
    """How a table's rows are written: the target table, the columns the rows carry (the data
    statements' own list, else CREATE TABLE order), which of them the target cannot take
    (generated, or missing under common_columns). ``upsert`` writes by plain INSERT: into an
    empty table directly, else into a temporary copy applied by primary key (see ``upsert``)."""

    table: str
    columns: tuple[str, ...]  # the columns the rows carry, in their order
    skip: frozenset[str]  # columns whose values are dropped (generated on the target, or missing there)
    explicit: bool  # name the columns (order differs, target has extra columns, or the dump names them)
    conflict: str
    charset: str
    load_data: bool  # the table's column types allow LOAD DATA and the whole-file check found no inexact literal
    verify_literals: bool = False  # look for inexact literals in each batch (when the check could not tell)
    has_generated: bool = False  # the rows carry values for generated columns (INSERT: ignored with a warning)

    def insert_head(self, *, force_insert: bool = False, table: str | None = None) -> bytes:
        verb = "INSERT" if force_insert else VERBS[self.conflict]
        cols = ""
        if self.explicit:
            cols = " (" + ", ".join(quote_ident(c) for c in self.columns) + ")"
        return f"{verb} INTO {quote_ident(table or self.table)}{cols} VALUES ".encode()

    def insert(self, body: bytes | memoryview, *, force_insert: bool = False, table: str | None = None) -> bytes:
        return b"".join((self.insert_head(force_insert=force_insert, table=table), body))

    def load_data_sql(self, name: str, newline_layout: bool, *, table: str | None = None, plain: bool = False) -> str:
        """The LOAD DATA statement for a body fed as ``name``; generated or dropped columns
        read into a user variable so their dump values are discarded, exactly as INSERT does."""
        mode = "" if plain else {"ignore": " IGNORE", "replace": " REPLACE"}.get(self.conflict, "")
        cols = ", ".join("@rb_skip" if c in self.skip else quote_ident(c) for c in self.columns)
        term = "),\\n" if newline_layout else "),"
        return (f"LOAD DATA LOCAL INFILE '{name}'{mode} INTO TABLE {quote_ident(table or self.table)} CHARACTER SET {self.charset}"
                f" FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\\'' ESCAPED BY '\\\\'"
                f" LINES STARTING BY '(' TERMINATED BY '{term}' ({cols})")

    def uses_load_data(self, body: bytes | memoryview) -> bool:
        """LOAD DATA for this batch? The whole-file check already looked at every literal of the
        table (a regex over each 1 MB batch again would cost ≈50 ms of GIL-held CPU)."""
        if not self.load_data:
            return False
        return not self.verify_literals or _INEXACT.search(body) is None


def load_data_payload(body: bytes | memoryview, newline_layout: bool) -> tuple[bytes | memoryview, bytes]:
    """The body as LOAD DATA lines: every row, the last one included, ends with the terminator —
    as two parts the session sends one after the other (the 4 MiB body is not copied to append
    two bytes)."""
    return body, (b",\n" if newline_layout else b",")


def types_allow_load_data(types: list[str]) -> bool:
    return not any(_NO_LOAD_DATA_TYPES.match(t.strip()) for t in types)


def counts(info: str, affected: int) -> tuple[int, int]:
    """``(rows read, duplicates or skipped)`` from the server's info line; without one (a
    single-row INSERT) the affected row count stands for both."""
    m = _INFO.search(info or "")
    if not m:
        return affected, 0
    records = int(m.group(1))
    dup = int(m.group(3)) if m.group(3) is not None else int(m.group(2))
    return records, dup


def strip_body(text: bytes, values_at: int) -> memoryview:
    """The row list of a data statement: from ``values_at`` to the last ``)``."""
    end = len(text)
    while end > values_at and text[end - 1] in b" \t\r\n;":
        end -= 1
    return memoryview(text)[values_at:end]
