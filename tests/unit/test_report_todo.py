"""The incident record's end: what the operator must still do, confirmations and decisions."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.journal import read_journal, store
from engine.report import render_report
from engine.report.model import build_model
from tests.incident_journal import RUN_ID, Clock, write_incident


@pytest.fixture
def model_and_runbook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[object, Path]:
    clock = Clock()
    monkeypatch.setattr(store, "now", clock.now)
    rb = write_incident(tmp_path, clock)
    return build_model(read_journal(tmp_path, RUN_ID)), rb


def test_todo_names_the_fence_the_doubt_the_failure_the_stages_not_run_and_the_snapshot(model_and_runbook) -> None:
    model, _ = model_and_runbook
    todo = "\n".join(model.todo)
    assert "Writes are still fenced on db1" in todo and "stop writes/fence" in todo
    assert "restore core tables/grants on db1 is in doubt" in todo
    assert f"runbook resume {RUN_ID}" in todo and "The run is failed" in todo
    assert "Stage(s) not run: reopen, full recovery" in todo
    assert "Snapshot _rb_snap_20261130_031502_abcd on db1" in todo and f"runbook snapshots drop {RUN_ID}" in todo


def test_a_changed_runbook_file_is_not_used_to_list_stages(model_and_runbook, tmp_path: Path) -> None:
    _, rb = model_and_runbook
    rb.write_text(rb.read_text() + "# edited\n")
    model = build_model(read_journal(tmp_path, RUN_ID))
    assert not any("Stage(s) not run" in t for t in model.todo)


def test_a_reopened_fence_and_a_dropped_snapshot_leave_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.journal import Journal

    clock = Clock()
    monkeypatch.setattr(store, "now", clock.now)
    with Journal.create(tmp_path, "r1", {"runbook": "x.yml", "operator": "dba", "hosts": ["db1"]}) as j:
        j.event("stage_start", stage="s", hosts=["db1"])
        for key, state in (("s/fence", True), ("s/reopen", False)):
            seq = j.intent(key, "db1", "d", attempt=1, phase="do")
            j.outcome(seq, key, "db1", "changed", changed=True, duration=0.1, phase="do",
                      registered={"state": {"read_only": state}})
        seq = j.intent("s/snap", "db1", "d", attempt=1, phase="do")
        j.outcome(seq, "s/snap", "db1", "changed", changed=True, duration=0.1, phase="do",
                  registered={"snapshot_schema": "_rb_snap_r1"}, undo={"x": 1})
        seq = j.intent("s/snap", "db1", "d", attempt=1, phase="undo")
        j.outcome(seq, "s/snap", "db1", "ok", changed=True, duration=0.1, phase="undo", registered={})
        j.event("stage_end", stage="s", status="ok")
        j.event("run_end", status="succeeded")
    model = build_model(read_journal(tmp_path, "r1"))
    assert model.todo == ()
    assert "Nothing: the run finished" in render_report(read_journal(tmp_path, "r1"), "html")


def test_confirmations_and_decisions_with_who_and_when(model_and_runbook, tmp_path: Path) -> None:
    model, _ = model_and_runbook
    kinds = [(d.kind, d.who, d.answer) for d in model.decisions]
    assert kinds == [("confirmation", "dba (terminal)", "confirmed"), ("decision", "dba", "rerun")]
    assert all(d.ts for d in model.decisions)
    html = render_report(read_journal(tmp_path, RUN_ID), "html")
    assert "Confirmations and decisions" in html and "Stop all writes on db1 (P0)" in html
    assert "What the operator must still do" in html and "Writes are still fenced on db1" in html


def test_markdown_and_json_carry_the_same_record(model_and_runbook, tmp_path: Path) -> None:
    import json

    state = read_journal(tmp_path, RUN_ID)
    md = render_report(state, "md")
    assert "## What the operator must still do" in md and "1. Writes are still fenced on db1" in md
    assert "## Confirmations and decisions" in md and "dba (terminal)" in md
    data = json.loads(render_report(state, "json"))
    assert data["todo"][0].startswith("Writes are still fenced on db1")
    assert [d["kind"] for d in data["decisions"]] == ["confirmation", "decision"]


FENCE = {"file": "mysql-bin.000003", "pos": 9000, "gtid": "0-1-77"}


def _restore_run(tmp_path: Path, replay_from: dict[str, object] | None, replay_ok: bool = True,
                 replay_end: dict[str, object] | None = None) -> list[str]:
    """A run that fences (at mysql-bin.000003:9000), snapshots, restores (the dump at
    mysql-bin.000003:1000) and maybe replays (by default up to the fence)."""
    from engine.journal import Journal

    with Journal.create(tmp_path, "r2", {"runbook": "x.yml", "operator": "dba", "hosts": ["db1"]}) as j:
        j.event("stage_start", stage="s", hosts=["db1"])
        steps: list[tuple[str, str, dict[str, object]]] = [
            ("s/fence", "changed", {"state": {"read_only": True}, "binlog": FENCE}),
            ("s/snap", "changed", {"snapshot_schema": "_rb_snap_r2", "tables": {"orders": {"rows": 50}}}),
            ("s/restore", "changed", {"rows": 50, "tables": {"orders": {"status": "loaded", "rows": 50}},
                                      "binlog_start": {"file": "mysql-bin.000003", "pos": 1000, "gtid": "0-1-42"},
                                      "only_in_snapshot": {"rows": 3, "tables": {}}})]
        if replay_from is not None:
            steps.append(("s/replay", "changed" if replay_ok else "failed",
                          {"transactions": 9, "rows": 12, "start": replay_from, "stopped_at": None,
                           "end": replay_end or {"file": FENCE["file"], "pos": FENCE["pos"], "gtid": None}}))
        for key, status, reg in steps:
            seq = j.intent(key, "db1", "d", attempt=1, phase="do")
            j.outcome(seq, key, "db1", status, changed=status == "changed", duration=0.1, phase="do", registered=reg,
                      undo={"x": 1} if key == "s/snap" else None)
        j.event("stage_end", stage="s", status="ok")
        j.event("run_end", status="succeeded" if replay_ok else "failed")
    return list(build_model(read_journal(tmp_path, "r2")).todo)


def test_a_restore_not_replayed_keeps_the_snapshot_as_the_only_copy(tmp_path: Path) -> None:
    (snap,) = [t for t in _restore_run(tmp_path, None) if "_rb_snap_r2" in t]
    assert "holds the only copy of the writes made since the backup" in snap
    assert "“s/restore” (backup at mysql-bin.000003:1000, 3 row(s) counted)" in snap
    assert "snapshots drop" not in snap and "Keep it and merge" in snap


def test_a_failed_replay_or_one_that_starts_after_the_backup_does_not_count(tmp_path: Path) -> None:
    (snap,) = [t for t in _restore_run(tmp_path, {"file": "mysql-bin.000003", "pos": 1000}, replay_ok=False) if "_rb_snap" in t]
    assert "holds the only copy" in snap
    (snap,) = [t for t in _restore_run(tmp_path / "late", {"file": "mysql-bin.000003", "pos": 5000}) if "_rb_snap" in t]
    assert "holds the only copy" in snap


def test_a_replay_from_the_backup_lets_the_snapshot_go_once_confirmed(tmp_path: Path) -> None:
    (snap,) = [t for t in _restore_run(tmp_path, {"file": "mysql-bin.000003", "pos": 1000, "gtid": "0-1-42"}) if "_rb_snap" in t]
    assert "Drop it once the data is confirmed: `runbook snapshots drop r2`" in snap
    assert "only copy" not in snap


def test_a_replay_that_stopped_before_the_fence_keeps_the_snapshot(tmp_path: Path) -> None:
    # stop_before the incident: the writes after it, overwritten by the restore, are only in the snapshot
    start = {"file": "mysql-bin.000003", "pos": 1000, "gtid": "0-1-42"}
    (snap,) = [t for t in _restore_run(tmp_path, start, replay_end={"file": "mysql-bin.000003", "pos": 5000}) if "_rb_snap" in t]
    assert "holds the only copy" in snap and "snapshots drop" not in snap


def test_a_later_restore_of_other_tables_does_not_hold_the_snapshot(tmp_path: Path) -> None:
    # emergency.yml's full recovery: after the replay, the other tables restored (rows added only);
    # the snapshot of the core tables holds nothing of theirs
    from engine.journal import Journal

    start = {"file": "mysql-bin.000003", "pos": 1000, "gtid": "0-1-42"}
    with Journal.create(tmp_path, "r3", {"runbook": "x.yml", "operator": "dba", "hosts": ["db1"]}) as j:
        j.event("stage_start", stage="s", hosts=["db1"])
        for key, reg in [("s/fence", {"state": {"read_only": True}, "binlog": FENCE}),
                         ("s/snap", {"snapshot_schema": "_rb_snap_r3", "tables": {"orders": {"rows": 50}}}),
                         ("s/restore", {"tables": {"orders": {"rows": 50}}, "binlog_start": start,
                                        "only_in_snapshot": {"snapshot_schema": "_rb_snap_r3", "rows": 3}}),
                         ("s/replay", {"start": start, "stopped_at": None, "end": {"file": FENCE["file"], "pos": FENCE["pos"]}}),
                         ("s/rest", {"tables": {"reviews": {"rows": 0}}, "binlog_start": start})]:
            seq = j.intent(key, "db1", "d", attempt=1, phase="do")
            j.outcome(seq, key, "db1", "changed", changed=True, duration=0.1, phase="do", registered=reg)
        j.event("stage_end", stage="s", status="ok")
        j.event("run_end", status="succeeded")
    (snap,) = [t for t in build_model(read_journal(tmp_path, "r3")).todo if "_rb_snap_r3" in t]
    assert "Drop it once the data is confirmed" in snap and "only copy" not in snap
