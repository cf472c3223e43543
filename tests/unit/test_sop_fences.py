"""The shipped SOPs fence the MySQL/Percona-safe way (issue 18 item 3): their own `stop_writes`
steps, rendered with the runbooks' defaults, run against the fake MySQL 8.0 of
tests/unit/mysql80.py (MySQL 8.0's answers, transcribed: no MySQL server runs here): read_only,
the application accounts locked, sessions killed — never super_read_only, which would stop the
snapshot and the restore that follow with ERROR 1290 — and the engine's account can still write.
Also: what every SOP must say and do about targets, steps and header tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.actions.resume_writes import ResumeWrites
from engine.actions.stop_writes import StopWrites
from engine.language.loader import load_runbook
from engine.model import Status, Step
from engine.templating.render import ENGINE, lazify
from tests.unit.mysql80 import Mysql80
from tests.unit.test_fence_mysql import changes, ctx_on

ROOT = Path(__file__).resolve().parents[2]
FENCING = ["emergency.yml", "assess-and-fence.yml"]   # fence, then snapshot/restore as the engine's account
SOPS = ["emergency.yml", "assess-and-fence.yml", "crash-recovery.yml", "drill.yml", "partial-restore.yml"]


def steps_of(name: str, action: str) -> list[Step]:
    rb = load_runbook(str(ROOT / "runbooks" / name)).runbook
    return [s for st in rb.stages for s in st.steps if s.action == action]


def rendered(name: str, step: Step) -> Any:
    rb = load_runbook(str(ROOT / "runbooks" / name)).runbook
    return ENGINE.render(step.args, dict(lazify(rb.vars), inventory_hostname="db1", run_id="t1"))


@pytest.mark.parametrize("name", FENCING)
def test_the_sop_fence_on_mysql_locks_kills_and_never_sets_super_read_only(name: str) -> None:
    (step,) = steps_of(name, "stop_writes")
    args = rendered(name, step)
    assert args.get("lock_accounts") is True and args.get("kill_connections") is True
    assert args.get("engine_must_write", True) is True  # a restore follows: the engine must write
    server = Mysql80()
    ctx = ctx_on(server)
    res = StopWrites(args, ctx).apply()
    assert res.status is Status.CHANGED, res.msg
    sent = changes(server)
    assert "SET GLOBAL read_only = ON" in sent and not any("super_read_only" in s for s in sent)
    assert server.read_only and not server.super_read_only
    assert any(s.startswith("ALTER USER 'app'@") and s.endswith("ACCOUNT LOCK") for s in server.sent)  # pools cannot reconnect
    assert any(s.startswith("KILL CONNECTION") for s in sent)
    assert res.data["locked"] and res.data["binlog"]["file"]  # the replay's end is registered
    # the engine's own write under the fence was probed: ERROR 1146 (table missing), not 1290
    assert any(s.startswith("DELETE FROM `_rb_fence_probe_") for s in server.sent)
    # reopen puts back exactly what was there: read_only OFF, the same accounts unlocked
    again = ResumeWrites({}, ctx).apply()
    assert again.status is Status.CHANGED, again.msg
    assert not server.read_only and sorted(again.data["unlocked"]) == sorted(res.data["locked"])


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "runbooks").glob("*.yml")))
def test_no_shipped_runbook_sets_super_read_only(name: str) -> None:
    doc = yaml.safe_load((ROOT / "runbooks" / name).read_text())
    for stage in doc["stages"]:
        for step in stage.get("steps", []):
            to = (step.get("resume_writes") or {}).get("to") or {}
            assert to.get("super_read_only") is not True, f"{name}: {step['name']}"
            assert "super_read_only" not in str(step.get("sql", "")).lower().replace("@@global.super_read_only", ""), step["name"]


@pytest.mark.parametrize("name", SOPS)
def test_every_step_is_commented_and_the_header_has_its_stage_table(name: str) -> None:
    text = (ROOT / "runbooks" / name).read_text()
    header = [ln for ln in text.splitlines() if ln.startswith("#")]
    assert any("stage" in ln and "budget" in ln and "changes data?" in ln for ln in header), f"{name}: no stage table"
    lines = text.splitlines()
    for i, ln in enumerate(lines):
        if ln.lstrip().startswith("- name:") and len(ln) - len(ln.lstrip()) >= 6:
            body = []
            for nxt in lines[i + 1:]:
                if nxt.lstrip().startswith("- name:"):
                    break
                body.append(nxt)
            assert any(b.strip().startswith("#") for b in body), f"{name}: step {ln.strip()} has no comment"


def test_no_sop_aims_at_every_host_and_drills_never_at_production() -> None:
    for name in SOPS:
        doc = yaml.safe_load((ROOT / "runbooks" / name).read_text())
        assert doc.get("targets") not in (None, "all", "*"), f"{name}: targets every host"
    drill = yaml.safe_load((ROOT / "runbooks" / "drill.yml").read_text())
    assert drill["targets"] == "{{ drill_hosts }}" and drill["vars"]["drill_hosts"] == "drill"
