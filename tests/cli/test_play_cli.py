"""`runbook play` end to end, as a subprocess, on small runbooks over ``connection: local`` and
no database: step semantics as an Ansible user expects them, the lines the operator reads, and
the exit codes (0 success, 1 the run failed, 2 invalid input and nothing executed).
"""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

TWO_LOCAL_HOSTS = "all:\n  hosts:\n    h1: {connection: local}\n    h2: {connection: local}\n"


@dataclass
class Run:
    rc: int
    out: str
    err: str

    def statuses(self, step: str, host: str = "localhost") -> list[str]:
        """The status labels printed for a step on a host (``failed*`` when ignored)."""
        return re.findall(rf"^(\S+) +{re.escape(host)} +{re.escape(step)} \(", self.out, re.M)

    def status(self, step: str, host: str = "localhost") -> str | None:
        found = self.statuses(step, host)
        assert len(found) <= 1, self.out
        return found[0] if found else None

    def line(self, step: str, host: str = "localhost") -> str:
        m = re.search(rf"^\S+ +{re.escape(host)} +{re.escape(step)} \(.*$", self.out, re.M)
        assert m, f"no line for {step!r} on {host}:\n{self.out}"
        return m.group(0)

    def ran(self, host: str = "localhost") -> list[str]:
        """Step names that printed a line for a host, in order."""
        return re.findall(rf"^\S+ +{re.escape(host)} +(.+?) \(\d", self.out, re.M)

    def recap(self) -> dict[str, dict[str, int]]:
        lines = self.out.split("RECAP", 1)[1].splitlines()
        head = next(i for i, ln in enumerate(lines) if ln.startswith("host "))
        cols = lines[head].split()[1:]
        out = {}
        for ln in lines[head + 1:]:
            parts = ln.split()
            if len(parts) != len(cols) + 1 or not all(p.isdigit() for p in parts[1:]):
                break
            out[parts[0]] = dict(zip(cols, map(int, parts[1:])))
        return out


def play(tmp_path: Path, runbook: str, *args: str, inventory: str | None = None,
         env: dict[str, str] | None = None) -> Run:
    rb = tmp_path / "rb.yml"
    rb.write_text(runbook)
    cmd = [sys.executable, "-m", "engine.cli", "play", str(rb), "--journal-dir", str(tmp_path / "journal"), *args]
    if inventory is not None:
        inv = tmp_path / "inv.yml"
        inv.write_text(inventory)
        cmd += ["-i", str(inv)]
    full_env = dict(os.environ, NO_COLOR="1", RUNBOOK_HOME=str(tmp_path / "home"), **(env or {}))
    proc = subprocess.run(cmd, cwd=tmp_path, env=full_env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    run = Run(proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in run.out + run.err, run.out + run.err
    assert "internal error" not in run.err, run.err
    return run


def rb(*stages: str, head: str = "") -> str:
    return "name: test\n" + head + "stages:\n" + "".join(stages)


def stage(name: str, steps: str, extra: str = "") -> str:
    return f"  - name: {name}\n{extra}    steps:\n{steps}"


# --------------------------------------------------------------------------- output and exit codes


def test_success_prints_steps_recap_and_run_id(tmp_path: Path) -> None:
    r = play(tmp_path, rb(stage("only", "      - name: hello\n        shell: echo hi\n"
                                        "      - name: fact\n        set_fact: {a: 1}\n")))
    assert r.rc == 0, r.out + r.err
    run_id = re.search(r"^RUN (\S+) · test · ", r.out, re.M).group(1)  # type: ignore[union-attr]
    assert r.out.rstrip().splitlines()[-1] == f"RUN_ID {run_id}"
    assert "\nSTAGE [only] · 1 host " in r.out
    assert (r.status("hello"), r.status("fact")) == ("changed", "ok")
    assert r.recap() == {"localhost": {"ok": 1, "changed": 1, "skipped": 0, "failed": 0, "unreachable": 0, "ignored": 0}}
    assert "run succeeded" in r.out


def test_failure_is_exit_1_with_resume_hint(tmp_path: Path) -> None:
    r = play(tmp_path, rb(stage("s", "      - name: boom\n        shell: echo doomed >&2; exit 4\n")))
    assert r.rc == 1
    assert r.line("boom").endswith(": command exited with 4")
    assert "exit code 4" in r.out and "doomed" in r.out  # evidence: the command's last lines
    run_id = re.search(r"^RUN_ID (\S+)$", r.out, re.M).group(1)  # type: ignore[union-attr]
    assert f"runbook resume {run_id}" in r.out


def test_invalid_input_is_exit_2_and_nothing_runs(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    r = play(tmp_path, rb(stage("s", f"      - name: first\n        shell: touch {marker}\n"
                                     "      - name: second\n        shell: echo {{ typo_var }}\n")))
    assert r.rc == 2
    assert "variable 'typo_var' is not defined anywhere" in r.err
    assert not marker.exists()
    assert "RUN " not in r.out


# --------------------------------------------------------------------------- when / register / loop


def test_when_false_is_skipped_and_register_still_defined(tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = play(tmp_path, rb(stage("s",
        "      - name: never\n        shell: echo ran > {{ out }}\n        when: false\n        register: r\n"
        "      - name: after\n        shell: echo 'skipped={{ r.skipped }} changed={{ r.changed }}' > {{ out }}\n        when: r.skipped\n")),
        "-e", f"out={out}")
    assert r.rc == 0, r.out
    assert (r.status("never"), r.status("after")) == ("skipped", "changed")
    assert out.read_text() == "skipped=True changed=False\n"


def test_loop_item_loop_var_and_results(tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = play(tmp_path, rb(stage("s",
        "      - name: items\n        shell: echo {{ item }} >> {{ out }}\n        loop: [a, b, c]\n        register: lr\n"
        "      - name: renamed\n        shell: echo {{ table }} >> {{ out }}\n        loop: '{{ tables }}'\n"
        "        loop_control: {loop_var: table}\n"
        "      - name: results\n        shell: echo {{ lr.results | length }} {{ lr.results | map(attribute='item') | join(',') }} >> {{ out }}\n"),
        head="vars:\n  tables: [users, orders]\n"), "-e", f"out={out}")
    assert r.rc == 0, r.out
    assert out.read_text().splitlines() == ["a", "b", "c", "users", "orders", "3 a,b,c"]
    assert r.line("items").endswith("3 items")


# --------------------------------------------------------------------------- retries / until


def test_retries_delay_until(tmp_path: Path) -> None:
    count = tmp_path / "count"
    r = play(tmp_path, rb(stage("s",
        "      - name: flaky\n        shell: echo x >> {{ f }}; test $(wc -l < {{ f }}) -ge 3\n"
        "        retries: 5\n        delay: 100ms\n        until: r.rc == 0\n        register: r\n"
        "      - name: attempts\n        assert: {that: r.attempts == 3}\n")), "-e", f"f={count}")
    assert r.rc == 0, r.out
    assert len(count.read_text().splitlines()) == 3
    assert r.status("attempts") == "ok"


def test_until_that_never_holds_fails_after_all_attempts(tmp_path: Path) -> None:
    count = tmp_path / "count"
    r = play(tmp_path, rb(stage("s",
        "      - name: hopeless\n        shell: echo x >> {{ f }}\n        retries: 2\n        delay: 0\n"
        "        until: result.stdout == 'ready'\n")), "-e", f"f={count}")
    assert r.rc == 1
    assert len(count.read_text().splitlines()) == 3
    assert "still false after 3 attempts" in r.line("hopeless")


# --------------------------------------------------------------------------- failed_when / changed_when / ignore_errors


def test_failed_when_and_changed_when(tmp_path: Path) -> None:
    r = play(tmp_path, rb(stage("s",
        "      - name: exit 1 is fine\n        shell: exit 1\n        failed_when: result.rc > 1\n"
        "      - name: read only\n        shell: echo hi\n        changed_when: false\n"
        "      - name: error in output\n        shell: echo ERROR\n        register: out\n        failed_when: \"'ERROR' in out.stdout\"\n"
        "      - name: not reached\n        shell: echo no\n")))
    assert r.rc == 1
    assert (r.status("exit 1 is fine"), r.status("read only"), r.status("error in output")) == ("ok", "ok", "failed")
    assert "failed_when" in r.line("error in output")
    assert r.status("not reached") is None


def test_ignore_errors_host_goes_on_and_recap_counts_it(tmp_path: Path) -> None:
    r = play(tmp_path, rb(stage("s",
        "      - name: boom\n        shell: exit 3\n        ignore_errors: true\n"
        "      - name: goes on\n        shell: echo on\n")))
    assert r.rc == 0, r.out
    assert r.status("boom") == "failed*"
    assert r.line("boom").endswith("— ignored")
    assert r.status("goes on") == "changed"
    tally = r.recap()["localhost"]
    assert (tally["ignored"], tally["failed"], tally["changed"]) == (1, 0, 1)


# --------------------------------------------------------------------------- tags / start-at / stage when


TAGGED = rb(
    stage("one", "      - name: a\n        shell: echo a\n        tags: [ta]\n"
                 "      - name: b\n        shell: echo b\n        tags: tb\n"
                 "      - name: always\n        shell: echo always\n        tags: [always]\n"
                 "      - name: plain\n        shell: echo plain\n"),
    stage("two", "      - name: c\n        shell: echo c\n", extra="    tags: [ta]\n"),
)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((), ["a", "b", "always", "plain", "c"]),
        (("--tags", "ta"), ["a", "always", "c"]),
        (("--tags", "tb,nosuch"), ["b", "always"]),
        (("--skip-tags", "ta"), ["b", "always", "plain"]),
        (("--tags", "ta", "--skip-tags", "always"), ["a", "c"]),
    ],
)
def test_tags(tmp_path: Path, args: tuple[str, ...], expected: list[str]) -> None:
    r = play(tmp_path, TAGGED, *args)
    assert r.rc == 0, r.out
    assert r.ran() == expected


def test_start_at(tmp_path: Path) -> None:
    text = rb(stage("one", "      - name: s1\n        shell: echo\n      - name: s2\n        shell: echo\n"),
              stage("two", "      - name: t1\n        shell: echo\n      - name: t2\n        shell: echo\n"))
    assert play(tmp_path, text, "--start-at", "two/t2").ran() == ["t2"]
    assert play(tmp_path, text, "--start-at", "one/s2").ran() == ["s2", "t1", "t2"]
    assert play(tmp_path, text, "--start-at", "two").ran() == ["t1", "t2"]
    bad = play(tmp_path, text, "--start-at", "three")
    assert bad.rc == 2 and bad.ran() == []
    assert "--start-at 'three'" in bad.out + bad.err


def test_stage_when(tmp_path: Path) -> None:
    text = rb(stage("gated", "      - name: inside\n        shell: echo\n", extra="    when: go | bool\n"),
              stage("after", "      - name: next\n        shell: echo\n"))
    no = play(tmp_path, text, "-e", "go=no")
    assert no.rc == 0 and no.ran() == ["next"]
    assert "STAGE [gated] skipped" in no.out
    yes = play(tmp_path, text, "-e", "go=yes")
    assert yes.rc == 0 and yes.ran() == ["inside", "next"]


# --------------------------------------------------------------------------- on_failure


def test_abort_stops_the_run(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    r = play(tmp_path, rb(stage("first", "      - name: boom\n        fail: {msg: kaboom}\n      - name: same stage\n        shell: echo\n"),
                          stage("later", f"      - name: never\n        shell: touch {marker}\n")))
    assert r.rc == 1
    assert r.line("boom").endswith(": kaboom")
    assert r.ran() == ["boom"]
    assert "STAGE [later]" not in r.out
    assert not marker.exists()


POLICY = rb(
    stage("first", "      - name: maybe fail\n        shell: test {{ inventory_hostname }} != h1\n"
                   "      - name: next step\n        shell: echo next\n", extra="    on_failure: {policy}\n"),
    stage("later", "      - name: later step\n        shell: echo later\n"),
)


def test_on_failure_continue_goes_on_on_every_host(tmp_path: Path) -> None:
    r = play(tmp_path, POLICY.replace("{policy}", "continue"), inventory=TWO_LOCAL_HOSTS)
    assert r.rc == 1  # a step failed: the run failed, even though it went on
    # continue means continue: the host whose step failed goes on too (a verify stage runs
    # every check even when one fails), and so do later stages.
    assert r.ran("h1") == ["maybe fail", "next step", "later step"]
    assert r.ran("h2") == ["maybe fail", "next step", "later step"]


def test_on_failure_abort_stops_every_host(tmp_path: Path) -> None:
    r = play(tmp_path, POLICY.replace("{policy}", "abort"), inventory=TWO_LOCAL_HOSTS)
    assert r.rc == 1
    assert r.ran("h1") == ["maybe fail"]
    assert r.ran("h2") == ["maybe fail"]
    assert "STAGE [later]" not in r.out


# --------------------------------------------------------------------------- confirm / check mode


CONFIRM = rb(stage("danger", "      - name: touch it\n        shell: touch {{ marker }}\n",
                   extra="    confirm: \"Really touch {{ marker }} on {{ inventory_hostname }}?\"\n"))


def test_confirm_without_a_terminal_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    r = play(tmp_path, CONFIRM, "-e", f"marker={marker}")
    assert r.rc == 2
    assert "stage 'danger' asks for a typed confirmation and there is no terminal: nothing was run" in r.err
    assert "Traceback" not in r.out + r.err
    assert "--yes" in r.out + r.err
    assert not marker.exists()


def test_confirm_with_yes(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    r = play(tmp_path, CONFIRM, "-e", f"marker={marker}", "--yes")
    assert r.rc == 0, r.out
    assert f"confirmed by --yes: Really touch {marker} on localhost?" in r.out
    assert marker.exists()


def test_check_mode_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    text = rb(stage("s", "      - name: touch it\n        shell: touch {{ marker }}\n"
                         "      - name: fact\n        set_fact: {x: 1}\n"
                         "      - name: still asserts\n        assert: {that: x == 1 and check_mode}\n"))
    r = play(tmp_path, text, "-e", f"marker={marker}", "--check")
    assert r.rc == 0, r.out
    assert "[CHECK MODE: no changes]" in r.out
    assert r.line("touch it").endswith(f"check mode: would run: touch {marker}")
    assert (r.status("fact"), r.status("still asserts")) == ("ok", "ok")
    assert not marker.exists()
    # and a confirm stage needs no answer in check mode: nothing will change
    c = play(tmp_path, CONFIRM, "-e", f"marker={marker}", "--check")
    assert c.rc == 0 and not marker.exists()


def test_check_with_diff_shows_the_change(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    text = rb(stage("s", "      - name: touch it\n        shell: touch {{ marker }}\n"))
    plain = play(tmp_path, text, "-e", f"marker={marker}", "--check")
    assert "change:" not in plain.out
    r = play(tmp_path, text, "-e", f"marker={marker}", "--check", "--diff")
    assert r.rc == 0 and not marker.exists()
    assert f"    change: touch {marker}" in r.out.splitlines()


# --------------------------------------------------------------------------- variables


def test_set_fact_precedence(tmp_path: Path) -> None:
    text = rb(stage("s",
        "      - name: before\n        shell: echo {{ v }} > {{ d }}/before\n"
        "      - name: sf\n        set_fact: {v: from_set_fact}\n"
        "      - name: after\n        shell: echo {{ v }} > {{ d }}/after\n"), head="vars:\n  v: from_runbook\n")
    assert play(tmp_path, text, "-e", f"d={tmp_path}").rc == 0
    assert ((tmp_path / "before").read_text(), (tmp_path / "after").read_text()) == ("from_runbook\n", "from_set_fact\n")
    assert play(tmp_path, text, "-e", f"d={tmp_path}", "-e", "v=from_e").rc == 0
    assert ((tmp_path / "before").read_text(), (tmp_path / "after").read_text()) == ("from_e\n", "from_e\n")


def test_extra_vars_file(tmp_path: Path) -> None:
    (tmp_path / "vars.yml").write_text("n: 3\nitems: [x, y]\n")
    r = play(tmp_path, rb(stage("s", "      - name: typed\n        assert: {that: [n == 3, items | length == 2]}\n")),
             "-e", f"@{tmp_path / 'vars.yml'}")
    assert r.rc == 0 and r.status("typed") == "ok", r.out


# --------------------------------------------------------------------------- creates / unless


def test_creates_and_unless(tmp_path: Path) -> None:
    (tmp_path / "exists").write_text("")
    r = play(tmp_path, rb(stage("s",
        "      - name: created\n        shell: touch {{ d }}/c1\n        creates: '{{ d }}/exists'\n"
        "      - name: not created\n        shell: touch {{ d }}/c2\n        creates: '{{ d }}/nope'\n"
        "      - name: unless true\n        shell: touch {{ d }}/u1\n        unless: test -e {{ d }}/exists\n"
        "      - name: unless false\n        shell: touch {{ d }}/u2\n        unless: test -e {{ d }}/nope\n")),
        "-e", f"d={tmp_path}")
    assert r.rc == 0, r.out
    assert r.line("created").endswith(f"already done (creates: {tmp_path}/exists exists)")
    assert r.status("unless true") == "ok" and "already done (unless: shell: test -e" in r.line("unless true")
    assert (r.status("not created"), r.status("unless false")) == ("changed", "changed")
    assert sorted(p.name for p in tmp_path.iterdir() if re.fullmatch(r"[cu]\d", p.name)) == ["c2", "u2"]


# --------------------------------------------------------------------------- hosts: run_once, forks


def test_run_once_with_two_hosts(tmp_path: Path) -> None:
    once = tmp_path / "once"
    r = play(tmp_path, rb(stage("s",
        "      - name: once\n        shell: echo {{ inventory_hostname }} >> {{ f }}\n        run_once: true\n        register: o\n"
        "      - name: both see it\n        assert: {that: o.rc == 0}\n")), "-e", f"f={once}", inventory=TWO_LOCAL_HOSTS)
    assert r.rc == 0, r.out
    assert once.read_text() == "h1\n"
    assert (r.status("both see it", "h1"), r.status("both see it", "h2")) == ("ok", "ok")


FORKS = rb(stage("s", "      - name: overlap\n        shell: echo start >> {{ f }}; sleep 0.4; echo end >> {{ f }}\n"))


@pytest.mark.parametrize(("forks", "expected"), [("2", ["start", "start", "end", "end"]), ("1", ["start", "end", "start", "end"])])
def test_forks(tmp_path: Path, forks: str, expected: list[str]) -> None:
    f = tmp_path / "log"
    r = play(tmp_path, FORKS, "-e", f"f={f}", "--forks", forks, inventory=TWO_LOCAL_HOSTS)
    assert r.rc == 0, r.out
    assert f.read_text().split() == expected


def test_bad_forks_is_exit_2(tmp_path: Path) -> None:
    assert play(tmp_path, FORKS, "-e", "f=x", "--forks", "0").rc == 2


# --------------------------------------------------------------------------- time: timeout, budget


def test_timeout_fails_fast(tmp_path: Path) -> None:
    """Stopped at its timeout, not waited out: had the run waited for the command to end on its
    own, "finished" would be there (no clock)."""
    finished = tmp_path / "finished"
    r = play(tmp_path, rb(stage("s", f"      - name: slow\n        shell: sleep 30; touch {finished}\n        timeout: 1s\n")))
    assert r.rc == 1
    assert r.status("slow") == "failed"
    assert "timeout" in r.line("slow")
    assert not finished.exists()


def test_budget_warns_the_moment_it_is_exceeded_and_in_the_recap(tmp_path: Path) -> None:
    # The slow step ends only once the run has journaled the budget warning (printed just
    # before): it is still running when the warning comes, whatever the machine's load.
    journals = tmp_path / "journal"
    slow = f"until grep -qs budget_exceeded {journals}/*/journal.jsonl; do sleep 0.05; done"
    r = play(tmp_path, rb(stage("timed", f"      - name: slow\n        shell: {slow}\n      - name: quick\n        shell: echo\n",
                                extra="    budget: 1s\n")))
    assert r.rc == 0  # a budget warns; it does not fail the run
    lines = r.out.splitlines()
    assert "STAGE [timed] · budget 1.0s · 1 host " in r.out
    warn = lines.index("WARNING: stage [timed] exceeded its budget of 1.0s")
    assert warn < lines.index(r.line("slow"))  # printed while the step was still running
    recap = r.out.split("RECAP", 1)[1]
    assert re.search(r"^stage timed +ok .*/ +1\.0s +OVER BUDGET", recap, re.M), recap


# --------------------------------------------------------------------------- colour


def _pty_run(args: list[str], env: dict[str, str], cwd: Path) -> bytes:
    master, slave = pty.openpty()
    proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd, close_fds=True)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    proc.wait(timeout=30)
    os.close(master)
    return out


@pytest.mark.parametrize("no_color", [True, False])
def test_no_color_on_a_terminal(tmp_path: Path, no_color: bool) -> None:
    (tmp_path / "rb.yml").write_text(rb(stage("s", "      - name: hello\n        shell: echo hi\n")))
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    env.update(TERM="xterm-256color", RUNBOOK_HOME=str(tmp_path / "home"))
    if no_color:
        env["NO_COLOR"] = "1"
    out = _pty_run([sys.executable, "-m", "engine.cli", "play", "rb.yml", "--journal-dir", str(tmp_path / "j")], env, tmp_path)
    assert b"hello" in out and b"Traceback" not in out
    assert (b"\x1b[" in out) is not no_color


def test_arguments_are_checked_again_after_rendering(tmp_path: Path) -> None:
    text = rb(stage("s", "      - name: wait\n        pause: {seconds: '{{ how_long }}'}\n"
                         "      - name: retry\n        shell: 'true'\n        retries: '{{ how_long }}'\n"))
    r = play(tmp_path, text, "-e", "how_long=soon")
    assert r.rc == 1
    assert "after rendering, pause.seconds: 'soon' is not a duration" in r.line("wait")
    assert "internal error" not in r.out


def test_unusable_journal_dir_or_report_path_is_refused_before_running(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    text = rb(stage("s", "      - name: touch it\n        shell: touch {{ marker }}\n"))
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    r = play(tmp_path, text, "-e", f"marker={marker}", "--journal-dir", str(blocker / "journal"))
    assert r.rc == 2 and "the journal dir" in r.err and "cannot be created" in r.err
    r = play(tmp_path, text, "-e", f"marker={marker}", "--report", str(blocker / "r.json"))
    assert r.rc == 2 and "the report's directory" in r.err
    assert not marker.exists()  # nothing ran


@pytest.mark.parametrize("suffix", ["json", "xml", "md", "html"])
def test_reports_are_readable_by_their_owner_only(tmp_path: Path, suffix: str) -> None:
    """A report carries row data (verify samples, diffs): 0600 like the journal, with
    ``--report`` and with ``runbook report -o``, also over an older world-readable file."""
    path = tmp_path / f"incident.{suffix}"
    path.write_text("an older report")
    path.chmod(0o644)
    r = play(tmp_path, rb(stage("s", "      - name: hello\n        shell: echo hi\n")), "--report", str(path))
    assert r.rc == 0, r.out + r.err
    assert path.read_text() != "an older report"
    assert oct(path.stat().st_mode & 0o777) == oct(0o600)
    run_id = re.search(r"^RUN_ID (\S+)$", r.out, re.M).group(1)  # type: ignore[union-attr]
    fmt = {"xml": "junit"}.get(suffix, suffix)
    again = tmp_path / f"again.{suffix}"
    proc = subprocess.run([sys.executable, "-m", "engine.cli", "report", run_id, "--format", fmt, "-o", str(again),
                           "--journal-dir", str(tmp_path / "journal")], cwd=tmp_path, capture_output=True, text=True,
                          env=dict(os.environ, NO_COLOR="1", RUNBOOK_HOME=str(tmp_path / "home")), timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert oct(again.stat().st_mode & 0o777) == oct(0o600)
