"""The journal's `unknown` outcome (issue 7 item 3): in doubt until settled, and the writer's
abort mode (item 4): no new intent, outcomes dropped."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.journal import Journal, new_run_id, read_journal
from engine.journal.analysis import StepVerdict
from engine.journal.store import JournalAborting


def test_an_unknown_outcome_is_in_doubt_until_a_later_outcome_settles_it(tmp_path: Path) -> None:
    run_id = new_run_id()
    j = Journal.create(tmp_path, run_id, {"runbook": "x"})
    seq = j.intent("s/a", "h", "d", 1)
    j.outcome(seq, "s/a", "h", "unknown", changed=False, registered={"statements_done": 2}, duration=1.0,
              msg="timed out", evidence="SQL: INSERT")
    j.close()
    st = read_journal(tmp_path, run_id).step("s/a", "h")
    assert st is not None and st.status is StepVerdict.IN_DOUBT
    assert st.outcome_status == "unknown" and st.registered == {"statements_done": 2} and st.msg == "timed out"
    assert not read_journal(tmp_path, run_id).warnings

    j = Journal.open(tmp_path, run_id)  # resume: the probe says done
    j.outcome(seq, "s/a", "h", "ok", changed=False, registered={}, duration=0.0, msg="probed done")
    j.close()
    st = read_journal(tmp_path, run_id).step("s/a", "h")
    assert st is not None and st.status is StepVerdict.DONE and st.outcome_status == "ok"


def test_the_same_process_may_settle_its_own_unknown_outcome(tmp_path: Path) -> None:
    j = Journal.create(tmp_path, run_id := new_run_id(), {"runbook": "x"})
    seq = j.intent("s/a", "h", "d", 1)
    j.outcome(seq, "s/a", "h", "unknown", changed=False, registered=None, duration=1.0)
    j.outcome(seq, "s/a", "h", "ok", changed=False, registered=None, duration=0.0)  # the intent stayed open
    with pytest.raises(ValueError):
        j.outcome(seq, "s/a", "h", "ok", changed=False, registered=None, duration=0.0)  # now it is closed
    j.close()
    assert read_journal(tmp_path, run_id).step("s/a", "h").status is StepVerdict.DONE  # type: ignore[union-attr]


def test_an_aborting_journal_takes_no_intent_and_drops_outcomes(tmp_path: Path) -> None:
    j = Journal.create(tmp_path, run_id := new_run_id(), {"runbook": "x"})
    seq = j.intent("s/a", "h", "d", 1)
    j.abort()
    assert j.outcome(seq, "s/a", "h", "failed", changed=False, registered=None, duration=1.0) == -1
    with pytest.raises(JournalAborting):
        j.intent("s/b", "h", "d", 1)
    j.event("run_end", status="interrupted")  # events still go in
    j.close()
    state = read_journal(tmp_path, run_id)
    assert state.step("s/a", "h").status is StepVerdict.IN_DOUBT  # type: ignore[union-attr]
    assert state.step("s/b", "h") is None
    assert state.run_status == "interrupted"
