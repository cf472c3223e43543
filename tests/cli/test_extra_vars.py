"""Issue 20 item 2: a misspelt `-e` name used to be ignored and the default used (`-e
shema=shop2` validated, and the plan restored `shop`). An extra var that no template, condition
or action reads is refused at validate and play (exit 2, nothing run) with a did-you-mean;
`--allow-unused-vars` accepts it. What counts as read is exact: templates and conditions of the
runbook, its check suites, the inventory's templates (of variables that are read), hostvars
lookups, the engine's connection variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.language.loader import load_runbook
from tests.cli.test_validate_cli import LOCAL, ROOT, runbook

SHIPPED = sorted(p.name for p in (ROOT / "runbooks").glob("*.yml"))


@pytest.mark.parametrize(("given", "meant"), [("shema", "schema"), ("bakup", "backup"), ("levle", "level")])
def test_a_misspelt_extra_var_is_refused_with_a_did_you_mean(given: str, meant: str) -> None:
    proc = runbook("validate", "runbooks/emergency.yml", "-i", LOCAL, "-e", "schema=shop", "-e", f"{given}=x")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stdout == ""
    line = proc.stderr.strip()
    assert line.startswith(f"-e #2: extra var '{given}' is read by no template"), line
    assert f"did you mean '{meant}'?" in line and "--allow-unused-vars" in line, line


def test_play_refuses_it_before_anything_runs(tmp_path: Path) -> None:
    home = tmp_path / "home"
    proc = runbook("play", "runbooks/hello.yml", "-e", "greting=hi", env={"RUNBOOK_HOME": str(home)})
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "extra var 'greting'" in proc.stderr
    assert not home.exists() or not any(home.iterdir())  # no run, no journal


def test_allow_unused_vars_accepts_it() -> None:
    proc = runbook("validate", "runbooks/emergency.yml", "-i", LOCAL, "-e", "ticket=INC-42", "--allow-unused-vars")
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("fname", SHIPPED)
def test_every_variable_a_shipped_runbook_declares_can_be_given(fname: str) -> None:
    """The documented `-e` of the SOPs (schema, backup, level, core_tables, ...) all pass."""
    declared = sorted(load_runbook(str(ROOT / "runbooks" / fname)).runbook.vars)
    args = [a for name in declared for a in ("-e", f"{name}=x")]
    proc = runbook("validate", f"runbooks/{fname}", "-i", LOCAL, *args)
    assert "extra var" not in proc.stderr, proc.stderr


def test_connection_variables_are_read_by_the_engine() -> None:
    proc = runbook("validate", "runbooks/hello.yml", "-e", "mysql_password=secret", "-e", "ansible_user=dba")
    assert proc.returncode == 0, proc.stderr


def test_reads_are_found_where_they_hide(tmp_path: Path) -> None:
    (tmp_path / "inv.yml").write_text("""
all:
  vars: {mysql_password: "{{ db_pass }}", unused_host_var: "{{ only_here | default(1) }}"}
  hosts:
    db1: {connection: local}
""")
    (tmp_path / "suite.yml").write_text("""
vars: {orders_table: orders}
rules:
  - {name: no negatives, sql: "SELECT COUNT(*) FROM {{ orders_table | ident }} WHERE total < {{ floor }}"}
""")
    (tmp_path / "rb.yml").write_text("""
name: reads
targets: db1
vars:
  copy_of: "{{ original }}"
  never_read: "{{ dead_end | default(1) }}"
stages:
  - name: s
    when: go_on | default(true)
    steps:
      - name: Pinned
        assert: {that: "hostvars[inventory_hostname].pin is not defined or hostvars['db1']['pin2'] != 1"}
      - name: Copy
        shell: echo {{ copy_of }}
      - name: Check
        verify: {schema: shop, suite: suite.yml}
""")
    ok = ["db_pass", "original", "go_on", "pin", "pin2", "floor"]
    proc = runbook("validate", "rb.yml", "-i", "inv.yml", *[a for n in ok for a in ("-e", f"{n}=1")], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    # read by nothing that runs: a var of the inventory nothing reads, a runbook var nothing reads,
    # a name the suite's own vars: hide
    for name in ("only_here", "dead_end", "orders_table"):
        proc = runbook("validate", "rb.yml", "-i", "inv.yml", "-e", f"{name}=1", cwd=tmp_path)
        assert proc.returncode == 2 and f"extra var '{name}'" in proc.stderr, (name, proc.stderr)


def test_a_dynamic_hostvars_lookup_may_read_any_name(tmp_path: Path) -> None:
    (tmp_path / "rb.yml").write_text("""
name: dynamic
stages:
  - name: s
    steps:
      - name: Any
        shell: echo {{ hostvars[inventory_hostname][which] }}
""")
    proc = runbook("validate", "rb.yml", "-e", "which=x", "-e", "anything_at_all=1", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
