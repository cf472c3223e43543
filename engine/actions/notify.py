"""``notify``: one line to the incident channel — a webhook (JSON POST) and/or a local command.

The people around an incident need to know where the recovery is without asking the DBA who is
running it: what the assessment found, each stage starting and ending, the final line. A chat
that is down must never stop a recovery, so a notification that cannot be delivered is a
warning, not a failure, unless the step says ``required: true``.

Delivery: each channel is tried ``retries + 1`` times with a doubling delay; a webhook answer
4xx (other than 408/429) is final (the URL or the payload is wrong: retrying changes nothing),
5xx, 408, 429 and connection errors are retried. The local command runs on the *control
machine* (the incident channel is reached from where the operator sits, not from the database
host) with the message on its standard input and in ``$RUNBOOK_MESSAGE``: it is never spliced
into the command line, so a message cannot inject a command.

Secrets: every secret value the run knows is masked in the message and the JSON body before
they leave; the webhook URL (a Slack/Mattermost URL *is* a token) is shown as
``scheme://host/…`` only, and registered with the masker so that it never reaches the console,
the journal or a report. Check mode posts nothing and says what it would post, and where.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.parse
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from engine.actions.base import Action, duration_problem, register
from engine.errors import ActionError
from engine.language.durations import parse_duration
from engine.model import Status, StepResult
from engine.secrets import MASKER, reveal

DEFAULT_TIMEOUT = 5.0
DEFAULT_RETRIES = 2
DEFAULT_DELAY = 1.0
MAX_DELAY = 30.0
#: webhook answers worth another try (the service is busy or timed out); other 4xx are final
RETRYABLE_HTTP = frozenset({408, 425, 429})


@dataclass
class Delivery:
    """How one channel went: ``kind`` webhook|command, ``target`` (redacted), ``ok``."""

    kind: str
    target: str
    ok: bool = False
    attempts: int = 0
    status: int | None = None  # HTTP status, or the command's exit code
    error: str = ""


def redact_url(url: str) -> str:
    """``https://hooks.example.com/…``: the scheme and host, never the path or query (the token)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or "?"
    if parts.port:
        host = f"{host}:{parts.port}"
    tail = "/…" if (parts.path not in ("", "/") or parts.query) else "/"
    return f"{parts.scheme}://{host}{tail}"


def _text(value: Any) -> str:
    return "" if value is None else str(reveal(value))


@register
class Notify(Action):
    """Post a line to the incident channel; never fails the run unless ``required: true``.

    ```yaml
    - name: Tell the incident channel
      notify:
        message: "{{ inventory_hostname }}: restore of {{ schema }} started"
        url: "{{ notify_url }}"             # JSON POST {"text": message, "run_id", "host", "stage"}
        cmd: "logger -t runbook"            # and/or a command on the control machine (message on stdin)
        headers: {Authorization: "Bearer {{ chat_token }}"}
        retries: 2                          # per channel, delay doubling from `delay` (default 1s)
        timeout: 5s                         # per attempt
        required: false                     # true: an undelivered message fails the step
      when: (notify_url ~ notify_cmd) | length > 0
    ```

    An empty ``url`` and ``cmd`` (unset SOP variables) skip the step. Registers ``sent`` (every
    channel delivered), ``message`` (as posted, masked), ``deliveries`` (per channel: ``kind``,
    ``target`` redacted, ``ok``, ``attempts``, ``status``, ``error``).
    """

    name = "notify"
    mutating = True  # it reaches outside: check mode must not post
    idempotent = True  # an in-doubt post is posted again: a duplicate line beats a missing one
    identity_guard = ""  # it changes no server
    channel_message = "message"  # runbook-level `notify:` makes it the run's channel (engine.run.channel)
    credential_params = ("url", "headers")  # a Slack/Mattermost URL is a token; so is an Authorization header
    params_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["message"],
        "properties": {
            "message": {"type": "string", "description": "the line to post (secrets are masked before it leaves)"},
            "url": {"type": "string", "description": "webhook: http(s) URL the JSON body is POSTed to; empty: none"},
            "cmd": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}],
                    "description": "a command on the control machine (string: /bin/sh -c; list: argv); the message on stdin and in $RUNBOOK_MESSAGE; empty: none"},
            "body": {"type": "object", "description": "JSON body to post instead of {text, run_id, host, stage} (e.g. {content: ...} for Discord)"},
            "headers": {"type": "object", "additionalProperties": {"type": "string"}, "description": "extra HTTP headers (values masked everywhere)"},
            "retries": {"anyOf": [{"type": "integer", "minimum": 0, "maximum": 10}, {"type": "string"}], "description": "further attempts per channel (default 2)"},
            "delay": {"anyOf": [{"type": "number", "minimum": 0}, {"type": "string"}], "description": "before the first retry, doubled each time (default 1s, at most 30s)"},
            "timeout": {"anyOf": [{"type": "number", "minimum": 0}, {"type": "string"}], "description": "per attempt (default 5s: a channel that hangs must not hold a recovery)"},
            "required": {"type": "boolean", "description": "an undelivered message fails the step (default false: a warning)"},
        },
    }

    @classmethod
    def static_problems(cls, args: Any) -> list[tuple[str, str]]:
        if not isinstance(args, dict):
            return []
        if "url" not in args and "cmd" not in args:
            return [("", "notify needs a url (webhook), a cmd (local command), or both")]
        url = args.get("url")
        if isinstance(url, str) and url and "{{" not in url and urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            return [("url", f"{redact_url(url)} is not an http(s) URL")]
        return duration_problem(args, "timeout", "delay")

    # -- what would go out ---------------------------------------------------------------
    def _message(self) -> str:
        return MASKER.text(_text(self.args.get("message")).strip())

    def _url(self) -> str:
        url = _text(self.args.get("url")).strip()
        if url:
            MASKER.add(url)  # the URL is a credential: never shown, journaled or reported whole
        return url

    def _cmd(self) -> str | list[str]:
        cmd = self.args.get("cmd")
        if isinstance(cmd, list):
            return [str(reveal(c)) for c in cmd]
        return _text(cmd).strip()

    def _headers(self) -> dict[str, str]:
        out = {}
        for k, v in (self.args.get("headers") or {}).items():
            value = _text(v)
            MASKER.add(value)
            out[str(k)] = value
        return out

    def _body(self, message: str) -> dict[str, Any]:
        body = self.args.get("body")
        if isinstance(body, dict):
            return MASKER.data(body)  # type: ignore[no-any-return]
        return {"text": message, "run_id": self.ctx.run_id, "host": self.ctx.host.name,
                "stage": str(self.ctx.vars.get("stage", "") or "")}

    def _channels(self) -> list[str]:
        out = []
        if self._url():
            out.append(f"webhook {redact_url(self._url())}")
        cmd = self._cmd()
        if cmd:
            out.append(f"command {MASKER.text(cmd if isinstance(cmd, str) else ' '.join(cmd))}")
        return out

    def check(self) -> StepResult:
        message, channels = self._message(), self._channels()
        if not channels:
            return StepResult(Status.SKIPPED, msg="check mode: no incident channel configured (url and cmd empty)")
        return StepResult(Status.SKIPPED, msg=f"check mode: would post to {' and '.join(channels)}: {message}",
                          data={"message": message, "sent": False}, diff=message)

    # -- delivery ------------------------------------------------------------------------
    def _limits(self) -> tuple[int, float, float]:
        a = self.args
        try:
            retries = int(a.get("retries", DEFAULT_RETRIES))
            delay = parse_duration(a.get("delay", DEFAULT_DELAY))
            timeout = parse_duration(a.get("timeout", DEFAULT_TIMEOUT))
        except (TypeError, ValueError) as exc:
            raise ActionError(f"notify: {exc}", hint="retries is a number; delay and timeout are durations (10s)") from None
        if not 0 <= retries <= 10:
            raise ActionError(f"notify: retries={retries} is outside 0..10")
        return retries, delay, timeout

    def _attempt_timeout(self, timeout: float) -> float:
        left = self.ctx.remaining()  # the step's own timeout bounds every attempt
        return max(0.1, timeout if left is None else min(timeout, left))

    def _post(self, url: str, body: dict[str, Any], headers: dict[str, str], timeout: float) -> tuple[bool, bool, int | None, str]:
        """(delivered, worth retrying, HTTP status, error)."""
        import urllib.error  # urllib.request (http.client, email) is imported when a webhook is sent
        import urllib.request

        data = json.dumps(body, default=str).encode()
        req = urllib.request.Request(url, data=data, method="POST",
                                     headers={"Content-Type": "application/json", "User-Agent": "runbook-notify", **headers})
        try:
            with urllib.request.urlopen(req, timeout=self._attempt_timeout(timeout)) as resp:
                return True, False, int(resp.status), ""
        except urllib.error.HTTPError as exc:
            detail = exc.read(300).decode("utf-8", "replace").strip() if exc.fp is not None else ""
            retry = exc.code >= 500 or exc.code in RETRYABLE_HTTP
            return False, retry, exc.code, MASKER.text(f"HTTP {exc.code} {exc.reason}" + (f": {detail}" if detail else ""))
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            return False, True, None, MASKER.text(f"{type(exc).__name__}: {reason}")

    def _run_cmd(self, cmd: str | list[str], message: str, timeout: float) -> tuple[bool, bool, int | None, str]:
        env = dict(os.environ, RUNBOOK_MESSAGE=message, RUNBOOK_RUN_ID=self.ctx.run_id, RUNBOOK_HOST=self.ctx.host.name,
                   RUNBOOK_STAGE=str(self.ctx.vars.get("stage", "") or ""))
        argv = ["/bin/sh", "-c", cmd] if isinstance(cmd, str) else cmd
        try:
            res = subprocess.run(argv, input=message + "\n", text=True, capture_output=True, env=env,
                                 timeout=self._attempt_timeout(timeout))
        except subprocess.TimeoutExpired:
            return False, True, None, f"timed out after {timeout:g}s"
        except OSError as exc:
            return False, False, None, MASKER.text(f"cannot run it: {exc}")
        if res.returncode == 0:
            return True, False, 0, ""
        return False, True, res.returncode, MASKER.text(f"exit {res.returncode}: {(res.stderr or res.stdout).strip()[-300:]}")

    def _deliver(self, d: Delivery, send: Any, retries: int, delay: float) -> Delivery:
        wait = delay
        while True:
            d.attempts += 1
            ok, retry, status, error = send()
            d.ok, d.status, d.error = ok, status, error
            if ok or not retry or d.attempts > retries or self.ctx.interrupted.is_set():
                return d
            left = self.ctx.remaining()
            if left is not None and left <= wait:
                return d
            time.sleep(min(wait, MAX_DELAY))
            wait = min(wait * 2, MAX_DELAY) if wait else 0.0

    def apply(self) -> StepResult:
        message = self._message()
        url, cmd, headers = self._url(), self._cmd(), self._headers()
        if not url and not cmd:
            return StepResult(Status.SKIPPED, msg="no incident channel configured (url and cmd empty)",
                              data={"message": message, "sent": False, "deliveries": []})
        if url and urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            raise ActionError(f"notify: {redact_url(url)} is not an http(s) URL")
        retries, delay, timeout = self._limits()
        deliveries: list[Delivery] = []
        if url:
            body = self._body(message)
            deliveries.append(self._deliver(Delivery("webhook", redact_url(url)),
                                            lambda: self._post(url, body, headers, timeout), retries, delay))
        if cmd:
            shown = MASKER.text(cmd if isinstance(cmd, str) else " ".join(cmd))
            deliveries.append(self._deliver(Delivery("command", shown),
                                            lambda: self._run_cmd(cmd, message, timeout), retries, delay))
        failed = [d for d in deliveries if not d.ok]
        data = {"message": message, "sent": not failed, "deliveries": [asdict(d) for d in deliveries]}
        if not failed:
            where = " and ".join(f"{d.kind} {d.target}" for d in deliveries)
            return StepResult(Status.CHANGED, msg=f"posted to {where}: {message}", data=data)
        why = "; ".join(f"{d.kind} {d.target}: {d.error} ({d.attempts} attempt(s))" for d in failed)
        if self.args.get("required"):
            return StepResult(Status.FAILED, msg=f"not delivered (required): {why}", data=data,
                              evidence=f"message: {message}")
        status = Status.CHANGED if len(failed) < len(deliveries) else Status.OK
        return StepResult(status, msg=f"not delivered, the run goes on: {why}", data=data,
                          warnings=[f"notify: not delivered: {why}"])
