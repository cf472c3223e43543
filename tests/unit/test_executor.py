"""engine.run.executor: one step on one host, in process, over a local connection and no database.

The same semantics are checked end to end through the CLI in tests/cli/test_play_cli.py; here
the registered values and statuses are looked at directly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.run.context import Connections
from engine.run.executor import Executor
from engine.run.state import HostState, StepEnv, variables
from engine.language.loader import load_runbook
from engine.model import Host, Runbook, Status, StepResult
from engine.templating.render import lazify


class Harness:
    """A loaded runbook, an executor and one local host."""

    def __init__(self, tmp_path: Path, text: str, *, extra: dict[str, Any] | None = None,
                 host_vars: dict[str, Any] | None = None, check: bool = False):
        path = tmp_path / "rb.yml"
        path.write_text(text)
        self.rb: Runbook = load_runbook(str(path)).runbook
        host = Host(name="localhost", vars={"connection": "local", **(host_vars or {})}, groups=("all",), connection="local")
        self.hs = HostState(host, Connections(host))
        self.env = StepEnv(run_id="unit", check_mode=check, journal=None, journal_dir=str(tmp_path),
                           extra_vars=lazify(extra or {}), runbook_vars=lazify(self.rb.vars),
                           magic=lambda hs, stage: {"inventory_hostname": hs.host.name, "stage": stage, "check_mode": check})
        self.ex = Executor(self.env)

    def run(self) -> dict[str, StepResult]:
        out: dict[str, StepResult] = {}
        try:
            for stage in self.rb.stages:
                for step in stage.steps:
                    out[step.name] = self.ex.run(step, self.hs, stage.name)
        finally:
            self.hs.conns.close()
        return out


def steps(body: str, head: str = "") -> str:
    return f"name: unit\n{head}stages:\n  - name: s\n    steps:\n" + body


def test_when_false_skips_and_still_registers(tmp_path: Path) -> None:
    h = Harness(tmp_path, steps(
        "      - name: never\n        shell: touch {{ m }}\n        when: false\n        register: r\n"
        "      - name: because skipped\n        set_fact: {saw: '{{ r.skipped }}'}\n        when: r.skipped\n",
    ), extra={"m": str(tmp_path / "marker")})
    res = h.run()
    assert res["never"].status is Status.SKIPPED
    assert h.hs.facts["r"]["skipped"] is True and h.hs.facts["r"]["changed"] is False
    assert res["because skipped"].status is Status.OK
    assert h.hs.facts["saw"] is True
    assert not (tmp_path / "marker").exists()


def test_loop_registers_results(tmp_path: Path) -> None:
    h = Harness(tmp_path, steps(
        "      - name: items\n        shell: echo {{ item }}\n        loop: [a, b, c]\n        register: lr\n"
        "      - name: custom var\n        shell: echo {{ thing }}\n        loop: '{{ things }}'\n"
        "        loop_control: {loop_var: thing}\n        register: cv\n",
        head="vars:\n  things: [x, y]\n"))
    res = h.run()
    assert res["items"].status is Status.CHANGED
    lr = h.hs.facts["lr"]
    assert [r["item"] for r in lr["results"]] == ["a", "b", "c"]
    assert [r["stdout"] for r in lr["results"]] == ["a", "b", "c"]
    assert [r["stdout"] for r in h.hs.facts["cv"]["results"]] == ["x", "y"]


def test_when_on_the_loop_variable_is_per_item(tmp_path: Path) -> None:
    h = Harness(tmp_path, steps(
        "      - name: items\n        shell: echo {{ item }}\n        loop: [1, 2, 3]\n        when: item != 2\n        register: lr\n"))
    h.run()
    assert [r["skipped"] for r in h.hs.facts["lr"]["results"]] == [False, True, False]


def test_retries_until(tmp_path: Path) -> None:
    count = tmp_path / "count"
    h = Harness(tmp_path, steps(
        "      - name: flaky\n        shell: echo x >> {{ f }}; test $(wc -l < {{ f }}) -ge 3\n"
        "        retries: 5\n        delay: 0\n        until: r.rc == 0\n        register: r\n"), extra={"f": str(count)})
    res = h.run()
    assert res["flaky"].status is Status.CHANGED
    assert len(count.read_text().splitlines()) == 3
    assert h.hs.facts["r"]["attempts"] == 3


def test_until_gives_up(tmp_path: Path) -> None:
    count = tmp_path / "count"
    h = Harness(tmp_path, steps(
        "      - name: never true\n        shell: echo x >> {{ f }}\n        retries: 2\n        delay: 0\n"
        "        until: result.stdout == 'done'\n"), extra={"f": str(count)})
    res = h.run()
    assert res["never true"].status is Status.FAILED
    assert "after 3 attempts" in res["never true"].msg
    assert len(count.read_text().splitlines()) == 3


def test_failed_when_and_changed_when(tmp_path: Path) -> None:
    h = Harness(tmp_path, steps(
        "      - name: error in output\n        shell: echo ERROR\n        register: out\n        failed_when: \"'ERROR' in out.stdout\"\n"
        "      - name: exit 1 is fine\n        shell: exit 1\n        failed_when: result.rc > 1\n"
        "      - name: read only\n        shell: echo hi\n        changed_when: false\n"
        "      - name: changed by output\n        shell: echo changed\n        changed_when: \"'changed' in result.stdout\"\n"))
    res = h.run()
    assert res["error in output"].status is Status.FAILED
    assert res["exit 1 is fine"].status is Status.OK
    assert res["read only"].status is Status.OK
    assert res["changed by output"].status is Status.CHANGED


def test_ignore_errors(tmp_path: Path) -> None:
    h = Harness(tmp_path, steps("      - name: boom\n        shell: exit 3\n        ignore_errors: true\n        register: b\n"))
    res = h.run()
    assert res["boom"].status is Status.FAILED and res["boom"].ignored
    assert h.hs.facts["b"]["rc"] == 3 and h.hs.facts["b"]["ignored"] is True


def test_precedence_inventory_runbook_setfact_extra(tmp_path: Path) -> None:
    text = steps("      - name: sf\n        set_fact: {b: setfact, c: setfact}\n", head="vars: {a: runbook, b: runbook, c: runbook}\n")
    h = Harness(tmp_path, text, extra={"c": "extra"}, host_vars={"a": "inventory", "z": "inventory"})
    h.run()
    v = variables(h.env, h.hs, "s")
    assert (v["z"], v["a"], v["b"], v["c"]) == ("inventory", "runbook", "setfact", "extra")


def test_creates_and_unless(tmp_path: Path) -> None:
    (tmp_path / "exists").write_text("")
    h = Harness(tmp_path, steps(
        "      - name: created already\n        shell: touch {{ d }}/c1\n        creates: '{{ d }}/exists'\n"
        "      - name: not created yet\n        shell: touch {{ d }}/c2\n        creates: '{{ d }}/nope'\n"
        "      - name: unless true\n        shell: touch {{ d }}/u1\n        unless: test -e {{ d }}/exists\n"
        "      - name: unless false\n        shell: touch {{ d }}/u2\n        unless: {shell: 'false'}\n"), extra={"d": str(tmp_path)})
    res = h.run()
    assert res["created already"].status is Status.OK and "already done" in res["created already"].msg
    assert res["unless true"].status is Status.OK
    assert res["not created yet"].status is Status.CHANGED and res["unless false"].status is Status.CHANGED
    assert sorted(p.name for p in tmp_path.iterdir() if p.name[0] in "cu") == ["c2", "u2"]


def test_check_mode_runs_nothing_mutating(tmp_path: Path) -> None:
    h = Harness(tmp_path, steps(
        "      - name: touch\n        shell: touch {{ m }}\n"
        "      - name: fact\n        set_fact: {x: 1}\n"
        "      - name: check\n        assert: {that: 'x == 1 and check_mode'}\n"), extra={"m": str(tmp_path / "m")}, check=True)
    res = h.run()
    assert res["touch"].status is Status.SKIPPED and "would run" in res["touch"].msg
    assert res["fact"].status is Status.OK and res["check"].status is Status.OK
    assert not (tmp_path / "m").exists()


def test_timeout_fails_fast(tmp_path: Path) -> None:
    """The step is stopped at its timeout, not waited out: had the run waited for the command
    to end on its own, "finished" would be there (no clock)."""
    finished = tmp_path / "finished"
    h = Harness(tmp_path, steps(f"      - name: slow\n        shell: sleep 30; touch {finished}\n        timeout: 500ms\n"))
    res = h.run()
    assert res["slow"].status is Status.FAILED and "timeout" in res["slow"].msg
    assert not finished.exists()


def test_runtime_template_error_is_a_failed_step_with_its_source(tmp_path: Path) -> None:
    h = Harness(tmp_path, steps("      - name: bad\n        shell: echo {{ d.missing }}\n        register: r\n", head="vars: {d: {}}\n"))
    res = h.run()
    assert res["bad"].status is Status.FAILED
    assert res["bad"].msg.startswith(f"{tmp_path / 'rb.yml'}:6:9: ")
    assert "has no attribute 'missing'" in res["bad"].msg and "MDict" not in res["bad"].msg
    assert h.hs.facts["r"]["failed"] is True


def test_assert_and_fail(tmp_path: Path) -> None:
    h = Harness(tmp_path, steps(
        "      - name: holds\n        assert: {that: ['n > 1', 'n < 5'], success_msg: 'n is {{ n }}'}\n"
        "      - name: breaks\n        assert: {that: 'n > 5', fail_msg: 'n is only {{ n }}'}\n"
        "      - name: explicit\n        fail: {msg: stop here}\n", head="vars: {n: 3}\n"))
    res = h.run()
    assert (res["holds"].status, res["holds"].msg) == (Status.OK, "n is 3")
    assert (res["breaks"].status, res["breaks"].msg) == (Status.FAILED, "n is only 3")
    assert (res["explicit"].status, res["explicit"].msg) == (Status.FAILED, "stop here")


@pytest.mark.parametrize(("rc", "status"), [(0, Status.CHANGED), (2, Status.FAILED)])
def test_shell_registers_rc_and_output(tmp_path: Path, rc: int, status: Status) -> None:
    h = Harness(tmp_path, steps(f"      - name: cmd\n        shell: echo out; echo err >&2; exit {rc}\n        register: r\n"))
    res = h.run()
    r = h.hs.facts["r"]
    assert res["cmd"].status is status
    assert (r["rc"], r["stdout"], r["stderr"], r["stdout_lines"]) == (rc, "out", "err", ["out"])
    assert r["failed"] is (rc != 0)


def test_only_steps_that_change_nothing_skip_waiting_for_their_intent(tmp_path: Path) -> None:
    """A step that cannot change anything (a read-only action, a SELECT) need not wait for its
    intent to reach the disk; every other step's intent is synced before it runs."""
    from engine.actions.sql import Sql
    from engine.journal import Journal

    h = Harness(tmp_path, steps(
        "      - name: fact\n        set_fact: {x: 1}\n"
        "      - name: check\n        assert: {that: ['x == 1']}\n"
        "      - name: touch\n        shell: touch {{ m }}\n",
    ), extra={"m": str(tmp_path / "marker")})
    journal = Journal.create(tmp_path / "j", "r1", {"runbook": "rb.yml"})
    durable: dict[str, bool] = {}
    real = journal.intent

    def intent(step: str, host: str, digest: str, attempt: int, **kw: Any) -> int:
        durable[step] = kw.get("durable", True)
        return real(step, host, digest, attempt, **kw)

    journal.intent = intent  # type: ignore[method-assign]
    h.env.journal = journal
    try:
        h.run()
    finally:
        journal.close()
    assert durable == {"s/fact": False, "s/check": False, "s/touch": True}
    # The sql action decides from its rendered statements.
    assert Sql.view_changes_nothing([("SELECT %s AS n", [1]), ("SHOW TABLES", [])])
    for view in ([("INSERT INTO t VALUES (%s)", [1])], [("SELECT 1", []), ("DELETE FROM t", [])],
                 [("SELECT * FROM t FOR UPDATE", [])], [("SELECT 1 INTO OUTFILE '/tmp/x'", [])], [], "SELECT 1"):
        assert not Sql.view_changes_nothing(view), view
