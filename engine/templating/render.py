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

import json
import re
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from collections.abc import Iterable

from engine.templating.quick import plain_names
from engine.templating.shared_cache import SharedCache
from engine.templating.values import UnsafeText, LazyVar, has_template, is_undefined, json_default, lazify, to_bool

from engine.errors import TemplateError
from engine.secrets import reveal
from engine.mysql.sqlutil import quote_ident, quoted_placeholders

if TYPE_CHECKING:
    from engine.templating.environment import Jinja, _Env

__all__ = [
    "ENGINE",
    "GLOBAL_NAMES",
    "QUOTED_HINT",
    "LazyVar",
    "TemplateEngine",
    "UnsafeText",
    "guarded_names",
    "has_template",
    "is_undefined",
    "lazify",
    "names_in",
    "quoted_value_placeholders",
    "required_names",
]

_SINGLE_EXPR = re.compile(r"^\s*\{\{(?P<expr>(?:(?!\}\}|\{\{).)*)\}\}\s*$", re.S)
_EXPR_BLOCK = re.compile(r"\{\{(?P<expr>(?:(?!\}\}).)*?)\}\}", re.S)
_TAIL_FILTER = re.compile(r"^(?P<inner>.*?)\|\s*(?P<filter>ident|raw)\s*$", re.S)

#: the globals of the environment (Jinja2's defaults, and ``lookup``/``query``), known without
#: building it: a template's names are what it reads minus these.
#: tests/unit/test_templating.py checks them against the environment's own.
GLOBAL_NAMES = frozenset({"range", "dict", "lipsum", "cycler", "joiner", "namespace", "lookup", "query"})


@dataclass(frozen=True)
class _Analysis:
    error: str | None
    names: frozenset[str]
    guarded: frozenset[str]
    #: names read as ``hostvars[h].x``, ``hostvars[h]['x']``, ``hostvars.h.x``
    hostvars: frozenset[str] = frozenset()
    #: some read of ``hostvars`` may reach any name (``hostvars[h][expr]``, ``hostvars`` whole)
    hostvars_any: bool = False


class TemplateEngine:
    """Compiles each template string once and renders it with a variable mapping. Jinja2 is
    imported when a template first has to be parsed or rendered (:attr:`jinja`), not before:
    a validate whose templates are plain references or cached analyses never needs it."""

    def __init__(self) -> None:
        self._jinja: Jinja | None = None
        self._analysis: dict[str, _Analysis] = {}
        #: analyses kept across processes (engine/templating/shared_cache.py); the CLI opens it
        self.shared: SharedCache | None = None
        self._lock = threading.Lock()

    @property
    def jinja(self) -> Jinja:
        """The Jinja2 environment and compiled templates (engine/templating/environment.py),
        built on first use."""
        return self._jinja or self.load_jinja()

    def load_jinja(self) -> Jinja:
        """Import Jinja2 and build the environment now, if not yet done. A run calls it before
        its host workers start: the import then happens in the main thread as before, not in
        the first worker that renders (inside a step's time, with the others waiting on it)."""
        from engine.templating.environment import Jinja

        with self._lock:
            if self._jinja is None:
                self._jinja = Jinja(self.render)
            return self._jinja

    @property
    def env(self) -> _Env:
        return self.jinja.env

    def _analyze(self, source: str) -> _Analysis:
        """What validation needs to know of a template, from **one** parse (a template of a
        megabyte is parsed once, whatever asks): the error it gives when it compiles, or None;
        the names it reads; the names it reads only under a guard. The code generator runs, as
        when the template is used, so an unknown filter or test is found here and not in the
        middle of a run — except where :mod:`engine.templating.quick` knows its answer for
        certain (text and expressions whose filters and tests exist); nothing is evaluated.
        Jinja2 is needed only when neither the quick path nor the shared cache knows."""
        found = self._analysis.get(source)
        if found is None:
            # text and {{ a.b }} only: no parse (quick.py); what hostvars reads needs the tree
            plain = plain_names(source, GLOBAL_NAMES) if "hostvars" not in source else None
            shared = self.shared.get(source) if self.shared is not None and plain is None else None
            if plain is not None:
                found = _Analysis(None, frozenset(plain), frozenset())
            elif shared is not None:
                found = _Analysis(*shared)
            else:
                found = _Analysis(*self.jinja.analyze(source))
                # "nested too deep" depends on the stack of the call, not only on the text
                if self.shared is not None and not (found.error or "").startswith("expression nested too deep"):
                    self.shared.put(source, (found.error, found.names, found.guarded, found.hostvars, found.hostvars_any))
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

    def hostvars_reads(self, source: str) -> tuple[frozenset[str], bool]:
        """(the names a template reads through ``hostvars[h].x``, whether some read of
        ``hostvars`` may reach any name); nothing for a template that does not compile."""
        found = self._analyze(source)
        return found.hostvars, found.hostvars_any

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
        return self.jinja.render_str(source, variables)

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
                return to_bool(value) if isinstance(value, str) else bool(value)
            text = "{{ " + text + " }}"
        value = self._render_str(text, variables)
        if isinstance(value, str):
            return to_bool(value)
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
        return json.dumps(value, default=json_default)
    if isinstance(value, list):
        return tuple(_param(v) for v in value)
    return value




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
