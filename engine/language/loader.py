"""Runbook YAML → validated model. Every problem is reported at once, with file:line:col.

Order: YAML (with marks) → structural JSON Schema → per-action params schemas → semantics
(one action per step, unique names, durations, imports) → templates (syntax everywhere, and
variables that are certainly undefined). Nothing here touches a host. Schema errors are worded
by :mod:`engine.language.schema_messages`; template syntax is checked by :mod:`engine.language.template_checks`.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.actions.base import Action
from engine.actions.registry import REGISTRY, RUN_KEYS, declaration
from engine.language.durations import parse_duration
from engine.errors import InputError, Problem, Source, ValidationFailed
from engine.model import OnFailure, Runbook, Stage, Step
from engine.secrets import mask_literal_secrets
from engine.language.schema import STAGE_KEYWORDS, STEP_KEYWORDS, channel_schema, runbook_schema
from engine.language.schema_check import SchemaChecker, checker
from engine.language.schema_messages import did_you_mean, path_str, schema_problems, templated, type_name
from engine.language.template_checks import check_condition, check_templates
from engine.templating.render import QUOTED_HINT, has_template, quoted_value_placeholders
from engine.language.yamlio import MDict, MList, key_source, load_yaml, source_at

MAGIC_VARS = {"inventory_hostname", "hostvars", "groups", "run_id", "stage", "check_mode", "group_names",
              "play_hosts", "ansible_check_mode", "inventory_hostname_short", "omit"}
#: what the run's channel (runbook-level ``notify:``) is rendered with besides vars: and -e
#: (``message``: the line being posted, for a ``body:`` of its own)
CHANNEL_VARS = frozenset({"run_id", "check_mode", "stage", "message"})


@dataclass
class Loaded:
    """A runbook with the warnings found while loading it."""

    runbook: Runbook
    warnings: list[Problem] = field(default_factory=list)
    #: problems found; a runbook with problems is still built from its valid parts, so that
    #: cross-checks (undefined variables, targets) can report theirs in the same pass
    problems: list[Problem] = field(default_factory=list)


def _structural_schema() -> dict[str, Any]:
    return runbook_schema(params=False)  # each action's params are checked by its own schema


_VALIDATOR: SchemaChecker | None = None
_STAGE_VALIDATOR: SchemaChecker | None = None


def _validator() -> SchemaChecker:
    """The top level, checked without its stages (each stage is checked on its own, from its
    own file): ``stages`` is only said to be a list here; an empty or missing one is the
    loader's message."""
    global _VALIDATOR
    if _VALIDATOR is None:
        schema = _structural_schema()
        schema["properties"] = dict(schema["properties"], stages={"type": "array"})
        _VALIDATOR = checker(schema, templated)
    return _VALIDATOR


def _stage_validator() -> SchemaChecker:
    global _STAGE_VALIDATOR
    if _STAGE_VALIDATOR is None:
        _STAGE_VALIDATOR = checker({"$defs": _structural_schema()["$defs"], "$ref": "#/$defs/stage"}, templated)
    return _STAGE_VALIDATOR


# --------------------------------------------------------------------------- loading


def load_runbook(path: str, *, partial: bool = False) -> Loaded:
    """Load and validate a runbook file. Raises ValidationFailed with every problem found,
    or with ``partial=True`` returns what could be built along with the problems."""
    try:
        data = load_yaml(path, what="runbook")
    except ValidationFailed:
        raise
    except InputError as exc:  # one exception type for every bad runbook: the caller lists problems
        raise ValidationFailed([Problem(exc.source or Source(str(path)), "", exc.message, exc.hint)]) from None
    file = str(path)
    if not isinstance(data, dict):
        raise ValidationFailed([Problem(Source(file, 1, 1), "", f"a runbook is a mapping with name and stages, not {type_name(data)}")])
    problems: list[Problem] = []
    warnings: list[Problem] = []
    files = [file]

    # Static imports: `- import: other.yml` in stages is replaced by that file's stages.
    stages_raw = data.get("stages")
    expanded: list[tuple[Any, Any, str, list[Any]]] = []  # (stage, root, file, path)
    if isinstance(stages_raw, list):
        for i, st in enumerate(stages_raw):
            if isinstance(st, dict) and "import" in st and isinstance(st["import"], str):
                extra = set(st) - {"import"}
                if extra:
                    problems.append(Problem(key_source(st, sorted(extra)[0], file), f"stages[{i}]", "an import stage takes no other keys"))
                target = Path(os.path.dirname(file)) / st["import"]
                try:
                    sub = load_yaml(target, what="imported file")
                except InputError as exc:
                    problems.append(Problem(source_at(data, ["stages", i, "import"], file), f"stages[{i}].import", exc.message, exc.hint))
                    continue
                files.append(str(target))
                sub_stages = sub.get("stages") if isinstance(sub, dict) else sub
                if not isinstance(sub_stages, list):
                    problems.append(Problem(Source(str(target), 1, 1), "", "an imported file holds a list of stages (or a mapping with stages)"))
                    continue
                for j, sst in enumerate(sub_stages):
                    expanded.append((sst, sub, str(target), ["stages", j] if isinstance(sub, dict) else [j]))
            else:
                expanded.append((st, data, file, ["stages", i]))

    step_keys = sorted(STEP_KEYWORDS) + sorted(REGISTRY)
    # stages are checked one by one below (from their own files): a list stands in for them
    # here, only when there are stages (the schema reports them missing otherwise)
    top = {k: v for k, v in data.items() if k != "stages"} | ({"stages": []} if "stages" in data else {})
    problems += schema_problems(_validator(), top, data, [], file)
    if "stages" not in data:
        pass  # reported as missing by the schema (see `top` above)
    elif not isinstance(stages_raw, list) or not stages_raw:
        problems.append(Problem(source_at(data, ["stages"], file), "stages", "must be a non-empty list of stages"))

    stage_validator = _stage_validator()
    stages: list[Stage] = []
    stage_names: dict[str, Source] = {}
    for s_index, (raw_stage, root, sfile, spath) in enumerate(expanded):
        probs = schema_problems(stage_validator, raw_stage, root, spath, sfile,
                                allowed_for=lambda p: step_keys if "steps" in p else sorted(STAGE_KEYWORDS))
        problems += probs
        if not isinstance(raw_stage, dict):
            continue
        stage = _build_stage(raw_stage, root, sfile, spath, s_index, problems, warnings)
        if stage is None:
            continue
        if "/" in stage.name:
            # The journal keys a step as "stage/step" (and --start-at reads STAGE/STEP): stage
            # "a" step "b/c" and stage "a/b" step "c" would be one key, and resume would skip a
            # step that never ran. A stage name without "/" makes every key unambiguous.
            problems.append(Problem(source_at(root, spath + ["name"], sfile), path_str(spath + ["name"]),
                                    f"stage name {stage.name!r} contains '/'",
                                    "a stage name cannot contain '/' (the journal keys steps as stage/step): use another character"))
        if stage.name in stage_names:
            problems.append(Problem(source_at(root, spath + ["name"], sfile), path_str(spath + ["name"]),
                                    f"duplicate stage name {stage.name!r} (first at {stage_names[stage.name]})", "stage names must be unique"))
        else:
            stage_names[stage.name] = stage.source
        stages.append(stage)

    budget = None
    if "budget" in data:
        budget = _duration(data["budget"], data, ["budget"], file, problems)
    rb_vars = data.get("vars") if isinstance(data.get("vars"), dict) else {}
    # a key that is not a name (`~: 1`, `[a]: 1`) was reported by the schema; the model keeps names only
    rb_vars = {k: v for k, v in (rb_vars or {}).items() if _is_name(k)}
    check_templates(rb_vars, data, ["vars"], file, problems)
    mask_literal_secrets(rb_vars)  # vars: {notify_token: s3cr3t} is masked like a vaulted value
    for key in ("name", "description", "targets"):
        if isinstance(data.get(key), str):
            check_templates(data[key], data, [key], file, problems)
    channels: dict[str, Any] = {}
    for key, action in RUN_KEYS.items():  # notify: the run's incident channel, an action's arguments
        if key in data:
            found = _param_problems(REGISTRY[action], data[key], data, [key], file, channel=True)
            problems += found
            check_templates(data[key], data, [key], file, problems)
            if not found:
                channels[key] = _plain(data[key] if data[key] is not None else {})
    if problems and not partial:
        raise ValidationFailed(problems)
    rb = Runbook(
        name=str(data.get("name", "")),
        path=file,
        stages=tuple(stages),
        source=Source(file, 1, 1),
        description=str(data.get("description", "")),
        targets=data["targets"] if isinstance(data.get("targets"), str) else "all",  # a bad one was reported by the schema
        vars=_plain(dict(rb_vars or {})),  # plain dicts: runtime messages say "dict object", not our YAML type
        budget=budget,
        files=tuple(files),
        channels=channels,
    )
    return Loaded(rb, warnings, problems)


def _duration(value: Any, root: Any, path: list[Any], file: str, problems: list[Problem]) -> float | None:
    if isinstance(value, str) and has_template(value):
        # The model holds seconds: a template here would be silently dropped (no timeout!).
        problems.append(Problem(source_at(root, path, file), path_str(path), f"{value!r}: a template is not allowed here",
                                "write the duration itself, e.g. 30s, 5m, 1h30m"))
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        # One message per mistake: this one says more than the schema's generic "not valid here".
        problems[:] = [p for p in problems if not (p.path == path_str(path) and p.source.file == file)]
        problems.append(Problem(source_at(root, path, file), path_str(path), str(exc)))
        return None


def _build_stage(raw: dict[str, Any], root: Any, file: str, spath: list[Any], index: int,
                 problems: list[Problem], warnings: list[Problem]) -> Stage | None:
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        if "name" not in raw:
            problems.append(Problem(source_at(root, spath, file), path_str(spath), "a stage needs a name", "add name: assess (for example)"))
        return None
    steps_raw = raw.get("steps")
    if steps_raw is None:
        problems.append(Problem(source_at(root, spath, file), path_str(spath), f"stage {name!r} has no steps", "add steps: [...]"))
        steps_raw = []
    steps: list[Step] = []
    seen: dict[str, Source] = {}
    if isinstance(steps_raw, list):
        # where each step stands: what source_at(root, path) finds by walking from the root
        # again for every step, read off the list itself when the walk would end there
        steps_src = _item_sources(root, spath + ["steps"], steps_raw, file)
        for i, st in enumerate(steps_raw):
            path = spath + ["steps", i]
            if not isinstance(st, dict):
                continue
            step = _build_step(st, root, file, path, name, i, problems, warnings,
                               src=steps_src[i] if steps_src is not None else None)
            if step is None:
                continue
            if step.name in seen:
                problems.append(Problem(source_at(root, path + ["name"], file), path_str(path + ["name"]),
                                        f"duplicate step name {step.name!r} in stage {name!r} (first at {seen[step.name]})", "step names must be unique in a stage"))
            else:
                seen[step.name] = step.source
            steps.append(step)
    for key in ("confirm", "targets"):
        if isinstance(raw.get(key), str):
            check_templates(raw[key], root, spath + [key], file, problems)
    if isinstance(raw.get("on_failure"), str) and has_template(raw["on_failure"]):
        problems.append(Problem(source_at(root, spath + ["on_failure"], file), path_str(spath + ["on_failure"]),
                                f"{raw['on_failure']!r}: a template is not allowed here", "use one of: abort, rollback, continue"))
    if "when" in raw:
        check_condition(raw["when"], root, spath + ["when"], file, problems)
    return Stage(
        name=name,
        steps=tuple(steps),
        source=source_at(root, spath, file),
        index=index,
        budget=_duration(raw["budget"], root, spath + ["budget"], file, problems) if "budget" in raw else None,
        confirm=raw.get("confirm"),
        on_failure=OnFailure(raw.get("on_failure", "abort")) if raw.get("on_failure", "abort") in ("abort", "rollback", "continue") else OnFailure.ABORT,
        when=raw.get("when"),
        targets=raw["targets"] if isinstance(raw.get("targets"), str) else None,  # a bad one was reported by the schema
        tags=_tags(raw.get("tags")),
    )


def _is_name(value: Any) -> bool:
    return isinstance(value, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value) is not None


def _tags(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(t.strip() for t in value.split(",") if t.strip())
    if not isinstance(value, list):  # reported by the schema; keep building the rest
        return ()
    return tuple(str(t) for t in value)


def _item_sources(root: Any, path: list[Any], items: Any, file: str) -> list[Source] | None:
    """``source_at(root, path + [i], file)`` for every item of ``items`` (the node at ``path``),
    or None when the list is not the marked one the walk would reach (then each is looked up)."""
    node = root
    for part in path:
        if not ((isinstance(node, MDict) and part in node) or (isinstance(node, MList) and isinstance(part, int) and 0 <= part < len(node))):
            return None
        node = node[part]
    if node is not items or not isinstance(items, MList) or len(items.item_pos) != len(items):
        return None
    where = items.file or file
    return [Source(where, line, col) for line, col in items.item_pos]


def _build_step(raw: dict[str, Any], root: Any, file: str, path: list[Any], stage: str, index: int,
                problems: list[Problem], warnings: list[Problem], *, src: Source | None = None) -> Step | None:
    if src is None:
        src = source_at(root, path, file)
    actions = [k for k in raw if k in REGISTRY]
    if not actions:
        unknown = [k for k in raw if k not in STEP_KEYWORDS and k not in REGISTRY]
        if not unknown:  # unknown keys were reported by the schema with a did-you-mean
            problems.append(Problem(src, path_str(path), "a step needs exactly one action, found none",
                                    f"actions: {', '.join(sorted(REGISTRY))}"))
        return None
    if len(actions) > 1:
        problems.append(Problem(key_source(raw, actions[1], file), path_str(path),
                                f"a step has exactly one action, found {len(actions)}: {', '.join(actions)}", "split it into two steps"))
        return None
    action = actions[0]
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        if "name" not in raw:
            problems.append(Problem(src, path_str(path), f"the {action} step needs a name", "names identify steps in the journal, resume and reports"))
        return None
    args = raw[action]
    cls = declaration(action)  # the class, or its declaration when that is all validation needs
    problems += _param_problems(cls, args, root, path + [action], file)
    if action == "sql":
        for text in _sql_texts(args):
            if "| raw" in text.replace("|raw", "| raw"):
                warnings.append(Problem(source_at(root, path + [action], file), path_str(path + [action]),
                                        "'| raw' splices text into SQL verbatim", "make sure the value can never come from untrusted input", warning=True))
    check_templates(args, root, path + [action], file, problems)
    if isinstance(args, dict):
        for key in cls.condition_params:
            if key in args:
                check_condition(args[key], root, path + [action, key], file, problems)
    for sql_path, text in _sql_places(action, raw):
        for block in quoted_value_placeholders(text):
            problems.append(Problem(source_at(root, path + sql_path, file), path_str(path + sql_path),
                                    f"{block} is inside quotes in SQL text: the value is a bound parameter and brings its own quotes "
                                    "(quoted, it would be spliced as SQL)", QUOTED_HINT))
    for cond in ("when", "until", "failed_when", "changed_when"):
        if cond in raw:
            check_condition(raw[cond], root, path + [cond], file, problems)
    for key in ("loop", "creates", "ignore_errors", "retries"):
        if isinstance(raw.get(key), str):
            check_templates(raw[key], root, path + [key], file, problems)
    ignore = raw.get("ignore_errors")
    if isinstance(ignore, str) and not has_template(ignore):
        # a string is a template giving a boolean; "maybe" or "yes " is neither
        problems.append(Problem(source_at(root, path + ["ignore_errors"], file), path_str(path + ["ignore_errors"]),
                                f"{ignore!r} is not a boolean", "write true or false (or a template such as \"{{ is_test }}\")"))
    unless = raw.get("unless")
    if isinstance(unless, str) and action not in ("sql", "shell"):
        problems.append(Problem(source_at(root, path + ["unless"], file), path_str(path + ["unless"]),
                                f"a plain unless: works on sql and shell steps; on a {action} step say which probe",
                                "write unless: {sql: '...'} or unless: {shell: '...'}"))
    if unless is not None:
        check_templates(unless, root, path + ["unless"], file, problems)
    undo = raw.get("undo")
    if isinstance(undo, dict):
        undo_actions = [k for k in undo if k in REGISTRY]
        if len(undo_actions) != 1 or len(undo) != 1:
            problems.append(Problem(source_at(root, path + ["undo"], file), path_str(path + ["undo"]),
                                    "undo: is one action mapping, e.g. {sql: 'DROP TABLE t'}",
                                    did_you_mean(str(next(iter(undo), "")), sorted(REGISTRY)) if undo and not undo_actions else None))
        else:
            problems += _param_problems(declaration(undo_actions[0]), undo[undo_actions[0]], root, path + ["undo", undo_actions[0]], file)
            check_templates(undo, root, path + ["undo"], file, problems)
    retries = raw.get("retries")
    if isinstance(retries, str) and not has_template(retries) and not retries.strip().isdigit():
        problems.append(Problem(source_at(root, path + ["retries"], file), path_str(path + ["retries"]),
                                f"{retries!r} is not a number of retries", "e.g. retries: 3"))
    delay = _duration(raw["delay"], root, path + ["delay"], file, problems) if "delay" in raw else None
    timeout = _duration(raw["timeout"], root, path + ["timeout"], file, problems) if "timeout" in raw else None
    loop_control = raw.get("loop_control") or {}
    return Step.build(
        name=name,
        action=action,
        args=args,
        source=src,
        stage=stage,
        index=index,
        when=raw.get("when"),
        register=raw["register"] if _is_name(raw.get("register")) else None,  # a bad one was reported by the schema
        loop=raw.get("loop"),
        loop_var=str(loop_control.get("loop_var", "item")) if isinstance(loop_control, dict) else "item",
        retries=retries if isinstance(retries, int) and not isinstance(retries, bool) else (retries if isinstance(retries, str) else None),  # type: ignore[arg-type]
        delay=delay if delay is not None else 1.0,
        until=raw.get("until"),
        failed_when=raw.get("failed_when"),
        changed_when=raw.get("changed_when"),
        ignore_errors=raw.get("ignore_errors", False),  # type: ignore[arg-type]
        timeout=timeout,
        tags=_tags(raw.get("tags")),
        run_once=bool(raw.get("run_once", False)),
        unless=unless,
        creates=raw.get("creates"),
        undo=undo,
        idempotent=raw.get("idempotent") if isinstance(raw.get("idempotent"), bool) else None,
        raw=raw,
    )


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _sql_places(action: str, raw: dict[str, Any]) -> list[tuple[list[Any], str]]:
    """Every SQL text of a step (its sql action, an sql probe, an sql undo, wait_for's sql),
    with its path inside the step."""
    out: list[tuple[list[Any], str]] = []
    args = raw.get(action)
    if action == "sql":
        out += [([action], t) for t in _sql_texts(args)]
    if action == "wait_for" and isinstance(args, dict) and isinstance(args.get("sql"), str):
        out.append(([action, "sql"], args["sql"]))
    unless = raw.get("unless")
    if isinstance(unless, str) and action == "sql":
        out.append((["unless"], unless))
    elif isinstance(unless, dict) and isinstance(unless.get("sql"), str):
        out.append((["unless", "sql"], unless["sql"]))
    undo = raw.get("undo")
    if isinstance(undo, dict) and "sql" in undo:
        out += [(["undo", "sql"], t) for t in _sql_texts(undo["sql"])]
    return out


def _sql_texts(args: Any) -> list[str]:
    if isinstance(args, str):
        return [args]
    if isinstance(args, dict) and isinstance(args.get("query"), str):
        return [args["query"]]
    return []


_PARAM_VALIDATORS: dict[str, Any] = {}


def _param_problems(cls: Any, args: Any, root: Any, path: list[Any], file: str, *, channel: bool = False) -> list[Problem]:
    """The problems of an action's arguments: a step's, or (``channel``) those of a runbook-level
    key that makes the action the run's channel, which takes them all but the message."""
    cache_key = f"{cls.name}:channel" if channel else cls.name
    validator = _PARAM_VALIDATORS.get(cache_key)
    if validator is None:
        validator = checker(channel_schema(cls) if channel else cls.params_schema, templated)
        _PARAM_VALIDATORS[cache_key] = validator
    if args is None and not cls.free_form:
        args = {}
    problems = schema_problems(validator, args, root, path, file)
    if not problems and not (isinstance(args, str) and has_template(args)):
        static_args = {**args, cls.channel_message: ""} if channel and isinstance(args, dict) else args
        for suffix, message in cls.static_problems(static_args):
            # "rules.1.sql": list indexes as ints, so source_at finds the item's line
            full = path + [int(s) if s.isdigit() else s for s in suffix.split(".") if s] if suffix else path
            problems.append(Problem(source_at(root, full, file), path_str(full), message))
        # only an action with file checks of its own (verify's suites) needs the runbook's
        # directory: the base class finds nothing, and abspath is a getcwd per step
        if file and not problems and _has_file_checks(cls):
            for found in cls.file_problems(args, os.path.dirname(os.path.abspath(file))):
                if isinstance(found, Problem):
                    problems.append(found)
                else:
                    full = path + [int(s) if s.isdigit() else s for s in found[0].split(".") if s] if found[0] else path
                    problems.append(Problem(source_at(root, full, file), path_str(full), found[1]))
    return problems


def _has_file_checks(cls: Any) -> bool:
    return getattr(cls.file_problems, "__func__", None) is not getattr(Action.file_problems, "__func__", None)


def rendered_problems(cls: Any, args: Any) -> list[str]:
    """Validation's checks again, on arguments after their templates gave values: a
    ``need: "{{ size }}"`` that rendered to ``abc`` fails its step with this, not deep inside
    the action."""
    return [f"{p.path}: {p.message}" for p in _param_problems(cls, args, None, [cls.name], "")]


def digest_files(paths: list[str] | tuple[str, ...]) -> dict[str, str]:
    out = {}
    for p in paths:
        try:
            out[p] = hashlib.sha256(Path(p).read_bytes()).hexdigest()
        except OSError:
            out[p] = "missing"
    return out
