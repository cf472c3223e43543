"""engine.language.loader + engine.language.crosscheck: every bad runbook is refused with every problem at once,
each at its exact ``file:line:col``, with a message naming it and a hint where there is one.

The broken runbooks live in ``tests/cli/bad/`` (see its README); ``EXPECTED`` below is also
what ``tests/cli/test_validate_cli.py`` checks on the command line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.language.load import parse_extra_vars
from engine.errors import InputError, Problem, ValidationFailed
from engine.inventory import load_inventories
from engine.language.loader import load_runbook
from engine.language.crosscheck import cross_check

ROOT = Path(__file__).resolve().parents[2]
BAD = ROOT / "tests" / "cli" / "bad"
LOCAL_INVENTORY = ROOT / "inventory" / "local.yml"

# file -> [(line, col, substrings of the message, substring of the hint or None)], in line order.
Expect = tuple[int, int, tuple[str, ...], str | None]
EXPECTED: dict[str, list[Expect]] = {
    "yaml_syntax.yml": [(8, 1, ("YAML syntax error", "end of stream", "line 7, column 16"), "quoting")],
    "yaml_unquoted_template.yml": [(9, 17, ("YAML syntax error",), "quote values that start with {{")],
    "tabs.yml": [(4, 1, ("YAML syntax error", "'\\t'"), "use spaces")],
    "empty.yml": [(1, 1, ("runbook is empty",), "YAML mapping")],
    "comment_only.yml": [(1, 1, ("runbook is empty",), "YAML mapping")],
    "non_utf8.yml": [(2, 10, ("not UTF-8", "0xe9"), "save the file as UTF-8")],
    "top_level_list.yml": [(1, 1, ("a runbook is a mapping", "not a list"), None)],
    "unknown_keys.yml": [
        (3, 1, ("unknown key 'stpes'",), "did you mean 'stages'?"),
        (6, 5, ("unknown key 'budjet'",), "did you mean 'budget'?"),
        (9, 9, ("unknown key 'shel'",), "did you mean 'shell'?"),
        (12, 9, ("unknown key 'registr'",), "did you mean 'register'?"),
    ],
    "step_actions.yml": [
        (6, 9, ("exactly one action", "found none"), "actions: "),
        (10, 9, ("exactly one action, found 2", "shell, set_fact"), "split it into two steps"),
        (11, 9, ("the shell step needs a name",), "names identify steps"),
    ],
    "duplicate_names.yml": [
        (8, 15, ("duplicate step name 's'", "duplicate_names.yml:6:9"), "unique"),
        (10, 11, ("duplicate stage name 'a'", "duplicate_names.yml:4:5"), "unique"),
    ],
    "duplicate_keys.yml": [(8, 9, ("duplicate key 'shell'",), "keeps only the last")],
    "durations.yml": [
        (5, 13, ("stages[0].budget", "'5 minutes' is not a duration"), None),
        (9, 18, ("stages[0].steps[0].timeout", "-3", "negative"), None),
        (12, 16, ("stages[0].steps[1].delay", "'abc' is not a duration"), None),
        (15, 18, ("stages[0].steps[2].timeout", "a template is not allowed here"), "e.g. 30s"),
    ],
    "jinja_syntax.yml": [
        (4, 8, ("vars.bad", "Jinja2 syntax error"), "{{ }} braces"),
        (7, 14, ("stages[0].confirm", "Jinja2 syntax error"), "{{ }} braces"),
        (10, 16, ("stages[0].steps[0].shell", "Jinja2 syntax error"), "{{ }} braces"),
        (13, 15, ("stages[0].steps[1].when", "Jinja2 syntax error"), "a condition is a Jinja2 expression"),
        (16, 15, ("stages[0].steps[2].loop", "Jinja2 syntax error"), "{{ }} braces"),
    ],
    "undefined_vars.yml": [
        (6, 10, ("vars.label", "variable 'prefx' is not defined anywhere"), "define it in vars:"),
        (9, 11, ("stages[0].when", "variable 'enabld' is not defined anywhere"), None),
        (12, 14, ("stages[0].steps[0].sql", "variable 'shcema' is not defined anywhere"), "did you mean 'schema'?"),
        (14, 16, ("stages[0].steps[1].shell", "variable 'nowhere_at_all' is not defined anywhere"), "define it in vars:"),
        (17, 15, ("stages[0].steps[2].when", "variable 'schemaa' is not defined anywhere"), "did you mean 'schema'?"),
        (20, 15, ("stages[0].steps[3].loop", "variable 'tabels' is not defined anywhere"), "did you mean 'tables'?"),
    ],
    "targets.yml": [
        (3, 10, ("targets", "pattern 'primray' matches no host"), "fix targets:"),
        (6, 14, ("stages[0].targets", "pattern 'db*' matches no host"), "fix the stage's targets:"),
    ],
    "literal_only.yml": [
        (7, 17, ("stages[0].on_failure", "a template is not allowed here"), "abort, rollback, continue"),
        (8, 13, ("stages[0].budget", "a template is not allowed here"), "e.g. 30s"),
    ],
    "many_problems.yml": [
        (7, 13, ("stages[0].budget", "'soon' is not a duration"), None),
        (10, 14, ("stages[0].steps[0].sql", "variable 'shema' is not defined anywhere"), "did you mean 'schema'?"),
        (11, 15, ("duplicate step name 'count'",), "unique"),
        (12, 16, ("stages[0].steps[1].shell", "Jinja2 syntax error"), "{{ }} braces"),
        (14, 9, ("unknown key 'shel'",), "did you mean 'shell'?"),
        (17, 9, ("exactly one action, found 2",), "split it"),
        (19, 17, ("stages[1].on_failure", "'explode' is not allowed"), "abort, rollback, continue"),
    ],
    "sql_quoted_values.yml": [
        (9, 14, ("stages[0].steps[0].sql", "{{ user }} is inside quotes in SQL text"), "remove the quotes"),
        (10, 17, ("stages[0].steps[0].unless", "{{ user }} is inside quotes"), "remove the quotes"),
        (11, 21, ("stages[0].steps[0].undo.sql", "{{ user }} is inside quotes"), "remove the quotes"),
    ],
    "sizes.yml": [
        (7, 50, ("disk_space.need", "'20 gigs' is not a size"), None),
        (12, 19, ("disk_space.margin", "'20' is not a percentage"), None),
    ],
}

#: files whose problems the loader alone finds (the rest need the inventory: cross-checks)
LOADER_ONLY = sorted(set(EXPECTED) - {"undefined_vars.yml", "targets.yml", "many_problems.yml"})


def all_problems(path: str | Path, inventory: Path = LOCAL_INVENTORY, extra: dict[str, Any] | None = None,
                 limit: str | None = None) -> list[Problem]:
    """What `runbook validate` reports: loader problems and cross-checks, sorted by position."""
    try:
        loaded = load_runbook(str(path), partial=True)
    except ValidationFailed as exc:
        return exc.problems
    problems = list(loaded.problems) + cross_check(loaded.runbook, load_inventories([str(inventory)]), extra or {}, limit)
    return ValidationFailed(problems).problems if problems else []


def assert_matches(problems: list[Problem], expected: list[Expect], file: str) -> None:
    got = [(p.source.line, p.source.col) for p in problems]
    assert got == [(line, col) for line, col, _, _ in expected], "\n".join(p.render() for p in problems)
    for p, (_, _, needles, hint) in zip(problems, expected):
        assert p.source.file.endswith(file)
        text = f"{p.path}: {p.message}"
        for needle in needles:
            assert needle in text, p.render()
        if hint is not None:
            assert p.hint and hint in p.hint, p.render()


@pytest.mark.parametrize("fname", sorted(EXPECTED))
def test_bad_runbook_reports_every_problem_at_its_position(fname: str) -> None:
    problems = all_problems(BAD / fname)
    assert_matches(problems, EXPECTED[fname], fname)


@pytest.mark.parametrize("fname", LOADER_ONLY)
def test_loader_raises_validation_failed(fname: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        load_runbook(str(BAD / fname))
    assert_matches(info.value.problems, EXPECTED[fname], fname)
    # the rendered error is one line per problem, file:line:col first
    lines = info.value.render().splitlines()
    assert len(lines) == len(EXPECTED[fname])
    for line, (ln, col, _, _) in zip(lines, EXPECTED[fname]):
        assert line.startswith(f"{BAD / fname}:{ln}:{col}: ")


def test_every_bad_file_is_documented_in_the_readme() -> None:
    readme = (BAD / "README.md").read_text()
    files = sorted(p.name for p in BAD.glob("*.yml"))
    assert files == sorted(EXPECTED)
    for name in files:
        assert f"`{name}`" in readme, name


def test_missing_file_is_a_validation_failure(tmp_path: Path) -> None:
    with pytest.raises(ValidationFailed) as info:
        load_runbook(str(tmp_path / "nope.yml"))
    assert "does not exist" in info.value.render()
    assert info.value.exit_code == 2


def test_directory_is_a_validation_failure(tmp_path: Path) -> None:
    with pytest.raises(ValidationFailed) as info:
        load_runbook(str(tmp_path))
    assert "is a directory" in info.value.render()


def test_several_problems_are_sorted_by_line(tmp_path: Path) -> None:
    # written bottom-up on purpose: the last stage's problem is found first by the loader
    rb = tmp_path / "rb.yml"
    rb.write_text(
        "name: x\n"
        "stages:\n"
        "  - name: a\n"
        "    budget: later\n"
        "    steps:\n"
        "      - name: s\n"
        "        shell: echo {{ 1 + }}\n"
        "  - name: a\n"
        "    steps:\n"
        "      - name: t\n"
        "        shel: echo\n"
    )
    with pytest.raises(ValidationFailed) as info:
        load_runbook(str(rb))
    lines = [p.source.line for p in info.value.problems]
    assert lines == sorted(lines) == [4, 7, 8, 11]


def test_good_runbook_builds_the_model(tmp_path: Path) -> None:
    rb = tmp_path / "rb.yml"
    rb.write_text(
        "name: good\n"
        "targets: all\n"
        "budget: 1h\n"
        "vars: {a: 1}\n"
        "stages:\n"
        "  - name: s\n"
        "    budget: 90\n"
        "    on_failure: continue\n"
        "    tags: x, y\n"
        "    steps:\n"
        "      - name: one\n"
        "        shell: echo {{ a }}\n"
        "        register: r\n"
        "        timeout: 1m30s\n"
        "        delay: 250ms\n"
        "        retries: 2\n"
        "        loop: [1]\n"
        "        loop_control: {loop_var: n}\n"
        "        tags: [t]\n"
    )
    loaded = load_runbook(str(rb))
    r = loaded.runbook
    assert (r.name, r.budget, r.vars) == ("good", 3600.0, {"a": 1})
    stage = r.stages[0]
    assert (stage.budget, stage.on_failure.value, stage.tags) == (90.0, "continue", ("x", "y"))
    step = stage.steps[0]
    assert (step.action, step.register, step.timeout, step.delay, step.retries, step.loop_var, step.tags) == (
        "shell", "r", 90.0, 0.25, 2, "n", ("t",))
    assert (step.source.line, step.source.col) == (11, 9)
    assert step.key == "s/one"


def test_raw_in_sql_is_a_warning_not_an_error(tmp_path: Path) -> None:
    rb = tmp_path / "rb.yml"
    rb.write_text("name: x\nvars: {c: id}\nstages:\n  - name: s\n    steps:\n      - name: q\n        sql: SELECT {{ c | raw }} FROM t\n")
    loaded = load_runbook(str(rb))
    assert [w.source.line for w in loaded.warnings] == [7]
    assert "raw" in loaded.warnings[0].message


def test_defined_somewhere_is_not_undefined(tmp_path: Path) -> None:
    """A name defined by -e, the inventory, a register, set_fact or a loop is not reported."""
    inv = tmp_path / "inv.yml"
    inv.write_text("all:\n  vars: {from_inv: 1}\n  hosts:\n    localhost: {connection: local}\n")
    rb = tmp_path / "rb.yml"
    rb.write_text(
        "name: x\nstages:\n  - name: s\n    steps:\n"
        "      - name: a\n        shell: echo {{ from_inv }} {{ from_e }}\n        register: reg\n"
        "      - name: b\n        set_fact: {fact: 1}\n"
        "      - name: c\n        shell: echo {{ reg.rc }} {{ fact }} {{ it }} {{ inventory_hostname }}\n"
        "        loop: [1]\n        loop_control: {loop_var: it}\n"
    )
    assert [p.message for p in all_problems(rb, inv)] == ["variable 'from_e' is not defined anywhere"]
    assert all_problems(rb, inv, {"from_e": "1"}) == []


def test_limit_that_matches_nothing(tmp_path: Path) -> None:
    problems = all_problems(ROOT / "runbooks" / "hello.yml", limit="dbz*")
    assert len(problems) == 1
    assert problems[0].source.file == "--limit"
    assert "matches no host" in problems[0].message


# --------------------------------------------------------------------------- -e values


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("novalue", "is not KEY=VALUE"),
        ("1bad=2", "'1bad' is not a valid variable name"),
        ("my-var=2", "'my-var' is not a valid variable name"),
        ("@{tmp}/missing.yml", "does not exist"),
        ("@{tmp}/list.yml", "a vars file is a mapping"),
        ("{{broken", "cannot parse"),
    ],
)
def test_bad_extra_vars(tmp_path: Path, value: str, needle: str) -> None:
    (tmp_path / "list.yml").write_text("- a\n- b\n")
    with pytest.raises(ValidationFailed) as info:
        parse_extra_vars((value.replace("{tmp}", str(tmp_path)),))
    assert needle in info.value.render()


def test_extra_vars_all_problems_at_once() -> None:
    with pytest.raises(ValidationFailed) as info:
        parse_extra_vars(("a=1", "nope", "2x=1"))
    assert len(info.value.problems) == 2


def test_good_extra_vars(tmp_path: Path) -> None:
    f = tmp_path / "v.yml"
    f.write_text("n: 3\nlst: [1, 2]\n")
    got = parse_extra_vars(("a=1=2", f"@{f}", '{"j": true}', "empty="))
    assert got == {"a": "1=2", "n": 3, "lst": [1, 2], "j": True, "empty": ""}


def test_input_error_is_exit_2() -> None:
    assert InputError("x").exit_code == 2
    assert issubclass(ValidationFailed, InputError)


def test_a_runbook_without_stages_is_refused(tmp_path: Path) -> None:
    # SPEC: stages are required; the top level is checked with a placeholder for them, which
    # must not stand in for stages that are not there
    path = tmp_path / "rb.yml"
    path.write_text("name: no stages\n")
    with pytest.raises(ValidationFailed) as exc:
        load_runbook(str(path))
    assert [(p.source.line, p.message) for p in exc.value.problems] == [(1, "missing required key 'stages'")]


def test_step_sources_are_where_source_at_finds_them(tmp_path: Path) -> None:
    """The loader reads each step's position off its stage's list (one walk per stage): the
    same place a walk from the root finds, for a stage of the file and an imported one."""
    from engine.language.yamlio import load_yaml, source_at

    (tmp_path / "more.yml").write_text("- name: imported\n  steps:\n    - {name: c, shell: 'true'}\n"
                                       "    -   name: d\n        sql: SELECT 1\n")
    rb_file = tmp_path / "rb.yml"
    rb_file.write_text("name: r\nstages:\n  - name: s\n    steps:\n      - name: a\n        sql: SELECT 1\n"
                       "      -\n        name: b\n        shell: 'true'\n  - import: more.yml\n")
    rb = load_runbook(str(rb_file)).runbook
    docs = [(load_yaml(rb_file), ["stages", 0], str(rb_file)), (load_yaml(tmp_path / "more.yml"), [0], str(tmp_path / "more.yml"))]
    assert [len(s.steps) for s in rb.stages] == [2, 2]
    for stage, (doc, spath, file) in zip(rb.stages, docs):
        for step in stage.steps:
            assert step.source == source_at(doc, spath + ["steps", step.index], file)
    assert [(s.source.line, s.source.col) for s in rb.stages[0].steps] == [(5, 9), (8, 9)]


def test_step_build_is_the_dataclass_constructor() -> None:
    """``Step.build`` (the loader's fast way) makes the Step that ``Step(...)`` makes, and
    refuses what it refuses."""
    import dataclasses

    from engine.errors import Source
    from engine.model import Step

    values: dict[str, Any] = dict(name="n", action="sql", args="SELECT 1", source=Source("f", 3, 5), stage="s", index=2,
                                  when="x", register="r", retries=3, tags=("a",), raw={"name": "n"})
    built, made = Step.build(**values), Step(**values)
    assert built == made and type(built) is Step
    assert {f.name: getattr(built, f.name) for f in dataclasses.fields(Step)} == {f.name: getattr(made, f.name) for f in dataclasses.fields(Step)}
    assert Step.build(name="n", action="a", args=None, source=Source("f"), stage="s", index=0).delay == 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        Step.build(name="n", action="sql")
    with pytest.raises(TypeError):
        Step.build(**values, bogus=1)
