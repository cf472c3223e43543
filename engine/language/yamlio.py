"""YAML with line and column marks, so every error can point at ``file:line:col``.

Mappings and sequences load as :class:`MDict` / :class:`MList`, plain ``dict``/``list``
subclasses that remember where they, their keys and their items start. Scalars stay plain
Python values; their position is looked up through the parent container.
"""

from __future__ import annotations

import os
import re
import stat
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


# Limits that make hostile input cheap to refuse. A 1,000-step runbook is about 10,000 nodes,
# 8 levels deep and 200 KB; these are far above any real file and far below what hurts.
MAX_FILE_BYTES = 4 * 1024 * 1024
#: nodes a document holds once its aliases are expanded (each alias counts what it copies):
#: the billion-laughs guard — nine levels of nine aliases are 387 million nodes in 1 KB
MAX_NODES = 200_000
#: mappings and lists inside one another; every walker of the document (schema checks,
#: templates, masking, the journal's JSON) recurses, so depth is bounded where it is read
MAX_DEPTH = 64
#: the largest integer a runbook setting can take; beyond it int() is slow or refused (4,300 digits)
MAX_INT_BITS = 128
#: explicit tags that build plain values; anything else (!!binary, !!set, !!timestamp,
#: !!python/..., local !tags) builds a type no part of the engine expects
ALLOWED_TAGS = {f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "map", "seq")} | {"!"}

# Characters YAML forbids in a stream (C0 controls except tab/newline/CR, DEL, C1 except NEL,
# surrogates, U+FFFE/U+FFFF). PyYAML's reader raises outside any mark; this finds them first.
_NON_PRINTABLE = re.compile("[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


_COLLECTION_TAGS = {"tag:yaml.org,2002:seq": "a list", "tag:yaml.org,2002:map": "a mapping"}


class Refused(yaml.MarkedYAMLError):
    """A document refused by a limit (depth, alias expansion, tag, number size)."""


def _short_tag(tag: str) -> str:
    return tag.replace("tag:yaml.org,2002:", "!!")


_ScalarEvent = yaml.ScalarEvent
_STR_TAG = "tag:yaml.org,2002:str"
_SAFE_STR = yaml.constructor.SafeConstructor.construct_yaml_str
_NO_TAG = object()


class _Composer:
    """PyYAML's composer, iterative and with limits: nesting depth, the size of what aliases
    expand to (counted as the tree is built, so a bomb is refused after a few thousand nodes
    rather than after building hundreds of millions), recursive aliases and unknown tags."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader

    def compose(self) -> yaml.Node | None:
        ld = self.loader
        ld.get_event()  # StreamStart
        if ld.check_event(yaml.StreamEndEvent):
            ld.get_event()
            return None
        ld.get_event()  # DocumentStart
        anchors: dict[str, yaml.Node] = {}
        sizes: dict[int, int] = {}
        heights: dict[int, int] = {}  # levels of collections in a node, its aliases expanded
        open_ids: set[int] = set()
        # frames: [node, anchor, expanded size so far, pending key node (mappings), tallest child,
        # whether it is a sequence]
        stack: list[list[Any]] = []
        total = 0
        root: yaml.Node | None = None
        done: Any
        get_event = ld.get_event
        resolve = ld.resolve
        resolved: dict[tuple[Any, Any], str] = {}  # keys (name:, sql:) repeat on every step
        while True:
            ev: Any = get_event()
            if type(ev) is _ScalarEvent and ev.tag is None:
                # The common case, first and short (a runbook is mostly untagged scalars): what
                # the last branch does for it, without the checks only a tag or a collection needs.
                key = (ev.value, ev.implicit[0])  # all resolve reads of a scalar's implicit
                tag = resolved.get(key)
                if tag is None:
                    tag = resolved[key] = resolve(yaml.ScalarNode, ev.value, ev.implicit)
                node = yaml.ScalarNode(tag, ev.value, ev.start_mark, ev.end_mark, style=ev.style)
                if ev.anchor is not None:
                    anchors[ev.anchor] = node
                done = (node, 1, 0)
            elif isinstance(ev, yaml.DocumentEndEvent):
                break
            elif isinstance(ev, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
                node, _, size, _, tallest, _ = stack.pop()
                node.end_mark = ev.end_mark
                open_ids.discard(id(node))
                sizes[id(node)] = size
                heights[id(node)] = tallest + 1
                done = (node, size, tallest + 1)
            elif isinstance(ev, yaml.AliasEvent):
                if ev.anchor not in anchors:
                    raise Refused(None, None, f"found undefined alias *{ev.anchor}", ev.start_mark)  # type: ignore[arg-type]
                node = anchors[ev.anchor]
                if id(node) in open_ids:
                    raise Refused(None, None, f"the alias *{ev.anchor} refers to the node that contains it (a loop)", ev.start_mark)  # type: ignore[arg-type]
                height = heights.get(id(node), 0)
                if len(stack) + height > MAX_DEPTH:  # an alias of a deep node, used deep: as deep as both
                    raise Refused(None, None, f"nested more than {MAX_DEPTH} levels deep (with what *{ev.anchor} holds)",
                                  ev.start_mark)  # type: ignore[arg-type]
                done = (node, sizes.get(id(node), 1), height)  # a scalar counts one
            else:
                tag = ev.tag
                if tag is not None and tag not in ALLOWED_TAGS and tag not in ld.extra_tags:
                    raise Refused(None, None, f"the YAML tag {_short_tag(tag)} is not supported here", ev.start_mark)
                what = "a text" if isinstance(ev, yaml.ScalarEvent) else "a list" if isinstance(ev, yaml.SequenceStartEvent) else "a mapping"
                if tag is not None and tag != "!" and (tag in _COLLECTION_TAGS or what != "a text") and _COLLECTION_TAGS.get(tag) != what:
                    raise Refused(None, None, f"the YAML tag {_short_tag(tag)} does not fit {what}", ev.start_mark)
                if isinstance(ev, yaml.ScalarEvent):
                    if tag is None or tag == "!":
                        tag = ld.resolve(yaml.ScalarNode, ev.value, ev.implicit)
                    node = yaml.ScalarNode(tag, ev.value, ev.start_mark, ev.end_mark, style=ev.style)  # type: ignore[arg-type]
                    done = (node, 1, 0)
                else:
                    kind = yaml.SequenceNode if isinstance(ev, yaml.SequenceStartEvent) else yaml.MappingNode
                    if tag is None or tag == "!":
                        key = (kind, ev.implicit)  # a step's mapping: one resolve per document
                        tag = resolved.get(key)
                        if tag is None:
                            tag = resolved[key] = resolve(kind, None, ev.implicit)
                    node = kind(tag, [], ev.start_mark, None, flow_style=ev.flow_style)
                    if len(stack) >= MAX_DEPTH:
                        raise Refused(None, None, f"nested more than {MAX_DEPTH} levels deep", ev.start_mark)
                    open_ids.add(id(node))
                    done = None
                if ev.anchor is not None:
                    anchors[ev.anchor] = node
                if done is None:
                    stack.append([node, ev.anchor, 1, None, 0, kind is yaml.SequenceNode])
                    continue
            node, size, height = done
            total += size
            if total > MAX_NODES:
                raise Refused(None, None, f"this document expands to more than {MAX_NODES:,} values "
                              "(aliases copy what they refer to: an alias bomb?)", ev.start_mark)
            if not stack:
                root = node
                continue
            frame = stack[-1]
            frame[2] += size
            if height > frame[4]:
                frame[4] = height
            if frame[5]:  # a sequence
                frame[0].value.append(node)
            elif frame[3] is None:
                frame[3] = node
            else:
                frame[0].value.append((frame[3], node))
                frame[3] = None
        if not ld.check_event(yaml.StreamEndEvent):
            ev = ld.get_event()
            raise Refused("but found another document", ev.start_mark, "expected a single document in the stream", None)
        ld.get_event()
        return root


class _Loader(yaml.SafeLoader):
    """SafeLoader that builds MDict/MList and rejects duplicate keys (a silent YAML trap)."""

    filename = ""
    duplicates: list[tuple[int, int, Any]]
    #: local tags a subclass gives constructors of its own to (the inventory's ``!vault``)
    extra_tags: frozenset[str] = frozenset()

    def construct_yaml_map(self, node: yaml.MappingNode) -> Any:  # type: ignore[override]
        data = MDict()
        data.file, (data.line, data.col) = self.filename, _pos(node)
        yield data
        self.flatten_mapping(node)
        plain = self._plain_str_tag()
        for key_node, value_node in node.value:
            # an untagged text (most keys and values) is its own value: construct_object would
            # reach the same through four calls (see _plain_str_tag)
            key = key_node.value if key_node.tag == plain and type(key_node) is yaml.ScalarNode \
                else self.construct_object(key_node, deep=True)  # type: ignore[no-untyped-call]
            try:
                hash(key)
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    None, None, "a mapping key must be a plain value", key_node.start_mark
                ) from None
            if key in data:
                line, col = _pos(key_node)
                self.duplicates.append((line, col, key))
            data[key] = value_node.value if value_node.tag == plain and type(value_node) is yaml.ScalarNode \
                else self.construct_object(value_node, deep=True)  # type: ignore[no-untyped-call]
            mark = key_node.start_mark  # _pos, inline: twice for every key of the file
            data.key_pos[key] = (mark.line + 1, mark.column + 1)
            mark = value_node.start_mark
            data.value_pos[key] = (mark.line + 1, mark.column + 1)

    def _plain_str_tag(self) -> Any:
        """The str tag when this loader constructs it as PyYAML's SafeConstructor does (the
        scalar's text, unchanged), else a value no tag is. The constructed text is not kept in
        ``constructed_objects``: an alias of it constructs an equal str again."""
        if type(self).yaml_constructors.get(_STR_TAG) is _SAFE_STR:
            return _STR_TAG
        return _NO_TAG

    def construct_yaml_seq(self, node: yaml.SequenceNode) -> Any:  # type: ignore[override]
        data = MList()
        data.file, (data.line, data.col) = self.filename, _pos(node)
        yield data
        plain = self._plain_str_tag()
        for child in node.value:
            data.append(child.value if child.tag == plain and type(child) is yaml.ScalarNode
                        else self.construct_object(child, deep=True))  # type: ignore[no-untyped-call]
            data.item_pos.append(_pos(child))

    def construct_yaml_int(self, node: yaml.ScalarNode) -> Any:  # type: ignore[override]
        try:
            value = yaml.constructor.SafeConstructor.construct_yaml_int(self, node)  # type: ignore[no-untyped-call]
        except (ValueError, IndexError):  # not a number (`!!int abc`, `!!int ""`), or more than 4,300 digits
            if not re.fullmatch(r"[-+]?[0-9_]{100,}", node.value):
                raise Refused(None, None, f"{_clip(node.value)!r} is not a valid !!int", node.start_mark) from None
            value = None
        if value is None or value.bit_length() > MAX_INT_BITS:
            raise Refused(None, None, f"{_clip(node.value)!r} is not an integer this engine can use "
                          f"(at most {len(str(2**MAX_INT_BITS))} digits)", node.start_mark)
        return value

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        # A scalar constructor given a value it cannot read (`!!bool maybe`, `!!float x`) raises
        # a bare ValueError/KeyError without a position: give it the node's.
        try:
            return yaml.constructor.BaseConstructor.construct_object(self, node, deep=deep)  # type: ignore[no-untyped-call]
        except (ValueError, KeyError, IndexError, TypeError, AttributeError, OverflowError) as exc:
            value = node.value if isinstance(node, yaml.ScalarNode) else ""
            raise Refused(None, None, f"{_clip(value)!r} is not a valid {_short_tag(node.tag)} ({type(exc).__name__})",
                          node.start_mark) from None

    def construct_timestamp_text(self, node: yaml.ScalarNode) -> Any:
        # `backup_date: 2024-01-01` stays the text written: a datetime is not JSON (the journal)
        # and an impossible date (2024-13-45) would be an error about a value that is just text.
        return node.value


def _clip(text: str) -> str:
    return text if len(text) <= 40 else text[:20] + "…" + text[-10:]


def _install(cls: Any) -> None:
    cls.add_constructor("tag:yaml.org,2002:map", cls.construct_yaml_map)
    cls.add_constructor("tag:yaml.org,2002:seq", cls.construct_yaml_seq)
    cls.add_constructor("tag:yaml.org,2002:int", cls.construct_yaml_int)
    cls.add_constructor("tag:yaml.org,2002:timestamp", cls.construct_timestamp_text)


_install(_Loader)

# libyaml's C parser when PyYAML has it (it does from PyPI wheels) parses a 1,000-step runbook
# several times faster; its events carry the same marks and the composer and constructors above
# run on them. Its syntax error messages are vaguer, so a file it refuses is parsed again by the
# Python parser for the message (a syntax error is rare; speed matters on every run).
_CLoader: Any = None
if getattr(yaml, "__with_libyaml__", False):

    class _CLoader(yaml.CSafeLoader):  # type: ignore[no-redef]
        filename = ""
        duplicates: list[tuple[int, int, Any]]
        extra_tags: frozenset[str] = frozenset()
        construct_yaml_map = _Loader.construct_yaml_map
        construct_yaml_seq = _Loader.construct_yaml_seq
        construct_object = _Loader.construct_object
        construct_timestamp_text = _Loader.construct_timestamp_text
        construct_yaml_int = _Loader.construct_yaml_int
        _plain_str_tag = _Loader._plain_str_tag

    _install(_CLoader)


_FAST: dict[type, Any] = {}


def _fast_variant(loader: type[_Loader] | None) -> Any:
    """The libyaml loader with ``loader``'s own constructors and tags (the inventory's ``!vault``),
    or None without libyaml. The Python scanner is quadratic on deeply nested flow collections;
    libyaml reads them in linear time, so hostile input is refused quickly whoever loads it."""
    if _CLoader is None or loader is None:
        return _CLoader
    if loader not in _FAST:
        fast: Any = type(f"_C{loader.__name__}", (_CLoader,), {"extra_tags": loader.extra_tags})
        own = {tag: fn for tag, fn in loader.yaml_constructors.items() if tag not in _Loader.yaml_constructors}
        for tag, fn in own.items():
            fast.add_constructor(tag, fn)
        _FAST[loader] = fast
    return _FAST[loader]


def _read(loader: Any) -> Any:
    node = _Composer(loader).compose()
    return None if node is None else loader.construct_document(node)


def read_text(path: str | Path, *, what: str = "file") -> str:
    """The text of a user's file. Missing, unreadable, non-UTF-8 or oversized files, and
    anything but a regular file (``/dev/zero``, a FIFO: read forever), raise a located
    :class:`InputError`."""
    name = str(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise InputError(f"{what} {name} does not exist", hint="check the path") from None
    except OSError as exc:  # a name too long, a loop of links, a component that is a file
        raise InputError(f"{what} {name}: {exc.strerror}", hint="check the path") from None
    except ValueError:  # an embedded NUL
        raise InputError(f"{what} {name}: not a valid path", hint="check the path") from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"{what} {name} is a directory, not a YAML file")
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{what} {name} is not a regular file", hint="give the path of a file")
    limit = f"the {MAX_FILE_BYTES // 1024 // 1024} MiB a {what} may be"
    if st.st_size > MAX_FILE_BYTES:
        raise InputError(f"{what} {name} is {st.st_size:,} bytes: more than {limit}",
                         hint="split it, or check that this is the file you meant")
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_FILE_BYTES + 1)  # the file may have grown since stat
    except OSError as exc:
        raise InputError(f"cannot read {what} {name}: {exc.strerror}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise InputError(f"{what} {name} is larger than {limit}")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputError(
            f"{what} is not UTF-8 text (byte 0x{raw[exc.start]:02x})",
            source=Source(name, line, exc.start - raw.rfind(b"\n", 0, exc.start)),
            hint="save the file as UTF-8",
        ) from None


def load_yaml(path: str | Path, *, what: str = "file") -> Any:
    """Parse one YAML file (see :func:`read_text` and :func:`load_yaml_text` for what is refused)."""
    return load_yaml_text(read_text(path, what=what), str(path), what=what)


def _control_character(text: str, name: str) -> InputError | None:
    m = _NON_PRINTABLE.search(text)
    if m is None:
        return None
    line = text.count("\n", 0, m.start()) + 1
    col = m.start() - text.rfind("\n", 0, m.start())
    return InputError(f"control character U+{ord(m.group()):04X} in the text", source=Source(name, line, col),
                      hint=r'remove it; in a value, write it as an escape in double quotes, e.g. "\a" or "\x1b"')


def load_yaml_text(text: str, name: str, *, what: str = "file", loader: type[_Loader] | None = None) -> Any:
    """Parse YAML text with the limits of this module; ``loader`` is a subclass of the
    runbook loader with constructors of its own (the inventory's ``!vault``), parsed by the
    Python parser. Every failure is a located :class:`InputError` / :class:`ValidationFailed`."""
    if len(text) > MAX_FILE_BYTES:
        raise InputError(f"{what} is longer than {MAX_FILE_BYTES // 1024 // 1024} MiB", source=Source(name, 1, 1))
    if not text.strip() or all(not ln.strip() or ln.lstrip().startswith("#") for ln in text.splitlines()):
        raise InputError(f"{what} is empty", source=Source(name, 1, 1), hint=f"a {what} is a YAML mapping")
    bad = _control_character(text, name)
    if bad is not None:
        raise bad
    fast_cls = _fast_variant(loader)
    if fast_cls is not None:
        fast = fast_cls(text)
        fast.filename, fast.duplicates = name, []
        try:
            data = _read(fast)
        except Refused as exc:
            raise _syntax_error(exc, name, text) from None
        except yaml.YAMLError:
            pass  # parsed again below, for a precise message
        else:
            return _checked(data, fast.duplicates, name)
        finally:
            fast.dispose()
    slow = (loader or _Loader)(text)
    slow.filename = name
    slow.duplicates = []
    try:
        data = _read(slow)
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(exc, name, text) from None
    except yaml.YAMLError as exc:
        raise InputError(f"YAML syntax error: {exc}", source=Source(name, 1, 1)) from None
    finally:
        slow.dispose()
    return _checked(data, slow.duplicates, name)


def _syntax_error(exc: yaml.MarkedYAMLError, name: str, text: str) -> InputError:
    mark = exc.problem_mark or exc.context_mark
    src = Source(name, mark.line + 1, mark.column + 1) if mark else Source(name, 1, 1)
    problem = (exc.problem or exc.context or "invalid YAML").strip()
    if isinstance(exc, Refused):
        hints = {"alias": "write the values out, or use fewer aliases", "nested": "flatten the structure",
                 "tag": "remove the tag: write the plain value", "integer": "quote it if it is text",
                 "valid": "remove the tag, or write a value of that type", "document": "keep one document per file"}
        hint = next((h for k, h in hints.items() if k in problem), None)
        return InputError(problem, source=src, hint=hint)
    cm = exc.context_mark
    if exc.problem and exc.context and cm is not None and mark is not None and (cm.line, cm.column) != (mark.line, mark.column):
        # e.g. an unterminated quote: say where the thing being read started
        problem += f" ({exc.context.strip()} started at line {cm.line + 1}, column {cm.column + 1})"
    hint = "check indentation and quoting"
    lines = text.splitlines()
    line_text = lines[mark.line] if mark is not None and mark.line < len(lines) else ""
    if re.search(r"\btabs?\b", problem.lower()) or "\t" in line_text:
        hint = "YAML does not allow tabs for indentation: use spaces"
    elif "found character '%'" in problem or "'{'" in problem or "mapping values" in problem or "plain value" in problem:
        hint = 'check indentation; quote values that start with {{ or contain ": "'
    return InputError(f"YAML syntax error: {problem}", source=src, hint=hint)


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
    # one Source at the end: this runs for every step of a runbook, and building a Source at
    # each level of the path cost more than the walk
    where: tuple[str, int, int] | None = None
    for part in path:
        if isinstance(node, MDict) and part in node:
            pos = node.value_pos.get(part) or node.key_pos.get(part) or (node.line, node.col)
            where = (node.file or file, pos[0], pos[1])
            node = node[part]
        elif isinstance(node, MList) and isinstance(part, int) and 0 <= part < len(node):
            line, col = node.item_pos[part] if part < len(node.item_pos) else (node.line, node.col)
            where = (node.file or file, line, col)
            node = node[part]
        else:
            break
    if where is None:
        return Source(file, getattr(root, "line", 1) or 1, getattr(root, "col", 1) or 1)
    return Source(*where)


def key_source(mapping: Any, key: Any, file: str) -> Source:
    """Where a key itself stands (for 'unknown key' errors)."""
    if isinstance(mapping, MDict) and key in mapping.key_pos:
        line, col = mapping.key_pos[key]
        return Source(mapping.file or file, line, col)
    return Source(getattr(mapping, "file", "") or file, getattr(mapping, "line", 1) or 1, getattr(mapping, "col", 1) or 1)
