"""Reports rendered from real journals: JSON, JUnit, Markdown and HTML tell the same story."""

from __future__ import annotations

import json
import re
import uuid
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from engine.errors import InputError
from engine.journal import Journal, JournalState, read_journal, store
from engine.report import FORMATS, render_report
from engine.report.model import IN_DOUBT, build_model
from engine.secrets import MASK, MASKER, Secret

RUN_ID = "20261122-031502-7f3a"
EVIDENCE = "$ mysql -e 'GRANT ALL ON shop.* TO app' <&> \x1b[31mexit 1\x1b[0m\nERROR 1045 (28000): Access denied\x07"
HEADER = {
    "runbook": "/srv/runbooks/emergency.yml",
    "runbook_name": "emergency restore",
    "files": {"/srv/runbooks/emergency.yml": "ab" * 32},
    "inventories": {"/srv/inventory/prod.yml": "cd" * 32},
    "options": {"forks": 5},
    "operator": "dba",
    "control_host": "bastion1",
    "hosts": ["db1", "db2"],
    "check_mode": False,
}
CHECKS = [  # as verify registers them; the last in an older journal's form
    {"name": "fk orphans", "kind": "foreign_key", "table": "orders", "result": "pass", "count": 0, "expected": 0,
     "sample": [], "detail": "orders(user_id) → users(id)"},
    {"name": "row counts", "kind": "row_count", "table": "orders", "result": "fail", "count": 118000,
     "expected": 120000, "sample": [], "detail": "orders: 118000 rows, dump had 120000"},
    {"name": "checksums", "status": "WARNING", "detail": "users: skipped (no primary key)"},
]


class Clock:
    """Journal timestamps that advance only when told, so stage durations are known."""

    def __init__(self) -> None:
        self.at = datetime(2026, 11, 22, 3, 15, 2, tzinfo=UTC)

    def now(self) -> str:
        return self.at.isoformat(timespec="microseconds")

    def tick(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


def step(j: Journal, clock: Clock, key: str, host: str, status: str | None, seconds: float,
         phase: str = "do", **outcome: Any) -> None:
    """One intent and (unless ``status`` is None: in doubt) its outcome, ``seconds`` apart."""
    seq = j.intent(key, host, "digest", attempt=1, phase=phase)
    clock.tick(seconds)
    if status is not None:
        j.outcome(seq, key, host, status, changed=status == "changed", duration=seconds, phase=phase,
                  registered=outcome.pop("registered", {}), **outcome)
    clock.tick(0.2)


def write_run(jdir: Path, clock: Clock, secret: str = "s3cr3t-pass") -> None:
    """Two stages; the second over its budget, rolled back, with every kind of step outcome."""
    with Journal.create(jdir, RUN_ID, HEADER) as j:
        j.event("run_start")
        j.event("stage_start", stage="prepare", budget=300, hosts=["db1", "db2"])
        step(j, clock, "prepare/check disk", "db1", "ok", 1.5, registered={"free_bytes": 10**11, "need_bytes": 10**9})
        step(j, clock, "prepare/check disk", "db2", "ok", 1.7, registered={"free_bytes": 10**11, "need_bytes": 10**9})
        step(j, clock, "prepare/stop writes", "db1", "changed", 2.0, msg="read_only=ON, 3 connections killed",
             undo={"read_only": False})
        step(j, clock, "prepare/replicas/pause", "db2", "skipped", 0.01, msg="when: is_replica is false")
        j.event("stage_end", stage="prepare", status="ok")
        j.event("stage_start", stage="restore", budget="1m", hosts=["db1", "db2"])
        step(j, clock, "restore/snapshot", "db1", "changed", 20.0, registered={
            "snapshot_schema": "_rb_snap", "bytes": 4 * 2**20,
            "tables": {"users": {"rows": 10, "checksum": "0a0b"}, "orders": {"rows": 32, "checksum": "0c0d"}}})
        step(j, clock, "restore/load dump", "db1", "changed", 90.0, msg="3 tables restored", registered={
            "rows": 120000, "rows_per_second": 1333.3, "bytes": 50 * 2**20, "tables": ["users", "orders", "items"],
            "command": f"mysql -p{secret} shop < dump.sql"})
        j.event("budget_exceeded", scope="stage", name="restore", budget=60)
        step(j, clock, "restore/verify", "db1", "ok", 4.0, registered={"checks": CHECKS})
        step(j, clock, "restore/apply grants", "db2", "failed", 0.8, msg="ERROR 1045: Access denied for 'app'",
             evidence=EVIDENCE)
        step(j, clock, "restore/repoint replica", "db2", None, 3.0)
        step(j, clock, "prepare/stop writes", "db1", "ok", 0.3, phase="undo", msg="read_only back to OFF")
        j.event("stage_end", stage="restore", status="rolled back")
        j.event("run_end", status="rolled back")


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(store, "now", c.now)
    return c


@pytest.fixture
def state(tmp_path: Path, clock: Clock) -> JournalState:
    Secret("s3cr3t-pass")
    write_run(tmp_path, clock)
    return read_journal(tmp_path, RUN_ID)


# --------------------------------------------------------------------------- the model


def test_model_stages_against_budgets(state: JournalState) -> None:
    model = build_model(state)
    assert [s.name for s in model.stages] == ["prepare", "restore"]
    prepare, restore = model.stages
    assert (prepare.status, prepare.budget, prepare.over_budget) == ("ok", 300.0, False)
    assert prepare.duration == pytest.approx(1.5 + 1.7 + 2.0 + 0.01 + 4 * 0.2)
    assert (restore.status, restore.budget, restore.over_budget) == ("rolled back", 60.0, True)
    assert restore.overrun is not None and restore.overrun > 50
    assert restore.started is not None and restore.ended is not None and restore.started < restore.ended
    assert model.run.status == "rolled back" and model.run.operator == "dba"


def test_model_steps_in_order_with_phase_and_status(state: JournalState) -> None:
    model = build_model(state)
    rows = [(r.stage, r.step, r.host, r.phase, r.status) for r in model.steps]
    assert rows[3] == ("prepare", "replicas/pause", "db2", "do", "skipped")  # split on the first '/'
    assert ("restore", "repoint replica", "db2", "do", IN_DOUBT) in rows
    assert rows[-1] == ("prepare", "stop writes", "db1", "undo", "ok")
    assert model.totals == {"ok": 4, "changed": 3, "skipped": 1, "failed": 1, "unreachable": 0, IN_DOUBT: 1}
    assert [r.step for r in model.problems] == ["apply grants", "repoint replica"]
    assert model.host_totals["db2"]["failed"] == 1


def test_model_gathers_checks_and_throughput(state: JournalState) -> None:
    model = build_model(state)
    assert [(c.name, c.status) for c in model.checks] == [("fk orphans", "PASS"), ("row counts", "FAIL"),
                                                          ("checksums", "WARNING")]
    by_step = {t.step: t for t in model.throughput}
    assert set(by_step) == {"snapshot", "load dump"}  # disk checks register free_bytes, not bytes
    load = by_step["load dump"]
    assert (load.rows, load.rows_per_second, load.tables, load.bytes) == (120000, 1333.3, 3, 50 * 2**20)
    snap = by_step["snapshot"]
    assert snap.rows == 42 and snap.rows_per_second == pytest.approx(42 / 20.0)


def test_unfinished_stage_and_stage_without_events(tmp_path: Path, clock: Clock) -> None:
    with Journal.create(tmp_path, "r1", {"runbook": "x.yml"}) as j:
        j.event("run_start")
        j.event("stage_start", stage="load", budget=None, hosts=["db1"])
        step(j, clock, "load/a", "db1", "ok", 5.0)
        step(j, clock, "load/b", "db1", None, 5.0)  # killed here
        j.event("rollback_start")
        step(j, clock, "load/a", "db1", "ok", 1.0, phase="undo")
        step(j, clock, "cleanup/x", "db1", "failed", 1.0, phase="undo")
        j.event("run_end", status="rollback failed")
    model = build_model(read_journal(tmp_path, "r1"))
    load, cleanup = model.stages
    assert (load.status, load.budget, load.over_budget, load.spans) == ("interrupted", None, False, 1)
    assert load.duration == pytest.approx(5.2)  # up to its last record: the intent of load/b
    assert (cleanup.status, cleanup.spans) == ("failed", 0)
    assert "<div class=\"budget\"" not in render_report(read_journal(tmp_path, "r1"), "html")


# --------------------------------------------------------------------------- the formats


def test_json_has_everything(state: JournalState) -> None:
    data = json.loads(render_report(state, "json"))
    assert [s["name"] for s in data["stages"]] == ["prepare", "restore"]
    assert data["stages"][1]["over_budget"] is True
    assert len(data["steps"]) == 10
    failed = next(s for s in data["steps"] if s["status"] == "failed")
    assert failed["key"] == "restore/apply grants" and failed["evidence"] == EVIDENCE
    assert data["run"]["status"] == "rolled back"
    assert data["header"]["runbook_name"] == "emergency restore"
    assert {e["kind"] for e in data["events"]} >= {"run_start", "budget_exceeded", "run_end"}
    assert len(data["verification"]) == 3 and len(data["throughput"]) == 2


def test_junit_suites_are_stages(state: JournalState) -> None:
    root = ET.fromstring(render_report(state, "junit").encode())
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["prepare", "restore"]
    assert (root.get("tests"), root.get("failures"), root.get("errors"), root.get("skipped")) == ("13", "2", "1", "1")
    cases = {c.get("name"): c for c in root.iter("testcase")}
    check = cases["row counts @ db1"]  # one case per verification check, failing ones as failures
    assert check.get("classname") == "restore.verify" and check.find("failure") is not None
    assert "118000" in (check.find("failure").get("message") or "")  # type: ignore[union-attr]
    assert cases["fk orphans @ db1"].find("failure") is None
    failure = cases["apply grants @ db2"].find("failure")
    assert failure is not None and failure.get("type") == "failed"
    assert "Access denied" in (failure.get("message") or "")
    assert "<&> exit 1\nERROR 1045" in (failure.text or "")  # terminal colour codes dropped
    assert (failure.text or "").endswith("Access denied\\x07")  # not valid in XML 1.0, even escaped
    assert cases["replicas/pause @ db2"].find("skipped") is not None
    assert cases["repoint replica @ db2"].find("error") is not None
    assert "stop writes @ db1 (undo)" in cases
    assert float(cases["load dump @ db1"].get("time") or 0) == 90.0


def test_markdown_has_the_step_table(state: JournalState) -> None:
    md = render_report(state, "md")
    assert "| Stage | Step | Host | Phase | Status | Attempts | Duration | Message |" in md
    assert "| restore | apply grants | db2 | do | failed | 1 | 800ms |" in md
    assert "| restore | rolled back |" in md and "**over budget**" in md
    assert "```text\n$ mysql" in md  # evidence of the failure, fenced
    assert "## Verification" in md and "## Restore throughput" in md


def test_html_is_escaped_and_self_contained(state: JournalState) -> None:
    html = render_report(state, "html")
    assert "<&>" not in html
    assert "&lt;&amp;&gt; exit 1" in html
    assert "\x1b" not in html and "\x07" not in html
    assert 'class="bar over"' in html and "over budget by" in html
    assert 'class="bar within"' in html  # prepare, inside its budget
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.IGNORECASE)
    assert "<script" not in html.lower() and "<link" not in html.lower()
    assert "row counts" in html and "1,333" in html  # verification and throughput sections


def test_unknown_format_is_an_input_error(state: JournalState) -> None:
    with pytest.raises(InputError):
        render_report(state, "pdf")


# --------------------------------------------------------------------------- secrets


def test_secret_known_when_writing_is_masked_everywhere(state: JournalState) -> None:
    assert "s3cr3t-pass" not in state.path.read_text()
    for fmt in FORMATS:
        assert "s3cr3t-pass" not in render_report(state, fmt), fmt
    assert MASK in render_report(state, "json")


def test_secret_registered_after_the_journal_is_masked(tmp_path: Path, clock: Clock) -> None:
    late = f"late-{uuid.uuid4().hex[:12]}"
    with Journal.create(tmp_path, "r2", {**HEADER, "options": {"note": late}}) as j:
        j.event("run_start")
        j.event("stage_start", stage="restore", budget=10, hosts=["db1"])
        step(j, clock, "restore/load", "db1", "failed", 1.0, msg=f"auth failed for {late}", evidence=f"-p{late} <x>",
             registered={"rows": 5, "bytes": 9, "cmd": late, late: "as a key",
                         "checks": [{"name": "c", "status": "FAIL", "detail": late}]})
        j.event("operator_decision", step="restore/load", host="db1", decision=f"skip {late}")
        j.event("stage_end", stage="restore", status="failed")
        j.event("run_end", status="failed")
    assert late in (tmp_path / "r2" / "journal.jsonl").read_text()  # unknown to the masker when written
    MASKER.add(late)
    state = read_journal(tmp_path, "r2")
    for fmt in FORMATS:
        text = render_report(state, fmt)
        assert late not in text, fmt
        assert MASK in text, fmt


def test_a_run_that_did_nothing_still_renders(tmp_path: Path, clock: Clock) -> None:
    with Journal.create(tmp_path, "r3", {"runbook": "x.yml"}) as j:
        j.event("run_start")
        j.event("budget_exceeded", scope="run", name="x", budget=5)
    state = read_journal(tmp_path, "r3")
    model = build_model(state)
    assert (model.run.status, model.stages, model.steps) == ("interrupted", (), ())
    assert model.run.over_budget and model.run.budget == 5.0
    assert ET.fromstring(render_report(state, "junit").encode()).get("tests") == "0"
    assert json.loads(render_report(state, "json"))["steps"] == []
    assert "No step ran." in render_report(state, "html")
    assert "## Steps" in render_report(state, "md")


def test_html_timeline_is_a_gantt_on_one_time_axis() -> None:
    from engine.report.html import timeline
    from engine.report.model import StageReport

    def stage(name: str, started: str, duration: float, budget: float | None) -> StageReport:
        return StageReport(name, "ok", started, None, duration, budget, budget is not None and duration > budget, ("db1",), 1)

    bars, axis = timeline((stage("assess", "2026-11-22T03:00:00+00:00", 60, 300),
                           stage("fence", "2026-11-22T03:02:00+00:00", 30, None),  # a 60 s wait for the confirmation
                           stage("restore", "2026-11-22T03:03:00+00:00", 900, 600)), "2026-11-22T03:00:00+00:00")
    assert axis.seconds == 180 + 900  # the axis ends where the last stage (or budget) ends
    assert [b.offset for b in bars] == [0, 120, 180]
    assert [b.left for b in bars] == [0, round(100 * 120 / 1080, 2), round(100 * 180 / 1080, 2)]
    assert bars[2].width == round(100 * 900 / 1080, 2) and bars[2].kind == "over"
    assert bars[2].budget_at == round(100 * (180 + 600) / 1080, 2)  # the budget marker from the stage's own start
    assert bars[1].kind == "nobudget" and bars[0].kind == "within"
    from engine.report.text import fmt_duration

    assert [t[0] for t in axis.ticks] == [0, 25, 50, 75, 100] and axis.ticks[-1][1] == "+" + fmt_duration(1080)
def test_restore_throughput_per_table(tmp_path: Path, clock: Clock) -> None:
    with Journal.create(tmp_path, "r4", {"runbook": "x.yml"}) as j:
        j.event("run_start")
        j.event("stage_start", stage="restore", hosts=["db1"])
        step(j, clock, "restore/load", "db1", "changed", 12.0, registered={
            "rows": 3000, "bytes": 2 * 2**20, "seconds": 10.0, "rows_per_s": 300.0, "failed_tables": ["orders"],
            "tables": {"users": {"status": "loaded", "rows": 2000, "ignored": 5, "bytes": 2**20, "seconds": 4.0, "rows_per_s": 500.0},
                       "orders": {"status": "failed", "rows": 1000, "ignored": 0, "bytes": 2**20, "seconds": 8.0,
                                  "rows_per_s": 125.0}}})
        j.event("stage_end", stage="restore", status="ok")
        j.event("run_end", status="ok")
    state = read_journal(tmp_path, "r4")
    (t,) = build_model(state).throughput
    assert (t.rows, t.rows_per_second, t.duration, t.tables) == (3000, 300.0, 10.0, 2)
    assert [(x.table, x.status, x.rows, x.ignored, x.rows_per_second) for x in t.per_table] == [
        ("users", "loaded", 2000, 5, 500.0), ("orders", "failed", 1000, 0, 125.0)]
    md = render_report(state, "md")
    assert "### Restore throughput per table" in md and "| load | db1 | users | loaded | 2,000 | 5 |" in md
    html = render_report(state, "html")
    assert "load on db1: per table" in html and 'class="problem"><td>orders</td>' in html
    assert json.loads(render_report(state, "json"))["throughput"][0]["per_table"][1]["table"] == "orders"
