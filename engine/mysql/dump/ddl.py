"""``CREATE TABLE`` as data: columns, keys and foreign keys of a dump's table definitions.

Parses what ``SHOW CREATE TABLE`` writes (mysqldump/mariadb-dump) and the usual hand-written
forms (bare names, inline ``PRIMARY KEY``, unnamed ``FOREIGN KEY``)::

    t = parse_create_table(b"CREATE TABLE `c` (`id` int NOT NULL, `pid` int, PRIMARY KEY (`id`),"
                           b" CONSTRAINT `fk` FOREIGN KEY (`pid`) REFERENCES `p` (`id`) ON DELETE CASCADE)")
    t.primary_key                      # ('id',)
    t.foreign_keys[0].on_delete        # 'CASCADE'

``restore`` orders tables by these foreign keys and compares them with the target's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from engine.mysql.dump.split import DumpError

_TOKEN = re.compile(
    r"""\s*(?:(?P<bq>`(?:[^`]|``)*`)|(?P<sq>'(?:[^'\\]|\\.|'')*')|(?P<dq>"(?:[^"\\]|\\.|"")*")"""
    r"""|(?P<word>[A-Za-z0-9_$.\x80-\U0010ffff+-]+)|(?P<p>.))""", re.S)


@dataclass(frozen=True)
class ColumnDef:
    name: str
    type: str  # as written, lower-cased keyword: 'decimal(10,2)', "enum('a','b')", 'int(11) unsigned'
    nullable: bool
    default: str | None  # the DEFAULT expression as written ("'x'", 'NULL', 'current_timestamp()'), None without one
    generated: bool  # GENERATED ALWAYS AS / AS (…) [VIRTUAL|STORED|PERSISTENT]: never given a value by a load
    auto_increment: bool
    charset: str | None = None  # CHARACTER SET written on the column (None: the table's default)
    collation: str | None = None  # COLLATE written on the column

    @property
    def base_type(self) -> str:
        """The type's keyword: 'decimal' for 'decimal(10,2) unsigned'."""
        return self.type.split("(", 1)[0].split(" ", 1)[0]


@dataclass(frozen=True)
class ForeignKey:
    name: str | None
    columns: tuple[str, ...]
    ref_schema: str | None
    ref_table: str
    ref_columns: tuple[str, ...]
    on_delete: str  # 'RESTRICT' (the default, also written NO ACTION) | 'CASCADE' | 'SET NULL' | 'SET DEFAULT'
    on_update: str


@dataclass
class TableDef:
    name: str
    columns: list[ColumnDef] = field(default_factory=list)
    primary_key: tuple[str, ...] = ()
    unique_keys: list[tuple[str, ...]] = field(default_factory=list)
    foreign_keys: list[ForeignKey] = field(default_factory=list)
    engine: str | None = None
    create_sql: str = ""
    schema: str | None = None  # the qualifier when the statement names one
    default_charset: str | None = None  # DEFAULT CHARSET=… of the table options
    default_collation: str | None = None  # COLLATE=… of the table options
    #: unique keys by name (``UNIQUE KEY `uq` (…)``; an unnamed one gets its first column's name)
    unique_key_names: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def column(self, name: str) -> ColumnDef | None:
        """The column called ``name`` (case-insensitive, as MySQL compares column names)."""
        low = name.lower()
        return next((c for c in self.columns if c.name.lower() == low), None)


def _tokens(text: str) -> list[tuple[str, str]]:
    """(kind, text) tokens: bq (backticked), sq/dq (strings), word, p (punctuation)."""
    out = []
    pos, n = 0, len(text)
    while pos < n:
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            break
        kind = m.lastgroup or "p"
        out.append((kind, m.group(kind)))
        pos = m.end()
    return [t for t in out if not (t[0] == "p" and t[1].isspace())]


def _ident(tok: tuple[str, str]) -> str:
    kind, text = tok
    if kind == "bq":
        return text[1:-1].replace("``", "`")
    if kind == "dq":
        return text[1:-1].replace('""', '"')
    return text


def _split_top(tokens: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    parts: list[list[tuple[str, str]]] = [[]]
    depth = 0
    for tok in tokens:
        if tok == ("p", "("):
            depth += 1
        elif tok == ("p", ")"):
            depth -= 1
        if tok == ("p", ",") and depth == 0:
            parts.append([])
        else:
            parts[-1].append(tok)
    return [p for p in parts if p]


def _paren_group(tokens: list[tuple[str, str]], i: int) -> tuple[list[tuple[str, str]], int]:
    """The tokens inside the parenthesis opening at ``tokens[i]``, and the index after it."""
    depth = 0
    for j in range(i, len(tokens)):
        if tokens[j] == ("p", "("):
            depth += 1
        elif tokens[j] == ("p", ")"):
            depth -= 1
            if depth == 0:
                return tokens[i + 1:j], j + 1
    raise ValueError("unbalanced parentheses")


def _qualified(toks: list[tuple[str, str]], i: int) -> tuple[str | None, str, int]:
    """(schema or None, name, next index) of ``db.t``, `` `db`.`t` `` or ``t`` at ``toks[i]``
    (a "." is part of a word token: ``0.00`` stays one token)."""
    first = toks[i]
    nxt = toks[i + 1] if i + 1 < len(toks) else ("", "")
    if first[0] == "word" and "." in first[1]:
        schema, name = first[1].split(".", 1)
        if name:
            return schema, name, i + 1
        return schema, _ident(toks[i + 1]), i + 2
    if nxt == ("word", "."):
        return _ident(first), _ident(toks[i + 2]), i + 3
    if nxt[0] == "word" and nxt[1].startswith("."):
        return _ident(first), nxt[1][1:], i + 2
    return None, _ident(first), i + 1


def _key_columns(inner: list[tuple[str, str]]) -> tuple[str, ...]:
    """``(`a`(10) DESC, b)`` -> ('a', 'b'): prefix lengths and order dropped."""
    return tuple(_ident(part[0]) for part in _split_top(inner) if part)


def _text(tokens: list[tuple[str, str]]) -> str:
    """Tokens back to SQL, spaced the way SHOW CREATE TABLE writes a type: ``decimal(10,2) unsigned``."""
    out = ""
    for kind, t in tokens:
        if out and not (kind == "p" and t in "(),") and out[-1] not in "(,":
            out += " "
        out += t
    return out


def _upper(tok: tuple[str, str]) -> str:
    return tok[1].upper() if tok[0] == "word" else ""


def _action(words: list[str], i: int) -> tuple[str, int]:
    if words[i] in ("SET", "NO"):
        return f"{words[i]} {words[i + 1]}".replace("NO ACTION", "RESTRICT"), i + 2
    return words[i], i + 1


def _foreign_key(name: str | None, toks: list[tuple[str, str]], i: int) -> ForeignKey:
    # toks[i] is FOREIGN; then KEY [name] (cols) REFERENCES [db.]t (cols) [ON DELETE x] [ON UPDATE y]
    i += 2
    if toks[i] != ("p", "("):
        name = name or _ident(toks[i])
        i += 1
    inner, i = _paren_group(toks, i)
    cols = _key_columns(inner)
    if _upper(toks[i]) != "REFERENCES":
        raise ValueError("FOREIGN KEY without REFERENCES")
    ref_schema, ref_table, i = _qualified(toks, i + 1)
    inner, i = _paren_group(toks, i)
    words = [_upper(t) for t in toks] + ["", ""]
    on = {"DELETE": "RESTRICT", "UPDATE": "RESTRICT"}
    while i < len(toks):
        if words[i] == "ON" and words[i + 1] in on:
            on[words[i + 1]], i = _action(words, i + 2)
        else:
            i += 1
    return ForeignKey(name, cols, ref_schema, ref_table, _key_columns(inner), on["DELETE"], on["UPDATE"])


_ATTR_START = {"NOT", "NULL", "DEFAULT", "AUTO_INCREMENT", "GENERATED", "AS", "COMMENT", "PRIMARY", "UNIQUE", "KEY",
               "CHARACTER", "CHARSET", "COLLATE", "ON", "INVISIBLE", "CHECK", "REFERENCES", "COLUMN_FORMAT", "STORAGE",
               "WITH", "SRID", "VISIBLE", "COMPRESSED", "PERSISTENT", "VIRTUAL", "STORED", "ENGINE_ATTRIBUTE"}


def _column(toks: list[tuple[str, str]]) -> tuple[ColumnDef, bool, bool]:
    """A column definition; also whether it is declared PRIMARY KEY / UNIQUE inline."""
    name = _ident(toks[0])
    i = 1
    type_toks: list[tuple[str, str]] = []
    while i < len(toks):
        tok = toks[i]
        if tok == ("p", "("):
            inner, i = _paren_group(toks, i)
            type_toks += [("p", "(")] + inner + [("p", ")")]
            continue
        if _upper(tok) in _ATTR_START or tok[0] != "word":
            break
        type_toks.append(("word", tok[1].lower()))
        i += 1
    if not type_toks or type_toks[0][0] != "word":
        raise ValueError(f"column {name!r} has no type")
    nullable, default, generated, auto_inc, pk, unique = True, None, False, False, False, False
    charset: str | None = None
    collation: str | None = None
    words = [_upper(t) for t in toks] + ["", "", ""]
    while i < len(toks):
        w = words[i]
        if w == "CHARACTER" and words[i + 1] == "SET" and i + 2 < len(toks):
            charset, i = _ident(toks[i + 2]).lower(), i + 3
        elif w == "CHARSET" and i + 1 < len(toks):
            charset, i = _ident(toks[i + 1]).lower(), i + 2
        elif w == "COLLATE" and i + 1 < len(toks):
            collation, i = _ident(toks[i + 1]).lower(), i + 2
        elif w == "NOT" and words[i + 1] == "NULL":
            nullable, i = False, i + 2
        elif w == "DEFAULT":
            j = i + 1
            if j + 1 < len(toks) and toks[j + 1] == ("p", "("):  # a function call: current_timestamp(), uuid()
                inner, end = _paren_group(toks, j + 1)
                default, i = _text(toks[j:end]), end
            elif toks[j] == ("p", "("):
                inner, end = _paren_group(toks, j)
                default, i = _text(toks[j:end]), end
            else:
                default, i = toks[j][1], j + 1
        elif w == "AUTO_INCREMENT":
            auto_inc, i = True, i + 1
        elif w in ("GENERATED", "AS") and (w == "GENERATED" or (i + 1 < len(toks) and toks[i + 1] == ("p", "("))):
            generated, i = True, i + 1
        elif w == "PRIMARY":
            pk, nullable, i = True, False, i + 2
        elif w == "UNIQUE":
            unique, i = True, i + 1
        elif toks[i] == ("p", "("):
            _, i = _paren_group(toks, i)
        else:
            i += 1
    return ColumnDef(name, _text(type_toks), nullable, default, generated, auto_inc, charset, collation), pk, unique


_HEAD = re.compile(r"^\s*CREATE\s+(?:OR\s+REPLACE\s+)?(?:TEMPORARY\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?", re.I)


def parse_create_table(text: bytes | str) -> TableDef:
    """A :class:`TableDef` from a ``CREATE TABLE`` statement (version-comment markers allowed)."""
    sql = text.decode("utf-8", "surrogateescape") if isinstance(text, bytes) else text
    clean = re.sub(r"/\*M?!\d*|\*/", " ", sql).strip().rstrip(";")
    m = _HEAD.match(clean)
    if not m:
        raise DumpError("not a CREATE TABLE statement", snippet=sql[:60].encode("utf-8", "surrogateescape"))
    try:
        toks = _tokens(clean[m.end():])
        schema, name, i = _qualified(toks, 0)
        inner, i = _paren_group(toks, i)
        t = TableDef(name=name, create_sql=sql, schema=schema)
        for part in _split_top(inner):
            _definition(t, part)
        _table_options(t, toks, i)
        return t
    except (IndexError, ValueError, StopIteration) as exc:
        raise DumpError(f"cannot parse CREATE TABLE ({exc or 'unexpected end'})",
                        snippet=sql[:60].encode("utf-8", "surrogateescape")) from exc


def _table_options(t: TableDef, toks: list[tuple[str, str]], i: int) -> None:
    """ENGINE, DEFAULT CHARSET and COLLATE after the column list."""
    words = [_upper(x) for x in toks] + ["", ""]

    def value(k: int) -> str:
        k = k + 1 if toks[k] == ("p", "=") else k
        return _ident(toks[k])

    j = i
    while j < len(toks) - 1:
        w = words[j]
        if w in ("ENGINE", "TYPE") and t.engine is None:
            t.engine = value(j + 1)
        elif w == "CHARSET" or (w == "CHARACTER" and words[j + 1] == "SET"):
            t.default_charset = value(j + (2 if w == "CHARACTER" else 1)).lower()
        elif w == "COLLATE":
            t.default_collation = value(j + 1).lower()
        j += 1


def _definition(t: TableDef, part: list[tuple[str, str]]) -> None:
    w = [_upper(x) for x in part] + ["", "", ""]
    constraint = None
    i = 0
    if w[0] == "CONSTRAINT":
        if w[1] in ("PRIMARY", "UNIQUE", "FOREIGN", "CHECK"):
            i = 1
        else:
            constraint, i = _ident(part[1]), 2
    kw = w[i]
    if kw == "PRIMARY":
        j = next(k for k in range(i, len(part)) if part[k] == ("p", "("))
        t.primary_key = _key_columns(_paren_group(part, j)[0])
    elif kw == "UNIQUE":
        j = next(k for k in range(i, len(part)) if part[k] == ("p", "("))
        cols = _key_columns(_paren_group(part, j)[0])
        t.unique_keys.append(cols)
        named = [_ident(x) for x in part[i + 1:j] if _upper(x) not in ("KEY", "INDEX", "IF", "NOT", "EXISTS")
                 and x[0] in ("bq", "word")]
        t.unique_key_names[named[0] if named else (constraint or cols[0])] = cols
    elif kw == "FOREIGN":
        t.foreign_keys.append(_foreign_key(constraint, part, i))
    elif kw in ("KEY", "INDEX", "FULLTEXT", "SPATIAL", "CHECK", "PERIOD", "VECTOR") or part[0][0] == "p":
        return
    else:
        col, pk, unique = _column(part)
        t.columns.append(col)
        if pk:
            t.primary_key = (col.name,)
        if unique:
            t.unique_keys.append((col.name,))
            t.unique_key_names[col.name] = (col.name,)
    if t.primary_key:  # PK columns are NOT NULL whatever the column line says
        pkl = {c.lower() for c in t.primary_key}
        t.columns = [ColumnDef(c.name, c.type, False, c.default, c.generated, c.auto_increment, c.charset, c.collation)
                     if c.name.lower() in pkl and c.nullable else c for c in t.columns]
