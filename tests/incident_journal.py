"""A journal as an emergency run writes it, for report tests: stages against budgets, a typed
confirmation, a fence never reopened, a snapshot, a restore with per-table figures, verify
checks, a crash recovery's phases and an operator's decision on an in-doubt step."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from engine.journal import Journal

RUN_ID = "20261130-031502-abcd"
RUNBOOK = """name: Emergency recovery
stages:
  - {name: assess, budget: 5m, steps: [{name: facts, mysql_facts: {}}]}
  - {name: stop writes, budget: 15m, steps: [{name: fence, stop_writes: {}}]}
  - {name: restore core tables, budget: 30m, steps: [{name: snapshot, snapshot: {schema: shop}}]}
  - {name: reopen, steps: [{name: reopen, resume_writes: {}}]}
  - {name: full recovery, tags: [full], steps: [{name: rest, restore: {file: /b.sql}}]}
"""


class Clock:
    def __init__(self) -> None:
        self.at = datetime(2026, 11, 30, 3, 15, 2, tzinfo=UTC)

    def now(self) -> str:
        return self.at.isoformat(timespec="microseconds")

    def tick(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


def _step(j: Journal, clock: Clock, key: str, status: str | None, seconds: float, **outcome: Any) -> None:
    seq = j.intent(key, "db1", "digest", attempt=1, phase="do")
    clock.tick(seconds)
    if status is not None:
        j.outcome(seq, key, "db1", status, changed=status == "changed", duration=seconds, phase="do",
                  registered=outcome.pop("registered", {}), **outcome)
    clock.tick(0.1)


def write_incident(jdir: Path, clock: Clock) -> Path:
    """Writes the runbook (its digest in the header) and the journal; returns the runbook path."""
    rb = jdir / "emergency.yml"
    rb.write_text(RUNBOOK)
    header = {"runbook": str(rb), "runbook_name": "Emergency recovery",
              "files": {str(rb): hashlib.sha256(rb.read_bytes()).hexdigest()},
              "operator": "dba", "control_host": "bastion1", "hosts": ["db1"], "check_mode": False}
    with Journal.create(jdir, RUN_ID, header) as j:
        j.event("run_start")
        j.event("stage_start", stage="assess", budget=300, hosts=["db1"])
        _step(j, clock, "assess/facts", "ok", 0.4, registered={"hostname": "db1"})
        _step(j, clock, "assess/recover", "ok", 12.0, registered={
            "crashed": True, "ready": True, "checkpoint_lsn": 44894, "recovered_to_lsn": 48753806,
            "rolled_back_transactions": 2, "seconds": 12.0,
            "phases": [{"name": "analysis", "started": "2026-11-30T03:15:03+00:00", "ended": "2026-11-30T03:15:05+00:00", "seconds": 2},
                       {"name": "redo", "started": "2026-11-30T03:15:05+00:00", "ended": "2026-11-30T03:15:10+00:00", "seconds": 5},
                       {"name": "undo", "started": "2026-11-30T03:15:10+00:00", "ended": "2026-11-30T03:15:14+00:00", "seconds": 4}]})
        j.event("stage_end", stage="assess", status="ok")
        j.event("operator_confirm", stage="stop writes", text="Stop all writes on db1 (P0)", confirmed=True, by="terminal")
        j.event("stage_start", stage="stop writes", budget=900, hosts=["db1"])
        _step(j, clock, "stop writes/fence", "changed", 0.2, msg="fenced, killed 3 connection(s)", undo={"read_only": False},
              registered={"previous": {"read_only": False}, "state": {"read_only": True}})
        j.event("stage_end", stage="stop writes", status="ok")
        j.event("stage_start", stage="restore core tables", budget=1800, hosts=["db1"])
        _step(j, clock, "restore core tables/snapshot", "changed", 3.0, undo={"snapshot_schema": "_rb_snap_x"},
              registered={"snapshot_schema": "_rb_snap_20261130_031502_abcd", "bytes": 4 << 20})
        _step(j, clock, "restore core tables/restore", "changed", 40.0, msg="4 table(s), 42,200 rows", registered={
            "rows": 42200, "seconds": 40.0, "rows_per_s": 1055, "bytes": 3 << 20,
            "tables": {"users": {"status": "loaded", "rows": 2000, "ignored": 0, "bytes": 1 << 19, "seconds": 5.0, "rows_per_s": 400},
                       "orders": {"status": "loaded", "rows": 10000, "ignored": 0, "bytes": 1 << 20, "seconds": 15.0, "rows_per_s": 667},
                       "order_items": {"status": "loaded", "rows": 30000, "ignored": 0, "bytes": 1 << 20, "seconds": 18.0, "rows_per_s": 1667},
                       "products": {"status": "loaded", "rows": 200, "ignored": 0, "bytes": 1 << 16, "seconds": 2.0, "rows_per_s": 100}}})
        _step(j, clock, "restore core tables/verify", "ok", 1.0, registered={
            "checks": [{"name": "fk orders.fk_orders_user", "kind": "foreign_key", "table": "orders", "result": "pass",
                        "count": 0, "expected": 0, "sample": [], "detail": "orders(user_id) → users(id)"},
                       {"name": "rows orders", "kind": "row_count", "table": "orders", "result": "pass",
                        "count": 10000, "expected": 10000, "sample": [], "detail": "10000 row(s), expected 10000 (restore)"}],
            "summary": {"pass": 2, "fail": 0, "warn": 0}})
        _step(j, clock, "restore core tables/grants", None, 0.5)  # killed while it ran: in doubt
        j.event("operator_decision", step="restore core tables/grants", host="db1", decision="rerun")
        j.event("stage_end", stage="restore core tables", status="failed")
        j.event("run_end", status="failed")
    return rb
