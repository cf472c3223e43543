"""Small SQL helpers: identifier quoting and statement classification."""

from __future__ import annotations

import functools
import itertools
import re


def quote_ident(name: str) -> str:
    """A backtick-quoted identifier; backticks inside are doubled, as MySQL requires."""
    if "\x00" in name:
        raise ValueError("an identifier cannot contain a NUL byte")
    return "`" + name.replace("`", "``") + "`"


def qualified(schema: str, table: str) -> str:
    return f"{quote_ident(schema)}.{quote_ident(table)}"


_LEADING_NOISE = re.compile(r"^(\s+|--[^\n]*\n|#[^\n]*\n|/\*(?!!).*?\*/)+", re.S)
_READ_ONLY = ("select", "show", "describe", "desc", "explain", "with", "help", "values", "table")


def first_keyword(sql: str) -> str:
    text = _LEADING_NOISE.sub("", sql.lstrip())
    m = re.match(r"\(*\s*([A-Za-z]+)", text)
    return m.group(1).lower() if m else ""


#: ASCII text (``str.isascii`` first: a class of all non-ASCII characters costs ~4 ms to compile)
#: that :func:`code_words` may split with one regex: nothing that starts a string, a quoted
#: identifier, a comment or a variable (``-`` and ``/`` only when no ``--``/``/*`` follows)
_PLAIN_TEXT = re.compile(r"(?:[^'\"`#@\\/-]|-(?!-)|/(?!\*))*\Z")
#: a word as :func:`code_words` makes it of plain text: letters, digits, ``_$`` and inner dots
_PLAIN_WORD = re.compile(r"[A-Za-z0-9_$][A-Za-z0-9_$.]*|\S")


def code_words(sql: str, *, backslash_escapes: bool = True) -> list[str]:
    """The statement as the server parses it, word by word, lower case: comments dropped (but
    the text of executable comments ``/*! … */``, ``/*!50100 … */``, ``/*M! … */`` kept, as the
    server runs it), every string literal one ``'…'`` word and every quoted identifier one
    ``` `…` ``` word (their content is not code), ``@var`` one word, punctuation one word each.

    ``backslash_escapes=False`` reads strings as the server does under ``NO_BACKSLASH_ESCAPES``
    (``'a\\'`` is a whole string there).

    ``code_words("SELECT 1 INTO/**/OUTFILE 'x'") == ["select", "1", "into", "outfile", "'…'"]``
    """
    if sql.isascii() and _PLAIN_TEXT.match(sql):
        # No quote, comment, variable or non-ASCII character: the scan would only split words
        # from punctuation. The same words, several times faster (a statement per SQL step).
        return _PLAIN_WORD.findall(sql.lower())
    return _scanned_words(sql, backslash_escapes)


def _scanned_words(sql: str, backslash_escapes: bool) -> list[str]:
    """:func:`code_words` of any text, character by character."""
    words: list[str] = []
    word: list[str] = []

    def flush() -> None:
        if word:
            words.append("".join(word).lower())
            word.clear()

    i, n = 0, len(sql)
    in_exec_comment = False
    while i < n:
        c = sql[i]
        if c in ("'", '"', "`"):
            flush()
            j = i + 1
            while j < n:
                if sql[j] == "\\" and c != "`" and backslash_escapes:
                    j += 2
                    continue
                if sql[j] == c:
                    if j + 1 < n and sql[j + 1] == c:  # doubled quote
                        j += 2
                        continue
                    break
                j += 1
            words.append("`…`" if c == "`" else "'…'")
            i = j + 1
            continue
        if c == "#" or (sql.startswith("--", i) and (i + 2 >= n or sql[i + 2] in " \t\r\n\f\v")):
            flush()
            j = sql.find("\n", i)
            i = n if j < 0 else j + 1
            continue
        if sql.startswith("/*", i):
            flush()
            m = re.match(r"/\*(M?!)(\d{5,6})?", sql[i:])
            if m and not in_exec_comment:
                in_exec_comment = True  # its text is code
                i += m.end()
                continue
            j = sql.find("*/", i + 2)
            i = n if j < 0 else j + 2
            continue
        if in_exec_comment and sql.startswith("*/", i):
            flush()
            in_exec_comment = False
            i += 2
            continue
        if c.isalnum() or (c in "_$@." and not (c == "." and not word)):
            if c == "@" and word and word[-1] != "@":
                flush()
            word.append(c)
        else:
            flush()
            if not c.isspace():
                words.append(c)
        i += 1
    flush()
    return words


#: functions that change state though called from a SELECT (sequences, user-level locks)
_SIDE_EFFECTS = frozenset({"nextval", "setval", "get_lock", "release_lock", "release_all_locks"})


def is_read_only(sql: str) -> bool:
    """True for statements that cannot change data: SELECT (without INTO/FOR UPDATE), SHOW,
    DESCRIBE, EXPLAIN. Used by check mode to decide what may run. Decided on the words the
    server sees (:func:`code_words`), so no comment, executable comment, string or odd spacing
    hides an ``INTO OUTFILE`` or moves a word into view — under either reading of a backslash
    in a string (the session's ``sql_mode`` may hold ``NO_BACKSLASH_ESCAPES``)."""
    if len(sql) > _CACHED_TEXT:
        return _read_only(sql)
    return _read_only_cached(sql)


def _readings(sql: str) -> tuple[list[str], ...]:
    """The statement's words under each reading of a backslash in a string: one reading when
    the text has no backslash (both are the same then)."""
    words = code_words(sql)
    return (words,) if "\\" not in sql else (words, code_words(sql, backslash_escapes=False))


def _read_only(sql: str) -> bool:
    return all(_read_only_words(words) for words in _readings(sql))


@functools.lru_cache(maxsize=1024)
def _classified(sql: str) -> tuple[bool, bool]:
    """(read-only, keeps its session) of a step's statement, split into words once: the
    executor asks the first for the journal's digest, the session the second as it runs it."""
    readings = _readings(sql)
    read_only = all(_read_only_words(words) for words in readings)
    return read_only, read_only and all(_keeps_words(words) for words in readings)


def _read_only_cached(sql: str) -> bool:
    return _classified(sql)[0]

# Words a "(" may follow in a plain read: SQL keywords, and built-in functions that only compute
# a value. Any other call (a stored function could SET a variable) makes a statement unclean.
_PLAIN_CALLS = frozenset("""
select from where and or not in exists join on as over partition by order group having with union all any some
distinct when then else case is like between using values row rows range
count sum min max avg group_concat std stddev variance bit_and bit_or bit_xor json_arrayagg json_objectagg
concat concat_ws coalesce ifnull if nullif isnull length char_length octet_length lower upper lcase ucase substring
substr substring_index left right trim ltrim rtrim replace repeat reverse lpad rpad instr locate position field
elt round floor ceil ceiling abs mod sign truncate pow power sqrt exp ln log log2 log10 greatest least cast
convert binary format hex unhex conv md5 sha1 sha sha2 crc32 to_base64 from_base64 now sysdate curdate curtime
current_date current_time current_timestamp localtime localtimestamp utc_date utc_time utc_timestamp
unix_timestamp from_unixtime date time timestamp year month day dayofmonth dayofweek dayofyear hour minute second
week weekday quarter date_format time_format str_to_date date_add date_sub adddate subdate addtime subtime datediff
timediff timestampdiff timestampadd extract last_day makedate maketime sec_to_time time_to_sec to_days from_days
version database schema user current_user session_user system_user connection_id found_rows row_count
json_extract json_unquote json_object json_array json_length json_keys json_contains json_valid json_type
row_number rank dense_rank percent_rank cume_dist ntile lag lead first_value last_value nth_value
inet_aton inet_ntoa inet6_aton inet6_ntoa uuid uuid_short rand char ascii ord bin oct space strcmp soundex
""".split())  # noqa: SIM905 - one word list, readable by line


def keeps_session(sql: str) -> bool:
    """True for a statement that cannot change its session's state: a read-only statement
    (:func:`is_read_only`) with no variable assignment (``:=``), no ``SQL_CALC_FOUND_ROWS`` and
    no call but of built-in functions that only compute (``LAST_INSERT_ID(x)`` sets a value, a
    stored function may ``SET`` anything). After such a statement the session needs no reset."""
    if len(sql) > _CACHED_TEXT:
        return False
    return _classified(sql)[1]


def _keeps_words(words: list[str]) -> bool:
    """No assignment, no SQL_CALC_FOUND_ROWS, no call but of built-ins that only compute."""
    if "sql_calc_found_rows" in words:
        return False
    for prev, nxt in itertools.pairwise(words):
        if (prev == ":" and nxt == "=") or (nxt == "(" and prev[:1].isalpha() and prev not in _PLAIN_CALLS):
            return False
        if nxt == "(" and prev[:1] in ("`", "@"):
            return False
    return True


def _read_only_words(words: list[str]) -> bool:
    kw = next((w for w in words if w != "("), "")
    if kw not in _READ_ONLY:
        return False
    if ";" in words[:-1]:
        return False  # a second statement
    pairs = set(itertools.pairwise(words))
    # INTO OUTFILE / DUMPFILE write a file on the server; INTO @var / a variable sets one.
    if "into" in words:
        return False
    if ("for", "update") in pairs or ("for", "share") in pairs or ("lock", "in") in pairs:
        return False
    if any(w in _SIDE_EFFECTS and nxt == "(" for w, nxt in pairs) or ("next", "value") in pairs:
        return False
    if kw == "with" and {"update", "delete", "insert", "replace"} & set(words):
        return False
    # MySQL 8's EXPLAIN ANALYZE executes the statement it explains
    if kw in ("explain", "describe", "desc") and "analyze" in words:
        return not {"update", "delete", "insert", "replace"} & set(words)
    return True


_IDEMPOTENT = re.compile(
    r"^\s*(create\s+(or\s+replace\s+)?(temporary\s+)?(table|database|schema|index|view|user|procedure|function|trigger|event)\s+(if\s+not\s+exists\b|)"
    r"|drop\s+(temporary\s+)?\w+\s+if\s+exists\b|replace\b|truncate\b|set\b|use\b|analyze\b|optimize\b|flush\b|do\s+sleep)",
    re.I,
)


def is_idempotent(sql: str) -> bool:
    """True for statements that give the same result when run twice: read-only ones,
    ``CREATE … IF NOT EXISTS`` / ``CREATE OR REPLACE``, ``DROP … IF EXISTS``, ``REPLACE``,
    ``TRUNCATE``, ``SET``. Plain INSERT/UPDATE/DELETE and ``CREATE`` without a guard are not
    (an UPDATE may be, but only the runbook's author can say so: ``idempotent: true``)."""
    if is_read_only(sql):
        return True
    text = _LEADING_NOISE.sub("", sql.lstrip())
    m = _IDEMPOTENT.match(text)
    if not m:
        return False
    if text.lower().startswith("create") and not re.match(r"^create\s+or\s+replace\b", text, re.I):
        return bool(re.search(r"\bif\s+not\s+exists\b", text[:200], re.I))
    return True


def split_statements(sql: str) -> list[str]:
    """Split SQL text on ``;`` outside quotes, backticks and comments. Empty statements dropped."""
    return list(_split(sql)) if len(sql) <= _CACHED_TEXT else _split_text(sql)


_CACHED_TEXT = 16384  # a step's SQL text, not a file's


@functools.lru_cache(maxsize=1024)
def _split(sql: str) -> tuple[str, ...]:
    # The same step text is split for its digest, its identity guard and its run, on every host.
    return tuple(_split_text(sql))


def _split_text(sql: str) -> list[str]:
    out: list[str] = []
    buf: list[str] = []
    i, n = 0, len(sql)
    quote: str | None = None
    while i < n:
        c = sql[i]
        if quote:
            buf.append(c)
            if c == "\\" and quote != "`" and i + 1 < n:
                buf.append(sql[i + 1])
                i += 2
                continue
            if c == quote:
                if i + 1 < n and sql[i + 1] == quote:  # doubled quote
                    buf.append(sql[i + 1])
                    i += 2
                    continue
                quote = None
            i += 1
            continue
        if c in ("'", '"', "`"):
            quote = c
            buf.append(c)
        elif (c == "-" and sql.startswith("-- ", i)) or c == "#":
            j = sql.find("\n", i)
            j = n if j < 0 else j
            buf.append(sql[i:j])
            i = j
            continue
        elif c == "/" and sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            j = n if j < 0 else j + 2
            buf.append(sql[i:j])
            i = j
            continue
        elif c == "{" and sql.startswith("{{", i):
            j = sql.find("}}", i + 2)
            j = n if j < 0 else j + 2
            buf.append(sql[i:j])  # a template expression may contain ';' inside a string
            i = j
            continue
        elif c == ";":
            stmt = "".join(buf).strip()
            if stmt and not _only_comments(stmt):
                out.append(stmt)
            buf = []
            i += 1
            continue
        else:
            buf.append(c)
        i += 1
    stmt = "".join(buf).strip()
    if stmt and not _only_comments(stmt):
        out.append(stmt)
    return out


def _only_comments(stmt: str) -> bool:
    return not _LEADING_NOISE.sub("", stmt + "\n").strip()


def quoted_placeholders(sql: str) -> list[str]:
    """The ``{{ ... }}`` blocks written inside a quoted SQL string or identifier.

    ``WHERE name = '{{ v }}'`` looks right to anyone used to string templating, but the value
    is bound as a parameter that brings its own quotes: ``'' + 'v' + ''``, i.e. an empty string
    followed by the value as *unquoted* SQL text. A value like `` OR 1=1 -- `` then injects.
    """
    if "{{" not in sql:  # the blocks are found where "{{" starts one: none, nothing to scan
        return []
    return list(_quoted(sql)) if len(sql) <= _CACHED_TEXT else _quoted_text(sql)


@functools.lru_cache(maxsize=1024)
def _quoted(sql: str) -> tuple[str, ...]:
    return tuple(_quoted_text(sql))


def _quoted_text(sql: str) -> list[str]:
    out: list[str] = []
    quote: str | None = None
    i, n = 0, len(sql)
    while i < n:
        if sql.startswith("{{", i):
            j = sql.find("}}", i + 2)
            j = n if j < 0 else j + 2
            if quote:
                out.append(sql[i:j])
            i = j
            continue
        c = sql[i]
        if quote:
            if c == "\\" and quote != "`":
                i += 2
                continue
            if c == quote:
                if i + 1 < n and sql[i + 1] == quote:  # doubled quote inside the string
                    i += 2
                    continue
                quote = None
        elif c in ("'", '"', "`"):
            quote = c
        elif (c == "-" and sql.startswith("-- ", i)) or c == "#":
            j = sql.find("\n", i)
            i = n if j < 0 else j
            continue
        elif sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            i = n if j < 0 else j + 2
            continue
        i += 1
    return out
