"""YAML with line and column marks, so every error can point at ``file:line:col``.

Mappings and sequences load as :class:`MDict` / :class:`MList`, plain ``dict``/``list``
subclasses that remember where they, their keys and their items start. Scalars stay plain
Python values; their position is looked up through the parent container.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from engine.errors import InputError, Problem, Source, ValidationFailed


class MDict(dict):  # type: ignore[type-arg]
    """A mapping that knows where it, its keys and its values stand in the file."""

    file: str = ""
    line: int = 0
    col: int = 0

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.key_pos: dict[Any, tuple[int, int]] = {}
        self.value_pos: dict[Any, tuple[int, int]] = {}


class MList(list):  # type: ignore[type-arg]
    file: str = ""
    line: int = 0
    col: int = 0

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.item_pos: list[tuple[int, int]] = []


def _pos(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


class _Loader(yaml.SafeLoader):
    """SafeLoader that builds MDict/MList and rejects duplicate keys (a silent YAML trap)."""

    filename = ""
    duplicates: list[tuple[int, int, Any]]

    def construct_yaml_map(self, node: yaml.MappingNode) -> Any:  # type: ignore[override]
        data = MDict()
        data.file, (data.line, data.col) = self.filename, _pos(node)
        yield data
        self.flatten_mapping(node)
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)  # type: ignore[no-untyped-call]
            try:
                hash(key)
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    None, None, "a mapping key must be a plain value", key_node.start_mark
                ) from None
            if key in data:
                line, col = _pos(key_node)
                self.duplicates.append((line, col, key))
            data[key] = self.construct_object(value_node, deep=True)  # type: ignore[no-untyped-call]
            data.key_pos[key] = _pos(key_node)
            data.value_pos[key] = _pos(value_node)

    def construct_yaml_seq(self, node: yaml.SequenceNode) -> Any:  # type: ignore[override]
        data = MList()
        data.file, (data.line, data.col) = self.filename, _pos(node)
        yield data
        for child in node.value:
            data.append(self.construct_object(child, deep=True))  # type: ignore[no-untyped-call]
            data.item_pos.append(_pos(child))


_Loader.add_constructor("tag:yaml.org,2002:map", _Loader.construct_yaml_map)
_Loader.add_constructor("tag:yaml.org,2002:seq", _Loader.construct_yaml_seq)

# libyaml's C parser when PyYAML has it (it does from PyPI wheels) parses a 1,000-step runbook
# several times faster; its nodes carry the same marks and the constructors above run on them.
# Its syntax error messages are vaguer, so a file it refuses is parsed again by the Python
# parser for the message (a syntax error is rare; speed matters on every run).
_CLoader: Any = None
if getattr(yaml, "__with_libyaml__", False):

    class _CLoader(yaml.CSafeLoader):  # type: ignore[no-redef]
        filename = ""
        duplicates: list[tuple[int, int, Any]]
        construct_yaml_map = _Loader.construct_yaml_map
        construct_yaml_seq = _Loader.construct_yaml_seq

    _CLoader.add_constructor("tag:yaml.org,2002:map", _CLoader.construct_yaml_map)
    _CLoader.add_constructor("tag:yaml.org,2002:seq", _CLoader.construct_yaml_seq)


def load_yaml(path: str | Path, *, what: str = "file") -> Any:
    """Parse one YAML file. Missing, unreadable, non-UTF-8, empty or malformed files raise
    :class:`InputError` / :class:`ValidationFailed` with the position of the problem."""
    name = str(path)
    p = Path(path)
    if not p.exists():
        raise InputError(f"{what} {name} does not exist", hint="check the path")
    if p.is_dir():
        raise InputError(f"{what} {name} is a directory, not a YAML file")
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {what} {name}: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputError(
            f"{what} is not UTF-8 text (byte 0x{raw[exc.start]:02x})",
            source=Source(name, line, exc.start - raw.rfind(b"\n", 0, exc.start)),
            hint="save the file as UTF-8",
        ) from None
    return load_yaml_text(text, name, what=what)


def load_yaml_text(text: str, name: str, *, what: str = "file") -> Any:
    if not text.strip() or all(not ln.strip() or ln.lstrip().startswith("#") for ln in text.splitlines()):
        raise InputError(f"{what} is empty", source=Source(name, 1, 1), hint=f"a {what} is a YAML mapping")
    if _CLoader is not None:
        fast = _CLoader(text)
        fast.filename, fast.duplicates = name, []
        try:
            data = fast.get_single_data()
        except yaml.YAMLError:
            pass  # parsed again below, for a precise message
        else:
            return _checked(data, fast.duplicates, name)
        finally:
            fast.dispose()
    loader = _Loader(text)
    loader.filename = name
    loader.duplicates = []
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        src = Source(name, mark.line + 1, mark.column + 1) if mark else Source(name)
        problem = (exc.problem or exc.context or "invalid YAML").strip()
        cm = exc.context_mark
        if exc.problem and exc.context and cm is not None and mark is not None and (cm.line, cm.column) != (mark.line, mark.column):
            # e.g. an unterminated quote: say where the thing being read started
            problem += f" ({exc.context.strip()} started at line {cm.line + 1}, column {cm.column + 1})"
        hint = "check indentation and quoting"
        if "tab" in problem.lower() or "\t" in text:
            hint = "YAML does not allow tabs for indentation: use spaces"
        elif "found character '%'" in problem or "'{'" in problem or "mapping values" in problem or "plain value" in problem:
            hint = 'check indentation; quote values that start with {{ or contain ": "'
        raise InputError(f"YAML syntax error: {problem}", source=src, hint=hint) from None
    except yaml.YAMLError as exc:
        raise InputError(f"YAML syntax error: {exc}", source=Source(name, 1, 1)) from None
    finally:
        loader.dispose()
    return _checked(data, loader.duplicates, name)


def _checked(data: Any, dups: list[tuple[int, int, Any]], name: str) -> Any:
    if dups:
        raise ValidationFailed(
            [Problem(Source(name, ln, col), "", f"duplicate key {key!r}", "YAML keeps only the last one; remove one") for ln, col, key in dups]
        )
    return data


def source_at(root: Any, path: list[Any], file: str) -> Source:
    """The position of ``path`` (keys and indexes) inside ``root``; falls back to the nearest
    container that has a position."""
    node = root
    best = Source(file, getattr(root, "line", 1) or 1, getattr(root, "col", 1) or 1)
    for part in path:
        if isinstance(node, MDict) and part in node:
            line, col = node.value_pos.get(part, node.key_pos.get(part, (node.line, node.col)))
            best = Source(node.file or file, line, col)
            node = node[part]
        elif isinstance(node, MList) and isinstance(part, int) and 0 <= part < len(node):
            line, col = node.item_pos[part] if part < len(node.item_pos) else (node.line, node.col)
            best = Source(node.file or file, line, col)
            node = node[part]
        else:
            break
    return best


def key_source(mapping: Any, key: Any, file: str) -> Source:
    """Where a key itself stands (for 'unknown key' errors)."""
    if isinstance(mapping, MDict) and key in mapping.key_pos:
        line, col = mapping.key_pos[key]
        return Source(mapping.file or file, line, col)
    return Source(getattr(mapping, "file", "") or file, getattr(mapping, "line", 1) or 1, getattr(mapping, "col", 1) or 1)
