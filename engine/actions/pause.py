"""``pause``: wait a while, or until the operator presses Enter."""

from __future__ import annotations

from typing import Any

from engine.actions.base import Action, register
from engine.language.durations import MAX_SECONDS, parse_duration
from engine.model import Status, StepResult


@register
class Pause(Action):
    """Wait, or ask the operator to press Enter (needs a terminal).

    ```yaml
    - name: Let the application drain
      pause: {seconds: 30}
    - name: Check the dashboards
      pause: {prompt: "Is traffic at zero?"}
    ```
    """

    name = "pause"
    mutating = False
    idempotent = True
    params_schema = {
        "type": "object",
        "properties": {
            "seconds": {"anyOf": [{"type": "number", "minimum": 0}, {"type": "string"}]},
            "minutes": {"anyOf": [{"type": "number", "minimum": 0}, {"type": "string"}]},
            "prompt": {"type": "string"},
        },
        "additionalProperties": False,
    }

    @classmethod
    def static_problems(cls, args: Any) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for key in ("seconds", "minutes"):
            value = (args or {}).get(key)
            if value is None or (isinstance(value, str) and "{{" in value):
                continue
            try:
                seconds = parse_duration(value) * (60 if key == "minutes" else 1)
            except ValueError as exc:
                out.append((key, str(exc)))
                continue
            if seconds > MAX_SECONDS:
                out.append((key, f"{value!r} minutes is longer than the 3650d (ten years) a wait may last"))
        return out

    def apply(self) -> StepResult:
        a = self.args or {}
        seconds = 0.0
        if "seconds" in a:
            seconds += parse_duration(a["seconds"])
        if "minutes" in a:
            seconds += parse_duration(a["minutes"]) * 60
        if self.ctx.check_mode:
            return StepResult(Status.OK, msg=f"check mode: would pause {seconds:g}s" if seconds else "check mode: would prompt")
        if "prompt" in a and not seconds:
            # Asked by the operator object on the main thread (a run without a terminal was
            # refused before it started); a Ctrl-C ends the wait at once.
            answer = self.ctx.ask(str(a["prompt"])) if self.ctx.ask is not None else None
            if answer is None:
                if self.ctx.interrupted.is_set():
                    return StepResult(Status.OK, msg="pause ended by an interrupt", data={"user_input": "", "interrupted": True})
                return StepResult(Status.FAILED, msg="pause with a prompt needs a terminal", evidence=str(a["prompt"]))
            return StepResult(Status.OK, data={"user_input": answer})
        limit = self.ctx.remaining()
        wait = seconds if limit is None else min(seconds, limit)
        if self.ctx.interrupted.wait(wait):
            return StepResult(Status.OK, msg=f"pause ended by an interrupt (of {seconds:g}s)", data={"seconds": seconds, "interrupted": True})
        return StepResult(Status.OK, msg=f"paused {seconds:g}s", data={"seconds": seconds})
