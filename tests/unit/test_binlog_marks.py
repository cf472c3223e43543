"""Run marks (a step's declared registered field another step of the run looks up: the fence
position binlog_replay ends at) and the replay's progress line."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any, ClassVar

from engine.actions.base import MARKS, Action, record_marks, run_mark
from engine.actions.binlog_replay import _Bar
from engine.actions.stop_writes import StopWrites
from engine.mysql.binlog import progress as prog
from engine.mysql.binlog.apply import ApplyStats
from engine.mysql.binlog.plan import ReplayPlan


class _Fence(Action):
    name = "fake_fence"
    run_marks: ClassVar[dict[str, str]] = {"fence": "binlog"}


def test_marks_are_recorded_from_declared_fields_only() -> None:
    state: dict[str, Any] = {}
    pos = {"file": "binlog.000002", "pos": 385, "gtid": "0-1-9"}
    record_marks(state, _Fence, "db1", {"binlog": pos, "failed": False})
    record_marks(state, _Fence, "db2", {"binlog": pos, "failed": True})  # a failed fence marks nothing
    record_marks(state, Action, "db3", {"binlog": pos})  # an action that declares no mark
    assert state == {MARKS: {"fence": {"db1": pos}}}
    ctx = SimpleNamespace(run_state=state, host=SimpleNamespace(name="db1"))
    assert run_mark(ctx, "fence") == pos  # type: ignore[arg-type]
    ctx.host.name = "db2"
    assert run_mark(ctx, "fence") is None  # type: ignore[arg-type]
    assert StopWrites.run_marks == {"fence": "binlog"}


def test_progress_line_has_bytes_rate_and_eta() -> None:
    seen: list[tuple[int, int | None, str]] = []
    ctx = SimpleNamespace(progress=lambda d, t, label: seen.append((d, t, label)))
    plan = ReplayPlan(transactions=1000, bytes=50_000_000)
    bar = _Bar(ctx, plan, prog.Committed(transactions=100, rows=400), time.monotonic() - 2)
    bar(ApplyStats(transactions=300, rows=1200))
    done, total, label = seen[-1]
    assert total == 50_000_000 and done == 20_000_000  # 400 of 1000 transactions
    assert "400/1,000 transactions" in label and "1,600 rows" in label and "20.0/50.0 MB" in label and "ETA" in label


def test_reading_progress_has_bytes_and_eta(monkeypatch: Any) -> None:
    from engine.mysql.binlog.window import ReadProgress

    clock = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    seen: list[tuple[int, int | None, str]] = []
    bar = ReadProgress(lambda d, t, label: seen.append((d, t, label)), "read", 100_000_000)
    reader = SimpleNamespace(bytes_read=0)
    for i in range(1, 5):
        clock[0] += 0.6
        reader.bytes_read = i * 10_000_000
        bar(reader)
    assert len(seen) == 2  # at most one line a second
    done, total, label = seen[-1]
    assert (done, total) == (40_000_000, 100_000_000)
    assert label.startswith("read | 4 transactions, 40.0/100.0 MB") and "ETA" in label
