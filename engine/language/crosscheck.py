"""Cross-checks that need the runbook, the inventory and the options together — still without
touching a host: target patterns that match nothing, and variables that are certainly
undefined (used somewhere, defined nowhere: not in vars, inventory, -e, a register, a
set_fact, a loop variable or the magic variables)."""

from __future__ import annotations

from typing import Any

from engine.actions.registry import REGISTRY, declaration
from engine.errors import Problem, RunbookError, Source
from engine.inventory import Inventory, PatternError, match_pattern, pattern_problems, target_problems
from engine.language.loader import CHANNEL_VARS, MAGIC_VARS
from engine.model import Runbook, Stage, Step
from engine.language.schema_messages import path_str
from engine.language.template_checks import condition_text
from engine.templating.render import GLOBAL_NAMES, required_names
from engine.language.yamlio import MDict, load_yaml, source_at


def defined_names(rb: Runbook, inv: Inventory, extra: dict[str, Any]) -> set[str]:
    names = set(MAGIC_VARS) | set(GLOBAL_NAMES) | set(rb.vars) | set(extra)
    for host in inv.hosts.values():
        names |= {k for k in host.vars if isinstance(k, str)}  # other keys were reported; the did-you-mean sorts names
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
    conditions = declaration(step.action).condition_params if step.action in REGISTRY else ()
    if isinstance(step.args, dict):
        # assert's `that:` is conditions without braces, like `when:`
        out += [([step.action, key], condition_text(step.args[key])) for key in conditions if key in step.args]
    for key in ("loop", "creates", "unless", "undo", "ignore_errors", "retries"):
        val = getattr(step, key)
        if val is not None:
            out.append(([key], val))
    for key in ("when", "until", "failed_when", "changed_when"):
        val = getattr(step, key)
        if val is not None:
            out.append(([key], condition_text(val)))
    return out


class _Places:
    """Positions of runbook-level and stage-level keys, which the model does not keep: the
    files are read again (they loaded a moment ago) so that each problem points at its line."""

    def __init__(self) -> None:
        self._docs: dict[str, Any] = {}

    def _doc(self, file: str) -> Any:
        if file not in self._docs:
            try:
                self._docs[file] = load_yaml(file)
            except RunbookError:
                self._docs[file] = None
        return self._docs[file]

    def runbook(self, rb: Runbook, path: list[Any]) -> Source:
        return source_at(self._doc(rb.path), path, rb.path)

    def stage(self, stage: Stage, key: str) -> Source:
        doc = self._doc(stage.source.file)
        items = doc.get("stages") if isinstance(doc, dict) else doc
        for node in items if isinstance(items, list) else []:
            if isinstance(node, MDict) and (node.line, node.col) == (stage.source.line, stage.source.col):
                return source_at(node, [key], stage.source.file)
        return stage.source


def cross_check(rb: Runbook, inv: Inventory, extra: dict[str, Any], limit: str | None) -> list[Problem]:
    problems: list[Problem] = []
    known = defined_names(rb, inv, extra)
    places = _Places()
    rb_targets = rb.targets
    if "{{" not in rb_targets:
        why = pattern_problems(rb_targets, inv)
        if why:
            problems.append(Problem(places.runbook(rb, ["targets"]), "targets", why, "fix targets: or the inventory (-i)"))
    if limit:
        why = pattern_problems(limit, inv)
        if why:
            problems.append(Problem(Source("--limit"), "", why, "fix --limit"))
    for name, value in rb.vars.items():
        for var in sorted(required_names([value]) - known):
            problems.append(Problem(places.runbook(rb, ["vars", name]), f"vars.{name}", f"variable {var!r} is not defined anywhere", _hint(var, known)))
    run_names = set(GLOBAL_NAMES) | set(rb.vars) | set(extra) | CHANNEL_VARS
    for key, args in rb.channels.items():
        # the run's channel is rendered with the run's variables only: no host's, no register
        sees = f"the run's {key}: sees only vars:, -e and {', '.join(sorted(CHANNEL_VARS))}"
        for var in sorted(required_names([args]) - run_names):
            close = _hint(var, run_names)
            hint = f"{var!r} is a host's or a step's variable; {sees}" if var in known else \
                (close if close.startswith("did you mean") else f"define it in vars: or with -e ({sees})")
            problems.append(Problem(places.runbook(rb, [key]), key, f"variable {var!r} is not defined for the run's {key}:", hint))
    for stage in rb.stages:
        if stage.targets and "{{" not in stage.targets:
            why = pattern_problems(stage.targets, inv)
            if why:
                problems.append(Problem(places.stage(stage, "targets"), f"stages[{stage.index}].targets", why, "fix the stage's targets:"))
        for cond in ([stage.when] if stage.when is not None else []):
            for var in sorted(required_names(condition_text(cond)) - known):
                problems.append(Problem(places.stage(stage, "when"), f"stages[{stage.index}].when", f"variable {var!r} is not defined anywhere", _hint(var, known)))
        if isinstance(stage.confirm, str):
            for var in sorted(required_names([stage.confirm]) - known):
                problems.append(Problem(places.stage(stage, "confirm"), f"stages[{stage.index}].confirm", f"variable {var!r} is not defined anywhere", _hint(var, known)))
        for step in stage.steps:
            local: set[str] | None = None
            for path, value in _step_templates(step):
                if isinstance(value, str) and "{{" not in value and "{%" not in value:
                    continue  # no template reads nothing (most steps' text): skip the walk
                if local is None:
                    local = _local_names(step)
                missing = required_names([value]) - known - (local if path[0] == step.action else set())
                if path[0] in ("until", "failed_when", "changed_when"):
                    missing.discard("result")  # the executor gives these conditions the step's own result
                for var in sorted(missing):
                    src = source_at(step.raw, path, step.source.file) if step.raw is not None else step.source
                    problems.append(Problem(src, f"stages[{stage.index}].steps[{step.index}].{path_str(path)}", f"variable {var!r} is not defined anywhere", _hint(var, known)))
    problems.extend(_target_problems(rb, inv, limit))
    return problems


def _local_names(step: Step) -> set[str]:
    try:
        return declaration(step.action).local_names(step.args)
    except KeyError:
        return set()


def stage_hosts(rb: Runbook, inv: Inventory, limit: str | None) -> list[tuple[str, list[str] | None]]:
    """The hosts each stage targets, in the order they run (None: decided at run time by a
    templated pattern)."""
    allowed = None
    if limit:
        try:
            allowed = set(match_pattern(limit, inv))
        except PatternError:
            allowed = set()
    out: list[tuple[str, list[str] | None]] = []
    for stage in rb.stages:
        pattern = stage.targets or rb.targets
        if "{{" in pattern:
            out.append((stage.name, None))
            continue
        try:
            names = match_pattern(pattern, inv)
        except PatternError:
            names = []
        out.append((stage.name, [n for n in names if allowed is None or n in allowed]))
    return out


def _target_problems(rb: Runbook, inv: Inventory, limit: str | None) -> list[Problem]:
    """A host the run targets must be one we can reach as the inventory says (connection,
    become, proxies, vault, option file); other hosts of the inventory are never refused."""
    targeted: dict[str, None] = {}
    for _, names in stage_hosts(rb, inv, limit):
        for n in names if names is not None else list(inv.hosts):
            targeted.setdefault(n)
    out: list[Problem] = []
    seen: set[tuple[str, str]] = set()
    for name in targeted:
        for p in target_problems(inv.hosts[name]):
            if (str(p.source), p.message) not in seen:
                seen.add((str(p.source), p.message))
                out.append(p)
    return out


def _hint(var: str, known: set[str]) -> str:
    import difflib

    close = difflib.get_close_matches(var, sorted(known), n=1, cutoff=0.7)
    if close:
        return f"did you mean {close[0]!r}?"
    return "define it in vars:, the inventory or -e, or register it in an earlier step"
