"""``assert`` and ``fail``: stop a host when something is not as the runbook expects."""

from __future__ import annotations

from typing import Any

from engine.actions.base import Action, register
from engine.model import Status, StepResult
from engine.templating.render import ENGINE


@register
class Assert(Action):
    """Every condition in ``that`` must hold.

    ```yaml
    - name: Server is the one we think
      assert:
        that: [facts.flavor == 'mariadb', "facts.version is version('10.6', '>=')"]
        fail_msg: "unexpected server {{ facts.version }}"
    ```
    """

    name = "assert"
    mutating = False
    idempotent = True
    params_schema = {
        "type": "object",
        "properties": {
            "that": {"description": "conditions (Jinja2 expressions without braces)",
                     "anyOf": [{"type": "string"}, {"type": "boolean"}, {"type": "array", "items": {"type": ["string", "boolean"]}, "minItems": 1}]},
            "fail_msg": {"type": "string"},
            "msg": {"type": "string", "description": "alias of fail_msg"},
            "success_msg": {"type": "string"},
            "quiet": {"type": "boolean"},
        },
        "required": ["that"],
        "additionalProperties": False,
    }
    renders_own_args = True
    condition_params = ("that",)

    def apply(self) -> StepResult:
        a: Any = self.args
        conds = a["that"] if isinstance(a["that"], list) else [a["that"]]
        for cond in conds:
            if not ENGINE.truth(cond, self.ctx.vars):
                msg = a.get("fail_msg") or a.get("msg") or f"assertion failed: {cond}"
                return StepResult(Status.FAILED, msg=str(ENGINE.render(msg, self.ctx.vars)),
                                  data={"assertion": str(cond), "evaluated_to": False})
        ok = a.get("success_msg")
        return StepResult(Status.OK, msg=str(ENGINE.render(ok, self.ctx.vars)) if ok and not a.get("quiet") else "")


@register
class Fail(Action):
    """Fail the host with a message.

    ```yaml
    - name: No backup, no restore
      fail: {msg: "backup {{ backup }} is missing"}
      when: not stat.exists
    ```
    """

    name = "fail"
    mutating = False
    idempotent = True
    params_schema = {
        "anyOf": [
            {"type": "object", "properties": {"msg": {"type": "string"}}, "additionalProperties": False},
            {"type": "null"},
        ]
    }

    def apply(self) -> StepResult:
        msg = (self.args or {}).get("msg") or "failed as requested by the runbook"
        return StepResult(Status.FAILED, msg=str(msg))
