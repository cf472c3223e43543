"""``on_conflict: upsert`` into a table that holds rows: the backup's row for each primary key,
every column — never a silent overwrite of another row.

``INSERT … ON DUPLICATE KEY UPDATE`` matches *any* unique key: a backup row whose email is now
held by a different live row would overwrite that row. So each batch goes into a temporary copy
of the table first (plain INSERT / LOAD DATA), then, in the same transaction:

1. for every other unique key, a backup row whose value a *different* live row holds is a
   conflict: the batch rolls back and the table fails, naming both rows;
2. ``UPDATE t JOIN stage s ON <identity>`` sets every column (unique key columns too);
3. ``INSERT INTO t SELECT … FROM stage`` adds the rows the table does not have.

The identity is the primary key (else a NOT NULL unique key). A swap of unique values between
rows is order-dependent: the server's 1062 (or step 1) reports it; ``truncate: true`` after a
snapshot restores such tables exactly.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from engine.errors import RunbookError
from engine.mysql.sqlutil import quote_ident

_MAX_SHOWN = 5


class UpsertConflict(RunbookError):
    """A backup row collides on a unique key with another live row: the table fails."""


def stage_name(table: str) -> str:
    return "_rb_stage_" + hashlib.sha1(table.encode("utf-8", "surrogateescape")).hexdigest()[:12]


@dataclass(frozen=True)
class Upsert:
    table: str
    identity: tuple[str, ...]
    columns: tuple[str, ...]  # the columns the rows carry and the table takes (skipped ones left out)
    unique_keys: tuple[tuple[str, tuple[str, ...]], ...]  # the other unique keys (name, columns)

    @property
    def stage(self) -> str:
        return stage_name(self.table)

    def create_stage(self) -> str:
        return f"CREATE TEMPORARY TABLE IF NOT EXISTS {quote_ident(self.stage)} LIKE {quote_ident(self.table)}"

    def clear_stage(self) -> str:
        return f"DELETE FROM {quote_ident(self.stage)}"

    def _on(self, a: str = "t", b: str = "s") -> str:
        return " AND ".join(f"{a}.{quote_ident(c)} = {b}.{quote_ident(c)}" for c in self.identity)

    def collisions(self, key: tuple[str, ...]) -> str:
        """Backup rows whose ``key`` value a different live row holds (identities of both, and the value)."""
        ident = ", ".join(f"s.{quote_ident(c)} AS {quote_ident('s_' + c)}, t.{quote_ident(c)} AS {quote_ident('t_' + c)}"
                          for c in self.identity)
        vals = ", ".join(f"s.{quote_ident(c)} AS {quote_ident('v_' + c)}" for c in key)
        on = " AND ".join(f"t.{quote_ident(c)} = s.{quote_ident(c)}" for c in key)
        same = " AND ".join(f"t.{quote_ident(c)} <=> s.{quote_ident(c)}" for c in self.identity)
        return (f"SELECT {ident}, {vals} FROM {quote_ident(self.stage)} s JOIN {quote_ident(self.table)} t ON {on}"
                f" WHERE NOT ({same}) LIMIT {_MAX_SHOWN}")

    def update(self) -> str | None:
        sets = ", ".join(f"t.{quote_ident(c)} = s.{quote_ident(c)}" for c in self.columns
                         if c.lower() not in {x.lower() for x in self.identity})
        if not sets:
            return None
        return f"UPDATE {quote_ident(self.table)} t JOIN {quote_ident(self.stage)} s ON {self._on()} SET {sets}"

    def insert_new(self) -> str:
        cols = ", ".join(quote_ident(c) for c in self.columns)
        scols = ", ".join(f"s.{quote_ident(c)}" for c in self.columns)
        first = quote_ident(self.identity[0])
        return (f"INSERT INTO {quote_ident(self.table)} ({cols}) SELECT {scols} FROM {quote_ident(self.stage)} s"
                f" LEFT JOIN {quote_ident(self.table)} t ON {self._on()} WHERE t.{first} IS NULL")

    def conflict(self, key_name: str, key: tuple[str, ...], rows: list[dict[str, Any]]) -> UpsertConflict:
        def values(prefix: str, cols: tuple[str, ...], r: dict[str, Any]) -> str:
            return ", ".join(f"{c}={_show(r[prefix + c])}" for c in cols)

        shown = "; ".join(f"the backup's row {values('s_', self.identity, r)} has {values('v_', key, r)},"
                          f" which live row {values('t_', self.identity, r)} holds" for r in rows)
        return UpsertConflict(
            f"upsert conflict on unique key {key_name} of {self.table}: {shown} — a different row; upsert matches rows by"
            f" {', '.join(self.identity)} and never overwrites another (this batch was rolled back)",
            hint="resolve the duplicate value on the target, or restore the table whole (truncate: true after a snapshot)")


def _show(v: Any) -> str:
    if isinstance(v, (bytes, bytearray)):
        v = v.decode("utf-8", "replace")
    return repr(v) if isinstance(v, str) else str(v)
