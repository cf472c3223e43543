"""A server data warning is a failure unless the step allows it (issue 15 item 12): a value
truncated, converted (an emoji stored as ``?`` in a latin1 column), out of range, or a row an
``IGNORE`` dropped for a foreign key. The failure names the table and shows the first rows the
server complained about, cut from the batch itself."""

from __future__ import annotations

import re
from dataclasses import dataclass

from engine.errors import RunbookError
from engine.mysql.dump import iter_rows
from engine.mysql.dump.types import Kind, Statement

#: warnings that say nothing about the rows' values: deprecated syntax, the utf8 alias
_NOT_DATA = frozenset({1287, 1681, 3090, 3719, 3720})
#: a value given for a generated column is ignored (mariadb-dump writes them; the INSERT path sends them)
GENERATED_IGNORED = 1906
#: errors that mean a value could not be stored as it is (strict mode turns the warnings into these)
DATA_ERRORS = frozenset({1048, 1136, 1261, 1262, 1263, 1264, 1265, 1292, 1366, 1367, 1406, 1411, 1918, 4025, 4078})
_AT_ROW = re.compile(r"\bat row (\d+)")
_SHOWN_ROWS = 3


class DataWarning(RunbookError):
    """A batch drew data warnings from the server: its table fails (unless allowed)."""


@dataclass(frozen=True)
class ServerWarning:
    code: int
    message: str

    def __str__(self) -> str:
        return f"{self.code} {self.message}"


def data_warnings(rows: tuple[dict[str, object], ...], conflict: str, *, generated: bool) -> list[ServerWarning]:
    """The data warnings among ``SHOW WARNINGS`` rows: not the deprecation notes, not the
    duplicates ``ignore`` is asked to skip, not an ignored value of a generated column."""
    out = []
    for r in rows:
        code = int(str(r.get("Code") or 0))
        if code in _NOT_DATA or (code == 1062 and conflict == "ignore") or (code == GENERATED_IGNORED and generated):
            continue
        out.append(ServerWarning(code, str(r.get("Message") or "")))
    return out


def first_rows(body: bytes, messages: list[str]) -> list[str]:
    """The rows ``… at row N`` points at (1-based in the statement or LOAD DATA input), as text."""
    wanted = sorted({int(m.group(1)) for msg in messages for m in [_AT_ROW.search(msg)] if m})[:_SHOWN_ROWS]
    if not wanted:
        return []
    st = Statement(Kind.DATA, body, 0, len(body), None, None, values_at=0)
    out, last = [], wanted[-1]
    for i, row in enumerate(iter_rows(st, strict=False), 1):
        if i in wanted:
            text = row.decode("utf-8", "replace")
            out.append(f"row {i}: {text[:200]}{'…' if len(text) > 200 else ''}")
        if i >= last:
            break
    return out


def warning_failure(table: str, warnings: list[ServerWarning], body: bytes, total: int) -> DataWarning:
    rows = first_rows(body, [w.message for w in warnings])
    shown = "; ".join(str(w) for w in warnings[:3]) + (f"; … ({total} in all)" if total > 3 else "")
    return DataWarning(f"table {table}: the server reported data warnings ({shown})"
                       + (" — first rows: " + " | ".join(rows) if rows else "") + "; the batch was rolled back",
                       hint="fix the target's columns (type, length, character set) or the data; allow_warnings: true"
                            " loads it anyway, converted as the server did")


def error_rows(body: bytes, message: str) -> str:
    """The rows a data error (strict mode) names, for its message."""
    rows = first_rows(body, [message])
    return (" — " + " | ".join(rows)) if rows else ""
