"""The JSON report: everything the journal says about a run, for tools and tickets.

Top-level keys: ``format``/``version``, ``run``, ``totals``, ``host_totals``, ``stages``,
``steps`` (with their registered results and evidence), ``verification``, ``throughput``,
``recovery`` (crash-recovery phases of ``innodb_recovery`` steps), ``commands`` (play as
started, resumes, rollbacks; -e secrets masked), ``sessions_killed`` (user@host, by the fence),
``rows_only_in_snapshot`` (rows written after the backup whose version lives only in the
snapshot, per table, with how they were counted), ``events`` and the journal ``header``.

```python
data = json.loads(render_json(build_model(state)))
failed = [s for s in data["steps"] if s["status"] == "failed"]
```
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from engine.report.model import ReportModel
from engine.report.recovery import recovery_data
from engine.report.text import masked
from engine.secrets import MASKER

FORMAT = "runbook-report"
VERSION = 1


def report_data(model: ReportModel) -> dict[str, Any]:
    """The report as plain, masked JSON data."""
    stages = []
    for stage in model.stages:
        stages.append({**asdict(stage), "overrun": stage.overrun})
    steps = [{"key": row.key, **asdict(row)} for row in model.steps]
    data = {
        "format": FORMAT,
        "version": VERSION,
        "run": asdict(model.run),
        "totals": model.totals,
        "host_totals": model.host_totals,
        "stages": stages,
        "steps": steps,
        "verification": [asdict(c) for c in model.checks],
        "throughput": [asdict(t) for t in model.throughput],
        "recovery": recovery_data(model),
        "events": list(model.events),
        "todo": list(model.todo),
        "decisions": [asdict(d) for d in model.decisions],
        "commands": list(model.commands),
        "sessions_killed": [asdict(k) for k in model.killed],
        "rows_only_in_snapshot": {"tables": [asdict(t) for t in model.left_in_snapshot],
                                  "rows": sum(t.rows or 0 for t in model.left_in_snapshot if not t.swapped_back),
                                  "how": model.left_how},
        "header": model.header,
    }
    return masked(data)  # type: ignore[no-any-return]


def render_json(model: ReportModel) -> str:
    """Indented JSON; secrets masked in the data and once more in the text."""
    text = json.dumps(report_data(model), indent=2, ensure_ascii=False, allow_nan=False)
    return MASKER.text(text) + "\n"
