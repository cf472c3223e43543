"""The Jinja2 sandbox, bounded: no expression may build a value too large to hold, and nothing
is evaluated while a template compiles.

Jinja2 folds constant expressions while it compiles (its optimizer, and the code generator's
output folding), so ``{{ 7 ** 99999999 }}`` or ``{{ 'a' * 1000000000 }}`` used to hang
``runbook validate`` — which only compiles. Here folding is off (the output of a template is
computed when it renders, never at compile time) and the operators that make values grow
(``*``, ``**``, ``%``) are intercepted and refused past a size limit, as are calls of string
methods with huge widths (``'a'.ljust(10**9)``)::

    {{ 2 ** 64 }}            → 18446744073709551616
    {{ 7 ** 99999999 }}      → refused: the result would have 280 million bits
    {{ '-' * 40 }}           → ----------------------------------------
    {{ 'a' * 1000000000 }}   → refused: the result would have 1000000000 items
"""

from __future__ import annotations

import re
from typing import Any

from jinja2 import nodes
from jinja2.compiler import CodeGenerator
from jinja2.exceptions import SecurityError
from jinja2.filters import do_center, do_indent
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment

#: the longest string or list an expression may build
MAX_ITEMS = 1_000_000
#: the largest integer an expression may build (2**4096 has 1,234 digits)
MAX_INT_BITS = 4096
#: the widest width or precision in a ``%`` format or a string method
MAX_WIDTH = 100_000

_BRACE_WIDTH = re.compile(r"\{[^{}]*:[^{}\d]*(\d+)")
_FORMAT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


class _NoFoldCodeGenerator(CodeGenerator):
    """Emits every ``{{ }}`` to be evaluated when the template renders: folding a constant at
    compile time would run user arithmetic and filters during validation."""

    def _output_child_to_const(self, node: nodes.Expr, frame: Any, finalize: Any) -> str:
        if not isinstance(node, nodes.TemplateData):
            raise nodes.Impossible()
        return super()._output_child_to_const(node, frame, finalize)  # type: ignore[no-any-return]


def _length(value: Any) -> int | None:
    return len(value) if isinstance(value, (str, bytes, list, tuple)) else None


def _too_big(what: str) -> SecurityError:
    return SecurityError(f"the result would be too large ({what})")


def _check_format(fmt: str) -> None:
    for width, precision in _FORMAT_SPEC.findall(fmt):
        for n in (width, precision):
            if n == "*" or (n and int(n) > MAX_WIDTH):
                raise _too_big(f"a width of {n} in a % format")


def _mul(left: Any, right: Any) -> Any:
    for seq, n in ((left, right), (right, left)):
        size = _length(seq)
        if size is not None and isinstance(n, int) and size * n > MAX_ITEMS:
            raise _too_big(f"{size * n} items")
    if isinstance(left, int) and isinstance(right, int) and left.bit_length() + right.bit_length() > MAX_INT_BITS:
        raise _too_big(f"about {left.bit_length() + right.bit_length()} bits")
    return left * right


def _pow(base: Any, exp: Any) -> Any:
    if isinstance(base, int) and isinstance(exp, int) and exp > 0 and abs(base) > 1:
        bits = (abs(base).bit_length() - 1) * exp
        if bits > MAX_INT_BITS:
            raise _too_big(f"about {bits} bits")
    return base**exp


def _mod(left: Any, right: Any) -> Any:
    if isinstance(left, str):
        _check_format(left)
    return left % right


def _center(value: Any, width: int = 80) -> str:
    if isinstance(width, int) and width > MAX_WIDTH:
        raise _too_big(f"a width of {width}")
    return do_center(value, width)


def _indent(value: Any, width: Any = 4, *args: Any, **kwargs: Any) -> str:
    if (isinstance(width, int) and width > MAX_WIDTH) or (isinstance(width, str) and len(width) > MAX_WIDTH):
        raise _too_big("an indent that wide")
    return do_indent(value, width, *args, **kwargs)


def _format(value: Any, *args: Any, **kwargs: Any) -> str:
    _check_format(str(value))
    return str(value) % (kwargs or args)


class BoundedSandbox(SandboxedEnvironment):
    """Jinja2's sandbox with the growth of values bounded (see the module docstring)."""

    code_generator_class = _NoFoldCodeGenerator
    intercepted_binops = frozenset({"*", "**", "%"})
    default_binop_table = dict(SandboxedEnvironment.default_binop_table, **{"*": _mul, "**": _pow, "%": _mod})

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(optimized=False, **kwargs)
        self.filters.update(center=_center, indent=_indent, format=_format)

    def wrap_str_format(self, value: Any) -> Any:
        # '{:>999999999}'.format(1): the width is in the format string, not in the arguments
        owner = getattr(value, "__self__", None)
        if isinstance(owner, str) and getattr(value, "__name__", "") in ("format", "format_map"):
            for width in _BRACE_WIDTH.findall(owner):
                if int(width) > MAX_WIDTH:
                    raise _too_big(f"a width of {width} in a format")
        return super().wrap_str_format(value)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        # 'a'.ljust(10**9), 'x'.zfill(...), '{:>999999999}'.format(1): a string method given a
        # huge width builds a huge string.
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, (str, bytes)):
            for arg in list(args) + list(kwargs.values()):
                if isinstance(arg, int) and arg > MAX_WIDTH:
                    raise _too_big(f"a width of {arg}")
        return super().call(__context, __obj, *args, **kwargs)




class _Tracking(_NoFoldCodeGenerator):
    """jinja2.meta's introspection, without the constant folding that its generator does."""

    def __init__(self, environment: Any) -> None:
        super().__init__(environment, "<introspection>", "<introspection>", optimized=False)
        self.undeclared: set[str] = set()

    def write(self, x: str) -> None:
        pass

    def enter_frame(self, frame: Any) -> None:
        super().enter_frame(frame)
        for _, (action, param) in frame.symbols.loads.items():
            if action == "resolve" and param not in self.environment.globals:
                self.undeclared.add(param)


def undeclared_names(ast: nodes.Template) -> set[str]:
    """Names a parsed template reads from its context. Like ``jinja2.meta.find_undeclared_variables``,
    it runs the code generator, so an unknown filter or test raises ``TemplateAssertionError``."""
    gen = _Tracking(ast.environment)  # type: ignore[attr-defined]
    gen.visit(ast)
    return gen.undeclared
