"""The fast path of the dump reader: an extended INSERT in mariadb-dump's layout, matched whole
by one regex (:mod:`engine.mysql.dump.split` puts these patterns first in its statement
matcher). Standard library only: the whole-file check's helper processes run this file as a
script (``python -I -S fastpath.py FILE``), which starts in milliseconds where importing the
``engine.mysql.dump`` package costs ≈ 0.2 s of CPU (:mod:`engine.mysql.dump.prove`).

    script: reads ``offset length values_at`` lines on stdin (a guessed statement of FILE, with its
    ``;``), prints ``offset bad`` for each one not proven, ``offset safe DIGEST`` or ``offset x
    DIGEST`` (rows exact, not LOAD DATA safe) for each one proven, then ``ok N`` (N: lines read).
    DIGEST (:func:`digest`) names the bytes the helper proved: it opened FILE by path, and the
    main process counts the proof only for the very bytes it read itself.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys

# The fast path for the bulk of a dump: an extended INSERT in mariadb-dump's layout (one row
# per line, rows separated by ",\n"), whose strings hold no raw newline (mysqldump escapes
# them) and whose rows hold no 0x…, _binary, b'…', X'…', comment or function call. Matched,
# every newline in the row list is a row separator, so rows = newlines + 1, exactly, and the
# statement is safe for LOAD DATA. Anything else falls through to the general tokenizer.
_F_ID = rb"(?:`[^`\n]*+`|[A-Za-z0-9_$]++)"
_F_STR = rb"'[^'\\\n]*+(?:(?:\\[^\n]|'')[^'\\\n]*+)*+'"


def _f_rows(plain: bytes, group: bytes) -> bytes:
    row = rb"\(" + plain + rb"(?:(?:" + _F_STR + rb"|-(?!-))" + plain + rb")*+\)"
    return rb"(?P<" + group + rb">(?:" + row + rb",\n)*+" + row + rb")"


_F_HEAD = (rb"(?i:INSERT|REPLACE)(?:\s++(?i:IGNORE|DELAYED|LOW_PRIORITY|HIGH_PRIORITY))*+\s++(?i:INTO)\s++" + _F_ID
           + rb"(?:\s*+\.\s*+" + _F_ID + rb")?\s*+(?:\(" + _F_ID + rb"(?:\s*+,\s*+" + _F_ID + rb")*+\)\s*+)?"
           rb"(?i:VALUES)[ \n]?+")
# Outside strings a LOAD DATA-safe row holds only numbers and NULL (a whitelist: DEFAULT, TRUE or
# a function would load as text).
_FAST_DATA = _F_HEAD + _f_rows(rb"[0-9.,eE+ \tNUL]*+", b"rows")
# The same with any word outside strings: a --hex-blob dump (0x… literals; X'…' and b'…' too),
# or DEFAULT/TRUE in a hand-written file: rows still exact, not LOAD DATA safe.
_FAST_DATA_HEX = _F_HEAD + _f_rows(rb"[0-9A-Za-z.,+ \t]*+", b"rowsx")

FAST_STATEMENT = re.compile(rb"(?s)" + _FAST_DATA + rb";")
FAST_STATEMENT_HEX = re.compile(rb"(?s)" + _FAST_DATA_HEX + rb";")


def prove(data: bytes, values_at: int) -> str:
    """What the reader's own match would say of ``data`` (a whole statement with its ``;``): its
    fast path matches from the start, its rows begin at ``values_at`` and it ends exactly at the
    end — ``"safe"`` (LOAD DATA can carry it), ``"x"`` (hex, bit or word literals) — or
    ``"bad"``. The order is the reader's: the first alternative that matches is the one it takes."""
    for pat, group, verdict in ((FAST_STATEMENT, "rows", "safe"), (FAST_STATEMENT_HEX, "rowsx", "x")):
        m = pat.match(data)
        if m is not None:
            return verdict if m.end() == len(data) and m.start(group) == values_at else "bad"
    return "bad"


def digest(head: bytes | memoryview, body: bytes | memoryview) -> bytes:
    """What a proof is of: the sha256 of a statement's head (up to its row list) and of its row
    list (without the ``;``), hex. The row list's own sha256 is the one the restore's index keeps
    for the batch that carries it (:mod:`engine.actions.restore.index`): hashed once."""
    return (hashlib.sha256(head).hexdigest() + hashlib.sha256(body).hexdigest()).encode()


def _serve(path: str) -> int:
    """The helper (see the module docstring)."""
    read = 0
    out = sys.stdout.buffer
    with open(path, "rb") as f:
        fd = f.fileno()
        for line in sys.stdin.buffer:
            off, n, values_at = (int(x) for x in line.split())
            data = os.pread(fd, n, off)
            verdict = prove(data, values_at) if len(data) == n else "bad"
            if verdict == "bad":
                out.write(b"%d bad\n" % off)
            else:  # proven: the statement ends with its ";", not part of the row list's digest
                view = memoryview(data)
                out.write(b"%d %s %s\n" % (off, verdict.encode(), digest(view[:values_at], view[values_at:n - 1])))
            read += 1
    out.write(b"ok %d\n" % read)
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(_serve(sys.argv[1]))
