"""A place in a server's binlogs: ``{file, pos, gtid}`` (any of them may be unknown)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class BinlogPosition:
    """Where something happened (or will start) in the binlogs.

    ``file``/``pos`` are the classic coordinates (``mysql-bin.000042``, byte offset of the next
    event); ``gtid`` is the GTID state at that point: MariaDB's ``domain-server-seq`` list
    (``0-1-1234,1-2-5``) or MySQL's executed set (``uuid:1-1234``). Registered as a mapping
    ``{file, pos, gtid}`` so templates read ``fence.binlog.pos``.
    """

    file: str | None = None
    pos: int | None = None
    gtid: str | None = None

    @property
    def known(self) -> bool:
        """Something to start or stop at: a file and position, or a GTID state."""
        return (self.file is not None and self.pos is not None) or bool(self.gtid)

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "pos": self.pos, "gtid": self.gtid}

    @classmethod
    def from_dict(cls, data: Any) -> BinlogPosition | None:
        """The registered form back into the type; ``None`` for null or an empty mapping."""
        if not isinstance(data, dict) or not any(data.get(k) not in (None, "") for k in ("file", "pos", "gtid")):
            return None
        pos = data.get("pos")
        return cls(file=data.get("file") or None, pos=int(pos) if pos not in (None, "") else None,
                   gtid=str(data["gtid"]) if data.get("gtid") not in (None, "") else None)

    def __str__(self) -> str:
        parts = []
        if self.file is not None:
            parts.append(f"{self.file}:{self.pos}")
        if self.gtid:
            parts.append(f"gtid {self.gtid}")
        return " ".join(parts) or "unknown position"
