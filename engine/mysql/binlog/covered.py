"""Which transactions a GTID state already holds (a dump's ``--gtid``, a fence's GTID state):
they are outside a replay's window. The arithmetic is ``engine.mysql.gtid``'s (the one GTID
module); this is how the binlog reader asks it, one transaction or one file header at a time.

```python
done = Covered("0-1-100")
done.covers("0-1-57")              # True: the dump holds it
done.covers_header([(0, 1, 90)])   # a file's Gtid_list: every transaction before it is held
```
"""

from __future__ import annotations

import re

from engine.errors import ActionError
from engine.mysql.gtid import MariadbGtidPos, MysqlGtidSet, parse_gtids

_ONE = re.compile(r"^\s*(\d+-\d+-\d+|[0-9a-fA-F-]{36}(?::[A-Za-z_][A-Za-z0-9_]*)?:\d+)\s*$")


def flavor_of(text: str) -> str:
    """``mysql`` for a uuid set, ``mariadb`` for domain-server-seq."""
    return "mysql" if ":" in text else "mariadb"


def is_single_gtid(text: str) -> bool:
    """One transaction's GTID (``0-1-57`` or ``uuid:57``), not a state or a range."""
    return bool(_ONE.match(str(text)))


class Covered:
    """A GTID state, asked whether it holds a transaction."""

    def __init__(self, text: str):
        self.text = "".join(str(text).split()).lstrip("+")
        self.flavor = flavor_of(self.text)
        try:
            self.state = parse_gtids(self.text, self.flavor)
        except ValueError as exc:
            raise ActionError(f"{text!r} is not a GTID state: {exc}",
                              hint="give domain-server-seq (MariaDB) or uuid:1-5 (MySQL)") from None

    def covers(self, gtid: str) -> bool:
        if flavor_of(gtid) != self.flavor:
            return False
        return self.state.contains(parse_gtids(gtid, self.flavor))

    def covers_header(self, header: list[tuple[int, int, int]] | str) -> bool:
        """Every transaction before a file (its MariaDB Gtid_list entries, or MySQL Previous_gtids text)."""
        if isinstance(header, str):
            return self.flavor == "mysql" and self.state.contains(MysqlGtidSet.parse(header))
        if self.flavor != "mariadb":
            return not header
        last: dict[int, tuple[int, int]] = {}
        for d, s, n in header:
            if n > last.get(d, (0, 0))[1]:
                last[d] = (s, n)
        return self.state.contains(MariadbGtidPos(last))

    def __str__(self) -> str:
        return self.text
