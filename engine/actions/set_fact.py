"""``set_fact``: define host variables for the rest of the run."""

from __future__ import annotations

from typing import Any

from engine.actions.base import Action, register
from engine.model import Status, StepResult


@register
class SetFact(Action):
    """Set variables on the host (they outrank runbook vars, and -e outranks them).

    ```yaml
    - name: Remember the datadir
      set_fact: {datadir: "{{ facts.datadir }}", core: "{{ core_tables | length }}"}
    ```
    """

    name = "set_fact"
    mutating = False
    idempotent = True
    params_schema = {"type": "object", "minProperties": 1, "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_]*$"}}

    identity_guard = ""

    @classmethod
    def facts_set(cls, registered: dict[str, Any]) -> dict[str, Any]:
        facts = registered.get("facts")
        return facts if isinstance(facts, dict) else {}

    def apply(self) -> StepResult:
        return StepResult(Status.OK, data={"facts": dict(self.args)})
