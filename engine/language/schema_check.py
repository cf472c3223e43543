"""JSON Schema checks that import ``jsonschema`` only when a document is invalid.

Importing jsonschema (its validators, ``referencing``, ``attrs``, format checkers) costs more
than the rest of ``runbook validate`` put together, and building a validator walks the schema
again in every process. Most documents are valid, and a valid document needs no error to be
worded: :func:`checker` compiles a schema into plain closures that answer "valid" or "not
sure"; only "not sure" imports jsonschema, whose ``iter_errors`` then reports exactly what it
always did (the wording of :mod:`engine.language.schema_messages` is unchanged).

The compiled check may be stricter than the standard, never looser: every keyword below is
implemented as jsonschema's Draft 2020-12 validator implements it, or refused at compile time
(``_Unsupported``), in which case the schema is always checked by jsonschema.
``tests/unit/test_schema_check.py`` compares both on the shipped schemas and fuzzed documents.

    >>> check = checker({"type": "object", "required": ["name"]})
    >>> list(check.iter_errors({"name": "x"}))
    []
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

Check = Callable[[Any], bool]

#: keywords that do not constrain a value (``format`` only annotates: the validator is built
#: without a format checker, as before)
_ANNOTATIONS = frozenset({"$schema", "$comment", "$defs", "title", "description", "default", "examples", "deprecated",
                          "readOnly", "writeOnly", "format", "contentMediaType", "contentEncoding"})


class _Unsupported(Exception):
    """A keyword (or form of one) this module does not implement: jsonschema checks the schema."""


def _true(_: Any) -> bool:
    return True


def _false(_: Any) -> bool:
    return False


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


_TYPES: dict[str, Check] = {
    "string": lambda x: isinstance(x, str),
    "object": lambda x: isinstance(x, dict),
    "array": lambda x: isinstance(x, list),
    "boolean": lambda x: isinstance(x, bool),
    "null": lambda x: x is None,
    "number": _is_number,
    # 2020-12: 1.0 is an integer
    "integer": lambda x: (isinstance(x, int) and not isinstance(x, bool)) or (isinstance(x, float) and x.is_integer()),
}


def _same(a: Any, b: Any) -> bool:
    """Equality as jsonschema's ``enum``/``const`` see it, for scalars (a bool is not a number);
    containers are "not sure"."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a is b
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and a == b
    if _is_number(a) and _is_number(b):
        return bool(a == b)
    return False


#: keywords that descend: the errors they yield are those of the parts of the value (or of the
#: value itself through another subschema), as jsonschema reports them; every other keyword
#: reports one error on the value as a whole
_DESCENDING = frozenset({"ref", "properties", "additionalProperties", "propertyNames", "items", "allOf", "if"})


def _all_of(checks: list[Check]) -> Check:
    """The conjunction of ``checks``, in order. Two or three (most schemas: a type and a
    keyword or two) without the generator ``all()`` would need: this runs for every value of a
    runbook."""
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        a, b = checks
        return lambda x: a(x) and b(x)
    if len(checks) == 3:
        a, b, c = checks
        return lambda x: a(x) and b(x) and c(x)
    return lambda x: all(c(x) for c in checks)


class _Compiler:
    def __init__(self, root: Any, skip: Check | None):
        self.root = root
        self.skip = skip
        self.lenient = False  # compiling the part of the schema whose errors ``skip`` may drop
        self.refs: dict[tuple[str, bool], Check] = {}

    def compile(self, schema: Any, *, lenient: bool | None = None) -> Check:
        """``lenient``: True only where jsonschema's errors come from descending into the value,
        so that an error on a skipped value is one the caller drops (not one wrapped into the
        error of an ``anyOf``, ``oneOf`` or ``not`` above it)."""
        outer = self.lenient
        self.lenient = outer if lenient is None else lenient
        try:
            return self._compile(schema)
        finally:
            self.lenient = outer

    def _compile(self, schema: Any) -> Check:
        if schema is True:
            return _true
        if schema is False:
            return self._skippable(_false)
        if not isinstance(schema, dict):
            raise _Unsupported(repr(schema))
        if "$id" in schema and schema is not self.root:
            raise _Unsupported("$id below the root")  # a new base for $ref
        checks: list[Check] = []
        for key, value in schema.items():
            if key in _ANNOTATIONS or key == "$id" or key in ("then", "else"):  # then/else: read by "if"
                continue
            make = getattr(self, "k_" + key.lstrip("$"), None)
            if make is None:
                raise _Unsupported(key)
            checks.append(make(value, schema) if key.lstrip("$") in _DESCENDING else self._strict(make, value, schema))
        if not checks:
            return _true
        return self._skippable(_all_of(checks))

    def _strict(self, make: Any, value: Any, schema: dict[str, Any]) -> Check:
        """A keyword that reports on the value as a whole (``anyOf``, ``not``...): the errors
        of its subschemas never surface, so they are checked strictly."""
        outer = self.lenient
        self.lenient = False
        try:
            return make(value, schema)  # type: ignore[no-any-return]
        finally:
            self.lenient = outer

    def _skippable(self, check: Check) -> Check:
        skip = self.skip
        if not self.lenient or skip is None:
            return check
        return lambda x: skip(x) or check(x)

    # -- keywords ---------------------------------------------------------------------------
    def k_ref(self, ref: Any, _: dict[str, Any]) -> Check:
        if not isinstance(ref, str) or not ref.startswith("#") or "%" in ref:
            raise _Unsupported(f"$ref {ref!r}")
        key = (ref, self.lenient)
        if key not in self.refs:
            self.refs[key] = _false  # a recursive reference finds the entry filled in by then
            node = self.root
            for part in [p.replace("~1", "/").replace("~0", "~") for p in ref[1:].split("/")[1:]]:
                if isinstance(node, dict) and part in node:
                    node = node[part]
                elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                    node = node[int(part)]
                else:
                    raise _Unsupported(f"$ref {ref!r}")
            self.refs[key] = self.compile(node)
        refs = self.refs
        return lambda x: refs[key](x)

    def k_type(self, value: Any, _: dict[str, Any]) -> Check:
        names = value if isinstance(value, list) else [value]
        if not all(isinstance(n, str) and n in _TYPES for n in names):
            raise _Unsupported(f"type {value!r}")
        tests = [_TYPES[n] for n in names]
        return tests[0] if len(tests) == 1 else (lambda x: any(t(x) for t in tests))

    def k_enum(self, values: Any, _: dict[str, Any]) -> Check:
        if not isinstance(values, list):
            raise _Unsupported("enum")
        return lambda x: any(_same(x, v) for v in values)

    def k_const(self, value: Any, _: dict[str, Any]) -> Check:
        return lambda x: _same(x, value)

    def k_minLength(self, n: Any, _: dict[str, Any]) -> Check:
        return lambda x: not isinstance(x, str) or len(x) >= n

    def k_maxLength(self, n: Any, _: dict[str, Any]) -> Check:
        return lambda x: not isinstance(x, str) or len(x) <= n

    def k_pattern(self, pattern: Any, _: dict[str, Any]) -> Check:
        if not isinstance(pattern, str):
            raise _Unsupported("pattern")
        return lambda x: not isinstance(x, str) or re.search(pattern, x) is not None

    def k_minimum(self, n: Any, _: dict[str, Any]) -> Check:
        return lambda x: not _is_number(x) or not x < n

    def k_maximum(self, n: Any, _: dict[str, Any]) -> Check:
        return lambda x: not _is_number(x) or not x > n

    def k_exclusiveMinimum(self, n: Any, _: dict[str, Any]) -> Check:
        return lambda x: not _is_number(x) or x > n

    def k_exclusiveMaximum(self, n: Any, _: dict[str, Any]) -> Check:
        return lambda x: not _is_number(x) or x < n

    def k_required(self, names: Any, _: dict[str, Any]) -> Check:
        return lambda x: not isinstance(x, dict) or all(n in x for n in names)

    def k_minProperties(self, n: Any, _: dict[str, Any]) -> Check:
        return lambda x: not isinstance(x, dict) or len(x) >= n

    def k_maxProperties(self, n: Any, _: dict[str, Any]) -> Check:
        return lambda x: not isinstance(x, dict) or len(x) <= n

    def k_properties(self, props: Any, _: dict[str, Any]) -> Check:
        if not isinstance(props, dict):
            raise _Unsupported("properties")
        checks = {name: self.compile(sub) for name, sub in props.items()}
        # by the value's keys, not the schema's: a step has 3 or 4 keys, its schema ~60 (every
        # step keyword and action); the checks are pure, so the order they run in is no matter
        get = checks.get

        def check(x: Any) -> bool:
            if not isinstance(x, dict):
                return True
            for k, v in x.items():
                c = get(k)
                if c is not None and not c(v):
                    return False
            return True

        return check

    def k_additionalProperties(self, sub: Any, schema: dict[str, Any]) -> Check:
        if "patternProperties" in schema:
            raise _Unsupported("additionalProperties with patternProperties")
        known = frozenset(schema.get("properties") or ())
        if sub is False:
            return lambda x: not isinstance(x, dict) or known.issuperset(x)
        check = self.compile(sub)
        return lambda x: not isinstance(x, dict) or all(check(v) for k, v in x.items() if k not in known)

    def k_propertyNames(self, sub: Any, _: dict[str, Any]) -> Check:
        check = self.compile(sub)
        return lambda x: not isinstance(x, dict) or all(check(k) for k in x)

    def k_items(self, sub: Any, schema: dict[str, Any]) -> Check:
        if "prefixItems" in schema or not isinstance(sub, (dict, bool)):
            raise _Unsupported("items")
        check = self.compile(sub)
        return lambda x: not isinstance(x, list) or all(check(v) for v in x)

    def k_minItems(self, n: Any, _: dict[str, Any]) -> Check:
        return lambda x: not isinstance(x, list) or len(x) >= n

    def k_maxItems(self, n: Any, _: dict[str, Any]) -> Check:
        return lambda x: not isinstance(x, list) or len(x) <= n

    def _all(self, subs: Any) -> list[Check]:
        if not isinstance(subs, list) or not subs:
            raise _Unsupported("applicator")
        return [self.compile(s) for s in subs]

    def k_anyOf(self, subs: Any, _: dict[str, Any]) -> Check:
        checks = self._all(subs)
        return lambda x: any(c(x) for c in checks)

    def k_oneOf(self, subs: Any, _: dict[str, Any]) -> Check:
        checks = self._all(subs)
        return lambda x: sum(1 for c in checks if c(x)) == 1

    def k_allOf(self, subs: Any, _: dict[str, Any]) -> Check:
        return _all_of(self._all(subs))

    def k_not(self, sub: Any, _: dict[str, Any]) -> Check:
        check = self.compile(sub)
        return lambda x: not check(x)

    def k_if(self, sub: Any, schema: dict[str, Any]) -> Check:
        test = self.compile(sub, lenient=False)  # only chooses the branch: it reports nothing
        then = self.compile(schema.get("then", True))
        other = self.compile(schema.get("else", True))
        return lambda x: then(x) if test(x) else other(x)


def compile_check(schema: Any, skip: Check | None = None) -> Check | None:
    """A function that returns True only for a document on which jsonschema finds no error
    (none but errors whose value ``skip`` accepts, when given), or None when the schema uses a
    keyword this module does not implement."""
    try:
        return _Compiler(schema, skip).compile(schema, lenient=True)
    except _Unsupported:
        return None


class SchemaChecker:
    """``iter_errors`` of a Draft 2020-12 validator, without the errors whose value ``skip``
    accepts (a template, checked once rendered). The validator is built (and jsonschema
    imported) only for a document the compiled check does not pass."""

    def __init__(self, schema: Any, skip: Check | None = None):
        self.schema = schema
        self.skip = skip
        self._fast = compile_check(schema, skip)
        self._validator: Any = None

    def iter_errors(self, instance: Any) -> Iterator[Any]:
        if self._fast is not None and self._fast(instance):
            return iter(())
        if self._validator is None:
            import jsonschema

            self._validator = jsonschema.Draft202012Validator(self.schema)
        errors = self._validator.iter_errors(instance)
        skip = self.skip
        return errors if skip is None else (e for e in errors if not skip(e.instance))


def checker(schema: Any, skip: Check | None = None) -> SchemaChecker:
    """The validator of ``schema`` for :func:`~engine.language.schema_messages.schema_problems`."""
    return SchemaChecker(schema, skip)
