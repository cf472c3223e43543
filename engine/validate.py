"""Cross-checks that need the runbook, the inventory and the options together — still without
touching a host: target patterns that match nothing, and variables that are certainly
undefined (used somewhere, defined nowhere: not in vars, inventory, -e, a register, a
set_fact, a loop variable or the magic variables)."""

from __future__ import annotations

from typing import Any

from engine.errors import Problem, Source
from engine.inventory import Inventory, pattern_problems
from engine.loader import MAGIC_VARS, condition_text
from engine.model import Runbook, Step
from engine.templating import ENGINE, names_in
from engine.yamlio import source_at


def defined_names(rb: Runbook, inv: Inventory, extra: dict[str, Any]) -> set[str]:
    names = set(MAGIC_VARS) | set(ENGINE.env.globals) | set(rb.vars) | set(extra)
    for host in inv.hosts.values():
        names |= set(host.vars)
    for stage in rb.stages:
        for step in stage.steps:
            if step.register:
                names.add(step.register)
            if step.action == "set_fact" and isinstance(step.args, dict):
                names |= {str(k) for k in step.args}
            if step.loop is not None:
                names.add(step.loop_var)
                names.add("ansible_loop")
    return names


def _step_templates(step: Step) -> list[tuple[list[Any], Any]]:
    """(path inside the step mapping, templated value) pairs to scan."""
    out: list[tuple[list[Any], Any]] = [([step.action], step.args)]
    for key in ("loop", "creates", "unless", "undo", "ignore_errors", "retries"):
        val = getattr(step, key)
        if val is not None:
            out.append(([key], val))
    for key in ("when", "until", "failed_when", "changed_when"):
        val = getattr(step, key)
        if val is not None:
            out.append(([key], condition_text(val)))
    return out


def cross_check(rb: Runbook, inv: Inventory, extra: dict[str, Any], limit: str | None) -> list[Problem]:
    problems: list[Problem] = []
    known = defined_names(rb, inv, extra)
    src0 = Source(rb.path, 1, 1)
    rb_targets = rb.targets
    if "{{" not in rb_targets:
        why = pattern_problems(rb_targets, inv)
        if why:
            problems.append(Problem(src0, "targets", why, "fix targets: or the inventory (-i)"))
    if limit:
        why = pattern_problems(limit, inv)
        if why:
            problems.append(Problem(Source("--limit"), "", why, "fix --limit"))
    for name, value in rb.vars.items():
        for var in names_in([value]) - known:
            problems.append(Problem(src0, f"vars.{name}", f"variable {var!r} is not defined anywhere", _hint(var, known)))
    for stage in rb.stages:
        if stage.targets and "{{" not in stage.targets:
            why = pattern_problems(stage.targets, inv)
            if why:
                problems.append(Problem(stage.source, f"stages[{stage.index}].targets", why, "fix the stage's targets:"))
        for cond in ([stage.when] if stage.when is not None else []):
            for var in names_in(condition_text(cond)) - known:
                problems.append(Problem(stage.source, f"stages[{stage.index}].when", f"variable {var!r} is not defined anywhere", _hint(var, known)))
        for step in stage.steps:
            for path, value in _step_templates(step):
                missing = names_in([value]) - known
                for var in sorted(missing):
                    src = source_at(step.raw, path, step.source.file) if step.raw is not None else step.source
                    problems.append(Problem(src, f"stages[{stage.index}].steps[{step.index}].{path[0]}", f"variable {var!r} is not defined anywhere", _hint(var, known)))
    return problems


def _hint(var: str, known: set[str]) -> str:
    import difflib

    close = difflib.get_close_matches(var, sorted(known), n=1, cutoff=0.7)
    if close:
        return f"did you mean {close[0]!r}?"
    return "define it in vars:, the inventory or -e, or register it in an earlier step"
