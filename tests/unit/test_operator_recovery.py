"""Pure logic of the operator's path (issue 20 item 1, issue 15 item 4): analysis of an undo cut
short, the steps resume must not trust after a rollback, --decide checked against the journal,
and a second Ctrl-C that never waits on a stuck step."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from engine.errors import InputError
from engine.journal import Journal, StepVerdict, read_journal
from engine.run.recovery import check_decisions


@pytest.fixture
def jdir(tmp_path: Path) -> Path:
    return tmp_path / "journal"


def step(j: Journal, key: str, status: str = "changed", phase: str = "do", undo: object = None, host: str = "db1") -> int:
    seq = j.intent(key, host, "d", attempt=1, phase=phase)
    return j.outcome(seq, key, host, status, changed=status == "changed", registered={}, duration=0.0, undo=undo, phase=phase)


def test_a_do_step_whose_undo_was_cut_short_is_in_doubt(jdir: Path) -> None:
    """A rollback killed after the undo ran (its intent, no outcome): the do-step is in doubt
    (it used to read "done": resume said 0 in doubt and skipped the stage)."""
    with Journal.create(jdir, "r1", {"runbook": "rb.yml", "hosts": ["db1"]}) as j:
        step(j, "s/Fence", undo={"kind": "builtin"})
        step(j, "s/Load")
        j.event("run_end", status="succeeded")
        j.event("rollback_start")
        j.intent("s/Fence", "db1", "u", attempt=1, phase="undo")  # killed here
    state = read_journal(jdir, "r1")
    fence = state.step("s/Fence", "db1")
    assert fence is not None and fence.status is StepVerdict.IN_DOUBT and fence.undo_pending == "in doubt"
    assert not fence.open_attempt and fence.outcome_status == "changed"
    assert [s.step for s in state.in_doubt()] == ["s/Fence"] and state.in_flight() == []
    assert [s.step for s in state.done_with_undo()] == ["s/Fence"]  # rollback still undoes it
    load = state.step("s/Load", "db1")
    assert load is not None and [u.step for u in state.undone_under(load)] == ["s/Fence"]
    # its attempt is closed: a new journal does not take an outcome for it
    with Journal.open(jdir, "r1") as j, pytest.raises(ValueError):
        j.outcome(fence.intent_seq, "s/Fence", "db1", "ok", changed=False, registered={}, duration=0.0)


def test_a_do_step_whose_undo_failed_is_in_doubt_and_a_done_undo_makes_it_undone(jdir: Path) -> None:
    with Journal.create(jdir, "r1", {"runbook": "rb.yml"}) as j:
        step(j, "s/A", undo={"n": 1})
        step(j, "s/B", undo={"n": 2})
        step(j, "s/B", status="changed", phase="undo")
        step(j, "s/A", status="failed", phase="undo")
    state = read_journal(jdir, "r1")
    a, b = state.step("s/A", "db1"), state.step("s/B", "db1")
    assert a is not None and a.status is StepVerdict.IN_DOUBT and a.undo_pending == "failed"
    assert b is not None and b.status is StepVerdict.UNDONE


def test_a_step_done_before_the_undone_one_is_trusted(jdir: Path) -> None:
    with Journal.create(jdir, "r1", {"runbook": "rb.yml"}) as j:
        step(j, "s/Facts", status="ok")
        step(j, "s/Snap", undo={"n": 1})
        step(j, "s/Load")
        step(j, "s/Snap", phase="undo")
        step(j, "s/After")  # done after the rollback: rests on nothing undone
    state = read_journal(jdir, "r1")
    facts, load, after = (state.step(k, "db1") for k in ("s/Facts", "s/Load", "s/After"))
    assert facts is not None and state.undone_under(facts) == []
    assert load is not None and [u.step for u in state.undone_under(load)] == ["s/Snap"]
    assert after is not None and state.undone_under(after) == []


def test_decisions_are_checked_against_the_journal(jdir: Path) -> None:
    with Journal.create(jdir, "r1", {"runbook": "rb.yml", "hosts": ["db1", "db2"]}) as j:
        step(j, "s/Snap", undo={"n": 1})
        j.intent("s/Load", "db1", "d", attempt=1)  # cut short: in doubt
        seq = j.intent("s/Snap", "db2", "d", attempt=1)
        j.outcome(seq, "s/Snap", "db2", "changed", changed=True, registered={}, duration=0.0, undo={"n": 2})
        failed = j.intent("s/Snap", "db1", "u", attempt=1, phase="undo")
        j.outcome(failed, "s/Snap", "db1", "failed", changed=False, registered=None, duration=0.0, phase="undo",
                  msg="ERROR 1050: table exists")
    state = read_journal(jdir, "r1")
    keys = {"s/Snap", "s/Load", "s/Gate"}
    check_decisions({"s/Load@db1": "rerun"}, state, keys, "resume")  # in doubt: applies
    check_decisions({"s/Snap@db1": "done"}, state, keys, "resume")  # in doubt (its undo failed): the probe or the operator
    with pytest.raises(InputError, match="takes rerun, done, abort"):
        check_decisions({"s/Load@db1": "skip"}, state, keys, "resume")
    with pytest.raises(InputError, match=r"nothing to decide: s/Gate is not in doubt \(db1: never started"):
        check_decisions({"s/Gate@db1": "done"}, state, keys, "resume")
    with pytest.raises(InputError, match="no step 's/Lod'") as exc:
        check_decisions({"s/Lod@db1": "done"}, state, keys, "resume")
    assert "s/Load" in (exc.value.hint or "")
    with pytest.raises(InputError, match="host 'db9'"):
        check_decisions({"s/Load@db9": "done"}, state, keys, "resume")
    # rollback: a failed undo is run again, not decided: the decision is refused, saying why
    with pytest.raises(InputError, match="its undo failed \\(ERROR 1050: table exists\\)"):
        check_decisions({"s/Snap@db1": "skip"}, state, keys, "rollback")
    check_decisions({"s/Load@db1": "skip"}, state, keys, "rollback")  # in doubt do-step: done or skip
    with pytest.raises(InputError, match="takes done, skip, abort"):
        check_decisions({"s/Load@db1": "rerun"}, state, keys, "rollback")


class _StuckConns:
    """A host whose KILL and close never return (a long rollback on the server) until the test
    lets them: an abort that waited on either could not return before ``release`` is set."""

    def __init__(self) -> None:
        self.called = threading.Event()
        self.release = threading.Event()
        self.callers: list[threading.Thread] = []
        self.returned = 0

    def _stuck(self) -> None:
        self.release.wait()
        self.returned += 1

    def interrupt(self, why: str = "") -> None:
        self.callers.append(threading.current_thread())
        self.called.set()
        self._stuck()

    def close(self) -> None:
        self._stuck()


def test_a_second_ctrl_c_never_waits_on_a_stuck_step(tmp_path: Path) -> None:
    """The abort leaves the running steps a moment, stops them from daemon threads and returns:
    it used to call each host's KILL in turn and wait up to 5 s more for the steps. No clock:
    the step, its KILL and its close never return until the test releases them after the abort
    has returned, so an abort that waited on any of them could not return at all."""
    from engine.run.play import Play
    from engine.run.state import HostState

    play = Play.__new__(Play)
    play.journal = Journal.create(tmp_path / "j", "r1", {"runbook": "rb.yml"})
    play.interrupts = type("I", (), {"signal_name": "Ctrl-C"})()  # type: ignore[assignment]
    play._aborted = False
    play.states, play._peer_conns = {}, {}
    conns = _StuckConns()
    hs: Any = HostState.__new__(HostState)
    hs.host = type("H", (), {"name": "db1"})()
    hs.conns = conns
    from engine.run.play import _Finished, _Task

    never = _Task(None, None, hs, "s", _Finished())  # type: ignore[arg-type]  # a step that never comes back
    done = threading.Event()

    def abort() -> None:
        play._abort({never}, _Finished())
        play.states = {"db1": hs}
        play.close()
        done.set()

    aborting = threading.Thread(target=abort, daemon=True)
    aborting.start()
    try:
        # Generous guards against a hang, not timings: nothing here can end before release.
        assert done.wait(60), "the abort waited on the stuck step, its KILL or its close"
        assert conns.called.wait(60)  # it was told to stop...
        assert aborting not in conns.callers  # ...from a thread of its own
        assert conns.returned == 0  # the KILL and the close are still stuck: the abort returned without them
    finally:
        conns.release.set()
    play.journal.close()
    kinds = [(r.get("kind"), r.get("in_doubt")) for r in read_journal(tmp_path / "j", "r1").events]
    assert ("interrupted", ["db1"]) in kinds
