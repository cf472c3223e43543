"""Crash-recovery phases in the reports (engine.report.recovery), from what innodb_recovery registers."""

from __future__ import annotations

import json
from dataclasses import replace

from engine.report.html import render_html
from engine.report.json_report import render_json
from engine.report.markdown import render_markdown
from engine.report.model import STATUSES, ReportModel, RunInfo, StepRow
from engine.report.recovery import recoveries

REGISTERED = {
    "crashed": True, "ready": True, "checkpoint_lsn": 44878, "recovered_to_lsn": 39521096, "rolled_back_transactions": 1,
    "seconds": 3.48, "fatal": None,
    "phases": [
        {"name": "analysis", "started": "2026-11-30T04:54:49", "ended": "2026-11-30T04:54:50", "seconds": 1.0},
        {"name": "redo", "started": "2026-11-30T04:54:50", "ended": "2026-11-30T04:54:50", "seconds": 0.0},
        {"name": "undo", "started": "2026-11-30T04:54:50", "ended": "2026-11-30T04:54:53", "seconds": 3.0},
    ],
}


def model(registered: dict | None) -> ReportModel:  # type: ignore[type-arg]
    run = RunInfo(run_id="20261130-045448-6b66", runbook="runbooks/crash-recovery.yml", runbook_name="Crash recovery",
                  status="succeeded", operator="dba", control_host="ctl", hosts=("db1",), check_mode=False,
                  started="2026-11-30T04:54:48+00:00", ended="2026-11-30T04:54:53+00:00", duration=5.4, budget=None,
                  over_budget=False, journal="j", torn_tail=False, warnings=())
    row = StepRow(stage="recover", step="Watch InnoDB crash recovery", host="db1", phase="do", status="ok", duration=3.5,
                  attempts=1, msg="crash recovery finished", evidence="", started=None, ended=None, changed=False,
                  registered=registered)
    other = replace(row, step="Server facts", registered={"rows": 5, "tables": {}})
    return ReportModel(run=run, header={}, stages=(), steps=(row, other), checks=(), throughput=(),
                       totals=dict.fromkeys(STATUSES, 0), host_totals={}, events=())


def test_phases_with_their_offsets() -> None:
    [r] = recoveries(model(REGISTERED))
    assert (r.host, r.crashed, r.checkpoint_lsn, r.recovered_to_lsn) == ("db1", True, 44878, 39521096)
    assert [(p.name, p.offset, p.seconds) for p in r.phases] == [("analysis", 0.0, 1.0), ("redo", 1.0, 0.0), ("undo", 1.0, 3.0)]
    assert r.span == 4.0


def test_every_format_shows_them() -> None:
    m = model(REGISTERED)
    html = render_html(m)
    assert "tl-row recovery" in html and "checkpoint LSN <b>44878</b>" in html
    assert 'class="bar phase-undo" style="left:25.0%;width:75.0%"' in html
    md = render_markdown(m)
    assert "## Crash recovery" in md and "| undo | 2026-11-30T04:54:50 | 2026-11-30T04:54:53 | 3 |" in md
    data = json.loads(render_json(m))
    assert [p["name"] for p in data["recovery"][0]["phases"]] == ["analysis", "redo", "undo"]


def test_no_recovery_no_section() -> None:
    m = model(None)
    assert recoveries(m) == [] and "## Crash recovery" not in render_markdown(m)
    assert "tl-row recovery" not in render_html(m) and json.loads(render_json(m))["recovery"] == []
