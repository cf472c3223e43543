"""Is a row still as a binlog event expects it? One query answers for many rows.

For each row the replay is about to update or delete, the event's before image says what the
table must hold; for an insert, that its key is free. One ``UNION ALL`` of per-row lookups by
key returns, for each row found, whether every comparable column equals the image (the server
compares: DECIMAL exactly, strings byte for byte, TIMESTAMP by epoch, ENUM/SET/BIT by number).
A row not returned is missing. A table without a primary key is looked up by the whole image.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.errors import ActionError
from engine.mysql.binlog.rows import ABSENT
from engine.mysql.binlog.tables import Compare, LiveTable
from engine.mysql.sqlutil import qualified
from engine.transport.base import Sql

MISSING, DIFFERS, SAME = "missing", "differs", "same"
CHUNK = 400


@dataclass
class RowCheck:
    """One row to look up: the table, its comparators, and the image it must equal."""

    table: LiveTable
    compare: list[Compare | None]
    image: list[Any]

    def key(self) -> list[Any]:
        return [self.image[i] for i in self.table.key]

    def key_text(self) -> str:
        if not self.table.key:
            return "(whole row: the table has no primary key)"
        cols = [self.table.columns[i] for i in self.table.key]
        return f"({', '.join(cols)})=({', '.join(_show(v) for v in self.key())})"


@dataclass
class Conflict:
    """A row that is not as the event expects."""

    state: str  # missing | differs | exists
    op: str  # insert | update | delete (the event's)
    table: str
    key: str
    file: str
    pos: int | None
    gtid: str | None
    resolution: str = "error"  # error | skip | overwrite
    columns: list[str] = field(default_factory=list)  # differing columns, when known

    def text(self) -> str:
        what = {"missing": "is missing", "differs": "differs from the event's before image", "exists": "already exists"}[self.state]
        at = f"{self.file}:{self.pos}" + (f" (GTID {self.gtid})" if self.gtid else "")
        return f"{self.op.upper()} of {self.table} row {self.key} at {at}: the row {what}"

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state, "op": self.op, "table": self.table, "key": self.key, "file": self.file, "pos": self.pos,
                "gtid": self.gtid, "resolution": self.resolution}


def _param(c: Compare, v: Any) -> Any:
    if isinstance(v, bytes) and c.pad and len(v) < c.pad:
        return v.ljust(c.pad, b"\0")
    return v


def _show(v: Any) -> str:
    if isinstance(v, bytes):
        try:
            return repr(v.decode("utf-8"))
        except UnicodeDecodeError:
            return "0x" + v.hex()
    return repr(v) if isinstance(v, str) else str(v)


def _table(lt: LiveTable) -> str:
    return qualified(lt.schema, lt.table).replace("%", "%%")  # the SQL is formatted with parameters


def states(sql: Sql, checks: list[RowCheck]) -> list[str]:
    """For each check: ``same`` | ``differs`` | ``missing``."""
    out: list[str] = []
    for i in range(0, len(checks), CHUNK):
        out.extend(_states(sql, checks[i:i + CHUNK]))
    return out


def _states(sql: Sql, checks: list[RowCheck]) -> list[str]:
    parts: list[str] = []
    params: list[Any] = []
    for n, chk in enumerate(checks):
        same_sql, same_params = [], []
        for i, v in enumerate(chk.image):
            c = chk.compare[i]
            if c is None or v is ABSENT:
                continue
            same_sql.append(c.same)
            same_params.append(_param(c, v))
        if chk.table.key:
            where_sql = [chk.compare[i].key for i in chk.table.key]  # type: ignore[union-attr]
            where_params = [_param(chk.compare[i], chk.image[i]) for i in chk.table.key]  # type: ignore[arg-type]
            parts.append(f"(SELECT {n} AS n, ({' AND '.join(same_sql) or '1'}) AS same FROM {_table(chk.table)}"
                         f" WHERE {' AND '.join(where_sql)} LIMIT 1)")
            params += same_params + where_params
        else:
            parts.append(f"(SELECT {n} AS n, 1 AS same FROM {_table(chk.table)}"
                         f" WHERE {' AND '.join(same_sql) or '1'} LIMIT 1)")
            params += same_params
    found = {int(r["n"]): r["same"] for r in sql.query(" UNION ALL ".join(parts), params).rows}
    return [MISSING if n not in found else (SAME if found[n] else DIFFERS) for n in range(len(checks))]


class ConflictError(ActionError):
    """``on_conflict: error`` met a row not as the event expects."""

    def __init__(self, conflict: Conflict):
        super().__init__(f"conflict: {conflict.text()}; this group of transactions was rolled back",
                         hint="on_conflict: skip leaves such rows as they are, overwrite writes the event's after image; "
                              "or fix the row and resume")
        self.conflict = conflict
