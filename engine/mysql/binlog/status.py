"""Where a running server's binlog ends now: ``SHOW BINARY LOG STATUS`` (MySQL 8.2+) or
``SHOW MASTER STATUS`` (MariaDB, older MySQL) for the file and position, and the GTID state
(MariaDB ``@@gtid_binlog_pos``, MySQL ``@@gtid_executed``). ``None`` when the binlog is off.

```python
pos = server_position(sql, "mariadb")   # BinlogPosition('binlog.000003', 1234, '0-1-57')
```
"""

from __future__ import annotations

from engine.mysql.binlog.position import BinlogPosition
from engine.mysql.spelling import first_spelling
from engine.transport.base import Sql


def server_position(sql: Sql, flavor: str) -> BinlogPosition | None:
    """The end of the server's binlog now; None when ``log_bin`` is off. Needs BINLOG MONITOR
    (MariaDB 10.5.2+) or REPLICATION CLIENT (MySQL); a refusal raises."""
    res = sql.query("SHOW GLOBAL VARIABLES WHERE Variable_name IN ('log_bin', 'gtid_binlog_pos', 'gtid_executed')")
    v = {str(r["Variable_name"]).lower(): r["Value"] for r in res.rows}
    if str(v.get("log_bin") or "").upper() not in ("ON", "1"):
        return None
    gtid = v.get("gtid_binlog_pos") if flavor == "mariadb" else v.get("gtid_executed")
    file = pos = None
    rows = first_spelling(sql, ("SHOW BINARY LOG STATUS", "SHOW MASTER STATUS"))
    if rows:
        file, pos = rows[0].get("File"), rows[0].get("Position")
    gtid_text = "".join(str(gtid).split()) if gtid not in (None, "") else None  # MySQL wraps long sets
    return BinlogPosition(file=str(file) if file else None, pos=int(pos) if pos not in (None, "") else None, gtid=gtid_text)
