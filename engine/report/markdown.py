"""The Markdown report: pastes into a ticket, a wiki page or a postmortem document.

Sections: the run, totals, stages against their budgets, problems (failed, unreachable and
in-doubt steps with their evidence), every step, verification results, restore throughput
and the run's events.

```markdown
# Runbook report: emergency restore
| Stage | Status | Started | Duration | Budget | |
|---|---|---|---|---|---|
| restore | failed | 2026-11-22 03:15:02 UTC | 7m12s | 5m00s | **over budget** by 2m12s |
```
"""

from __future__ import annotations

import json

import re
from typing import Any

from engine.report.recovery import recovery_markdown
from engine.report.model import STATUSES, ReportModel
from engine.report.text import count, event_details, fmt_duration, format_ts, number, printable
from engine.secrets import MASKER
from engine.language.sizes import format_size


def cell(value: Any) -> str:
    """Text safe inside a table cell: no pipes, no line breaks, no raw HTML."""
    text = printable(MASKER.text(str(value))) if value is not None else ""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = text.replace("\\", "\\\\").replace("|", "\\|").replace("`", "\\`")
    return "<br>".join(line.strip() for line in text.strip().splitlines()) or " "


def fence(text: str, lang: str = "text") -> str:
    """A fenced code block that the text itself cannot close."""
    text = printable(MASKER.text(text))
    runs = [len(m) for m in re.findall(r"`{3,}", text)]
    ticks = "`" * max([3, *(n + 1 for n in runs)])
    return f"{ticks}{lang}\n{text.rstrip()}\n{ticks}"


def _table(head: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return lines + [""]


def render_markdown(model: ReportModel) -> str:
    """The whole report as GitHub-flavoured Markdown."""
    run = model.run
    out = [f"# Runbook report: {cell(run.runbook_name or run.runbook or run.run_id)}", ""]
    who = f"{run.operator or '?'} on {run.control_host or '?'}"
    out += _table(
        ["", ""],
        [
            ["Run", run.run_id],
            ["Runbook", run.runbook or "—"],
            ["Status", run.status.upper()],
            ["Operator", who],
            ["Started", format_ts(run.started)],
            ["Ended", format_ts(run.ended)],
            ["Duration", fmt_duration(run.duration) + (f" (budget {fmt_duration(run.budget)} exceeded)"
                                                       if run.over_budget else "")],
            ["Hosts", ", ".join(run.hosts) or "—"],
            ["Check mode", "yes (nothing was changed)" if run.check_mode else "no"],
        ],
    )
    out += ["**Totals:** " + " · ".join(f"{model.totals[s]} {s}" for s in STATUSES), ""]
    if run.torn_tail or run.warnings:
        out += ["> **Journal warnings**"]
        if run.torn_tail:
            out += ["> - the last record was torn by a crash and ignored"]
        out += [f"> - {cell(w)}" for w in run.warnings] + [""]

    if model.commands:
        out += ["**Command line:**", ""] + [fence("\n".join(model.commands), "sh"), ""]

    out += ["## What the operator must still do", ""]
    out += [f"{i}. {cell(t)}" for i, t in enumerate(model.todo, 1)] or ["Nothing: the run finished, writes are not fenced, no snapshot or step in doubt is left."]
    out += [""]
    out += ["## Stages", ""]
    stage_rows = []
    for st in model.stages:
        note = ""
        if st.over_budget:
            note = "**over budget**" + (f" by {fmt_duration(st.overrun)}" if st.overrun else "")
        if st.spans > 1:
            note += f" ({st.spans} runs, resumed)"
        stage_rows.append([st.name, st.status, format_ts(st.started), fmt_duration(st.duration),
                           fmt_duration(st.budget), note.strip()])
    out += _table(["Stage", "Status", "Started", "Duration", "Budget", "Note"], stage_rows)

    problems = model.problems
    if problems:
        out += ["## Problems", ""]
        for row in problems:
            phase = " (undo)" if row.phase == "undo" else ""
            out += [f"### {cell(row.key)}{phase} on {cell(row.host)}: {row.status}", ""]
            if row.msg:
                out += [cell(row.msg), ""]
            if row.evidence:
                out += [fence(row.evidence), ""]

    out += ["## Steps", ""]
    out += _table(
        ["Stage", "Step", "Host", "Phase", "Status", "Attempts", "Duration", "Message"],
        [[r.stage, r.step, r.host, r.phase, r.status, r.attempts, fmt_duration(r.duration), r.msg]
         for r in model.steps],
    )
    if model.checks:
        out += ["## Verification", ""]
        out += _table(
            ["Stage", "Step", "Host", "Check", "Kind", "Table", "Result", "Count", "Detail"],
            [[c.stage, c.step, c.host, c.name, c.kind or "—", c.table or "—", c.status,
              "—" if c.count is None else c.count,
              c.detail + (f" — sample: {json.dumps(list(c.sample[:3]), default=str)}" if c.sample else "")]
             for c in model.checks],
        )
    if model.throughput:
        out += ["## Restore throughput", ""]
        out += _table(
            ["Stage", "Step", "Host", "Tables", "Rows", "Size", "Duration", "Rows/s", "Bytes/s"],
            [[t.stage, t.step, t.host, "—" if t.tables is None else t.tables, count(t.rows),
              "—" if t.bytes is None else format_size(t.bytes), fmt_duration(t.duration), number(t.rows_per_second),
              "—" if t.bytes_per_second is None else format_size(t.bytes_per_second) + "/s"]
             for t in model.throughput],
        )
        per_table = [(t, x) for t in model.throughput for x in t.per_table]
        if per_table:
            out += ["### Restore throughput per table", ""]
            out += _table(
                ["Step", "Host", "Table", "Status", "Rows", "Ignored", "Size", "Duration", "Rows/s"],
                [[t.step, t.host, x.table, x.status, count(x.rows), count(x.ignored),
                  "—" if x.bytes is None else format_size(x.bytes), fmt_duration(x.seconds), number(x.rows_per_second)]
                 for t, x in per_table],
            )
    if model.killed:
        out += ["## Sessions the fence killed", ""]
        out += _table(["Stage", "Step", "Host", "Session (user@host)", "Id"],
                      [[k.stage, k.step, k.host, k.who, "—" if k.id is None else k.id] for k in model.killed])
    if model.left_in_snapshot:
        live = [t for t in model.left_in_snapshot if not t.swapped_back]
        out += ["## Rows written after the backup, only in the snapshot", ""]
        out += [f"**{sum(t.rows or 0 for t in live):,} row(s)** live only in the snapshot: keep it until they are merged "
                "back (`runbook snapshots list`, never `snapshots drop` before). Counted: " + cell(model.left_how) + ".", ""]
        out += _table(["Step", "Host", "Table", "Snapshot", "Snapshot rows", "Keys not restored", "Versions replaced", "Only in snapshot"],
                      [[t.step, t.host, t.table, t.snapshot_schema, count(t.snapshot_rows), count(t.keys_not_restored),
                        count(t.versions_replaced), count(t.rows) + (" (swapped back by a rollback: live again)" if t.swapped_back else "")]
                       for t in model.left_in_snapshot])
    out += recovery_markdown(model)
    if model.decisions:
        out += ["## Confirmations and decisions", ""]
        out += _table(["Time", "Who", "Kind", "What", "Answer"],
                      [[format_ts(d.ts), d.who, d.kind, d.what, d.answer] for d in model.decisions])
    if model.events:
        out += ["## Events", ""]
        out += _table(["Time", "Event", "Details"],
                      [[format_ts(e.get("ts")), e.get("kind", ""), event_details(e)] for e in model.events])
    out += [f"_Journal: {cell(run.journal)}_", ""]
    return "\n".join(out)

