"""engine.templating.render: sandboxed Jinja2, strict undefined, native types, lazy variables, and SQL
rendering where every value is a bound parameter."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import TemplateError
from engine.secrets import Secret
from engine.language.sizes import format_size
from engine.templating.render import ENGINE, guarded_names, has_template, lazify, names_in, required_names

render = ENGINE.render


# --------------------------------------------------------------------------- native types


def test_single_expression_keeps_native_types() -> None:
    assert render("{{ tables }}", {"tables": ["a", "b"]}) == ["a", "b"]
    assert render("{{ n + 1 }}", {"n": 41}) == 42
    assert isinstance(render("{{ n }}", {"n": 41}), int)
    assert render("{{ m }}", {"m": {"k": [1]}}) == {"k": [1]}
    assert render("  {{ flag }}  ", {"flag": False}) is False
    assert render("{{ none }}", {"none": None}) is None


def test_mixed_text_renders_to_str() -> None:
    assert render("n={{ n }}", {"n": 4}) == "n=4"
    assert render("{{ a }}{{ b }}", {"a": 1, "b": 2}) == "12"
    assert render("{% if x %}yes{% endif %}", {"x": True}) == "yes"


def test_render_recurses_into_lists_and_mappings() -> None:
    got = render({"t": "{{ t }}", "l": ["{{ n }}", "x-{{ n }}"], "k": 3}, {"t": [1], "n": 2})
    assert got == {"t": [1], "l": [2, "x-2"], "k": 3}


def test_plain_strings_are_not_templated() -> None:
    assert render("no braces here", {}) == "no braces here"
    assert not has_template("plain") and has_template("{{ x }}") and has_template(["a", {"b": "{% if %}"}])


# --------------------------------------------------------------------------- undefined


@pytest.mark.parametrize("source", ["{{ nope }}", "x {{ nope }}", "{{ nope.attr }}", "{{ d.missing }}"])
def test_undefined_raises_template_error(source: str) -> None:
    with pytest.raises(TemplateError) as info:
        render(source, {"d": {}})
    assert "undefined" in info.value.message
    assert info.value.exit_code == 2


def test_undefined_in_condition_raises() -> None:
    with pytest.raises(TemplateError):
        ENGINE.truth("nope == 1", {})


def test_syntax_error_is_template_error() -> None:
    with pytest.raises(TemplateError) as info:
        render("{{ 1 + }}", {})
    assert "syntax" in info.value.message
    assert ENGINE.syntax_error("{{ a ]] }}") is not None
    assert ENGINE.syntax_error("{{ a }}") is None


# --------------------------------------------------------------------------- lazy variables


def test_lazy_var_defined_by_another_var_and_a_registered_result() -> None:
    variables = lazify({"datadir": "{{ facts.datadir }}", "target": "{{ datadir }}/restore", "plain": "x"})
    assert variables["plain"] == "x"
    # facts is registered later in the run; the definitions are only read now
    variables["facts"] = {"datadir": "/var/lib/mysql"}
    assert render("{{ target }}", variables) == "/var/lib/mysql/restore"
    assert render("dir: {{ datadir }}", variables) == "dir: /var/lib/mysql"


def test_lazy_var_keeps_native_type() -> None:
    variables = lazify({"core": "{{ base + ['orders'] }}", "base": ["users"]})
    assert render("{{ core }}", variables) == ["users", "orders"]
    assert render("{{ core | length }}", variables) == 2


@pytest.mark.parametrize("defs", [{"a": "{{ a }}"}, {"a": "{{ b }}", "b": "x{{ a }}"}])
def test_self_reference_is_an_error(defs: dict[str, str]) -> None:
    with pytest.raises(TemplateError) as info:
        render("{{ a }}", lazify(defs))
    assert "defined in terms of itself" in info.value.message


def test_registered_data_is_not_rendered_again() -> None:
    # a row holding "{{" is data, not a template
    assert render("{{ r.rows[0].t }}", {"r": {"rows": [{"t": "{{ boom }}"}]}}) == "{{ boom }}"


def test_secret_values_compute_with_the_real_value() -> None:
    assert render("{{ pw | length }}", {"pw": Secret("hunter22")}) == 8


# --------------------------------------------------------------------------- filters


@pytest.mark.parametrize(
    ("source", "variables", "expected"),
    [
        ("{{ x | default('d') }}", {}, "d"),
        ("{{ x | default('d') }}", {"x": "set"}, "set"),
        ("{{ x | d(3) }}", {}, 3),
        ("{{ 'yes' | bool }}", {}, True),
        ("{{ 'off' | bool }}", {}, False),
        ("{{ '42' | int }}", {}, 42),
        ("{{ {'a': [1, 2]} | to_json }}", {}, '{"a": [1, 2]}'),
        ("{{ '[1, {\"b\": 2}]' | from_json }}", {}, [1, {"b": 2}]),
        ("{{ 'MariaDB 10.11.6-log' | regex_search('[0-9]+\\\\.[0-9]+') }}", {}, "10.11"),
        ("{{ 'abc' | regex_search('z') }}", {}, None),
        ("{{ '20G' | size }}", {}, 20 * 1024**3),
        ("{{ '512M' | size }}", {}, 512 * 1024**2),
        ("{{ n | human_size }}", {"n": 1536}, format_size(1536)),
        ("{{ '/a/b.sql.gz' | basename }}", {}, "b.sql.gz"),
    ],
)
def test_filters(source: str, variables: dict[str, object], expected: object) -> None:
    assert render(source, variables) == expected


def test_bool_refuses_nonsense() -> None:
    with pytest.raises(TemplateError):
        render("{{ 'maybe' | bool }}", {})


def test_size_refuses_nonsense() -> None:
    with pytest.raises(TemplateError):
        render("{{ '20 gigs' | size }}", {})


# --------------------------------------------------------------------------- lookups


def test_lookup_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RB_TEST_VALUE", "from-env")
    monkeypatch.delenv("RB_TEST_UNSET", raising=False)
    assert render("{{ lookup('env', 'RB_TEST_VALUE') }}", {}) == "from-env"
    assert render("{{ lookup('env', 'RB_TEST_UNSET', default='dflt') }}", {}) == "dflt"
    with pytest.raises(TemplateError) as info:
        render("{{ lookup('env', 'RB_TEST_UNSET') }}", {})
    assert "RB_TEST_UNSET" in info.value.message and info.value.hint


def test_lookup_file(tmp_path: Path) -> None:
    f = tmp_path / "pw.txt"
    f.write_text("s3cret\n")
    assert render(f"{{{{ lookup('file', '{f}') }}}}", {}) == "s3cret"
    with pytest.raises(TemplateError):
        render(f"{{{{ lookup('file', '{tmp_path}/missing') }}}}", {})
    # not a regular file (it would read forever), or too large: refused at once, with a default honoured
    with pytest.raises(TemplateError) as zero:
        render("{{ lookup('file', '/dev/zero') }}", {})
    assert "not a regular file" in zero.value.message
    assert render("{{ lookup('file', '/dev/zero', default='d') }}", {}) == "d"
    big = tmp_path / "big.txt"
    big.write_bytes(b"x" * (4 * 1024 * 1024 + 1))
    with pytest.raises(TemplateError, match="MiB"):
        render(f"{{{{ lookup('file', '{big}') }}}}", {})
    with pytest.raises(TemplateError) as info:
        render("{{ lookup('pipe', 'id') }}", {})
    assert "unknown lookup" in info.value.message


# --------------------------------------------------------------------------- sandbox


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ lookup.__globals__ }}",
        "{{ f.__code__ }}",
        "{{ (1).__class__.__base__ }}",
    ],
)
def test_sandbox_blocks_python_internals(source: str) -> None:
    with pytest.raises(TemplateError) as info:
        render(source, {"f": lambda: 1})
    assert "sandbox" in info.value.message


# --------------------------------------------------------------------------- conditions


@pytest.mark.parametrize(
    ("cond", "expected"),
    [
        ("x == 1", True),
        ("{{ x == 2 }}", False),
        (True, True),
        ([("x == 1"), "y"], False),
        (["x == 1", "not y"], True),
        ("'no'", False),
        ("s", True),
        ("x is defined and z is not defined", True),
    ],
)
def test_truth(cond: object, expected: bool) -> None:
    assert ENGINE.truth(cond, {"x": 1, "y": False, "s": "yes"}) is expected


# --------------------------------------------------------------------------- names


def test_names_in_and_guards() -> None:
    assert names_in(["{{ a.b }} {{ c | default(d) }}", {"k": "{% for i in e %}{{ i }}{% endfor %}"}]) == {"a", "c", "d", "e"}
    assert guarded_names("{{ c | default('x') }} {% if z is defined %}{{ z }}{% endif %}") == {"c", "z"}
    assert required_names(["{{ c | default(d) }}", "{{ w }}"]) == {"d", "w"}


# --------------------------------------------------------------------------- SQL


def test_render_sql_values_become_parameters() -> None:
    sql, params = ENGINE.render_sql("SELECT * FROM t WHERE a = {{ a }} AND b = {{ b }}", {"a": 1, "b": "x"})
    assert sql == "SELECT * FROM t WHERE a = %s AND b = %s"
    assert params == [1, "x"]


def test_render_sql_injection_value_is_a_parameter_not_text() -> None:
    evil = "x'); DROP TABLE t; --"
    sql, params = ENGINE.render_sql("INSERT INTO t (v) VALUES ({{ v }})", {"v": evil})
    assert sql == "INSERT INTO t (v) VALUES (%s)"
    assert params == [evil]
    assert "DROP" not in sql


def test_render_sql_ident_quotes_and_doubles_backticks() -> None:
    sql, params = ENGINE.render_sql("SELECT * FROM {{ s | ident }}.{{ t | ident }}", {"s": "shop", "t": "we`ird"})
    assert sql == "SELECT * FROM `shop`.`we``ird`"
    assert params == []


def test_render_sql_ident_of_an_injection_stays_one_identifier() -> None:
    sql, _ = ENGINE.render_sql("DROP TABLE {{ t | ident }}", {"t": "a`; DROP DATABASE x; -- "})
    assert sql == "DROP TABLE `a``; DROP DATABASE x; -- `"


def test_render_sql_raw_splices() -> None:
    sql, params = ENGINE.render_sql("SELECT {{ cols | raw }} FROM t WHERE id = {{ id }}", {"cols": "a, b", "id": 7})
    assert sql == "SELECT a, b FROM t WHERE id = %s"
    assert params == [7]


def test_render_sql_percent_doubled_only_with_params() -> None:
    assert ENGINE.render_sql("SELECT 'x%' LIKE 'x%'", {}) == ("SELECT 'x%' LIKE 'x%'", [])
    sql, params = ENGINE.render_sql("SELECT * FROM t WHERE a LIKE 'x%' AND b = {{ b }}", {"b": "50%"})
    assert sql == "SELECT * FROM t WHERE a LIKE 'x%%' AND b = %s"
    assert params == ["50%"]
    # an ident splice is text too: its % must be doubled when the statement has params
    sql, _ = ENGINE.render_sql("SELECT {{ c | ident }} FROM t WHERE b = {{ b }}", {"c": "a%b", "b": 1})
    assert sql == "SELECT `a%%b` FROM t WHERE b = %s"


def test_render_sql_list_becomes_tuple_for_in() -> None:
    sql, params = ENGINE.render_sql("SELECT * FROM t WHERE id IN {{ ids }}", {"ids": [1, 2, 3]})
    assert sql == "SELECT * FROM t WHERE id IN %s"
    assert params == [(1, 2, 3)]


def test_render_sql_secret_is_revealed_as_a_parameter() -> None:
    _, params = ENGINE.render_sql("SET PASSWORD = PASSWORD({{ pw }})", {"pw": Secret("n3wpassw0rd")})
    assert params == ["n3wpassw0rd"]


def test_render_sql_refuses_blocks_and_undefined() -> None:
    with pytest.raises(TemplateError):
        ENGINE.render_sql("{% for t in ts %}SELECT 1;{% endfor %}", {"ts": [1]})
    with pytest.raises(TemplateError):
        ENGINE.render_sql("SELECT {{ nope }}", {})


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM mysql.user WHERE User = '{{ v }}'",
        'SELECT * FROM t WHERE a = "{{ v }}"',
        "SELECT * FROM t WHERE a LIKE '%{{ v }}%'",
        "SELECT * FROM `{{ v }}`",
    ],
)
def test_render_sql_refuses_a_value_inside_quotes(sql: str) -> None:
    """Quoted, the bound value brings its own quotes: '' + 'v' + '' leaves v unquoted, and
    v = " OR 1=1 -- " would select every row. Refused instead."""
    with pytest.raises(TemplateError) as info:
        ENGINE.render_sql(sql, {"v": " OR 1=1 -- "})
    assert "inside quotes" in info.value.message
    assert info.value.hint and "remove the quotes" in info.value.hint


def test_render_sql_quotes_around_ident_or_raw_and_in_comments_are_allowed() -> None:
    assert ENGINE.render_sql("SELECT '{{ t | ident }}'", {"t": "x"}) == ("SELECT '`x`'", [])
    assert ENGINE.render_sql("SELECT {{ v }} -- '{{ v }}'", {"v": 1}) == ("SELECT %s -- '%s'", [1, 1])
    assert ENGINE.render_sql("SELECT CONCAT('%', {{ v }}, '%')", {"v": "a"}) == ("SELECT CONCAT('%%', %s, '%%')", ["a"])


def _validate_counting(tmp_path: Path, n: int, expr: str = "{{ x | int }}") -> tuple[int, int]:
    """(Python calls, Jinja2 parses) made by ``runbook validate``'s loading of a runbook whose
    one step holds a one-line template of ``n`` expressions ``expr``."""
    import sys

    import engine.templating.render as render
    from engine.language.load import load_all

    render.ENGINE.__init__()  # type: ignore[misc]  # a cold cache: the big template is new
    rb = tmp_path / f"big{n}.yml"
    rb.write_text("name: big\nvars:\n  x: 1\nstages:\n  - name: s\n    steps:\n      - name: a\n"
                  "        shell: \"echo " + " ".join([expr] * n) + "\"\n")
    calls = parses = 0
    real_parse = render.ENGINE.env.parse

    def counting_parse(*a: object, **kw: object) -> object:
        nonlocal parses
        parses += 1
        return real_parse(*a, **kw)  # type: ignore[arg-type]

    def prof(frame: object, event: str, arg: object) -> None:
        nonlocal calls
        if event in ("call", "c_call"):
            calls += 1

    render.ENGINE.env.parse = counting_parse  # type: ignore[method-assign]
    sys.setprofile(prof)
    try:
        load_all(str(rb), (), (), None)
    finally:
        sys.setprofile(None)
        del render.ENGINE.env.parse
    return calls, parses


def test_validating_a_huge_template_is_linear(tmp_path: Path) -> None:
    """A 120 KB one-line template: ten times the expressions cost at most ~12 times the work
    (counted in calls, not seconds), and the template is parsed once, not once per check."""
    small, small_parses = _validate_counting(tmp_path, 1_500)
    big, big_parses = _validate_counting(tmp_path, 15_000)
    assert big <= 12 * small, (small, big)
    assert (small_parses, big_parses) == (1, 1)
    # plain references are read without Jinja2's parser (engine/templating/quick.py), as linearly
    small, small_parses = _validate_counting(tmp_path, 1_500, "{{ x }}")
    big, big_parses = _validate_counting(tmp_path, 15_000, "{{ x }}")
    assert big <= 12 * small, (small, big)
    assert (small_parses, big_parses) == (0, 0)


def test_the_global_names_known_without_jinja2_are_the_environments() -> None:
    """Validation subtracts GLOBAL_NAMES from what a template reads without building the
    environment (so without importing Jinja2): a Jinja2 that adds or drops a global must fail
    here, not make validate call a global an undefined variable."""
    from engine.templating.render import GLOBAL_NAMES

    assert set(ENGINE.env.globals) == GLOBAL_NAMES


def test_a_lazy_variable_renders_with_the_engine_that_reads_it() -> None:
    from engine.templating.render import TemplateEngine

    other = TemplateEngine()
    assert other.render("{{ a }}", lazify({"a": "{{ b }}-x", "b": 1})) == "1-x"
    assert ENGINE.truth("a == '1-x'", lazify({"a": "{{ b }}-x", "b": 1})) is True
