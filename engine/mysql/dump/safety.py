"""What a restore may do with a dump's statements beyond its tables and rows: the short safe
list (issue 15 items 3, 13, 14). A dump is data from a backup host, not a script to trust.

* ``SET`` (:func:`judge_set`): session settings of names/charset, ``time_zone``, ``sql_mode``,
  unique/foreign key checks, ``sql_notes``/``note_verbosity`` and the dump's own
  ``@OLD_*``/``@saved_*``/``@save_*`` variables (and their restores) are **run**; the dump's
  binlog and GTID metadata (``sql_log_bin``, ``SET GLOBAL gtid_slave_pos``, ``@@GLOBAL.GTID_PURGED``,
  ``@MYSQLDUMP_TEMP_LOG_BIN``) and ``autocommit`` are **skipped** (the restore decides those);
  anything else (``SET GLOBAL``, ``SET PASSWORD``, ``SET STATEMENT … FOR``, ``SET ROLE``, another
  variable, a value that is an expression) is **refused**.
* Other statements (:func:`judge_other`): ``ALTER TABLE t`` adding or dropping keys and
  constraints, ``MODIFY`` (a GUI export's ``AUTO_INCREMENT`` column) or setting ``AUTO_INCREMENT``,
  ``CREATE INDEX``/``DROP INDEX … ON t`` are an **alter** of ``t`` (replayed for a table the
  restore creates); ``START TRANSACTION``/``BEGIN``/``COMMIT`` are **skipped** (the loader has its
  own transactions); anything else (``DELETE``, ``UPDATE``, ``GRANT``, ``TRUNCATE``, ``CALL``,
  ``ALTER TABLE … DROP COLUMN``…) is **refused**.
* :func:`strip_qualifier` rewrites the dump's own schema qualifier away (the restore's
  connection has the target schema as its default database).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from engine.mysql.dump.classify import head_of, unquote

RUN, SKIP, ALTER, REFUSE = "run", "skip", "alter", "refuse"

#: session variables whose dump value a restore replays
RUN_VARIABLES = frozenset({"character_set_client", "character_set_results", "character_set_connection",
                           "collation_connection", "time_zone", "sql_mode", "unique_checks", "foreign_key_checks",
                           "sql_notes", "note_verbosity"})
#: session variables a dump sets that the restore decides itself
SKIP_VARIABLES = frozenset({"sql_log_bin", "autocommit"})
#: global variables a dump writes as metadata (GTID position), never run
SKIP_GLOBALS = frozenset({"gtid_slave_pos", "gtid_purged", "gtid_binlog_state", "gtid_current_pos"})
_OWN_VARIABLE = re.compile(r"(?i)^(?:old_|saved_|save_)\w*$")
_SKIP_USER_VARIABLES = frozenset({"mysqldump_temp_log_bin"})

_TOKEN = re.compile(
    rb"""\s*+(?:(?P<s>'(?:[^'\\]|\\.|'')*+'|"(?:[^"\\]|\\.|"")*+")|(?P<sysvar>@@)|(?P<uvar>@)"""
    rb"""|(?P<bq>`(?:[^`]|``)++`)|(?P<eq>:?=)|(?P<comma>,)|(?P<dot>\.)|(?P<w>[A-Za-z0-9_$+\-\x80-\xff]++)|(?P<p>.))""",
    re.S)


@dataclass(frozen=True)
class Verdict:
    """What a restore does with one statement: ``run`` | ``skip`` | ``alter`` | ``refuse``
    (``reason`` names the statement and says why)."""

    action: str
    reason: str = ""
    table: str | None = None  # alter: the table it changes
    qualifier: str | None = None  # alter: the schema its table name is qualified with


def _tokens(text: bytes) -> list[tuple[str, bytes]]:
    out: list[tuple[str, bytes]] = []
    pos, n = 0, len(text)
    while pos < n:
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            break
        kind = m.lastgroup or "p"
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


def _words(toks: list[tuple[str, bytes]]) -> str:
    return " ".join(t.decode("utf-8", "replace") for _, t in toks)[:80]


def _split_commas(toks: list[tuple[str, bytes]]) -> list[list[tuple[str, bytes]]]:
    parts: list[list[tuple[str, bytes]]] = [[]]
    depth = 0
    for tok in toks:
        if tok == ("p", b"("):
            depth += 1
        elif tok == ("p", b")"):
            depth -= 1
        if tok[0] == "comma" and depth == 0:
            parts.append([])
        else:
            parts[-1].append(tok)
    return [p for p in parts if p]


def _value_ok(toks: list[tuple[str, bytes]]) -> bool:
    """A literal (strings, a number, a word), ``@@[scope.]var`` or one of the dump's own ``@`` variables."""
    if not toks:
        return False
    if all(k == "s" for k, _ in toks):  # 'a' 'b' (MySQL's GTID_PURGED writes /*!80000 '+'*/ 'uuid:1-5')
        return True
    kinds = [k for k, _ in toks]
    if kinds == ["w"]:
        return True
    if kinds[0] == "sysvar":
        return kinds in (["sysvar", "w"], ["sysvar", "w", "dot", "w"])
    if kinds == ["uvar", "w"]:
        name = toks[1][1].decode("utf-8", "replace")
        return bool(_OWN_VARIABLE.match(name)) or name.lower() in _SKIP_USER_VARIABLES
    return False


def _assignment(toks: list[tuple[str, bytes]]) -> tuple[str, str]:
    """(run | skip | refuse, what) for one ``target = value`` of a SET."""
    text = _words(toks)
    words = [t.upper() for k, t in toks if k == "w"]
    first = toks[0]
    if (first[0] == "w" and words[0] in (b"NAMES", b"CHARSET")) or words[:2] == [b"CHARACTER", b"SET"]:
        rest = toks[2:] if words[:2] == [b"CHARACTER", b"SET"] else toks[1:]
        if rest and rest[0][0] in ("w", "s") and (len(rest) == 1 or (len(rest) == 3 and rest[1][1].upper() == b"COLLATE")):
            return RUN, text
        return REFUSE, f"{text}: not a plain character set"
    eq = next((i for i, t in enumerate(toks) if t[0] == "eq"), None)
    if eq is None:
        return REFUSE, f"{text}: not an assignment"
    target, value = toks[:eq], toks[eq + 1:]
    scope = b"SESSION"
    kinds = [k for k, _ in target]
    if kinds == ["uvar", "w"]:
        name = target[1][1].decode("utf-8", "replace")
        if name.lower() in _SKIP_USER_VARIABLES:
            return SKIP, text
        if not _OWN_VARIABLE.match(name):
            return REFUSE, f"@{name}: a user variable that is not the dump's own @OLD_/@saved_ ones"
        return (RUN, text) if _value_ok(value) else (REFUSE, f"{text}: its value is an expression")
    if kinds and kinds[0] == "sysvar":
        target = target[1:]
        if len(target) == 3 and target[1][0] == "dot":
            scope, target = target[0][1].upper(), target[2:]
    elif kinds and kinds[0] == "w" and target[0][1].upper() in (b"GLOBAL", b"SESSION", b"LOCAL", b"PERSIST", b"PERSIST_ONLY"):
        scope, target = target[0][1].upper(), target[1:]
    if len(target) != 1 or target[0][0] not in ("w", "bq"):
        return REFUSE, f"{text}: not a plain variable"
    var = unquote(target[0][1]).lower()
    if scope == b"LOCAL":
        scope = b"SESSION"
    if scope != b"SESSION":
        if scope == b"GLOBAL" and var in SKIP_GLOBALS:
            return SKIP, text
        return REFUSE, f"{text}: a {scope.decode()} setting (a restore changes its own session only)"
    if var in SKIP_VARIABLES:
        return SKIP, text
    if var not in RUN_VARIABLES:
        return REFUSE, f"{var}: not a setting a dump needs (only names/charset, time_zone, sql_mode, unique/foreign key checks, sql_notes)"
    if not _value_ok(value):
        return REFUSE, f"{text}: its value is an expression"
    return RUN, text


def judge_set(text: bytes) -> Verdict:
    """Run, skip or refuse a dump's ``SET`` statement (see the module docstring)."""
    head = head_of(text, max(len(text), 1024)).rstrip(b"; \t\r\n")
    toks = _tokens(head)
    if not toks or toks[0][1].upper() != b"SET":
        return Verdict(REFUSE, "not a SET statement")
    toks = toks[1:]
    words = [t.upper() for k, t in toks[:3] if k == "w"]
    for special in (b"STATEMENT", b"PASSWORD", b"ROLE", b"DEFAULT", b"TRANSACTION"):
        if words[:1] == [special] or (special == b"TRANSACTION" and words[1:2] == [special]):
            what = "SET " + " ".join(w.decode() for w in words[:words.index(special) + (2 if special == b"DEFAULT" else 1)])
            return Verdict(REFUSE, f"{what}: not a session setting a dump needs"
                           + (" (it runs another statement)" if special == b"STATEMENT" else ""))
    verdicts = [_assignment(p) for p in _split_commas(toks)]
    refused = [w if w.startswith("SET ") else f"SET {w}" for v, w in verdicts if v == REFUSE]
    if refused:
        return Verdict(REFUSE, "; ".join(refused))
    actions = {v for v, _ in verdicts}
    if actions == {SKIP}:
        return Verdict(SKIP)
    if actions == {RUN}:
        return Verdict(RUN)
    return Verdict(REFUSE, f"SET {_words(toks)}: mixes settings a restore replays with ones it must not (sql_log_bin, GTID)")


_ALTER_HEAD = re.compile(rb"ALTER\s+(?:ONLINE\s+)?(?:IGNORE\s+)?TABLE\s+", re.I)
_INDEX_HEAD = re.compile(rb"(?P<verb>CREATE|DROP)\s+(?:OR\s+REPLACE\s+)?(?:(?:UNIQUE|FULLTEXT|SPATIAL)\s+)?INDEX\s+"
                         rb"(?:IF\s+(?:NOT\s+)?EXISTS\s+)?(?:`(?:[^`]|``)+`|\w+)\s+(?:ON\s+)", re.I)
_TXN = re.compile(rb"(?:START\s+TRANSACTION|BEGIN(?:\s+WORK)?|COMMIT(?:\s+WORK)?)\s*$", re.I)
_KEY_WORDS = (b"KEY", b"INDEX", b"UNIQUE", b"FULLTEXT", b"SPATIAL", b"PRIMARY", b"FOREIGN", b"CONSTRAINT", b"CHECK")
_DROP_WORDS = (b"KEY", b"INDEX", b"PRIMARY", b"FOREIGN", b"CONSTRAINT", b"CHECK")


def _table_name(toks: list[tuple[str, bytes]]) -> tuple[str | None, str | None, int]:
    """(qualifier, table, tokens used) at the start of ``toks``."""
    if not toks or toks[0][0] not in ("w", "bq"):
        return None, None, 0
    if len(toks) >= 3 and toks[1][0] == "dot" and toks[2][0] in ("w", "bq"):
        return unquote(toks[0][1]), unquote(toks[2][1]), 3
    return None, unquote(toks[0][1]), 1


def _clause_ok(clause: list[tuple[str, bytes]]) -> bool:
    w = [t.upper() for k, t in clause[:3] if k == "w"] + [b"", b""]
    if w[0] == b"ADD":
        return w[1] in _KEY_WORDS
    if w[0] == b"DROP":
        return w[1] in _DROP_WORDS
    if w[0] in (b"MODIFY", b"AUTO_INCREMENT"):
        return True
    return w[0] in (b"DISABLE", b"ENABLE") and w[1] == b"KEYS"


def judge_other(text: bytes) -> Verdict:
    """An ``OTHER`` statement of a dump: an alter of a table's keys, a transaction bracket to
    skip, or refused by its name."""
    head = head_of(text, max(len(text), 1024)).rstrip(b"; \t\r\n")
    if _TXN.match(head):
        return Verdict(SKIP)
    m = _INDEX_HEAD.match(head)
    if m:
        q, table, _ = _table_name(_tokens(head[m.end():]))
        if table is not None:
            return Verdict(ALTER, table=table, qualifier=q)
    m = _ALTER_HEAD.match(head)
    if m:
        toks = _tokens(head[m.end():])
        q, table, used = _table_name(toks)
        if table is not None:
            bad = [c for c in _split_commas(toks[used:]) if not _clause_ok(c)]
            if not bad:
                return Verdict(ALTER, table=table, qualifier=q)
            return Verdict(REFUSE, f"ALTER TABLE {table} {_words(bad[0][:3])}: a restore replays only the keys,"
                           " constraints and AUTO_INCREMENT of the tables it creates")
    words = [t.decode("utf-8", "replace").upper() for k, t in _tokens(head[:200])[:2] if k == "w"]
    name = " ".join(words[:2] if words[:1] in (["RENAME"], ["LOAD"], ["DROP"], ["CREATE"]) else words[:1]) or "statement"
    return Verdict(REFUSE, f"{name}: not something a restore replays (only tables, their rows and keys, views, triggers,"
                           " routines and events of the dump's schema)")


def strip_qualifier(text: bytes, schema: str) -> bytes:
    """``text`` with every `` `schema`. `` qualifier (outside strings and comments) removed, and
    a bare ``schema.`` before a quoted name: the statement then acts on the connection's
    default database, the restore's target."""
    raw = schema.encode("utf-8", "surrogateescape")
    quoted = b"`" + raw.replace(b"`", b"``") + b"`"
    if quoted not in text and raw + b"." not in text:
        return text
    name = re.escape(quoted) + rb"|(?<![\w$`.])" + re.escape(raw)
    pattern = re.compile(
        rb"(?s)(?P<keep>'(?:[^'\\]|\\.|'')*'|\"(?:[^\"\\]|\\.|\"\")*\"|/\*(?!!|M!).*?\*/|--[^\n]*|#[^\n]*)"
        rb"|(?P<q>(?:" + name + rb")\s*\.\s*)(?=`)|(?P<qb>" + re.escape(quoted) + rb"\s*\.\s*)(?=[A-Za-z_$])")
    return pattern.sub(lambda m: m.group("keep") or b"", text)
