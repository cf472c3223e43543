"""engine/templating/quick.py answers what a template reads without Jinja2's code generator only
where that is exact: every analysis (error, names read, names read under a guard) must equal
the one of the parse + code generator that validation ran before, on every template of the
shipped runbooks and check suites, the fuzzer's mutations of them, generated templates and
the edge cases below."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.errors import TemplateError
from engine.templating import quick
from engine.templating.environment import _guarded, compile_errors
from engine.templating.render import ENGINE
from engine.templating.sandbox import undeclared_names
from tests.fuzz.mutate import corpus, make_case

ROOT = Path(__file__).resolve().parents[2]


def _reference(source: str) -> tuple[str | None, frozenset[str], frozenset[str]]:
    """The analysis as validation made it before quick.py: parse, then the code generator."""
    try:
        with compile_errors("", ENGINE.env):
            ast = ENGINE.env.parse(source)
            names = undeclared_names(ast)
        return None, frozenset(names), frozenset(_guarded(ast))
    except TemplateError as exc:
        return exc.message, frozenset(), frozenset()


def _now(source: str) -> tuple[str | None, frozenset[str], frozenset[str]]:
    ENGINE._analysis.pop(source, None)
    found = ENGINE._analyze(source)
    return found.error, found.names, found.guarded


def _strings(doc: Any) -> list[str]:
    """Every string (key or value) in a loaded document; aliases may make it cyclic."""
    out: list[str] = []
    stack, seen = [doc], set()
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            out.append(node)
        elif isinstance(node, (dict, list)) and id(node) not in seen:
            seen.add(id(node))
            stack.extend([x for kv in node.items() for x in kv] if isinstance(node, dict) else node)
    return out


def _templates(texts: list[str]) -> set[str]:
    out: set[str] = set()
    for text in texts:
        try:
            doc = yaml.safe_load(text)
        except Exception:  # a mutation PyYAML cannot load (it raises more than YAMLError)
            continue
        for s in _strings(doc):
            out.add(s)
            if "{{" not in s:
                out.add("{{ " + s + " }}")  # a condition (when:, that:) is checked with braces
    return {s for s in out if ("{{" in s or "{%" in s) and len(s) < 20_000}


EDGE_CASES = [
    "{{ x }}", "{{x}}", "{{ a.b.c }}", "a {{ b }} c {{ d.e }}", "{{ true }}", "{{ True }}", "{{ none }}", "{{ None }}",
    "{{ not }}", "{{ and }}", "{{ in }}", "{{ is }}", "{{ if }}", "{{ else }}", "{{ self }}", "{{ self.x }}",
    "{{ loop }}", "{{ caller }}", "{{ varargs }}", "{{ kwargs }}", "{{ super }}", "{{ range }}", "{{ lookup }}",
    "{{ namespace }}", "{{ a.true }}", "{{ a.if }}", "{{ a.1 }}", "{{ a . b }}", "{{- x }}", "{{ x -}}", "{{+ x }}",
    "{# c #}{{ x }}", "{{ x }}{# c #}", "x }} {{ y }}", "{ {{ x }} }", "}}{{ x }}", "{{ x }}}", "{{{ x }}",
    "{{ x }}\n", "\n{{ x }}\n", "{{\tx\n}}", "{{ x\r\n}}", "{{ 'a' }}", "{{ '}}' }}", "{{ x ~ '}}' }}", "{{ é }}",
    "{{ x | lenght }}", "{{ x is definedd }}", "{{ x | lenght if y else z }}", "{{ y if x | lenght else z }}",
    "{{ y if z else x | lenght }}", "{{ (x | lenght) if y }}", "{{ x | default(y | lenght) }}",
    "{{ x | length | lenght }}", "{{ x | lenght | length }}", "{{ x is nonee }}", "{{ x | d }}", "{{ x is defined }}",
    "{{ x | default(y) }}", "{{ a.b | default(c.d) }}", "{{ a[b] is defined and c }}", "{{ x is none }}",
    "{{ x is undefined or y }}", "{{ f(x, *y, **z) }}", "{{ f(a=b) }}", "{{ [a, b][0] }}", "{{ {a: b} }}",
    "{{ (a, b) }}", "{{ a[1:2:3] }}", "{{ -a + +b - c * d / e // f % g ** h }}", "{{ a ~ b }}",
    "{{ a < b > c <= d >= e == f != g }}", "{{ a in b and c not in d or not e }}", "{{ x if y }}",
    "{{ x.__class__ }}", "{{ 7 ** 99999999 }}", "{{ 'a' * 1000000000 }}", "{{ 9" + "9" * 5000 + " }}",
    "{{ x" + " | trim" * 300 + " }}", "{{ x" + ".a" * 400 + " }}", "{{ x" + " + x" * 400 + " }}",
    "{{ x" + "[0]" * 400 + " }}", "{{ " + "(" * 200 + "x" + ")" * 200 + " }}", "{{ " + "not " * 300 + "x }}",
    "{% set x = 1 %}{{ x }}", "{% for i in l %}{{ i }}{% endfor %}", "{% if x %}{{ y }}{% endif %}",
    "{% macro m(a) %}{{ a }}{{ b }}{% endmacro %}", "{% raw %}{{ x }}{% endraw %}", "{% if %}", "{{", "}}",
    "{{ x }", "{{ }}", "{{ x y }}", "{{ ]] }}", "{{ a ]] }}", "{{ x |}}", "{{ x is }}", "{% set ns = namespace() %}",
    "{{ ns.x }}", "{{ x | map(attribute='y') | list }}", "{{ x | selectattr('a', 'equalto', 1) }}",
    "{{ lookup('env', 'HOME') }}", "{{ query('file', p) }}", "{{ x.y(z) }}", "{{ x['y'] }}", "", "plain text",
]


def _generated(n: int, seed: int) -> list[str]:
    """Token soup: names, keywords, known and unknown filters and tests, operators, brackets,
    quotes and block delimiters, in random order (most do not parse; some parse oddly)."""
    rng = random.Random(seed)
    tokens = ["x", "y", "a.b", "self", "loop", "true", "none", "not", "and", "or", "in", "is", "if", "else", "defined",
              "undefined", "definedd", "| default", "| d", "| length", "| lenght", "| trim", "(", ")", "[", "]", "{", "}",
              ",", ":", ".", "'s'", "1", "2.5", "+", "-", "*", "**", "~", "==", "<", "=", "range", "lookup", "f(x)",
              "{{", "}}", "{%", "%}", "{#", "#}", " ", "\n", "text"]
    out = []
    for _ in range(n):
        body = " ".join(rng.choice(tokens) for _ in range(rng.randint(1, 12)))
        out.append("{{ " + body + " }}" if rng.random() < 0.7 else body + " {{ " + rng.choice(tokens) + " }}")
    return out


def _check(sources: set[str] | list[str]) -> None:
    pairs = [(s, _reference(s), _now(s)) for s in sources]
    wrong = [(s[:200], ref, now) for s, ref, now in pairs if ref != now]
    assert not wrong, wrong[:3]


def test_edge_cases_agree_with_the_code_generator() -> None:
    _check(EDGE_CASES)


def test_shipped_runbooks_and_checks_agree_with_the_code_generator() -> None:
    files = sorted((ROOT / "runbooks").glob("*.yml")) + sorted((ROOT / "checks").glob("*.yml"))
    found = _templates([f.read_text() for f in files])
    assert len(found) > 150
    _check(found)


@pytest.mark.filterwarnings("ignore:invalid escape sequence:DeprecationWarning")
def test_fuzzed_runbooks_agree_with_the_code_generator() -> None:
    seeds = corpus("runbook")
    texts = []
    for seed in range(2_000_000, 2_000_150):
        data = make_case(seeds, seed).data
        try:
            texts.append(data.decode("utf-8"))
        except UnicodeDecodeError:
            continue
    _check(_templates(texts))


@pytest.mark.filterwarnings("ignore:invalid escape sequence:DeprecationWarning")
def test_generated_templates_agree_with_the_code_generator() -> None:
    _check(_generated(3000, 7))


def test_the_quick_paths_answer_for_most_shipped_templates() -> None:
    """They are worth having: most templates of emergency.yml never reach the code generator."""
    found = _templates([(ROOT / "runbooks" / "emergency.yml").read_text()])
    env = ENGINE.env
    valid = [s for s in found if _reference(s)[0] is None]
    quick_ones = [s for s in valid if quick.plain_names(s, env.globals) is not None
                  or quick.expression_reads(env.parse(s), env.filters, env.tests, env.globals) is not None]
    assert len(quick_ones) > 0.8 * len(valid)
