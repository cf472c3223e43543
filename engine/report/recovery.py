"""Crash-recovery phases in the reports: what ``innodb_recovery`` steps registered.

Each watch step registers ``phases`` (``{name, started, ended, seconds}``, in the server's
time) and its LSNs; the reports show them on the timeline next to the stages (HTML), as a
table (Markdown) and under ``recovery`` (JSON).

```python
for r in recoveries(model):
    print(r.host, r.crashed, [(p.name, p.seconds) for p in r.phases])
```
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from engine.report.model import ReportModel, StepRow
from engine.report.text import as_int, as_number


@dataclass(frozen=True)
class RecoveryPhase:
    name: str  # analysis | redo | undo
    started: str | None
    ended: str | None
    seconds: float | None
    offset: float | None  # seconds after the first phase of the same recovery started


@dataclass(frozen=True)
class Recovery:
    """One watched crash recovery on one host."""

    stage: str
    step: str
    host: str
    crashed: bool
    ready: bool
    checkpoint_lsn: int | None
    recovered_to_lsn: int | None
    rolled_back_transactions: int | None
    seconds: float | None
    phases: tuple[RecoveryPhase, ...]
    fatal: str | None

    @property
    def span(self) -> float:
        """Seconds from the first phase's start to the last phase's end (at least 1)."""
        ends = [(p.offset or 0.0) + (p.seconds or 0.0) for p in self.phases]
        return max([1.0, *ends])


def _when(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


def _recovery(row: StepRow) -> Recovery | None:
    reg = row.registered
    if not reg or not isinstance(reg.get("phases"), list) or "recovered_to_lsn" not in reg:
        return None
    phases: list[RecoveryPhase] = []
    first = None
    for p in reg["phases"]:
        if not isinstance(p, dict):
            continue
        start = _when(p.get("started"))
        first = first or start
        offset = (start - first).total_seconds() if start is not None and first is not None else None
        phases.append(RecoveryPhase(str(p.get("name")), p.get("started"), p.get("ended"), as_number(p.get("seconds")), offset))
    fatal = reg.get("fatal")
    return Recovery(
        stage=row.stage, step=row.step, host=row.host, crashed=bool(reg.get("crashed")), ready=bool(reg.get("ready")),
        checkpoint_lsn=as_int(reg.get("checkpoint_lsn")), recovered_to_lsn=as_int(reg.get("recovered_to_lsn")),
        rolled_back_transactions=as_int(reg.get("rolled_back_transactions")), seconds=as_number(reg.get("seconds")),
        phases=tuple(phases),
        fatal=f"{fatal.get('kind')}: {fatal.get('line')}" if isinstance(fatal, dict) else None,
    )


def recoveries(model: ReportModel) -> list[Recovery]:
    """Every crash recovery an ``innodb_recovery`` watch step registered, in run order."""
    return [r for row in model.steps if (r := _recovery(row)) is not None]


def recovery_data(model: ReportModel) -> list[dict[str, Any]]:
    """The ``recovery`` section of the JSON report."""
    from dataclasses import asdict

    return [asdict(r) for r in recoveries(model)]


def recovery_markdown(model: ReportModel) -> list[str]:
    """The "Crash recovery" section of the Markdown report (empty when no step watched one)."""
    found = recoveries(model)
    if not found:
        return []
    out = ["## Crash recovery", ""]
    for r in found:
        state = "ready" if r.ready else "NOT ready"
        lsn = f"checkpoint LSN {r.checkpoint_lsn} → {r.recovered_to_lsn}" if r.crashed else "no crash recovery needed"
        out.append(f"**{r.host}** ({r.stage} / {r.step}): {state}; {lsn}; "
                   f"{r.rolled_back_transactions or 0} transaction(s) rolled back; watched {r.seconds or 0:.1f}s")
        if r.fatal:
            out.append(f"Fatal: `{r.fatal}`")
        out.append("")
        if r.phases:
            out += ["| Phase | Started | Ended | Seconds |", "|---|---|---|---|"]
            out += [f"| {p.name} | {p.started or '—'} | {p.ended or '—'} | {'—' if p.seconds is None else f'{p.seconds:g}'} |"
                    for p in r.phases]
            out.append("")
    return out
