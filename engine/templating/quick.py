"""What validation learns of a template — the names it reads — without Jinja2's code generator,
where that is exact (``runbook validate`` checks every template of a runbook: ~100 in
``emergency.yml``, and the parse + code generation of each was most of its CPU after imports).

Jinja2's code generator is what finds an unknown filter or test (``{{ x | lenght }}``) and what
tracks the names a template reads through its ``{% for %}``/``{% set %}``/macro scopes. A
template that is only text and ``{{ expressions }}`` has no scopes: every ``Name`` it loads is
read from the context, except Jinja2's globals and ``self`` (which the generator binds at the
root). So for such a template the names are the ``Name`` nodes of the parsed tree, and the
generator can only fail on an unknown filter or test (or on a tree nested too deep for it).
Two paths, each answering only when it is certain — otherwise ``None``, and the caller runs
the code generator as before, so every error and message stays Jinja2's own:

* :func:`plain_names`: text with ``{{ name }}`` / ``{{ a.b.c }}`` only — no parse at all;
* :func:`expression_reads`: a parsed tree of text and expressions only, whose filters and tests
  all exist, not deeper than :data:`MAX_DEPTH`.

``tests/unit/test_template_quick.py`` checks both against the code generator on every template
of the shipped runbooks, the fuzzer's mutations of them and a list of edge cases.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Container
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where a tree is walked: plain_names must not import Jinja2
    from jinja2 import nodes

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
#: text without braces and ``{{ name }}`` / ``{{ a.b }}`` blocks (no whitespace control, no
#: comment, no statement: any ``{`` or ``}`` elsewhere sends the template to the parser; nor
#: ``a.b.c…`` longer than the code generator can recurse through)
_PLAIN = re.compile(rf"(?:[^{{}}]|\{{\{{[ \t\r\n]*{_NAME}(?:\.{_NAME}){{0,16}}[ \t\r\n]*\}}\}})*")
_PLAIN_REF = re.compile(rf"\{{\{{[ \t\r\n]*({_NAME})")
#: names the parser reads as something else than a variable (constants, operators, the
#: template's ``self``): a template that uses one of them bare goes to the parser
_NOT_PLAIN = frozenset({"true", "false", "none", "True", "False", "None", "not", "and", "or", "in", "is", "if",
                        "else", "self"})

@functools.cache
def _expression_nodes() -> frozenset[type]:
    """The node types of a template made of text and expressions only (exact types: no subclass)."""
    from jinja2 import nodes

    return frozenset({
        nodes.Output, nodes.TemplateData, nodes.Name, nodes.Const, nodes.Getattr, nodes.Getitem, nodes.Slice,
        nodes.Filter, nodes.Test, nodes.Compare, nodes.Operand, nodes.And, nodes.Or, nodes.Not, nodes.Neg, nodes.Pos,
        nodes.Add, nodes.Sub, nodes.Mul, nodes.Div, nodes.FloorDiv, nodes.Mod, nodes.Pow, nodes.Concat, nodes.CondExpr,
        nodes.List, nodes.Tuple, nodes.Dict, nodes.Pair, nodes.Call, nodes.Keyword,
    })


#: a name inside what these filters and tests apply to may be undefined on purpose
GUARD_FILTERS = frozenset({"default", "d"})
GUARD_TESTS = frozenset({"defined", "undefined", "none"})
#: deeper trees go to the code generator, which recurses and may give "nested too deep"
#: (the parser builds ``a|f|f|f…`` and ``a.b.c…`` in loops, far deeper than it recurses)
MAX_DEPTH = 48


def plain_names(source: str, globals_: Container[str]) -> set[str] | None:
    """The names ``source`` reads when it is text and plain ``{{ a.b }}`` references only;
    None when it is anything else."""
    if _PLAIN.fullmatch(source) is None:
        return None
    names = set(_PLAIN_REF.findall(source))
    if names & _NOT_PLAIN:
        return None
    return {n for n in names if n not in globals_}


def expression_reads(ast: nodes.Template, filters: Container[str], tests: Container[str],
                     globals_: Container[str]) -> tuple[set[str], set[str]] | None:
    """(the names a parsed template reads, those it reads under a guard) when it is text and
    expressions only, every filter and test in it exists and it is at most :data:`MAX_DEPTH`
    deep; None otherwise. A name is guarded when it is inside what a guard filter or test
    (:data:`GUARD_FILTERS`, :data:`GUARD_TESTS`) is applied to, as render's ``_guarded`` finds."""
    from jinja2 import nodes

    expression_nodes = _expression_nodes()
    names: set[str] = set()
    guarded: set[str] = set()
    stack: list[tuple[nodes.Node, int, bool]] = [(n, 1, False) for n in ast.body]
    while stack:
        node, depth, under_guard = stack.pop()
        kind = type(node)
        if kind not in expression_nodes or depth > MAX_DEPTH:
            return None
        guard_of = None
        if kind is nodes.Name:
            if node.ctx != "load":  # type: ignore[attr-defined]
                return None
            names.add(node.name)  # type: ignore[attr-defined]
            if under_guard:
                guarded.add(node.name)  # type: ignore[attr-defined]
        elif kind is nodes.Filter:
            if node.node is None or node.name not in filters:  # type: ignore[attr-defined]
                return None
            guard_of = node.node if node.name in GUARD_FILTERS else None  # type: ignore[attr-defined]
        elif kind is nodes.Test:
            if node.name not in tests:  # type: ignore[attr-defined]
                return None
            guard_of = node.node if node.name in GUARD_TESTS else None  # type: ignore[attr-defined]
        for field in node.fields:
            child = getattr(node, field, None)
            if isinstance(child, nodes.Node):
                stack.append((child, depth + 1, under_guard or child is guard_of))
            elif isinstance(child, list):
                stack.extend((c, depth + 1, under_guard) for c in child if isinstance(c, nodes.Node))
    if "self" in names:  # the generator binds it at the root: leave that case to it
        return None
    return {n for n in names if n not in globals_}, guarded
