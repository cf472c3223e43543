"""The HTML report: one self-contained page for an incident postmortem.

No external asset, font or script: inline CSS only, so the file can be attached to a ticket
and opened offline years later. Sections: the run header, totals, a timeline of stages as
bars against their budgets (red past the budget), problems with their evidence, the step
table, verification results and restore throughput, then the run's events. Jinja2 escapes
every value (``autoescape=True``); every string was masked when the model was built.

```python
Path("report.html").write_text(render_html(build_model(state)))
```
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jinja2
from markupsafe import Markup

from engine.report.model import STATUSES, ReportModel, StageReport
from engine.report.recovery import recoveries
from engine.report.text import count, event_details, fmt_duration, format_ts, number, printable
from engine.language.sizes import format_size

_CSS = """
:root { --ok:#1a7f37; --changed:#9a6700; --skipped:#6e7781; --failed:#cf222e; --unreachable:#8250df;
  --doubt:#bc4c00; --ink:#1f2328; --muted:#59636e; --line:#d1d9e0; --soft:#f6f8fa; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 -apple-system,"Segoe UI",Helvetica,Arial,sans-serif; color:var(--ink); background:#fff; }
main { max-width:1180px; margin:0 auto; padding:24px 28px 48px; }
h1 { font-size:22px; margin:0 0 4px; } h2 { font-size:17px; margin:30px 0 10px; padding-bottom:4px; border-bottom:1px solid var(--line); }
code, pre, .mono { font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; font-size:12.5px; }
.sub { color:var(--muted); margin-bottom:14px; }
.meta { display:grid; grid-template-columns:repeat(4,minmax(0,1fr)); gap:10px 24px; background:var(--soft);
  border:1px solid var(--line); border-radius:8px; padding:14px 18px; }
.cmd { margin:10px 0; } .cmd .k { display:block; color:var(--muted); font-size:11.5px; text-transform:uppercase; letter-spacing:.04em; }
.cmd pre { white-space:pre-wrap; overflow-wrap:anywhere; margin:4px 0; }
.meta .k { display:block; color:var(--muted); font-size:11.5px; text-transform:uppercase; letter-spacing:.04em; }
.meta div b { font-weight:600; overflow-wrap:anywhere; }
.badge { display:inline-block; padding:1px 8px; border-radius:10px; font-size:12px; font-weight:600; color:#fff;
  white-space:nowrap; background:var(--skipped); }
.s-ok,.s-succeeded { background:var(--ok); } .s-changed { background:var(--changed); } .s-skipped { background:var(--skipped); }
.s-failed,.s-rollback-failed,.s-FAIL,.s-unreachable { background:var(--failed); } .s-unreachable { background:var(--unreachable); }
.s-in-doubt,.s-interrupted,.s-WARNING { background:var(--doubt); } .s-rolled-back { background:var(--unreachable); }
.s-PASS { background:var(--ok); }
.totals { display:flex; gap:10px; margin:14px 0 0; flex-wrap:wrap; }
.total { border:1px solid var(--line); border-radius:8px; padding:6px 14px; min-width:96px; }
.total b { font-size:20px; display:block; } .total span { color:var(--muted); font-size:12px; }
.total.hot { border-color:var(--failed); } .total.hot b { color:var(--failed); }
.warn { border-left:4px solid var(--doubt); background:#fff8f0; padding:8px 12px; margin:12px 0; }
.timeline { border:1px solid var(--line); border-radius:8px; padding:12px 16px 6px; }
.tl-row { display:grid; grid-template-columns:190px 1fr 230px; gap:14px; align-items:center; margin-bottom:10px; }
.tl-name { font-weight:600; overflow-wrap:anywhere; } .tl-name .badge { margin-left:6px; font-weight:500; }
.track { position:relative; height:20px; background:var(--soft); border:1px solid var(--line); border-radius:4px; }
.bar { position:absolute; left:0; top:0; bottom:0; border-radius:3px; background:#218bff; min-width:3px; }
.bar.within { background:#2da44e; } .bar.over { background:var(--failed); }
.budget { position:absolute; top:-5px; bottom:-5px; width:0; border-left:2px dashed var(--ink); }
.axis { position:relative; height:18px; border-top:1px solid var(--ink); font-size:11px; color:var(--muted); }
.axis span { position:absolute; top:2px; transform:translateX(-50%); white-space:nowrap; }
.axis span:first-child { transform:none; } .axis span:last-child { transform:translateX(-100%); }
.tl-when { font-size:11.5px; color:var(--muted); font-weight:400; }
.tl-fig { font-size:12.5px; color:var(--muted); } .tl-fig b { color:var(--ink); }
.over-budget { color:var(--failed); font-weight:700; }
.tl-row.recovery { border-top:1px dashed var(--line); padding-top:8px; } .phase-name { font-weight:500; padding-left:12px; }
.bar.phase-analysis { background:#8250df; } .bar.phase-redo { background:#bf8700; } .bar.phase-undo { background:#0969da; }
.legend { display:flex; gap:18px; font-size:12px; color:var(--muted); margin:4px 0 6px 204px; }
.legend i { display:inline-block; width:14px; height:10px; border-radius:2px; margin-right:5px; vertical-align:middle; }
table { border-collapse:collapse; width:100%; font-size:13px; }
th { text-align:left; font-weight:600; background:var(--soft); border-bottom:1px solid var(--line); padding:6px 8px; white-space:nowrap; }
td { border-bottom:1px solid #eaeef2; padding:5px 8px; vertical-align:top; overflow-wrap:anywhere; }
td.num { text-align:right; white-space:nowrap; font-variant-numeric:tabular-nums; }
tr.problem td { background:#fff5f5; } tr.stage-first td { border-top:2px solid var(--line); }
.phase { font-size:11px; color:var(--unreachable); border:1px solid var(--unreachable); border-radius:8px; padding:0 5px; margin-left:4px; }
.muted { color:var(--muted); }
.todo { background:#fff8c5; border:1px solid #d4a72c; border-radius:6px; padding:10px 10px 10px 32px; }
.todo li { margin:4px 0; }
pre { background:#0d1117; color:#e6edf3; padding:10px 12px; border-radius:6px; overflow:auto; max-height:360px;
  white-space:pre-wrap; overflow-wrap:anywhere; margin:6px 0 0; }
details summary { cursor:pointer; color:var(--muted); font-size:12px; }
.card { border:1px solid var(--line); border-left:4px solid var(--failed); border-radius:6px; padding:10px 14px; margin-bottom:12px; }
.card.in-doubt { border-left-color:var(--doubt); } .card.unreachable { border-left-color:var(--unreachable); }
.card h3 { font-size:14px; margin:0 0 4px; }
footer { margin-top:36px; color:var(--muted); font-size:12px; }
@media print { main { max-width:none; padding:0; } pre { max-height:none; } details { display:block; } }
"""

_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }} · {{ run.run_id }} · {{ run.status }}</title>
<style>{{ css|safe }}</style></head>
<body><main>
<h1>{{ title }}</h1>
<div class="sub">Runbook report · run <code>{{ run.run_id }}</code>{% if run.check_mode %} · check mode: nothing was changed{% endif %}</div>
<div class="meta">
  <div><span class="k">Status</span><b><span class="badge {{ run.status|cls }}">{{ run.status }}</span></b></div>
  <div><span class="k">Run ID</span><b class="mono">{{ run.run_id }}</b></div>
  <div><span class="k">Operator</span><b>{{ run.operator or "?" }} on {{ run.control_host or "?" }}</b></div>
  <div><span class="k">Hosts</span><b>{{ run.hosts|join(", ") or "—" }}</b></div>
  <div><span class="k">Started</span><b>{{ run.started|ts }}</b></div>
  <div><span class="k">Ended</span><b>{{ run.ended|ts }}</b></div>
  <div><span class="k">Duration</span><b>{{ run.duration|dur }}{% if run.over_budget %} <span class="over-budget">over budget ({{ run.budget|dur }})</span>{% endif %}</b></div>
  <div><span class="k">Runbook</span><b class="mono">{{ run.runbook or "—" }}</b></div>
</div>
<div class="totals">{% for s in statuses %}
  <div class="total{% if s in hot and totals[s] %} hot{% endif %}"><b>{{ totals[s] }}</b><span>{{ s }}</span></div>{% endfor %}
</div>
{% if run.torn_tail or run.warnings %}<div class="warn"><b>Journal warnings</b><ul>
{% if run.torn_tail %}<li>the last record was torn by a crash and was ignored</li>{% endif %}
{% for w in run.warnings %}<li>{{ w }}</li>{% endfor %}</ul></div>{% endif %}

{% if commands %}<div class="cmd"><span class="k">Command line</span><pre>{% for c in commands %}{{ c }}
{% endfor %}</pre></div>{% endif %}

<h2 id="todo">What the operator must still do</h2>
{% if todo %}<ol class="todo">{% for t in todo %}<li>{{ t }}</li>{% endfor %}</ol>
{% else %}<p class="muted">Nothing: the run finished, writes are not fenced, no snapshot or step in doubt is left.</p>{% endif %}

<h2>Timeline</h2>
<div class="timeline">
<div class="legend"><span><i style="background:#2da44e"></i>within budget</span><span><i style="background:#cf222e"></i>over budget</span>
<span><i style="background:#218bff"></i>no budget</span><span><i style="border-left:2px dashed #1f2328;width:2px;border-radius:0"></i>budget</span></div>
{% for t in timeline %}
<div class="tl-row">
  <div class="tl-name">{{ t.stage.name or "(no stage)" }}<span class="badge {{ t.stage.status|cls }}">{{ t.stage.status }}</span>
    <div class="tl-when">{{ t.stage.started|ts }} · +{{ t.offset|dur }}</div></div>
  <div class="track" title="{{ t.stage.name }}: {{ t.stage.duration|dur }}{% if t.stage.budget is not none %} of {{ t.stage.budget|dur }}{% endif %}">
    <div class="bar {{ t.kind }}" style="left:{{ t.left }}%;width:{{ t.width }}%"></div>
    {% if t.budget_at is not none %}<div class="budget" style="left:{{ t.budget_at }}%"></div>{% endif %}
  </div>
  <div class="tl-fig"><b>{{ t.stage.duration|dur }}</b>{% if t.stage.budget is not none %} / budget {{ t.stage.budget|dur }}{% endif %}
  {% if t.stage.over_budget %}<br><span class="over-budget">over budget{% if t.stage.overrun %} by {{ t.stage.overrun|dur }}{% endif %}</span>{% endif %}
  {% if t.stage.spans > 1 %}<br>{{ t.stage.spans }} runs (resumed){% endif %}</div>
</div>{% else %}<p class="muted">No stage started.</p>{% endfor %}
{% if timeline %}<div class="tl-row axis-row"><div></div><div class="axis">{% for pct, label in axis.ticks %}<span style="left:{{ pct }}%">{{ label }}</span>{% endfor %}</div><div class="tl-fig">time since the run started</div></div>{% endif %}
{% for r in recoveries %}
<div class="tl-row recovery"><div class="tl-name">InnoDB crash recovery<span class="badge {{ ('ok' if r.ready else 'failed')|cls }}">{{ 'ready' if r.ready else 'not ready' }}</span>
    <div class="tl-when">{{ r.host }} · {{ r.stage }} / {{ r.step }}</div></div>
  <div class="tl-fig">{% if r.crashed %}checkpoint LSN <b>{{ r.checkpoint_lsn }}</b> → <b>{{ r.recovered_to_lsn }}</b>{% else %}no crash recovery needed{% endif %}</div>
  <div class="tl-fig">{{ r.rolled_back_transactions or 0 }} transaction(s) rolled back{% if r.fatal %}<br><span class="over-budget">{{ r.fatal }}</span>{% endif %}</div>
</div>
{% for p in r.phases %}<div class="tl-row">
  <div class="tl-name phase-name">· {{ p.name }}<div class="tl-when">{{ p.started or "" }}</div></div>
  <div class="track" title="{{ p.name }}: {{ p.seconds|dur }}">
    <div class="bar phase-{{ p.name }}" style="left:{{ (100 * (p.offset or 0) / r.span)|round(2) }}%;width:{{ (100 * (p.seconds or 0) / r.span)|round(2) }}%"></div>
  </div>
  <div class="tl-fig"><b>{{ p.seconds|dur }}</b>{% if p.ended is none %} (not finished){% endif %}</div>
</div>{% endfor %}{% endfor %}
</div>

{% if problems %}<h2>Problems</h2>
{% for r in problems %}<div class="card {{ r.status|cls|replace('s-', '') }}">
<h3><span class="badge {{ r.status|cls }}">{{ r.status }}</span> {{ r.key }}{% if r.phase == "undo" %}<span class="phase">undo</span>{% endif %} <span class="muted">on</span> {{ r.host }}</h3>
{% if r.msg %}<div>{{ r.msg }}</div>{% endif %}
{% if r.evidence %}<pre>{{ r.evidence }}</pre>{% endif %}
</div>{% endfor %}{% endif %}

<h2>Steps</h2>
<table><thead><tr><th>Stage</th><th>Step</th><th>Host</th><th>Status</th><th>Tries</th><th>Duration</th><th>Message</th></tr></thead><tbody>
{% for r in steps %}<tr class="{% if r.problem %}problem{% endif %}{% if loop.first or r.stage != loop.previtem.stage %} stage-first{% endif %}">
<td>{{ r.stage }}</td><td>{{ r.step }}{% if r.phase == "undo" %}<span class="phase">undo</span>{% endif %}</td><td>{{ r.host }}</td>
<td><span class="badge {{ r.status|cls }}">{{ r.status }}</span></td><td class="num">{{ r.attempts }}</td><td class="num">{{ r.duration|dur }}</td>
<td>{{ r.msg }}{% if r.evidence and not r.problem %}<details><summary>evidence</summary><pre>{{ r.evidence }}</pre></details>{% endif %}</td></tr>
{% else %}<tr><td colspan="7" class="muted">No step ran.</td></tr>{% endfor %}
</tbody></table>

{% if checks %}<h2>Verification</h2>
<table><thead><tr><th>Stage</th><th>Step</th><th>Host</th><th>Check</th><th>Kind</th><th>Table</th><th>Result</th><th>Count</th><th>Detail</th></tr></thead><tbody>
{% for c in checks %}<tr class="{% if c.status == 'FAIL' %}problem{% endif %}"><td>{{ c.stage }}</td><td>{{ c.step }}</td><td>{{ c.host }}</td><td>{{ c.name }}</td>
<td>{{ c.kind or "—" }}</td><td>{{ c.table or "—" }}</td>
<td><span class="badge {{ c.status|cls }}">{{ c.status }}</span></td><td class="num">{{ "—" if c.count is none else c.count }}</td>
<td>{{ c.detail }}{% if c.sample %}<details><summary>sample ({{ c.sample|length }})</summary><pre>{% for s in c.sample %}{{ s|tojson }}
{% endfor %}</pre></details>{% endif %}</td></tr>{% endfor %}
</tbody></table>{% endif %}

{% if throughput %}<h2>Restore throughput</h2>
<table><thead><tr><th>Stage</th><th>Step</th><th>Host</th><th>Tables</th><th>Rows</th><th>Size</th><th>Duration</th><th>Rows/s</th><th>Throughput</th></tr></thead><tbody>
{% for t in throughput %}<tr><td>{{ t.stage }}</td><td>{{ t.step }}{% if t.phase == "undo" %}<span class="phase">undo</span>{% endif %}</td><td>{{ t.host }}</td>
<td class="num">{{ t.tables if t.tables is not none else "—" }}</td><td class="num">{{ t.rows|count }}</td><td class="num">{{ t.bytes|size }}</td>
<td class="num">{{ t.duration|dur }}</td><td class="num">{{ t.rows_per_second|num }}</td><td class="num">{{ t.bytes_per_second|size }}{% if t.bytes_per_second is not none %}/s{% endif %}</td></tr>{% endfor %}
</tbody></table>
{% for t in throughput if t.per_table %}<h3>{{ t.step }} on {{ t.host }}: per table</h3>
<table><thead><tr><th>Table</th><th>Status</th><th>Rows</th><th>Ignored</th><th>Size</th><th>Duration</th><th>Rows/s</th></tr></thead><tbody>
{% for x in t.per_table %}<tr class="{% if x.status == 'failed' %}problem{% endif %}"><td>{{ x.table }}</td><td>{{ x.status }}</td><td class="num">{{ x.rows|count }}</td>
<td class="num">{{ x.ignored|count }}</td><td class="num">{{ x.bytes|size }}</td><td class="num">{{ x.seconds|dur }}</td><td class="num">{{ x.rows_per_second|num }}</td></tr>{% endfor %}
</tbody></table>{% endfor %}{% endif %}

{% if killed %}<h2 id="killed">Sessions the fence killed</h2>
<table><thead><tr><th>Stage</th><th>Step</th><th>Host</th><th>Session (user@host)</th><th>Id</th></tr></thead><tbody>
{% for k in killed %}<tr><td>{{ k.stage }}</td><td>{{ k.step }}</td><td>{{ k.host }}</td><td class="mono">{{ k.who }}</td>
<td class="num">{{ k.id if k.id is not none else "—" }}</td></tr>{% endfor %}
</tbody></table>{% endif %}

{% if left %}<h2 id="left">Rows written after the backup, only in the snapshot</h2>
<p><b>{{ left_rows|count }} row(s)</b> live only in the snapshot: keep it until they are merged back (never
<code>runbook snapshots drop</code> before). Counted: {{ left_how }}.</p>
<table><thead><tr><th>Step</th><th>Host</th><th>Table</th><th>Snapshot</th><th>Snapshot rows</th><th>Keys not restored</th>
<th>Versions replaced</th><th>Only in snapshot</th></tr></thead><tbody>
{% for t in left %}<tr><td>{{ t.step }}</td><td>{{ t.host }}</td><td>{{ t.table }}</td><td class="mono">{{ t.snapshot_schema }}</td>
<td class="num">{{ t.snapshot_rows|count }}</td><td class="num">{{ t.keys_not_restored|count }}</td><td class="num">{{ t.versions_replaced|count }}</td>
<td class="num">{{ t.rows|count }}{% if t.swapped_back %} (swapped back by a rollback: live again){% endif %}</td></tr>{% endfor %}
</tbody></table>{% endif %}

<h2 id="decisions">Confirmations and decisions</h2>
{% if decisions %}<table><thead><tr><th>Time</th><th>Who</th><th>Kind</th><th>What</th><th>Answer</th></tr></thead><tbody>
{% for d in decisions %}<tr><td class="mono">{{ d.ts|ts }}</td><td>{{ d.who }}</td><td>{{ d.kind }}</td><td>{{ d.what }}</td><td>{{ d.answer }}</td></tr>{% endfor %}
</tbody></table>{% else %}<p class="muted">No confirmation or decision was recorded in this run's journal.</p>{% endif %}

{% if events %}<h2>Events</h2>
<table><thead><tr><th>Time</th><th>Event</th><th>Details</th></tr></thead><tbody>
{% for e in events %}<tr><td class="mono">{{ e.get('ts')|ts }}</td><td>{{ e.get('kind', '') }}</td><td class="mono">{{ e|details }}</td></tr>{% endfor %}
</tbody></table>{% endif %}

<footer>Generated by runbook from the journal <span class="mono">{{ run.journal }}</span>.</footer>
</main></body></html>
"""


@dataclass(frozen=True)
class TimelineBar:
    """One stage on the run's time axis (a Gantt row): where it starts and how long it ran,
    with its budget marker, in percent of the axis."""

    stage: StageReport
    left: float
    width: float
    budget_at: float | None
    kind: str  # within | over | nobudget
    offset: float  # seconds from the start of the run


@dataclass(frozen=True)
class Axis:
    """The time axis under the Gantt: its length in seconds and a few labelled ticks."""

    seconds: float
    ticks: tuple[tuple[float, str], ...]  # (percent, label)


def _offset(ts: str | None, origin: datetime | None) -> float:
    if not ts or origin is None:
        return 0.0
    try:
        return max(0.0, (datetime.fromisoformat(ts) - origin).total_seconds())
    except ValueError:
        return 0.0


def timeline(stages: tuple[StageReport, ...], run_started: str | None = None) -> tuple[list[TimelineBar], Axis]:
    """Stages as a Gantt on one time axis from the start of the run: each bar starts when its
    stage started, so waits between stages (a confirmation, a crash before the resume) show as
    gaps, and a budget marker sits where the stage had to be done."""
    starts = [x for x in (run_started, *(st.started for st in stages)) if x]
    try:
        origin = min(datetime.fromisoformat(x) for x in starts) if starts else None
    except ValueError:
        origin = None
    offsets = [_offset(st.started, origin) for st in stages]
    end = max([off + max(st.duration or 0.0, st.budget or 0.0) for off, st in zip(offsets, stages)] or [1.0]) or 1.0
    bars = []
    for off, st in zip(offsets, stages):
        left = round(100 * off / end, 2)
        width = round(100 * (st.duration or 0.0) / end, 2)
        budget_at = None if st.budget is None else round(100 * (off + st.budget) / end, 2)
        kind = "nobudget" if st.budget is None else ("over" if st.over_budget else "within")
        bars.append(TimelineBar(st, left, width, budget_at, kind, off))
    ticks = tuple((round(100 * i / 4, 2), "+" + fmt_duration(end * i / 4)) for i in range(5))
    return bars, Axis(end, ticks)


def _cls(status: Any) -> str:
    return "s-" + str(status).replace(" ", "-")


def _finalize(value: Any) -> Any:
    """Every printed string: no terminal colour codes or control characters in the page."""
    return printable(value) if isinstance(value, str) and not isinstance(value, Markup) else value


def _size(value: float | None) -> str:
    return "—" if value is None else format_size(value)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True, finalize=_finalize
    )
    env.filters.update(
        ts=format_ts, dur=fmt_duration, cls=_cls, num=number, count=count, size=_size, details=event_details
    )
    return env


_ENV = _environment()


def render_html(model: ReportModel) -> str:
    """The report as one self-contained HTML page."""
    run = model.run
    bars, axis = timeline(model.stages, run.started)
    return _ENV.from_string(_TEMPLATE).render(
        title=run.runbook_name or run.runbook or run.run_id,
        css=_CSS,
        run=run,
        statuses=STATUSES,
        hot=("failed", "unreachable", "in doubt"),
        totals=model.totals,
        timeline=bars,
        axis=axis,
        problems=model.problems,
        steps=model.steps,
        checks=model.checks,
        throughput=model.throughput,
        recoveries=recoveries(model),
        events=model.events,
        todo=model.todo,
        decisions=model.decisions,
        commands=model.commands,
        killed=model.killed,
        left=model.left_in_snapshot,
        left_rows=sum(t.rows or 0 for t in model.left_in_snapshot if not t.swapped_back),
        left_how=model.left_how,
    )
