"""A fence record never outlives its undo (on a private MariaDB: ``fence_db``).

``stop_writes`` shares what this run's fence did (``ctx.share(FENCE_KEY, …)``, journaled) so
that ``resume_writes`` puts back exactly the state before it. A rollback that undoes the fence
must take that record away too: otherwise, after ``runbook rollback``, someone setting
read_only by hand (a standby, a maintenance) and ``runbook resume``, the resumed run took the
hand-set read_only for its own fence and ``resume_writes`` silently reopened it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cliutil import cli_in as cli
from tests.cliutil import only_run
from tests.integration.fence_helpers import Db
from tests.integration.test_fence import inventory, runbook

pytestmark = pytest.mark.integration


def shared_fence(home: Path, run_id: str) -> list[object]:
    """The fence records the run's journal shared, in order (None: cleared)."""
    lines = [json.loads(line) for line in (home / run_id / "journal.jsonl").read_text().splitlines() if line.strip()]
    return [e.get("value") for e in lines if e.get("kind") == "run_fact" and e.get("key") == "fence"]


def test_a_read_only_set_by_hand_after_a_rollback_is_not_reopened_by_resume(tmp_path: Path, fence_db: Db) -> None:
    inv = inventory(tmp_path / "inv.yml", fence_db.inst)
    runbook(tmp_path / "rb.yml", "{name: Fence, stop_writes: {}}", "{name: Reopen, resume_writes: {}}")
    res = cli("play", "rb.yml", "-i", str(inv), cwd=tmp_path)
    assert res.returncode == 0 and fence_db.read_only() == 0, res.stdout + res.stderr
    run_id = only_run(tmp_path)

    back = cli("rollback", run_id, "--yes", cwd=tmp_path)
    assert back.returncode == 0 and fence_db.read_only() == 0, back.stdout + back.stderr
    # The undo of the fence took its record away, in the journal.
    assert shared_fence(tmp_path / "home", run_id)[-1] is None

    fence_db.sql("SET GLOBAL read_only = ON")  # by hand: not this run's
    again = cli("resume", run_id, "--yes", cwd=tmp_path)
    out = again.stdout + again.stderr
    assert again.returncode == 0, out
    assert "read_only was ON before this run: resume_writes leaves it ON" in out, out
    assert fence_db.read_only() == 1, out  # left alone, never silently reopened
