"""The run's incident channel: a runbook-level ``notify:`` posts each stage's start and end and
the run's final line — also when a step fails, the operator interrupts or a stage is rolled
back, which explicit ``notify`` steps cannot say (the run stops before them).

```yaml
notify: {url: "{{ notify_url }}", cmd: "{{ notify_cmd }}"}   # both empty: nothing is sent
```

The engine names no action here: the runbook key names it (``RUN_KEYS`` of
:mod:`engine.actions.registry`), the action declares the argument that carries the line
(``channel_message``), and the engine calls its ``apply()`` with the key's arguments rendered
with the run's variables (``vars:``, ``-e``, ``run_id``, ``check_mode``, ``stage``, ``message``).

Never in the way of a recovery: a line takes at most :data:`LINE_LIMIT` seconds, every attempt
and channel included, and a line that cannot be rendered or delivered is a warning on the
console and in the journal — unless the key says ``required: true``: then the run stops before
the stage, or ends failed. Check mode posts nothing (and says so once). Every line is journaled
(event ``notify``: the line as posted, masked; each channel's outcome, its target redacted).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.errors import JournalError, RunbookError
from engine.language.durations import format_duration
from engine.model import Host, Runbook, Stage, Status, StepResult
from engine.run.context import ActionContext, Connections
from engine.templating.render import ENGINE

if TYPE_CHECKING:
    from engine.journal import Journal
    from engine.report.console import Console
    from engine.run.state import StepEnv

#: seconds one line may take, every attempt and channel together (a chat that hangs must not
#: hold a recovery); ``required: true`` lifts it (the action's own timeout and retries bound it)
LINE_LIMIT = 15.0
#: hosts named in a line before "and N more"
HOSTS_SHOWN = 5


def hosts_text(hosts: list[str]) -> str:
    shown = ", ".join(hosts[:HOSTS_SHOWN])
    return shown + (f" and {len(hosts) - HOSTS_SHOWN} more" if len(hosts) > HOSTS_SHOWN else "") if hosts else "no host"


def timing(seconds: float, budget: float | None) -> str:
    """``1m02s (budget 30m)``, ``41m10s (budget 30m: over budget)``."""
    text = format_duration(seconds)
    if budget:
        text += f" (budget {format_duration(budget)}{': over budget' if seconds > budget else ''})"
    return text


class RunChannel:
    """Posts the run's lines through the action a runbook-level key configures."""

    def __init__(self, rb: Runbook, env: StepEnv, journal: Journal | None, console: Console):
        from engine.actions.registry import REGISTRY, RUN_KEYS

        self.rb, self.env, self.journal, self.console = rb, env, journal, console
        self.channels = [(key, REGISTRY[action], rb.channels[key]) for key, action in RUN_KEYS.items() if key in rb.channels]
        self._said_check = False

    # -- the lines -----------------------------------------------------------------------
    def stage_start(self, stage: Stage, hosts: list[str]) -> bool:
        budget = f" (budget {format_duration(stage.budget)})" if stage.budget else ""
        return self.post("stage_start", f"{hosts_text(hosts)}: stage [{stage.name}] started{budget} — {self.rb.name}, "
                         f"run {self.env.run_id}", stage.name, hosts)

    def stage_end(self, stage: Stage, status: str, seconds: float, hosts: list[str]) -> bool:
        return self.post("stage_end", f"{hosts_text(hosts)}: stage [{stage.name}] {status} in {timing(seconds, stage.budget)}",
                         stage.name, hosts)

    def run_end(self, what: str, status: str, seconds: float, budget: float | None, hosts: list[str], detail: str = "",
                report: str | None = None, next_step: str = "") -> bool:
        """The final line: ``what`` (``run ID``, ``run ID (resumed)``, ``rollback of run ID``), its
        status, time against the budget, where it failed and why, the report, what to type next."""
        text = f"{self.rb.name}: {what} {status.upper()} in {timing(seconds, budget)}"
        text += detail or f" on {hosts_text(hosts)}"  # a failure names its own host
        if report:
            text += f"; report: {report}"
        if next_step:
            text += f"; {next_step}"
        return self.post("run_end", text, "", hosts)

    # -- posting -------------------------------------------------------------------------
    def post(self, event: str, message: str, stage: str, hosts: list[str]) -> bool:
        """Post one line on every channel; False only when a ``required`` channel was not told."""
        ok = True
        for key, cls, raw in self.channels:
            if self.env.check_mode:
                self._check_mode(key)
                continue
            ok = self._post_one(key, cls, raw, event, message, stage, hosts) and ok
        return ok

    def _check_mode(self, key: str) -> None:
        if self._said_check:
            return
        self._said_check = True
        self.console.line(f"check mode: the run's {key}: channel posts nothing (each stage's start and end and the final "
                          "line would be posted)", "dim")
        self._journal(key=key, event="check_mode", sent=False, message="")

    def _post_one(self, key: str, cls: Any, raw: Any, event: str, message: str, stage: str, hosts: list[str]) -> bool:
        required = False
        try:
            variables = dict(self.env.runbook_vars)
            variables.update(self.env.extra_vars)
            variables.update(run_id=self.env.run_id, check_mode=self.env.check_mode, stage=stage, message=message)
            args = ENGINE.render(raw, variables)
            required = isinstance(args, dict) and args.get("required") is True
            args = {**args, cls.channel_message: message}
            result = cls(args, self._context(key, event, stage, hosts, required)).apply()
        except RunbookError as exc:
            result = StepResult(Status.FAILED, msg=exc.message.splitlines()[0] if exc.message else type(exc).__name__)
        except Exception as exc:  # a channel must never break a recovery: what went wrong is journaled
            result = StepResult(Status.FAILED, msg=f"{type(exc).__name__}: {exc}")
        if result.status is Status.SKIPPED:
            return True  # no channel configured (url and cmd rendered empty): nothing to say
        data = result.data if isinstance(result.data, dict) else {}
        delivered = bool(data.get("sent"))
        self._journal(key=key, event=event, stage=stage, message=data.get("message", message), sent=delivered,
                      deliveries=data.get("deliveries", []), required=required,
                      **({} if delivered else {"error": result.msg}))
        if delivered:
            if self.console.verbose:
                self.console.line(f"{key}: {result.msg}", "dim")
            return True
        self.console.warn(f"{key}: the incident channel was not told ({result.msg})"
                          + ("" if required else ": the run goes on"))
        return not required

    def _context(self, key: str, event: str, stage: str, hosts: list[str], required: bool) -> ActionContext:
        host = Host(name=hosts_text(hosts), vars={}, groups=(), connection="local")
        return ActionContext(host=host, conns=Connections(host), vars={"stage": stage}, run_id=self.env.run_id,
                             check_mode=False, step_key=f"{key}:{event}", source=self.rb.source,
                             timeout=None if required else LINE_LIMIT, journal_dir=self.env.journal_dir,
                             interrupted=self.env.interrupted)

    def _journal(self, **fields: Any) -> None:
        if self.journal is None:
            return
        try:
            self.journal.event("notify", **fields)
        except JournalError as exc:  # a full disk: the run says it elsewhere; the line was posted or not
            self.console.warn(f"the incident channel's line could not be journaled: {exc.message}")


def register_credentials(rb: Runbook, extra_vars: dict[str, Any]) -> None:
    """Mask, from the start of the run, what the runbook's steps and channel will send as
    credentials (``credential_params``: ``-e notify_url=https://hooks…/T0KEN`` must not reach the
    journal's header or the console), rendered with what is known before the run. Best effort: a
    value that needs a host's variables or a register is masked when the action uses it."""
    from engine.actions.registry import REGISTRY, RUN_KEYS
    from engine.secrets import MASKER
    from engine.templating.render import lazify

    known = dict(lazify(rb.vars), **lazify(extra_vars))
    places = [(REGISTRY[action], rb.channels[key]) for key, action in RUN_KEYS.items() if key in rb.channels]
    places += [(REGISTRY[s.action], s.args) for stage in rb.stages for s in stage.steps if s.action in REGISTRY]
    for cls, args in places:
        if not cls.credential_params or not isinstance(args, dict):
            continue
        for name in cls.credential_params:
            try:
                value = ENGINE.render(args.get(name), known)
            except Exception:  # needs what only the run knows: the action masks it when it renders it
                continue
            for text in value.values() if isinstance(value, dict) else [value]:
                if isinstance(text, str) and text.strip():
                    MASKER.add(text.strip())


def failure_detail(failure: tuple[str, Any, str, str] | None, error: str = "") -> str:
    """`` at STAGE/STEP on HOST (file:line): first line of the error`` for the final line."""
    if failure is not None:
        stage, step, host, msg = failure
        where = f"{step.source.file}:{step.source.line}" if step.source.line else str(step.source.file)
        first = (msg or "").strip().splitlines()[0] if (msg or "").strip() else "failed"
        return f" at {stage}/{step.name} on {host} ({where}): {first}"
    if error:
        return f": {error.strip().splitlines()[0]}"
    return ""


__all__ = ["LINE_LIMIT", "RunChannel", "failure_detail", "hosts_text", "timing"]
