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
