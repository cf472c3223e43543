"""Statements that servers spell differently: try each spelling until the server knows one.

MySQL 8.4 removed ``SHOW MASTER STATUS`` and ``SHOW SLAVE STATUS``; MariaDB and older MySQL
lack ``SHOW BINARY LOG STATUS`` and (MariaDB before 10.5.1) ``SHOW REPLICA STATUS``.

```python
rows = first_spelling(sql, ("SHOW BINARY LOG STATUS", "SHOW MASTER STATUS"))
```
"""

from __future__ import annotations

from typing import Any

from engine.errors import SqlError
from engine.transport.base import Sql

UNKNOWN_SYNTAX = 1064  # ER_PARSE_ERROR: another server's spelling


def first_spelling(sql: Sql, statements: tuple[str, ...], *, skip: tuple[int, ...] = (UNKNOWN_SYNTAX,)
                   ) -> tuple[dict[str, Any], ...] | None:
    """The rows of the first of ``statements`` that does not fail with an errno in ``skip``;
    None when every one did. Any other error is raised."""
    for stmt in statements:
        try:
            return sql.query(stmt).rows
        except SqlError as exc:
            if exc.errno in skip:
                continue
            raise
    return None
