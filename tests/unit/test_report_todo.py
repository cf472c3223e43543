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
