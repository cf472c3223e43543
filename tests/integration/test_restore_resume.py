"""Exactly once across kills: SIGKILL the restore before and after every batch commit of a
small restore, and at random instants of a larger one, then run the step again (what
``runbook resume`` does with this idempotent step): the tables equal the source and the
progress table holds every batch once. A connection KILLed mid-batch redoes that batch once."""

from __future__ import annotations

import os
import random
import signal
import uuid
from collections.abc import Iterator

import pytest

from engine.model import Status
from tests.integration.restore_helpers import checksums, dump, execute, progress_rows, query, restore, restore_in_child

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TABLES = ["withpk", "nopk"]


@pytest.fixture(scope="module")
def source() -> Iterator[str]:
    name = f"rbt_ksrc_{uuid.uuid4().hex[:8]}"
    execute(None, f"CREATE DATABASE `{name}`")
    execute(name, "CREATE TABLE withpk (id INT PRIMARY KEY, v VARCHAR(40), n DOUBLE);"
                  "CREATE TABLE nopk (a INT, v VARCHAR(40));"
                  "INSERT INTO withpk SELECT seq, CONCAT('row ', seq, ' ''q'' \\\\ \\n'), seq / 7 FROM seq_1_to_400;"
                  "INSERT INTO nopk SELECT seq % 50, CONCAT('dup ', seq % 50) FROM seq_1_to_400;")
    yield name
    execute(None, f"DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture
def target() -> Iterator[str]:
    name = f"rbt_kdst_{uuid.uuid4().hex[:8]}"
    yield name
    execute(None, f"DROP DATABASE IF EXISTS `{name}`")


def _args(path: str, target: str, parallel: int = 2) -> dict[str, object]:
    return {"file": path, "schema": target, "schema_mismatch": "create_missing", "file_on": "control", "batch_bytes": 4096,
            "parallel": parallel}


def _committed(run_id: str) -> int:
    try:
        return int(query("SELECT COUNT(*) FROM _runbook.restore_progress WHERE run_id = %s AND batch >= 0", [run_id])[0][0])
    except Exception:  # the progress table may not exist yet
        return 0


def _batches(run_id: str) -> list[tuple[object, ...]]:
    rows = progress_rows(run_id)
    assert len(rows) == len({(r[0], r[1], r[2]) for r in rows})  # the primary key says so; belt and braces
    return rows


@pytest.mark.parametrize("batch_bytes", [4096, 9000])
def test_kill_at_every_batch_boundary(source: str, tmp_path: str, batch_bytes: int) -> None:
    """4096: one INSERT (≈ 4 KB) per batch; 9000: batches joining two INSERTs, read as ranges of the dump."""
    path = dump(source, os.path.join(tmp_path, "d.sql"), "--net-buffer-length=4096")

    def args(path: str, target: str, parallel: int = 2) -> dict[str, object]:
        return dict(_args(path, target, parallel), batch_bytes=batch_bytes)
    expected = checksums(source, TABLES)
    # the uninterrupted restore: how many batches there are
    ref_target = f"rbt_kref_{uuid.uuid4().hex[:8]}"
    ref_run = "t" + uuid.uuid4().hex[:12]
    try:
        ref = restore(args(path, ref_target), run_id=ref_run)
        assert ref.status is Status.CHANGED, ref.msg
        n_batches = len(_batches(ref_run))
        assert n_batches >= (6 if batch_bytes == 4096 else 3)
        if batch_bytes == 9000:  # the case this parameter is for: merged batches read from the dump
            from engine.actions.restore.source import DumpSource

            src = DumpSource({"file": path, "file_on": "control"}, None)
            try:
                src.load(batch_bytes, 8 << 20)
                assert src.index is not None
                assert any(len(b.segments) > 1 and not any(side for side, _, _ in b.segments)
                           for t in src.index.tables.values() for b in t.batches)
            finally:
                src.close()
    finally:
        execute(None, f"DROP DATABASE IF EXISTS `{ref_target}`")
    for n in range(1, n_batches + 1):
        for when in ("before_commit", "after_commit"):
            target = f"rbt_kdst_{uuid.uuid4().hex[:8]}"
            run_id = "t" + uuid.uuid4().hex[:12]
            try:
                # one connection: the N-th batch to commit is the N-th batch started, so the boundary is exact
                child = restore_in_child(args(path, target, 1), run_id, {"RUNBOOK_FAULT_RESTORE_KILL": f"{when}:{n}"})
                assert child.returncode == -signal.SIGKILL, (when, n, child.stdout, child.stderr[-2000:])
                committed = len(_batches(run_id))
                assert committed == (n if when == "after_commit" else n - 1)
                res = restore(args(path, target), run_id=run_id)
                assert res.status is Status.CHANGED, (when, n, res.msg)
                assert checksums(target, TABLES) == expected, (when, n)
                rows = _batches(run_id)
                assert len(rows) == n_batches and sum(int(r[3]) for r in rows) == 800  # type: ignore[call-overload]
                assert sum(t["batches_resumed"] for t in res.data["tables"].values()) == committed
            finally:
                execute(None, f"DROP DATABASE IF EXISTS `{target}`")


def test_kill_at_random_instants(source: str, tmp_path: str, target: str) -> None:
    """A larger restore (the merge path: one row per statement) killed twice at seeded random batch
    boundaries, before or after a commit, with two workers loading."""
    big = f"rbt_kbig_{uuid.uuid4().hex[:8]}"
    execute(None, f"CREATE DATABASE `{big}`")
    try:
        execute(big, "CREATE TABLE withpk (id INT PRIMARY KEY, v VARCHAR(40), n DOUBLE);"
                     "CREATE TABLE nopk (a INT, v VARCHAR(40));"
                     "INSERT INTO withpk SELECT seq, REPEAT('x', seq % 40), seq / 3 FROM seq_1_to_60000;"
                     "INSERT INTO nopk SELECT seq % 97, CONCAT('v', seq % 13) FROM seq_1_to_60000;")
        path = dump(big, os.path.join(tmp_path, "big.sql"), "--skip-extended-insert")
        expected = checksums(big, TABLES)
    finally:
        execute(None, f"DROP DATABASE IF EXISTS `{big}`")
    run_id = "t" + uuid.uuid4().hex[:12]
    args = dict(_args(path, target), batch_bytes=65536)
    rng = random.Random(8)
    seen = 0
    for _ in range(2):
        # A seeded random instant inside the load: before or after the commit of this process's
        # n-th batch (n >= 2, so something committed; parallel workers make the rest of the
        # state at that instant what it happens to be). Never a sleep: a quiet machine would
        # finish before a timed kill.
        when, n = rng.choice(("before_commit", "after_commit")), rng.randint(2, 8)
        child = restore_in_child(args, run_id, {"RUNBOOK_FAULT_RESTORE_KILL": f"{when}:{n}"})
        assert child.returncode == -signal.SIGKILL, (when, n, child.stdout, child.stderr[-2000:])  # killed before it could finish
        assert _committed(run_id) > seen
        seen = _committed(run_id)
    res = restore(args, run_id=run_id)
    assert res.status is Status.CHANGED, res.msg
    assert sum(t["batches_resumed"] for t in res.data["tables"].values()) == seen > 0
    assert checksums(target, TABLES) == expected
    rows = _batches(run_id)
    assert sum(int(r[3]) for r in rows) == 120000  # type: ignore[call-overload]


def test_connection_killed_mid_batch(source: str, tmp_path: str, target: str, monkeypatch: pytest.MonkeyPatch) -> None:
    path = dump(source, os.path.join(tmp_path, "d.sql"), "--net-buffer-length=4096")
    run_id = "t" + uuid.uuid4().hex[:12]
    monkeypatch.setenv("RUNBOOK_FAULT_RESTORE_KILL_CONN", "2")
    res = restore(_args(path, target), run_id=run_id)
    assert res.status is Status.CHANGED, res.msg
    assert checksums(target, TABLES) == checksums(source, TABLES)
    rows = _batches(run_id)
    assert sum(int(r[3]) for r in rows) == 800  # type: ignore[call-overload]
    assert query(f"SELECT COUNT(*) FROM `{target}`.nopk")[0][0] == 400
    assert sum(t["batches_redone"] for t in res.data["tables"].values()) == 1


def test_myisam_reloaded_whole_after_a_kill(tmp_path: str, target: str) -> None:
    """A MyISAM table cannot commit a batch with its progress row. Killed right after a commit it
    holds exactly its committed batches' rows: the resume goes on from there (a kill that left
    rows of an uncommitted batch empties and reloads it whole: test_restore_truth_load); into a
    table that had rows it is refused."""
    src = f"rbt_kmyi_{uuid.uuid4().hex[:8]}"
    execute(None, f"CREATE DATABASE `{src}`")
    try:
        execute(src, "CREATE TABLE m (id INT PRIMARY KEY, v VARCHAR(40)) ENGINE=MyISAM;"
                     "INSERT INTO m SELECT seq, CONCAT('m', seq) FROM seq_1_to_600")
        path = dump(src, os.path.join(tmp_path, "m.sql"), "--net-buffer-length=4096")
        expected = checksums(src, ["m"])
    finally:
        execute(None, f"DROP DATABASE IF EXISTS `{src}`")
    run_id = "t" + uuid.uuid4().hex[:12]
    child = restore_in_child(_args(path, target, 1), run_id, {"RUNBOOK_FAULT_RESTORE_KILL": "after_commit:2"})
    assert child.returncode == -signal.SIGKILL
    assert 0 < query(f"SELECT COUNT(*) FROM `{target}`.m")[0][0] < 600
    res = restore(_args(path, target), run_id=run_id)
    assert res.status is Status.CHANGED, res.msg
    assert checksums(target, ["m"]) == expected
    assert res.data["tables"]["m"]["batches_resumed"] == 2  # no row beyond the committed batches: it goes on
    with pytest.raises(Exception) as exc:
        restore(_args(path, target))  # another run: m has rows it did not bring
    assert "MyISAM" in str(exc.value) and "exactly-once" in str(exc.value)


def test_resume_refuses_another_dump(source: str, tmp_path: str, target: str) -> None:
    path = dump(source, os.path.join(tmp_path, "d.sql"), "--net-buffer-length=4096")
    run_id = "t" + uuid.uuid4().hex[:12]
    child = restore_in_child(_args(path, target, 1), run_id, {"RUNBOOK_FAULT_RESTORE_KILL": "after_commit:1"})
    assert child.returncode == -signal.SIGKILL
    before = checksums(target, TABLES)
    execute(source, "UPDATE withpk SET v = 'changed' WHERE id = 7")
    try:
        dump(source, path, "--net-buffer-length=4096")
        with pytest.raises(Exception) as exc:
            restore(_args(path, target), run_id=run_id)
    finally:
        execute(source, "UPDATE withpk SET v = CONCAT('row ', id, ' ''q'' \\\\ \\n') WHERE id = 7")
    assert "began with another dump" in str(exc.value) and "nothing was written" in str(exc.value)
    assert checksums(target, TABLES) == before
