"""The journal on real files: writing, analysis after a crash, masking, listing, locks."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from engine.errors import InputError, JournalError, RunLocked
from engine.journal import (
    Journal,
    JournalState,
    RunLock,
    StepVerdict,
    journal_dir,
    list_runs,
    lock_holder,
    new_run_id,
    read_journal,
    store,
)
from engine.model import Status
from engine.secrets import MASK, Secret

REPO = Path(__file__).resolve().parents[2]
HEADER = {"runbook": "runbooks/emergency.yml", "operator": "dba", "extra_vars": {"target": "db1"}}


def lines_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def run_step(j: Journal, step: str, host: str, status: str = "ok", phase: str = "do", undo: object = None) -> int:
    seq = j.intent(step, host, "d1", attempt=1, phase=phase)
    return j.outcome(
        seq, step, host, status, changed=status == "changed", registered={}, duration=0.1, undo=undo, phase=phase
    )


def registered_of(state: JournalState, step: str, host: str) -> dict[str, Any]:
    found = state.step(step, host)
    assert found is not None and found.registered is not None
    return found.registered


@pytest.fixture
def jdir(tmp_path: Path) -> Path:
    return tmp_path / "journal"


# --------------------------------------------------------------------------- ids and paths


def test_run_ids_are_sortable_and_readable() -> None:
    run_id = new_run_id()
    day, clock, rand = run_id.split("-")
    assert len(day) == 8 and len(clock) == 6 and len(rand) == 4
    assert datetime.strptime(day + clock, "%Y%m%d%H%M%S")
    int(rand, 16)


def test_journal_dir_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNBOOK_HOME", "/var/lib/runbook")
    assert journal_dir("/x") == Path("/x")
    assert journal_dir(None) == Path("/var/lib/runbook")
    monkeypatch.delenv("RUNBOOK_HOME")
    # SPEC §1: the user's state directory, the same from any working directory
    monkeypatch.setenv("XDG_STATE_HOME", "/srv/state")
    assert journal_dir(None) == Path("/srv/state/runbook")
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", "/home/dba")
    assert journal_dir(None) == Path("/home/dba/.local/state/runbook")


@pytest.mark.parametrize("bad", ["", "..", "../etc", "a/b", ".hidden"])
def test_run_id_cannot_escape_the_journal_dir(jdir: Path, bad: str) -> None:
    with pytest.raises(InputError):
        read_journal(jdir, bad)


# --------------------------------------------------------------------------- writing


def test_create_append_read(jdir: Path) -> None:
    with Journal.create(jdir, "r1", HEADER) as j:
        assert j.event("run_start") == 1
        seq = j.intent("s/stop writes", "db1", "abc", attempt=1, extra={"probe": {"read_only": 0}})
        out = j.outcome(
            seq,
            "s/stop writes",
            "db1",
            Status.CHANGED,
            changed=True,
            registered={"rc": 0},
            duration=1.25,
            msg="read_only=ON",
            undo={"read_only": 0},
            evidence="SET GLOBAL ...",
        )
        j.event("run_end", status="ok")
    records = lines_of(jdir / "r1" / "journal.jsonl")
    assert [r["seq"] for r in records] == [0, 1, 2, 3, 4]
    assert records[0]["type"] == "header" and records[0]["run_id"] == "r1" and records[0]["version"] == 1
    assert records[0]["runbook"] == "runbooks/emergency.yml"
    assert records[2] == {
        **records[2],
        "type": "intent",
        "step": "s/stop writes",
        "host": "db1",
        "digest": "abc",
        "attempt": 1,
        "phase": "do",
    }
    assert records[3]["intent"] == seq and records[3]["status"] == "changed" and out == 3

    state = read_journal(jdir, "r1")
    assert state.header["operator"] == "dba" and state.last_seq == 4 and not state.torn_tail
    step = state.step("s/stop writes", "db1")
    assert step is not None and step.status is StepVerdict.DONE and step.status == "done"
    assert (step.outcome_status, step.changed, step.registered, step.duration) == ("changed", True, {"rc": 0}, 1.25)
    assert (step.msg, step.undo, step.evidence, step.extra) == (
        "read_only=ON",
        {"read_only": 0},
        "SET GLOBAL ...",
        {"probe": {"read_only": 0}},
    )
    assert state.run_status == "ok" and state.ended is not None and state.order == [("s/stop writes", "db1")]


def test_every_record_is_synced_before_the_call_returns(jdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real = store._fdatasync

    def spy(fd: int) -> None:
        real(fd)
        synced.append(os.fstat(fd).st_size)

    monkeypatch.setattr(store, "_fdatasync", spy)
    j = Journal.create(jdir, "r1", HEADER)
    j.intent("s/a", "db1", "d", attempt=1)
    path = jdir / "r1" / "journal.jsonl"
    assert synced[-1] == path.stat().st_size == len(path.read_bytes())  # all bytes covered by a sync
    with open(path, "rb") as other:  # visible through another descriptor
        assert other.read().count(b"\n") == 2
    j.close()


def test_modes_are_private_whatever_the_umask(jdir: Path) -> None:
    old = os.umask(0o022)
    try:
        Journal.create(jdir, "r1", HEADER).close()
        RunLock(jdir, "r1", ["db1"]).__enter__().release()
    finally:
        os.umask(old)
    assert stat.S_IMODE((jdir / "r1").stat().st_mode) == 0o700
    assert stat.S_IMODE((jdir / "r1" / "journal.jsonl").stat().st_mode) == 0o600
    assert stat.S_IMODE((jdir / "r1" / "lock").stat().st_mode) == 0o600


def test_a_run_is_created_once(jdir: Path) -> None:
    Journal.create(jdir, "r1", HEADER).close()
    with pytest.raises(JournalError, match="already exists"):
        Journal.create(jdir, "r1", HEADER)


def test_lock_may_come_before_create(jdir: Path) -> None:
    with RunLock(jdir, "r1", ["db1"]), Journal.create(jdir, "r1", HEADER) as j:
        assert j.event("run_start") == 1


def test_reserved_fields_are_refused(jdir: Path) -> None:
    with pytest.raises(ValueError):
        Journal.create(jdir, "r1", {"seq": 5})
    with Journal.create(jdir, "r2", HEADER) as j, pytest.raises(ValueError):
        j.event("stage_start", ts="yesterday")


def test_closed_journal_refuses_appends(jdir: Path) -> None:
    j = Journal.create(jdir, "r1", HEADER)
    j.close()
    j.close()
    with pytest.raises(JournalError, match="closed"):
        j.event("x")


def test_open_continues_sequence_numbers(jdir: Path) -> None:
    with Journal.create(jdir, "r1", HEADER) as j:
        j.intent("s/a", "db1", "d", attempt=1)
    with Journal.open(jdir, "r1") as j:
        assert j.last_seq == 1
        assert j.event("resume_start") == 2
    assert [r["seq"] for r in lines_of(jdir / "r1" / "journal.jsonl")] == [0, 1, 2]


def test_outcome_must_close_the_open_attempt(jdir: Path) -> None:
    with Journal.create(jdir, "r1", HEADER) as j:
        seq = j.intent("s/a", "db1", "d", attempt=1)
        with pytest.raises(ValueError):
            j.outcome(seq, "s/a", "db2", "ok", changed=False, registered=None, duration=0)
        with pytest.raises(ValueError):
            j.outcome(seq, "s/a", "db1", "done", changed=False, registered=None, duration=0)
        j.outcome(seq, "s/a", "db1", "ok", changed=False, registered=None, duration=0)
    with Journal.open(jdir, "r1") as j:  # after reopening, an in-doubt intent can still be closed
        seq = j.intent("s/b", "db1", "d", attempt=1)
    with Journal.open(jdir, "r1") as j:
        j.outcome(seq, "s/b", "db1", "ok", changed=False, registered=None, duration=0)


def test_non_json_types_are_serialised(jdir: Path) -> None:
    registered: dict[Any, Any] = {
        "sum": Decimal("12.50"),
        "count": Decimal(3),
        "exact": Decimal("0.1000000000000000000000000001"),
        "at": datetime(2026, 11, 22, 3, 15, tzinfo=UTC),
        "day": date(2026, 11, 22),
        "lag": timedelta(seconds=90),
        "text": b"caf\xc3\xa9",
        "blob": b"\x00\xff",
        "tags": {"b", "a"},
        "status": Status.OK,
        "path": Path("/var/lib/mysql"),
        (1, 2): "tuple key",
        "other": object(),
    }
    with Journal.create(jdir, "r1", HEADER) as j:
        run_step(j, "s/a", "db1")
        seq = j.intent("s/b", "db1", "d", attempt=1)
        j.outcome(seq, "s/b", "db1", "ok", changed=False, registered=registered, duration=0)
    got = registered_of(read_journal(jdir, "r1"), "s/b", "db1")
    assert got["sum"] == 12.5 and got["count"] == 3 and got["exact"] == "0.1000000000000000000000000001"
    assert got["at"] == "2026-11-22T03:15:00+00:00" and got["day"] == "2026-11-22" and got["lag"] == 90.0
    assert got["text"] == "café" and got["blob"] == "00ff" and got["tags"] == ["a", "b"]
    assert got["status"] == "ok" and got["path"] == "/var/lib/mysql" and got["(1, 2)"] == "tuple key"
    assert got["other"].startswith("<object object")


def test_secrets_never_reach_the_file(jdir: Path) -> None:
    Secret("hunter2pass")
    with Journal.create(
        jdir, "r1", {**HEADER, "extra_vars": {"db_password": "hunter2pass", "x": Secret("hunter2pass")}}
    ) as j:
        seq = j.intent("s/a", "db1", "d", attempt=1, extra={"cmd": "mysql -phunter2pass"})
        j.outcome(
            seq,
            "s/a",
            "db1",
            "failed",
            changed=False,
            duration=0.2,
            registered={
                "stdout": "login with hunter2pass",
                "password": "other-value",
                "raw": b"hunter2pass",
                "rows": [{"PASSWORD('hunter2pass')": "*AB12"}],
                "set": {"hunter2pass"},
            },
            msg="Access denied for hunter2pass",
            evidence="mysql -uroot -phunter2pass",
            undo={"pw": "hunter2pass"},
        )
        j.event("operator_decision", note="hunter2pass")
    text = (jdir / "r1" / "journal.jsonl").read_text()
    assert "hunter2pass" not in text and "other-value" not in text
    assert MASK in text
    state = read_journal(jdir, "r1")  # still valid JSON after masking
    assert registered_of(state, "s/a", "db1")["password"] == MASK


def test_an_intent_of_a_step_that_changes_nothing_is_not_waited_for_and_the_next_sync_covers_it(
        jdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import engine.journal.store as store

    synced: list[int] = []  # the file size each fdatasync covered
    monkeypatch.setattr(store, "_fdatasync", lambda fd: synced.append(os.fstat(fd).st_size))
    with Journal.create(jdir, "r1", HEADER) as j:
        synced.clear()
        quiet = j.intent("s/select", "db1", "d", attempt=1, durable=False)
        assert synced == []  # written, not waited for
        j.outcome(quiet, "s/select", "db1", "ok", changed=False, registered={}, duration=0.1)
        size = (jdir / "r1" / "journal.jsonl").stat().st_size
        j.intent("s/change", "db1", "d", attempt=1)  # the write-ahead of a side effect
        assert len(synced) == 1 and synced[0] > size  # one sync, covering the quiet records too
    assert [r["step"] for r in lines_of(jdir / "r1" / "journal.jsonl") if r["type"] == "intent"] == ["s/select", "s/change"]


@pytest.mark.parametrize("secret", ["hunter2pass", "s3cr,t:1", "true", "x\"quoted\"y", "back\\slash", "tab\tsep", "12.5"])
def test_the_fast_encoding_masks_exactly_what_the_walk_masks(secret: str) -> None:
    from engine.journal.encoding import encode, walk_encode
    from engine.secrets import MASKER

    Secret(secret)
    try:
        records = [
            {"stdout": f"login with {secret}\n", "rc": 0, "changed": True, "n": 12.5},
            {"rows": [{f"PASSWORD('{secret}')": "*AB12", "v": secret}], "flag": True},
            {"stdout_lines": ["a", secret, f"{secret}{secret}"], "raw": secret.encode(), "when": date(2026, 11, 22)},
            {"registered": {"api_token": "plain-but-secret-key", "x": None}},
            {"registered": {"password\n": "under a key ending with a newline"}},
            {"weird": {1: secret, "set": {secret}, "s": Secret(secret)}},
            {"msg": f'quote " and backslash \\ and {secret}', "evidence": f"\u0001{secret}\u2028"},
        ]
        for fields in records:
            assert encode(fields) == walk_encode(fields), fields
    finally:
        MASKER.clear()


# --------------------------------------------------------------------------- analysis


def test_torn_last_line_is_ignored_and_cut_on_open(jdir: Path) -> None:
    with Journal.create(jdir, "r1", HEADER) as j:
        run_step(j, "s/a", "db1")
    path = jdir / "r1" / "journal.jsonl"
    with open(path, "ab") as f:
        f.write(b'{"type":"intent","seq":3,"ts":"2026-11-22T03:1')  # the crash hit mid-write
    state = read_journal(jdir, "r1")
    assert state.torn_tail and state.last_seq == 2 and state.step("s/a", "db1").status is StepVerdict.DONE  # type: ignore[union-attr]
    with Journal.open(jdir, "r1") as j:
        assert j.event("resume_start") == 4
    state = read_journal(jdir, "r1")
    assert not state.torn_tail
    torn = [e for e in state.events if e["kind"] == "torn_tail_discarded"]
    assert torn and torn[0]["fragment"].startswith('{"type":"intent"')


def test_invalid_json_at_the_very_end_is_a_torn_tail(jdir: Path) -> None:
    with Journal.create(jdir, "r1", HEADER) as j:
        run_step(j, "s/a", "db1")
    with open(jdir / "r1" / "journal.jsonl", "ab") as f:
        f.write(b"\x00" * 300)  # file size extended, data blocks never written (power loss)
    assert read_journal(jdir, "r1").torn_tail
    with Journal.open(jdir, "r1") as j:
        j.event("resume_start")
    assert b"\x00" not in (jdir / "r1" / "journal.jsonl").read_bytes()


def test_complete_last_record_without_newline_is_kept(jdir: Path) -> None:
    with Journal.create(jdir, "r1", HEADER) as j:
        run_step(j, "s/a", "db1")
    path = jdir / "r1" / "journal.jsonl"
    path.write_bytes(path.read_bytes()[:-1])
    state = read_journal(jdir, "r1")
    assert not state.torn_tail and state.last_seq == 2
    with Journal.open(jdir, "r1") as j:
        j.event("resume_start")
    assert [r["seq"] for r in lines_of(path)] == [0, 1, 2, 3]


def test_corrupt_middle_line_is_refused(jdir: Path) -> None:
    with Journal.create(jdir, "r1", HEADER) as j:
        run_step(j, "s/a", "db1")
        run_step(j, "s/b", "db1")
    path = jdir / "r1" / "journal.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    lines[2] = lines[2][:20] + "\n"
    path.write_text("".join(lines))
    with pytest.raises(JournalError) as err:
        read_journal(jdir, "r1")
    assert f"{path}:3" in str(err.value)


def test_out_of_order_seq_is_refused(jdir: Path) -> None:
    with Journal.create(jdir, "r1", HEADER) as j:
        run_step(j, "s/a", "db1")
    path = jdir / "r1" / "journal.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join([lines[0], lines[2], lines[1]]))
    with pytest.raises(JournalError, match="seq"):
        read_journal(jdir, "r1")


def test_missing_run_and_missing_header(jdir: Path) -> None:
    with pytest.raises(JournalError, match="no run r9"):
        read_journal(jdir, "r9")
    (jdir / "r2").mkdir(parents=True)
    (jdir / "r2" / "journal.jsonl").write_bytes(b'{"type":"head')
    with pytest.raises(JournalError, match="no header"):
        read_journal(jdir, "r2")


def test_intent_without_outcome_is_in_doubt(jdir: Path) -> None:
    with Journal.create(jdir, "r1", HEADER) as j:
        j.event("run_start")
        run_step(j, "s/a", "db1")
        j.intent("s/b", "db1", "d2", attempt=1)
        run_step(j, "s/b", "db2", "failed")
    state = read_journal(jdir, "r1")
    doubt = state.step("s/b", "db1")
    assert doubt is not None and doubt.status is StepVerdict.IN_DOUBT and doubt.outcome_status is None
    assert doubt.digest == "d2"
    assert [s.key for s in state.in_doubt()] == [("s/b", "db1", "do")]
    assert [s.key for s in state.failed()] == [("s/b", "db2", "do")]
    assert state.step("s/c", "db1") is None  # not started
    assert state.run_status == "interrupted" and state.ended is None


def test_retry_after_failure_is_a_new_attempt(jdir: Path) -> None:
    with Journal.create(jdir, "r1", HEADER) as j:
        run_step(j, "s/a", "db1", "unreachable")
        j.event("run_end", status="failed")
    assert read_journal(jdir, "r1").run_status == "failed"
    with Journal.open(jdir, "r1") as j:
        j.event("resume_start")
        seq = j.intent("s/a", "db1", "d1", attempt=2)
        mid = read_journal(jdir, "r1")
        assert mid.step("s/a", "db1").status is StepVerdict.IN_DOUBT  # type: ignore[union-attr]
        assert mid.run_status == "interrupted"  # work started after the run_end
        j.outcome(seq, "s/a", "db1", "changed", changed=True, registered={"rc": 0}, duration=1)
        j.event("run_end", status="ok")
    state = read_journal(jdir, "r1")
    step = state.step("s/a", "db1")
    assert step is not None and step.status is StepVerdict.DONE
    assert (step.attempt, step.intents, step.outcome_status) == (2, 2, "changed")
    assert state.run_status == "ok" and state.order == [("s/a", "db1")]


def test_undo_phase_is_tracked_separately(jdir: Path) -> None:
    with Journal.create(jdir, "r1", HEADER) as j:
        run_step(j, "s/a", "db1", "changed", undo={"read_only": 0})
        j.event("rollback_start")
        run_step(j, "s/a", "db1", "changed", phase="undo")
    state = read_journal(jdir, "r1")
    # undone is not done: resume runs it again (it used to read DONE and be skipped)
    assert state.step("s/a", "db1").status is StepVerdict.UNDONE  # type: ignore[union-attr]
    assert state.step("s/a", "db1", "undo").status is StepVerdict.DONE  # type: ignore[union-attr]
    assert state.done_with_undo() == [] and [s.step for s in state.undone()] == ["s/a"]
    with pytest.raises(ValueError):
        Journal.open(jdir, "r1").intent("s/a", "db1", "d", attempt=1, phase="redo")


def test_done_with_undo_newest_first(jdir: Path) -> None:
    with Journal.create(jdir, "r1", HEADER) as j:
        run_step(j, "s/a", "db1", "changed", undo={"n": 1})
        run_step(j, "s/b", "db1", "ok")  # nothing to undo
        run_step(j, "s/c", "db1", "changed", undo={"n": 3})
        run_step(j, "s/d", "db2", "changed", undo={"n": 4})
        run_step(j, "s/e", "db2", "failed", undo={"n": 5})  # a failed loop step's changed items: undone too
        run_step(j, "s/d", "db2", "changed", phase="undo")  # already undone
        seq = j.intent("s/c", "db1", "d", attempt=1, phase="undo")
        j.outcome(seq, "s/c", "db1", "failed", changed=False, registered=None, duration=0, phase="undo")
    state: JournalState = read_journal(jdir, "r1")
    assert [(s.step, s.undo) for s in state.done_with_undo()] == [("s/e", {"n": 5}), ("s/c", {"n": 3}), ("s/a", {"n": 1})]
    c = state.step("s/c", "db1")
    assert c is not None and state.undo_attempt(c).status is StepVerdict.FAILED  # type: ignore[union-attr]
    assert state.order == [("s/a", "db1"), ("s/b", "db1"), ("s/c", "db1"), ("s/d", "db2")]


def test_undone_then_redone_needs_undo_again(jdir: Path) -> None:
    with Journal.create(jdir, "r1", HEADER) as j:
        run_step(j, "s/a", "db1", "changed", undo={"n": 1})
        run_step(j, "s/a", "db1", "changed", phase="undo")
        run_step(j, "s/a", "db1", "changed", undo={"n": 2})
    assert [s.undo for s in read_journal(jdir, "r1").done_with_undo()] == [{"n": 2}]


# --------------------------------------------------------------------------- listing runs


def test_list_runs(jdir: Path) -> None:
    with Journal.create(jdir, "20261122-010000-aaaa", {"runbook": {"path": "a.yml", "digest": "x"}}) as j:
        j.event("run_start")
        run_step(j, "s/a", "db1")
        run_step(j, "s/b", "db1", "failed")
        j.event("run_end", status="failed")
    with Journal.create(jdir, "20261122-020000-bbbb", {"runbook": "b.yml"}) as j:
        j.event("run_start")
        j.intent("s/a", "db1", "d", attempt=1)
    (jdir / "20261122-000000-cccc").mkdir()
    (jdir / "20261122-000000-cccc" / "journal.jsonl").write_text('garbage\n{"type":"header","seq":0}\n')
    (jdir / "20261122-030000-dddd").mkdir()  # lock taken, journal never created
    (jdir / "notes.txt").write_text("not a run")

    runs = list_runs(jdir)
    assert [r.run_id for r in runs] == [
        "20261122-000000-cccc",
        "20261122-010000-aaaa",
        "20261122-020000-bbbb",
        "20261122-030000-dddd",
    ]
    bad, first, second, empty = runs
    assert bad.status == "unreadable" and "corrupt" in bad.note
    assert (first.runbook, first.status, first.done, first.failed, first.in_doubt) == ("a.yml", "failed", 1, 1, 0)
    assert first.duration is not None and first.duration >= 0
    assert (second.runbook, second.status, second.in_doubt) == ("b.yml", "interrupted", 1)
    assert empty.status == "unreadable" and "no journal" in empty.note
    with RunLock(jdir, "20261122-020000-bbbb", ["db1"]):
        assert list_runs(jdir)[2].status == "running"
    assert list_runs(jdir / "nowhere") == []


# --------------------------------------------------------------------------- locks

HOLDER = """
import sys
from pathlib import Path
from engine.journal import RunLock
lock = RunLock(Path(sys.argv[1]), sys.argv[2], sys.argv[3].split(","))
lock.acquire()
print("locked", flush=True)
sys.stdin.read()  # hold until the test closes stdin or kills us
"""


def hold_lock(jdir: Path, run_id: str, hosts: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(jdir), run_id, hosts],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def test_second_process_on_the_same_run_is_refused(jdir: Path) -> None:
    proc = hold_lock(jdir, "r1", "db1")
    try:
        with pytest.raises(RunLocked) as err:
            RunLock(jdir, "r1", ["db1"]).acquire()
        assert f"process {proc.pid} on {socket.gethostname()}" in str(err.value)
    finally:
        proc.kill()
        proc.wait()
    with RunLock(jdir, "r1", ["db1"]) as lock:  # the dead process's lock freed itself
        assert lock.held
        assert json.loads((jdir / "r1" / "lock").read_text())["pid"] == os.getpid()


def test_other_live_run_on_a_common_host_is_refused(jdir: Path) -> None:
    proc = hold_lock(jdir, "r1", "db1,db2")
    try:
        with pytest.raises(RunLocked) as err:
            RunLock(jdir, "r2", ["db2", "db3"]).acquire()
        assert "r1" in err.value.message and "db2" in err.value.message and "db3" not in err.value.message
        with RunLock(jdir, "r3", ["db3"]):  # other hosts: fine
            pass
    finally:
        proc.stdin.close()  # type: ignore[union-attr]
        proc.wait()


def test_stale_lock_of_a_dead_process_is_ignored(jdir: Path) -> None:
    proc = hold_lock(jdir, "r1", "db1")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert json.loads((jdir / "r1" / "lock").read_text())["hosts"] == ["db1"]  # file left behind
    with RunLock(jdir, "r2", ["db1"]) as lock:  # the dead run's hosts do not count
        assert lock.held
    with RunLock(jdir, "r1", ["db1"]) as lock:  # nor does its lock on its own run
        assert lock.held


def test_same_process_twice_is_refused(jdir: Path) -> None:
    with RunLock(jdir, "r1", ["db1"]):
        with pytest.raises(RunLocked, match="already running"):
            RunLock(jdir, "r1", ["db1"]).acquire()
        with pytest.raises(RunLocked, match="db1"):
            RunLock(jdir, "r2", ["db1"]).acquire()


@pytest.fixture
def lock_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "hostlocks"
    root.mkdir(mode=0o700)
    monkeypatch.setenv("RUNBOOK_LOCK_DIR", str(root))
    return root


def host_lock(root: Path, host: str) -> Path:
    return root / (hashlib.sha1(host.encode()).hexdigest()[:16] + ".lock")


def test_a_symlink_planted_at_a_host_lock_is_not_followed(jdir: Path, lock_dir: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim.cnf"
    victim.write_text("precious\n")
    host_lock(lock_dir, "db1").symlink_to(victim)
    with pytest.raises(JournalError, match="symbolic link") as err:
        RunLock(jdir, "r1", ["db1"]).acquire()
    assert str(host_lock(lock_dir, "db1")) in err.value.message
    assert victim.read_text() == "precious\n"  # neither truncated nor written
    with RunLock(jdir, "r1", ["db2"]) as lock:  # the refused attempt held nothing
        assert lock.held


def test_a_symlink_planted_at_the_run_lock_is_not_followed(jdir: Path, lock_dir: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim.cnf"
    victim.write_text("precious\n")
    (jdir / "r1").mkdir(parents=True)
    (jdir / "r1" / "lock").symlink_to(victim)
    with pytest.raises(JournalError, match="symbolic link"):
        RunLock(jdir, "r1", ["db1"]).acquire()
    assert victim.read_text() == "precious\n"
    assert lock_holder(jdir, "r1") is None


def test_a_hard_link_or_a_fifo_at_a_host_lock_is_refused(jdir: Path, lock_dir: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim.cnf"
    victim.write_text("precious\n")
    os.link(victim, host_lock(lock_dir, "db1"))
    with pytest.raises(JournalError, match="not a plain file"):
        RunLock(jdir, "r1", ["db1"]).acquire()
    assert victim.read_text() == "precious\n"
    os.mkfifo(host_lock(lock_dir, "db2"))  # opening a FIFO would block
    with pytest.raises(JournalError, match="not a plain file"):
        RunLock(jdir, "r2", ["db2"]).acquire()


def test_a_lock_dir_others_can_write_is_refused(jdir: Path, lock_dir: Path) -> None:
    lock_dir.chmod(0o777)  # anyone could swap the lock files: the lock would hold nothing
    with pytest.raises(JournalError, match="writable by others") as err:
        RunLock(jdir, "r1", ["db1"]).acquire()
    assert "RUNBOOK_LOCK_DIR" in (err.value.hint or "")
    lock_dir.chmod(0o1777)  # ours and sticky: others cannot remove or rename our files
    with RunLock(jdir, "r1", ["db1"]) as lock:
        assert lock.held


@pytest.mark.skipif(os.geteuid() != 0, reason="making a directory another user's needs root")
def test_a_lock_dir_of_another_user_is_refused(jdir: Path, lock_dir: Path) -> None:
    lock_dir.chmod(0o1777)
    os.chown(lock_dir, 65534, 65534)  # nobody's world-writable dir, like a planted /run/lock/runbook
    with pytest.raises(JournalError, match="owned by uid 65534"):
        RunLock(jdir, "r1", ["db1"]).acquire()


def test_an_existing_lock_file_is_not_truncated_before_it_is_checked(jdir: Path, lock_dir: Path) -> None:
    path = host_lock(lock_dir, "db1")
    path.write_text("x" * 1000)
    path.chmod(0o600)
    with RunLock(jdir, "r1", ["db1"]):
        assert json.loads(path.read_text())["run_id"] == "r1"  # ours: rewritten whole
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


# --------------------------------------------------------------------------- concurrency


def test_concurrent_appends_from_eight_threads(jdir: Path) -> None:
    j = Journal.create(jdir, "r1", HEADER)
    seqs: list[list[int]] = [[] for _ in range(8)]

    def work(n: int) -> None:
        for i in range(50):
            seq = j.intent(f"s/step{i}", f"db{n}", "d" * 64, attempt=1)
            seqs[n].append(seq)
            seqs[n].append(
                j.outcome(
                    seq, f"s/step{i}", f"db{n}", "ok", changed=False, registered={"rows": list(range(i))}, duration=0.01
                )
            )

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    j.close()
    records = lines_of(jdir / "r1" / "journal.jsonl")
    file_seqs = [r["seq"] for r in records]
    assert file_seqs == list(range(801))  # unique, increasing, in file order
    for own in seqs:
        assert own == sorted(own)
    state = read_journal(jdir, "r1")
    assert len(state.done()) == 400 and not state.in_doubt() and not state.warnings


def test_timestamp_reads_as_isoformat_writes_it() -> None:
    """now() formats the second once per second: the text must stay what
    datetime.now(UTC).isoformat(timespec="microseconds") writes (readers parse it)."""
    from datetime import UTC, datetime

    from engine.journal.layout import now

    before = datetime.now(UTC)
    stamps = [now() for _ in range(1000)]
    after = datetime.now(UTC)
    for s in stamps:
        assert len(s) == len(before.isoformat(timespec="microseconds")) and s.endswith("+00:00")
        assert before.replace(microsecond=0) <= datetime.fromisoformat(s) <= after
    assert stamps == sorted(stamps)
