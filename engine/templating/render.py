"""Sandboxed Jinja2 with strict undefined variables and native types.

* ``"{{ core_tables }}"`` (one expression and nothing else) yields the value itself — a list
  stays a list, an int stays an int. Anything else renders to a string.
* Variable definitions (inventory, runbook ``vars``, ``-e``) may themselves be templates; they
  are rendered lazily, when a template reads them (as Ansible does), so
  ``datadir: "{{ facts.datadir }}"`` works once ``facts`` is registered.
* Registered results are data and are never rendered again (a row holding ``{{`` stays text).
* In SQL, :func:`render_sql` turns each ``{{ expr }}`` into a bound parameter; ``| ident``
  splices a backtick-quoted identifier and ``| raw`` verbatim text.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from collections.abc import Iterable, Iterator

import jinja2
import jinja2.meta
import jinja2.nodes
from jinja2.runtime import Context, missing

from engine.templating.quick import GUARD_FILTERS, GUARD_TESTS, expression_reads, plain_names
from engine.templating.sandbox import BoundedSandbox, undeclared_names
from engine.templating.shared_cache import SharedCache

from engine.errors import InputError, TemplateError
from engine.secrets import MASKER, SECRET_KEY, Secret, reveal
from engine.language.sizes import format_size, parse_size
from engine.mysql.sqlutil import quote_ident, quoted_placeholders

_SINGLE_EXPR = re.compile(r"^\s*\{\{(?P<expr>(?:(?!\}\}|\{\{).)*)\}\}\s*$", re.S)
_EXPR_BLOCK = re.compile(r"\{\{(?P<expr>(?:(?!\}\}).)*?)\}\}", re.S)
_TAIL_FILTER = re.compile(r"^(?P<inner>.*?)\|\s*(?P<filter>ident|raw)\s*$", re.S)


class UnsafeText(str):
    """A string templates never render (Ansible's ``!unsafe``): ``{{`` in it is literal text."""

    __slots__ = ()


def has_template(value: Any) -> bool:
    if isinstance(value, UnsafeText):
        return False
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, dict):
        return any(has_template(k) or has_template(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(has_template(v) for v in value)
    return False


class LazyVar:
    """A variable definition that is a template, rendered when first read."""

    __slots__ = ("template",)

    def __init__(self, template: Any):
        self.template = template

    def __repr__(self) -> str:
        return f"LazyVar({self.template!r})"


def lazify(variables: dict[str, Any]) -> dict[str, Any]:
    """Wrap templated definitions in :class:`LazyVar`."""
    return {k: LazyVar(v) if has_template(v) else v for k, v in variables.items()}


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
                value = ENGINE.render(value.template, ctx)
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


def _to_bool(value: Any) -> bool:
    if isinstance(value, str):
        v = value.strip().lower()
        if v in ("yes", "true", "on", "1", "y"):
            return True
        if v in ("no", "false", "off", "0", "n", ""):
            return False
        raise TemplateError(f"bool: cannot read {value!r} as a boolean")
    return bool(value)


def _regex_search(value: Any, pattern: str, *groups: Any, ignorecase: bool = False, multiline: bool = False) -> Any:
    flags = (re.I if ignorecase else 0) | (re.M if multiline else 0)
    m = re.search(pattern, str(value), flags)
    if not m:
        return None
    if not groups:
        return m.group(0)
    out = [m.group(int(g[1:]) if isinstance(g, str) and g.startswith("\\") else g) for g in groups]
    return out


def _json_default(value: Any) -> Any:
    if isinstance(value, Secret):
        return str(value)
    return str(value)


@contextlib.contextmanager
def compile_errors(shown: str) -> Iterator[None]:
    """Jinja2's compile-time failures as :class:`TemplateError`: a syntax error, an unknown
    filter or test (with a did-you-mean), an expression nested too deep for the parser, a
    number literal too long to read."""
    where = f" in {shown!r}" if shown else ""
    try:
        yield
    except jinja2.TemplateAssertionError as exc:  # no filter/test named ...: an ordinary typo
        raise TemplateError(f"Jinja2 error{where}: {exc.message}" + _near_name(str(exc.message))) from None
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"Jinja2 syntax error{where}: {exc.message}") from None
    except RecursionError:
        raise TemplateError(f"expression nested too deep{where}", hint="split it with set_fact or vars") from None
    except (ValueError, OverflowError, MemoryError) as exc:  # int('9' * 4400), a huge literal
        raise TemplateError(f"expression cannot be read{where}: {str(exc)[:80]}") from None


def _near_name(message: str) -> str:
    import difflib

    m = re.search(r"No (filter|test) named '([^']*)'", message)
    if not m:
        return ""
    known = ENGINE.env.filters if m.group(1) == "filter" else ENGINE.env.tests
    close = difflib.get_close_matches(m.group(2), sorted(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


@dataclass(frozen=True)
class _Analysis:
    error: str | None
    names: frozenset[str]
    guarded: frozenset[str]


class TemplateEngine:
    """Compiles each template string once and renders it with a variable mapping."""

    def __init__(self) -> None:
        env = _Env(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)
        env.filters.update(
            bool=_to_bool,
            to_json=lambda v, **kw: json.dumps(v, default=_json_default, **kw),
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
        self.env = env
        self._expr_cache: dict[str, Any] = {}
        self._tmpl_cache: dict[str, jinja2.Template] = {}
        self._analysis: dict[str, _Analysis] = {}
        #: analyses kept across processes (engine/templating/shared_cache.py); the CLI opens it
        self.shared: SharedCache | None = None
        self._lock = threading.Lock()

    # -- compile -------------------------------------------------------------------------
    def _expr(self, source: str) -> Any:
        fn = self._expr_cache.get(source)
        if fn is None:
            with compile_errors(f"{{{{{source}}}}}"):
                fn = self.env.compile_expression(source, undefined_to_none=False)
            with self._lock:
                self._expr_cache[source] = fn
        return fn

    def _template(self, source: str) -> jinja2.Template:
        tmpl = self._tmpl_cache.get(source)
        if tmpl is None:
            with compile_errors(source.strip()[:80]):
                tmpl = self.env.from_string(source)
            with self._lock:
                self._tmpl_cache[source] = tmpl
        return tmpl

    def _analyze(self, source: str) -> _Analysis:
        """What validation needs to know of a template, from **one** parse (a template of a
        megabyte is parsed once, whatever asks): the error it gives when it compiles, or None;
        the names it reads; the names it reads only under a guard. The code generator runs, as
        when the template is used, so an unknown filter or test is found here and not in the
        middle of a run — except where :mod:`engine.templating.quick` knows its answer for
        certain (text and expressions whose filters and tests exist); nothing is evaluated."""
        found = self._analysis.get(source)
        if found is None:
            env = self.env
            plain = plain_names(source, env.globals)  # text and {{ a.b }} only: no parse (quick.py)
            shared = self.shared.get(source) if self.shared is not None and plain is None else None
            if plain is not None:
                found = _Analysis(None, frozenset(plain), frozenset())
            elif shared is not None:
                found = _Analysis(*shared)
            else:
                try:
                    with compile_errors(""):
                        ast = env.parse(source)
                        # the code generator only where its answer is not certain without it
                        reads = expression_reads(ast, env.filters, env.tests, env.globals)
                        if reads is None:
                            reads = undeclared_names(ast), _guarded(ast)
                    found = _Analysis(None, frozenset(reads[0]), frozenset(reads[1]))
                except TemplateError as exc:
                    found = _Analysis(exc.message, frozenset(), frozenset())
                # "nested too deep" depends on the stack of the call, not only on the text
                if self.shared is not None and not (found.error or "").startswith("expression nested too deep"):
                    self.shared.put(source, (found.error, found.names, found.guarded))
            with self._lock:
                if len(self._analysis) > 100_000:  # a generated runbook must not grow this forever
                    self._analysis.clear()
                self._analysis[source] = found
        return found

    def syntax_error(self, source: str) -> str | None:
        """What is wrong with a template string, or None (validation without rendering)."""
        return self._analyze(source).error

    def variables(self, source: str) -> set[str]:
        """Names a template reads from its context (for 'certainly undefined' checks)."""
        return set(self._analyze(source).names)

    def guarded(self, source: str) -> set[str]:
        """Names a template reads only under a guard (see :func:`guarded_names`)."""
        return set(self._analyze(source).guarded)

    # -- render --------------------------------------------------------------------------
    def render(self, value: Any, variables: dict[str, Any]) -> Any:
        """Render a value recursively (strings, lists, mappings) with native types."""
        if isinstance(value, str):
            if ("{{" not in value and "{%" not in value) or isinstance(value, UnsafeText):
                return value
            return self._render_str(value, variables)
        if isinstance(value, dict):
            return {self.render(k, variables): self.render(v, variables) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.render(v, variables) for v in value]
        return value

    def _render_str(self, source: str, variables: dict[str, Any]) -> Any:
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

    def truth(self, condition: Any, variables: dict[str, Any]) -> bool:
        """A ``when``/``until``/``failed_when`` condition: a bare expression, a template, a bool,
        or a list of them (all must hold)."""
        if isinstance(condition, bool):
            return condition
        if isinstance(condition, (list, tuple)):
            return all(self.truth(c, variables) for c in condition)
        if isinstance(condition, (int, float)):
            return bool(condition)
        text = str(condition).strip()
        if not _SINGLE_EXPR.match(text):
            if "{{" in text:
                value = self._render_str(text, variables)
                return _to_bool(value) if isinstance(value, str) else bool(value)
            text = "{{ " + text + " }}"
        value = self._render_str(text, variables)
        if isinstance(value, str):
            return _to_bool(value)
        return bool(value)

    # -- SQL -----------------------------------------------------------------------------
    def render_sql(self, sql: str, variables: dict[str, Any]) -> tuple[str, list[Any]]:
        """SQL text with ``%s`` placeholders and the bound values.

        ``{{ expr }}`` → a parameter; ``{{ expr | ident }}`` → a quoted identifier;
        ``{{ expr | raw }}`` → verbatim text. Literal ``%`` are doubled when there are params,
        because PyMySQL formats the statement only then.
        """
        if "{%" in sql:
            raise TemplateError("{% ... %} blocks are not allowed in SQL text", hint="use loop: on the step, or | raw on a rendered value")
        if "{{" not in sql:  # nothing to bind or splice: the text as it is, no parameters
            return sql, []
        quoted = quoted_value_placeholders(sql)
        if quoted:
            raise TemplateError(f"{quoted[0]} is inside quotes in SQL text: the value is a bound parameter and brings its own quotes",
                                hint=QUOTED_HINT)
        parts: list[tuple[str, str]] = []
        params: list[Any] = []
        pos = 0
        for m in _EXPR_BLOCK.finditer(sql):
            parts.append(("text", sql[pos : m.start()]))
            expr = m.group("expr")
            tail = _TAIL_FILTER.match(expr)
            if tail:
                value = self._render_str("{{" + tail.group("inner") + "}}", variables)
                text = quote_ident(str(value)) if tail.group("filter") == "ident" else str(value)
                parts.append(("splice", text))
            else:
                params.append(_param(self._render_str("{{" + expr + "}}", variables)))
                parts.append(("param", "%s"))
            pos = m.end()
        parts.append(("text", sql[pos:]))
        out = []
        for kind, text in parts:
            out.append(text.replace("%", "%%") if params and kind != "param" else text)
        return "".join(out), params


QUOTED_HINT = "remove the quotes around {{ }} (for LIKE, write CONCAT('%', {{ v }}, '%')); for a name use {{ v | ident }}"


def quoted_value_placeholders(sql: str) -> list[str]:
    """``{{ expr }}`` value placeholders written inside quotes (``| ident``/``| raw`` splice text
    and are the author's explicit choice). Such a placeholder would splice the value unquoted."""
    return [b for b in quoted_placeholders(sql) if not _TAIL_FILTER.match(b[2:-2] if b.endswith("}}") else b[2:])]


def _param(value: Any) -> Any:
    value = reveal(value)
    if isinstance(value, (dict,)):
        return json.dumps(value, default=_json_default)
    if isinstance(value, list):
        return tuple(_param(v) for v in value)
    return value




def _guarded(ast: jinja2.nodes.Template) -> set[str]:
    out: set[str] = set()
    for node in ast.find_all((jinja2.nodes.Filter, jinja2.nodes.Test)):
        guard = GUARD_FILTERS if isinstance(node, jinja2.nodes.Filter) else GUARD_TESTS
        if node.name in guard and node.node is not None:
            out.update(n.name for n in node.node.find_all(jinja2.nodes.Name))
            if isinstance(node.node, jinja2.nodes.Name):
                out.add(node.node.name)
    return out


def guarded_names(source: str) -> set[str]:
    """Names a template reads only under a guard (``x | default(..)``, ``x is defined``): they
    may be undefined on purpose, so validation must not call them certainly undefined."""
    return ENGINE.guarded(source)


def names_in(values: Iterable[Any], *, required: bool = False) -> set[str]:
    """All variable names read by the templates inside nested values; with ``required``,
    without the names read only under a guard (``x | default(..)``, ``x is defined``)."""
    found: set[str] = set()

    def walk(v: Any) -> None:
        if isinstance(v, str) and ("{{" in v or "{%" in v):
            names = ENGINE.variables(v)
            found.update(names - guarded_names(v) if required else names)
        elif isinstance(v, dict):
            for k, x in v.items():
                walk(k)
                walk(x)
        elif isinstance(v, (list, tuple)):
            for x in v:
                walk(x)

    for v in values:
        walk(v)
    return found


def required_names(values: Iterable[Any]) -> set[str]:
    """Like :func:`names_in`, without the names read only under a guard."""
    return names_in(values, required=True)


ENGINE = TemplateEngine()
