"""The state of an InnoDB crash recovery: the fold of the error log's events (recovery_log).

Phases (analysis from the checkpoint, redo of the log, undo of the open transactions) are
dated with the server's own timestamps; the state says which phase runs now, how far redo and
undo are, and whether a fatal line ended the start.

```python
state = RecoveryState().feed_all(parse_text(log_text_since_last_start))
print(state.phase, state.checkpoint_lsn, state.fraction("redo"), state.fatal)
```
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from engine.mysql.recovery_log import START, Event

PHASES = ("analysis", "redo", "undo")


@dataclass
class Phase:
    """One phase of crash recovery as the log dates it (server time)."""

    name: str
    started: datetime | None
    ended: datetime | None = None

    @property
    def seconds(self) -> float | None:
        if self.started is None or self.ended is None:
            return None
        return max(0.0, (self.ended - self.started).total_seconds())

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "started": self.started.isoformat() if self.started else None,
                "ended": self.ended.isoformat() if self.ended else None, "seconds": self.seconds}


@dataclass
class RecoveryState:
    """The fold of a run's events: what phase recovery is in, its LSNs, and how it ended."""

    started: datetime | None = None
    crashed: bool = False
    checkpoint_lsn: int | None = None
    scanned_lsn: int | None = None
    end_lsn: int | None = None
    applied_lsn: int | None = None
    redo_percent: int | None = None
    pages_to_recover: int | None = None
    transactions_to_roll_back: int | None = None
    rows_to_undo: int | None = None
    rolled_back: list[int] = field(default_factory=list)
    prepared: int = 0
    undo_done: bool = False
    innodb_lsn: int | None = None
    ready: bool = False
    ready_at: datetime | None = None
    shutdown: bool = False
    force_recovery: int | None = None
    fatal: Event | None = None  # the first fatal line: the cause
    aborted: Event | None = None  # the line where start-up gave up
    hints: list[str] = field(default_factory=list)
    phases: dict[str, Phase] = field(default_factory=dict)
    last_ts: datetime | None = None
    events: int = 0

    # -- folding --------------------------------------------------------------------------
    def feed_all(self, events: Iterable[Event]) -> RecoveryState:
        for e in events:
            self.feed(e)
        return self

    def feed(self, e: Event) -> None:
        if e.kind == START:
            self.__init__()  # type: ignore[misc]  # a new server process: a new story
            self.started = e.ts
            self.last_ts = e.ts
            return
        self.events += 1
        self.last_ts = e.ts or self.last_ts
        v = e.values
        handler = getattr(self, "_on_" + e.kind, None)
        if handler is not None:
            handler(e, v)

    def _open(self, name: str, ts: datetime | None) -> None:
        for earlier in PHASES[: PHASES.index(name)]:
            self._close(earlier, ts)
        if name not in self.phases:
            self.phases[name] = Phase(name, ts)

    def _close(self, name: str, ts: datetime | None) -> None:
        p = self.phases.get(name)
        if p is not None and p.ended is None:
            p.ended = ts

    def _on_recovery_start(self, e: Event, v: dict[str, int]) -> None:
        self.crashed = True
        if "checkpoint_lsn" in v:
            self.checkpoint_lsn = v["checkpoint_lsn"]
        self._open("analysis", e.ts)

    def _on_crashed(self, e: Event, v: dict[str, int]) -> None:
        self.crashed = True
        self._open("analysis", e.ts)

    def _on_checkpoint(self, e: Event, v: dict[str, int]) -> None:
        self.checkpoint_lsn = v["checkpoint_lsn"]

    def _on_scanned(self, e: Event, v: dict[str, int]) -> None:
        self.scanned_lsn = max(self.scanned_lsn or 0, v["lsn"])
        if "pages" in v:
            self.pages_to_recover = v["pages"]

    def _on_end_of_log(self, e: Event, v: dict[str, int]) -> None:
        self.scanned_lsn = self.end_lsn = v["lsn"]

    def _redo(self, e: Event) -> None:
        if self.crashed and "redo" not in self.phases:
            self._open("redo", e.ts)

    def _on_redo_batch(self, e: Event, v: dict[str, int]) -> None:
        self._redo(e)
        if "pages" in v:
            self.pages_to_recover = v["pages"]
        if "pages" not in v:
            self.redo_percent = 0  # MySQL counts each batch from 0 %

    def _on_redo_progress(self, e: Event, v: dict[str, int]) -> None:
        self._redo(e)
        if "percent" in v:
            self.redo_percent = v["percent"]
        if "lsn" in v:
            self.applied_lsn = v["lsn"]
            self.end_lsn = v["end_lsn"]
            self.pages_to_recover = v["pages"]

    def _on_redo_done(self, e: Event, v: dict[str, int]) -> None:
        self._redo(e)
        self.redo_percent = 100
        self._close("redo", e.ts)

    def _on_undo_found(self, e: Event, v: dict[str, int]) -> None:
        self.crashed = True
        self.transactions_to_roll_back = v["transactions"]
        self.rows_to_undo = v["rows"]

    def _on_prepared(self, e: Event, v: dict[str, int]) -> None:
        self.prepared = v.get("transactions", self.prepared + 1)

    def _on_undo_start(self, e: Event, v: dict[str, int]) -> None:
        self._close("analysis", e.ts)
        self._close("redo", e.ts)
        self._open("undo", e.ts)

    def _on_undo_trx(self, e: Event, v: dict[str, int]) -> None:
        if "undo" not in self.phases:
            self._open("undo", e.ts)

    def _on_undo_trx_done(self, e: Event, v: dict[str, int]) -> None:
        self.rolled_back.append(v["trx_id"])

    def _on_undo_done(self, e: Event, v: dict[str, int]) -> None:
        if "undo" not in self.phases:
            self._open("undo", e.ts)
        self.undo_done = True
        self._close("undo", e.ts)

    def _on_innodb_started(self, e: Event, v: dict[str, int]) -> None:
        self.innodb_lsn = v["lsn"]
        self._close("analysis", e.ts)
        self._close("redo", e.ts)

    def _on_ready(self, e: Event, v: dict[str, int]) -> None:
        self.ready, self.ready_at = True, e.ts
        self._close("analysis", e.ts)
        self._close("redo", e.ts)

    def _on_shutdown(self, e: Event, v: dict[str, int]) -> None:
        self.shutdown, self.ready = True, False

    def _on_force_recovery(self, e: Event, v: dict[str, int]) -> None:
        self.force_recovery = v["level"]

    def _on_hint(self, e: Event, v: dict[str, int]) -> None:
        if e.line.text not in self.hints:
            self.hints.append(e.line.text)

    def _on_fatal(self, e: Event, v: dict[str, int]) -> None:
        assert e.fatal is not None
        if e.fatal.terminal:
            self.aborted = self.aborted or e
        if self.fatal is None or (self.fatal.fatal is not None and self.fatal.fatal.terminal and not e.fatal.terminal):
            self.fatal = e  # the first specific cause wins over a generic "aborted"

    # -- reading --------------------------------------------------------------------------
    @property
    def failed(self) -> bool:
        return self.fatal is not None

    @property
    def rollback_pending(self) -> bool:
        """Recovered transactions may still be rolling back in the background."""
        if self.undo_done:
            return False
        todo = (self.transactions_to_roll_back or 0) - self.prepared
        return todo > 0 and len(self.rolled_back) < todo

    @property
    def phase(self) -> str:
        if self.fatal is not None:
            return "failed"
        if self.shutdown:
            return "stopped"
        if self.ready and not self.rollback_pending:
            return "ready"
        open_ = [p.name for p in self.phases.values() if p.ended is None]
        if open_:
            return open_[-1]
        if self.ready:
            return "undo"
        return "starting"

    def fraction(self, phase: str) -> float | None:
        """How far a phase is, 0..1, when the log says enough to tell."""
        if phase == "redo":
            if self.applied_lsn is not None and self.end_lsn and self.checkpoint_lsn is not None and self.end_lsn > self.checkpoint_lsn:
                return min(1.0, max(0.0, (self.applied_lsn - self.checkpoint_lsn) / (self.end_lsn - self.checkpoint_lsn)))
            if self.redo_percent is not None:
                return self.redo_percent / 100
        if phase == "undo" and self.transactions_to_roll_back:
            return min(1.0, len(self.rolled_back) / self.transactions_to_roll_back)
        return None

    @property
    def recovered_to_lsn(self) -> int | None:
        """The LSN redo reached: the end of the log once scanned, else the furthest applied."""
        return self.innodb_lsn or self.end_lsn or self.applied_lsn or self.scanned_lsn

    def phase_list(self) -> list[dict[str, Any]]:
        return [p.as_dict() for p in self.phases.values()]
