"""``notify`` end to end through `runbook play`: a webhook served by a local HTTP server on
127.0.0.1 that this test starts (it answers what each test scripts: 200, 500, 404), and a
local command. A notification that cannot be delivered never fails the run unless
``required: true``; secrets never leave in the message; the webhook URL (a token) never
reaches the output or the journal; check mode posts nothing and says what it would post."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "T0KEN-b7e2c9a1f4"


class Hook:
    """A webhook on 127.0.0.1: records every POST, answers the scripted statuses in turn
    (then 200)."""

    def __init__(self) -> None:
        self.posts: list[dict[str, object]] = []
        self.headers: list[dict[str, str]] = []
        self.answers: list[int] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                hook.posts.append(json.loads(body))
                hook.headers.append(dict(self.headers))
                status = hook.answers.pop(0) if hook.answers else 200
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"ok" if status == 200 else b"no such hook")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/services/{TOKEN}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook() -> Iterator[Hook]:
    h = Hook()
    yield h
    h.close()


def play(tmp: Path, steps: str, *args: str, vars_: str = "", host_vars: str = "") -> tuple[int, str, str]:
    """Play a one-stage runbook on localhost; (exit code, output, journal text)."""
    if host_vars:
        (tmp / "inv.yml").write_text("all:\n  hosts:\n    localhost:\n      connection: local\n" + host_vars)
        args = (*args, "-i", str(tmp / "inv.yml"))
    rb = tmp / "rb.yml"
    rb.write_text("name: notify test\n" + (f"vars:\n{vars_}" if vars_ else "") + "stages:\n  - name: tell\n    steps:\n" + steps)
    journal = tmp / "journal"
    env = dict(os.environ, NO_COLOR="1", RUNBOOK_HOME=str(tmp / "home"))
    res = subprocess.run([sys.executable, "-m", "engine.cli", "play", str(rb), "--journal-dir", str(journal), *args],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    out = res.stdout + res.stderr
    assert "Traceback" not in out, out
    text = "".join(p.read_text() for p in journal.rglob("*.jsonl")) if journal.exists() else ""
    return res.returncode, out, text


def notify_step(name: str, body: str, extra: str = "") -> str:
    return f"      - name: {name}\n        notify:\n{body}{extra}"


def test_webhook_gets_the_line_as_json_and_the_url_stays_secret(tmp_path: Path, hook: Hook) -> None:
    rc, out, journal = play(tmp_path, notify_step("Tell", f"          url: {hook.url}\n"
                                                          "          message: \"restore of {{ schema }} started\"\n",
                                                  "        register: n\n"
                            "      - name: Registered\n        assert: {that: [n.sent, \"n.deliveries[0].attempts == 1\"]}\n"),
                            vars_="  schema: shop\n")
    assert rc == 0, out
    assert len(hook.posts) == 1
    post = hook.posts[0]
    assert post["text"] == "restore of shop started" and post["host"] == "localhost" and post["stage"] == "tell"
    assert post["run_id"] and hook.headers[0]["Content-Type"] == "application/json"
    assert "posted to webhook http://127.0.0.1:" in out and "restore of shop started" in out
    assert TOKEN not in out and TOKEN not in journal  # the URL's path is the credential


def test_a_5xx_is_retried_a_404_is_not_and_neither_fails_the_run(tmp_path: Path, hook: Hook) -> None:
    hook.answers = [500, 503, 200, 404]
    rc, out, _ = play(tmp_path,
                      notify_step("Busy", f"          url: {hook.url}\n          message: first\n          delay: 0\n",
                                  "        register: busy\n")
                      + notify_step("Wrong", f"          url: {hook.url}\n          message: second\n          delay: 0\n",
                                    "        register: wrong\n")
                      + "      - name: After\n        assert:\n          that:\n"
                        "            - busy.sent and busy.deliveries[0].attempts == 3\n"
                        "            - not wrong.sent and wrong.deliveries[0].attempts == 1 and wrong.deliveries[0].status == 404\n")
    assert rc == 0, out
    assert [p["text"] for p in hook.posts] == ["first", "first", "first", "second"]
    assert "not delivered, the run goes on: webhook http://127.0.0.1:" in out and "HTTP 404" in out


def test_required_fails_the_step_when_nothing_answers(tmp_path: Path) -> None:
    # a port nobody listens on: bind one, learn its number, close it
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    rc, out, _ = play(tmp_path, notify_step("Must reach", f"          url: http://127.0.0.1:{port}/hook\n"
                                                          "          message: page the DBA\n          retries: 1\n"
                                                          "          delay: 0\n          required: true\n"))
    assert rc == 1, out
    assert "not delivered (required): webhook http://127.0.0.1:" in out and "2 attempt(s)" in out


def test_local_command_gets_the_message_on_stdin_never_in_its_command_line(tmp_path: Path) -> None:
    got, pwned = tmp_path / "got.txt", tmp_path / "pwned"
    rc, out, _ = play(tmp_path, notify_step(
        "Tell", f"          cmd: 'cat > {got}; printf \"%s\" \"$RUNBOOK_STAGE\" >> {got}'\n"
                f"          message: 'orders back; $(touch {pwned})'\n"))
    assert rc == 0, out
    assert got.read_text() == f"orders back; $(touch {pwned})\ntell"
    assert not pwned.exists()


def test_secrets_are_masked_in_what_is_posted(tmp_path: Path, hook: Hook) -> None:
    rc, out, _ = play(tmp_path, notify_step("Leak", f"          url: {hook.url}\n"
                                                    "          message: \"connect with {{ db_password }}\"\n"
                                                    "          headers: {Authorization: \"Bearer {{ api_token }}\"}\n"),
                      host_vars="      db_password: s3cr3t-pass-42\n      api_token: tok-99887766\n")
    assert rc == 0, out
    assert hook.posts[0]["text"] == "connect with ********"
    assert hook.headers[0]["Authorization"] == "Bearer tok-99887766"  # sent, never shown
    assert "s3cr3t-pass-42" not in out and "tok-99887766" not in out


def test_check_mode_posts_nothing_and_says_what_it_would(tmp_path: Path, hook: Hook) -> None:
    rc, out, _ = play(tmp_path, notify_step("Tell", f"          url: {hook.url}\n          message: stage restore started\n"),
                      "--check")
    assert rc == 0, out
    assert hook.posts == []
    assert "would post to webhook http://127.0.0.1:" in out and "/…: stage restore started" in out
    assert TOKEN not in out


def test_empty_channels_skip_the_step(tmp_path: Path) -> None:
    rc, out, _ = play(tmp_path, notify_step("Tell", "          url: \"{{ notify_url }}\"\n          cmd: \"{{ notify_cmd }}\"\n"
                                                    "          message: hello\n"),
                      vars_="  notify_url: ''\n  notify_cmd: ''\n")
    assert rc == 0, out
    assert "no incident channel configured" in out


def test_validate_refuses_a_notify_without_a_channel_or_with_a_bad_url(tmp_path: Path) -> None:
    rb = tmp_path / "rb.yml"
    rb.write_text("name: bad\nstages:\n  - name: s\n    steps:\n"
                  "      - name: nowhere\n        notify: {message: hi}\n"
                  "      - name: ftp\n        notify: {message: hi, url: 'ftp://example.com/x'}\n")
    res = subprocess.run([sys.executable, "-m", "engine.cli", "validate", str(rb)], cwd=ROOT, capture_output=True, text=True,
                         env=dict(os.environ, NO_COLOR="1", RUNBOOK_HOME=str(tmp_path / "home")), timeout=60)
    assert res.returncode == 2
    assert "notify needs a url (webhook), a cmd (local command), or both" in res.stderr
    assert "ftp://example.com/… is not an http(s) URL" in res.stderr


# ----------------------------------------------------------------- the run's channel (notify: at runbook level)


def play_runbook(tmp: Path, text: str, *args: str, command: str = "play") -> tuple[int, str, str]:
    """Run `runbook COMMAND` (play: of ``text``, written to rb.yml); (exit code, output, journal text)."""
    rb = tmp / "rb.yml"
    if command == "play":
        rb.write_text(text)
        args = (str(rb), *args)
    journal = tmp / "journal"
    env = dict(os.environ, NO_COLOR="1", RUNBOOK_HOME=str(tmp / "home"))
    res = subprocess.run([sys.executable, "-m", "engine.cli", command, *args, "--journal-dir", str(journal)],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    out = res.stdout + res.stderr
    assert "Traceback" not in out, out
    text = "".join(p.read_text() for p in journal.rglob("*.jsonl")) if journal.exists() else ""
    return res.returncode, out, text


def notify_events(journal: str) -> list[dict[str, object]]:
    return [r for r in map(json.loads, journal.splitlines()) if r.get("kind") == "notify"]


def run_id_of(out: str) -> str:
    return next(line.split()[1] for line in out.splitlines() if line.startswith("RUN_ID "))


FAILING = """name: channel test
vars: {{notify_url: "", notify_cmd: ""}}
notify: {{url: "{{{{ notify_url }}}}", cmd: "{{{{ notify_cmd }}}}", delay: 0}}
stages:
  - name: prepare
    budget: 5m
    steps:
      - name: Fine
        shell: "true"
  - name: restore
    steps:
      - name: Break it
        shell: "echo 'ERROR 1146: no such table' >&2; exit 3"
      - name: Never
        shell: "true"
"""


def test_a_failing_run_posts_each_stage_and_a_final_failed_line_naming_the_step(tmp_path: Path, hook: Hook) -> None:
    rc, out, journal = play_runbook(tmp_path, FAILING.format(), "-e", f"notify_url={hook.url}")
    assert rc == 1, out
    texts = [str(p["text"]) for p in hook.posts]
    assert len(texts) == 5, texts
    assert texts[0].startswith("localhost: stage [prepare] started (budget 5m00s)")
    assert texts[1].startswith("localhost: stage [prepare] ok in ") and "(budget 5m00s)" in texts[1]
    assert texts[2].startswith("localhost: stage [restore] started")
    assert texts[3].startswith("localhost: stage [restore] failed in ")
    final = texts[4]
    assert final.startswith("channel test: run ") and " FAILED in " in final, final
    assert f"at restore/Break it on localhost ({tmp_path / 'rb.yml'}:12): command exited with 3" in final, final
    assert "to continue: runbook resume" in final
    assert [p["stage"] for p in hook.posts] == ["prepare", "prepare", "restore", "restore", ""]
    # journaled, masked: the webhook's token is in neither the journal nor the output
    events = notify_events(journal)
    assert [e["event"] for e in events] == ["stage_start", "stage_end", "stage_start", "stage_end", "run_end"]
    assert all(e["sent"] for e in events) and events[-1]["message"] == final
    assert TOKEN not in journal and TOKEN not in out


def test_the_report_path_is_in_the_final_line_and_secrets_are_masked(tmp_path: Path, hook: Hook) -> None:
    rb = FAILING.format().replace("exit 3", "echo {{ chat_password }}; exit 3")
    rb = rb.replace("vars: {", "vars: {chat_password: pw-8812-secret, ")
    report = tmp_path / "r.json"
    rc, out, journal = play_runbook(tmp_path, rb, "-e", f"notify_url={hook.url}", "--report", str(report))
    assert rc == 1, out
    assert hook.posts[-1]["text"].endswith(f"; report: {report}; to continue: runbook resume {run_id_of(out)} "
                                           f"--journal-dir {tmp_path / 'journal'}"), hook.posts[-1]
    assert "pw-8812-secret" not in json.dumps(hook.posts) + journal + out + report.read_text()


def test_an_interrupted_run_posts_its_final_line(tmp_path: Path, hook: Hook) -> None:
    import signal

    from tests.cliutil import wait_for_journal_record

    work = tmp_path
    (work / "rb.yml").write_text(f"""name: interrupted
notify: {{url: "{hook.url}"}}
stages:
  - name: work
    steps:
      - name: Long
        shell: "touch {work}/started; while [ ! -e {work}/release ]; do sleep 0.02; done"
      - name: After
        shell: "true"
  - name: later
    steps:
      - name: Never
        shell: "true"
""")
    env = dict(os.environ, NO_COLOR="1", RUNBOOK_HOME=str(work / "home"))
    env.pop("RUNBOOK_FAULT_KILL_AT_SEQ", None)
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "play", str(work / "rb.yml")], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for_journal_record(work / "home", proc, "the long step's intent", type="intent", step="work/Long")
        while not (work / "started").exists():  # the step runs: its command made the file
            assert proc.poll() is None
            threading.Event().wait(0.01)
        os.killpg(proc.pid, signal.SIGINT)
        wait_for_journal_record(work / "home", proc, "the first interrupt", kind="interrupted", presses=1)
        (work / "release").touch()
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out
    texts = [str(p["text"]) for p in hook.posts]
    assert texts[0].startswith("localhost: stage [work] started")
    assert texts[1].startswith("localhost: stage [work] interrupted in "), texts
    assert " INTERRUPTED in " in texts[-1] and "by the operator (Ctrl-C) during stage [work]" in texts[-1], texts
    assert "to continue: runbook resume" in texts[-1] and len(texts) == 3, texts


def test_an_unreachable_webhook_does_not_fail_the_run_and_is_journaled(tmp_path: Path) -> None:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    rc, out, journal = play_runbook(tmp_path, f"""name: nobody listens
notify: {{url: "http://127.0.0.1:{port}/hook/{TOKEN}", retries: 1, delay: 0}}
stages:
  - name: only
    steps:
      - name: Work
        shell: "true"
""")
    assert rc == 0, out
    assert "succeeded" in out
    assert "notify: the incident channel was not told (not delivered, the run goes on: webhook http://127.0.0.1:" in out
    events = notify_events(journal)
    assert [e["event"] for e in events] == ["stage_start", "stage_end", "run_end"]
    assert not any(e["sent"] for e in events)
    assert all("Connection refused" in str(e["error"]) and e["deliveries"][0]["attempts"] == 2 for e in events), events
    assert TOKEN not in journal and TOKEN not in out


def test_check_mode_posts_nothing_and_says_it_once(tmp_path: Path, hook: Hook) -> None:
    rc, out, journal = play_runbook(tmp_path, FAILING.format(), "-e", f"notify_url={hook.url}", "--check")
    assert hook.posts == []
    assert out.count("check mode: the run's notify: channel posts nothing") == 1, out
    assert [e["event"] for e in notify_events(journal)] == ["check_mode"]
    assert rc in (0, 1)


def test_empty_url_and_cmd_send_nothing(tmp_path: Path, hook: Hook) -> None:
    rc, out, journal = play_runbook(tmp_path, FAILING.format())
    assert rc == 1, out
    assert hook.posts == [] and notify_events(journal) == [] and "incident channel" not in out


def test_resume_and_rollback_post_their_lines(tmp_path: Path, hook: Hook) -> None:
    made, fixed = tmp_path / "made", tmp_path / "fixed"
    text = f"""name: undo me
notify: {{url: "{hook.url}"}}
stages:
  - name: change
    steps:
      - name: Make
        shell: "touch {made}"
        undo: {{shell: "rm {made}"}}
      - name: Check
        shell: "test -e {fixed}"
"""
    rc, out, _ = play_runbook(tmp_path, text)
    assert rc == 1 and made.exists(), out
    run_id = run_id_of(out)
    assert "at change/Check on localhost" in str(hook.posts[-1]["text"])
    del hook.posts[:]
    rc, out, _ = play_runbook(tmp_path, "", run_id, "--yes", command="rollback")
    assert rc == 0 and not made.exists(), out
    texts = [str(p["text"]) for p in hook.posts]
    assert texts[0] == f"undo me: rollback of run {run_id} started: 1 step(s) to undo, newest first", texts
    assert texts[-1].startswith(f"undo me: rollback of run {run_id} ROLLED BACK in "), texts
    # a new run, fixed, resumed: its lines say so
    del hook.posts[:]
    rc, out, _ = play_runbook(tmp_path, text)
    run_id = run_id_of(out)
    fixed.touch()
    del hook.posts[:]
    rc, out, _ = play_runbook(tmp_path, "", run_id, command="resume")
    assert rc == 0, out
    assert str(hook.posts[-1]["text"]).startswith(f"undo me: run {run_id} (resumed) SUCCEEDED in "), hook.posts


def test_a_stage_rolled_back_says_so_in_the_final_line(tmp_path: Path, hook: Hook) -> None:
    rc, out, _ = play_runbook(tmp_path, f"""name: rollback stage
notify: {{url: "{hook.url}"}}
stages:
  - name: change
    on_failure: rollback
    steps:
      - name: Make
        shell: "touch {tmp_path}/made"
        undo: {{shell: "rm {tmp_path}/made"}}
      - name: Fail
        fail: {{msg: "verify failed: 3 orphans"}}
""")
    assert rc == 1, out
    texts = [str(p["text"]) for p in hook.posts]
    assert texts[1].startswith("localhost: stage [change] rolled back in "), texts
    assert " ROLLED BACK in " in texts[-1] and "at change/Fail on localhost" in texts[-1] and "verify failed: 3 orphans" in texts[-1]


@pytest.mark.parametrize(("key", "error"), [
    ("{url: 'ftp://example.com/x'}", "rb.yml:2:15: notify.url: ftp://example.com/… is not an http(s) URL"),
    ("{message: hi, url: 'http://x/'}", "rb.yml:2:10: notify: unknown key 'message'"),
    ("{retries: 2}", "rb.yml:2:9: notify: notify needs a url (webhook), a cmd (local command), or both"),
    ("{url: '{{ hook_url }}'}", "rb.yml:2:9: notify: variable 'hook_url' is not defined for the run's notify:"),
])
def test_validate_refuses_a_bad_run_channel_with_its_line(tmp_path: Path, key: str, error: str) -> None:
    rb = tmp_path / "rb.yml"
    rb.write_text(f"name: bad\nnotify: {key}\nstages:\n  - name: s\n    steps:\n      - name: a\n        shell: 'true'\n")
    for cmd in ("validate", "play"):
        res = subprocess.run([sys.executable, "-m", "engine.cli", cmd, str(rb)], cwd=ROOT, capture_output=True, text=True,
                             env=dict(os.environ, NO_COLOR="1", RUNBOOK_HOME=str(tmp_path / "home")), timeout=60)
        assert res.returncode == 2, res.stdout + res.stderr
        assert error in res.stderr, res.stderr
    assert not (tmp_path / "home").exists() or not any((tmp_path / "home").rglob("*.jsonl"))
