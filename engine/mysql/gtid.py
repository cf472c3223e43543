"""GTID states of MariaDB and MySQL, compared exactly: who has what, what is missing.

Failover picks the most advanced replica and names the transactions it lacks; following a new
source refuses a server that holds transactions the source does not (GitHub 2018: a failback
across diverged GTID sets). Both questions are set arithmetic, never string comparison.

* MariaDB: a *position* ``0-1-100,1-2-7``: per replication domain, the last GTID
  ``domain-server-seq``. Sequence numbers of a domain only grow along one history (a new
  primary continues them), so "has" is ``seq >=`` per domain. Two servers at the same seq of
  a domain with different server ids have diverged.
* MySQL: a *set* ``uuid:1-100:105,uuid2:1-7`` (8.4 tags: ``uuid:tag:1-5``): exact intervals.

```python
have = parse_gtids("0-1-100", "mariadb")
want = parse_gtids("0-1-105,1-3-2", "mariadb")
have.missing(want)      # [GtidRange('0', 101, 105, server=1), GtidRange('1', 1, 2, server=3)]
have.contains(want)     # False
```
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class GtidRange:
    """Transactions ``first..last`` of one domain (MariaDB) or one source uuid (MySQL)."""

    source: str  # MariaDB: the domain id; MySQL: the uuid (with its tag)
    first: int
    last: int
    server: int | None = None  # MariaDB: the server id of the last one
    flavor: str = "mariadb"

    @property
    def count(self) -> int:
        return max(0, self.last - self.first + 1)

    def __str__(self) -> str:
        if self.flavor == "mariadb":
            srv = self.server if self.server is not None else "?"
            first = f"{self.source}-{srv}-{self.first}"
            return first if self.first == self.last else f"{first}..{self.source}-{srv}-{self.last}"
        return f"{self.source}:{self.first}" if self.first == self.last else f"{self.source}:{self.first}-{self.last}"


_MARIA = re.compile(r"^\s*(\d+)-(\d+)-(\d+)\s*$")


@dataclass(frozen=True)
class MariadbGtidPos:
    """A MariaDB GTID position: per domain, (server id, seq) of the last transaction."""

    domains: dict[int, tuple[int, int]] = field(default_factory=dict)
    flavor = "mariadb"

    @classmethod
    def parse(cls, text: str | None) -> MariadbGtidPos:
        """``gtid_binlog_pos``/``gtid_slave_pos``/``Gtid_IO_Pos`` text; several GTIDs of one
        domain (``gtid_binlog_state``) keep the highest seq."""
        out: dict[int, tuple[int, int]] = {}
        for part in (text or "").replace("\n", ",").split(","):
            if not part.strip():
                continue
            m = _MARIA.match(part)
            if not m:
                raise ValueError(f"not a MariaDB GTID: {part.strip()!r} (expected domain-server-seq)")
            d, s, n = int(m.group(1)), int(m.group(2)), int(m.group(3))
            if d not in out or n > out[d][1]:
                out[d] = (s, n)
        return cls(out)

    @property
    def empty(self) -> bool:
        return not self.domains

    def seq(self, domain: int) -> int:
        return self.domains.get(domain, (0, 0))[1]

    def contains(self, other: GtidState) -> bool:
        return not self.missing(other)

    def missing(self, other: GtidState) -> list[GtidRange]:
        """What ``other`` has that this position lacks, per domain."""
        o: MariadbGtidPos = _same_kind(self, other)
        out = []
        for d, (srv, n) in sorted(o.domains.items()):
            mine = self.seq(d)
            if n > mine:
                out.append(GtidRange(str(d), mine + 1, n, srv, "mariadb"))
        return out

    def diverged(self, other: GtidState) -> list[str]:
        """Domains where both stand at the same seq written by different servers."""
        o: MariadbGtidPos = _same_kind(self, other)
        return [f"{d}-{s}-{n} vs {d}-{o.domains[d][0]}-{n}" for d, (s, n) in sorted(self.domains.items())
                if d in o.domains and o.domains[d][1] == n and o.domains[d][0] != s]

    def union(self, other: GtidState) -> MariadbGtidPos:
        o: MariadbGtidPos = _same_kind(self, other)
        out = dict(self.domains)
        for d, (s, n) in o.domains.items():
            if n > out.get(d, (0, 0))[1]:
                out[d] = (s, n)
        return MariadbGtidPos(out)

    def count(self) -> int:
        return sum(n for _, n in self.domains.values())

    def __str__(self) -> str:
        return ",".join(f"{d}-{s}-{n}" for d, (s, n) in sorted(self.domains.items()))


_UUID_PART = re.compile(r"^[0-9a-fA-F-]{36}$")


def _normalise(ivs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(ivs):
        if out and a <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


@dataclass(frozen=True)
class MysqlGtidSet:
    """A MySQL GTID set: per source uuid (and tag), sorted disjoint intervals."""

    sets: dict[str, tuple[tuple[int, int], ...]] = field(default_factory=dict)
    flavor = "mysql"

    @classmethod
    def parse(cls, text: str | None) -> MysqlGtidSet:
        """``gtid_executed``/``Retrieved_Gtid_Set`` text (newlines and spaces allowed)."""
        acc: dict[str, list[tuple[int, int]]] = {}
        for part in re.sub(r"\s+", "", text or "").split(","):
            if not part:
                continue
            bits = part.split(":")
            if not _UUID_PART.match(bits[0]):
                raise ValueError(f"not a MySQL GTID set: {part!r} (expected uuid:1-5)")
            key = bits[0].lower()
            for b in bits[1:]:
                if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", b):  # 8.4 tag: uuid:tag:1-5
                    key = f"{bits[0].lower()}:{b.lower()}"
                    continue
                m = re.fullmatch(r"(\d+)(?:-(\d+))?", b)
                if not m:
                    raise ValueError(f"not a MySQL GTID interval: {b!r} in {part!r}")
                a = int(m.group(1))
                acc.setdefault(key, []).append((a, int(m.group(2) or a)))
        return cls({k: tuple(_normalise(v)) for k, v in acc.items()})

    @property
    def empty(self) -> bool:
        return not self.sets

    def contains(self, other: GtidState) -> bool:
        return not self.missing(other)

    def missing(self, other: GtidState) -> list[GtidRange]:
        """What ``other`` has that this set lacks."""
        o: MysqlGtidSet = _same_kind(self, other)
        out = []
        for key, ivs in sorted(o.sets.items()):
            mine = self.sets.get(key, ())
            for a, b in ivs:
                cur = a
                for x, y in mine:
                    if y < cur or x > b:
                        continue
                    if x > cur:
                        out.append(GtidRange(key, cur, x - 1, None, "mysql"))
                    cur = max(cur, y + 1)
                    if cur > b:
                        break
                if cur <= b:
                    out.append(GtidRange(key, cur, b, None, "mysql"))
        return out

    def diverged(self, other: GtidState) -> list[str]:
        return []  # sets are exact: what one lacks is listed by missing()

    def union(self, other: GtidState) -> MysqlGtidSet:
        o: MysqlGtidSet = _same_kind(self, other)
        keys = set(self.sets) | set(o.sets)
        return MysqlGtidSet({k: tuple(_normalise([*self.sets.get(k, ()), *o.sets.get(k, ())])) for k in keys})

    def count(self) -> int:
        return sum(b - a + 1 for ivs in self.sets.values() for a, b in ivs)

    def __str__(self) -> str:
        return ",".join(k + "".join(f":{a}" if a == b else f":{a}-{b}" for a, b in ivs) for k, ivs in sorted(self.sets.items()))


GtidState = MariadbGtidPos | MysqlGtidSet


def _same_kind(mine: Any, other: GtidState) -> Any:
    if type(other) is not type(mine):
        raise TypeError(f"cannot compare a {mine.flavor} GTID state with a {other.flavor} one")
    return other


def parse_gtids(text: str | None, flavor: str) -> GtidState:
    """The GTID state of a server of ``flavor`` (``mariadb``; ``mysql``/``percona``)."""
    return MariadbGtidPos.parse(text) if flavor == "mariadb" else MysqlGtidSet.parse(text)


def missing_text(ranges: list[GtidRange], limit: int = 8) -> str:
    """``0-1-101..0-1-105 (5 transactions)``, for messages and reports."""
    if not ranges:
        return "nothing"
    n = sum(r.count for r in ranges)
    shown = ", ".join(str(r) for r in ranges[:limit]) + (f", … ({len(ranges) - limit} more ranges)" if len(ranges) > limit else "")
    return f"{shown} ({n} transaction{'s' if n != 1 else ''})"
