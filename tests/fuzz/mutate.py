"""Seeded mutations of runbooks and inventories: the inputs a hurried or hostile author writes.

Each mutation takes YAML text and a :class:`random.Random` and returns new text (or bytes, for
non-UTF-8 cases). Structural mutations work on the parsed document and dump it again; textual
ones cut, copy and corrupt lines and characters. The same seed always gives the same case, so a
failure found by ``bench/fuzz.py`` is replayed with its seed::

    from tests.fuzz.mutate import corpus, make_case
    case = make_case(corpus("runbook"), 1234)
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from collections.abc import Callable

import yaml

ROOT = Path(__file__).resolve().parents[2]

#: Values that have broken a loader somewhere: odd types, odd numbers, patterns, templates.
ODD_SCALARS: list[Any] = [
    None, True, False, 0, -1, 1.5, -0.0, 1e300, float("inf"), float("nan"), 10**30, "", " ", "~", "~(", "~[", "[", "(",
    "*", "all:!x", "a:&b", "²", "٣", "0x1F", "1e9999", "99999999999d", "10000000000", "-5s", "1h30m", "20%", "512M",
    "1e30G", ".inf", "yes", "maybe", "{{", "}}", "{{ x }", "{{ undefined_thing }}", "{{ 'a' | uppr }}", "{{ x is definedd }}",
    "{{ 7 ** 99999999 }}", "{{ 'a' * 1000000000 }}", "{{ (((((((1))))))) }}", "{% if %}", "{% for x in %}{% endfor %}",
    "\x1b[31mred\x1b[0m", "bell\x07", "nul\x00", "\ufffe", "\u202etxt", "a\nb", "x" * 300, "-" * 3, "@", "%s%s", "' OR 1=1 --",
    [], {}, ["a"], {"a": 1}, [[["deep"]]], {"~": 1}, {None: 1},
]
TAGS = ["!!int", "!!bool", "!!float", "!!timestamp", "!!binary", "!!set", "!!omap", "!!str", "!!null", "!!map", "!!seq",
        "!foo", "!!python/object:os.system", "!<tag:yaml.org,2002:int>", "!!merge", "!!value", "!!pairs"]
CONTROL = ["\x00", "\x01", "\x07", "\x08", "\x0b", "\x0c", "\x1b", "\x7f", "\x85", "\u2028", "\ufffe", "\ufeff", "\ud800", "\x9b"]


def _yaml_files(*dirs: str) -> list[Path]:
    out: list[Path] = []
    for d in dirs:
        p = ROOT / d
        if p.is_dir():
            out += sorted(p.glob("*.yml")) + sorted(p.glob("*.yaml"))
    return out


def _readme_examples(kind: str) -> list[str]:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```ya?ml\n(.*?)```", text, re.S)
    key = "stages:" if kind == "runbook" else "hosts:"
    return [b for b in blocks if key in b]


def corpus(kind: str) -> list[str]:
    """Seed texts: shipped runbooks, README examples and the broken runbooks of the CLI tests;
    or the shipped and test inventories."""
    if kind == "runbook":
        files = _yaml_files("runbooks", "tests/cli/bad")
    else:
        files = _yaml_files("inventory")
        data = ROOT / "tests" / "data" / "inventories"
        if data.is_dir():  # YAML, INI and extensionless inventories, group_vars and host_vars files
            files += sorted(f for f in data.rglob("*") if f.is_file() and f.suffix in ("", ".yml", ".yaml", ".ini", ".json"))
    texts = []
    for f in files:
        try:
            texts.append(f.read_text())
        except (UnicodeDecodeError, OSError):
            continue
    texts += _readme_examples(kind)
    return [t for t in texts if t.strip()]


# --------------------------------------------------------------------------- structure


def _paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if len(path) > 40:  # a document nested by an earlier mutation: mutate its shallow part
        return out
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, path + (i,))
    return out


def _get(node: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        node = node[p]
    return node


def _structural(text: str, rng: random.Random) -> str | None:
    if re.search(r"[&*]\w", text):
        return None  # aliases would make the walk below as large as their expansion
    try:
        doc = yaml.safe_load(text)
    except Exception:  # the generator takes any input; what PyYAML makes of it is the engine's problem
        return None
    if not isinstance(doc, (dict, list)):
        return None
    for _ in range(rng.randint(1, 3)):
        paths = [p for p in _paths(doc) if p]
        if not paths:
            break
        path = rng.choice(paths)
        parent = _get(doc, path[:-1])
        last = path[-1]
        op = rng.randrange(6)
        if op == 0:  # delete
            del parent[last]
        elif op == 1:  # retype
            parent[last] = rng.choice(ODD_SCALARS)
        elif op == 2 and isinstance(parent, dict):  # rename a key: a typo or a wrong type of key
            value = parent.pop(last)
            parent[rng.choice([str(last)[:-1] or "x", str(last) + "s", 1, None, True, "~(", str(last).upper()])] = value
        elif op == 3 and isinstance(parent, list):  # duplicate an item
            parent.insert(last, parent[last])
        elif op == 4:  # deep nesting
            value: Any = parent[last]
            for _ in range(rng.choice([3, 50, 200, 1200])):
                value = [value] if rng.random() < 0.5 else {"k": value}
            parent[last] = value
        else:  # broken or hostile Jinja2 in a string
            parent[last] = rng.choice([
                "{{ " + "(" * rng.choice([10, 400]) + "1" + ")" * 400 + " }}", "{{ a " + "| b" * 200 + " }}",
                "{{ " + "+".join(["1"] * rng.choice([5, 3000])) + " }}", "{{ " + "not " * 600 + "x }}",
                "{{ 9" + "9" * 4400 + " }}", "{{ x[ }}", "{{ x | default(1) ", "{% raw %}{{", "{{ '%999999999s' % 'a' }}",
                "{{ 2 ** 2 ** 2 ** 2 ** 2 }}", "{{ [1] * 99999999999 }}", "{{ range(99999999999) | list }}",
                "{{ lookup('file', '/dev/zero') }}", "{{ ''.__class__.__mro__ }}", "{{ x.__init__ }}",
            ])
    try:
        return yaml.safe_dump(doc, sort_keys=False, allow_unicode=rng.random() < 0.5, width=rng.choice([80, 10**6]))
    except (yaml.YAMLError, RecursionError, TypeError, ValueError):
        return None


# --------------------------------------------------------------------------- text


def _lines_op(text: str, rng: random.Random) -> str:
    lines = text.splitlines(True) or [""]
    i = rng.randrange(len(lines))
    op = rng.randrange(5)
    if op == 0:
        del lines[i]
    elif op == 1:
        lines.insert(i, lines[i])  # duplicated key or item
    elif op == 2:
        lines[i] = lines[i].replace("  ", "\t", 1)
    elif op == 3:
        j = rng.randrange(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
    else:
        lines[i] = " " * rng.randint(0, 9) + lines[i].lstrip()
    return "".join(lines)


def _char_op(text: str, rng: random.Random) -> str:
    pos = rng.randrange(len(text) + 1)
    choice = rng.randrange(4)
    if choice == 0:
        ins = rng.choice(CONTROL)
    elif choice == 1:
        ins = rng.choice(list(":-?[]{}&*!|>'\"%@`#,\\~ \n\t"))
    elif choice == 2:
        ins = rng.choice(["\\x1b", "\\0", "\\u202e", "\\U0010ffff", "\\uD800", "\\e[2J"])  # escapes in a quoted string
        ins = '"' + ins + '"'
    else:
        ins = chr(rng.randrange(0x20, 0x3000))
    return text[:pos] + ins + text[pos:]


def _value_line(text: str, rng: random.Random) -> tuple[list[str], int] | None:
    lines = text.splitlines(True)
    candidates = [i for i, ln in enumerate(lines) if re.match(r"^\s*(- )?[A-Za-z_][\w]*: \S", ln)]
    if not candidates:
        return None
    return lines, rng.choice(candidates)


def _tag_op(text: str, rng: random.Random) -> str:
    if rng.random() < 0.15:  # a tag on the whole document
        return f"--- {rng.choice(TAGS)}\n{text}"
    found = _value_line(text, rng)
    if not found:
        return text
    lines, i = found
    key, _, value = lines[i].partition(": ")
    tag = rng.choice(TAGS)
    weird = rng.choice([value.rstrip("\n"), "abc", "maybe", "x", "1", "2001-13-45", "[1, 2]", "{a: 1}", "''"])
    lines[i] = f"{key}: {tag} {weird}\n"
    return "".join(lines)


def _alias_op(text: str, rng: random.Random) -> str:
    found = _value_line(text, rng)
    if not found:
        return text
    lines, i = found
    key = lines[i].partition(": ")[0]
    indent = " " * (len(key) - len(key.lstrip()) + 2)
    kind = rng.randrange(5)
    if kind == 4:  # aliases of deep nodes used deep: shallow in the text, deep once expanded
        n = rng.choice([10, 40])
        lines[i] = f"{key}:\n" + "".join(f"{indent}- &d{k} " + "[" * n + (f"*d{k - 1}" if k else "1") + "]" * n + "\n"
                                         for k in range(rng.choice([3, 30])))
    elif kind == 0:  # billion laughs
        levels = rng.choice([3, 6, 9])
        bomb = "&l0 [lol]"
        parts = [f"{key}:\n{indent}- &l0 lol\n"]
        for n in range(1, levels + 1):
            parts.append(f"{indent}- &l{n} [" + ", ".join([f"*l{n-1}"] * 9) + "]\n")
        del bomb
        lines[i] = "".join(parts)
    elif kind == 1:  # recursive alias
        lines[i] = f"{key}: &r [*r]\n"
    elif kind == 2:  # undefined alias
        lines[i] = f"{key}: *nowhere\n"
    else:  # merge key of a non-mapping
        lines[i] = f"{key}: {{<<: *x}}\n" if rng.random() < 0.5 else f"{key}: &x {{a: 1, <<: [1]}}\n"
    return "".join(lines)


def _deep_text(text: str, rng: random.Random) -> str:
    found = _value_line(text, rng)
    if not found:
        return text
    lines, i = found
    key = lines[i].partition(": ")[0]
    n = rng.choice([60, 1000, 5000])
    lines[i] = f"{key}: " + ("[" * n + "]" * n if rng.random() < 0.5 else "{a: " * n + "1" + "}" * n) + "\n"
    return "".join(lines)


def _bignum(text: str, rng: random.Random) -> str:
    found = _value_line(text, rng)
    if not found:
        return text
    lines, i = found
    key = lines[i].partition(": ")[0]
    lines[i] = f"{key}: " + rng.choice(["9" * 4301, "0x" + "f" * 5000, "1" * 50, "-" + "9" * 5000, "1_0" * 3000, "0o" + "7" * 9000,
                                        "1e400", "-.inf", ".nan", "99999999999999999999s", "0b" + "1" * 20000]) + "\n"
    return "".join(lines)


def _import_op(text: str, rng: random.Random) -> str:
    """A stage replaced by an import of something odd: itself, a device, a directory, a name
    too long, a name with a newline or a NUL, a missing file."""
    target = rng.choice(["case.yml", "/dev/zero", "/dev/null", ".", "/", "x" * 300 + ".yml", "a\\nb.yml", "nul\\0.yml",
                         "missing.yml", "../" * 50 + "etc/passwd", "/proc/self/status", "~/x.yml"])
    stage = f'  - import: "{target}"\n'
    lines = text.splitlines(True)
    at = [i for i, ln in enumerate(lines) if ln.startswith("  - name:")]
    if not at:
        return text + "stages:\n" + stage
    lines.insert(rng.choice(at), stage)
    return "".join(lines)


def _truncate(text: str, rng: random.Random) -> str:
    return text[: rng.randrange(len(text) + 1)]


def _non_utf8(text: str, rng: random.Random) -> bytes:
    raw = text.encode("utf-8", "surrogatepass")  # an earlier mutation may have inserted a lone surrogate
    pos = rng.randrange(len(raw) + 1)
    bad = rng.choice([b"\xe9", b"\xff\xfe", b"\xc3", b"\xed\xa0\x80", b"\x80", b"\xfe\xff\x00a"])
    return raw[:pos] + bad + raw[pos:]


MUTATIONS: list[tuple[str, Callable[[str, random.Random], Any]]] = [
    ("structure", _structural), ("lines", _lines_op), ("char", _char_op), ("tag", _tag_op), ("alias", _alias_op),
    ("deep", _deep_text), ("bignum", _bignum), ("truncate", _truncate), ("non_utf8", _non_utf8), ("import", _import_op),
]
_WEIGHTS = [30, 14, 14, 10, 8, 4, 6, 8, 3, 4]


@dataclass
class Case:
    """One generated input: its seed, the mutations applied, and its content."""

    seed: int
    ops: list[str]
    data: bytes


def make_case(seeds: list[str], seed: int) -> Case:
    """The case for ``seed``: one of ``seeds`` with one to three mutations applied."""
    rng = random.Random(seed)
    text: Any = rng.choice(seeds)
    ops: list[str] = []
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        if isinstance(text, bytes):
            break
        name, fn = rng.choices(MUTATIONS, weights=_WEIGHTS)[0]
        out = fn(text, rng)
        if out is None:
            continue
        text = out
        ops.append(name)
    data = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
    return Case(seed, ops, data)
