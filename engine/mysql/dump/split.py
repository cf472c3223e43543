"""Bytes in, statements out: the low layer of the mysqldump reader.

* :class:`ByteSource` reads a dump file (a path or an open stream, e.g. an SFTP file) in
  chunks, plain or gzip (decided by the magic bytes, never by the name), checks every gzip
  member's CRC and length, notices a truncated stream, and hashes the file's own bytes.
* :func:`split` cuts the decompressed stream into statements the way the ``mysql`` client
  does (``client/mysql.cc`` ``add_line``): quotes ``'`` ``"`` and backtick with ``\\`` escapes
  and doubled quotes, comments ``-- ``, ``#`` and ``/* */``, version comments ``/*!NNNNN …*/``
  and ``/*M!NNNNNN …*/`` whose content is live (quotes and the delimiter inside count), the
  ``DELIMITER`` command and MariaDB's sandbox line. One compiled regex per delimiter, with
  possessive quantifiers, matches a whole statement at C speed; memory stays bounded by the
  chunk size plus the largest statement.

Everything is bytes: a dump holds binary column data and is not valid UTF-8 in general.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from collections.abc import Iterator
from typing import Any, BinaryIO, NamedTuple

from engine.errors import RunbookError
from engine.mysql.dump.fastpath import _F_HEAD, _FAST_DATA, _FAST_DATA_HEX

CHUNK = 8 * 1024 * 1024
RAW_CHUNK = 1024 * 1024
# max_allowed_packet cannot exceed 1 GiB, so no loadable statement is longer: a "statement"
# growing past it is an unterminated quote or comment in a corrupt file, not something to buffer.
MAX_STATEMENT = 1024**3 + 1024**2
GZIP_MAGIC = b"\x1f\x8b"


class DumpError(RunbookError):
    """A dump file the reader refuses: corrupt, truncated, foreign, or not loadable.

    Carries the evidence: ``path``, ``offset`` (in the decompressed stream) and ``snippet``
    (the first bytes there), rendered on one line.
    """

    def __init__(self, message: str, *, path: str | None = None, offset: int | None = None,
                 snippet: bytes | None = None, hint: str | None = None) -> None:
        where = path or "dump"
        if offset is not None:
            where += f" at byte {offset:,}"
        text = f"{where}: {message}"
        if snippet:
            text += f" (starts {_show(snippet)})"
        super().__init__(text, hint=hint)
        self.path = path
        self.offset = offset
        self.snippet = snippet


def _show(data: bytes, limit: int = 60) -> str:
    text = data[:limit].decode("utf-8", "backslashreplace")
    text = text.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return repr(text + ("…" if len(data) > limit else ""))


class ByteSource:
    """The decompressed bytes of a dump, read in chunks, with the file's sha256 and size."""

    def __init__(self, raw: BinaryIO, name: str, *, hash_file: bool = False) -> None:
        self.raw = raw
        self.name = name
        self._sha = hashlib.sha256() if hash_file else None
        self.compressed_bytes = 0  # bytes read from the file itself
        self.total_bytes = 0  # decompressed bytes handed out
        first = self._raw_read(RAW_CHUNK)
        self.gzip = first[:2] == GZIP_MAGIC
        self._zin = first  # compressed input waiting (gzip), or the first plain bytes
        self._z: zlib._Decompress | None = zlib.decompressobj(31) if self.gzip else None
        self._raw_eof = False

    @property
    def sha256(self) -> str:
        return self._sha.hexdigest() if self._sha else ""

    def _raw_read(self, n: int) -> bytes:
        try:
            data = self.raw.read(n)
        except OSError as exc:
            raise DumpError(f"cannot read the file: {exc}", path=self.name, offset=self.compressed_bytes) from exc
        if self._sha is not None:
            self._sha.update(data)
        self.compressed_bytes += len(data)
        return bytes(data)

    def read(self, n: int = CHUNK) -> bytes:
        """Up to ``n`` more decompressed bytes (maybe fewer); ``b""`` only at the end."""
        out = self._read_gz(n) if self._z is not None else self._read_plain(n)
        self.total_bytes += len(out)
        return out

    def _read_plain(self, n: int) -> bytes:
        if self._zin:
            data, self._zin = self._zin[:n], self._zin[n:]
            return data
        return self._raw_read(n)

    def _read_gz(self, n: int) -> bytes:
        assert self._z is not None
        while True:
            if not self._zin:
                if self._raw_eof:
                    return b""
                self._zin = self._raw_read(RAW_CHUNK)
                if not self._zin:
                    self._raw_eof = True
                    if not self._z.eof:
                        raise DumpError("the gzip stream is truncated (it ends before its last member's trailer)",
                                        path=self.name, offset=self.total_bytes,
                                        hint="the file was cut short (an interrupted copy or a full disk): fetch it again")
                    return b""
            if self._z.eof:  # the previous member ended: what follows must be another member
                rest = self._zin.lstrip(b"\x00")  # gzip(1) ignores zero padding after the last member
                if not rest:
                    self._zin = b""
                    continue
                if not rest.startswith(GZIP_MAGIC[: len(rest)]):
                    raise DumpError("garbage after the end of the gzip data", path=self.name, offset=self.total_bytes,
                                    snippet=rest[:16])
                self._z = zlib.decompressobj(31)
                self._zin = rest
            try:
                out = self._z.decompress(self._zin, n)
            except zlib.error as exc:
                what = "CRC check failed" if "check" in str(exc) else str(exc)
                raise DumpError(f"the gzip data is corrupt ({what})", path=self.name, offset=self.total_bytes,
                                hint="the file is damaged: use another copy of the backup") from exc
            self._zin = self._z.unconsumed_tail or self._z.unused_data
            if out:
                return out


# ----------------------------------------------------------------------------- the tokenizer

_WS = rb" \t\r\n\f\v"
# Whitespace and comments between statements (never sent: the gap before a statement).
# (a UTF-8 byte-order mark, as an editor may add, is skipped like the mysql client does)
_GAP = (rb"(?:[" + _WS + rb"]++|\xef\xbb\xbf|--(?:[ \t\r\f\v][^\n]*+)?(?=\n|\Z)|#[^\n]*+"
        rb"|/\*(?!!|M!)(?:[^*]++|\*(?!/))*+\*/)*+")
_SANDBOX = rb"/\*M!999999\\-[^\n]*+(?:\n|\Z)"
_DELIMITER_CMD = rb"(?i:delimiter)[ \t]++(?P<dv>[^" + _WS + rb"]++)[^\n]*+(?:\n|\Z)"
_REFUSED_DELIM_START = frozenset(b"'\"`\\#")


def _body(delim: bytes) -> bytes:
    """Regex of a statement's text (everything up to, not including, ``delim``).

    Unrolled (``plain*(special plain*)*``): each special token (a quoted string, a comment)
    absorbs the plain run after it, which halves the loop iterations (74 -> 104 MB/s here).
    """
    d0, rest = delim[:1], delim[1:]
    specials = set(b"'\"`/#-\\") | {delim[0]}
    plain = b"[^" + b"".join(re.escape(bytes([c])) for c in sorted(specials)) + b"]*+"
    not_delim = b"(?!" + re.escape(rest) + b")" if rest else b"(?!)"
    alts = [
        rb"'[^'\\]*+(?:(?:\\.|'')[^'\\]*+)*+'",
        rb'"[^"\\]*+(?:(?:\\.|"")[^"\\]*+)*+"',
        rb"`[^`]*+(?:``[^`]*+)*+`",
        rb"/\*(?!!|M!)[^*]*+(?:\*(?!/)[^*]*+)*+\*/",  # a comment
        rb"/\*(?=!|M!)",  # a version comment opens: its content is live SQL (its "*/" is plain text)
        rb"--(?=[ \t\r\n\f\v])[^\n]*+",
        rb"\#[^\n]*+",
        rb"\\.",  # a backslash outside quotes: a client command (\g, \G, ...), reported by the reader
        rb"/(?!\*)" + (not_delim if d0 == b"/" else b""),
        rb"-" + (not_delim if d0 == b"-" else b""),
    ]
    if d0 not in (b"/", b"-") and rest:
        alts.append(re.escape(d0) + not_delim)
    return plain + b"(?:(?:" + b"|".join(alts) + b")" + plain + b")*+"


# The fast path for the bulk of a dump (mariadb-dump's extended INSERTs): its patterns live in
# engine/mysql/dump/fastpath.py, a module of the standard library only, which the whole-file
# check's helper processes run as a script (engine/mysql/dump/prove.py).

_PATTERNS: dict[bytes, re.Pattern[bytes]] = {}

# A guessed statement (see engine/mysql/dump/prove.py): the gap and an INSERT head matched here,
# its end taken at the first ";\n"; the helpers run the fast alternatives on its bytes.
_GUESS_HEAD = re.compile(rb"(?s)" + _GAP + rb"(?P<h>" + _F_HEAD + rb")")
#: a guess whose ";\n" is not within this many bytes is left to the tokenizer
GUESS_MAX = 16 * 1024 * 1024


def statement_pattern(delim: bytes) -> re.Pattern[bytes]:
    """The compiled matcher for one delimiter: gap, then a sandbox line, a DELIMITER command,
    or a statement with (if complete) its delimiter."""
    pat = _PATTERNS.get(delim)
    if pat is None:
        fast = rb"|(?P<fast>" + _FAST_DATA + rb");|(?P<fastx>" + _FAST_DATA_HEX + rb");" if delim == b";" else b""
        pat = re.compile(
            rb"(?s)" + _GAP + rb"(?:(?P<sb>" + _SANDBOX + rb")|(?P<dl>" + _DELIMITER_CMD + rb")" + fast + rb"|(?P<st>"
            + _body(delim) + rb")(?P<end>" + re.escape(delim) + rb")?)")
        _PATTERNS[delim] = pat
    return pat


def _statement_end(buf: bytes, start: int, end: int | None = None) -> int:
    """``buf.find(b";\\n", start, end)``, by ``memchr`` of the ``;``: CPython searches a two-byte
    needle byte by byte (0.16 CPU-s over a 180 MB dump, against 0.01 s for the ``;``, which is
    rare inside a dump's rows). A run of ``;`` not followed by a newline (strings full of them)
    goes back to the plain search after a few, so no input costs more than it did."""
    last = (len(buf) if end is None else min(end, len(buf))) - 1  # where a ";" can be: one byte before the end
    if last <= start:
        return -1
    i = buf.find(b";", start, last)
    for _ in range(8):
        if i < 0 or buf[i + 1] == 10:
            return i
        i = buf.find(b";", i + 1, last)
    return buf.find(b";\n", i, last + 1) if i >= 0 else -1


def _row_per_line(buf: bytes, rs: int, e: int) -> bool:
    """Worth a guess: the rows look like mariadb-dump's one per line (MySQL's one-line layout
    never takes the fast path: its guess would always fail)."""
    window = min(e, rs + 65536)
    return buf.find(b"),\n(", rs, window) >= 0 or buf.find(b"),(", rs, window) < 0


class RawStatement(NamedTuple):
    """One piece of the stream: ``what`` is 'sql', 'sandbox' or 'delimiter'.

    A tuple, not a dataclass: a ``--skip-extended-insert`` dump has millions of them.
    """

    what: str
    text: bytes  # without the delimiter (the DELIMITER/sandbox line without its newline)
    offset: int
    length: int  # bytes spanned in the stream, delimiter included
    delimiter: bytes  # the delimiter in force for this statement
    gap: bytes  # the comments and whitespace just before it (file-order context, e.g. "-- Table structure for ...")
    rows: int = -1  # an INSERT taken by the fast path: its rows; else -1
    values_at: int = -1  # ... where its row list starts in ``text``
    safe: bool = True  # ... and whether LOAD DATA can carry its values (no 0x…/X'…' literal)


class Splitter:
    """Iterates the :class:`RawStatement` s of a :class:`ByteSource`; ``tail`` is the text after
    the last statement once the iteration has ended (the trailer comment lives there)."""

    def __init__(self, source: ByteSource, chunk: int = CHUNK, prover: Any = None) -> None:
        self.source = source
        self.chunk = chunk
        self.tail = b""
        self.delimiter = b";"
        #: a :class:`engine.mysql.dump.prove.Prover`: big INSERTs are guessed and proven by it
        #: (only where stream offsets are file offsets: a plain file)
        self.prover = prover if not source.gzip else None

    def __iter__(self) -> Iterator[RawStatement]:
        src, name = self.source, self.source.name
        buf = b""
        base = 0  # stream offset of buf[0]
        pos = 0
        eof = False
        delim = b";"
        pat = statement_pattern(delim)
        prover = self.prover
        guess_min = prover.min_bytes if prover is not None else 0
        while True:
            # a guess only where no ";\n" comes within guess_min bytes (a small statement, as in a
            # --skip-extended-insert dump, is not worth a helper: no regex spent on it twice)
            g = (_GUESS_HEAD.match(buf, pos) if prover is not None and delim == b";"
                 and _statement_end(buf, pos, pos + guess_min) < 0 else None)
            if g is not None:
                rs = g.end()
                e = _statement_end(buf, rs)
                if e < 0 and not eof and len(buf) - pos < GUESS_MAX:
                    more = src.read(max(self.chunk, len(buf) - pos))
                    if more:
                        base += pos
                        buf = buf[pos:] + more
                        pos = 0
                    else:
                        eof = True
                    continue
                st = g.start("h")
                if e >= 0 and e + 1 - st >= guess_min and _row_per_line(buf, rs, e):
                    assert prover is not None
                    prover.submit(base + st, e + 1 - st, rs - st, memoryview(buf)[st:e])  # the bytes read here
                    yield RawStatement("sql", buf[st:e], base + st, e + 1 - st, delim, buf[pos:st], buf.count(b"\n", rs, e + 1) + 1,
                                       rs - st, True)
                    pos = e + 1
                    continue
            m = pat.match(buf, pos)
            assert m is not None  # the pattern can match the empty string
            end = m.end()
            last = m.lastgroup
            if last == "fast" or last == "fastx":
                st, rs = m.start(last), m.start("rows" if last == "fast" else "rowsx")
                yield RawStatement("sql", buf[st:end - 1], base + st, end - st, delim, buf[pos:st],
                                   buf.count(b"\n", rs, end) + 1, rs - st, last == "fast")
                pos = end
                continue
            complete = (m.start("end") >= 0 if m.start("st") >= 0
                        else end < len(buf) or buf.endswith(b"\n") or eof)
            if not complete and not eof:
                more = src.read(max(self.chunk, len(buf) - pos))
                if not more:
                    eof = True
                elif len(buf) - pos + len(more) > MAX_STATEMENT:
                    raise DumpError("a statement longer than 1 GiB (max_allowed_packet's limit): an unterminated quote or comment?",
                                    path=name, offset=base + pos, snippet=buf[pos:pos + 60])
                base += pos
                buf = buf[pos:] + more
                pos = 0
                continue
            gap_end = m.start("sb") if m.start("sb") >= 0 else m.start("dl") if m.start("dl") >= 0 else m.start("st")
            gap = buf[pos:gap_end]
            if m.start("sb") >= 0:
                yield RawStatement("sandbox", buf[gap_end:end].rstrip(b"\r\n"), base + gap_end, end - gap_end, delim, gap)
            elif m.start("dl") >= 0:
                new = m.group("dv")
                if new[0] in _REFUSED_DELIM_START:
                    raise DumpError(f"unsupported delimiter {_show(new)}", path=name, offset=base + gap_end)
                yield RawStatement("delimiter", buf[gap_end:end].rstrip(b"\r\n"), base + gap_end, end - gap_end, delim, gap)
                delim = new
                self.delimiter = delim
                pat = statement_pattern(delim)
            elif m.start("end") >= 0:
                st = m.start("st")
                yield RawStatement("sql", buf[st:m.end("st")], base + st, end - st, delim, gap)
            else:  # at EOF without the delimiter
                st, st_end = m.start("st"), m.end("st")
                if st_end == st and st_end == len(buf):
                    self.tail = gap
                    return
                self._unterminated(buf, base, st, st_end, delim)
            pos = end

    def _unterminated(self, buf: bytes, base: int, st: int, st_end: int, delim: bytes) -> None:
        name = self.source.name
        stop = buf[st_end:st_end + 2]
        if stop[:1] in (b"'", b'"', b"`"):
            what = f"an unterminated {stop[:1].decode()}-quoted string"
        elif stop == b"/*":
            what = "an unterminated /* comment"
        elif stop[:1] == b"\\":
            what = "a backslash at the very end"
        else:
            what = f"a last statement without its delimiter {delim.decode('latin-1')!r}"
        raise DumpError(f"the dump ends inside {what}: the file is truncated or not a dump",
                        path=name, offset=base + (st_end if stop else st), snippet=buf[st:st + 60])
