"""The values of a verification: one :class:`Check` per thing checked, and the task that
computes it on a worker's sessions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from engine.transport.base import Sql

Kind = Literal["foreign_key", "required", "row_count", "checksum", "rule"]
Severity = Literal["fail", "warn"]
#: how many offending keys (or chunks) a check keeps as its sample
SAMPLE = 10


@dataclass
class Check:
    """One check's verdict, registered as ``{name, kind, table, result, count, expected, sample, ...}``.

    ``result`` is ``pass`` when nothing was found, else the check's severity (``fail`` |
    ``warn``); a check that could not run (an SQL error, its timeout) is not a pass either.
    """

    name: str
    kind: Kind
    table: str | None
    severity: Severity = "fail"
    result: str = "pass"
    count: int | None = 0
    expected: Any = None
    sample: list[Any] = field(default_factory=list)
    detail: str = ""
    rows: int = 0  # rows the check's queries read (for rows/s)
    seconds: float = 0.0
    error: str | None = None

    def verdict(self, bad: bool) -> None:
        self.result = self.severity if bad else "pass"

    def registered(self) -> dict[str, Any]:
        out = {"name": self.name, "kind": self.kind, "table": self.table, "result": self.result, "count": self.count,
               "expected": self.expected, "sample": self.sample, "severity": self.severity, "detail": self.detail,
               "rows": self.rows, "seconds": round(self.seconds, 6)}
        if self.error is not None:
            out["error"] = self.error
        return out


class Sessions:
    """A worker's sessions: one on the verified host (default database: the schema) and, when
    a check compares with another host, one there. Each worker thread owns its own."""

    def __init__(self, main: Sql, other: Callable[[], Sql] | None = None):
        self.main = main
        self._other_factory = other
        self._other: Sql | None = None

    def other(self) -> Sql:
        if self._other is None:
            if self._other_factory is None:
                raise RuntimeError("no second server configured for this verification")
            self._other = self._other_factory()
        return self._other

    def close(self) -> None:
        for s in (self.main, self._other):
            if s is not None:
                try:
                    s.close()
                except Exception:  # closing is best effort
                    pass


@dataclass
class Task:
    """Work for one worker: ``run`` fills its ``checks`` (several when one query answers
    them all, e.g. every required column of a table) using the worker's sessions. ``weight``
    orders the queue: big tables first, so the pool does not wait on one giant at the end."""

    checks: list[Check]
    run: Callable[[Sessions, list[Check]], None]
    weight: int = 0
