"""Jinja2's side of :mod:`engine.templating.render`: the sandboxed environment with the
engine's filters, tests and globals, compiled expressions and templates, rendering, and the
analysis of a template Jinja2 has to parse.

Imported only when a template has to be parsed or rendered (:attr:`TemplateEngine.jinja`):
``runbook validate`` of a runbook whose templates are plain ``{{ a.b }}`` references, or
whose analyses the cache of template analyses holds, never imports Jinja2 (~110 M
instructions, ~40 ms of its start-up).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta
import jinja2.nodes
from jinja2.runtime import Context, missing

from engine.errors import InputError, TemplateError
from engine.language.sizes import format_size, parse_size
from engine.mysql.sqlutil import quote_ident
from engine.secrets import MASKER, SECRET_KEY, Secret
from engine.templating.quick import GUARD_FILTERS, GUARD_TESTS, expression_reads
from engine.templating.sandbox import BoundedSandbox, undeclared_names
from engine.templating.values import LazyVar, json_default, to_bool

_SINGLE_EXPR = re.compile(r"^\s*\{\{(?P<expr>(?:(?!\}\}|\{\{).)*)\}\}\s*$", re.S)

_local = threading.local()


class _LazyContext(Context):
    def resolve_or_missing(self, key: str) -> Any:
        value = super().resolve_or_missing(key)
        if isinstance(value, LazyVar):
            stack: list[str] = getattr(_local, "stack", None) or []
            if key in stack:
                raise TemplateError(f"variable {key!r} is defined in terms of itself ({' -> '.join(stack + [key])})")
            _local.stack = stack + [key]
            try:
                ctx = dict(self.parent)
                ctx.update(self.vars)
                value = self.environment.render_value(value.template, ctx)  # type: ignore[attr-defined]
            finally:
                _local.stack = stack
            if SECRET_KEY.search(key) and isinstance(value, str):
                MASKER.add(value)  # e.g. db_password: "{{ lookup('env', 'DB_PASSWORD') }}"
        if isinstance(value, Secret):
            # Templates compute with the real value; masking happens on output by value.
            return value.reveal()
        return value


class _Env(BoundedSandbox):
    context_class = _LazyContext
    #: renders a lazy variable's template (the engine that owns this environment)
    render_value: Callable[[Any, dict[str, Any]], Any]


def _lookup(kind: str, *args: Any, default: Any = missing) -> Any:
    if kind == "env":
        name = str(args[0])
        if name in os.environ:
            return os.environ[name]
        if default is not missing:
            return default
        raise TemplateError(f"lookup('env', {name!r}): environment variable {name} is not set",
                            hint="export it before running, or give default=...")
    if kind == "file":
        from engine.language.yamlio import read_text  # the bounded reader: /dev/zero, a FIFO, 4 GiB refused

        path = Path(os.path.expanduser(str(args[0])))
        try:
            return read_text(path, what="lookup('file')").rstrip("\n")
        except InputError as exc:
            if default is not missing:
                return default
            raise TemplateError(f"lookup('file', {str(path)!r}): {exc.message}", hint=exc.hint) from None
    raise TemplateError(f"unknown lookup {kind!r}", hint="lookups available: env, file")


def _regex_search(value: Any, pattern: str, *groups: Any, ignorecase: bool = False, multiline: bool = False) -> Any:
    flags = (re.I if ignorecase else 0) | (re.M if multiline else 0)
    m = re.search(pattern, str(value), flags)
    if not m:
        return None
    if not groups:
        return m.group(0)
    out = [m.group(int(g[1:]) if isinstance(g, str) and g.startswith("\\") else g) for g in groups]
    return out


@contextlib.contextmanager
def compile_errors(shown: str, env: jinja2.Environment | None = None) -> Iterator[None]:
    """Jinja2's compile-time failures as :class:`TemplateError`: a syntax error, an unknown
    filter or test (with a did-you-mean among ``env``'s), an expression nested too deep for the
    parser, a number literal too long to read."""
    where = f" in {shown!r}" if shown else ""
    try:
        yield
    except jinja2.TemplateAssertionError as exc:  # no filter/test named ...: an ordinary typo
        raise TemplateError(f"Jinja2 error{where}: {exc.message}" + _near_name(str(exc.message), env)) from None
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"Jinja2 syntax error{where}: {exc.message}") from None
    except RecursionError:
        raise TemplateError(f"expression nested too deep{where}", hint="split it with set_fact or vars") from None
    except (ValueError, OverflowError, MemoryError) as exc:  # int('9' * 4400), a huge literal
        raise TemplateError(f"expression cannot be read{where}: {str(exc)[:80]}") from None


def _near_name(message: str, env: jinja2.Environment | None) -> str:
    import difflib

    m = re.search(r"No (filter|test) named '([^']*)'", message)
    if not m or env is None:
        return ""
    known = env.filters if m.group(1) == "filter" else env.tests
    close = difflib.get_close_matches(m.group(2), sorted(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _guarded(ast: jinja2.nodes.Template) -> set[str]:
    out: set[str] = set()
    for node in ast.find_all((jinja2.nodes.Filter, jinja2.nodes.Test)):
        guard = GUARD_FILTERS if isinstance(node, jinja2.nodes.Filter) else GUARD_TESTS
        if node.name in guard and node.node is not None:
            out.update(n.name for n in node.node.find_all(jinja2.nodes.Name))
            if isinstance(node.node, jinja2.nodes.Name):
                out.add(node.node.name)
    return out


def _hostvars_reads(ast: jinja2.nodes.Template) -> tuple[frozenset[str], bool]:
    """(names read as ``hostvars[h].x``, ``hostvars[h]['x']``, ``hostvars.h.x``; whether some
    other read of ``hostvars`` may reach any name)."""
    nodes = jinja2.nodes
    names: set[str] = set()
    anything = False
    for path in _paths_to(ast, "hostvars"):
        if len(path) >= 2 and isinstance(path[-1], (nodes.Getitem, nodes.Getattr)):
            host, outer = path[-1], path[-2]
            if isinstance(outer, nodes.Getattr) and outer.node is host:
                names.add(outer.attr)
                continue
            if isinstance(outer, nodes.Getitem) and outer.node is host and isinstance(outer.arg, nodes.Const) \
                    and isinstance(outer.arg.value, str):
                names.add(outer.arg.value)
                continue
        anything = True
    return frozenset(names), anything


def _paths_to(node: jinja2.nodes.Node, name: str,
              above: tuple[jinja2.nodes.Node, ...] = ()) -> Iterator[tuple[jinja2.nodes.Node, ...]]:
    """For each ``Name(name)`` load: the chain of nodes above it, nearest last (Name excluded)."""
    if isinstance(node, jinja2.nodes.Name) and node.name == name and node.ctx == "load":
        yield above
        return
    for child in node.iter_child_nodes():
        yield from _paths_to(child, name, above + (node,))


def build_env(render_value: Callable[[Any, dict[str, Any]], Any]) -> _Env:
    env = _Env(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)
    env.filters.update(
        bool=to_bool,
        to_json=lambda v, **kw: json.dumps(v, default=json_default, **kw),
        from_json=lambda v: json.loads(v),
        regex_search=_regex_search,
        regex_replace=lambda v, p, r="", ignorecase=False: re.sub(p, r, str(v), flags=re.I if ignorecase else 0),
        to_bytes=lambda v: parse_size(v),
        size=lambda v: parse_size(v),
        human_size=lambda v: format_size(int(v)),
        ident=lambda v: quote_ident(str(v)),
        raw=lambda v: str(v),
        basename=lambda v: os.path.basename(str(v)),
        dirname=lambda v: os.path.dirname(str(v)),
        quote=lambda v: "'" + str(v).replace("'", "'\"'\"'") + "'",
        mandatory=lambda v: v,
    )
    env.tests.update(
        defined=lambda v: not isinstance(v, jinja2.Undefined),
        undefined=lambda v: isinstance(v, jinja2.Undefined),
    )
    env.globals.update(lookup=_lookup, query=_lookup)
    env.render_value = render_value
    return env


class Jinja:
    """The environment of one :class:`TemplateEngine`, with each template string compiled once."""

    def __init__(self, render_value: Callable[[Any, dict[str, Any]], Any]) -> None:
        self.env = build_env(render_value)
        self._expr_cache: dict[str, Any] = {}
        self._tmpl_cache: dict[str, jinja2.Template] = {}
        self._lock = threading.Lock()

    # -- compile -------------------------------------------------------------------------
    def _expr(self, source: str) -> Any:
        fn = self._expr_cache.get(source)
        if fn is None:
            with compile_errors(f"{{{{{source}}}}}", self.env):
                fn = self.env.compile_expression(source, undefined_to_none=False)
            with self._lock:
                self._expr_cache[source] = fn
        return fn

    def _template(self, source: str) -> jinja2.Template:
        tmpl = self._tmpl_cache.get(source)
        if tmpl is None:
            with compile_errors(source.strip()[:80], self.env):
                tmpl = self.env.from_string(source)
            with self._lock:
                self._tmpl_cache[source] = tmpl
        return tmpl

    def analyze(self, source: str) -> tuple[str | None, frozenset[str], frozenset[str], frozenset[str], bool]:
        """(its compile error or None, the names it reads, those read under a guard, those read
        through ``hostvars``, whether a read of ``hostvars`` may reach any name) of a template
        that needs the parser. The code generator runs, as when the template is used,
        so an unknown filter or test is found here — except where :func:`expression_reads`
        knows the answer for certain; nothing is evaluated."""
        env = self.env
        try:
            with compile_errors("", env):
                ast = env.parse(source)
                # the code generator only where its answer is not certain without it
                reads = expression_reads(ast, env.filters, env.tests, env.globals)
                if reads is None:
                    reads = undeclared_names(ast), _guarded(ast)
        except TemplateError as exc:
            return exc.message, frozenset(), frozenset(), frozenset(), False
        hostvars, anything = _hostvars_reads(ast) if "hostvars" in source else (frozenset(), False)
        return None, frozenset(reads[0]), frozenset(reads[1]), hostvars, anything

    # -- render --------------------------------------------------------------------------
    def render_str(self, source: str, variables: dict[str, Any]) -> Any:
        try:
            m = _SINGLE_EXPR.match(source)
            if m and "{%" not in source:
                value = self._expr(m.group("expr"))(variables)
                if isinstance(value, jinja2.Undefined):
                    value._fail_with_undefined_error()
                return value
            return self._template(source).render(variables)
        except TemplateError:
            raise
        except jinja2.UndefinedError as exc:
            raise TemplateError(f"undefined variable: {exc.message}", hint="define it in vars, the inventory, -e, or register it in an earlier step") from None
        except jinja2.exceptions.SecurityError as exc:
            raise TemplateError(f"template refused by the sandbox: {exc}") from None
        except jinja2.TemplateError as exc:
            raise TemplateError(f"template error: {exc}") from None
        except (TypeError, ValueError, KeyError, AttributeError, ZeroDivisionError, OverflowError) as exc:
            raise TemplateError(f"template error in {source.strip()[:80]!r}: {type(exc).__name__}: {exc}") from None
