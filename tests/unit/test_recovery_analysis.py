"""Analysis and the resume outlook: undone steps, rolled-back stages, notes written before a
change, the journal header's paths, the printed --journal-dir."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.journal import Journal, StepVerdict, read_journal
from engine.journal.layout import journal_flag
from engine.run.recovery import resume_outlook
from engine.secrets import MASKER, Secret


@pytest.fixture
def jdir(tmp_path: Path) -> Path:
    return tmp_path / "journal"


def step(j: Journal, key: str, status: str = "changed", phase: str = "do", undo: object = None) -> None:
    seq = j.intent(key, "db1", "d", attempt=1, phase=phase)
    j.outcome(seq, key, "db1", status, changed=status == "changed", registered={}, duration=0.0, undo=undo, phase=phase)


def test_a_stage_rollback_makes_its_steps_undone_and_resume_says_so(jdir: Path) -> None:
    with Journal.create(jdir, "r1", {"runbook": "rb.yml"}) as j:
        j.event("run_start")
        step(j, "fence/Fence", undo={"kind": "builtin"})
        step(j, "fence/Check", status="ok")
        step(j, "fence/Load", status="failed")
        step(j, "fence/Fence", phase="undo")
        j.event("stage_end", stage="fence", status="rolled back")
        j.event("run_end", status="rolled back")
    state = read_journal(jdir, "r1")
    assert state.step("fence/Fence", "db1").status is StepVerdict.UNDONE  # type: ignore[union-attr]
    assert state.step("fence/Check", "db1").status is StepVerdict.DONE  # type: ignore[union-attr]
    assert state.rolled_back_stages() == {"fence": state.events[-2]["seq"]}
    assert state.done_with_undo() == []
    outlook = resume_outlook(state)
    assert outlook is not None and "run stage fence again from the start" in outlook and "Load@db1" in outlook


def test_notes_outlive_the_attempt_that_wrote_them(jdir: Path) -> None:
    with Journal.create(jdir, "r1", {"runbook": "rb.yml"}) as j:
        j.intent("s/Fence", "db1", "d", attempt=1)
        j.event("step_note", step="s/Fence", host="db1", phase="do", data={"previous": {"read_only": False}})
        j.event("step_note", step="s/Fence", host="db1", phase="do", data={"mark": 42})
    state = read_journal(jdir, "r1")
    st = state.step("s/Fence", "db1")
    assert st is not None and st.status is StepVerdict.IN_DOUBT
    assert st.notes == {"previous": {"read_only": False}, "mark": 42}
    with Journal.open(jdir, "r1") as j:
        j.intent("s/Fence", "db1", "d", attempt=2)  # a resume's new attempt keeps them
    assert read_journal(jdir, "r1").step("s/Fence", "db1").notes["mark"] == 42  # type: ignore[union-attr]


def test_a_succeeded_run_has_nothing_to_resume(jdir: Path) -> None:
    with Journal.create(jdir, "r1", {"runbook": "rb.yml"}) as j:
        step(j, "s/a")
        j.event("run_end", status="succeeded")
    assert resume_outlook(read_journal(jdir, "r1")) is None


def test_header_paths_are_never_masked(jdir: Path, tmp_path: Path) -> None:
    Secret("fuzzpw")
    try:
        path = str(tmp_path / "fuzzpw" / "rb.yml")
        with Journal.create(jdir, "r1", {"runbook": path, "files": {path: "x"}, "cwd": str(tmp_path / "fuzzpw"),
                                         "extra_vars": [f"@{tmp_path}/fuzzpw/v.yml", "api_token=fuzzpw"],
                                         "options": {"note": "fuzzpw"}}):
            pass
        header = json.loads((jdir / "r1" / "journal.jsonl").read_text().splitlines()[0])
        assert header["runbook"] == path and header["files"] == {path: "x"}
        assert header["extra_vars"] == [f"@{tmp_path}/fuzzpw/v.yml", "api_token=********"]
        assert header["options"] == {"note": "********"}
    finally:
        MASKER.clear()


def test_journal_flag_only_when_not_the_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNBOOK_HOME", str(tmp_path / "home"))
    assert journal_flag(tmp_path / "home") == ""
    assert journal_flag(tmp_path / "other") == f" --journal-dir {tmp_path / 'other'}"


def test_reports_say_a_step_was_undone(jdir: Path) -> None:
    from engine.report.model import build_model

    with Journal.create(jdir, "r1", {"runbook": "rb.yml"}) as j:
        step(j, "s/Fence", undo={"kind": "builtin"})
        step(j, "s/Fence", phase="undo")
        j.event("run_end", status="rolled back")
    rows = [r for r in build_model(read_journal(jdir, "r1")).steps if r.phase == "do"]
    assert rows[0].msg.endswith("(undone by a later rollback)")
