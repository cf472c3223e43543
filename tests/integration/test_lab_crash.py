"""`runbook lab crash`, then `runbook play runbooks/crash-recovery.yml` against the lab, end to end through the CLI.

The shipped runbook verifies the core tables with the `verify` action (SPEC §3), built on
another branch; until it is merged, :func:`sql_variant` swaps that one step for `sql` +
`assert` checks of the same facts, and the test plays the variant.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pymysql
import pytest
import yaml

from engine.actions.registry import action_names
from tests.cliutil import cli as _cli
from tests.cliutil import out_of

ROOT = Path(__file__).resolve().parents[2]
RUNBOOK = ROOT / "runbooks" / "crash-recovery.yml"


def cli(*args: str, cwd: Path, timeout: float = 300) -> Any:
    return _cli(*args, cwd=cwd, home=cwd / "home", timeout=timeout)


def sql_variant(dest: Path) -> Path:
    """The shipped runbook with its verify step replaced by sql + assert on crashlab."""
    doc = yaml.safe_load(RUNBOOK.read_text())
    for stage in doc["stages"]:
        if stage["name"] == "verify":
            stage["steps"] = [
                {"name": "Verify the core tables", "register": "checks",
                 "sql": "SELECT (SELECT COUNT(*) FROM crashlab.orders) AS n,"
                        " (SELECT `rows` FROM crashlab.expected WHERE tbl = 'orders') AS expected,"
                        " (SELECT COUNT(*) FROM crashlab.orders WHERE amount < 0 OR batch < 0) AS uncommitted"},
                {"name": "Committed rows whole, uncommitted ones rolled back",
                 "assert": {"that": ["checks.rows[0].n == checks.rows[0].expected", "checks.rows[0].uncommitted == 0"]}},
            ]
    dest.write_text(yaml.safe_dump(doc, sort_keys=False))
    return dest


def inventory(tmp_path: Path) -> str:
    path = tmp_path / "inv.yml"
    path.write_text("all:\n  children:\n    primary:\n      hosts:\n        db1: {connection: local}\n")
    return str(path)


@pytest.mark.skipif("verify" not in action_names(), reason="the verify action is not merged on this branch yet")
def test_the_shipped_runbook_validates(tmp_path: Path) -> None:
    res = cli("validate", str(RUNBOOK), "-i", inventory(tmp_path), cwd=tmp_path)
    assert res.returncode == 0, out_of(res)


def test_the_variant_validates(tmp_path: Path) -> None:
    res = cli("validate", str(sql_variant(tmp_path / "rb.yml")), "-i", inventory(tmp_path), "-e", "schema=crashlab", cwd=tmp_path)
    assert res.returncode == 0, out_of(res)


def lab_counts(port: int) -> tuple[int, int, int, int]:
    conn = pymysql.connect(host="127.0.0.1", port=port, user="root")
    with conn.cursor() as cur:
        cur.execute("SELECT (SELECT COUNT(*) FROM crashlab.orders), (SELECT `rows` FROM crashlab.expected WHERE tbl = 'orders'),"
                    " (SELECT COUNT(*) FROM crashlab.orders WHERE amount < 0 OR batch < 0), (SELECT COUNT(*) FROM crashlab.load)")
        row = cur.fetchone()
    conn.close()
    return int(row[0]), int(row[1]), int(row[2]), int(row[3])


def test_lab_crash_then_the_crash_recovery_runbook(tmp_path: Path) -> None:
    up = cli("lab", "up", cwd=tmp_path)
    assert up.returncode == 0, out_of(up)
    lab = tmp_path / "home" / "lab"
    try:
        crash = cli("lab", "crash", cwd=tmp_path)
        assert crash.returncode == 0 and "SIGKILL" in crash.stdout, out_of(crash)
        status = cli("lab", "status", cwd=tmp_path)
        assert status.returncode == 1 and "MariaDB STOPPED" in status.stdout
        rb = sql_variant(tmp_path / "crash-recovery.yml")
        res = cli("play", str(rb), "-i", str(lab / "inventory.yml"), "-e", "schema=crashlab",
                  "-e", '{"core_tables": ["orders"]}', "--yes", "--report", "report.html",
                  "--allow-unused-vars", cwd=tmp_path)  # the variant's verify no longer reads core_tables
        out = out_of(res)
        assert res.returncode == 0, out
        assert "Start the crashed server" in out and "crash recovery finished" in out
        assert "InnoDB undo" in out or "undo" in out.split("Watch InnoDB crash recovery")[1]
        assert "Committed rows whole, uncommitted ones rolled back" in out
        html = (tmp_path / "report.html").read_text()
        assert "InnoDB crash recovery" in html and "phase-undo" in html
        assert cli("lab", "status", cwd=tmp_path).returncode == 0
        runs = cli("runs", cwd=tmp_path).stdout
        assert "unreadable" not in runs and "\nlab " not in runs  # the lab's dir is no run
        state = json.loads((lab / "lab.json").read_text())
        n, expected, uncommitted, load = lab_counts(state["mysql_port"])
        assert (n, uncommitted) == (expected, 0)
        assert load >= state["crash"]["load_acknowledged"]  # every acknowledged commit survived
        # A second crash, and `lab up` alone: the server comes back on its own datadir.
        assert cli("lab", "crash", cwd=tmp_path).returncode == 0
        again = cli("lab", "up", cwd=tmp_path)
        assert again.returncode == 0 and "restarted on its datadir" in again.stdout, out_of(again)
        state = json.loads((lab / "lab.json").read_text())
        n, expected, uncommitted, load = lab_counts(state["mysql_port"])
        assert (n, uncommitted) == (expected, 0) and expected == 2 * 20000
        assert load >= state["crash"]["load_acknowledged"]
    finally:
        down = cli("lab", "down", cwd=tmp_path)
    assert down.returncode == 0
