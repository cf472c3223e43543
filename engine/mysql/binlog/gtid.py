"""GTID states: "everything up to here is applied", for both flavors.

* MariaDB (``gtid_slave_pos``, ``gtid_binlog_pos``, a dump's ``--gtid``): one
  ``domain-server-seq`` per replication domain; a transaction of domain ``d`` is covered when
  its ``seq`` is at most the state's ``seq`` for ``d`` (sequence numbers grow within a domain).
* MySQL (``gtid_executed``, ``GTID_PURGED``): a set ``uuid:1-5:7-9,uuid2:1-3``; a transaction
  is covered when its ``gno`` is in its uuid's intervals.

```python
state = GtidState.parse("0-1-100")
state.covers("0-1-57")          # True: PITR starts after it
state.covers_all([(0, 1, 90)])  # a binlog file's Gtid_list: the whole file is before the state
```
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from engine.errors import ActionError

_MARIA = re.compile(r"^(\d+)-(\d+)-(\d+)$")
_MYSQL = re.compile(r"^([0-9a-fA-F-]{36})((?::\d+(?:-\d+)?)+)$")


@dataclass
class GtidState:
    """A GTID state or set of either flavor (``flavor`` "mariadb" | "mysql")."""

    flavor: str
    maria: dict[int, tuple[int, int]] = field(default_factory=dict)  # domain -> (server_id, seq)
    mysql: dict[str, list[tuple[int, int]]] = field(default_factory=dict)  # uuid -> [(first, last)]

    @classmethod
    def parse(cls, text: str) -> GtidState:
        text = re.sub(r"\s+", "", str(text or "")).lstrip("+")
        if not text:
            raise ActionError("an empty GTID state", hint="give domain-server-seq (MariaDB) or uuid:1-5 (MySQL)")
        parts = [p for p in text.split(",") if p]
        if all(_MARIA.match(p) for p in parts):
            st = cls("mariadb")
            for p in parts:
                m = _MARIA.match(p)
                assert m is not None
                d, s, n = int(m.group(1)), int(m.group(2)), int(m.group(3))
                if d in st.maria and st.maria[d][1] >= n:
                    continue
                st.maria[d] = (s, n)
            return st
        st = cls("mysql")
        for p in parts:
            m = _MYSQL.match(p)
            if m is None:
                raise ActionError(f"{p!r} is not a GTID (MariaDB domain-server-seq or MySQL uuid:1-5)")
            ivs = st.mysql.setdefault(m.group(1).lower(), [])
            for iv in m.group(2).strip(":").split(":"):
                lo, _, hi = iv.partition("-")
                ivs.append((int(lo), int(hi or lo)))
        return st

    def covers(self, gtid: str) -> bool:
        """The transaction ``gtid`` is within this state (applied before it)."""
        m = _MARIA.match(gtid)
        if m is not None:
            d, n = int(m.group(1)), int(m.group(3))
            return d in self.maria and n <= self.maria[d][1]
        uuid, _, gno = gtid.rpartition(":")
        g = int(gno) if gno.isdigit() else -1
        return any(lo <= g <= hi for lo, hi in self.mysql.get(uuid.lower(), []))

    def covers_all(self, entries: list[tuple[int, int, int]] | str) -> bool:
        """A file header's state (MariaDB Gtid_list entries, or MySQL Previous_gtids text) is
        within this state: every transaction before that file is covered."""
        if isinstance(entries, str):
            other = GtidState.parse(entries) if entries else GtidState("mysql")
            return all(any(lo2 <= lo and hi <= hi2 for lo2, hi2 in self.mysql.get(u, [])) for u, ivs in other.mysql.items()
                       for lo, hi in ivs)
        return all(d in self.maria and n <= self.maria[d][1] for d, _, n in entries)

    def __str__(self) -> str:
        if self.flavor == "mariadb":
            return ",".join(f"{d}-{s}-{n}" for d, (s, n) in sorted(self.maria.items()))
        return ",".join(u + "".join(f":{lo}" if lo == hi else f":{lo}-{hi}" for lo, hi in ivs) for u, ivs in sorted(self.mysql.items()))


def is_single_gtid(text: str) -> bool:
    """One transaction's GTID (``0-1-57`` or ``uuid:57``), not a state or a range."""
    t = str(text).strip()
    return bool(_MARIA.match(t)) or bool(re.match(r"^[0-9a-fA-F-]{36}:\d+$", t))
