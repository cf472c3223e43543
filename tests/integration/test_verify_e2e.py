"""``verify`` through ``runbook play``: every check kind, suites, record_to, a replica host
reached through the test sshd, check mode, and the reports."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest

from tests.cliutil import cli, out_of, rows, run_id_of
from tests.integration.verify_fixtures import build, drop_copy
from tests.sshd import SshdServer

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def planted(db: pymysql.connections.Connection, schema: str) -> Iterator[str]:
    build(db, schema, planted=True)
    yield schema
    drop_copy(db, schema)


def inventory(tmp_path: Path, sshd: SshdServer) -> Path:
    """db1: this machine's MariaDB; replica1: the same server through the sshd's tunnel."""
    inv = tmp_path / "inv.yml"
    inv.write_text(f"""
all:
  vars: {{mysql_user: root, mysql_port: 3306}}
  hosts:
    db1: {{connection: local}}
    replica1:
      mysql_via: tunnel
{sshd.host_vars_yaml()}
""")
    return inv


RUNBOOK = """
name: verify end to end
targets: db1
vars:
  floor: 0
stages:
  - name: snapshot
    steps:
      - name: Snapshot
        snapshot: {{schema: "{{{{ schema }}}}", tables: [staff, users]}}
  - name: verify
    steps:
      - name: A restore result
        set_fact:
          r: {{tables: {{users: {{rows: 10, status: loaded}}, staff: {{rows: 4, status: loaded}}}}}}
      - name: Everything
        verify:
          schema: "{{{{ schema }}}}"
          foreign_keys: true
          required: {{users: [email]}}
          row_counts: {{from: "{{{{ r }}}}"}}
          checksums: {{against_host: replica1, against_schema: "{{{{ schema }}}}_copy", chunk_rows: 50}}
          rules:
            - {{name: no negative totals, sql: "SELECT COUNT(*) FROM orders WHERE total < {{{{ floor }}}}", table: orders}}
          record_to: "{{{{ schema }}}}.consistency_check_results"
          parallel: 3
        register: v
        ignore_errors: true
      - name: Against the snapshot
        verify:
          schema: "{{{{ schema }}}}"
          row_counts: {{from_snapshot: true}}
          checksums: {{against_snapshot: true}}
        register: s
      - name: Suites
        verify:
          schema: "{{{{ schema }}}}"
          tables: [users, orders, shipments, staff]
          suite: [checks/referential.yml, business-example]
          vars: {{clock_skew_minutes: 0}}
        register: b
        ignore_errors: true
      - name: The verdicts as registered
        assert:
          that:
            - "v.failed and v.summary.fail == 7"
            - "v.recorded.rows == v.checks | length"
            - "s.summary == {{'pass': 4, 'fail': 0, 'warn': 0}}"
            - "b.summary.fail == 4 and b.summary.warn == 1"
"""


def test_every_kind_through_play(tmp_path: Path, sshd: SshdServer, planted: str, db: pymysql.connections.Connection) -> None:
    (tmp_path / "rb.yml").write_text(RUNBOOK.format())
    inv = inventory(tmp_path, sshd)
    report = tmp_path / "report.json"
    res = cli("play", "rb.yml", "-i", str(inv), "-e", f"schema={planted}", "--report", str(report), cwd=tmp_path, home=tmp_path / "home", timeout=120)
    out = out_of(res)
    try:
        assert res.returncode == 0, out
        assert "fk shipments.fk_ship_item" in out  # the failing checks are named on the step's line
        data = json.loads(report.read_text())
        got: dict[tuple[str, str], Any] = {(c["step"], c["name"]): c for c in data["verification"]}
        everything = {name: c["result"] for (step, name), c in got.items() if step == "Everything" and c["result"] != "pass"}
        assert everything == {
            "fk shipments.fk_ship_item": "fail", "fk staff.fk_staff_manager": "fail", "required users.email": "fail",
            "no negative totals": "fail", f"checksum orders vs replica1:{planted}_copy": "fail",
            f"checksum logs vs replica1:{planted}_copy": "fail",
            "rows staff": "fail",  # 5 rows, the restore said 4 (users: 10 and 10 passes)
        }
        suites = {name: c["result"] for (step, name), c in got.items() if step == "Suites" and c["result"] != "pass"}
        assert suites == {"fk shipments.fk_ship_item": "fail", "fk staff.fk_staff_manager": "fail",
                          "no negative order totals": "fail", "every user has an e-mail": "fail",
                          "required users.email": "warn"}
        verdicts = rows(db, f"SELECT check_name, check_result FROM `{planted}`.consistency_check_results WHERE check_result <> 'PASS'")
        assert {n for n, _ in verdicts} == {n for (step, n), c in got.items() if step == "Everything" and c["result"] == "fail"}
        run_id = run_id_of(res)
        junit = cli("report", run_id, "--format", "junit", cwd=tmp_path, home=tmp_path / "home")
        root = ET.fromstring(junit.stdout.encode())
        cases = {c.get("name"): c for c in root.iter("testcase") if c.get("classname") == "verify.Everything"}
        assert cases["fk staff.fk_staff_manager @ db1"].find("failure") is not None
        assert cases["fk orders.fk_orders_user @ db1"].find("failure") is None
        md = cli("report", run_id, "--format", "md", cwd=tmp_path, home=tmp_path / "home").stdout
        assert "## Verification" in md and "| foreign_key | shipments | FAIL | 1 |" in md
    finally:
        with db.cursor() as cur:
            cur.execute("SET SESSION foreign_key_checks = 0")
            for (name,) in rows(db, "SHOW DATABASES LIKE '\\_rb\\_snap\\_%'"):
                if rows(db, f"SELECT 1 FROM `{name}`._manifest WHERE source_schema = '{planted}' LIMIT 1"):
                    cur.execute(f"DROP DATABASE `{name}`")


def test_check_mode_verifies_and_records_nothing(tmp_path: Path, planted: str, db: pymysql.connections.Connection) -> None:
    (tmp_path / "rb.yml").write_text("""
name: check mode
stages:
  - name: verify
    steps:
      - name: Orphans
        verify: {schema: "{{ schema }}", foreign_keys: true, record_to: "{{ schema }}.results"}
""")
    (tmp_path / "inv.yml").write_text("all:\n  hosts:\n    db1: {connection: local, mysql_user: root}\n")
    res = cli("play", "rb.yml", "-i", "inv.yml", "-e", f"schema={planted}", "--check", cwd=tmp_path, home=tmp_path / "home")
    out = out_of(res)
    assert res.returncode == 1, out  # the orphans are real: check mode says so
    assert "fk staff.fk_staff_manager" in out and "not recorded" in out
    assert rows(db, f"SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{planted}' AND TABLE_NAME = 'results'") == [(0,)]


def test_validate_reports_suite_problems_at_their_lines(tmp_path: Path) -> None:
    (tmp_path / "checks").mkdir()
    (tmp_path / "checks" / "mine.yml").write_text("rules:\n  - name: x\n    sql: DELETE FROM t\n")
    (tmp_path / "rb.yml").write_text("""
name: suites
stages:
  - name: verify
    steps:
      - name: Mine
        verify: {schema: shop, suite: [checks/mine.yml, nowhere]}
""")
    (tmp_path / "inv.yml").write_text("all:\n  hosts:\n    db1: {connection: local}\n")
    res = cli("validate", "rb.yml", "-i", "inv.yml", cwd=tmp_path, home=tmp_path / "home")
    out = out_of(res)
    assert res.returncode == 2, out
    assert "checks/mine.yml:3:10: rules[0].sql: a rule must be a read-only query" in out
    assert "rb.yml:7:57: stages[0].steps[0].verify.suite[1]: check suite 'nowhere' not found" in out


def test_shipped_suites_validate() -> None:
    from engine.actions.verify.suites import PROJECT_CHECKS, suite_problems

    names = sorted(p.name for p in PROJECT_CHECKS.glob("*.yml"))
    assert names == ["business-example.yml", "referential.yml"]
    for p in PROJECT_CHECKS.glob("*.yml"):
        assert suite_problems(p) == [], p


def test_step_vars_are_known_to_validate(tmp_path: Path) -> None:
    (tmp_path / "rb.yml").write_text("""
name: vars
stages:
  - name: verify
    steps:
      - name: Rule with a variable of its own
        verify:
          schema: shop
          vars: {col: total}
          rules: [{name: a, sql: "SELECT COUNT(*) FROM orders WHERE {{ col | ident }} < 0"}]
""")
    (tmp_path / "inv.yml").write_text("all:\n  hosts:\n    db1: {connection: local}\n")
    res = cli("validate", "rb.yml", "-i", "inv.yml", cwd=tmp_path, home=tmp_path / "home")
    assert res.returncode == 0, out_of(res)
