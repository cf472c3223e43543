"""The JUnit XML report, for CI dashboards that already read test results.

A stage is a ``<testsuite>``, a step on a host is a ``<testcase>`` (its undo is another one,
named ``… (undo)``). ``failed`` and ``unreachable`` become ``<failure>`` with the evidence as
text, ``skipped`` becomes ``<skipped/>``, an in-doubt step (intent without outcome) an
``<error>``. Times are seconds. Each check of a ``verify`` step is a case of its own, next
to its step's (classname ``<stage>.<step>``): a failing check is a ``<failure>`` with its
count and sample, a warning passes with the finding in ``<system-out>``.

```xml
<testsuites name="emergency restore" tests="9" failures="1" errors="1" skipped="1" time="431.200">
  <testsuite name="restore" tests="3" failures="1" ...>
    <testcase classname="restore" name="load dump @ db1" time="402.117">
      <failure message="ERROR 1062 …" type="failed">last lines of output …</failure>
```
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import json

from engine.report.model import IN_DOUBT, CheckResult, ReportModel, StageReport, StepRow
from engine.report.text import printable
from engine.secrets import MASKER

# Characters XML 1.0 cannot carry at all, even escaped (ANSI escapes in command output, NULs).
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_MAX_MESSAGE = 500  # the message attribute is a one-liner in most CI UIs; the text has it all


def clean(text: str) -> str:
    """Masked text that XML can carry: colour codes dropped, forbidden characters as ``\\xNN``."""
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", printable(MASKER.text(text)))


def _seconds(value: float | None) -> str:
    return f"{value or 0.0:.3f}"


def _case_name(row: StepRow) -> str:
    name = f"{row.step} @ {row.host}"
    return f"{name} (undo)" if row.phase == "undo" else name


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= _MAX_MESSAGE else line[: _MAX_MESSAGE - 1] + "…"


def _testcase(parent: ET.Element, suite: str, row: StepRow) -> tuple[int, int, int]:
    """Append one case; returns (failures, errors, skipped) it adds."""
    case = ET.SubElement(
        parent, "testcase", classname=clean(suite), name=clean(_case_name(row)), time=_seconds(row.duration)
    )
    body = row.evidence or row.msg
    if row.status in ("failed", "unreachable"):
        failure = ET.SubElement(case, "failure", message=clean(_one_line(row.msg or row.status)), type=row.status)
        failure.text = clean(body)
        return 1, 0, 0
    if row.status == IN_DOUBT:
        error = ET.SubElement(case, "error", message=clean(_one_line(row.msg)), type="in_doubt")
        error.text = clean(body)
        return 0, 1, 0
    if row.status == "skipped":
        ET.SubElement(case, "skipped", message=clean(_one_line(row.msg or "skipped")))
        return 0, 0, 1
    if row.msg:
        ET.SubElement(case, "system-out").text = clean(f"{row.status}: {row.msg}")
    return 0, 0, 0


def _check_case(parent: ET.Element, suite: str, check: CheckResult) -> int:
    """One case per verification check; returns the failures it adds."""
    case = ET.SubElement(parent, "testcase", classname=clean(f"{suite}.{check.step}"),
                         name=clean(f"{check.name} @ {check.host}"), time="0.000")
    body = check.detail + (f"\nsample: {json.dumps(list(check.sample), default=str)}" if check.sample else "")
    if check.failed:
        failure = ET.SubElement(case, "failure", message=clean(_one_line(f"{check.name}: {check.detail}")), type=check.kind or "check")
        failure.text = clean(body)
        return 1
    ET.SubElement(case, "system-out").text = clean(f"{check.status}: {body}")
    return 0


def _testsuite(root: ET.Element, stage: StageReport, rows: list[StepRow],
               checks: list[CheckResult] | None = None) -> tuple[int, int, int, int]:
    suite = ET.SubElement(root, "testsuite", name=clean(stage.name or "(no stage)"))
    props = ET.SubElement(suite, "properties")
    for name, value in (
        ("status", stage.status),
        ("budget", "" if stage.budget is None else _seconds(stage.budget)),
        ("over_budget", "true" if stage.over_budget else "false"),
        ("hosts", ",".join(stage.hosts)),
    ):
        ET.SubElement(props, "property", name=name, value=clean(value))
    failures = errors = skipped = 0
    cases = len(rows)
    for row in rows:
        f, e, s = _testcase(suite, stage.name, row)
        failures, errors, skipped = failures + f, errors + e, skipped + s
        for check in checks or []:
            if (check.step, check.host) == (row.step, row.host) and row.phase == "do":
                failures += _check_case(suite, stage.name, check)
                cases += 1
    suite.set("tests", str(cases))
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    suite.set("skipped", str(skipped))
    suite.set("time", _seconds(stage.duration))
    if stage.started:
        suite.set("timestamp", clean(stage.started))
    return cases, failures, errors, skipped


def render_junit(model: ReportModel) -> str:
    """JUnit XML (one suite per stage) built with ElementTree, so escaping is never by hand."""
    run = model.run
    root = ET.Element("testsuites", name=clean(run.runbook_name or run.runbook or run.run_id))
    totals = [0, 0, 0, 0]
    for stage in model.stages:
        counts = _testsuite(root, stage, model.steps_of(stage.name), [c for c in model.checks if c.stage == stage.name])
        totals = [a + b for a, b in zip(totals, counts, strict=True)]
    for attr, value in zip(("tests", "failures", "errors", "skipped"), totals, strict=True):
        root.set(attr, str(value))
    root.set("time", _seconds(run.duration))
    if run.started:
        root.set("timestamp", clean(run.started))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
