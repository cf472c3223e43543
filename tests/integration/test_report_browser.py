"""The HTML incident record opened in a real browser (headless Chromium): the page renders
its sections — the Gantt timeline with the recovery phases, what the operator must still do,
the verification checks, the restore throughput per table, confirmations and decisions — and
a screenshot of it is taken (tests/…/report.png in the test's tmp dir)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from engine.journal import read_journal, store
from engine.report import render_report
from tests.incident_journal import RUN_ID, Clock, write_incident

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)


def chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp / 'profile'}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (scripts/setup.sh installs it from Debian)")
def test_the_report_renders_its_sections_in_chromium(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    monkeypatch.setattr(store, "now", clock.now)
    write_incident(tmp_path, clock)
    page = tmp_path / "report.html"
    page.write_text(render_report(read_journal(tmp_path, RUN_ID), "html"))
    url = page.resolve().as_uri()

    dom = chromium(tmp_path, "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    for section in ("What the operator must still do", "Timeline", "Steps", "Verification", "Restore throughput",
                    "Confirmations and decisions", "Events"):
        assert f">{section}</h2>" in html, f"section {section!r} missing from the rendered page"
    assert 'class="tl-row' in html and 'class="bar within"' in html  # the Gantt's bars
    assert "InnoDB crash recovery" in html and "phase-redo" in html  # the recovery phases
    assert "order_items" in html and "per table" in html  # restore throughput per table
    assert "fk orders.fk_orders_user" in html  # a verification check
    assert "Writes are still fenced on db1" in html and "Stop all writes on db1 (P0)" in html

    shot = tmp_path / "report.png"
    res = chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,2400", "--hide-scrollbars", url)
    assert res.returncode == 0, res.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000  # a page, not a blank image
    keep = os.environ.get("RUNBOOK_KEEP_SCREENSHOT")
    if keep:
        shutil.copy(shot, keep)
